//! Ollama's own API: `POST …/api/chat` and `POST …/api/generate` (whatever the prefix, as
//! an `OLLAMA_HOST` may have a path).
//!
//! The answer echoes the request text (`echo: <last message>` or `echo: <prompt>`), with
//! Ollama's statistics (`prompt_eval_count`, `eval_count`, durations) and `done_reason`.
//! Like Ollama, a body without `"stream": false` is answered as a stream (NDJSON chunks),
//! and a body without a model is a 400 `{"error": "model is required"}`. The directives of
//! the request text apply, with Ollama's `{"error": "..."}` error bodies.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::directives::{self, text_of};
use crate::openai::{PlainMessage, count_message_tokens, count_tokens};
use crate::{Call, Reply, State, reply_bytes, reply_json};

/// When every answer was created.
const CREATED_AT: &str = "2025-01-01T00:00:00Z";

fn error_body(_status: u16, message: &str) -> Value {
    json!({"error": message})
}

/// Answers the request if its path is one of these endpoints.
pub(crate) async fn route(state: &State, call: &Call<'_>) -> Option<Reply> {
    let chat = call.path.ends_with("/api/chat");
    if !chat && !call.path.ends_with("/api/generate") {
        return None;
    }
    if call.method != "POST" {
        return Some(reply_json(405, &error_body(405, "method not allowed")));
    }
    if let Some(request) = PlainRequest::parse(call.body, chat) {
        return Some(plain(state, call, &request, chat).await);
    }
    Some(general(state, call, chat).await)
}

/// Any request to these endpoints, read as a `serde_json::Value`.
async fn general(state: &State, call: &Call<'_>, chat: bool) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(call.body) else {
        return reply_json(400, &error_body(400, "invalid character in JSON body"));
    };
    if body
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return reply_json(400, &error_body(400, "model is required"));
    }
    let text = text_of(&body);
    let script = match directives::run(state, call, &text, &error_body).await {
        Ok(script) => script,
        Err(reply) => return reply,
    };
    let answer = script.answer_text(&text);
    let prompt = if chat {
        body.get("messages")
            .map(Value::to_string)
            .unwrap_or_default()
    } else {
        text
    };
    let prompt_tokens = count_tokens(&prompt);
    let answer_tokens = count_tokens(&answer);
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let streamed = body.get("stream").and_then(Value::as_bool) != Some(false);
    if streamed {
        return stream(chat, &model, &answer, prompt_tokens, answer_tokens);
    }
    let mut payload = last_chunk(&model, prompt_tokens, answer_tokens);
    if chat {
        payload["message"] = json!({"role": "assistant", "content": answer});
    } else {
        payload["response"] = Value::String(answer);
    }
    directives::answer(&script, &payload)
}

/// A request in its most common shape: a model, `"stream": false`, and for a chat messages
/// of a string role and content only (no `prompt`), for a generate a string prompt. It is
/// answered from typed structs, with the bytes the general path would answer; any other
/// request goes that path.
#[derive(Deserialize)]
struct PlainRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    stream: Option<bool>,
    #[serde(borrow)]
    messages: Option<Vec<PlainMessage<'a>>>,
    /// A chat's text would be its `prompt` (`text_of`); a generate's text is it.
    #[serde(borrow)]
    prompt: Option<Cow<'a, str>>,
}

impl<'a> PlainRequest<'a> {
    fn parse(body: &'a [u8], chat: bool) -> Option<Self> {
        let request: Self = serde_json::from_slice(body).ok()?;
        let shape = if chat {
            request.messages.is_some() && request.prompt.is_none()
        } else {
            request.prompt.is_some()
        };
        (shape && !request.model.is_empty() && request.stream == Some(false)).then_some(request)
    }

    /// The request text, as `text_of` reads it.
    fn text(&self) -> &str {
        match (&self.prompt, &self.messages) {
            (Some(prompt), _) => prompt,
            (_, Some(messages)) => messages.last().map_or("", |message| &message.content),
            _ => "",
        }
    }
}

/// The answer, in [`last_chunk`]'s order, then the message (chat) or the response.
#[derive(Serialize)]
struct PlainAnswer<'a> {
    model: &'a str,
    created_at: &'static str,
    done: bool,
    done_reason: &'static str,
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: usize,
    prompt_eval_duration: u64,
    eval_count: usize,
    eval_duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<PlainMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a str>,
}

