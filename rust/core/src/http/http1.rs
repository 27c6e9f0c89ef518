//! Generation requests to a plain-`http://` server over HTTP/1.1 connections of our own,
//! kept in a small pool of idle connections; the bytes on the wire are `http1_wire`'s.
//!
//! Why: on a local server (vLLM, TGI, Ollama, llama.cpp, the mock) the client's CPU per
//! request is the bottleneck. reqwest's per-request machinery around hyper (pool checkout
//! keyed by URL, the redirect layer, tower services, request builders) cost about a third
//! of it; hyper's own `client::conn` still runs each connection in a task of its own, fed
//! through a channel, with two task wake-ups per request. Here the request's own future
//! writes the request and reads the answer on the socket: one `write` and one `read` per
//! request when the answer comes in one piece.
//!
//! What stays with reqwest: TLS (`https://`), proxies (any `*_proxy` variable set), other
//! calls than generations (files, batches), and a server that redirects (the first 3xx seen
//! here hands the client back to reqwest, whose redirect policy decides). The caller bounds
//! each attempt with its timeout and reads the body with its limits; a connection goes back
//! to the pool only once its response was read to the end with nothing after it.

use std::sync::{Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, HOST, HeaderMap, HeaderValue, USER_AGENT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::ApiError;
use super::http1_wire::{self, ChunkedDecoder, Decoded, Framing, RequestHeaders, ResponseHead};

/// How much room a read gets in the buffer (a completion usually fits whole).
const READ_BYTES: usize = 16 * 1024;
/// The largest request buffer a connection keeps for the next request.
const KEPT_WRITE_BYTES: usize = 64 * 1024;

/// The variables of a proxy for `http://` URLs (reqwest honours them; a request that would
/// go through a proxy is left to it).
const PROXY_VARIABLES: [&str; 4] = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

/// Idle connections to one `host:port`, and the headers every request to it carries.
pub(crate) struct Http1Connections {
    host: String,
    port: u16,
    /// `host:port`, as `TcpStream::connect` takes it.
    authority: String,
    headers: RequestHeaders,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl std::fmt::Debug for Http1Connections {
    // Never prints the headers: they hold the API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Connections")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// One connection to the server, with what was read from it but not yet used.
pub(crate) struct Connection {
    stream: TcpStream,
    read: BytesMut,
    /// The request being written (kept: its allocation serves the next request).
    write: Vec<u8>,
}

impl Http1Connections {
    /// Connections for the server of `base_url` if it is a plain-`http://` URL that no
    /// proxy variable applies to; `headers` are the client's default headers (content type,
    /// authentication, configured ones).
    pub(crate) fn for_base_url(
        base_url: &reqwest::Url,
        mut headers: HeaderMap,
        max_idle: usize,
    ) -> Option<Self> {
        if base_url.scheme() != "http" || proxy_configured() {
            return None;
        }
        let host = base_url.host_str()?;
        let port = base_url.port_or_known_default()?;
        // As reqwest sends it: the port only when it is not the scheme's default.
        let host_header = match base_url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        headers.insert(HOST, HeaderValue::from_str(&host_header).ok()?);
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(concat!(
                "distilabel-rs/",
                env!("CARGO_PKG_VERSION")
            )));
        Some(Self {
            host: host.to_owned(),
            port,
            authority: format!("{host}:{port}"),
            headers: RequestHeaders::new(&headers),
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        })
    }

    /// Whether `url` is on this server (same scheme, host and port as the base URL).
    pub(crate) fn serves(&self, url: &reqwest::Url) -> bool {
        url.scheme() == "http"
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port)
    }

    /// POSTs `body` to `path_and_query` on a pooled or new connection; returns the response
    /// head and its body, whose connection goes back with [`Self::put_back`] once the body
    /// was read to its end.
    pub(crate) async fn post(
        &self,
        url: &reqwest::Url,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(ResponseHead, ResponseBody), ApiError> {
        let mut connection = loop {
            let Some(mut connection) = self.take_idle() else {
                let mut connection = self.open(url).await?;
                connection
                    .send(path_and_query, &self.headers, body)
                    .await
                    .map_err(|error| send_error(url, &error.to_string()))?;
                break connection;
            };
            // A kept connection that the server closed in the meantime cannot take the whole
            // request, so the server cannot have acted on it: another connection carries it.
            if connection
                .send(path_and_query, &self.headers, body)
                .await
                .is_ok()
            {
                break connection;
            }
        };
        let head = loop {
            match http1_wire::take_head(&mut connection.read) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(error) => return Err(send_error(url, &error)),
            }
            match connection.fill().await {
                Ok(0) => {
                    return Err(send_error(
                        url,
                        "connection closed before message completed",
                    ));
                }
                Ok(_) => {}
                Err(error) => return Err(send_error(url, &error.to_string())),
            }
        };
        let state = match head.framing {
            Framing::Empty | Framing::Length(0) => BodyState::Ended,
            Framing::Length(length) => BodyState::Length(length),
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => BodyState::UntilClose,
        };
        let keep_alive = head.keep_alive;
        Ok((
            head,
            ResponseBody {
                connection,
                state,
                keep_alive,
            },
        ))
    }

    /// Keeps the connection of a body read to its end, for the next request (unless the
    /// server said it closes it, or sent more than the response).
    pub(crate) fn put_back(&self, body: ResponseBody) {
        if !body.ended() || !body.keep_alive || !body.connection.read.is_empty() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(body.connection);
        }
    }

    /// An idle connection the server has not closed. A server closes an idle connection
    /// when its keep-alive timeout passes: the end of stream is then waiting to be read,
    /// and the connection is dropped before any request is written on it.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(connection) = idle.pop() {
            let mut probe = [0u8; 1];
            // Nothing to read (the usual case, answered from the readiness the runtime
            // already has, without a system call) is an open connection; an end of stream,
            // an error or unexpected bytes are not.
            if let Err(error) = connection.stream.try_read(&mut probe)
                && error.kind() == std::io::ErrorKind::WouldBlock
            {
                return Some(connection);
            }
        }
        None
    }

    async fn open(&self, url: &reqwest::Url) -> Result<Connection, ApiError> {
        let stream = TcpStream::connect(&self.authority).await.map_err(|error| {
            ApiError::Connection(format!(
                "error sending request for url ({url}): tcp connect error: {error}"
            ))
        })?;
        // Requests are small writes answered at once: no Nagle delay.
        stream
            .set_nodelay(true)
            .map_err(|error| send_error(url, &error.to_string()))?;
        Ok(Connection {
            stream,
            read: BytesMut::with_capacity(READ_BYTES),
            write: Vec::new(),
        })
    }
}

