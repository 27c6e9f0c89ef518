//! Generation requests to a plain-`http://` server over HTTP/1.1 connections of our own
//! (hyper's `client::conn`), kept in a small pool of idle connections.
//!
//! Why: on a local server (vLLM, TGI, Ollama, llama.cpp, the mock) the client's CPU per
//! request is the bottleneck, and most of it was reqwest's per-request machinery around
//! hyper — pool checkout keyed by URL, the redirect layer, tower services, request builders —
//! not HTTP. The same requests over hyper connections cost about 35% less CPU
//! (measured against the mock: 50–57 µs per request through reqwest, 33–35 µs through
//! `client::conn`, 64 in flight, two tokio workers).
//!
//! What stays with reqwest: TLS (`https://`), proxies (any `*_proxy` variable set), other
//! calls than generations (files, batches), and a server that redirects (the first 3xx seen
//! here hands the client back to reqwest, whose redirect policy decides). The caller bounds
//! each attempt with its timeout and reads the body with its limits; a connection goes back
//! to the pool only once its response was read to the end.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use reqwest::header::{ACCEPT, HOST, HeaderMap, HeaderValue, USER_AGENT};
use tokio::net::TcpStream;

use super::error::ApiError;

/// The variables of a proxy for `http://` URLs (reqwest honours them; a request that would
/// go through a proxy is left to it).
const PROXY_VARIABLES: [&str; 4] = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

/// Idle connections to one `host:port`, and the headers every request to it carries.
pub(crate) struct Http1Connections {
    host: String,
    port: u16,
    /// `host:port`, as `TcpStream::connect` takes it.
    authority: String,
    headers: HeaderMap,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
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

/// A connection taken from the pool (or opened) for one request.
pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
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
            headers,
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
    /// (headers read, body not yet) and the connection, to give back with [`Self::put_back`]
    /// once the body was read to its end.
    pub(crate) async fn post(
        &self,
        url: &reqwest::Url,
        path_and_query: &hyper::Uri,
        body: Bytes,
    ) -> Result<(hyper::Response<Incoming>, Connection), ApiError> {
        let request = || {
            let mut request = hyper::Request::new(Full::new(body.clone()));
            *request.method_mut() = hyper::Method::POST;
            *request.uri_mut() = path_and_query.clone();
            *request.headers_mut() = self.headers.clone();
            request
        };
        while let Some(mut connection) = self.take_idle() {
            if connection.sender.ready().await.is_err() {
                continue;
            }
            match connection.sender.send_request(request()).await {
                Ok(response) => return Ok((response, connection)),
                // The server closed this idle connection before the request was written:
                // nothing was sent, so another connection may carry it.
                Err(error) if error.is_canceled() => {}
                Err(error) => return Err(send_error(url, &error)),
            }
        }
        let mut connection = self.open(url).await?;
        match connection.sender.send_request(request()).await {
            Ok(response) => Ok((response, connection)),
            Err(error) => Err(send_error(url, &error)),
        }
    }

    /// Keeps a connection whose response was read to its end, for the next request.
    pub(crate) fn put_back(&self, connection: Connection) {
        if connection.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(connection.sender);
        }
    }

    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(Connection { sender });
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
        stream.set_nodelay(true).map_err(|error| {
            ApiError::Connection(format!("error sending request for url ({url}): {error}"))
        })?;
        let (sender, connection) = http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|error| send_error(url, &error))?;
        // The connection's reads and writes run in their own task until either side closes
        // it (the sender dropped, the server gone); its error, if any, reaches the request.
        tokio::spawn(connection);
        Ok(Connection { sender })
    }
}

/// Whether a proxy variable for `http://` URLs is set (the request is left to reqwest).
fn proxy_configured() -> bool {
    PROXY_VARIABLES
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

fn send_error(url: &reqwest::Url, error: &hyper::Error) -> ApiError {
    ApiError::Connection(format!(
        "error sending request for url ({url}): {}",
        super::client::error_chain(error)
    ))
}

/// The next piece of a response body, `None` at its end.
pub(crate) async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, String> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Ok(frame)) => {
                // Trailers carry nothing a completion needs.
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
            Some(Err(error)) => return Err(super::client::error_chain(&error)),
        }
    }
}
