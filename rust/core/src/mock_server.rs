//! A local OpenAI-compatible server for tests, benchmarks and `--mock` runs.
//!
//! It answers `/chat/completions` with `echo: <last message>` (one choice per `n`, with
//! logprobs when asked) and `/completions` with ` echo: <prompt>`. A directive in the text,
//! `[[key=value ...]]`, scripts misbehaviour for that text:
//!
//! - `status=429 times=2`: the first 2 attempts with this text get status 429 (`times`
//!   defaults to every attempt); `retry_after=0.5`, `retry_after_ms=250` and
//!   `ratelimit_reset=1s` add the matching headers;
//! - `sleep_ms=200`: wait before answering;
//! - `malformed`: a 200 whose body is not JSON; `truncated`: a 200 whose JSON is cut short;
//! - `content=...`: answer this content instead of the echo.
//!
//! It also serves the Files and Batches endpoints: uploaded JSONL files run as batch jobs
//! that advance one state per `retrieve` (validating, in_progress, finalizing, then
//! completed). In a batch, `[[status=...]]` rows fail (error file) and `[[expire]]` rows
//! (`times` defaults to 1) are left undone, making the job `expired`; a `[[reject_batch]]`
//! row makes the whole job `failed`.
//!
//! It counts requests and the most it saw in flight at once, and can record bodies.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub path: String,
    pub body: String,
    pub authorization: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    attempts: Mutex<HashMap<String, u32>>,
    recorded: Mutex<Option<Vec<RecordedRequest>>>,
    files: Mutex<HashMap<String, Bytes>>,
    batches: Mutex<HashMap<String, MockBatch>>,
    next_id: AtomicUsize,
}

#[derive(Debug, Clone)]
struct MockBatch {
    id: String,
    input_file_id: String,
    metadata: Value,
    /// Retrieves so far: each one advances the status.
    step: u32,
    cancel_requested: bool,
    status: &'static str,
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    counts: (usize, usize, usize),
}

impl MockBatch {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "metadata": self.metadata,
            "request_counts": {"total": self.counts.0, "completed": self.counts.1, "failed": self.counts.2},
        })
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running server; it stops when dropped or on [`MockServer::stop`].
#[derive(Debug)]
pub struct MockServer {
    address: SocketAddr,
    tls: bool,
    state: Arc<State>,
    stop: watch::Sender<bool>,
}

impl MockServer {
    /// Binds 127.0.0.1 on a free port and serves plain HTTP on the current tokio runtime.
    pub async fn start(record: bool) -> std::io::Result<Self> {
        Self::start_with_tls(record, None).await
    }

    /// Like [`MockServer::start`], serving HTTPS with `(certificate chain PEM, key PEM)`.
    pub async fn start_with_tls(
        record: bool,
        tls: Option<(&[u8], &[u8])>,
    ) -> std::io::Result<Self> {
        let acceptor = tls
            .map(|(chain, key)| tls_acceptor(chain, key))
            .transpose()?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let state = Arc::new(State::default());
        if record {
            *locked(&state.recorded) = Some(Vec::new());
        }
        let (stop, mut stopped) = watch::channel(false);
        let server_state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stopped.changed() => return,
                };
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&server_state);
                let stopped = stopped.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => serve(stream, state, stopped).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, state, stopped).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(Self {
            address,
            tls: tls.is_some(),
            state,
            stop,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// The most requests that were being answered at once.
    pub fn peak_in_flight(&self) -> usize {
        self.state.peak_in_flight.load(Ordering::Relaxed)
    }

    /// Ids of the batches created so far, oldest first.
    pub fn batch_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = locked(&self.state.batches).keys().cloned().collect();
        ids.sort_by_key(|id| id.rsplit('_').next().and_then(|n| n.parse::<usize>().ok()));
        ids
    }

    /// The recorded requests (empty unless started with `record`).
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        locked(&self.state.recorded).clone().unwrap_or_default()
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve<S>(stream: S, state: Arc<State>, mut stopped: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| handle(Arc::clone(&state), request));
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = stopped.changed() => {}
    }
}

