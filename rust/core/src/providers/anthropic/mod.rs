//! Anthropic's Messages API (`POST {base}/v1/messages`) and its Message Batches.
//!
//! Authentication is `x-api-key` (or `Authorization: Bearer`, for an auth token) with
//! `anthropic-version: 2023-06-01`. A response's content blocks become one generation (the
//! API has no `n`: callers send one request per generation); errors keep the API's error
//! type next to its message (`"overloaded_error: Overloaded"`); retries honour
//! `retry-after(-ms)` and the `anthropic-ratelimit-*-reset` times of used-up limits.

pub mod batch_jobs;
pub mod rate_limits;
pub mod response;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::http::{ApiError, Completion, Endpoint, Provider, RequestDefaults, TokenFields};

/// The API version every request names.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` of the `distilabel-rs generate` command's requests that set none (the API
/// requires it).
pub const COMMAND_MAX_TOKENS: u64 = 1024;

/// How the key is sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// `x-api-key: <key>` (API keys).
    ApiKey,
    /// `Authorization: Bearer <token>` (auth tokens).
    Bearer,
}

/// The Message Batches endpoints and their limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchProfile {
    /// Relative to the base URL.
    pub path: String,
    /// At most this many requests per batch.
    pub max_requests: usize,
    /// At most this many bytes per batch creation body.
    pub max_bytes: usize,
    /// Where a copy of each batch's requests is kept until its results are in (the API
    /// does not give back the requests of expired or canceled rows, which are submitted
    /// again from there). `None`: `$XDG_CACHE_HOME/distilabel-rs/message-batches` (or
    /// `~/.cache/...`).
    pub store_dir: Option<String>,
}

impl Default for BatchProfile {
    fn default() -> Self {
        Self {
            path: "v1/messages/batches".into(),
            max_requests: 100_000,
            // "256 MB" in Anthropic's documentation: read as decimal, the smaller.
            max_bytes: 256_000_000,
            store_dir: None,
        }
    }
}

/// Anthropic's API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Anthropic {
    /// For messages.
    pub name: String,
    pub auth: Auth,
    /// The `anthropic-version` header.
    pub version: String,
    /// Relative to the base URL.
    pub messages_path: String,
    pub batch: Option<BatchProfile>,
}

impl Default for Anthropic {
    fn default() -> Self {
        Self {
            name: "anthropic".into(),
            auth: Auth::ApiKey,
            version: API_VERSION.into(),
            messages_path: "v1/messages".into(),
            batch: Some(BatchProfile::default()),
        }
    }
}

const MESSAGES_TOKENS: TokenFields = TokenFields {
    prompt: &["messages", "system", "tools"],
    max_output: &["max_tokens"],
    default_max_output: COMMAND_MAX_TOKENS,
    generations: None,
};

fn header_value(value: &str, what: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(value)
        .map_err(|_| ApiError::InvalidRequest(format!("the {what} is not a valid header value")))
}

impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.name
    }

    fn auth_headers(&self, api_key: Option<&str>) -> Result<HeaderMap, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            header_value(&self.version, "API version")?,
        );
        let Some(key) = api_key else {
            return Ok(headers);
        };
        let (name, mut value) = match self.auth {
            Auth::ApiKey => (
                HeaderName::from_static("x-api-key"),
                header_value(key, "API key")?,
            ),
            Auth::Bearer => (
                AUTHORIZATION,
                header_value(&format!("Bearer {key}"), "API key")?,
            ),
        };
        value.set_sensitive(true);
        headers.insert(name, value);
        Ok(headers)
    }

    fn endpoint_path(&self, endpoint: Endpoint) -> Result<String, ApiError> {
        match endpoint {
            Endpoint::Chat => Ok(self.messages_path.clone()),
            Endpoint::Text => Err(ApiError::InvalidRequest(format!(
                "the {} Messages API has no text completions endpoint; send a conversation (a list of messages)",
                self.name
            ))),
        }
    }

    fn parse(&self, endpoint: Endpoint, body: &[u8]) -> Result<Completion, ApiError> {
        self.endpoint_path(endpoint)?;
        response::parse_message(body)
    }

    fn usage(&self, _endpoint: Endpoint, body: &[u8]) -> Result<u64, ApiError> {
        response::total_tokens(body)
    }

    fn error_message(&self, body: &[u8]) -> String {
        response::error_message(body)
    }

    fn retry_hint(&self, headers: &HeaderMap) -> Option<f64> {
        rate_limits::retry_hint(headers)
    }

    fn token_fields(&self, _endpoint: Endpoint) -> TokenFields {
        MESSAGES_TOKENS
    }

    fn supports_n(&self) -> bool {
        false
    }

    /// The command's options in Messages terms: `model`, `max_tokens` (required by the API:
    /// [`COMMAND_MAX_TOKENS`] unless given), `temperature`, `top_p`; no `n`. A leading
    /// `system` message of an OpenAI-style record becomes the `system` field (the API
    /// accepts only `user` and `assistant` messages).
    fn apply_defaults(
        &self,
        _endpoint: Endpoint,
        body: &mut Map<String, Value>,
        defaults: &RequestDefaults,
    ) {
        let with_max_tokens = RequestDefaults {
            max_tokens: defaults.max_tokens.or(Some(COMMAND_MAX_TOKENS)),
            ..defaults.clone()
        };
        with_max_tokens.apply_openai_style(body, false);
        lift_system_message(body);
    }
}

