//! What differs between LLM APIs, behind one small trait.
//!
//! A provider says where requests go, how they authenticate, how a response body becomes a
//! [`Completion`], what its error bodies and rate-limit headers look like, and where its
//! request bodies keep what the token reservation needs. Everything else (pooling,
//! admission, retries, dispatch, progress) is the client's and is written once.

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

use super::completion::Completion;
use super::error::{ApiError, provider_message};
use super::retry_hint;

/// What a request asks for, whatever the provider calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A conversation (`messages`): OpenAI's `/chat/completions` and its equivalents.
    Chat,
    /// A plain prompt: OpenAI's `/completions` and its equivalents.
    Text,
}

/// Where a provider's request bodies keep what the token reservation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFields {
    /// Top-level fields whose text is the prompt (messages, prompt, system...).
    pub prompt: &'static [&'static str],
    /// Path to the most tokens one generation may have (`["max_tokens"]`,
    /// `["parameters", "max_new_tokens"]`...).
    pub max_output: &'static [&'static str],
    /// Assumed when the body does not say.
    pub default_max_output: u64,
    /// Field with the number of generations of one request, if the API has one.
    pub generations: Option<&'static str>,
}

/// The one reservation rule of the tokens-per-minute limit, for every provider and for the
/// command alike: prompt characters / 4 (a usual estimate) plus the most the request may
/// generate (`max_output` x generations). The reservation is reconciled with the usage the
/// response reports.
pub fn reserve_tokens(body: &Value, fields: &TokenFields) -> u64 {
    fn characters(value: &Value) -> usize {
        match value {
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(characters).sum(),
            Value::Object(members) => members.values().map(characters).sum(),
            _ => 0,
        }
    }
    let prompt: usize = fields
        .prompt
        .iter()
        .filter_map(|name| body.get(name))
        .map(characters)
        .sum();
    let max_output = fields
        .max_output
        .iter()
        .try_fold(body, |value, key| value.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(fields.default_max_output);
    let generations = fields
        .generations
        .and_then(|name| body.get(name))
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    u64::try_from(prompt / 4)
        .unwrap_or(u64::MAX)
        .saturating_add(max_output.saturating_mul(generations))
}

/// Generation options the `distilabel-rs generate` command adds to requests that do not set
/// them, in OpenAI's terms; each provider puts them where its API wants them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestDefaults {
    /// Used when a request names no model.
    pub model: String,
    pub generations: Option<u64>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
}

impl RequestDefaults {
    /// OpenAI's field names: `model`, `n`, `max_tokens`, `temperature`, `top_p`.
    pub fn apply_openai_style(&self, body: &mut Map<String, Value>, with_n: bool) {
        body.entry("model")
            .or_insert_with(|| Value::String(self.model.clone()));
        let options = [
            ("n", self.generations.filter(|_| with_n).map(Value::from)),
            ("max_tokens", self.max_tokens.map(Value::from)),
            ("temperature", self.temperature.map(Value::from)),
            ("top_p", self.top_p.map(Value::from)),
        ];
        for (key, value) in options {
            if let Some(value) = value {
                body.entry(key).or_insert(value);
            }
        }
    }
}

/// One LLM API. Implementations are plain data (paths, header names): cheap to share.
pub trait Provider: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for messages (`"openai"`, `"azure"`...).
    fn name(&self) -> &str;

    /// The headers every request carries: authentication (marked sensitive, so that it is
    /// never printed) and API versions.
    fn auth_headers(&self, api_key: Option<&str>) -> Result<HeaderMap, ApiError>;

    /// The path of an endpoint, relative to the base URL (no leading slash).
    fn endpoint_path(&self, endpoint: Endpoint) -> Result<String, ApiError>;

    /// The base URL requests go to, from the one the client was configured with; called
    /// once, when the client is built (an API whose clients resolve a host setting, such as
    /// Ollama's `OLLAMA_HOST`, does it here and rejects a bad one). No trailing slash.
    fn base_url(&self, configured: &str) -> Result<String, ApiError> {
        Ok(configured.trim_end_matches('/').to_owned())
    }

    /// The full URL of `path` (relative to the base URL, which has no trailing slash),
    /// with the query parameters the API requires on every call.
    fn url(&self, base_url: &str, path: &str) -> String {
        if path.is_empty() {
            base_url.to_owned()
        } else {
            format!("{base_url}/{path}")
        }
    }

    /// A 2xx body as a completion.
    fn parse(&self, endpoint: Endpoint, body: &[u8]) -> Result<Completion, ApiError>;

    /// The tokens a 2xx body reports (prompt plus generated; 0 without usage), failing if
    /// the body is not a valid response. Used where the body is passed on unparsed.
    fn usage(&self, endpoint: Endpoint, body: &[u8]) -> Result<u64, ApiError>;

    /// The provider's own message in an error body (or the body itself, shortened); by
    /// default `{"error": {"message"}}` or `{"error": "..."}`, as most APIs answer.
    fn error_message(&self, body: &[u8]) -> String {
        provider_message(body)
    }

    /// Seconds the server asks to wait before a retry, from the response headers; by
    /// default `retry-after-ms`, then `retry-after`.
    fn retry_hint(&self, headers: &HeaderMap) -> Option<f64> {
        retry_hint::retry_after(headers)
    }

    /// Where the bodies of `endpoint` keep the prompt and the output limits.
    fn token_fields(&self, endpoint: Endpoint) -> TokenFields;

    /// Whether one request can return several generations (`n`); when not, callers send
    /// one request per generation and group the results.
    fn supports_n(&self) -> bool;

    /// Adds the command's generation options to a body that does not set them.
    fn apply_defaults(
        &self,
        endpoint: Endpoint,
        body: &mut Map<String, Value>,
        defaults: &RequestDefaults,
    ) {
        let _ = endpoint;
        defaults.apply_openai_style(body, self.supports_n());
    }

    /// Tokens a request reserves against the tokens-per-minute limit ([`reserve_tokens`]).
    fn reserve_tokens(&self, endpoint: Endpoint, body: &Value) -> u64 {
        reserve_tokens(body, &self.token_fields(endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OPENAI_LIKE: TokenFields = TokenFields {
        prompt: &["messages", "prompt"],
        max_output: &["max_tokens"],
        default_max_output: 16,
        generations: Some("n"),
    };

    #[test]
    fn reservation_counts_prompt_output_and_generations() {
        let body = json!({"messages": [{"role": "user", "content": "x".repeat(400)}],
                          "max_tokens": 50, "n": 3});
        // "user" + 400 characters -> 101 tokens, plus 50 x 3.
        assert_eq!(reserve_tokens(&body, &OPENAI_LIKE), 101 + 150);
        assert_eq!(reserve_tokens(&json!({"prompt": ""}), &OPENAI_LIKE), 16);
        let nested = TokenFields {
            prompt: &["inputs"],
            max_output: &["parameters", "max_new_tokens"],
            default_max_output: 100,
            generations: None,
        };
        let body = json!({"inputs": "abcdefgh", "parameters": {"max_new_tokens": 7}, "n": 5});
        assert_eq!(reserve_tokens(&body, &nested), 2 + 7);
    }

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let defaults = RequestDefaults {
            model: "m".into(),
            generations: Some(2),
            max_tokens: Some(10),
            temperature: Some(0.5),
            top_p: None,
        };
        let mut body = json!({"max_tokens": 3})
            .as_object()
            .cloned()
            .unwrap_or_default();
        defaults.apply_openai_style(&mut body, false);
        assert_eq!(
            Value::Object(body),
            json!({"max_tokens": 3, "model": "m", "temperature": 0.5})
        );
    }
}
