//! A local server speaking the LLM APIs distilabel-rs supports, for tests, benchmarks and
//! `distilabel-rs generate --mock`. It binds 127.0.0.1 on a free port.
//!
//! Generation endpoints answer with an echo of the request text (`echo: <last message>`;
//! one choice per `n`, with logprobs when asked). A directive in the text,
//! `[[key=value ...]]`, scripts misbehaviour for that text, on every API:
//!
//! - `status=429 times=2`: the first 2 attempts with this text get status 429 (`times`
//!   defaults to every attempt), with the API's own error body; `retry_after=0.5`,
//!   `retry_after_ms=250` and `ratelimit_reset=1s` add the matching headers;
//! - `sleep_ms=200`: wait before answering;
//! - `hold=N`: wait until N requests are being answered at once (at most 60 s), so that
//!   tests of concurrency do not depend on how fast the machine is;
//! - `malformed`: a 200 whose body is not JSON; `truncated`: a 200 whose JSON is cut short;
//! - `content=...`: answer this content (underscores become spaces) instead of the echo;
//! - bad servers: `reset_mid_body` (announces the whole answer's length, sends half of it,
//!   then closes the connection), `trickle_ms=100` (sends the answer 8 bytes at a time, that
//!   long apart), `huge_mb=64` (a 200 body of that many MiB, streamed without a length;
//!   with `content_length` it announces its length), `invalid_utf8` (the answer with bytes
//!   that are not UTF-8), `error_200` (the API's error body with status 200),
//!   `redirect_loop` (307s back and forth between two addresses), `redirects=3` (307s to
//!   new addresses that many times, then the answer; `redirect_status=301` and
//!   `redirect_host=localhost` change the status and the host redirected to), `close`
//!   (the answer says `Connection: close`, and the connection ends after it).
//!
//! `times=N` applies to every fault: the first N attempts with this text misbehave, later
//! ones are answered normally.
//!
//! One module per API: [`openai`] (chat, completions, models: OpenAI, Azure, Groq,
//! Together, vLLM...; also TGI's Messages API), `tgi` (Text Generation Inference's
//! generate API at `/`, `/tgi`, `/generate`), `batch` (OpenAI-format Files and Batches),
//! `anthropic` (Messages and Message Batches) and `ollama` (`/api/chat`, `/api/generate`).
//! A new API is a module with a `route` function and one line in `route` below.
//!
//! The generation routes of OpenAI (chat), TGI (generate) and Ollama read the common shape of
//! a request into borrowed structs and answer it from typed ones (`Plain*`); every other
//! request is read as a `serde_json::Value`, and each module's tests check that both answer
//! the same bytes. Why: benchmarks run client and server on the same two cores, and the
//! `Value` path cost the server 55–60 µs of CPU per request, as much as the client measured.
//!
//! The server counts requests and the most it saw in flight at once, and can record every
//! request (method, path, query, headers, body).

mod anthropic;
mod batch;
mod capacity;
mod directives;
mod ollama;
pub mod openai;
mod tgi;
mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use capacity::CapacityModel;

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (`""` without one).
    pub query: String,
    /// Every header, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub authorization: Option<String>,
}

#[derive(Debug)]
pub(crate) struct State {
    requests: AtomicUsize,
    /// Connections accepted so far.
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    /// The most requests answered at once so far; `hold=N` waits for it to reach N (it only
    /// grows, so no waiter can miss the moment).
    pub(crate) peak_in_flight: watch::Sender<usize>,
    /// Attempts per request text (for `times=`) and other per-key counters.
    pub(crate) attempts: Mutex<HashMap<String, u32>>,
    recorded: Mutex<Option<Vec<RecordedRequest>>>,
    pub(crate) files: Mutex<HashMap<String, Bytes>>,
    pub(crate) file_infos: Mutex<HashMap<String, batch::FileInfo>>,
    pub(crate) batches: Mutex<HashMap<String, batch::MockBatch>>,
    pub(crate) message_batches: Mutex<HashMap<String, anthropic::MockMessageBatch>>,
    pub(crate) next_id: AtomicUsize,
    /// Serving HTTPS (for the absolute URLs the server hands out).
    pub(crate) tls: bool,
    /// Fixed answers by path (status, content type, body), served before any API.
    canned: Mutex<HashMap<String, (u16, String, Bytes)>>,
    /// A limited capacity for generation requests (benchmarks of concurrency control).
    pub(crate) capacity: Option<capacity::Capacity>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: watch::Sender::new(0),
            attempts: Mutex::default(),
            recorded: Mutex::default(),
            files: Mutex::default(),
            file_infos: Mutex::default(),
            batches: Mutex::default(),
            message_batches: Mutex::default(),
            next_id: AtomicUsize::new(0),
            tls: false,
            canned: Mutex::default(),
            capacity: None,
        }
    }
}

pub(crate) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a route sees of a request.
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

