//! Anthropic's Messages API (`POST /v1/messages`) and Message Batches
//! (`/v1/messages/batches`: create, retrieve, list, cancel, delete, results).
//!
//! Requests need `anthropic-version` and a key (`x-api-key` or a bearer token), and are
//! checked as the API checks them (`max_tokens` required, only `user`/`assistant` messages)
//! with Anthropic's error bodies (`{"type": "error", "error": {"type", "message"}}`, the type
//! following the status: 529 is `overloaded_error`). A message answers the echo of the last
//! message's text; with a forced tool (`tool_choice: {"type": "tool"}`) it answers a
//! `tool_use` block whose input is the `content=` directive's JSON. Directives as on every
//! API; `ratelimit_reset=0.5` also sets `anthropic-ratelimit-requests-remaining: 0` and its
//! RFC 3339 `-reset` time that many seconds ahead.
//!
//! A batch is `in_progress` when created and on its first retrieve, and `ended` on the
//! second (`canceling`, then ended with every row canceled, after a cancel). Its rows run
//! when it ends: `[[status=...]]` rows are `errored`, `[[expire]]` rows (`times` defaults to
//! 1 per text) `expired`, invalid params `errored` (invalid_request_error); the results, at
//! the batch's absolute `results_url`, come in no particular order. For tests of interrupted
//! submissions, a request whose text has `[[slow_create=MS]]` makes the first create of its
//! batch record the batch and then wait MS milliseconds before answering.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::HeaderValue;
use serde_json::{Value, json};

use crate::directives::{self, Directives, directives, failure_message};
use crate::openai::count_tokens;
use crate::{Call, Reply, State, locked, reply_bytes, reply_json};

/// The error type Anthropic names for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message},
           "request_id": "req_mock"})
}

fn error_reply(status: u16, message: &str) -> Reply {
    reply_json(status, &error_body(status, message))
}

/// A batch as the mock keeps it.
#[derive(Debug, Clone)]
pub(crate) struct MockMessageBatch {
    id: String,
    number: usize,
    requests: Vec<Value>,
    /// Retrieves so far: the second one ends the batch.
    step: u32,
    status: &'static str,
    created_at: String,
    ended_at: Option<String>,
    cancel_initiated_at: Option<String>,
    /// processing, succeeded, errored, canceled, expired.
    counts: [usize; 5],
    results: Option<Bytes>,
    results_url: String,
}

impl MockMessageBatch {
    fn to_json(&self) -> Value {
        let [processing, succeeded, errored, canceled, expired] = self.counts;
        json!({
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": {"processing": processing, "succeeded": succeeded,
                               "errored": errored, "canceled": canceled, "expired": expired},
            "ended_at": self.ended_at,
            "created_at": self.created_at,
            "expires_at": self.created_at,
            "archived_at": null,
            "cancel_initiated_at": self.cancel_initiated_at,
            "results_url": if self.results.is_some() { json!(self.results_url) } else { Value::Null },
        })
    }
}

/// Answers the request if its path is one of these endpoints.
pub(crate) async fn route(state: &State, call: &Call<'_>) -> Option<Reply> {
    let segments: Vec<&str> = call.path.split('/').filter(|s| !s.is_empty()).collect();
    let start = segments
        .windows(2)
        .position(|pair| pair == ["v1", "messages"])?;
    let prefix = segments[..start].join("/");
    let rest = &segments[start + 2..];
    if let Some(refused) = check_headers(call) {
        return Some(refused);
    }
    let mut reply = match (call.method, rest) {
        ("POST", []) => message(state, call).await,
        ("POST", ["batches"]) => {
            let reply = create_batch(state, call, &prefix);
            if reply.status() == hyper::StatusCode::OK
                && let Some(delay) = slow_create(state, call.body)
            {
                tokio::time::sleep(delay).await;
            }
            reply
        }
        ("GET", ["batches"]) => list_batches(state, call.query),
        ("GET", ["batches", id]) => retrieve_batch(state, id),
        ("POST", ["batches", id, "cancel"]) => cancel_batch(state, id),
        ("DELETE", ["batches", id]) => delete_batch(state, id),
        ("GET", ["batches", id, "results"]) => batch_results(state, id),
        _ => error_reply(404, &format!("Unknown path {}", call.path)),
    };
    reply
        .headers_mut()
        .insert("request-id", HeaderValue::from_static("req_mock"));
    Some(reply)
}

