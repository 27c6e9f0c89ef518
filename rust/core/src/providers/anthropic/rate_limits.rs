//! Anthropic's rate-limit headers: `retry-after(-ms)`, and the
//! `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{remaining,reset}`
//! pairs, whose reset times are RFC 3339 timestamps (`2024-05-01T12:00:30Z`).

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

use crate::http::retry_hint::{self, header_text};

/// The limits whose reset time is announced.
const LIMITS: [&str; 4] = ["requests", "tokens", "input-tokens", "output-tokens"];

/// Seconds to wait before a retry: `retry-after-ms`, else `retry-after`, else until the
/// latest reset of a limit that is used up (its `-remaining` is 0, or not given).
pub fn retry_hint(headers: &HeaderMap) -> Option<f64> {
    retry_hint::retry_after(headers).or_else(|| reset_hint(headers, unix_now()))
}

/// The reset part of [`retry_hint`], at `now` (seconds since the Unix epoch).
fn reset_hint(headers: &HeaderMap, now: f64) -> Option<f64> {
    LIMITS
        .iter()
        .filter(|limit| {
            header_text(headers, &format!("anthropic-ratelimit-{limit}-remaining"))
                .is_none_or(|remaining| remaining.trim() == "0")
        })
        .filter_map(|limit| header_text(headers, &format!("anthropic-ratelimit-{limit}-reset")))
        .filter_map(parse_rfc3339)
        .map(|reset| (reset - now).max(0.0))
        .reduce(f64::max)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS`, optional
/// fraction, then `Z` or `±HH:MM` (`T`/`Z` in either case, or a space for `T`). `None` for
/// anything else, including out-of-range fields.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let text = text.trim().as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let separator =
        |index: usize, allowed: &[u8]| text.get(index).is_some_and(|c| allowed.contains(c));
    if !(separator(4, b"-")
        && separator(7, b"-")
        && separator(10, b"Tt ")
        && separator(13, b":")
        && separator(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut index = 19;
    let mut fraction = 0.0;
    if separator(index, b".") {
        let start = index + 1;
        let end = start
            + text
                .get(start..)?
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
        if end == start {
            return None;
        }
        fraction = std::str::from_utf8(text.get(index..end)?)
            .ok()?
            .parse::<f64>()
            .ok()?;
        index = end;
    }
    let offset_minutes = match text.get(index)? {
        b'Z' | b'z' if index + 1 == text.len() => 0,
        sign @ (b'+' | b'-') if index + 6 == text.len() && separator(index + 3, b":") => {
            let hours = number(index + 1..index + 3)?;
            let minutes = number(index + 4..index + 6)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 60 + minutes;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    #[allow(clippy::cast_precision_loss)]
    Some(seconds as f64 + fraction)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2024-05-01T12:00:30Z"), Some(1_714_564_830.0));
        assert_eq!(parse_rfc3339("2024-05-01t12:00:30z"), Some(1_714_564_830.0));
        assert_eq!(parse_rfc3339("2024-05-01 12:00:30Z"), Some(1_714_564_830.0));
        assert_eq!(
            parse_rfc3339("2024-05-01T14:00:30.25+02:00"),
            Some(1_714_564_830.25)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T07:30:30-04:30"),
            Some(1_714_564_830.0)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800.0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1.0));
        for bad in [
            "",
            "soon",
            "2024-05-01",
            "2024-05-01T12:00:30",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:30.Z",
            "2024-05-01T12:00:30+0200",
            "2024-05-01T12:00:30Zjunk",
            "2024-5-01T12:00:30Z",
            "２024-05-01T12:00:30Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn retry_after_wins_then_the_latest_used_up_limit() {
        assert_eq!(
            retry_hint(&headers(&[
                ("retry-after-ms", "250"),
                ("anthropic-ratelimit-requests-reset", "2999-01-01T00:00:00Z"),
            ])),
            Some(0.25)
        );
        let now = 1_714_564_800.0; // 2024-05-01T12:00:00Z
        let resets = headers(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:30Z"),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2024-05-01T12:00:45Z"),
            // Not used up: its reset does not matter.
            ("anthropic-ratelimit-input-tokens-remaining", "5000"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2024-05-01T12:05:00Z",
            ),
        ]);
        assert_eq!(reset_hint(&resets, now), Some(45.0));
        // Without a `-remaining` header the reset is taken; a past reset means now.
        let past = headers(&[("anthropic-ratelimit-requests-reset", "2024-05-01T11:59:00Z")]);
        assert_eq!(reset_hint(&past, now), Some(0.0));
        let unparsable = headers(&[("anthropic-ratelimit-requests-reset", "in a while")]);
        assert_eq!(reset_hint(&unparsable, now), None);
        assert_eq!(retry_hint(&HeaderMap::new()), None);
    }
}
