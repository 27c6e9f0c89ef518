//! One OpenAI-compatible HTTP client: connection pool, authentication, timeouts, retries
//! with backoff and the provider's hints, request and token rate limits.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::error::ApiError;
use super::response::{self, Completion};
use crate::fanout::RetryPolicy;
use crate::limits::{Jitter, TokenBucket};

/// Which endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/chat/completions`, for conversations.
    Chat,
    /// `/completions`, for plain prompts.
    Completions,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat/completions",
            Endpoint::Completions => "completions",
        }
    }
}

/// One request: its JSON body and the tokens it reserves against the tokens-per-minute
/// limit (prompt estimate plus the most it may generate).
#[derive(Debug, Clone)]
pub struct Request {
    pub endpoint: Endpoint,
    pub body: bytes::Bytes,
    pub reserved_tokens: u64,
}

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
    /// Idle keep-alive connections kept per host.
    pub pool_size: usize,
    pub seed: u64,
}

/// Counters shared with whoever reports progress.
pub trait RetryObserver: Send + Sync {
    fn retried(&self);
}

struct Limits {
    requests: Option<TokenBucket>,
    tokens: Option<TokenBucket>,
    jitter: Jitter,
}

pub struct OpenAiClient {
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
    retry: RetryPolicy,
    started: Instant,
    limits: Mutex<Limits>,
}

impl std::fmt::Debug for OpenAiClient {
    // Never prints the headers: they hold the API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// Builds the client. Must be called where a tokio runtime can be entered later; it
    /// spawns nothing itself.
    pub fn new(config: &ClientConfig) -> Result<Arc<Self>, ApiError> {
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
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ApiError::InvalidRequest("the API key is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(config.pool_size.max(1))
            .tcp_nodelay(true)
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
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            timeout: config.timeout,
            retry: config.retry,
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
        }))
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
            tokio::time::sleep(Duration::from_secs_f64(wait.max(0.001))).await;
        }
    }

    /// Gives back what a request reserved but did not use (or takes what it overran).
    fn reconcile(&self, reserved_tokens: u64, used_tokens: Option<u64>) {
        let Some(used) = used_tokens else { return };
        if let Some(bucket) = self.limits().tokens.as_mut() {
            #[allow(clippy::cast_precision_loss)]
            bucket.refund(reserved_tokens as f64 - used as f64);
        }
    }

    /// Sends `request`, retrying retryable failures up to the retry policy, waiting what the
    /// server asks (`retry-after-ms`, `retry-after`, `x-ratelimit-reset-*`) or else a
    /// full-jitter exponential backoff.
    pub async fn send(
        &self,
        request: &Request,
        observer: &dyn RetryObserver,
    ) -> Result<Completion, ApiError> {
        self.send_parsed(request, observer, |endpoint, body| {
            let completion = match endpoint {
                Endpoint::Chat => response::parse_chat(body)?,
                Endpoint::Completions => response::parse_text(body)?,
            };
            let used = completion.input_tokens + completion.output_tokens;
            Ok((completion, used))
        })
        .await
    }

    /// Like [`OpenAiClient::send`], returning the response body as the server sent it (a
    /// valid JSON document) with its total token usage.
    pub async fn send_raw(
        &self,
        request: &Request,
        observer: &dyn RetryObserver,
    ) -> Result<(bytes::Bytes, u64), ApiError> {
        self.send_parsed(request, observer, |_, body| {
            let usage = response::total_tokens(body)?;
            Ok(((bytes::Bytes::copy_from_slice(body), usage), usage))
        })
        .await
    }

    async fn send_parsed<T>(
        &self,
        request: &Request,
        observer: &dyn RetryObserver,
        parse: impl Fn(Endpoint, &[u8]) -> Result<(T, u64), ApiError>,
    ) -> Result<T, ApiError> {
        let mut retries = 0;
        loop {
            self.admit(request.reserved_tokens).await;
            let outcome = match self.send_once(request).await {
                Ok(body) => parse(request.endpoint, &body),
                Err(error) => Err(error),
            };
            match outcome {
                Ok((parsed, used_tokens)) => {
                    self.reconcile(request.reserved_tokens, Some(used_tokens));
                    return Ok(parsed);
                }
                Err(error) if error.is_retryable() && retries < self.retry.max_retries => {
                    // Tokens of a failed attempt were not used.
                    self.reconcile(request.reserved_tokens, Some(0));
                    let delay = self.retry_delay(&error, retries);
                    observer.retried();
                    retries += 1;
                    tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                }
                Err(error) => {
                    self.reconcile(request.reserved_tokens, Some(0));
                    return Err(error);
                }
            }
        }
    }

    /// A request to another endpoint of the API (files, batches), retried like the others;
    /// returns the body of a 2xx answer.
    pub async fn request_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(String, Vec<u8>)>,
    ) -> Result<Vec<u8>, ApiError> {
        let body =
            body.map(|(content_type, bytes)| (Some(content_type), bytes::Bytes::from(bytes)));
        let mut retries = 0;
        loop {
            match self.raw_once(&method, path, body.as_ref()).await {
                Err(error) if error.is_retryable() && retries < self.retry.max_retries => {
                    let delay = self.retry_delay(&error, retries);
                    retries += 1;
                    tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                }
                other => return other.map(|bytes| bytes.to_vec()),
            }
        }
    }

    /// What the server asked for, or the full-jitter backoff of retry number `retries`.
    fn retry_delay(&self, error: &ApiError, retries: u32) -> f64 {
        match error.retry_after() {
            Some(hint) if hint.is_finite() && hint >= 0.0 => hint,
            _ => {
                let mut limits = self.limits();
                self.retry.backoff(retries, &mut limits.jitter)
            }
        }
    }

    /// One attempt: the body of a 2xx answer, or the error. A body without content type is
    /// JSON (the client's default header).
    async fn raw_once(
        &self,
        method: &reqwest::Method,
        path: &str,
        body: Option<&(Option<String>, bytes::Bytes)>,
    ) -> Result<bytes::Bytes, ApiError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/{path}", self.base_url))
            .timeout(self.timeout);
        if let Some((content_type, bytes)) = body {
            if let Some(content_type) = content_type {
                request = request.header(CONTENT_TYPE, content_type);
            }
            request = request.body(bytes.clone());
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let retry_after = retry_hint(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                message: response::error_message(&bytes),
                retry_after,
            });
        }
        Ok(bytes)
    }

    async fn send_once(&self, request: &Request) -> Result<bytes::Bytes, ApiError> {
        let body = (None, request.body.clone());
        self.raw_once(&reqwest::Method::POST, request.endpoint.path(), Some(&body))
            .await
    }

    fn transport_error(&self, error: &reqwest::Error) -> ApiError {
        if error.is_timeout() {
            return ApiError::Timeout(self.timeout);
        }
        // The URL is part of reqwest's message; the key never is (it is a header).
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        ApiError::Connection(message)
    }
}

