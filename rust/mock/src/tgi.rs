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

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
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
    if let Some(request) = PlainGenerateRequest::parse(call.body) {
        return Some(plain_generate(state, call, &request, as_array).await);
    }
    Some(general(state, call, as_array).await)
}

/// Any generate request, read as a `serde_json::Value`.
async fn general(state: &State, call: &Call<'_>, as_array: bool) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(call.body) else {
        let error = error_body(
            422,
            "Failed to deserialize the JSON body into the target type",
        );
        return reply_json(422, &error);
    };
    let Some(inputs) = body.get("inputs").and_then(Value::as_str) else {
        let error = error_body(422, "missing field `inputs`");
        return reply_json(422, &error);
    };
    let script = match directives::run(state, call, inputs, &error_body).await {
        Ok(script) => script,
        Err(reply) => return reply,
    };
    let parameters = body.get("parameters").cloned().unwrap_or(Value::Null);
    let generation = generation(inputs, &script.answer_text(inputs), &parameters);
    let payload = if as_array {
        json!([generation])
    } else {
        generation
    };
    directives::answer(&script, &payload)
}

/// A generate request in its most common shape: string inputs, and parameters (if any) whose
/// `details`, `return_full_text` and `seed` have their usual types and without
/// `top_n_tokens`. It is answered from typed structs, with the bytes the general path
/// ([`generation`]) would answer; any other request goes that path.
#[derive(Deserialize)]
struct PlainGenerateRequest<'a> {
    #[serde(borrow)]
    inputs: Cow<'a, str>,
    parameters: Option<PlainParameters>,
}

#[derive(Deserialize)]
struct PlainParameters {
    details: Option<bool>,
    return_full_text: Option<bool>,
    seed: Option<u64>,
    top_n_tokens: Option<Value>,
}

impl<'a> PlainGenerateRequest<'a> {
    fn parse(body: &'a [u8]) -> Option<Self> {
        let request: Self = serde_json::from_slice(body).ok()?;
        let plain = request
            .parameters
            .as_ref()
            .is_none_or(|parameters| parameters.top_n_tokens.is_none());
        plain.then_some(request)
    }
}

#[derive(Serialize)]
struct PlainGeneration<'a> {
    generated_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<PlainDetails<'a>>,
}

#[derive(Serialize)]
struct PlainDetails<'a> {
    finish_reason: &'static str,
    generated_tokens: usize,
    seed: Option<u64>,
    prefill: [(); 0],
    tokens: Vec<PlainToken<'a>>,
}

#[derive(Serialize)]
struct PlainToken<'a> {
    id: usize,
    text: &'a str,
    logprob: f64,
    special: bool,
}

async fn plain_generate(
    state: &State,
    call: &Call<'_>,
    request: &PlainGenerateRequest<'_>,
    as_array: bool,
) -> Reply {
    let inputs = request.inputs.as_ref();
    let script = match directives::run(state, call, inputs, &error_body).await {
        Ok(script) => script,
        Err(reply) => return reply,
    };
    let answer = script.answer_text(inputs);
    let parameters = request.parameters.as_ref();
    let return_full_text = parameters.and_then(|parameters| parameters.return_full_text);
    let details = parameters.and_then(|parameters| parameters.details);
    let generated_text = if return_full_text == Some(true) {
        Cow::Owned(format!("{inputs}{answer}"))
    } else {
        Cow::Borrowed(answer.as_str())
    };
    let details = (details == Some(true)).then(|| PlainDetails {
        finish_reason: "eos_token",
        generated_tokens: count_tokens(&answer),
        seed: parameters.and_then(|parameters| parameters.seed),
        prefill: [],
        tokens: answer
            .split_whitespace()
            .enumerate()
            .map(|(id, text)| PlainToken {
                id,
                text,
                logprob: -0.1,
                special: false,
            })
            .collect(),
    });
    let generation = PlainGeneration {
        generated_text: &generated_text,
        details,
    };
    if as_array {
        directives::answer(&script, &[generation])
    } else {
        directives::answer(&script, &generation)
    }
}

/// One generation, as TGI returns it.
fn generation(inputs: &str, answer: &str, parameters: &Value) -> Value {
    let flag = |name: &str| parameters.get(name).and_then(Value::as_bool) == Some(true);
    let generated_text = if flag("return_full_text") {
        format!("{inputs}{answer}")
    } else {
        answer.to_owned()
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
    details.insert("generated_tokens".into(), json!(count_tokens(answer)));
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hyper::header::HeaderMap;

    use super::*;
    use crate::test_support::{post, read};

    /// Requests of the plain shape (what distilabel's and our clients send, and variants).
    const PLAIN: [&str; 7] = [
        r#"{"inputs":"prompt number 1","parameters":{"details":true,"max_new_tokens":128,"seed":42,"stop_sequences":[],"temperature":1.0,"top_n_tokens":null}}"#,
        r#"{"inputs":"p","parameters":{"details":true,"return_full_text":true,"seed":null}}"#,
        r#"{"inputs":" spaced \n out\t x ","parameters":{"details":false}}"#,
        r#"{"inputs":"no parameters"}"#,
        r#"{"inputs":"null parameters","parameters":null}"#,
        r#"{"inputs":"x [[content=a_b_c]]","parameters":{"details":true}}"#,
        r#"{"inputs":"x [[status=503]]","parameters":{"details":true}}"#,
    ];

    const GENERAL: [&str; 6] = [
        r#"{"inputs":"x","parameters":{"details":true,"top_n_tokens":2}}"#,
        r#"{"inputs":"x","parameters":{"details":"yes"}}"#,
        r#"{"inputs":"x","parameters":{"seed":-1}}"#,
        r#"{"inputs":["x"]}"#,
        r#"{"parameters":{}}"#,
        r#"not json"#,
    ];

    #[tokio::test]
    async fn a_plain_generate_request_is_answered_as_the_general_path_answers_it() {
        let headers = HeaderMap::new();
        for text in PLAIN {
            let body = Bytes::from_static(text.as_bytes());
            let call = post("/tgi", &headers, &body);
            let request = PlainGenerateRequest::parse(&body).unwrap_or_else(|| panic!("{text}"));
            for as_array in [true, false] {
                let plain = plain_generate(&State::default(), &call, &request, as_array).await;
                let general = general(&State::default(), &call, as_array).await;
                assert_eq!(read(plain).await, read(general).await, "{text}");
            }
        }
    }

    #[test]
    fn other_generate_requests_are_left_to_the_general_path() {
        for text in GENERAL {
            assert!(
                PlainGenerateRequest::parse(text.as_bytes()).is_none(),
                "{text}"
            );
        }
    }
}
