//! One HTTP client for any provider: connection pool, TLS roots, timeouts, admission by
//! request and token rate limits, and the one retry loop every call goes through.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;

use super::completion::Completion;
use super::error::ApiError;
use super::provider::{Endpoint, Provider};
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
    /// Whether redirects are followed (up to 10); when not, a 3xx answer is an error.
    pub follow_redirects: bool,
    /// Idle keep-alive connections kept per host.
    pub pool_size: usize,
    pub seed: u64,
}

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
    started: Instant,
    limits: Mutex<Limits>,
}

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
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(config.pool_size.max(1))
            .tcp_nodelay(true)
            .redirect(if config.follow_redirects {
                reqwest::redirect::Policy::default()
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
        let base_url = provider.base_url(&config.base_url)?;
        Ok(Arc::new(Self {
            provider,
            http,
            base_url,
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
        let payload = Payload::Json(request.body.clone());
        self.with_retries(Some(request.reserved_tokens), observer, || async {
            let body = self
                .attempt(&reqwest::Method::POST, &path, Some(&payload))
                .await?;
            read(&body)
        })
        .await
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
            let body = self.attempt(&method, path, payload.as_ref()).await?;
            Ok((body, 0))
        })
        .await
    }

    /// GETs an absolute URL (e.g. a results file the API pointed to), with the client's
    /// headers and retries.
    pub async fn get_url(&self, url: &str) -> Result<Bytes, ApiError> {
        self.with_retries(None, &Unobserved, || async {
            let request = self.http.get(url).timeout(self.timeout);
            Ok((self.read(request).await?, 0))
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
                    tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One attempt at `path`: the body of a 2xx answer, or the error.
    async fn attempt(
        &self,
        method: &reqwest::Method,
        path: &str,
        payload: Option<&Payload>,
    ) -> Result<Bytes, ApiError> {
        let url = self.provider.url(&self.base_url, path);
        let mut request = self.http.request(method.clone(), url).timeout(self.timeout);
        match payload {
            None => {}
            Some(Payload::Json(bytes)) => request = request.body(bytes.clone()),
            Some(Payload::Form(parts)) => request = request.multipart(form(parts)?),
        }
        self.read(request).await
    }

    async fn read(&self, request: reqwest::RequestBuilder) -> Result<Bytes, ApiError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let retry_after = self.provider.retry_hint(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                message: self.provider.error_message(&bytes),
                retry_after,
            });
        }
        Ok(bytes)
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
    fn reconcile(&self, reserved_tokens: u64, used_tokens: u64) {
        if let Some(bucket) = self.limits().tokens.as_mut() {
            #[allow(clippy::cast_precision_loss)]
            bucket.refund(reserved_tokens as f64 - used_tokens as f64);
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
