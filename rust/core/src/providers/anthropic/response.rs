//! Parsing of Anthropic's Messages API bodies: a `message` into what distilabel returns, and
//! the `{"type": "error", "error": {"type", "message"}}` error bodies.

use serde::Deserialize;
use serde_json::Value;

use crate::http::error::provider_message;
use crate::http::{ApiError, Completion};

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Message {
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

/// A `message` body as a completion: one generation, the text of the first `text` block
/// (as distilabel's `content[0].text`), or the input of the first `tool_use` block as JSON
/// text when that comes first (the structured-output tool); `None` when the message has
/// neither (its stop reason is kept for the warning). Token counts are `usage`'s
/// `input_tokens` and `output_tokens` (cache tokens are not counted, as in distilabel).
pub fn parse_message(body: &[u8]) -> Result<Completion, ApiError> {
    let message: Message =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidResponse(e.to_string()))?;
    message_completion(message)
}

/// Like [`parse_message`], for a message already parsed (a batch result's `message`).
pub fn message_value_completion(message: Value) -> Result<Completion, ApiError> {
    let message: Message =
        serde_json::from_value(message).map_err(|e| ApiError::InvalidResponse(e.to_string()))?;
    message_completion(message)
}

fn message_completion(message: Message) -> Result<Completion, ApiError> {
    let mut completion = message.usage.map_or_else(Completion::default, |usage| {
        Completion::counting(
            usage.input_tokens.unwrap_or(0),
            usage.output_tokens.unwrap_or(0),
        )
    });
    let generation = message
        .content
        .iter()
        .find_map(|block| match block.get("type").and_then(Value::as_str) {
            Some("text") => Some(block.get("text").and_then(Value::as_str).map(str::to_owned)),
            Some("tool_use") => Some(block.get("input").map(Value::to_string)),
            _ => None,
        })
        .flatten();
    if generation.is_none() {
        completion.empty_finish_reasons.push(message.stop_reason);
    }
    completion.generations.push(generation);
    Ok(completion)
}

/// Prompt plus generated tokens of a `message` body, failing if it is not one.
pub fn total_tokens(body: &[u8]) -> Result<u64, ApiError> {
    parse_message(body).map(|completion| completion.used_tokens())
}

/// `"{type}: {message}"` of an Anthropic error body (`{"type": "error", "error": {"type",
/// "message"}}`, also the `error` of an errored batch row); other bodies as
/// [`provider_message`] reads them.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| error_value_message(&value))
        .unwrap_or_else(|| provider_message(body))
}

/// [`error_message`] of a parsed error body.
pub fn error_value_message(value: &Value) -> Option<String> {
    let error = value.get("error")?;
    let message = error.get("message").and_then(Value::as_str)?;
    Some(match error.get("type").and_then(Value::as_str) {
        Some(kind) => format!("{kind}: {message}"),
        None => message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_blocks_tool_use_and_usage() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"m",
            "content":[{"type":"text","text":"Hello"},{"type":"text","text":"again"}],
            "stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":12,"output_tokens":3,"cache_read_input_tokens":100}}"#;
        let completion = parse_message(body).expect("parses");
        assert_eq!(completion.generations, vec![Some("Hello".to_owned())]);
        assert_eq!((completion.input_tokens, completion.output_tokens), (12, 3));
        assert!(completion.empty_finish_reasons.is_empty());

        let tool = br#"{"content":[{"type":"tool_use","id":"t","name":"Person",
            "input":{"name":"Ada","age":36}}],"stop_reason":"tool_use",
            "usage":{"input_tokens":1,"output_tokens":2}}"#;
        assert_eq!(
            parse_message(tool).expect("parses").generations,
            vec![Some(r#"{"name":"Ada","age":36}"#.to_owned())]
        );

        let thinking_first = br#"{"content":[{"type":"thinking","thinking":"hm"},
            {"type":"text","text":"ok"}],"usage":{"input_tokens":1,"output_tokens":2}}"#;
        assert_eq!(
            parse_message(thinking_first).expect("parses").generations,
            vec![Some("ok".to_owned())]
        );
    }

    #[test]
    fn an_empty_message_is_a_none_generation_with_its_stop_reason() {
        let body = br#"{"content":[],"stop_reason":"max_tokens","usage":{"input_tokens":4,"output_tokens":0}}"#;
        let completion = parse_message(body).expect("parses");
        assert_eq!(completion.generations, vec![None]);
        assert_eq!(
            completion.empty_finish_reasons,
            vec![Some("max_tokens".to_owned())]
        );
        assert_eq!(completion.input_tokens, 4);
    }

    #[test]
    fn invalid_bodies_are_errors() {
        assert!(matches!(
            parse_message(b"{\"content\": [ not json"),
            Err(ApiError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_message(br#"{"choices": []}"#),
            Err(ApiError::InvalidResponse(_))
        ));
    }

    #[test]
    fn error_bodies_keep_type_and_message() {
        let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        assert_eq!(error_message(body), "overloaded_error: Overloaded");
        assert_eq!(error_message(br#"{"error":{"message":"plain"}}"#), "plain");
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
