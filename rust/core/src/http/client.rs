//! One HTTP client for any provider: connection pool, TLS roots, timeouts, admission by
//! request and token rate limits, and the one retry loop every call goes through.
//!
//! Bad servers get a clear per-request error, never a hang, a panic or an unbounded buffer
//! (see [`ApiError`] for which are retried):
//! - the timeout bounds each whole attempt, body included (reqwest's per-request timeout
//!   wraps the response body in the same deadline), so a body that trickles in slower than
//!   the timeout is a [`ApiError::Timeout`];
//! - bodies are read chunk by chunk up to a limit ([`ClientConfig::max_response_bytes`] for
//!   generations, [`ClientConfig::max_download_bytes`] for other calls; error bodies up to
//!   [`ERROR_BODY_LIMIT`]): a larger answer is refused as soon as it is known to be larger
//!   (its `Content-Length`, or the bytes read so far);
//! - a connection that breaks in the middle of the body is a [`ApiError::Connection`];
//! - a 2xx generation body must be UTF-8 and must not be an error body (`{"error": ...}`,
//!   reported with the provider's own message);
//! - only 307 and 308 redirects to the same host are followed (none without
//!   [`ClientConfig::follow_redirects`]; they resend the method and
//!   the body; a 301/302/303 would turn a POST into a body-less GET, and another host would
//!   receive the API key), at most [`ClientConfig::max_redirects`] of them and never back to
//!   an address already visited.
//! - a retry waits what the server asked (`retry-after`, rate-limit resets) up to
//!   [`ClientConfig::max_retry_wait`], whatever number it sent.

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::completion::Completion;
use super::error::ApiError;
use super::http1::{self, Http1Connections};
use super::http1_wire;
use super::provider::{Endpoint, Provider};
use super::retry_hint::{hinted_wait, saturating_seconds};
use crate::limits::{CLIENT_DEFAULTS, Jitter, RetryPolicy, TokenBucket};

/// One request to a generation endpoint: its JSON body and the tokens it reserves against
/// the tokens-per-minute limit.
#[derive(Debug, Clone)]
pub struct Request {
    pub endpoint: Endpoint,
    pub body: Bytes,
    pub reserved_tokens: u64,
}

impl Request {
    /// Serializes `body` once and reserves tokens by the provider's one rule.
    pub fn new<P: Provider + ?Sized>(
        provider: &P,
        endpoint: Endpoint,
        body: &Value,
    ) -> Result<Self, ApiError> {
        let reserved_tokens = provider.reserve_tokens(endpoint, body);
        let body = serde_json::to_vec(body)
            .map_err(|e| ApiError::InvalidRequest(format!("the body is not JSON: {e}")))?;
        Ok(Self {
            endpoint,
            body: body.into(),
            reserved_tokens,
        })
    }

    /// A request whose body is already JSON, reserving no tokens: for a client without a
    /// tokens-per-minute limit, where the reservation is never used (it is read only by
    /// that limit), so the body need not be parsed to count its prompt.
    pub fn serialized(endpoint: Endpoint, body: Bytes) -> Self {
        Self {
            endpoint,
            body,
            reserved_tokens: 0,
        }
    }
}

/// The body of a call to another endpoint of the API (files, batches).
#[derive(Debug, Clone)]
pub enum Payload {
    Json(Bytes),
    /// A `multipart/form-data` form (file uploads); rebuilt for each attempt.
    Form(Vec<FormPart>),
}

/// One field of a form: text, or a file when it has a file name.
#[derive(Debug, Clone)]
pub struct FormPart {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub content: Bytes,
}

