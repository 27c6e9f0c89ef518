//! Parsing of OpenAI's `chat.completion` and `text_completion` bodies into what distilabel
//! returns, and of its error bodies.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::http::{ApiError, Completion, TokenLogprob};

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ChatCompletion {
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatMessage,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<ChatLogprobs>,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChatLogprobs {
    #[serde(default)]
    content: Option<Vec<ChatTokenLogprobs>>,
}

#[derive(Deserialize)]
struct ChatTokenLogprobs {
    #[serde(default)]
    top_logprobs: Vec<ChatTopLogprob>,
}

#[derive(Deserialize)]
struct ChatTopLogprob {
    token: String,
    logprob: f64,
}

#[derive(Deserialize)]
struct TextCompletion {
    choices: Vec<TextChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct TextChoice {
    text: String,
    #[serde(default)]
    logprobs: Option<TextLogprobs>,
}

#[derive(Deserialize)]
struct TextLogprobs {
    /// Per position, token -> logprob, in the server's order.
    #[serde(default)]
    top_logprobs: Option<Vec<Option<Map<String, Value>>>>,
}

/// An empty completion with the token counts of `usage` (0 without usage).
fn counting(usage: Option<&Usage>) -> Completion {
    usage.map_or_else(Completion::default, |u| {
        Completion::counting(
            u.prompt_tokens.unwrap_or(0),
            u.completion_tokens.unwrap_or(0),
        )
    })
}

fn invalid(error: &serde_json::Error) -> ApiError {
    ApiError::InvalidResponse(error.to_string())
}

/// Parses a `/chat/completions` response body.
pub fn parse_chat(body: &[u8]) -> Result<Completion, ApiError> {
    parse_chat_choices(body, usize::MAX)
}

/// Parses a chat completion body, reading at most `most` choices (OpenAI-shaped APIs whose
/// clients read only the first, such as TGI's Messages API, pass 1).
pub fn parse_chat_choices(body: &[u8], most: usize) -> Result<Completion, ApiError> {
    let parsed: ChatCompletion = serde_json::from_slice(body).map_err(|e| invalid(&e))?;
    let mut completion = counting(parsed.usage.as_ref());
    for choice in parsed.choices.into_iter().take(most) {
        if choice.message.content.is_none() {
            completion.empty_finish_reasons.push(choice.finish_reason);
        }
        completion.generations.push(choice.message.content);
        let positions: Vec<Option<Vec<TokenLogprob>>> = choice
            .logprobs
            .and_then(|logprobs| logprobs.content)
            .unwrap_or_default()
            .into_iter()
            .map(|position| {
                Some(
                    position
                        .top_logprobs
                        .into_iter()
                        .map(|top| TokenLogprob {
                            token: top.token,
                            logprob: top.logprob,
                        })
                        .collect(),
                )
            })
            .collect();
        // distilabel keeps a choice's logprobs only when there are some.
        if !positions.is_empty() {
            completion.logprobs.push(positions);
        }
    }
    Ok(completion)
}

/// Parses a `/completions` response body.
pub fn parse_text(body: &[u8]) -> Result<Completion, ApiError> {
    let parsed: TextCompletion = serde_json::from_slice(body).map_err(|e| invalid(&e))?;
    let mut completion = counting(parsed.usage.as_ref());
    for choice in parsed.choices {
        completion.generations.push(Some(choice.text));
        let Some(top_logprobs) = choice.logprobs.and_then(|l| l.top_logprobs) else {
            continue;
        };
        let positions: Vec<Option<Vec<TokenLogprob>>> = top_logprobs
            .into_iter()
            .map(|position| {
                position.map(|alternatives| {
                    alternatives
                        .into_iter()
                        .map(|(token, logprob)| TokenLogprob {
                            token,
                            logprob: logprob.as_f64().unwrap_or(f64::NAN),
                        })
                        .collect()
                })
            })
            .collect();
        if !positions.is_empty() {
            completion.logprobs.push(positions);
        }
    }
    Ok(completion)
}

/// The total tokens a response body reports (0 without usage); fails if it is not JSON.
pub fn total_tokens(body: &[u8]) -> Result<u64, ApiError> {
    // Only `usage` is read (the rest is checked to be JSON, not built into a tree: this runs
    // once per request of the command).
    #[derive(Deserialize)]
    struct Usage {
        #[serde(default)]
        usage: Option<Value>,
    }
    let Usage { usage } = serde_json::from_slice(body).map_err(|e| invalid(&e))?;
    let field = |name: &str| {
        usage
            .as_ref()
            .and_then(|u| u.get(name))
            .and_then(Value::as_u64)
    };
    Ok(field("total_tokens").unwrap_or_else(|| {
        field("prompt_tokens").unwrap_or(0) + field("completion_tokens").unwrap_or(0)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_with_logprobs_and_an_empty_choice() {
        let body = br#"{"choices":[
            {"message":{"content":"hi"},"finish_reason":"stop","logprobs":{"content":[
                {"token":"hi","logprob":-0.1,"top_logprobs":[{"token":"hi","logprob":-0.1},{"token":"yo","logprob":-2.0}]}]}},
            {"message":{"content":null},"finish_reason":"length","logprobs":{"content":[]}}],
            "usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
        let c = parse_chat(body).expect("parses");
        assert_eq!(c.generations, vec![Some("hi".into()), None]);
        assert_eq!(c.empty_finish_reasons, vec![Some("length".into())]);
        assert_eq!((c.input_tokens, c.output_tokens), (5, 1));
        assert_eq!(c.logprobs.len(), 1);
        assert_eq!(
            c.logprobs[0][0].as_ref().map(|alts| alts[1].token.as_str()),
            Some("yo")
        );
    }

    #[test]
    fn text_completion_keeps_token_order_and_missing_positions() {
        let body = br#"{"choices":[{"text":" there","logprobs":{"top_logprobs":[{" z":-0.2," a":-1.5},null]}}]}"#;
        let c = parse_text(body).expect("parses");
        assert_eq!(c.generations, vec![Some(" there".into())]);
        assert_eq!((c.input_tokens, c.output_tokens), (0, 0));
        let first = c.logprobs[0][0].as_ref().expect("position");
        assert_eq!(first[0].token, " z");
        assert_eq!(c.logprobs[0][1], None);
    }

    #[test]
    fn malformed_bodies_are_invalid_responses() {
        assert!(matches!(
            parse_chat(b"{\"choices\": [}"),
            Err(ApiError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_chat(b"{\"id\": 1}"),
            Err(ApiError::InvalidResponse(_))
        ));
    }
}
