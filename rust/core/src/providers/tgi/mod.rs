//! Hugging Face Text Generation Inference (TGI): dedicated Inference Endpoints, self-hosted
//! TGI servers and the Hugging Face router, as distilabel's `InferenceEndpointsLLM` calls
//! them through `huggingface_hub`'s `AsyncInferenceClient`:
//!
//! - a conversation goes to TGI's Messages API, `{base_url}/v1/chat/completions`
//!   (OpenAI-shaped), or to the profile's `chat_url` (the router's auto-routing endpoint);
//!   the URL is derived from the base URL as `huggingface_hub` does (a base URL ending in
//!   `/v1` gets `/chat/completions`, one ending in `/chat/completions` is used as it is);
//! - a prompt goes to TGI's generate API, `POST {base_url}` itself, with
//!   `{"inputs", "parameters": {…, "details": true}}`; the answer is an object or a
//!   one-element array.
//!
//! Errors are `{"error": "...", "error_type": "..."}`; 429, 503 (also "model is loading")
//! and the other retryable statuses are retried by the client, honouring `Retry-After`.
//! The key is a Bearer token (`HF_TOKEN`). One request returns one generation.

pub mod response;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::http::{ApiError, Completion, Endpoint, Provider, RequestDefaults, TokenFields};
use crate::providers::openai::response::total_tokens;

/// The Messages API, relative to a TGI base URL.
const CHAT_PATH: &str = "v1/chat/completions";

/// One TGI-speaking API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tgi {
    /// For messages: `tgi`, `inference-endpoints`...
    pub name: String,
    /// The absolute URL of the chat endpoint when it is not under the base URL (the Hugging
    /// Face router's `https://router.huggingface.co/v1/chat/completions` for a model id).
    pub chat_url: Option<String>,
}

impl Default for Tgi {
    fn default() -> Self {
        Self {
            name: "tgi".into(),
            chat_url: None,
        }
    }
}

/// TGI's default `max_new_tokens` when a request does not say.
const DEFAULT_MAX_NEW_TOKENS: u64 = 100;

const CHAT_TOKENS: TokenFields = TokenFields {
    prompt: &["messages"],
    max_output: &["max_tokens"],
    default_max_output: DEFAULT_MAX_NEW_TOKENS,
    generations: None,
};

const GENERATE_TOKENS: TokenFields = TokenFields {
    prompt: &["inputs"],
    max_output: &["parameters", "max_new_tokens"],
    default_max_output: DEFAULT_MAX_NEW_TOKENS,
    generations: None,
};

/// The chat URL `huggingface_hub` builds from a base URL (`_build_chat_completion_url`):
/// used as it is when its path ends in `/chat/completions`, `/chat/completions` appended to
/// a path ending in `/v1`, `/v1/chat/completions` appended otherwise; the query is kept.
pub fn chat_url_under(base_url: &str) -> String {
    let Ok(mut url) = reqwest::Url::parse(base_url) else {
        // Sending then fails with reqwest's message, which names the URL.
        return format!("{}/{CHAT_PATH}", base_url.trim_end_matches('/'));
    };
    let path = url.path().trim_end_matches('/').to_owned();
    if path.ends_with("/chat/completions") {
        return base_url.to_owned();
    }
    let new_path = if path.ends_with("/v1") {
        format!("{path}/chat/completions")
    } else {
        format!("{path}/{CHAT_PATH}")
    };
    url.set_path(&new_path);
    url.into()
}

impl Provider for Tgi {
    fn name(&self) -> &str {
        &self.name
    }

    fn auth_headers(&self, api_key: Option<&str>) -> Result<HeaderMap, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ApiError::InvalidRequest("the API key is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(headers)
    }

    fn endpoint_path(&self, endpoint: Endpoint) -> Result<String, ApiError> {
        Ok(match endpoint {
            Endpoint::Chat => CHAT_PATH.to_owned(),
            // The generate API is the base URL itself.
            Endpoint::Text => String::new(),
        })
    }

