//! OpenAI's API and every API shaped like it, as *profiles* of one provider: OpenAI itself,
//! Azure OpenAI (deployment paths, `api-version` query, `api-key` header), Groq
//! (`/openai/v1`), Together, Anyscale, Mistral's chat endpoint, vLLM's server...
//!
//! A profile is plain data: the paths of the chat and text endpoints, how the key is sent,
//! query parameters every call carries, whether one request may ask for `n` generations, and
//! whether (and how) the API runs OpenAI-format batch jobs. Response parsing accepts any
//! `finish_reason` string (Together answers `"eos"`).

pub mod batch_jobs;
pub mod response;

use std::collections::BTreeMap;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::http::retry_hint::{self, parse_go_duration};
use crate::http::{ApiError, Completion, Endpoint, Provider, TokenFields};

/// How the API key is sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key alone in this header (Azure: `api-key`).
    Header(String),
    /// Not sent (local servers).
    None,
}

/// An OpenAI-format Batch API (Files + Batches endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchProfile {
    /// Prefix of the `files` and `batches` paths (Azure: `openai/`).
    pub path_prefix: String,
    /// The endpoint named in each row and in the job (`/v1/chat/completions`; Azure:
    /// `/chat/completions`).
    pub endpoint: String,
    /// Wait until an uploaded file is `processed` before creating its job (Azure).
    pub wait_for_files: bool,
    /// At most this many requests per file.
    pub max_rows: usize,
    /// At most this many bytes per file.
    pub max_bytes: usize,
}

impl Default for BatchProfile {
    fn default() -> Self {
        Self {
            path_prefix: String::new(),
            endpoint: "/v1/chat/completions".into(),
            wait_for_files: false,
            max_rows: 50_000,
            // "200 MB" in OpenAI's documentation: read as decimal, the smaller.
            max_bytes: 200_000_000,
        }
    }
}

/// One OpenAI-compatible API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAi {
    /// For messages: `openai`, `azure`, `groq`...
    pub name: String,
    pub auth: Auth,
    /// Sent with every call (Azure: `api-version`).
    pub query: BTreeMap<String, String>,
    /// Relative to the base URL.
    pub chat_path: String,
    pub text_path: Option<String>,
    /// Whether one request may ask for several generations (`n`).
    pub supports_n: bool,
    /// The API's batch jobs, if it has an OpenAI-format Batch API.
    pub batch: Option<BatchProfile>,
}

impl Default for OpenAi {
    /// OpenAI itself.
    fn default() -> Self {
        Self {
            name: "openai".into(),
            auth: Auth::Bearer,
            query: BTreeMap::new(),
            chat_path: "chat/completions".into(),
            text_path: Some("completions".into()),
            supports_n: true,
            batch: Some(BatchProfile::default()),
        }
    }
}

const CHAT_TOKENS: TokenFields = TokenFields {
    prompt: &["messages"],
    max_output: &["max_tokens"],
    default_max_output: 16,
    generations: Some("n"),
};

const TEXT_TOKENS: TokenFields = TokenFields {
    prompt: &["prompt"],
    max_output: &["max_tokens"],
    default_max_output: 16,
    generations: Some("n"),
};

