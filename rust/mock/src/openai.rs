//! OpenAI's generation endpoints and their compatible twins: `…/chat/completions`,
//! `…/completions` and `GET …/models`, whatever the prefix (`/v1`, Azure's
//! `/openai/deployments/{deployment}`, Groq's `/openai/v1`...). Under a `/together/` prefix
//! choices finish with Together's `"eos"` instead of `"stop"`.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::directives::{self, text_of};
use crate::{Call, Reply, State, reply_json};

/// The model `GET …/models` lists (what vLLM's server answers with).
pub const SERVED_MODEL: &str = "mock-served-model";

fn error_body(_status: u16, message: &str) -> Value {
    json!({"error": {"message": message, "type": "mock"}})
}

/// Answers the request if its path is one of these endpoints.
pub(crate) async fn route(state: &State, call: &Call<'_>) -> Option<Reply> {
    let path = call.path;
    if call.method == "GET" && path.ends_with("/models") {
        let models = json!({"object": "list", "data": [
            {"id": SERVED_MODEL, "object": "model", "created": 0, "owned_by": "mock"}]});
        return Some(reply_json(200, &models));
    }
    let chat = path.ends_with("/chat/completions");
    if !chat && !path.ends_with("/completions") {
        return None;
    }
    let finish_reason = if path.contains("/together/") {
        "eos"
    } else {
        "stop"
    };
    if chat && let Some(request) = PlainChatRequest::parse(call.body) {
        return Some(plain_chat(state, call, &request, finish_reason).await);
    }
    Some(general(state, call, chat, finish_reason).await)
}

/// Any request to these endpoints, read as a `serde_json::Value`.
async fn general(state: &State, call: &Call<'_>, chat: bool, finish_reason: &str) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(call.body) else {
        let error = error_body(400, "We could not parse the JSON body of your request.");
        return reply_json(400, &error);
    };
    let text = text_of(&body);
    let script = match directives::run(state, call, &text, &error_body).await {
        Ok(script) => script,
        Err(reply) => return reply,
    };
    let content = script.content.as_deref();
    let payload = if chat {
        chat_completion(&body, &text, content, finish_reason)
    } else {
        text_completion(&body, &text, content, finish_reason)
    };
    directives::answer(&script, &payload)
}

/// A chat request in its most common shape: a string model, messages of a string role and
/// content only, one choice, no logprobs. It is answered from typed structs, with the bytes
/// the general path ([`chat_completion`]) would answer; any other request goes that path.
#[derive(Deserialize)]
struct PlainChatRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    messages: Vec<PlainMessage<'a>>,
    n: Option<u64>,
    logprobs: Option<bool>,
    /// The request text is the `prompt` when there is one (`text_of`): not plain.
    prompt: Option<IgnoredAny>,
}

/// A message of only a string role and content (in the answer: the assistant's message).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlainMessage<'a> {
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    #[serde(borrow)]
    pub content: Cow<'a, str>,
}

impl<'a> PlainChatRequest<'a> {
    fn parse(body: &'a [u8]) -> Option<Self> {
        let request: Self = serde_json::from_slice(body).ok()?;
        let plain = request.prompt.is_none()
            && request.n.is_none_or(|n| n == 1)
            && request.logprobs != Some(true);
        plain.then_some(request)
    }
}

#[derive(Serialize)]
struct PlainChatCompletion<'a> {
    id: &'static str,
    object: &'static str,
    created: u8,
    model: &'a str,
    choices: [PlainChoice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct PlainChoice<'a> {
    index: u8,
    message: PlainMessage<'a>,
    finish_reason: &'a str,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
}

/// The tokens the mock counts in a conversation: the words of its JSON (as
/// [`chat_completion`] counts them in the request's `messages`).
pub(crate) fn count_message_tokens(messages: &[PlainMessage<'_>]) -> usize {
    count_tokens(&serde_json::to_string(messages).unwrap_or_default())
}

async fn plain_chat(
    state: &State,
    call: &Call<'_>,
    request: &PlainChatRequest<'_>,
    finish_reason: &str,
) -> Reply {
    let text = request
        .messages
        .last()
        .map_or("", |message| message.content.as_ref());
    let script = match directives::run(state, call, text, &error_body).await {
        Ok(script) => script,
        Err(reply) => return reply,
    };
    let answer = script.answer_text(text);
    let prompt_tokens = count_message_tokens(&request.messages);
    let completion_tokens = count_tokens(&answer);
    let completion = PlainChatCompletion {
        id: "chatcmpl-mock",
        object: "chat.completion",
        created: 0,
        model: &request.model,
        choices: [PlainChoice {
            index: 0,
            message: PlainMessage {
                role: Cow::Borrowed("assistant"),
                content: Cow::Borrowed(&answer),
            },
            finish_reason,
            logprobs: None,
        }],
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        },
    };
    directives::answer(&script, &completion)
}

