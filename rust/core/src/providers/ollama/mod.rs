//! Ollama's own API: `POST /api/chat` for conversations and `POST /api/generate` for
//! prompts (distilabel sends `raw: true` prompts rendered with the model's chat template).
//!
//! Generation options live in the body's `options` map (`num_predict`, `temperature`,
//! `top_p`...); one request returns one generation (no `n`); errors are `{"error": "..."}`
//! bodies; there is no key, except the `Authorization: Bearer` the ollama SDK sends when
//! `OLLAMA_API_KEY` is set (Ollama's hosted service). The server's address is a host setting
//! resolved as the ollama SDK does ([`host::parse_host`]).

pub mod host;
pub mod response;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::http::{ApiError, Completion, Endpoint, Provider, RequestDefaults, TokenFields};

/// The Ollama API (no settings: `{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ollama {}

/// Ollama's own default, `num_predict: -1`, is "until the context is full": a reservation
/// needs a number, so this one is assumed when the body sets no positive `num_predict`.
const ASSUMED_MAX_OUTPUT: u64 = 128;

const CHAT_TOKENS: TokenFields = TokenFields {
    prompt: &["messages"],
    max_output: &["options", "num_predict"],
    default_max_output: ASSUMED_MAX_OUTPUT,
    generations: None,
};

const GENERATE_TOKENS: TokenFields = TokenFields {
    prompt: &["prompt", "system"],
    max_output: &["options", "num_predict"],
    default_max_output: ASSUMED_MAX_OUTPUT,
    generations: None,
};

impl Provider for Ollama {
    fn name(&self) -> &str {
        "ollama"
    }

    fn auth_headers(&self, api_key: Option<&str>) -> Result<HeaderMap, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(key) = api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ApiError::InvalidRequest("the API key is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(headers)
    }

    /// The host setting (`""` for the default), resolved as the ollama SDK does.
    fn base_url(&self, configured: &str) -> Result<String, ApiError> {
        host::parse_host(configured)
    }

    fn endpoint_path(&self, endpoint: Endpoint) -> Result<String, ApiError> {
        Ok(match endpoint {
            Endpoint::Chat => "api/chat",
            Endpoint::Text => "api/generate",
        }
        .to_owned())
    }

    fn parse(&self, endpoint: Endpoint, body: &[u8]) -> Result<Completion, ApiError> {
        match endpoint {
            Endpoint::Chat => response::parse_chat(body),
            Endpoint::Text => response::parse_generate(body),
        }
    }

    fn usage(&self, endpoint: Endpoint, body: &[u8]) -> Result<u64, ApiError> {
        self.parse(endpoint, body).map(|c| c.used_tokens())
    }

    fn token_fields(&self, endpoint: Endpoint) -> TokenFields {
        match endpoint {
            Endpoint::Chat => CHAT_TOKENS,
            Endpoint::Text => GENERATE_TOKENS,
        }
    }

    fn supports_n(&self) -> bool {
        false
    }

