//! Hugging Face Text Generation Inference's generate API: `POST /`, `POST /tgi` and the
//! router's `POST /hf-inference/models/{model_id}` answer as TGI's `/` route does (a
//! one-element array), `POST /generate` and `POST /tgi/generate` as its `/generate` route
//! (an object). With a TGI base URL `{origin}` or `{origin}/tgi`,
//! conversations go to `…/v1/chat/completions`, which the [`openai`](crate::openai) module
//! answers in the Messages API's (OpenAI's) shape.
//!
//! The generated text echoes the inputs (`echo: <inputs>`, or the `content` directive),
//! preceded by the inputs with `return_full_text`; `details` (generated tokens, seed, the
//! tokens, and `top_n_tokens` alternatives per position under `top_tokens`) when asked.
//! Errors have TGI's shape, `{"error": "...", "error_type": "..."}`.

use serde_json::{Value, json};

use crate::directives;
use crate::openai::count_tokens;
use crate::{Call, Reply, State, reply_json};

/// TGI's `error_type` for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "validation",
        424 => "generation",
        429 => "overloaded",
        503 => "unavailable",
        _ => "incomplete_generation",
    }
}

fn error_body(status: u16, message: &str) -> Value {
    json!({"error": message, "error_type": error_type(status)})
}

/// Answers the request if it is a generate call.
pub(crate) async fn route(state: &State, call: &Call<'_>) -> Option<Reply> {
    if call.method != "POST" {
        return None;
    }
    let as_array = match call.path {
        "/" | "/tgi" | "/tgi/" => true,
        "/generate" | "/tgi/generate" => false,
        // The Hugging Face router's HF Inference route for a model id.
        path if path.starts_with("/hf-inference/models/") => true,
        _ => return None,
    };
    let Ok(body) = serde_json::from_slice::<Value>(call.body) else {
        let error = error_body(
            422,
            "Failed to deserialize the JSON body into the target type",
        );
        return Some(reply_json(422, &error));
    };
    let Some(inputs) = body.get("inputs").and_then(Value::as_str) else {
        let error = error_body(422, "missing field `inputs`");
        return Some(reply_json(422, &error));
    };
    let script = match directives::run(state, call, inputs, &error_body).await {
        Ok(script) => script,
        Err(reply) => return Some(reply),
    };
    let parameters = body.get("parameters").cloned().unwrap_or(Value::Null);
    let generation = generation(inputs, script.content.as_deref(), &parameters);
    let payload = if as_array {
        json!([generation])
    } else {
        generation
    };
    Some(directives::answer(&script, &payload))
}

/// One generation, as TGI returns it.
fn generation(inputs: &str, content: Option<&str>, parameters: &Value) -> Value {
    let answer = content.map_or_else(|| format!("echo: {inputs}"), str::to_owned);
    let flag = |name: &str| parameters.get(name).and_then(Value::as_bool) == Some(true);
    let generated_text = if flag("return_full_text") {
        format!("{inputs}{answer}")
    } else {
        answer.clone()
    };
    if !flag("details") {
        return json!({"generated_text": generated_text});
    }
    let words: Vec<&str> = answer.split_whitespace().collect();
    let tokens: Vec<Value> = words
        .iter()
        .enumerate()
        .map(|(id, word)| json!({"id": id, "text": word, "logprob": -0.1, "special": false}))
        .collect();
    let mut details = serde_json::Map::new();
    details.insert("finish_reason".into(), json!("eos_token"));
    details.insert("generated_tokens".into(), json!(count_tokens(&answer)));
    let seed = parameters.get("seed").cloned().unwrap_or(Value::Null);
    details.insert("seed".into(), seed);
    details.insert("prefill".into(), json!([]));
    details.insert("tokens".into(), Value::Array(tokens));
    // TGI leaves `top_tokens` out unless `top_n_tokens` is set.
    if let Some(top) = parameters.get("top_n_tokens").and_then(Value::as_u64) {
        let positions: Vec<Value> = words
            .iter()
            .enumerate()
            .map(|(id, word)| {
                let alternatives: Vec<Value> = (0..top.max(1))
                    .map(|rank| {
                        let text = if rank == 0 {
                            (*word).to_owned()
                        } else {
                            format!("alt{rank}")
                        };
                        #[allow(clippy::cast_precision_loss)]
                        let logprob = -0.5 * rank as f64 - 0.1;
                        json!({"id": id, "text": text, "logprob": logprob, "special": false})
                    })
                    .collect();
                Value::Array(alternatives)
            })
            .collect();
        details.insert("top_tokens".into(), Value::Array(positions));
    }
    json!({"generated_text": generated_text, "details": details})
}
