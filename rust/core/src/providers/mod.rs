//! The providers: one folder each (paths, authentication, parsing, error shape, rate-limit
//! headers, its Batch API), and [`AnyProvider`], the one enum the binding and the command
//! hold (static dispatch, no boxing on the request path).
//!
//! Adding a provider: a `providers/<name>/` folder with a type implementing
//! [`Provider`](crate::http::Provider) (and [`BatchJobs`] if its API has batch jobs), one
//! variant below, one arm in [`AnyProvider::from_spec`] and in the `dispatch!` macro, and
//! its routes in the mock server.

pub mod anthropic;
pub mod ollama;
pub mod openai;
pub mod tgi;

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

use crate::batch_jobs::durable::SubmitError;
use crate::batch_jobs::journal::JournalAt;
use crate::batch_jobs::{BatchJobs, Check};
use crate::http::{ApiError, Client, Completion, Endpoint, Provider, RequestDefaults, TokenFields};

/// Every provider, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyProvider {
    /// OpenAI and every OpenAI-compatible API, by profile.
    OpenAi(openai::OpenAi),
    /// Anthropic's Messages API (and Message Batches).
    Anthropic(anthropic::Anthropic),
    /// Hugging Face Text Generation Inference (Inference Endpoints, TGI, the HF router).
    Tgi(tgi::Tgi),
    /// Ollama's own API (`/api/chat`, `/api/generate`).
    Ollama(ollama::Ollama),
}

/// Calls `$call` on the provider inside `$any`.
macro_rules! dispatch {
    ($any:expr, $provider:ident => $call:expr) => {
        match $any {
            AnyProvider::OpenAi($provider) => $call,
            AnyProvider::Anthropic($provider) => $call,
            AnyProvider::Tgi($provider) => $call,
            AnyProvider::Ollama($provider) => $call,
        }
    };
}

impl AnyProvider {
    /// The provider `kind` (`"openai"`) configured by `spec` (its profile, as JSON; `{}` for
    /// the defaults). Unknown kinds and fields are errors that name them.
    pub fn from_spec(kind: &str, spec: &Value) -> Result<Self, ApiError> {
        let invalid = |e: serde_json::Error| {
            ApiError::InvalidRequest(format!("invalid {kind} provider settings: {e}"))
        };
        match kind {
            "openai" => Ok(Self::OpenAi(
                serde_json::from_value(spec.clone()).map_err(invalid)?,
            )),
            "anthropic" => Ok(Self::Anthropic(
                serde_json::from_value(spec.clone()).map_err(invalid)?,
            )),
            "tgi" => Ok(Self::Tgi(
                serde_json::from_value(spec.clone()).map_err(invalid)?,
            )),
            "ollama" => Ok(Self::Ollama(
                serde_json::from_value(spec.clone()).map_err(invalid)?,
            )),
            other => Err(ApiError::InvalidRequest(format!(
                "unknown provider {other:?}; expected one of: openai, anthropic, tgi, ollama"
            ))),
        }
    }

    /// The provider's batch jobs, or an error saying it has none.
    pub fn batch_jobs(client: &Arc<Client<Self>>) -> Result<AnyBatchJobs, ApiError> {
        let none = |name: &str| {
            ApiError::InvalidRequest(format!(
                "the {name} API has no batch API that distilabel-rs supports; use online generation"
            ))
        };
        match client.provider() {
            AnyProvider::OpenAi(profile) => profile
                .batch
                .clone()
                .map(|batch| {
                    AnyBatchJobs::OpenAi(openai::batch_jobs::OpenAiBatchJobs::new(
                        Arc::clone(client),
                        batch,
                    ))
                })
                .ok_or_else(|| none(&profile.name)),
            AnyProvider::Anthropic(profile) => profile
                .batch
                .clone()
                .map(|batch| {
                    AnyBatchJobs::Anthropic(anthropic::batch_jobs::AnthropicBatchJobs::new(
                        Arc::clone(client),
                        batch,
                    ))
                })
                .ok_or_else(|| none(&profile.name)),
            AnyProvider::Tgi(profile) => Err(none(&profile.name)),
            AnyProvider::Ollama(ollama) => Err(none(ollama.name())),
        }
    }
}

impl Provider for AnyProvider {
    fn name(&self) -> &str {
        dispatch!(self, p => p.name())
    }

    fn auth_headers(&self, api_key: Option<&str>) -> Result<HeaderMap, ApiError> {
        dispatch!(self, p => p.auth_headers(api_key))
    }

    fn endpoint_path(&self, endpoint: Endpoint) -> Result<String, ApiError> {
        dispatch!(self, p => p.endpoint_path(endpoint))
    }

    fn base_url(&self, configured: &str) -> Result<String, ApiError> {
        dispatch!(self, p => p.base_url(configured))
    }