impl Connection {
    async fn send(
        &mut self,
        path_and_query: &str,
        headers: &RequestHeaders,
        body: &[u8],
    ) -> std::io::Result<()> {
        http1_wire::write_post(&mut self.write, path_and_query, headers, body);
        let written = self.stream.write_all(&self.write).await;
        if self.write.capacity() > KEPT_WRITE_BYTES {
            // A large body (images) is not kept for the life of the connection.
            self.write = Vec::new();
        }
        written
    }

    /// Reads what the server sent next into the buffer: the number of bytes, 0 at the end
    /// of the stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        self.read.reserve(READ_BYTES);
        self.stream.read_buf(&mut self.read).await
    }
}

/// Where the reading of a response body is.
enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Ended,
}

/// The body of a response on one of the client's own connections, read piece by piece.
pub(crate) struct ResponseBody {
    connection: Connection,
    state: BodyState,
    keep_alive: bool,
}

impl ResponseBody {
    /// Whether the body was read to its end.
    pub(crate) fn ended(&self) -> bool {
        matches!(self.state, BodyState::Ended)
    }

    /// The next piece of the body, `None` at its end; a connection that breaks (or closes
    /// before the announced length) is an error.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            let buffer = &mut self.connection.read;
            match &mut self.state {
                BodyState::Ended => return Ok(None),
                BodyState::Length(left) if !buffer.is_empty() => {
                    let take = usize::try_from(*left).map_or(buffer.len(), |n| n.min(buffer.len()));
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = BodyState::Ended;
                    }
                    return Ok(Some(buffer.split_to(take).freeze()));
                }
                BodyState::UntilClose if !buffer.is_empty() => {
                    return Ok(Some(buffer.split().freeze()));
                }
                BodyState::Chunked(decoder) => match decoder.decode(buffer)? {
                    Decoded::Data(piece) => return Ok(Some(piece)),
                    Decoded::End => {
                        self.state = BodyState::Ended;
                        return Ok(None);
                    }
                    Decoded::NeedMore => {}
                },
                BodyState::Length(_) | BodyState::UntilClose => {}
            }
            let read = self
                .connection
                .fill()
                .await
                .map_err(|error| error.to_string())?;
            if read == 0 {
                if matches!(self.state, BodyState::UntilClose) {
                    self.state = BodyState::Ended;
                    return Ok(None);
                }
                return Err("connection closed before message completed".to_owned());
            }
        }
    }
}

/// Whether a proxy variable for `http://` URLs is set (the request is left to reqwest).
fn proxy_configured() -> bool {
    PROXY_VARIABLES
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

fn send_error(url: &reqwest::Url, cause: &str) -> ApiError {
    ApiError::Connection(format!("error sending request for url ({url}): {cause}"))
}