/// The default [`ClientConfig::max_response_bytes`]: 32 MiB, hundreds of times the largest
/// completion an API returns.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// The default [`ClientConfig::max_download_bytes`]: 4 GiB (batch result files hold many
/// completions).
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The default [`ClientConfig::max_retry_wait`]: the longest retry hint the OpenAI and
/// Anthropic SDKs honour.
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// The default [`ClientConfig::max_redirects`].
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// The most of an error body that is read (its message is shortened anyway).
pub const ERROR_BODY_LIMIT: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub api_key: Option<String>,
    pub default_headers: Vec<(String, String)>,
    /// Per request attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub requests_per_minute: Option<f64>,
    pub tokens_per_minute: Option<f64>,
    /// Extra trusted roots (PEM), e.g. a self-signed certificate of a local server.
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Whether redirects are followed (same-host 307 and 308 only, up to `max_redirects`);
    /// when not, a 3xx answer is an error.
    pub follow_redirects: bool,
    /// Idle keep-alive connections kept per host.
    pub pool_size: usize,
    pub seed: u64,
    /// The largest generation response body read; a larger one fails the request with
    /// "response larger than N bytes" (not retried).
    pub max_response_bytes: u64,
    /// The largest body of other calls (files, batches, result files).
    pub max_download_bytes: u64,
    /// 307/308 redirects to the same host followed per attempt.
    pub max_redirects: usize,
    /// The longest wait before a retry that a server's hint (`retry-after`, rate-limit
    /// resets) gets: a longer one is cut to this, so that no server parks a request.
    pub max_retry_wait: Duration,
    /// Whether generation requests to a plain-`http://` server (no proxy) go over the
    /// client's own HTTP/1.1 connections, which cost a third less CPU than reqwest's (see
    /// `http1`); TLS, proxies and other calls always use reqwest. On by default; the
    /// environment variable `DISTILABEL_RS_TRANSPORT=reqwest` turns it off.
    pub own_http1_connections: bool,
}

/// The variable that sends every request through reqwest (`DISTILABEL_RS_TRANSPORT=reqwest`),
/// should a server misbehave with the client's own connections.
pub const TRANSPORT_VARIABLE: &str = "DISTILABEL_RS_TRANSPORT";

impl ClientConfig {
    /// [`CLIENT_DEFAULTS`] for `base_url`, without key, headers or rate limits.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            default_headers: Vec::new(),
            timeout: CLIENT_DEFAULTS.timeout,
            retry: CLIENT_DEFAULTS.retry,
            requests_per_minute: None,
            tokens_per_minute: None,
            extra_root_certificates: Vec::new(),
            follow_redirects: true,
            pool_size: CLIENT_DEFAULTS.max_concurrency,
            seed: 0x5EED,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            max_retry_wait: DEFAULT_MAX_RETRY_WAIT,
            own_http1_connections: std::env::var(TRANSPORT_VARIABLE)
                .map_or(true, |transport| !transport.eq_ignore_ascii_case("reqwest")),
        }
    }
}

/// Told about each retry (progress counters).
pub trait RetryObserver: Send + Sync {
    fn retried(&self);
}

/// For calls nobody counts.
struct Unobserved;

impl RetryObserver for Unobserved {
    fn retried(&self) {}
}

struct Limits {
    requests: Option<TokenBucket>,
    tokens: Option<TokenBucket>,
    jitter: Jitter,
}

pub struct Client<P> {
    provider: P,
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
    retry: RetryPolicy,
    max_response_bytes: u64,
    max_download_bytes: u64,
    max_retry_wait: Duration,
    follow_redirects: bool,
    started: Instant,
    limits: Mutex<Limits>,
    /// The last URLs sent to, parsed: every generation request goes to one of a few
    /// paths, and parsing a URL (host, IDNA, percent-encoding) per request was a visible
    /// share of the client's CPU.
    routes: Mutex<Vec<(String, Arc<Route>)>>,
    /// Own connections for generation requests to a plain-`http://` server.
    http1: Option<Http1Connections>,
    max_redirects: usize,
}