fn tls_acceptor(chain: &[u8], key: &[u8]) -> std::io::Result<TlsAcceptor> {
    let invalid = |e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    };
    let certificates = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| invalid(&e))?;
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|e| invalid(&e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[derive(Debug, Default, PartialEq)]
struct Directives {
    status: Option<u16>,
    times: Option<u32>,
    retry_after: Option<String>,
    retry_after_ms: Option<String>,
    ratelimit_reset: Option<String>,
    sleep_ms: Option<u64>,
    malformed: bool,
    truncated: bool,
    expire: bool,
    content: Option<String>,
}

fn directives(text: &str) -> Directives {
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
            "malformed" => found.malformed = true,
            "truncated" => found.truncated = true,
            "expire" => found.expire = true,
            "content" => found.content = Some(value.replace('_', " ")),
            _ => {}
        }
    }
    found
}

/// The text the directives are read from: the last message's content, or the prompt.
fn text_of(body: &Value) -> String {
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

struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn enter(state: &'a State) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        state.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        Self(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _in_flight = InFlight::enter(&state);
    state.requests.fetch_add(1, Ordering::Relaxed);
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let raw = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "unreadable body".into())),
    };
    if let Some(recorded) = locked(&state.recorded).as_mut() {
        recorded.push(RecordedRequest {
            path: path.clone(),
            body: String::from_utf8_lossy(&raw).into_owned(),
            authorization,
        });
    }
    if let Some(answer) = batch_endpoints(&state, &method, &path, &content_type, &raw) {
        return Ok(answer);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&raw) else {
        let error =
            json!({"error": {"message": "We could not parse the JSON body of your request."}});
        return Ok(reply(StatusCode::BAD_REQUEST, error.to_string()));
    };
    let text = text_of(&body);
    let script = directives(&text);
    if let Some(ms) = script.sleep_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(status) = script.status {
        let attempt = {
            let mut attempts = locked(&state.attempts);
            let count = attempts.entry(text.clone()).or_insert(0);
            *count += 1;
            *count
        };
        if script.times.is_none_or(|times| attempt <= times) {
            return Ok(scripted_error(status, &script));
        }
    }
    if script.malformed {
        return Ok(reply(StatusCode::OK, "{\"choices\": [ not json".into()));
    }
    let answer = if path.ends_with("/chat/completions") {
        chat_completion(&body, &text, script.content.as_deref())
    } else if path.ends_with("/completions") {
        text_completion(&body, &text, script.content.as_deref())
    } else {
        let error = json!({"error": {"message": format!("Unknown path {path}")}});
        return Ok(reply(StatusCode::NOT_FOUND, error.to_string()));
    };
    let mut payload = answer.to_string();
    if script.truncated {
        payload.truncate(payload.len() / 2);
    }
    Ok(reply(StatusCode::OK, payload))
}

fn new_id(state: &State, prefix: &str) -> String {
    format!("{prefix}_{}", state.next_id.fetch_add(1, Ordering::Relaxed))
}