fn sensitive(value: String) -> Result<HeaderValue, ApiError> {
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| ApiError::InvalidRequest("the API key is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

impl Provider for OpenAi {
    fn name(&self) -> &str {
        &self.name
    }

    fn auth_headers(&self, api_key: Option<&str>) -> Result<HeaderMap, ApiError> {
        let mut headers = HeaderMap::new();
        let Some(key) = api_key else {
            return Ok(headers);
        };
        match &self.auth {
            Auth::Bearer => {
                headers.insert(AUTHORIZATION, sensitive(format!("Bearer {key}"))?);
            }
            Auth::Header(name) => {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                    ApiError::InvalidRequest(format!("auth header name {name:?}: {e}"))
                })?;
                headers.insert(name, sensitive(key.to_owned())?);
            }
            Auth::None => {}
        }
        Ok(headers)
    }

    fn endpoint_path(&self, endpoint: Endpoint) -> Result<String, ApiError> {
        match endpoint {
            Endpoint::Chat => Ok(self.chat_path.clone()),
            Endpoint::Text => self.text_path.clone().ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "the {} API has no text completions endpoint; send a conversation",
                    self.name
                ))
            }),
        }
    }

    fn url(&self, base_url: &str, path: &str) -> String {
        let plain = if path.is_empty() {
            base_url.to_owned()
        } else {
            format!("{base_url}/{path}")
        };
        if self.query.is_empty() {
            return plain;
        }
        // An unparsable base URL is left as it is: sending then fails with reqwest's
        // message, which names it.
        match reqwest::Url::parse(&plain) {
            Ok(mut url) => {
                url.query_pairs_mut().extend_pairs(&self.query);
                url.into()
            }
            Err(_) => plain,
        }
    }

    fn parse(&self, endpoint: Endpoint, body: &[u8]) -> Result<Completion, ApiError> {
        match endpoint {
            Endpoint::Chat => response::parse_chat(body),
            Endpoint::Text => response::parse_text(body),
        }
    }

    fn usage(&self, _endpoint: Endpoint, body: &[u8]) -> Result<u64, ApiError> {
        response::total_tokens(body)
    }

    /// `retry-after-ms`, `retry-after`, else the later of `x-ratelimit-reset-requests` and
    /// `x-ratelimit-reset-tokens` (`"1s"`, `"6m0s"`, `"250ms"`).
    fn retry_hint(&self, headers: &HeaderMap) -> Option<f64> {
        retry_hint::retry_after(headers).or_else(|| {
            ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
                .iter()
                .filter_map(|name| retry_hint::header_text(headers, name))
                .filter_map(parse_go_duration)
                .reduce(f64::max)
        })
    }

    fn token_fields(&self, endpoint: Endpoint) -> TokenFields {
        match endpoint {
            Endpoint::Chat => CHAT_TOKENS,
            Endpoint::Text => TEXT_TOKENS,
        }
    }

    fn supports_n(&self) -> bool {
        self.supports_n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure() -> OpenAi {
        serde_json::from_value(serde_json::json!({
            "name": "azure",
            "auth": {"header": "api-key"},
            "query": {"api-version": "2024-10-21"},
            "chat_path": "openai/deployments/gpt 4/chat/completions",
            "text_path": null,
            "batch": {"path_prefix": "openai/", "endpoint": "/chat/completions", "wait_for_files": true},
        }))
        .expect("profile")
    }

    #[test]
    fn profiles_from_json_with_defaults() {
        let profile = azure();
        assert!(profile.supports_n);
        assert_eq!(
            profile.batch.as_ref().map(|b| b.max_rows),
            Some(50_000),
            "unset batch limits are OpenAI's"
        );
        let openai: OpenAi = serde_json::from_str("{}").expect("default");
        assert_eq!(openai, OpenAi::default());
        assert!(serde_json::from_str::<OpenAi>(r#"{"chat_pth": "x"}"#).is_err());
    }

    #[test]
    fn urls_carry_the_query_and_paths_are_escaped() {
        let profile = azure();
        let path = profile.endpoint_path(Endpoint::Chat).expect("chat");
        assert_eq!(
            profile.url("https://res.openai.azure.com", &path),
            "https://res.openai.azure.com/openai/deployments/gpt%204/chat/completions?api-version=2024-10-21"
        );
        assert!(matches!(
            profile.endpoint_path(Endpoint::Text),
            Err(ApiError::InvalidRequest(_))
        ));
        assert_eq!(
            OpenAi::default().url("http://h/v1", "completions"),
            "http://h/v1/completions"
        );
    }

    #[test]
    fn keys_go_where_the_profile_says_and_are_sensitive() {
        let headers = azure().auth_headers(Some("k")).expect("headers");
        assert!(headers.get(AUTHORIZATION).is_none());
        let value = headers.get("api-key").expect("api-key");
        assert!(value.is_sensitive());
        let bearer = OpenAi::default().auth_headers(Some("k")).expect("headers");
        assert_eq!(
            bearer.get(AUTHORIZATION).map(HeaderValue::as_bytes),
            Some(&b"Bearer k"[..])
        );
    }

    #[test]
    fn retry_hints_in_order_of_precedence() {
        let headers = |pairs: &[(&'static str, &'static str)]| -> HeaderMap {
            pairs
                .iter()
                .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
                .collect()
        };
        let provider = OpenAi::default();
        assert_eq!(
            provider.retry_hint(&headers(&[("retry-after-ms", "250"), ("retry-after", "3")])),
            Some(0.25)
        );
        assert_eq!(
            provider.retry_hint(&headers(&[
                ("x-ratelimit-reset-requests", "1s"),
                ("x-ratelimit-reset-tokens", "6m0s")
            ])),
            Some(360.0)
        );
        assert_eq!(provider.retry_hint(&HeaderMap::new()), None);
    }
}