/// How a generation request on the client's own connections ended.
enum Http1Exchange {
    /// The status and body of a 2xx.
    Answered((StatusCode, Bytes)),
    /// Redirected (by the policy) to a URL they do not serve: reqwest sends it there.
    RedirectedAway(reqwest::Url),
}

/// The request target of `url` on an HTTP/1.1 connection: its path and query.
fn path_and_query_of(url: &reqwest::Url) -> Option<String> {
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    http1_wire::is_request_target(&target).then_some(target)
}

/// Where a path of the API is: its URL, and its path and query on the client's own
/// HTTP/1.1 connections when they serve it.
struct Route {
    url: reqwest::Url,
    http1: Option<String>,
}

/// Parsed URLs kept by [`Client`] (generation paths; batch calls vary and just rotate).
const ROUTES_KEPT: usize = 4;

impl<P: Provider> std::fmt::Debug for Client<P> {
    // Never prints the headers: they hold the API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("provider", &self.provider.name())
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl<P: Provider> Client<P> {
    /// Builds the client (nothing is sent, nothing is spawned).
    pub fn new(provider: P, config: &ClientConfig) -> Result<Arc<Self>, ApiError> {
        // reqwest is built without a default crypto provider (to avoid a C toolchain for
        // aws-lc); ring is installed once per process. A second install is a no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &config.default_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ApiError::InvalidRequest(format!("header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| ApiError::InvalidRequest(format!("value of header {name}: {e}")))?;
            headers.insert(name, value);
        }
        headers.extend(provider.auth_headers(config.api_key.as_deref())?);
        let base_url = provider.base_url(&config.base_url)?;
        let http1 = reqwest::Url::parse(&base_url)
            .ok()
            .filter(|_| config.own_http1_connections)
            .and_then(|url| {
                Http1Connections::for_base_url(&url, headers.clone(), config.pool_size)
            });
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(config.pool_size.max(1))
            .tcp_nodelay(true)
            .redirect(if config.follow_redirects {
                redirect_policy(config.max_redirects)
            } else {
                reqwest::redirect::Policy::none()
            })
            .user_agent(concat!("distilabel-rs/", env!("CARGO_PKG_VERSION")));
        for pem in &config.extra_root_certificates {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ApiError::InvalidRequest(format!("root certificate: {e}")))?;
            builder = builder.tls_certs_merge([certificate]);
        }
        let http = builder
            .build()
            .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
        Ok(Arc::new(Self {
            provider,
            http,
            base_url,
            timeout: config.timeout,
            retry: config.retry,
            max_response_bytes: config.max_response_bytes,
            max_download_bytes: config.max_download_bytes,
            max_retry_wait: config.max_retry_wait,
            follow_redirects: config.follow_redirects,
            started: Instant::now(),
            limits: Mutex::new(Limits {
                requests: config
                    .requests_per_minute
                    .filter(|rpm| *rpm > 0.0)
                    .map(TokenBucket::per_minute),
                tokens: config
                    .tokens_per_minute
                    .filter(|tpm| *tpm > 0.0)
                    .map(TokenBucket::tokens_per_minute),
                jitter: Jitter::new(config.seed),
            }),
            routes: Mutex::default(),
            http1,
            max_redirects: config.max_redirects,
        }))
    }

    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// Sends a generation request and parses the answer, with admission and retries.
    pub async fn send(
        &self,
        request: &Request,
        observer: &dyn RetryObserver,
    ) -> Result<Completion, ApiError> {
        self.send_and_read(request, observer, |body| {
            let completion = self.provider.parse(request.endpoint, body)?;
            let used = completion.used_tokens();
            Ok((completion, used))
        })
        .await
    }

    /// Like [`Client::send`], returning the body as the server sent it (checked to be a
    /// valid response) with the tokens it reports.
    pub async fn send_raw(
        &self,
        request: &Request,
        observer: &dyn RetryObserver,
    ) -> Result<(Bytes, u64), ApiError> {
        self.send_and_read(request, observer, |body| {
            let used = self.provider.usage(request.endpoint, body)?;
            Ok(((Bytes::copy_from_slice(body), used), used))
        })
        .await
    }

    async fn send_and_read<T>(
        &self,
        request: &Request,
        observer: &dyn RetryObserver,
        read: impl Fn(&[u8]) -> Result<(T, u64), ApiError>,
    ) -> Result<T, ApiError> {
        let path = self.provider.endpoint_path(request.endpoint)?;
        self.with_retries(Some(request.reserved_tokens), observer, || async {
            let (status, body) = self.attempt_generation(&path, &request.body).await?;
            self.check_generation(status, &body)?;
            read(&body).map_err(|error| explain_invalid(error, &body))
        })
        .await
    }

    /// What every 2xx generation body must be, whatever the API: UTF-8 (JSON is), and not
    /// an error body (some servers answer errors with 200): its message is the provider's.
    fn check_generation(&self, status: StatusCode, body: &[u8]) -> Result<(), ApiError> {
        if let Err(error) = std::str::from_utf8(body) {
            return Err(ApiError::InvalidResponse(format!(
                "the response body is not valid UTF-8 (invalid byte at offset {})",
                error.valid_up_to()
            )));
        }
        if has_error_member(body) {
            return Err(ApiError::InvalidResponse(format!(
                "the API answered {} with an error instead of a completion: {}",
                status.as_u16(),
                self.provider.error_message(body)
            )));
        }
        Ok(())
    }

    /// A call to another endpoint of the API (files, batches), retried like the others
    /// (without rate-limit admission); returns the body of a 2xx answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        payload: Option<Payload>,
    ) -> Result<Bytes, ApiError> {
        self.with_retries(None, &Unobserved, || async {
            let (_, body) = self
                .attempt(&method, path, payload.as_ref(), self.max_download_bytes)
                .await?;
            Ok((body, 0))
        })
        .await
    }

    /// GETs an absolute URL (e.g. a results file the API pointed to), with the client's
    /// headers and retries.
    pub async fn get_url(&self, url: &str) -> Result<Bytes, ApiError> {
        self.with_retries(None, &Unobserved, || async {
            let request = self.http.get(url).timeout(self.timeout);
            let (_, body) = self.read(request, self.max_download_bytes).await?;
            Ok((body, 0))
        })
        .await
    }

    /// The retry loop: admission (when `reserved_tokens` is given), one attempt, and on a
    /// retryable failure the wait the server asked for or a full-jitter backoff, up to the
    /// retry policy's limit.
    async fn with_retries<T, F, Fut>(
        &self,
        reserved_tokens: Option<u64>,
        observer: &dyn RetryObserver,
        mut attempt: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(T, u64), ApiError>>,
    {
        let mut retries = 0;
        loop {
            if let Some(tokens) = reserved_tokens {
                self.admit(tokens).await;
            }
            let outcome = attempt().await;
            if let Some(tokens) = reserved_tokens {
                // A failed attempt used no tokens.
                let used = outcome.as_ref().map_or(0, |(_, used)| *used);
                self.reconcile(tokens, used);
            }
            match outcome {
                Ok((value, _)) => return Ok(value),
                Err(error) if error.is_retryable() && retries < self.retry.max_retries => {
                    let delay = self.retry_delay(&error, retries);
                    observer.retried();
                    retries += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One attempt of a generation request: on the client's own connections when they serve
    /// its URL (and the server has not redirected), else through reqwest.
    async fn attempt_generation(
        &self,
        path: &str,
        body: &Bytes,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let limit = self.max_response_bytes;
        let route = self.route(path);
        if let (Some(connections), Some(route)) = (&self.http1, &route)
            && let Some(path_and_query) = &route.http1
        {
            let exchange = self.exchange_http1(connections, route, path_and_query, body, limit);
            match tokio::time::timeout(self.timeout, exchange).await {
                Err(_) => return Err(ApiError::Timeout(self.timeout)),
                Ok(Ok(Http1Exchange::Answered(answer))) => return Ok(answer),
                Ok(Err(error)) => return Err(error),
                Ok(Ok(Http1Exchange::RedirectedAway(next))) => {
                    let request = self
                        .http
                        .post(next)
                        .timeout(self.timeout)
                        .body(body.clone());
                    return self.read(request, limit).await;
                }
            }
        }
        self.attempt(
            &reqwest::Method::POST,
            path,
            Some(&Payload::Json(body.clone())),
            limit,
        )
        .await
    }

    /// A generation request on the client's own connections, following redirects by the
    /// same policy as reqwest's ([`redirect_refusal`]).
    async fn exchange_http1(
        &self,
        connections: &Http1Connections,
        route: &Route,
        path_and_query: &str,
        body: &Bytes,
        limit: u64,
    ) -> Result<Http1Exchange, ApiError> {
        let mut visited: Vec<reqwest::Url> = Vec::new();
        // Borrowed until a redirect: no copy of the URL per request.
        let mut url = Cow::Borrowed(&route.url);
        let mut path_and_query = Cow::Borrowed(path_and_query);
        loop {
            let (head, mut response_body) = connections.post(&url, &path_and_query, body).await?;
            let next = (head.status.is_redirection() && self.follow_redirects)
                .then(|| head.headers.get(LOCATION))
                .flatten()
                .and_then(|location| url.join(location.to_str().ok()?).ok());
            if let Some(next) = next {
                visited.push(url.into_owned());
                if let Some(message) =
                    redirect_refusal(head.status, &visited, &next, self.max_redirects)
                {
                    return Err(ApiError::Status {
                        status: head.status.as_u16(),
                        message,
                        retry_after: None,
                    });
                }
                if !connections.serves(&next) {
                    // Same host, another port or https: reqwest goes on from there.
                    return Ok(Http1Exchange::RedirectedAway(next));
                }
                path_and_query = Cow::Owned(
                    path_and_query_of(&next)
                        .ok_or_else(|| ApiError::InvalidResponse(format!("redirect to {next}")))?,
                );
                url = Cow::Owned(next);
                continue;
            }
            let answer = self
                .read_response(head.status, &head.headers, &mut response_body, limit)
                .await;
            connections.put_back(response_body);
            return answer.map(Http1Exchange::Answered);
        }
    }

    /// One attempt at `path`: the status and body (at most `limit` bytes) of a 2xx answer,
    /// or the error.
    async fn attempt(
        &self,
        method: &reqwest::Method,
        path: &str,
        payload: Option<&Payload>,
        limit: u64,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let mut request = match self.route(path) {
            Some(route) => self.http.request(method.clone(), route.url.clone()),
            // reqwest reports the unparsable URL (the request fails with its message).
            None => self
                .http
                .request(method.clone(), self.provider.url(&self.base_url, path)),
        }
        .timeout(self.timeout);
        match payload {
            None => {}
            Some(Payload::Json(bytes)) => request = request.body(bytes.clone()),
            Some(Payload::Form(parts)) => request = request.multipart(form(parts)?),
        }
        self.read(request, limit).await
    }

    /// Sends `request` and reads the answer: the status and body of a 2xx (at most `limit`
    /// bytes), else the status error with the provider's message.
    async fn read(
        &self,
        request: reqwest::RequestBuilder,
        limit: u64,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = ReqwestBody {
            response,
            timeout: self.timeout,
        };
        self.read_response(status, &headers, &mut body, limit).await
    }

    /// Reads an answer whose status and headers arrived: the status and body of a 2xx (at
    /// most `limit` bytes), else the status error with the provider's message.
    async fn read_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        response: &mut impl BodyChunks,
        limit: u64,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        if !status.is_success() {
            let retry_after = self.provider.retry_hint(headers);
            let message = if status.is_redirection() {
                unfollowed_redirect(headers)
            } else {
                // The status is what matters: a body cut by the limit, a timeout or a broken
                // connection still gives what was read of the message.
                let mut body = Vec::new();
                while let Ok(Some(chunk)) = response.chunk().await {
                    let room = usize::try_from(ERROR_BODY_LIMIT)
                        .unwrap_or(usize::MAX)
                        .saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if chunk.len() >= room {
                        break;
                    }
                }
                self.provider.error_message(&body)
            };
            return Err(ApiError::Status {
                status: status.as_u16(),
                message,
                retry_after,
            });
        }
        let content_length = headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if let Some(length) = content_length
            && length > limit
        {
            return Err(too_large(limit));
        }
        let mut body = BodyBuffer::default();
        while let Some(chunk) = response.chunk().await? {
            if body.len().saturating_add(chunk.len() as u64) > limit {
                return Err(too_large(limit));
            }
            body.push(chunk, content_length.unwrap_or(0).min(limit));
        }
        Ok((status, body.into_bytes()))
    }

    /// The route of `path`, parsed once while it is among the last few used.
    fn route(&self, path: &str) -> Option<Arc<Route>> {
        let mut kept = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, route)) = kept.iter().find(|(kept_path, _)| kept_path == path) {
            return Some(Arc::clone(route));
        }
        let url = reqwest::Url::parse(&self.provider.url(&self.base_url, path)).ok()?;
        let http1 = self
            .http1
            .as_ref()
            .filter(|connections| connections.serves(&url))
            .and_then(|_| path_and_query_of(&url));
        let route = Arc::new(Route { url, http1 });
        if kept.len() >= ROUTES_KEPT {
            kept.remove(0);
        }
        kept.push((path.to_owned(), Arc::clone(&route)));
        Some(route)
    }

    fn limits(&self) -> MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Waits until both rate limits allow the request, then takes its share.
    async fn admit(&self, reserved_tokens: u64) {
        #[allow(clippy::cast_precision_loss)]
        let tokens = reserved_tokens as f64;
        loop {
            let wait = {
                let now = self.now();
                let mut limits = self.limits();
                let Limits {
                    requests,
                    tokens: token_bucket,
                    ..
                } = &mut *limits;
                match requests.as_mut().map_or(Ok(()), |bucket| bucket.take(now)) {
                    Err(wait) => wait,
                    Ok(()) => match token_bucket
                        .as_mut()
                        .map_or(Ok(()), |bucket| bucket.take_n(tokens, now))
                    {
                        Ok(()) => return,
                        Err(wait) => {
                            if let Some(bucket) = requests.as_mut() {
                                bucket.refund(1.0);
                            }
                            wait
                        }
                    },
                }
            };
            tokio::time::sleep(saturating_seconds(wait.max(0.001))).await;
        }
    }

    /// Gives back what a request reserved but did not use (or takes what it overran).
    fn reconcile(&self, reserved_tokens: u64, used_tokens: u64) {
        if let Some(bucket) = self.limits().tokens.as_mut() {
            #[allow(clippy::cast_precision_loss)]
            bucket.refund(reserved_tokens as f64 - used_tokens as f64);
        }
    }

    /// What the server asked for (at most `max_retry_wait`), or the full-jitter backoff of
    /// retry number `retries`.
    fn retry_delay(&self, error: &ApiError, retries: u32) -> Duration {
        hinted_wait(error.retry_after(), self.max_retry_wait).unwrap_or_else(|| {
            let mut limits = self.limits();
            saturating_seconds(self.retry.backoff(retries, &mut limits.jitter))
        })
    }

    fn transport_error(&self, error: &reqwest::Error) -> ApiError {
        if error.is_timeout() {
            return ApiError::Timeout(self.timeout);
        }
        if error.is_redirect() {
            return redirect_error(error);
        }
        ApiError::Connection(error_chain(error))
    }
}

/// A response body read piece by piece: reqwest's, or one on the client's own connections.
trait BodyChunks {
    /// The next piece, `None` at the end; a deadline passed or a broken connection as the
    /// client reports them.
    async fn chunk(&mut self) -> Result<Option<Bytes>, ApiError>;
}

struct ReqwestBody {
    response: reqwest::Response,
    timeout: Duration,
}

impl BodyChunks for ReqwestBody {
    async fn chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        self.response.chunk().await.map_err(|error| {
            if error.is_timeout() {
                ApiError::Timeout(self.timeout)
            } else {
                broken_body(&error_chain(&error))
            }
        })
    }
}

