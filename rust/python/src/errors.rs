//! The one place where core errors become Python exceptions.
//!
//! Each core error enum gets an [`IntoPyErr`] impl here; binding code calls `.into_pyerr()`
//! and never builds a `PyErr` for a core error anywhere else.

use distilabel_rs_core::chunking::{ChunkError, UnknownIncompletePolicy};
use distilabel_rs_core::grouping::MergeError;
use pyo3::PyErr;
use pyo3::exceptions::PyValueError;

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