/// Seconds to wait before retrying, as the server said: `retry-after-ms`, `retry-after`
/// (seconds), or the later of `x-ratelimit-reset-requests`/`-tokens` (`"1s"`, `"6m0s"`,
/// `"250ms"`).
pub fn retry_hint(headers: &HeaderMap) -> Option<f64> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(ms / 1000.0);
    }
    if let Some(seconds) = text("retry-after").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(seconds);
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|name| text(name).and_then(parse_go_duration))
        .reduce(f64::max)
}

/// Parses durations such as `"1s"`, `"6m0s"`, `"1h2m3.5s"`, `"250ms"`.
fn parse_go_duration(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += value * unit;
        any = true;
    }
    (any && number.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn retry_hints_in_order_of_precedence() {
        assert_eq!(
            retry_hint(&headers(&[("retry-after-ms", "250"), ("retry-after", "3")])),
            Some(0.25)
        );
        assert_eq!(retry_hint(&headers(&[("retry-after", "3")])), Some(3.0));
        assert_eq!(
            retry_hint(&headers(&[
                ("x-ratelimit-reset-requests", "1s"),
                ("x-ratelimit-reset-tokens", "6m0s")
            ])),
            Some(360.0)
        );
        assert_eq!(retry_hint(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_hint(&HeaderMap::new()), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("250ms"), Some(0.25));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(3723.5));
        assert_eq!(parse_go_duration("12"), None);
        assert_eq!(parse_go_duration("3x"), None);
    }
}