    fn url(&self, base_url: &str, path: &str) -> String {
        match path {
            "" => base_url.to_owned(),
            CHAT_PATH => self
                .chat_url
                .clone()
                .unwrap_or_else(|| chat_url_under(base_url)),
            other => format!("{base_url}/{other}"),
        }
    }

    fn parse(&self, endpoint: Endpoint, body: &[u8]) -> Result<Completion, ApiError> {
        match endpoint {
            Endpoint::Chat => response::parse_chat(body),
            Endpoint::Text => response::parse_generate(body),
        }
    }

    fn usage(&self, endpoint: Endpoint, body: &[u8]) -> Result<u64, ApiError> {
        match endpoint {
            Endpoint::Chat => total_tokens(body),
            Endpoint::Text => response::generated_tokens(body),
        }
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

    /// Chat bodies take OpenAI's names (without `n`). Generate bodies: a simple record's
    /// OpenAI-style fields become TGI's (`prompt` -> `inputs`; `max_tokens`, `temperature`,
    /// `top_p`, `stop`, `seed` -> `parameters.max_new_tokens`, `.temperature`...), then the
    /// command's `max_tokens`, `temperature` and `top_p` and `details: true` fill what
    /// `parameters` does not set.
    fn apply_defaults(
        &self,
        endpoint: Endpoint,
        body: &mut Map<String, Value>,
        defaults: &RequestDefaults,
    ) {
        if endpoint == Endpoint::Chat {
            defaults.apply_openai_style(body, false);
            return;
        }
        if !body.contains_key("inputs")
            && let Some(prompt) = body.remove("prompt")
        {
            body.insert("inputs".into(), prompt);
        }
        let mut parameters = match body.remove("parameters") {
            Some(Value::Object(parameters)) => parameters,
            Some(other) => {
                // Not an object: left for the server to reject, as given.
                body.insert("parameters".into(), other);
                return;
            }
            None => Map::new(),
        };
        for (openai, tgi) in OPENAI_TO_GENERATE {
            if let Some(value) = body.remove(*openai) {
                parameters.entry(*tgi).or_insert(value);
            }
        }
        let options = [
            ("max_new_tokens", defaults.max_tokens.map(Value::from)),
            ("temperature", defaults.temperature.map(Value::from)),
            ("top_p", defaults.top_p.map(Value::from)),
            ("details", Some(Value::Bool(true))),
        ];
        for (key, value) in options {
            if let Some(value) = value {
                parameters.entry(key).or_insert(value);
            }
        }
        body.insert("parameters".into(), Value::Object(parameters));
    }
}

/// OpenAI-style fields of a prompt record and their generate API names.
const OPENAI_TO_GENERATE: &[(&str, &str)] = &[
    ("max_tokens", "max_new_tokens"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("stop", "stop"),
    ("seed", "seed"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_urls_as_huggingface_hub_builds_them() {
        let tgi = Tgi::default();
        let chat = |base: &str| tgi.url(base, &tgi.endpoint_path(Endpoint::Chat).expect("path"));
        assert_eq!(chat("http://h:8080"), "http://h:8080/v1/chat/completions");
        assert_eq!(chat("http://h/tgi"), "http://h/tgi/v1/chat/completions");
        assert_eq!(
            chat("https://r.hf.co/v1"),
            "https://r.hf.co/v1/chat/completions"
        );
        assert_eq!(
            chat("https://e.hf.cloud/v1/chat/completions"),
            "https://e.hf.cloud/v1/chat/completions"
        );
        assert_eq!(
            chat("https://e.hf.cloud/x?token=1"),
            "https://e.hf.cloud/x/v1/chat/completions?token=1"
        );
        let routed = Tgi {
            chat_url: Some("https://router/v1/chat/completions".into()),
            ..Tgi::default()
        };
        assert_eq!(
            routed.url("https://router/hf-inference/models/m", CHAT_PATH),
            "https://router/v1/chat/completions"
        );
    }

    #[test]
    fn generate_goes_to_the_base_url_itself() {
        let tgi = Tgi::default();
        let path = tgi.endpoint_path(Endpoint::Text).expect("path");
        assert_eq!(tgi.url("http://h/tgi", &path), "http://h/tgi");
        assert_eq!(tgi.url("http://h", "info"), "http://h/info");
    }

    #[test]
    fn profile_from_json() {
        let tgi: Tgi =
            serde_json::from_value(json!({"name": "inference-endpoints"})).expect("profile");
        assert_eq!(
            (tgi.name.as_str(), tgi.chat_url.as_deref()),
            ("inference-endpoints", None)
        );
        assert!(serde_json::from_value::<Tgi>(json!({"chat_path": "x"})).is_err());
        assert!(!tgi.supports_n());
    }

    #[test]
    fn bearer_key_is_sensitive() {
        let headers = Tgi::default().auth_headers(Some("hf_x")).expect("headers");
        let value = headers.get(AUTHORIZATION).expect("authorization");
        assert_eq!(value.as_bytes(), b"Bearer hf_x");
        assert!(value.is_sensitive());
        assert!(Tgi::default().auth_headers(None).expect("none").is_empty());
        assert!(Tgi::default().auth_headers(Some("bad\nkey")).is_err());
    }

    #[test]
    fn error_bodies_and_retry_hints() {
        let tgi = Tgi::default();
        assert_eq!(
            tgi.error_message(br#"{"error":"Model is overloaded","error_type":"overloaded"}"#),
            "Model is overloaded"
        );
        assert_eq!(
            tgi.error_message(br#"{"error":"Model m is currently loading","estimated_time":20.0}"#),
            "Model m is currently loading"
        );
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(tgi.retry_hint(&headers), Some(2.0));
    }

    #[test]
    fn command_defaults_for_generate_bodies() {
        let defaults = RequestDefaults {
            model: "m".into(),
            generations: Some(3),
            max_tokens: Some(64),
            temperature: Some(0.5),
            top_p: None,
        };
        let tgi = Tgi::default();
        let mut body = json!({"prompt": "hi", "parameters": {"temperature": 0.9}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        tgi.apply_defaults(Endpoint::Text, &mut body, &defaults);
        assert_eq!(
            Value::Object(body),
            json!({"inputs": "hi", "parameters": {"temperature": 0.9, "max_new_tokens": 64,
                   "details": true}})
        );
        let mut record = json!({"prompt": "p", "max_tokens": 5, "stop": ["x"], "best_of": 2})
            .as_object()
            .cloned()
            .unwrap_or_default();
        tgi.apply_defaults(Endpoint::Text, &mut record, &defaults);
        assert_eq!(
            Value::Object(record),
            json!({"inputs": "p", "best_of": 2, "parameters": {"max_new_tokens": 5,
                   "stop": ["x"], "temperature": 0.5, "details": true}})
        );
        let mut chat = json!({"messages": []})
            .as_object()
            .cloned()
            .unwrap_or_default();
        tgi.apply_defaults(Endpoint::Chat, &mut chat, &defaults);
        assert_eq!(
            Value::Object(chat),
            json!({"messages": [], "model": "m", "max_tokens": 64, "temperature": 0.5})
        );
    }

    #[test]
    fn token_reservations_read_the_generate_parameters() {
        let tgi = Tgi::default();
        let body = json!({"inputs": "x".repeat(40), "parameters": {"max_new_tokens": 7}});
        assert_eq!(tgi.reserve_tokens(Endpoint::Text, &body), 10 + 7);
        assert_eq!(
            tgi.reserve_tokens(Endpoint::Chat, &json!({"messages": []})),
            DEFAULT_MAX_NEW_TOKENS
        );
    }
}