/// A body on the client's own connections (the caller's timeout bounds it).
impl BodyChunks for http1::ResponseBody {
    async fn chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        Self::chunk(self).await.map_err(|error| broken_body(&error))
    }
}

fn broken_body(cause: &str) -> ApiError {
    ApiError::Connection(format!(
        "the connection broke while reading the response body: {cause}"
    ))
}

/// An error's message with its causes. The URL is part of reqwest's message; the key never
/// is (it is a header).
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn too_large(limit: u64) -> ApiError {
    ApiError::InvalidResponse(format!(
        "response larger than {limit} bytes (the client's limit on a response body)"
    ))
}

/// The bytes of a body read chunk by chunk: the first chunk is kept as it is (most bodies
/// are one chunk); later ones are copied after it into a buffer of the announced length,
/// or kept and joined once at the end when no length was announced.
#[derive(Default)]
struct BodyBuffer {
    first: Option<Bytes>,
    /// The body so far when its length was announced (sized once).
    sized: Vec<u8>,
    /// The pieces after the first one of a body of unknown length (chunked), joined once at
    /// the end: a buffer grown by doubling would hold every size it went through at once
    /// under an allocator that does not return freed memory at once (a body cut at the
    /// 32 MiB limit then cost 100 MiB).
    pieces: Vec<Bytes>,
    len: u64,
}

