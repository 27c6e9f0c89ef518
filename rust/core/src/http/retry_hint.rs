//! Parsers of the headers in which servers say how long to wait before a retry.

use reqwest::header::HeaderMap;

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
    fn go_durations() {
        assert_eq!(parse_go_duration("250ms"), Some(0.25));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(3723.5));
        assert_eq!(parse_go_duration("12"), None);
        assert_eq!(parse_go_duration("3x"), None);
    }
}
