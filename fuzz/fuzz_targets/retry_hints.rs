//! The parsers of the headers that say when to retry (`retry-after(-ms)`, OpenAI's Go
//! durations, Anthropic's RFC 3339 resets) and the wait the client makes of a hint: any
//! value gives no hint or a finite, non-negative number of seconds, and a wait of at most
//! the client's bound; never a panic.
#![no_main]

use distilabel_rs_core::http::Provider;
use std::time::Duration;

use distilabel_rs_core::http::retry_hint::{hinted_wait, parse_go_duration, retry_after};
use distilabel_rs_core::providers::anthropic::rate_limits::parse_rfc3339;
use distilabel_rs_core::providers::{anthropic, openai};
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

const HEADERS: [&str; 8] = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-input-tokens-reset",
];

const MAX_WAIT: Duration = Duration::from_secs(60);

fn sound(hint: Option<f64>) {
    if let Some(seconds) = hint {
        assert!(seconds.is_finite() && seconds >= 0.0, "{seconds}");
    }
    // What the retry loop sleeps.
    assert!(hinted_wait(hint, MAX_WAIT).is_none_or(|wait| wait <= MAX_WAIT));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        sound(parse_go_duration(text));
        // Any number a server may send, as the retry loop gets it.
        let wait = hinted_wait(text.trim().parse::<f64>().ok(), MAX_WAIT);
        assert!(wait.is_none_or(|wait| wait <= MAX_WAIT));
        // A timestamp, finite (it may be before 1970).
        if let Some(at) = parse_rfc3339(text) {
            assert!(at.is_finite());
        }
    }
    // The bytes, split at 0x00, as the values of the headers in turn.
    let mut headers = HeaderMap::new();
    for (name, value) in HEADERS.iter().zip(data.split(|byte| *byte == 0)) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    sound(retry_after(&headers));
    sound(openai::OpenAi::default().retry_hint(&headers));
    sound(anthropic::Anthropic::default().retry_hint(&headers));
});