impl BodyBuffer {
    fn len(&self) -> u64 {
        self.len
    }

    /// Appends `chunk`; `expected` (the announced length, already checked against the
    /// limit, 0 when none) sizes the copy once.
    fn push(&mut self, chunk: Bytes, expected: u64) {
        self.len += chunk.len() as u64;
        if self.first.is_none() && self.sized.is_empty() && self.pieces.is_empty() {
            self.first = Some(chunk);
        } else if expected > 0 {
            if let Some(first) = self.first.take() {
                let expected = usize::try_from(expected).unwrap_or(0);
                self.sized.reserve(expected.max(first.len() + chunk.len()));
                self.sized.extend_from_slice(&first);
            }
            self.sized.extend_from_slice(&chunk);
        } else {
            self.pieces.push(chunk);
        }
    }

    fn into_bytes(self) -> Bytes {
        if !self.pieces.is_empty() {
            let mut joined = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
            for piece in self.first.iter().chain(&self.pieces) {
                joined.extend_from_slice(piece);
            }
            return Bytes::from(joined);
        }
        match self.first {
            Some(first) => first,
            None => Bytes::from(self.sized),
        }
    }
}

/// Whether a body is a JSON object with a non-null top-level `error` (no completion of any
/// supported API has one). Only bodies that mention `"error"` are parsed for it.
fn has_error_member(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        error: Option<Value>,
    }
    const NEEDLE: &[u8] = b"\"error\"";
    body.windows(NEEDLE.len()).any(|window| window == NEEDLE)
        && serde_json::from_slice::<Probe>(body).is_ok_and(|probe| probe.error.is_some())
}

