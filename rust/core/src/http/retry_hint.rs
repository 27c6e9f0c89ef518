//! Parsers of the headers in which servers say how long to wait before a retry.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// The wait a server's hint of `seconds` gets: the hint, cut to `max`; `None` (use the
/// backoff) for no hint, a negative one or not a number. Never panics, whatever the number
/// (`Duration::from_secs_f64` would on one too large).
pub fn hinted_wait(seconds: Option<f64>, max: Duration) -> Option<Duration> {
    let seconds = seconds.filter(|s| *s >= 0.0)?;
    Some(Duration::try_from_secs_f64(seconds).map_or(max, |wait| wait.min(max)))
}

/// `seconds` as a duration: 0 for a negative number or NaN, [`Duration::MAX`] past it.
pub fn saturating_seconds(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// `retry-after-ms` (milliseconds), else `retry-after` (seconds), as seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<f64> {
    if let Some(ms) = header_text(headers, "retry-after-ms").and_then(parse_seconds) {
        return Some(ms / 1000.0);
    }
    header_text(headers, "retry-after").and_then(parse_seconds)
}

/// The header's value as text, if it is there and readable.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A non-negative, finite number of seconds.
fn parse_seconds(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite() && *value >= 0.0)
}

/// Parses Go-style durations such as `"1s"`, `"6m0s"`, `"1h2m3.5s"`, `"250ms"` (OpenAI's
/// `x-ratelimit-reset-*` headers).
pub fn parse_go_duration(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += value * unit;
        any = true;
    }
    (any && number.is_empty() && total.is_finite()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn milliseconds_win_over_seconds() {
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "250"), ("retry-after", "3")])),
            Some(0.25)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "3")])), Some(3.0));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn hints_are_bounded_waits_whatever_the_number() {
        let max = Duration::from_secs(60);
        assert_eq!(
            hinted_wait(Some(2.5), max),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(hinted_wait(Some(1e300), max), Some(max));
        assert_eq!(hinted_wait(Some(f64::INFINITY), max), Some(max));
        assert_eq!(hinted_wait(Some(-1.0), max), None);
        assert_eq!(hinted_wait(Some(f64::NAN), max), None);
        assert_eq!(hinted_wait(None, max), None);
        assert_eq!(saturating_seconds(f64::NAN), Duration::ZERO);
        assert_eq!(saturating_seconds(1e300), Duration::MAX);
        assert_eq!(saturating_seconds(0.5), Duration::from_millis(500));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("250ms"), Some(0.25));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(3723.5));
        assert_eq!(parse_go_duration("12"), None);
        assert_eq!(parse_go_duration("3x"), None);
    }
}
