//! Ollama's own API: `POST …/api/chat` and `POST …/api/generate` (whatever the prefix, as
//! an `OLLAMA_HOST` may have a path).
//!
//! The answer echoes the request text (`echo: <last message>` or `echo: <prompt>`), with
//! Ollama's statistics (`prompt_eval_count`, `eval_count`, durations) and `done_reason`.
//! Like Ollama, a body without `"stream": false` is answered as a stream (NDJSON chunks),
//! and a body without a model is a 400 `{"error": "model is required"}`. The directives of
//! the request text apply, with Ollama's `{"error": "..."}` error bodies.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::directives::{self, text_of};
use crate::openai::count_tokens;
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
    let Ok(body) = serde_json::from_slice::<Value>(call.body) else {
        return Some(reply_json(
            400,
            &error_body(400, "invalid character in JSON body"),
        ));
    };
    if body
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Some(reply_json(400, &error_body(400, "model is required")));
    }
    let text = text_of(&body);
    let script = match directives::run(state, &text, &error_body).await {
        Ok(script) => script,
        Err(reply) => return Some(reply),
    };
    let answer = script
        .content
        .clone()
        .unwrap_or_else(|| format!("echo: {text}"));
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
        return Some(stream(chat, &model, &answer, prompt_tokens, answer_tokens));
    }
    let mut payload = last_chunk(&model, prompt_tokens, answer_tokens);
    if chat {
        payload["message"] = json!({"role": "assistant", "content": answer});
    } else {
        payload["response"] = Value::String(answer);
    }
    Some(directives::answer(&script, &payload))
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