    /// The model, `max_tokens` as `options.num_predict`, `temperature` and `top_p` as
    /// options, each only where the body does not set it; generations are ignored (one per
    /// request). `stream` is always `false`: a streamed answer is not a response body.
    fn apply_defaults(
        &self,
        _endpoint: Endpoint,
        body: &mut Map<String, Value>,
        defaults: &RequestDefaults,
    ) {
        body.entry("model")
            .or_insert_with(|| Value::String(defaults.model.clone()));
        body.insert("stream".into(), Value::Bool(false));
        let options = [
            ("num_predict", defaults.max_tokens.map(Value::from)),
            ("temperature", defaults.temperature.map(Value::from)),
            ("top_p", defaults.top_p.map(Value::from)),
        ];
        for (key, value) in options {
            let Some(value) = value else { continue };
            let entry = body
                .entry("options")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(options) = entry {
                options.entry(key).or_insert(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::reserve_tokens;
    use serde_json::json;

    #[test]
    fn paths_headers_and_no_n() {
        let ollama = Ollama::default();
        assert_eq!(
            ollama.endpoint_path(Endpoint::Chat).as_deref(),
            Ok("api/chat")
        );
        assert_eq!(
            ollama.endpoint_path(Endpoint::Text).as_deref(),
            Ok("api/generate")
        );
        assert_eq!(
            ollama.url("http://127.0.0.1:11434", "api/chat"),
            "http://127.0.0.1:11434/api/chat"
        );
        assert!(!ollama.supports_n());
        let headers = ollama.auth_headers(None).expect("headers");
        assert!(headers.get(AUTHORIZATION).is_none());
        assert_eq!(
            headers.get(ACCEPT).map(HeaderValue::as_bytes),
            Some(&b"application/json"[..])
        );
        let headers = ollama.auth_headers(Some("k")).expect("headers");
        let value = headers.get(AUTHORIZATION).expect("authorization");
        assert!(value.is_sensitive());
        assert_eq!(value.as_bytes(), b"Bearer k");
    }

    #[test]
    fn base_url_is_the_resolved_host() {
        let ollama = Ollama::default();
        assert_eq!(ollama.base_url("").as_deref(), Ok(host::DEFAULT_HOST));
        assert_eq!(
            ollama.base_url("localhost:1234/").as_deref(),
            Ok("http://localhost:1234")
        );
        assert!(ollama.base_url("localhost:x").is_err());
    }

    #[test]
    fn errors_are_the_error_field() {
        assert_eq!(
            Ollama::default()
                .error_message(br#"{"error":"model \"x\" not found, try pulling it first"}"#),
            "model \"x\" not found, try pulling it first"
        );
    }

    #[test]
    fn defaults_go_into_options_and_stream_is_off() {
        let defaults = RequestDefaults {
            model: "llama3".into(),
            generations: Some(4),
            max_tokens: Some(64),
            temperature: Some(0.5),
            top_p: None,
        };
        let mut body = json!({"messages": [], "options": {"temperature": 0.1}, "stream": true})
            .as_object()
            .cloned()
            .unwrap_or_default();
        Ollama::default().apply_defaults(Endpoint::Chat, &mut body, &defaults);
        assert_eq!(
            Value::Object(body),
            json!({"messages": [], "model": "llama3", "stream": false,
                   "options": {"temperature": 0.1, "num_predict": 64}})
        );
        let mut bare = json!({"prompt": "p", "model": "mine"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let no_options = RequestDefaults {
            model: "llama3".into(),
            ..RequestDefaults::default()
        };
        Ollama::default().apply_defaults(Endpoint::Text, &mut bare, &no_options);
        assert_eq!(
            Value::Object(bare),
            json!({"prompt": "p", "model": "mine", "stream": false})
        );
    }

    #[test]
    fn reservations_read_num_predict() {
        let ollama = Ollama::default();
        let body = json!({"prompt": "x".repeat(40), "options": {"num_predict": 10}});
        assert_eq!(
            reserve_tokens(&body, &ollama.token_fields(Endpoint::Text)),
            10 + 10
        );
        // -1 (until the context is full) reserves the assumed maximum.
        let body = json!({"messages": [], "options": {"num_predict": -1}});
        assert_eq!(
            ollama.reserve_tokens(Endpoint::Chat, &body),
            ASSUMED_MAX_OUTPUT
        );
    }

    #[test]
    fn usage_counts_both_sides() {
        let body = br#"{"message":{"role":"assistant","content":"x"},"prompt_eval_count":4,"eval_count":6}"#;
        assert_eq!(Ollama::default().usage(Endpoint::Chat, body), Ok(10));
        assert!(Ollama::default().usage(Endpoint::Chat, b"{}").is_err());
    }
}

#[cfg(test)]
mod registration_tests {
    use crate::http::Provider;
    use crate::providers::AnyProvider;
    use serde_json::json;

    #[test]
    fn the_ollama_kind_takes_no_settings() {
        let provider = AnyProvider::from_spec("ollama", &json!({})).expect("provider");
        assert_eq!(provider.name(), "ollama");
        assert!(!provider.supports_n());
        let typo = AnyProvider::from_spec("ollama", &json!({"hots": "x"})).expect_err("typo");
        assert!(typo.to_string().contains("hots"), "{typo}");
    }
}
