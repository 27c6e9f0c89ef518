//! Which error statuses the client's retry loop tries again ([`ApiError::is_retryable`]):
//! 408, 409, 429 and every 5xx (Anthropic's 529 `overloaded_error` included), as the
//! OpenAI and Anthropic SDKs do; no other 4xx, and no unfollowed redirect.

use distilabel_rs_core::http::ApiError;

fn status(status: u16) -> ApiError {
    ApiError::Status {
        status,
        message: format!("status {status}"),
        retry_after: None,
    }
}

#[test]
fn the_transient_statuses_are_retried() {
    for code in [408, 409, 429, 500, 502, 503, 504, 529] {
        assert!(status(code).is_retryable(), "{code} should be retried");
    }
}

#[test]
fn other_client_errors_and_redirects_are_not_retried() {
    for code in [400, 401, 402, 403, 404, 405, 413, 422, 301, 307, 308] {
        assert!(!status(code).is_retryable(), "{code} should not be retried");
    }
}

#[test]
fn every_status_from_300_to_599_is_classified_by_the_one_rule() {
    for code in 300..600 {
        let expected = matches!(code, 408 | 409 | 429) || code >= 500;
        assert_eq!(status(code).is_retryable(), expected, "status {code}");
    }
}

#[test]
fn a_retry_after_hint_does_not_make_a_status_retryable() {
    let hinted = ApiError::Status {
        status: 400,
        message: "bad request".into(),
        retry_after: Some(1.0),
    };
    assert!(!hinted.is_retryable());
    assert_eq!(hinted.retry_after(), Some(1.0));
}
