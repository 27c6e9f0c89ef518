//! The `[[key=value ...]]` directives that script the mock server's misbehaviour from the
//! request text (see the crate documentation).

use std::time::Duration;

use serde_json::Value;

use crate::{Reply, State, locked, reply_json};

/// The longest a `hold=N` request waits for the others.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Directives {
    pub status: Option<u16>,
    pub times: Option<u32>,
    pub retry_after: Option<String>,
    pub retry_after_ms: Option<String>,
    pub ratelimit_reset: Option<String>,
    pub sleep_ms: Option<u64>,
    pub hold: Option<usize>,
    pub malformed: bool,
    pub truncated: bool,
    pub expire: bool,
    pub content: Option<String>,
}

pub(crate) fn directives(text: &str) -> Directives {
    let mut found = Directives::default();
    let Some(start) = text.find("[[") else {
        return found;
    };
    let Some(length) = text[start + 2..].find("]]") else {
        return found;
    };
    for token in text[start + 2..start + 2 + length].split_whitespace() {
        let (key, value) = token.split_once('=').unwrap_or((token, ""));
        match key {
            "status" => found.status = value.parse().ok(),
            "times" => found.times = value.parse().ok(),
            "retry_after" => found.retry_after = Some(value.to_owned()),
            "retry_after_ms" => found.retry_after_ms = Some(value.to_owned()),
            "ratelimit_reset" => found.ratelimit_reset = Some(value.to_owned()),
            "sleep_ms" => found.sleep_ms = value.parse().ok(),
            "hold" => found.hold = value.parse().ok(),
            "malformed" => found.malformed = true,
            "truncated" => found.truncated = true,
            "expire" => found.expire = true,
            "content" => found.content = Some(value.replace('_', " ")),
            _ => {}
        }
    }
    found
}

/// The text the directives are read from in OpenAI-shaped bodies: the last message's
/// content, or the prompt.
pub(crate) fn text_of(body: &Value) -> String {
    if let Some(prompt) = body.get("prompt").and_then(Value::as_str) {
        return prompt.to_owned();
    }
    let last = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| messages.last())
        .and_then(|message| message.get("content"));
    match last {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// The error a directive asks for: `status`, the provider's error body, the retry headers.
fn scripted_error(status: u16, script: &Directives, body: &Value) -> Reply {
    let mut response = reply_json(status, body);
    let headers = response.headers_mut();
    let pairs = [
        ("retry-after", &script.retry_after),
        ("retry-after-ms", &script.retry_after_ms),
        ("x-ratelimit-reset-requests", &script.ratelimit_reset),
    ];
    for (name, value) in pairs {
        if let Some(value) = value
            && let Ok(value) = hyper::header::HeaderValue::from_str(value)
        {
            headers.insert(name, value);
        }
    }
    response
}

/// The message of every scripted failure.
pub(crate) fn failure_message(status: u16) -> String {
    format!("Scripted failure with status {status}")
}

/// Runs the directives of a generation request's `text`: waits (`sleep_ms`), then answers a
/// scripted error (`status`, with `error_body(status, message)` in the provider's shape) or
/// a malformed body; otherwise hands the directives back for the route to answer.
pub(crate) async fn run(
    state: &State,
    text: &str,
    error_body: &(dyn Fn(u16, &str) -> Value + Sync),
) -> Result<Directives, Reply> {
    let script = directives(text);
    if let Some(ms) = script.sleep_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(count) = script.hold {
        let mut peak = state.peak_in_flight.subscribe();
        // At the limit the request is answered anyway (the test then sees the peak).
        let _ = tokio::time::timeout(HOLD_LIMIT, peak.wait_for(|peak| *peak >= count)).await;
    }
    if let Some(status) = script.status {
        let attempt = {
            let mut attempts = locked(&state.attempts);
            let count = attempts.entry(text.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        if script.times.is_none_or(|times| attempt <= times) {
            let body = error_body(status, &failure_message(status));
            return Err(scripted_error(status, &script, &body));
        }
    }
    if script.malformed {
        return Err(crate::reply(200, "{\"choices\": [ not json".into()));
    }
    Ok(script)
}

/// The answer to a generation request, cut in half when the directives say `truncated`.
pub(crate) fn answer(script: &Directives, payload: &Value) -> Reply {
    let mut text = payload.to_string();
    if script.truncated {
        text.truncate(text.len() / 2);
    }
    crate::reply(200, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_parsed() {
        let d = directives("hello [[status=429 times=2 retry_after=0.5 malformed]] world");
        assert_eq!(d.status, Some(429));
        assert_eq!(d.times, Some(2));
        assert_eq!(d.retry_after.as_deref(), Some("0.5"));
        assert!(d.malformed);
        assert_eq!(directives("no directives"), Directives::default());
    }
}