/// Moves a leading `{"role": "system", "content": ...}` message into `system` (as
/// distilabel's `AnthropicLLM` does), unless the body already has a `system`.
fn lift_system_message(body: &mut Map<String, Value>) {
    if body.contains_key("system") {
        return;
    }
    let Some(Value::Array(messages)) = body.get_mut("messages") else {
        return;
    };
    let leading_system = messages
        .first()
        .is_some_and(|first| first.get("role").and_then(Value::as_str) == Some("system"));
    if !leading_system {
        return;
    }
    let mut system = messages.remove(0);
    let content = system.get_mut("content").map_or(Value::Null, Value::take);
    body.insert("system".into(), content);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn profile_defaults_and_unknown_fields() {
        let profile: Anthropic = serde_json::from_str("{}").expect("default");
        assert_eq!(profile, Anthropic::default());
        let small: Anthropic =
            serde_json::from_value(json!({"batch": {"max_requests": 2, "max_bytes": 1000}}))
                .expect("small batches");
        assert_eq!(
            small
                .batch
                .as_ref()
                .map(|b| (b.max_requests, b.path.as_str())),
            Some((2, "v1/messages/batches"))
        );
        assert!(serde_json::from_value::<Anthropic>(json!({"mesages_path": "x"})).is_err());
    }

    #[test]
    fn headers_paths_and_urls() {
        let provider = Anthropic::default();
        let headers = provider.auth_headers(Some("sk-ant")).expect("headers");
        let key = headers.get("x-api-key").expect("x-api-key");
        assert!(key.is_sensitive());
        assert_eq!(key.as_bytes(), b"sk-ant");
        assert_eq!(
            headers.get("anthropic-version").map(HeaderValue::as_bytes),
            Some(&b"2023-06-01"[..])
        );
        assert!(headers.get(AUTHORIZATION).is_none());
        let bearer = Anthropic {
            auth: Auth::Bearer,
            ..Anthropic::default()
        };
        let headers = bearer.auth_headers(Some("tok")).expect("headers");
        assert_eq!(
            headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
            Some(&b"Bearer tok"[..])
        );
        let path = provider.endpoint_path(Endpoint::Chat).expect("chat");
        assert_eq!(
            provider.url("https://api.anthropic.com", &path),
            "https://api.anthropic.com/v1/messages"
        );
        let text = provider.endpoint_path(Endpoint::Text).expect_err("no text");
        assert!(text.to_string().contains("send a conversation"), "{text}");
        assert!(!provider.supports_n());
    }

    #[test]
    fn tokens_reserved_count_system_messages_and_max_tokens() {
        let provider = Anthropic::default();
        let body = json!({"system": "x".repeat(40), "max_tokens": 100,
                          "messages": [{"role": "user", "content": "y".repeat(36)}]});
        // "x"*40 + "user" + "y"*36 = 80 characters -> 20 tokens, plus 100.
        assert_eq!(provider.reserve_tokens(Endpoint::Chat, &body), 120);
    }

    #[test]
    fn command_defaults_lift_the_system_message_and_require_max_tokens() {
        let provider = Anthropic::default();
        let defaults = RequestDefaults {
            model: "claude".into(),
            generations: Some(3),
            max_tokens: None,
            temperature: Some(0.5),
            top_p: None,
        };
        let mut body = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ]})
        .as_object()
        .cloned()
        .unwrap_or_default();
        provider.apply_defaults(Endpoint::Chat, &mut body, &defaults);
        assert_eq!(
            Value::Object(body),
            json!({"model": "claude", "max_tokens": 1024, "temperature": 0.5,
                   "system": "be brief", "messages": [{"role": "user", "content": "hi"}]})
        );
        let mut kept = json!({"system": "s", "max_tokens": 5, "messages": [
            {"role": "system", "content": "later"}]})
        .as_object()
        .cloned()
        .unwrap_or_default();
        provider.apply_defaults(Endpoint::Chat, &mut kept, &defaults);
        assert_eq!(kept.get("system"), Some(&json!("s")));
        assert_eq!(kept.get("max_tokens"), Some(&json!(5)));
        assert_eq!(
            kept.get("messages").and_then(Value::as_array).map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn retry_hints_and_error_messages() {
        let provider = Anthropic::default();
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(provider.retry_hint(&headers), Some(2.0));
        assert_eq!(
            provider.error_message(
                br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#
            ),
            "rate_limit_error: slow down"
        );
    }
}
