//! The one place where core errors become Python exceptions.
//!
//! Each core error enum gets an [`IntoPyErr`] impl here; binding code calls `.into_pyerr()`
//! and never builds a `PyErr` for a core error anywhere else.

use distilabel_rs_core::batch_jobs::durable::SubmitError;
use distilabel_rs_core::generate_job::JobError;
use distilabel_rs_core::grouper::{ChunkError, UnknownIncompletePolicy};
use distilabel_rs_core::http::ApiError;
use distilabel_rs_core::merge::MergeError;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::{PyErr, create_exception};

// The native client's exceptions. Created here, with this module path, so that they pickle
// across processes (pipeline workers send exceptions to their parent).
create_exception!(
    distilabel_rs._core,
    APIError,
    PyException,
    "A request to the LLM provider's API failed."
);
create_exception!(
    distilabel_rs._core,
    APIConnectionError,
    APIError,
    "The API could not be reached, or the connection broke."
);
create_exception!(
    distilabel_rs._core,
    APITimeoutError,
    APIConnectionError,
    "No complete response within the request timeout."
);
create_exception!(
    distilabel_rs._core,
    APIStatusError,
    APIError,
    "The API answered with an error status (`status_code`, `message`)."
);
create_exception!(
    distilabel_rs._core,
    RateLimitError,
    APIStatusError,
    "The API answered 429: too many requests or tokens."
);
create_exception!(
    distilabel_rs._core,
    APIResponseValidationError,
    APIError,
    "The API answered with a body that is not a valid completion."
);
create_exception!(
    distilabel_rs._core,
    MalformedInputError,
    PyValueError,
    "A line of the input file is not a valid request (the message names the line)."
);
create_exception!(
    distilabel_rs._core,
    RequestCancelledError,
    APIError,
    "The request was cancelled (with the others of its call)."
);

pub trait IntoPyErr {
    fn into_pyerr(self) -> PyErr;
}

impl IntoPyErr for MergeError<PyErr> {
    fn into_pyerr(self) -> PyErr {
        match self {
            // The exception raised while reading a response, untouched.
            MergeError::Host(err) => err,
            e @ MergeError::ZeroGroupSize => PyValueError::new_err(e.to_string()),
        }
    }
}

impl IntoPyErr for ChunkError<PyErr> {
    fn into_pyerr(self) -> PyErr {
        match self {
            ChunkError::Source(err) => err,
            e @ ChunkError::ShortChunk { .. } => PyValueError::new_err(e.to_string()),
        }
    }
}

impl IntoPyErr for UnknownIncompletePolicy {
    fn into_pyerr(self) -> PyErr {
        PyValueError::new_err(self.to_string())
    }
}

impl IntoPyErr for ApiError {
    fn into_pyerr(self) -> PyErr {
        let message = self.to_string();
        match self {
            ApiError::Connection(_) => APIConnectionError::new_err(message),
            ApiError::Timeout(_) => APITimeoutError::new_err(message),
            ApiError::InvalidResponse(_) => APIResponseValidationError::new_err(message),
            ApiError::InvalidRequest(_) => PyValueError::new_err(message),
            ApiError::Cancelled => RequestCancelledError::new_err(message),
            ApiError::Status {
                status,
                message: provider_message,
                retry_after,
            } => {
                let error = if status == 429 {
                    RateLimitError::new_err(message)
                } else {
                    APIStatusError::new_err(message)
                };
                Python::attach(|py| {
                    let value = error.value(py);
                    // Attributes on a fresh exception instance cannot fail in practice;
                    // if they did, the message still carries status and text.
                    let _ = value.setattr("status_code", status);
                    let _ = value.setattr("message", provider_message);
                    let _ = value.setattr("retry_after", retry_after);
                });
                error
            }
        }
    }
}

impl IntoPyErr for JobError {
    fn into_pyerr(self) -> PyErr {
        let message = self.to_string();
        match self {
            JobError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                PyFileNotFoundError::new_err(message)
            }
            JobError::Io { .. } | JobError::Changed { .. } => PyOSError::new_err(message),
            JobError::Malformed { .. } => MalformedInputError::new_err(message),
            JobError::Fatal(error) => error.into_pyerr(),
        }
    }
}

impl IntoPyErr for SubmitError {
    fn into_pyerr(self) -> PyErr {
        match self {
            SubmitError::Api(error) => error.into_pyerr(),
            // The journal's file could not be read, written or locked, or is damaged.
            SubmitError::Journal(error) => PyOSError::new_err(error.to_string()),
        }
    }
}
