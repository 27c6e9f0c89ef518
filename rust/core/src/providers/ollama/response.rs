//! Parsing of Ollama's non-streamed `/api/chat` and `/api/generate` bodies into what
//! distilabel returns: the generation (`message.content` / `response`), why it stopped
//! (`done_reason`) and the token counts (`prompt_eval_count`, `eval_count`).

use serde::Deserialize;
use serde_json::Value;

use crate::http::{ApiError, Completion};

#[derive(Deserialize)]
struct Counts {
    /// Absent when the whole prompt came from Ollama's cache.
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    done_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatResponse {
    message: Message,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct GenerateResponse {
    #[serde(default)]
    response: Option<String>,
    #[serde(flatten)]
    counts: Counts,
}

/// The error of a body that is not a response: its own `{"error": "..."}` message when it
/// has one (a server may put an error in a 200 body), else the parser's.
fn invalid(body: &[u8], error: &serde_json::Error) -> ApiError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| value.get("error")?.as_str().map(str::to_owned));
    ApiError::InvalidResponse(message.map_or_else(
        || error.to_string(),
        |message| format!("the server answered with an error: {message}"),
    ))
}

fn completion(content: Option<String>, counts: Counts) -> Completion {
    let mut completion = Completion::counting(
        counts.prompt_eval_count.unwrap_or(0),
        counts.eval_count.unwrap_or(0),
    );
    if content.is_none() {
        completion.empty_finish_reasons.push(counts.done_reason);
    }
    completion.generations.push(content);
    completion
}

/// Parses an `/api/chat` response body (`"stream": false`).
pub fn parse_chat(body: &[u8]) -> Result<Completion, ApiError> {
    let parsed: ChatResponse = serde_json::from_slice(body).map_err(|e| invalid(body, &e))?;
    Ok(completion(parsed.message.content, parsed.counts))
}

/// Parses an `/api/generate` response body (`"stream": false`).
pub fn parse_generate(body: &[u8]) -> Result<Completion, ApiError> {
    let parsed: GenerateResponse = serde_json::from_slice(body).map_err(|e| invalid(body, &e))?;
    Ok(completion(parsed.response, parsed.counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_response_with_statistics() {
        let body = br#"{"model":"llama3","created_at":"2025-01-01T00:00:00Z",
            "message":{"role":"assistant","content":"Hello!"},"done":true,"done_reason":"stop",
            "total_duration":5,"load_duration":1,"prompt_eval_count":26,"prompt_eval_duration":2,
            "eval_count":3,"eval_duration":2}"#;
        let c = parse_chat(body).expect("parses");
        assert_eq!(c.generations, vec![Some("Hello!".into())]);
        assert_eq!((c.input_tokens, c.output_tokens), (26, 3));
        assert!(c.empty_finish_reasons.is_empty());
        assert!(c.logprobs.is_empty());
    }

    #[test]
    fn generate_response_and_a_cached_prompt_without_prompt_eval_count() {
        let body = br#"{"model":"m","response":" there","done":true,"done_reason":"length","eval_count":9}"#;
        let c = parse_generate(body).expect("parses");
        assert_eq!(c.generations, vec![Some(" there".into())]);
        assert_eq!((c.input_tokens, c.output_tokens), (0, 9));
    }

    #[test]
    fn missing_content_is_an_empty_generation_with_its_done_reason() {
        let chat =
            br#"{"message":{"role":"assistant","tool_calls":[]},"done":true,"done_reason":"stop"}"#;
        let c = parse_chat(chat).expect("parses");
        assert_eq!(c.generations, vec![None]);
        assert_eq!(c.empty_finish_reasons, vec![Some("stop".into())]);
        let generate = br#"{"done":true,"response":null}"#;
        let c = parse_generate(generate).expect("parses");
        assert_eq!(c.generations, vec![None]);
        assert_eq!(c.empty_finish_reasons, vec![None]);
        // An empty string is a generation, as in distilabel.
        let empty = br#"{"message":{"role":"assistant","content":""},"done":true}"#;
        assert_eq!(
            parse_chat(empty).expect("parses").generations,
            vec![Some(String::new())]
        );
    }

    #[test]
    fn bodies_that_are_not_responses() {
        for body in [
            &b"{\"message\": {\"content\": \"cut"[..],
            b"{\"done\": true}",
            b"[]",
            b"not json",
        ] {
            assert!(
                matches!(parse_chat(body), Err(ApiError::InvalidResponse(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            parse_generate(b"[1]"),
            Err(ApiError::InvalidResponse(_))
        ));
        let error = parse_chat(br#"{"error":"model 'x' not found"}"#).expect_err("error body");
        assert_eq!(
            error.to_string(),
            "Invalid response from the API: the server answered with an error: model 'x' not found"
        );
    }
}