/// The API refuses requests without a version or a key.
fn check_headers(call: &Call<'_>) -> Option<Reply> {
    if call.header("anthropic-version").is_none() {
        return Some(error_reply(400, "anthropic-version: header is required"));
    }
    if call.header("x-api-key").is_none() && call.header("authorization").is_none() {
        return Some(error_reply(401, "x-api-key header is required"));
    }
    None
}

/// The text directives are read from: the last message's text (its text blocks joined).
fn text_of(params: &Value) -> String {
    let last = params
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| messages.last())
        .and_then(|message| message.get("content"));
    match last {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// What the API says of invalid params, if they are.
fn invalid_params(params: &Value) -> Option<String> {
    if !params.is_object() {
        return Some("params: Input should be an object".into());
    }
    if params.get("model").and_then(Value::as_str).is_none() {
        return Some("model: Field required".into());
    }
    if params.get("max_tokens").and_then(Value::as_u64).is_none() {
        return Some("max_tokens: Field required".into());
    }
    let Some(messages) = params.get("messages").and_then(Value::as_array) else {
        return Some("messages: Field required".into());
    };
    for (index, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !matches!(role, "user" | "assistant") {
            return Some(format!(
                "messages.{index}.role: Input should be 'user' or 'assistant' (got {role:?}); \
                 put system prompts in the top-level `system` field"
            ));
        }
    }
    None
}

/// The `message` answering `params`.
fn answer(params: &Value, text: &str, script: &Directives) -> Value {
    let forced_tool = params
        .get("tool_choice")
        .filter(|choice| choice.get("type").and_then(Value::as_str) == Some("tool"))
        .and_then(|choice| choice.get("name"))
        .cloned();
    let (content, stop_reason, output) = match forced_tool {
        Some(name) => {
            let input = script
                .content
                .as_deref()
                .and_then(|content| serde_json::from_str::<Value>(content).ok())
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            let output = count_tokens(&input.to_string());
            let block =
                json!({"type": "tool_use", "id": "toolu_mock", "name": name, "input": input});
            (json!([block]), "tool_use", output)
        }
        None => {
            let answer = script
                .content
                .clone()
                .unwrap_or_else(|| format!("echo: {text}"));
            let output = count_tokens(&answer);
            (
                json!([{"type": "text", "text": answer}]),
                "end_turn",
                output,
            )
        }
    };
    let prompt = format!(
        "{} {}",
        params
            .get("system")
            .map(Value::to_string)
            .unwrap_or_default(),
        params
            .get("messages")
            .map(Value::to_string)
            .unwrap_or_default()
    );
    json!({
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": params.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": count_tokens(&prompt), "output_tokens": output,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    })
}

async fn message(state: &State, call: &Call<'_>) -> Reply {
    let Ok(params) = serde_json::from_slice::<Value>(call.body) else {
        return error_reply(400, "There was an error parsing the body of your request.");
    };
    let text = text_of(&params);
    let script = match directives::run(state, call, &text, &error_body).await {
        Ok(script) => script,
        Err(mut reply) => {
            add_reset_headers(&mut reply, &directives(&text));
            return reply;
        }
    };
    if let Some(message) = invalid_params(&params) {
        return error_reply(400, &message);
    }
    directives::answer(&script, &answer(&params, &text, &script))
}

/// `ratelimit_reset=<seconds>`: the requests limit is used up until then.
fn add_reset_headers(reply: &mut Reply, script: &Directives) {
    let Some(seconds) = script
        .ratelimit_reset
        .as_deref()
        .and_then(|value| value.trim_end_matches('s').parse::<f64>().ok())
    else {
        return;
    };
    let headers = reply.headers_mut();
    headers.insert(
        "anthropic-ratelimit-requests-remaining",
        HeaderValue::from_static("0"),
    );
    if let Ok(reset) = HeaderValue::from_str(&rfc3339(unix_now() + seconds)) {
        headers.insert("anthropic-ratelimit-requests-reset", reset);
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of seconds since the Unix epoch.
pub(crate) fn rfc3339(seconds: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let millis = (seconds * 1000.0).round() as i64;
    let (days, millis_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    // H. Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hour, minute) = (millis_of_day / 3_600_000, millis_of_day / 60_000 % 60);
    let (second, milli) = (millis_of_day / 1000 % 60, millis_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `[[slow_create=MS]]` in a request's text: the first create with that text answers after
/// MS ms.
fn slow_create(state: &State, body: &[u8]) -> Option<std::time::Duration> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let text = body
        .get("requests")?
        .as_array()?
        .iter()
        .map(|request| text_of(request.get("params").unwrap_or(&Value::Null)))
        .find(|text| text.contains("slow_create="))?;
    let start = text.find("slow_create=")? + "slow_create=".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let millis: u64 = digits.parse().ok()?;
    let mut attempts = locked(&state.attempts);
    let count = attempts
        .entry(format!("anthropic-slow-create:{text}"))
        .or_insert(0);
    *count += 1;
    (*count == 1).then(|| std::time::Duration::from_millis(millis))
}

fn create_batch(state: &State, call: &Call<'_>, prefix: &str) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(call.body) else {
        return error_reply(400, "There was an error parsing the body of your request.");
    };
    let Some(requests) = body.get("requests").and_then(Value::as_array) else {
        return error_reply(400, "requests: Field required");
    };
    if requests.is_empty() {
        return error_reply(400, "requests: List should have at least 1 item");
    }
    let mut seen = std::collections::HashSet::new();
    for (index, request) in requests.iter().enumerate() {
        let custom_id = request.get("custom_id").and_then(Value::as_str);
        let Some(custom_id) = custom_id.filter(|id| valid_custom_id(id)) else {
            return error_reply(
                400,
                &format!(
                    "requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                ),
            );
        };
        if !seen.insert(custom_id) {
            return error_reply(
                400,
                &format!("requests.{index}.custom_id: duplicate custom_id {custom_id:?}"),
            );
        }
        match request.get("params") {
            Some(params) if params.get("stream").is_some() => {
                return error_reply(
                    400,
                    &format!("requests.{index}.params.stream: Extra inputs are not permitted"),
                );
            }
            Some(Value::Object(_)) => {}
            _ => return error_reply(400, &format!("requests.{index}.params: Field required")),
        }
    }
    let number = state
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("msgbatch_{number}");
    let scheme = if state.tls { "https" } else { "http" };
    let host = call.header("host").unwrap_or("127.0.0.1");
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    };
    let batch = MockMessageBatch {
        id: id.clone(),
        number,
        requests: requests.clone(),
        step: 0,
        status: "in_progress",
        created_at: rfc3339(unix_now()),
        ended_at: None,
        cancel_initiated_at: None,
        counts: [requests.len(), 0, 0, 0, 0],
        results: None,
        results_url: format!("{scheme}://{host}{prefix}/v1/messages/batches/{id}/results"),
    };
    let answer = batch.to_json();
    locked(&state.message_batches).insert(id, batch);
    reply_json(200, &answer)
}

fn not_found(id: &str) -> Reply {
    error_reply(404, &format!("No message batch with id {id:?}"))
}

fn retrieve_batch(state: &State, id: &str) -> Reply {
    let Some(mut batch) = locked(&state.message_batches).get(id).cloned() else {
        return not_found(id);
    };
    if batch.status != "ended" {
        batch.step += 1;
        let cancel = batch.status == "canceling";
        if cancel || batch.step >= 2 {
            run_rows(state, &mut batch, cancel);
        }
    }
    let answer = batch.to_json();
    locked(&state.message_batches).insert(batch.id.clone(), batch);
    reply_json(200, &answer)
}

fn cancel_batch(state: &State, id: &str) -> Reply {
    let mut batches = locked(&state.message_batches);
    let Some(batch) = batches.get_mut(id) else {
        return not_found(id);
    };
    if batch.status == "in_progress" {
        batch.status = "canceling";
        batch.cancel_initiated_at = Some(rfc3339(unix_now()));
    }
    reply_json(200, &batch.to_json())
}

fn delete_batch(state: &State, id: &str) -> Reply {
    let mut batches = locked(&state.message_batches);
    match batches.get(id).map(|batch| batch.status) {
        None => not_found(id),
        Some("ended") => {
            batches.remove(id);
            reply_json(200, &json!({"id": id, "type": "message_batch_deleted"}))
        }
        Some(_) => error_reply(
            400,
            "Message batches must be ended before they can be deleted; cancel it first.",
        ),
    }
}

fn batch_results(state: &State, id: &str) -> Reply {
    let batches = locked(&state.message_batches);
    let Some(batch) = batches.get(id) else {
        return not_found(id);
    };
    match &batch.results {
        Some(results) => reply_bytes(200, "application/x-jsonl", results.clone()),
        None => error_reply(404, &format!("The results of {id} are not available yet.")),
    }
}

/// `GET /v1/messages/batches?limit&before_id&after_id`: newest first.
fn list_batches(state: &State, query: &str) -> Reply {
    let parameters: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let limit = parameters
        .get("limit")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let mut batches: Vec<MockMessageBatch> =
        locked(&state.message_batches).values().cloned().collect();
    batches.sort_by_key(|batch| std::cmp::Reverse(batch.number));
    let position = |id: &str| batches.iter().position(|batch| batch.id == id);
    let (start, end) = match (parameters.get("after_id"), parameters.get("before_id")) {
        (Some(after), _) => (
            position(after).map_or(batches.len(), |i| i + 1),
            batches.len(),
        ),
        (None, Some(before)) => (0, position(before).unwrap_or(0)),
        (None, None) => (0, batches.len()),
    };
    let page: Vec<&MockMessageBatch> = batches[start..end].iter().take(limit).collect();
    let has_more = end - start > page.len();
    let data: Vec<Value> = page.iter().map(|batch| batch.to_json()).collect();
    reply_json(
        200,
        &json!({"data": data, "has_more": has_more,
                "first_id": page.first().map(|b| b.id.clone()),
                "last_id": page.last().map(|b| b.id.clone())}),
    )
}

/// Ends the batch: every row runs (or, when `canceled`, none does).
fn run_rows(state: &State, batch: &mut MockMessageBatch, canceled: bool) {
    let mut counts = [0usize; 5];
    let mut lines: Vec<(u64, String)> = Vec::with_capacity(batch.requests.len());
    for request in &batch.requests {
        let custom_id = request.get("custom_id").cloned().unwrap_or(Value::Null);
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        let text = text_of(&params);
        let script = directives(&text);
        let expires = script.expire && {
            let mut attempts = locked(&state.attempts);
            let count = attempts
                .entry(format!("anthropic-expire:{text}"))
                .or_insert(0);
            *count += 1;
            *count <= script.times.unwrap_or(1)
        };
        let (slot, result) = if canceled {
            (3, json!({"type": "canceled"}))
        } else if expires {
            (4, json!({"type": "expired"}))
        } else if let Some(status) = script.status {
            let error = error_body(status, &failure_message(status));
            (2, json!({"type": "errored", "error": error}))
        } else if let Some(message) = invalid_params(&params) {
            (
                2,
                json!({"type": "errored", "error": error_body(400, &message)}),
            )
        } else {
            let message = answer(&params, &text, &script);
            (1, json!({"type": "succeeded", "message": message}))
        };
        counts[slot] += 1;
        let line = json!({"custom_id": custom_id, "result": result}).to_string();
        lines.push((fnv1a(custom_id.to_string().as_bytes()), line));
    }
    // The API returns results in no particular order: shuffle them deterministically.
    lines.sort();
    let mut results = String::new();
    for (_, line) in lines {
        results.push_str(&line);
        results.push('\n');
    }
    batch.counts = counts;
    batch.status = "ended";
    batch.ended_at = Some(rfc3339(unix_now()));
    batch.results = Some(Bytes::from(results));
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_564_830.25), "2024-05-01T12:00:30.250Z");
        assert_eq!(rfc3339(1_709_164_800.0), "2024-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(951_868_800.0), "2000-03-01T00:00:00.000Z");
    }

    #[test]
    fn params_are_checked_as_the_api_does() {
        let ok =
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
        assert_eq!(invalid_params(&ok), None);
        let no_max = json!({"model": "m", "messages": []});
        assert_eq!(
            invalid_params(&no_max).as_deref(),
            Some("max_tokens: Field required")
        );
        let system = json!({"model": "m", "max_tokens": 5,
                            "messages": [{"role": "system", "content": "x"}]});
        assert!(invalid_params(&system).is_some_and(|m| m.contains("messages.0.role")));
        assert!(valid_custom_id("0-1_a") && !valid_custom_id("a b") && !valid_custom_id(""));
    }

    #[test]
    fn forced_tools_answer_tool_use() {
        let params = json!({"model": "m", "max_tokens": 5, "messages": [],
            "tools": [{"name": "Person", "input_schema": {}}],
            "tool_choice": {"type": "tool", "name": "Person"}});
        let script = directives(r#"[[content={"name":"Ada"}]]"#);
        let message = answer(&params, "", &script);
        assert_eq!(message["stop_reason"], "tool_use");
        assert_eq!(message["content"][0]["input"], json!({"name": "Ada"}));
    }
}