pub(crate) fn count_tokens(text: &str) -> usize {
    text.split_whitespace().count().max(1)
}

pub(crate) fn chat_completion(
    body: &Value,
    text: &str,
    content: Option<&str>,
    finish_reason: &str,
) -> Value {
    let n = body.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
    let answer = content.map_or_else(|| format!("echo: {text}"), str::to_owned);
    let logprobs = body
        .get("logprobs")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let top = body
        .get("top_logprobs")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    let choices: Vec<Value> = (0..n)
        .map(|index| {
            let positions: Vec<Value> = answer
                .split_whitespace()
                .map(|token| {
                    let alternatives: Vec<Value> = (0..top)
                        .map(|rank| json!({"token": if rank == 0 { token.to_owned() } else { format!("alt{rank}") }, "logprob": -0.5 * rank as f64 - 0.1, "bytes": null}))
                        .collect();
                    json!({"token": token, "logprob": -0.1, "bytes": null, "top_logprobs": alternatives})
                })
                .collect();
            json!({
                "index": index,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": finish_reason,
                "logprobs": if logprobs { json!({"content": positions}) } else { Value::Null },
            })
        })
        .collect();
    let prompt_tokens = count_tokens(
        &body
            .get("messages")
            .map(Value::to_string)
            .unwrap_or_default(),
    );
    let completion_tokens = count_tokens(&answer) * usize::try_from(n).unwrap_or(1);
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })
}

fn text_completion(body: &Value, text: &str, content: Option<&str>, finish_reason: &str) -> Value {
    let n = body.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
    let answer = content.map_or_else(|| format!(" echo: {text}"), str::to_owned);
    let top = body.get("logprobs").and_then(Value::as_u64);
    let choices: Vec<Value> = (0..n)
        .map(|index| {
            let logprobs = top.map_or(Value::Null, |top| {
                let positions: Vec<Value> = answer
                    .split_whitespace()
                    .map(|token| {
                        let mut alternatives = serde_json::Map::new();
                        alternatives.insert(token.to_owned(), json!(-0.1));
                        for rank in 1..top {
                            alternatives.insert(format!("alt{rank}"), json!(-0.5 * rank as f64 - 0.1));
                        }
                        Value::Object(alternatives)
                    })
                    .collect();
                json!({"tokens": [], "token_logprobs": [], "top_logprobs": positions, "text_offset": []})
            });
            json!({"index": index, "text": answer, "finish_reason": finish_reason, "logprobs": logprobs})
        })
        .collect();
    let prompt_tokens = count_tokens(text);
    let completion_tokens = count_tokens(&answer) * usize::try_from(n).unwrap_or(1);
    json!({
        "id": "cmpl-mock",
        "object": "text_completion",
        "created": 0,
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hyper::header::HeaderMap;

    use super::*;
    use crate::test_support::{post, read};

    /// Requests of the plain shape: whitespace of every kind, escapes, keys in another
    /// order, fields that do not change the answer, directives.
    const PLAIN: [&str; 6] = [
        r#"{"model":"bench","messages":[{"role":"user","content":"question number 1"}]}"#,
        r#"{"messages": [{"content": " a \n b\t c  \u00a0 d ", "role": "user"}], "model": "m", "n": 1, "logprobs": false, "temperature": 0.5, "max_tokens": 9}"#,
        r#"{"model":"m\"q","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"caf\u00e9 \u0085 x\u000by [[content=hello_there]]"}],"n":null,"prompt":null,"logprobs":null}"#,
        r#"{"model":"m","messages":[]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"[[status=429 retry_after=1]]"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"[[truncated]] half"}]}"#,
    ];

    /// Requests the general path answers.
    const GENERAL: [&str; 8] = [
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x","name":"bob"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}"#,
        r#"{"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"prompt":"y"}"#,
        r#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"m","model":"n","messages":[]}"#,
    ];

    #[tokio::test]
    async fn a_plain_chat_request_is_answered_as_the_general_path_answers_it() {
        let headers = HeaderMap::new();
        for text in PLAIN {
            let body = Bytes::from_static(text.as_bytes());
            let call = post("/v1/chat/completions", &headers, &body);
            let request = PlainChatRequest::parse(&body).unwrap_or_else(|| panic!("{text}"));
            for finish_reason in ["stop", "eos"] {
                let plain = plain_chat(&State::default(), &call, &request, finish_reason).await;
                let general = general(&State::default(), &call, true, finish_reason).await;
                assert_eq!(read(plain).await, read(general).await, "{text}");
            }
        }
    }

    #[test]
    fn other_chat_requests_are_left_to_the_general_path() {
        for text in GENERAL {
            assert!(PlainChatRequest::parse(text.as_bytes()).is_none(), "{text}");
        }
    }
}
