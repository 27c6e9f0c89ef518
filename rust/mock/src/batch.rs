//! OpenAI-format Files and Batches endpoints (OpenAI, Groq, Azure), under any prefix
//! (`/v1`, `/openai/v1`, `/openai`). Uploaded JSONL files run as batch jobs that advance one
//! state per `retrieve` (validating, in_progress, finalizing, then completed). In a batch,
//! `[[status=...]]` rows fail (error file) and `[[expire]]` rows (`times` defaults to 1) are
//! left undone, making the job `expired`; a `[[reject_batch]]` row makes the whole job
//! `failed`. An uploaded file is `pending` on its first retrieve, then `processed` (Azure
//! makes clients wait for that).
//!
//! Files and batches are listed newest first (`GET files?purpose=&limit=&after=`, `GET
//! batches?limit=&after=`, with `has_more` and `last_id`), and files can be deleted, as the
//! APIs do; batches echo their metadata. For tests of interrupted submissions, a
//! `[[slow_create=MS]]` row makes the first create of its file record the batch and then
//! wait MS milliseconds before answering (the client can be killed while it waits, with the
//! job already created); a `[[refuse_create]]` row makes every create over its file a 400.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::directives::{directives, text_of};
use crate::openai::chat_completion;
use crate::{Call, Reply, State, locked, reply, reply_json};

/// An uploaded file, as the mock keeps it (beside its content in `State::files`).
#[derive(Debug, Clone)]
pub(crate) struct FileInfo {
    number: usize,
    filename: String,
    purpose: String,
    created_at: u64,
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `?a=1&b=2` as a map.
fn query_map(query: &str) -> HashMap<&str, &str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect()
}

/// One page of `items` (newest first) after the `after` id, at most `limit` long.
fn page(items: Vec<(String, Value)>, query: &str, default_limit: usize) -> Value {
    let parameters = query_map(query);
    let limit = parameters
        .get("limit")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(default_limit)
        .max(1);
    let start = parameters
        .get("after")
        .and_then(|after| items.iter().position(|(id, _)| id == after))
        .map_or(0, |position| position + 1);
    let rest = &items[start.min(items.len())..];
    let shown: Vec<&(String, Value)> = rest.iter().take(limit).collect();
    json!({
        "object": "list",
        "data": shown.iter().map(|(_, item)| item.clone()).collect::<Vec<_>>(),
        "first_id": shown.first().map(|(id, _)| id.clone()),
        "last_id": shown.last().map(|(id, _)| id.clone()),
        "has_more": rest.len() > shown.len(),
    })
}

/// The number in an id like `batch_12`.
fn number_of(id: &str) -> usize {
    id.rsplit('_')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub(crate) struct MockBatch {
    id: String,
    input_file_id: String,
    endpoint: Value,
    metadata: Value,
    /// Retrieves so far: each one advances the status.
    step: u32,
    cancel_requested: bool,
    status: &'static str,
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    counts: (usize, usize, usize),
    created_at: u64,
}

impl MockBatch {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "request_counts": {"total": self.counts.0, "completed": self.counts.1, "failed": self.counts.2},
        })
    }
}

fn new_id(state: &State, prefix: &str) -> String {
    format!("{prefix}_{}", state.next_id.fetch_add(1, Ordering::Relaxed))
}