/// A provider's parse error made plain when the body is not JSON at all.
fn explain_invalid(error: ApiError, body: &[u8]) -> ApiError {
    match error {
        ApiError::InvalidResponse(message)
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() =>
        {
            let text = String::from_utf8_lossy(body);
            let shown: String = text.chars().take(200).collect();
            let more = if text.chars().count() > 200 {
                "…"
            } else {
                ""
            };
            ApiError::InvalidResponse(format!(
                "the response body is not valid JSON ({message}): {shown}{more}"
            ))
        }
        other => other,
    }
}

/// Why a redirect was not followed, for the error.
#[derive(Debug)]
struct RefusedRedirect {
    status: u16,
    message: String,
}

impl std::fmt::Display for RefusedRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RefusedRedirect {}

/// Follows 307 and 308 (which resend the method and body) to the same host, without going
/// back to an address already visited, at most `max` times; refuses anything else with a
/// [`RefusedRedirect`].
fn redirect_policy(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        match redirect_refusal(attempt.status(), attempt.previous(), attempt.url(), max) {
            Some(message) => {
                let status = attempt.status().as_u16();
                attempt.error(RefusedRedirect { status, message })
            }
            None => attempt.follow(),
        }
    })
}

/// Why the redirect with `status` to `next` is not followed, `None` if it is; `previous`
/// holds the URLs requested so far (the first is the request's own).
fn redirect_refusal(
    status: StatusCode,
    previous: &[reqwest::Url],
    next: &reqwest::Url,
    max: usize,
) -> Option<String> {
    let from = previous
        .last()
        .map_or_else(String::new, ToString::to_string);
    if !matches!(
        status,
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
    ) {
        Some(format!(
            "{from} redirects to {next} with status {}, which would resend the request as \
                 a GET without its body; redirects other than 307 and 308 are not followed: \
                 use the address it redirects to as the base URL",
            status.as_u16()
        ))
    } else if previous.first().is_some_and(|first| {
        first.host_str() != next.host_str()
            || (first.scheme() == "https" && next.scheme() != "https")
    }) {
        Some(format!(
            "{from} redirects to {next}, another host or an unencrypted address; such \
                 redirects are not followed (the API key would go with them): use the \
                 address it redirects to as the base URL if you trust it"
        ))
    } else if previous.contains(next) {
        Some(format!(
            "redirect loop: {from} redirects back to {next}, which was already visited"
        ))
    } else if previous.len() > max {
        Some(format!(
            "more than {max} redirects (the last from {from} to {next})"
        ))
    } else {
        None
    }
}

