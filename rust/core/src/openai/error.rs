//! What can go wrong with one request.

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq)]
pub enum ApiError {
    /// The server could not be reached, or the connection broke.
    #[error("Connection error: {0}")]
    Connection(String),
    /// No complete response within the request timeout.
    #[error("Request timed out after {} s.", .0.as_secs_f64())]
    Timeout(Duration),
    /// The server answered with an error status; `message` is the provider's own.
    #[error("Error code: {status} - {message}")]
    Status {
        status: u16,
        message: String,
        /// Seconds the server asked to wait before a retry, if it said.
        retry_after: Option<f64>,
    },
    /// The server answered 2xx with a body that is not a valid completion.
    #[error("Invalid response from the API: {0}")]
    InvalidResponse(String),
    /// The request could not be built (e.g. a malformed base URL or header).
    #[error("Invalid request: {0}")]
    InvalidRequest(String),
    /// Not sent, or given up, because the batch was cancelled.
    #[error("The request was cancelled.")]
    Cancelled,
}

impl ApiError {
    /// Connection errors, timeouts, 408, 409, 429 and 5xx are worth retrying; other 4xx
    /// mean the request itself is wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Connection(_) | ApiError::Timeout(_) => true,
            ApiError::Status { status, .. } => {
                matches!(status, 408 | 409 | 429) || (500..600).contains(status)
            }
            ApiError::InvalidResponse(_) | ApiError::InvalidRequest(_) | ApiError::Cancelled => {
                false
            }
        }
    }

    pub fn retry_after(&self) -> Option<f64> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
