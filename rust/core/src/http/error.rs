//! What can go wrong with one request, whatever the provider.

use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

/// One request's failure. What a misbehaving server does maps onto these variants, and
/// [`ApiError::is_retryable`] decides whether the client's one retry loop tries again:
///
/// | the server... | variant | retried |
/// | --- | --- | --- |
/// | cannot be reached, or resets the connection (before or in the middle of the body) | [`Connection`](ApiError::Connection) | yes |
/// | does not send the whole response (headers *and* body) within the timeout, e.g. trickles it | [`Timeout`](ApiError::Timeout) | yes |
/// | answers 408, 409, 429 or 5xx | [`Status`](ApiError::Status) | yes |
/// | answers another 4xx | [`Status`](ApiError::Status) | no |
/// | redirects in a loop, more than the client's `max_redirects` times, to another host, or with 301/302/303 (which would turn the request into a body-less GET) | [`Status`](ApiError::Status) with the 3xx status | no |
/// | answers 2xx with a body larger than the client's limit | [`InvalidResponse`](ApiError::InvalidResponse) (`response larger than N bytes`) | no |
/// | answers 2xx with invalid UTF-8, invalid JSON, or JSON that is not a completion | [`InvalidResponse`](ApiError::InvalidResponse) | no |
/// | answers 2xx with an error body (`{"error": ...}`) | [`InvalidResponse`](ApiError::InvalidResponse) with the provider's message | no |
/// | asks for an absurd wait before a retry (`retry-after: 1e300`) | the wait is cut to the client's `max_retry_wait` (60 s) | as its status says |
///
/// A broken connection or a timeout is usually the network's or a busy server's passing
/// state; a body that is too large, unreadable or an error in disguise is what the server
/// answers to this request, and would be paid for again on every retry.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ApiError {
    /// The server could not be reached, or the connection broke (also in the middle of the
    /// response body).
    #[error("Connection error: {0}")]
    Connection(String),
    /// No complete response within the request timeout: the timeout bounds the whole
    /// attempt, from connecting to the last byte of the body.
    #[error("Request timed out after {} s.", .0.as_secs_f64())]
    Timeout(Duration),
    /// The server answered with an error status; `message` is the provider's own. Also a
    /// redirect that is not followed (the message says why and where it pointed).
    #[error("Error code: {status} - {message}")]
    Status {
        status: u16,
        message: String,
        /// Seconds the server asked to wait before a retry, if it said.
        retry_after: Option<f64>,
    },
    /// The server answered 2xx with a body that is not a valid completion: too large, not
    /// UTF-8, not JSON, not the API's shape, or an error body.
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

/// The provider's message in an error body: `{"error": {"message": ...}}` (OpenAI,
/// Anthropic and most others) or `{"error": "..."}` (TGI, Ollama); else the body itself,
/// shortened.
pub fn provider_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| {
            let error = value.get("error")?;
            error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| error.as_str().map(str::to_owned))
        });
    from_json.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.chars().count() > 500 {
            format!("{}…", text.chars().take(500).collect::<String>())
        } else {
            text.to_owned()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_messages() {
        assert_eq!(
            provider_message(br#"{"error":{"message":"Rate limit reached","type":"x"}}"#),
            "Rate limit reached"
        );
        assert_eq!(
            provider_message(br#"{"error":"Model is overloaded","error_type":"overloaded"}"#),
            "Model is overloaded"
        );
        assert_eq!(provider_message(b" upstream down "), "upstream down");
        assert_eq!(provider_message(&[b'x'; 600]).chars().count(), 501);
    }
}