/// The Files and Batches endpoints; `None` for any other path.
fn batch_endpoints(
    state: &State,
    method: &hyper::Method,
    path: &str,
    content_type: &str,
    raw: &Bytes,
) -> Option<Response<Full<Bytes>>> {
    let rest = path.strip_prefix("/v1/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let not_found = || {
        let error = json!({"error": {"message": format!("No such object: {path}")}});
        reply(StatusCode::NOT_FOUND, error.to_string())
    };
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["files"]) => {
            let Some((name, content)) = multipart_file(content_type, raw) else {
                return Some(reply(
                    StatusCode::BAD_REQUEST,
                    r#"{"error":{"message":"no file part"}}"#.into(),
                ));
            };
            let id = new_id(state, "file");
            let size = content.len();
            locked(&state.files).insert(id.clone(), content);
            let file = json!({"id": id, "object": "file", "bytes": size, "filename": name, "purpose": "batch"});
            Some(reply(StatusCode::OK, file.to_string()))
        }
        ("GET", ["files", id, "content"]) => Some(match locked(&state.files).get(*id) {
            Some(content) => {
                let mut response = Response::new(Full::new(content.clone()));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/jsonl"),
                );
                response
            }
            None => not_found(),
        }),
        ("POST", ["batches"]) => {
            let request: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
            let input_file_id = request
                .get("input_file_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let rows = locked(&state.files)
                .get(&input_file_id)
                .map(|content| jsonl_lines(content).count());
            let Some(rows) = rows else {
                return Some(not_found());
            };
            let batch = MockBatch {
                id: new_id(state, "batch"),
                input_file_id,
                metadata: request.get("metadata").cloned().unwrap_or(Value::Null),
                step: 0,
                cancel_requested: false,
                status: "validating",
                output_file_id: None,
                error_file_id: None,
                counts: (rows, 0, 0),
            };
            let answer = batch.to_json().to_string();
            locked(&state.batches).insert(batch.id.clone(), batch);
            Some(reply(StatusCode::OK, answer))
        }
        ("GET", ["batches", id]) => {
            let mut batch = locked(&state.batches).get(*id).cloned()?;
            advance(state, &mut batch);
            let answer = batch.to_json().to_string();
            locked(&state.batches).insert(batch.id.clone(), batch);
            Some(reply(StatusCode::OK, answer))
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
            Some(reply(StatusCode::OK, batch.to_json().to_string()))
        }
        ("POST" | "GET", ["files" | "batches", ..]) => Some(not_found()),
        _ => None,
    }
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
        let answer = chat_completion(&body, &text, script.content.as_deref());
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

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn scripted_error(status: u16, script: &Directives) -> Response<Full<Bytes>> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error = json!({"error": {"message": format!("Scripted failure with status {status}"), "type": "mock"}});
    let mut response = reply(code, error.to_string());
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

fn count_tokens(text: &str) -> usize {
    text.split_whitespace().count().max(1)
}

fn chat_completion(body: &Value, text: &str, content: Option<&str>) -> Value {
    let n = body.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
    let answer = content.map_or_else(|| format!("echo: {text}"), str::to_owned);
    let logprobs = body
        .get("logprobs")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let top = body
        .get("top_logprobs")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    let choices: Vec<Value> = (0..n)
        .map(|index| {
            let positions: Vec<Value> = answer
                .split_whitespace()
                .map(|token| {
                    let alternatives: Vec<Value> = (0..top)
                        .map(|rank| json!({"token": if rank == 0 { token.to_owned() } else { format!("alt{rank}") }, "logprob": -0.5 * rank as f64 - 0.1, "bytes": null}))
                        .collect();
                    json!({"token": token, "logprob": -0.1, "bytes": null, "top_logprobs": alternatives})
                })
                .collect();
            json!({
                "index": index,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
                "logprobs": if logprobs { json!({"content": positions}) } else { Value::Null },
            })
        })
        .collect();
    let prompt_tokens = count_tokens(
        &body
            .get("messages")
            .map(Value::to_string)
            .unwrap_or_default(),
    );
    let completion_tokens = count_tokens(&answer) * usize::try_from(n).unwrap_or(1);
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })
}

fn text_completion(body: &Value, text: &str, content: Option<&str>) -> Value {
    let n = body.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
    let answer = content.map_or_else(|| format!(" echo: {text}"), str::to_owned);
    let top = body.get("logprobs").and_then(Value::as_u64);
    let choices: Vec<Value> = (0..n)
        .map(|index| {
            let logprobs = top.map_or(Value::Null, |top| {
                let positions: Vec<Value> = answer
                    .split_whitespace()
                    .map(|token| {
                        let mut alternatives = serde_json::Map::new();
                        alternatives.insert(token.to_owned(), json!(-0.1));
                        for rank in 1..top {
                            alternatives.insert(format!("alt{rank}"), json!(-0.5 * rank as f64 - 0.1));
                        }
                        Value::Object(alternatives)
                    })
                    .collect();
                json!({"tokens": [], "token_logprobs": [], "top_logprobs": positions, "text_offset": []})
            });
            json!({"index": index, "text": answer, "finish_reason": "stop", "logprobs": logprobs})
        })
        .collect();
    let prompt_tokens = count_tokens(text);
    let completion_tokens = count_tokens(&answer) * usize::try_from(n).unwrap_or(1);
    json!({
        "id": "cmpl-mock",
        "object": "text_completion",
        "created": 0,
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })
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