/// The error of a redirect the policy refused: the redirect's status and why.
fn redirect_error(error: &reqwest::Error) -> ApiError {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<RefusedRedirect>() {
            return ApiError::Status {
                status: refused.status,
                message: refused.message.clone(),
                retry_after: None,
            };
        }
        source = cause.source();
    }
    ApiError::InvalidResponse(format!(
        "a redirect could not be followed: {}",
        error_chain(error)
    ))
}

/// The message of a 3xx answer that was not followed (the policy lets none through, but a
/// request whose body cannot be sent twice is never redirected).
fn unfollowed_redirect(headers: &HeaderMap) -> String {
    let location = headers
        .get(LOCATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    format!(
        "the server redirects to {location:?}, which is not followed for this request: use \
         that address as the base URL"
    )
}

/// A multipart form from its parts; file contents are shared, not copied.
fn form(parts: &[FormPart]) -> Result<reqwest::multipart::Form, ApiError> {
    let mut form = reqwest::multipart::Form::new();
    for part in parts {
        let length = u64::try_from(part.content.len()).unwrap_or(u64::MAX);
        let mut field = reqwest::multipart::Part::stream_with_length(
            reqwest::Body::from(part.content.clone()),
            length,
        );
        if let Some(file_name) = &part.file_name {
            field = field.file_name(file_name.clone());
        }
        if let Some(content_type) = &part.content_type {
            field = field
                .mime_str(content_type)
                .map_err(|e| ApiError::InvalidRequest(format!("content type: {e}")))?;
        }
        form = form.part(part.name.clone(), field);
    }
    Ok(form)
}