    fn url(&self, base_url: &str, path: &str) -> String {
        dispatch!(self, p => p.url(base_url, path))
    }

    fn parse(&self, endpoint: Endpoint, body: &[u8]) -> Result<Completion, ApiError> {
        dispatch!(self, p => p.parse(endpoint, body))
    }

    fn usage(&self, endpoint: Endpoint, body: &[u8]) -> Result<u64, ApiError> {
        dispatch!(self, p => p.usage(endpoint, body))
    }

    fn error_message(&self, body: &[u8]) -> String {
        dispatch!(self, p => p.error_message(body))
    }

    fn retry_hint(&self, headers: &HeaderMap) -> Option<f64> {
        dispatch!(self, p => p.retry_hint(headers))
    }

    fn token_fields(&self, endpoint: Endpoint) -> TokenFields {
        dispatch!(self, p => p.token_fields(endpoint))
    }

    fn supports_n(&self) -> bool {
        dispatch!(self, p => p.supports_n())
    }

    fn apply_defaults(
        &self,
        endpoint: Endpoint,
        body: &mut Map<String, Value>,
        defaults: &RequestDefaults,
    ) {
        dispatch!(self, p => p.apply_defaults(endpoint, body, defaults));
    }

    fn reserve_tokens(&self, endpoint: Endpoint, body: &Value) -> u64 {
        dispatch!(self, p => p.reserve_tokens(endpoint, body))
    }
}

/// The batch jobs of any provider that has them.
#[derive(Debug)]
pub enum AnyBatchJobs {
    OpenAi(openai::batch_jobs::OpenAiBatchJobs<AnyProvider>),
    Anthropic(anthropic::batch_jobs::AnthropicBatchJobs<AnyProvider>),
}

impl AnyBatchJobs {
    /// Creates jobs through `creator` (the same API, one attempt per call): a create that
    /// may have worked is looked up before any new attempt, as `retry` allows.
    #[must_use]
    pub fn single_attempt_creates(
        self,
        creator: Arc<Client<AnyProvider>>,
        retry: crate::limits::RetryPolicy,
    ) -> Self {
        match self {
            Self::OpenAi(jobs) => Self::OpenAi(jobs.single_attempt_creates(creator, retry)),
            Self::Anthropic(jobs) => Self::Anthropic(jobs.single_attempt_creates(creator, retry)),
        }
    }
}

impl BatchJobs for AnyBatchJobs {
    fn row(&self, custom_id: &str, endpoint: Endpoint, body: Value) -> Result<Value, ApiError> {
        match self {
            Self::OpenAi(jobs) => jobs.row(custom_id, endpoint, body),
            Self::Anthropic(jobs) => jobs.row(custom_id, endpoint, body),
        }
    }

    async fn submit(
        &self,
        rows: Vec<Vec<u8>>,
        name: &str,
        metadata: &Value,
        journal: Option<&JournalAt>,
        known_jobs: &[String],
    ) -> Result<Vec<String>, SubmitError> {
        match self {
            Self::OpenAi(jobs) => jobs.submit(rows, name, metadata, journal, known_jobs).await,
            Self::Anthropic(jobs) => jobs.submit(rows, name, metadata, journal, known_jobs).await,
        }
    }

    async fn check(&self, job_ids: &[String]) -> Result<Check, ApiError> {
        match self {
            Self::OpenAi(jobs) => jobs.check(job_ids).await,
            Self::Anthropic(jobs) => jobs.check(job_ids).await,
        }
    }

    async fn cancel(&self, job_ids: &[String]) -> Result<(), ApiError> {
        match self {
            Self::OpenAi(jobs) => jobs.cancel(job_ids).await,
            Self::Anthropic(jobs) => jobs.cancel(job_ids).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn providers_from_specs() {
        let provider =
            AnyProvider::from_spec("openai", &json!({"name": "groq", "supports_n": false}))
                .expect("provider");
        assert_eq!(provider.name(), "groq");
        assert!(!provider.supports_n());
        let unknown = AnyProvider::from_spec("nope", &json!({})).expect_err("unknown");
        assert!(unknown.to_string().contains("unknown provider \"nope\""));
        let typo = AnyProvider::from_spec("openai", &json!({"chat_pth": "x"})).expect_err("typo");
        assert!(typo.to_string().contains("chat_pth"), "{typo}");
        let anthropic = AnyProvider::from_spec("anthropic", &json!({})).expect("anthropic");
        assert_eq!(anthropic.name(), "anthropic");
        assert!(!anthropic.supports_n());
        let tgi = AnyProvider::from_spec("tgi", &json!({})).expect("tgi");
        assert_eq!(tgi.name(), "tgi");
        assert!(!tgi.supports_n());
    }
}
