//! The `[[key=value ...]]` directives that script the mock server's misbehaviour from the
//! request text (see the crate documentation).

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use serde::Serialize;
use serde_json::Value;

use crate::{Call, ChannelBody, Reply, State, locked, reply_json};

/// The longest a `hold=N` request waits for the others.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// Bytes per chunk of a trickled answer.
const TRICKLE_CHUNK: usize = 8;

/// Bytes per chunk of a huge answer.
const HUGE_CHUNK: usize = 64 * 1024;

/// The query parameters the redirect directives add (and read back).
const HOP: &str = "mock_hop";
const LOOP: &str = "mock_loop";

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
    pub reset_mid_body: bool,
    pub trickle_ms: Option<u64>,
    pub huge_mb: Option<u64>,
    pub content_length: bool,
    pub invalid_utf8: bool,
    pub error_200: bool,
    pub redirect_loop: bool,
    pub redirects: Option<u32>,
    pub redirect_status: Option<u16>,
    pub redirect_host: Option<String>,
    /// Answer with `Connection: close` (the server closes the connection after it).
    pub close: bool,
}

impl Directives {
    /// Whether this text asks for any misbehaviour that `times` limits.
    fn faulty(&self) -> bool {
        self.status.is_some()
            || self.malformed
            || self.truncated
            || self.reset_mid_body
            || self.trickle_ms.is_some()
            || self.huge_mb.is_some()
            || self.invalid_utf8
            || self.error_200
    }

    /// Drops the misbehaviours (once `times` attempts had them).
    /// The answer's text: the `content` directive's, or the echo of the request text.
    pub(crate) fn answer_text(&self, text: &str) -> String {
        self.content
            .as_deref()
            .map_or_else(|| format!("echo: {text}"), str::to_owned)
    }