impl Call<'_> {
    pub(crate) fn content_type(&self) -> &str {
        self.header(CONTENT_TYPE.as_str()).unwrap_or_default()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response body: whole, or streamed by a task (slowly, cut short, or large).
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

pub(crate) type Reply = Response<Body>;

/// A body streamed from a channel: each item is a chunk, an error aborts the connection.
/// The channel is small, so a large body is produced only as fast as it is read.
pub(crate) struct ChannelBody {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    length: Option<u64>,
}

impl ChannelBody {
    /// A body of `length` bytes (if given) and the sender of its chunks.
    pub(crate) fn new(
        length: Option<u64>,
    ) -> (Self, tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) {
        let (sender, chunks) = tokio::sync::mpsc::channel(4);
        (Self { chunks, length }, sender)
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        self.length
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// A whole body.
pub(crate) fn full(body: Bytes) -> Body {
    Full::new(body).map_err(|never| match never {}).boxed()
}

/// A response with `body`, served as JSON.
pub(crate) fn reply(status: u16, body: String) -> Reply {
    reply_bytes(status, "application/json", Bytes::from(body))
}

pub(crate) fn reply_json(status: u16, body: &Value) -> Reply {
    reply(status, body.to_string())
}

pub(crate) fn reply_bytes(status: u16, content_type: &'static str, body: Bytes) -> Reply {
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The API a request is for, by path; the first route that answers wins.
async fn route(state: &State, call: &Call<'_>) -> Reply {
    let canned = locked(&state.canned).get(call.path).cloned();
    if let Some((status, content_type, body)) = canned {
        let mut response = reply_bytes(status, "application/json", body);
        if let Ok(value) = HeaderValue::from_str(&content_type) {
            response.headers_mut().insert(CONTENT_TYPE, value);
        }
        return response;
    }
    if let Some(answer) = anthropic::route(state, call).await {
        return answer;
    }
    if let Some(answer) = batch::route(state, call).await {
        return answer;
    }
    if let Some(answer) = openai::route(state, call).await {
        return answer;
    }
    if let Some(answer) = tgi::route(state, call).await {
        return answer;
    }
    if let Some(answer) = ollama::route(state, call).await {
        return answer;
    }
    let error = serde_json::json!({"error": {"message": format!("Unknown path {}", call.path)}});
    reply_json(404, &error)
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
        Self::start_with_options(record, tls, None).await
    }

    /// Like [`MockServer::start_with_tls`]; with `capacity`, generation requests are served
    /// within that capacity model (see [`CapacityModel`]).
    pub async fn start_with_options(
        record: bool,
        tls: Option<(&[u8], &[u8])>,
        capacity: Option<CapacityModel>,
    ) -> std::io::Result<Self> {
        let acceptor = tls
            .map(|(chain, key)| tls::tls_acceptor(chain, key))
            .transpose()?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let state = Arc::new(State {
            tls: tls.is_some(),
            capacity: capacity.map(capacity::Capacity::new),
            ..State::default()
        });
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
                server_state.connections.fetch_add(1, Ordering::Relaxed);
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

    /// `http(s)://127.0.0.1:<port>` (no path).
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// The most requests that were being answered at once.
    pub fn peak_in_flight(&self) -> usize {
        *self.state.peak_in_flight.borrow()
    }

    /// Generation requests refused with 429 by the capacity model so far.
    pub fn rejected(&self) -> usize {
        self.state
            .capacity
            .as_ref()
            .map_or(0, capacity::Capacity::rejected)
    }

    /// Ids of the batches created so far, oldest first.
    pub fn batch_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = locked(&self.state.batches).keys().cloned().collect();
        ids.extend(locked(&self.state.message_batches).keys().cloned());
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

    /// Answers every request for `path` (any method) with this status, content type and
    /// body from now on, before any API route: for tests and fuzzing of what clients make
    /// of arbitrary answers.
    pub fn set_answer(&self, path: &str, status: u16, content_type: &str, body: Bytes) {
        locked(&self.state.canned).insert(path.to_owned(), (status, content_type.to_owned(), body));
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

struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn enter(state: &'a State) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        state.peak_in_flight.send_if_modified(|peak| {
            let higher = now > *peak;
            *peak = (*peak).max(now);
            higher
        });
        Self(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(state: Arc<State>, request: hyper::Request<Incoming>) -> Result<Reply, Infallible> {
    let _in_flight = InFlight::enter(&state);
    state.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(reply(400, "unreadable body".into())),
    };
    let call = Call {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &body,
    };
    if let Some(recorded) = locked(&state.recorded).as_mut() {
        recorded.push(RecordedRequest {
            method: call.method.to_owned(),
            path: call.path.to_owned(),
            query: call.query.to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
            authorization: call.header("authorization").map(str::to_owned),
        });
    }
    if let Some(capacity) = &state.capacity
        && capacity::Capacity::applies_to(&call)
    {
        return Ok(capacity.serve(&call, route(&state, &call)).await);
    }
    Ok(route(&state, &call).await)
}

#[cfg(test)]
pub(crate) mod test_support {
    use http_body_util::BodyExt;

    use super::*;

    /// A POST of `body` to `path`, as a route sees it.
    pub(crate) fn post<'a>(path: &'a str, headers: &'a HeaderMap, body: &'a Bytes) -> Call<'a> {
        Call {
            method: "POST",
            path,
            query: "",
            headers,
            body,
        }
    }

    /// The status and whole body of a reply.
    pub(crate) async fn read(reply: Reply) -> (u16, Bytes) {
        let status = reply.status().as_u16();
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    }
}
