//! OpenAI's generation endpoints and their compatible twins: `…/chat/completions`,
//! `…/completions` and `GET …/models`, whatever the prefix (`/v1`, Azure's
//! `/openai/deployments/{deployment}`, Groq's `/openai/v1`...). Under a `/together/` prefix
//! choices finish with Together's `"eos"` instead of `"stop"`.

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
    let Ok(body) = serde_json::from_slice::<Value>(call.body) else {
        let error = error_body(400, "We could not parse the JSON body of your request.");
        return Some(reply_json(400, &error));
    };
    let text = text_of(&body);
    let script = match directives::run(state, call, &text, &error_body).await {
        Ok(script) => script,
        Err(reply) => return Some(reply),
    };
    let finish_reason = if path.contains("/together/") {
        "eos"
    } else {
        "stop"
    };
    let content = script.content.as_deref();
    let payload = if chat {
        chat_completion(&body, &text, content, finish_reason)
    } else {
        text_completion(&body, &text, content, finish_reason)
    };
    Some(directives::answer(&script, &payload))
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