    fn behave(&mut self) {
        self.status = None;
        self.malformed = false;
        self.truncated = false;
        self.reset_mid_body = false;
        self.trickle_ms = None;
        self.huge_mb = None;
        self.invalid_utf8 = false;
        self.error_200 = false;
    }
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
            "reset_mid_body" => found.reset_mid_body = true,
            "trickle_ms" => found.trickle_ms = value.parse().ok(),
            "huge_mb" => found.huge_mb = value.parse().ok(),
            "content_length" => found.content_length = true,
            "invalid_utf8" => found.invalid_utf8 = true,
            "error_200" => found.error_200 = true,
            "redirect_loop" => found.redirect_loop = true,
            "redirects" => found.redirects = value.parse().ok(),
            "redirect_status" => found.redirect_status = value.parse().ok(),
            "redirect_host" => found.redirect_host = Some(value.to_owned()),
            "close" => found.close = true,
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

/// The message of a scripted error answered with status 200.
pub(crate) const ERROR_200_MESSAGE: &str = "Scripted error in a 200 response";

/// Runs the directives of a generation request's `text`: redirects (`redirects`,
/// `redirect_loop`), waits (`sleep_ms`, `hold`), then answers a scripted error (`status`,
/// `error_200`, with `error_body(status, message)` in the provider's shape) or a malformed
/// body; otherwise hands the directives back for [`answer`] (which does the faults of the
/// body itself). Every misbehaviour but the redirects and waits counts towards `times`.
pub(crate) async fn run(
    state: &State,
    call: &Call<'_>,
    text: &str,
    error_body: &(dyn Fn(u16, &str) -> Value + Sync),
) -> Result<Directives, Reply> {
    let mut script = directives(text);
    if let Some(redirect) = redirect(state, call, &script) {
        return Err(redirect);
    }
    if let Some(ms) = script.sleep_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(count) = script.hold {
        let mut peak = state.peak_in_flight.subscribe();
        // At the limit the request is answered anyway (the test then sees the peak).
        let _ = tokio::time::timeout(HOLD_LIMIT, peak.wait_for(|peak| *peak >= count)).await;
    }
    if script.faulty() {
        let attempt = {
            let mut attempts = locked(&state.attempts);
            let count = attempts.entry(text.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        if script.times.is_some_and(|times| attempt > times) {
            script.behave();
        }
    }
    if let Some(status) = script.status {
        let body = error_body(status, &failure_message(status));
        return Err(scripted_error(status, &script, &body));
    }
    if script.error_200 {
        return Err(reply_json(200, &error_body(500, ERROR_200_MESSAGE)));
    }
    if script.malformed {
        return Err(crate::reply(200, "{\"choices\": [ not json".into()));
    }
    Ok(script)
}

/// The value of query parameter `name`.
fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// The 307 (or `redirect_status`) the redirect directives ask for at this address, if any:
/// to `mock_hop=<n+1>` until `redirects` hops were made, or back and forth between the
/// address with and without `mock_loop=1`.
fn redirect(state: &State, call: &Call<'_>, script: &Directives) -> Option<Reply> {
    let kept: Vec<&str> = call
        .query
        .split('&')
        .filter(|pair| {
            !pair.is_empty() && !pair.starts_with(&format!("{HOP}=")) && !pair.starts_with(LOOP)
        })
        .collect();
    let extra = if script.redirect_loop {
        if query_value(call.query, LOOP).is_some() {
            None
        } else {
            Some(format!("{LOOP}=1"))
        }
    } else {
        let wanted = script.redirects?;
        let hop: u32 = query_value(call.query, HOP)
            .and_then(|hop| hop.parse().ok())
            .unwrap_or(0);
        if hop >= wanted {
            return None;
        }
        Some(format!("{HOP}={}", hop + 1))
    };
    let query: Vec<String> = kept
        .iter()
        .map(|pair| (*pair).to_owned())
        .chain(extra)
        .collect();
    let authority = call.header("host").unwrap_or("127.0.0.1");
    let authority = match (&script.redirect_host, authority.rsplit_once(':')) {
        (Some(host), Some((_, port))) => format!("{host}:{port}"),
        (Some(host), None) => host.clone(),
        (None, _) => authority.to_owned(),
    };
    let scheme = if state.tls { "https" } else { "http" };
    let mut location = format!("{scheme}://{authority}{}", call.path);
    if !query.is_empty() {
        location.push('?');
        location.push_str(&query.join("&"));
    }
    let status = script.redirect_status.unwrap_or(307);
    let mut response = crate::reply(status, String::new());
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    Some(response)
}

/// The answer to a generation request, misbehaving as the directives say: cut in half
/// (`truncated`), with bytes that are not UTF-8 (`invalid_utf8`), cut short by a closed
/// connection (`reset_mid_body`), sent slowly (`trickle_ms`), or replaced by a huge body
/// (`huge_mb`).
pub(crate) fn answer(script: &Directives, payload: &impl Serialize) -> Reply {
    let mut reply = answer_body(script, payload);
    if script.close {
        reply
            .headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    reply
}

fn answer_body(script: &Directives, payload: &impl Serialize) -> Reply {
    if let Some(megabytes) = script.huge_mb {
        return huge(megabytes, script.content_length);
    }
    let mut text = match serde_json::to_vec(payload) {
        Ok(text) => text,
        Err(error) => {
            return crate::reply(
                500,
                format!("the mock could not serialize its answer: {error}"),
            );
        }
    };
    if script.truncated {
        text.truncate(text.len() / 2);
    }
    if script.invalid_utf8 {
        // Inside the first string value: `"key":"` then bytes no UTF-8 text has.
        let at = text
            .windows(3)
            .position(|window| window == b"\":\"")
            .map_or(0, |position| position + 3);
        text.splice(at..at, [0xFF, 0xFE, 0xC0]);
    }
    let text = Bytes::from(text);
    if script.reset_mid_body {
        let half = text.slice(..text.len() / 2);
        return streamed(Some(text.len() as u64), move |sender| async move {
            let _ = sender.send(Ok(half)).await;
            // Give the client the first half before the connection goes.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = sender
                .send(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset_mid_body",
                )))
                .await;
        });
    }
    if let Some(ms) = script.trickle_ms {
        return streamed(Some(text.len() as u64), move |sender| async move {
            let mut start = 0;
            while start < text.len() {
                let end = (start + TRICKLE_CHUNK).min(text.len());
                if sender.send(Ok(text.slice(start..end))).await.is_err() {
                    return; // the client went away
                }
                start = end;
                if start < text.len() {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        });
    }
    crate::reply_bytes(200, "application/json", text)
}

/// A 200 of `megabytes` MiB (a completion whose content never ends), produced as it is read.
fn huge(megabytes: u64, announce_length: bool) -> Reply {
    let total = megabytes.saturating_mul(1024 * 1024);
    let head: &[u8] =
        b"{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"";
    let length = announce_length.then_some(total);
    streamed(length, move |sender| async move {
        let filler = Bytes::from(vec![b'x'; HUGE_CHUNK]);
        let mut sent = 0u64;
        let first = Bytes::from_static(head);
        let mut next = Some(first);
        while sent < total {
            let chunk = next.take().unwrap_or_else(|| filler.clone());
            let room = usize::try_from(total - sent).unwrap_or(usize::MAX);
            let chunk = chunk.slice(..chunk.len().min(room));
            sent += chunk.len() as u64;
            if sender.send(Ok(chunk)).await.is_err() {
                return; // the client stopped reading
            }
        }
    })
}

/// A 200 JSON answer whose body `produce` sends through a channel, from its own task.
fn streamed<F, Fut>(length: Option<u64>, produce: F) -> Reply
where
    F: FnOnce(tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (body, sender) = ChannelBody::new(length);
    tokio::spawn(produce(sender));
    let mut response = hyper::Response::new(http_body_util::BodyExt::boxed(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
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
        let d = directives(
            "[[reset_mid_body trickle_ms=5 huge_mb=3 content_length invalid_utf8 error_200 redirect_loop redirects=2 redirect_status=301 redirect_host=localhost]]",
        );
        assert!(d.reset_mid_body && d.content_length && d.invalid_utf8 && d.error_200);
        assert!(d.redirect_loop);
        assert_eq!(
            (d.trickle_ms, d.huge_mb, d.redirects),
            (Some(5), Some(3), Some(2))
        );
        assert_eq!(d.redirect_status, Some(301));
        assert_eq!(d.redirect_host.as_deref(), Some("localhost"));
    }

    #[test]
    fn query_values() {
        assert_eq!(query_value("a=1&mock_hop=2", HOP), Some("2"));
        assert_eq!(query_value("", HOP), None);
    }
}