async fn plain(state: &State, call: &Call<'_>, request: &PlainRequest<'_>, chat: bool) -> Reply {
    let text = request.text();
    let script = match directives::run(state, call, text, &error_body).await {
        Ok(script) => script,
        Err(reply) => return reply,
    };
    let answer = script.answer_text(text);
    let prompt_tokens = match (&request.messages, chat) {
        (Some(messages), true) => count_message_tokens(messages),
        _ => count_tokens(text),
    };
    let payload = PlainAnswer {
        model: &request.model,
        created_at: CREATED_AT,
        done: true,
        done_reason: "stop",
        total_duration: 1_000_000,
        load_duration: 1_000,
        prompt_eval_count: prompt_tokens,
        prompt_eval_duration: 10_000,
        eval_count: count_tokens(&answer),
        eval_duration: 100_000,
        message: chat.then(|| PlainMessage {
            role: Cow::Borrowed("assistant"),
            content: Cow::Borrowed(&answer),
        }),
        response: (!chat).then_some(answer.as_str()),
    };
    directives::answer(&script, &payload)
}

/// The final object of an answer: done, with the statistics.
fn last_chunk(model: &Value, prompt_tokens: usize, answer_tokens: usize) -> Value {
    json!({
        "model": model,
        "created_at": CREATED_AT,
        "done": true,
        "done_reason": "stop",
        "total_duration": 1_000_000,
        "load_duration": 1_000,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 10_000,
        "eval_count": answer_tokens,
        "eval_duration": 100_000,
    })
}

/// A streamed answer: one NDJSON line per word, then the final object with an empty text.
fn stream(
    chat: bool,
    model: &Value,
    answer: &str,
    prompt_tokens: usize,
    answer_tokens: usize,
) -> Reply {
    let piece = |text: &str| {
        if chat {
            json!({"message": {"role": "assistant", "content": text}})
        } else {
            json!({"response": text})
        }
    };
    let mut lines = String::new();
    for word in answer.split_inclusive(' ') {
        let mut chunk = piece(word);
        chunk["model"] = model.clone();
        chunk["created_at"] = Value::String(CREATED_AT.into());
        chunk["done"] = Value::Bool(false);
        lines.push_str(&chunk.to_string());
        lines.push('\n');
    }
    let mut last = last_chunk(model, prompt_tokens, answer_tokens);
    if let (Value::Object(last), Value::Object(empty)) = (&mut last, piece("")) {
        last.extend(empty);
    }
    lines.push_str(&last.to_string());
    lines.push('\n');
    reply_bytes(200, "application/x-ndjson", Bytes::from(lines))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hyper::header::HeaderMap;

    use super::*;
    use crate::test_support::{post, read};

    /// Requests of the plain shape, with whether they are chats.
    const PLAIN: [(bool, &str); 7] = [
        (
            true,
            r#"{"model":"llama3","messages":[{"role":"user","content":"question number 1"}],"stream":false,"options":{"temperature":0.5},"keep_alive":"5m","format":""}"#,
        ),
        (
            true,
            r#"{"stream":false,"model":"m","messages":[{"content":"a  b\n c","role":"user"}],"prompt":null}"#,
        ),
        (true, r#"{"model":"m","messages":[],"stream":false}"#),
        (
            true,
            r#"{"model":"m","messages":[{"role":"user","content":"[[status=500]]"}],"stream":false}"#,
        ),
        (
            false,
            r#"{"model":"m","prompt":"raw prompt text","raw":true,"stream":false}"#,
        ),
        (
            false,
            r#"{"model":"m","prompt":" x [[content=y_z]]","stream":false,"messages":[{"role":"user","content":"ignored"}]}"#,
        ),
        (false, r#"{"model":"m","prompt":"","stream":false}"#),
    ];

    /// Requests the general path answers, with whether they are chats.
    const GENERAL: [(bool, &str); 8] = [
        (
            true,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        ),
        (
            true,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#,
        ),
        (true, r#"{"model":"","messages":[],"stream":false}"#),
        (true, r#"{"messages":[],"stream":false}"#),
        (
            true,
            r#"{"model":"m","messages":[{"role":"user","content":"x","images":["a"]}],"stream":false}"#,
        ),
        (
            true,
            r#"{"model":"m","prompt":"p","messages":[],"stream":false}"#,
        ),
        (false, r#"{"model":"m","prompt":7,"stream":false}"#),
        (false, r#"{"model":"m","stream":false}"#),
    ];

    #[tokio::test]
    async fn a_plain_request_is_answered_as_the_general_path_answers_it() {
        let headers = HeaderMap::new();
        for (chat, text) in PLAIN {
            let body = Bytes::from_static(text.as_bytes());
            let path = if chat { "/api/chat" } else { "/api/generate" };
            let call = post(path, &headers, &body);
            let request = PlainRequest::parse(&body, chat).unwrap_or_else(|| panic!("{text}"));
            let plain = plain(&State::default(), &call, &request, chat).await;
            let general = general(&State::default(), &call, chat).await;
            assert_eq!(read(plain).await, read(general).await, "{text}");
        }
    }

    #[test]
    fn other_requests_are_left_to_the_general_path() {
        for (chat, text) in GENERAL {
            assert!(
                PlainRequest::parse(text.as_bytes(), chat).is_none(),
                "{text}"
            );
        }
    }
}