/// The Files and Batches endpoints; `None` for any other path.
pub(crate) async fn route(state: &State, call: &Call<'_>) -> Option<Reply> {
    let path = call.path;
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = segments
        .iter()
        .position(|segment| matches!(*segment, "files" | "batches"))?;
    let prefix = &segments[..start];
    if !matches!(prefix, ["v1"] | ["openai", "v1"] | ["openai"]) {
        return None;
    }
    let parts = &segments[start..];
    let raw = call.body;
    let not_found = || {
        let error = json!({"error": {"message": format!("No such object: {path}")}});
        reply_json(404, &error)
    };
    match (call.method, parts) {
        ("POST", ["files"]) => {
            let Some((name, content)) = multipart_file(call.content_type(), raw) else {
                return Some(reply(400, r#"{"error":{"message":"no file part"}}"#.into()));
            };
            let id = new_id(state, "file");
            let size = content.len();
            let info = FileInfo {
                number: number_of(&id),
                filename: name.clone(),
                purpose: "batch".into(),
                created_at: unix_seconds(),
            };
            locked(&state.files).insert(id.clone(), content);
            locked(&state.file_infos).insert(id.clone(), info.clone());
            let file = json!({"id": id, "object": "file", "bytes": size, "filename": name,
                              "purpose": "batch", "status": "uploaded",
                              "created_at": info.created_at});
            Some(reply_json(200, &file))
        }
        ("GET", ["files"]) => {
            let purpose = query_map(call.query)
                .get("purpose")
                .map(|p| (*p).to_owned());
            let infos = locked(&state.file_infos).clone();
            let files = locked(&state.files);
            let mut listed: Vec<(usize, String, Value)> = infos
                .into_iter()
                .filter(|(_, info)| purpose.as_ref().is_none_or(|p| *p == info.purpose))
                .filter_map(|(id, info)| {
                    let size = files.get(&id)?.len();
                    let file = json!({"id": id, "object": "file", "bytes": size,
                        "filename": info.filename, "purpose": info.purpose,
                        "created_at": info.created_at, "status": "processed"});
                    Some((info.number, id, file))
                })
                .collect();
            listed.sort_by_key(|(number, _, _)| std::cmp::Reverse(*number));
            let items = listed.into_iter().map(|(_, id, file)| (id, file)).collect();
            Some(reply_json(200, &page(items, call.query, 10_000)))
        }
        ("DELETE", ["files", id]) => {
            let removed = locked(&state.files).remove(*id);
            locked(&state.file_infos).remove(*id);
            Some(match removed {
                Some(_) => reply_json(200, &json!({"id": id, "object": "file", "deleted": true})),
                None => not_found(),
            })
        }
        ("GET", ["batches"]) => {
            let mut batches: Vec<(usize, String, Value)> = locked(&state.batches)
                .values()
                .map(|batch| (number_of(&batch.id), batch.id.clone(), batch.to_json()))
                .collect();
            batches.sort_by_key(|(number, _, _)| std::cmp::Reverse(*number));
            let items = batches
                .into_iter()
                .map(|(_, id, batch)| (id, batch))
                .collect();
            Some(reply_json(200, &page(items, call.query, 20)))
        }
        ("GET", ["files", id]) => {
            let size = locked(&state.files).get(*id).map(Bytes::len)?;
            let retrieves = {
                let mut attempts = locked(&state.attempts);
                let count = attempts.entry(format!("file:{id}")).or_insert(0);
                *count += 1;
                *count
            };
            let status = if retrieves == 1 {
                "pending"
            } else {
                "processed"
            };
            let file = json!({"id": id, "object": "file", "bytes": size, "purpose": "batch",
                              "status": status});
            Some(reply_json(200, &file))
        }
        ("GET", ["files", id, "content"]) => Some(match locked(&state.files).get(*id) {
            Some(content) => crate::reply_bytes(200, "application/jsonl", content.clone()),
            None => not_found(),
        }),
        ("POST", ["batches"]) => {
            let request: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
            let input_file_id = request
                .get("input_file_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let content = locked(&state.files).get(&input_file_id).cloned();
            let Some(content) = content else {
                return Some(not_found());
            };
            if find(&content, b"refuse_create").is_some() {
                let error = json!({"error": {"message": "Scripted refusal of the batch."}});
                return Some(reply_json(400, &error));
            }
            let rows = jsonl_lines(&content).count();
            let slow = slow_create(state, &content);
            let batch = MockBatch {
                id: new_id(state, "batch"),
                input_file_id,
                endpoint: request.get("endpoint").cloned().unwrap_or(Value::Null),
                metadata: request.get("metadata").cloned().unwrap_or(Value::Null),
                step: 0,
                cancel_requested: false,
                status: "validating",
                output_file_id: None,
                error_file_id: None,
                counts: (rows, 0, 0),
                created_at: unix_seconds(),
            };
            let answer = batch.to_json();
            locked(&state.batches).insert(batch.id.clone(), batch);
            if let Some(delay) = slow {
                tokio::time::sleep(delay).await;
            }
            Some(reply_json(200, &answer))
        }
        ("GET", ["batches", id]) => {
            let mut batch = locked(&state.batches).get(*id).cloned()?;
            advance(state, &mut batch);
            let answer = batch.to_json();
            locked(&state.batches).insert(batch.id.clone(), batch);
            Some(reply_json(200, &answer))
        }
        ("POST", ["batches", id, "cancel"]) => {
            let mut batches = locked(&state.batches);
            let batch = batches.get_mut(*id)?;
            if !matches!(
                batch.status,
                "completed" | "expired" | "failed" | "cancelled"
            ) {
                batch.cancel_requested = true;
                batch.status = "cancelling";
            }
            Some(reply_json(200, &batch.to_json()))
        }
        ("POST" | "GET" | "DELETE", ["files" | "batches", ..]) => Some(not_found()),
        _ => None,
    }
}

/// `[[slow_create=MS]]` in a row of the file: the first create over such content answers
/// after MS ms (a create over the same content uploaded again answers at once).
fn slow_create(state: &State, content: &[u8]) -> Option<Duration> {
    let start = find(content, b"slow_create=")? + b"slow_create=".len();
    let digits: String = content[start..]
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .map(|byte| char::from(*byte))
        .collect();
    let millis: u64 = digits.parse().ok()?;
    let mut attempts = locked(&state.attempts);
    let digest = content
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let count = attempts
        .entry(format!("slow_create:{digest:x}"))
        .or_insert(0);
    *count += 1;
    (*count == 1).then(|| Duration::from_millis(millis))
}

fn jsonl_lines(content: &[u8]) -> impl Iterator<Item = &[u8]> {
    content
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
}

/// One more status step: validating -> in_progress -> finalizing -> done, where the rows
/// are answered (a cancelled job answers none).
fn advance(state: &State, batch: &mut MockBatch) {
    if matches!(
        batch.status,
        "completed" | "expired" | "failed" | "cancelled"
    ) {
        return;
    }
    batch.step += 1;
    if batch.cancel_requested {
        let (output, errors, _) = run_rows(state, batch, true);
        finish(state, batch, "cancelled", output, errors);
        return;
    }
    batch.status = match batch.step {
        1 => "in_progress",
        2 if batch_rejected(state, batch) => {
            finish(state, batch, "failed", Vec::new(), Vec::new());
            return;
        }
        2 => "finalizing",
        _ => {
            let (output, errors, expired) = run_rows(state, batch, false);
            finish(
                state,
                batch,
                if expired { "expired" } else { "completed" },
                output,
                errors,
            );
            return;
        }
    };
}

/// A job with a `[[reject_batch]]` row fails validation as a whole (no output at all).
fn batch_rejected(state: &State, batch: &MockBatch) -> bool {
    let content = locked(&state.files)
        .get(&batch.input_file_id)
        .cloned()
        .unwrap_or_default();
    jsonl_lines(&content).any(|line| find(line, b"[[reject_batch]]").is_some())
}

fn finish(
    state: &State,
    batch: &mut MockBatch,
    status: &'static str,
    output: Vec<u8>,
    errors: Vec<u8>,
) {
    batch.status = status;
    let mut files = locked(&state.files);
    for (content, slot) in [
        (output, &mut batch.output_file_id),
        (errors, &mut batch.error_file_id),
    ] {
        if !content.is_empty() {
            let id = new_id(state, "file");
            files.insert(id.clone(), Bytes::from(content));
            *slot = Some(id);
        }
    }
}

/// Answers the rows of a job: `(output file, error file, whether a row was left undone)`.
fn run_rows(state: &State, batch: &mut MockBatch, cancelled: bool) -> (Vec<u8>, Vec<u8>, bool) {
    let content = locked(&state.files)
        .get(&batch.input_file_id)
        .cloned()
        .unwrap_or_default();
    let (mut output, mut errors, mut undone) = (Vec::new(), Vec::new(), false);
    let (mut completed, mut failed) = (0, 0);
    for line in jsonl_lines(&content) {
        let Ok(row) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let custom_id = row.get("custom_id").cloned().unwrap_or(Value::Null);
        let body = row.get("body").cloned().unwrap_or(Value::Null);
        let text = text_of(&body);
        let script = directives(&text);
        let expires = script.expire && {
            let mut attempts = locked(&state.attempts);
            let count = attempts.entry(format!("expire:{text}")).or_insert(0);
            *count += 1;
            *count <= script.times.unwrap_or(1)
        };
        if cancelled || expires {
            undone = true;
            let code = if cancelled {
                "batch_cancelled"
            } else {
                "batch_expired"
            };
            let entry = json!({"custom_id": custom_id, "response": null,
                "error": {"code": code, "message": "This request was not executed."}});
            errors.extend_from_slice(entry.to_string().as_bytes());
            errors.push(b'\n');
            continue;
        }
        if let Some(status) = script.status {
            failed += 1;
            let entry = json!({"custom_id": custom_id, "response": {"status_code": status,
                "body": {"error": {"message": format!("Scripted failure with status {status}")}}}, "error": null});
            errors.extend_from_slice(entry.to_string().as_bytes());
            errors.push(b'\n');
            continue;
        }
        completed += 1;
        let answer = chat_completion(&body, &text, script.content.as_deref(), "stop");
        let entry = json!({"custom_id": custom_id, "response": {"status_code": 200, "body": answer}, "error": null});
        output.extend_from_slice(entry.to_string().as_bytes());
        output.push(b'\n');
    }
    batch.counts = (batch.counts.0, completed, failed);
    (output, errors, undone)
}

/// The name and content of the `file` part of a multipart form.
fn multipart_file(content_type: &str, raw: &Bytes) -> Option<(String, Bytes)> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = raw.as_ref();
    let mut start = 0;
    while let Some(found) = find(&text[start..], delimiter.as_bytes()) {
        let part_start = start + found + delimiter.len();
        let next = find(&text[part_start..], delimiter.as_bytes())?;
        let part = &text[part_start..part_start + next];
        start = part_start;
        let header_end = find(part, b"\r\n\r\n")?;
        let headers = String::from_utf8_lossy(&part[..header_end]);
        if headers.contains("name=\"file\"") {
            let name = headers
                .split("filename=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("file")
                .to_owned();
            let body = &part[header_end + 4..];
            let body = body.strip_suffix(b"\r\n").unwrap_or(body);
            return Some((name, Bytes::copy_from_slice(body)));
        }
    }
    None
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
