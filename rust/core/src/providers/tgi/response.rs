//! Parsing of Text Generation Inference's answers into what distilabel's
//! `InferenceEndpointsLLM` returns: the Messages API (`/v1/chat/completions`, OpenAI-shaped,
//! of which only the first choice counts) and the generate API (`POST {base_url}`: an
//! object, or a one-element array as TGI's `/` route and the HF Inference API answer).

use serde::Deserialize;

use crate::http::{ApiError, Completion, TokenLogprob};
use crate::providers::openai;

#[derive(Deserialize)]
struct Generation {
    generated_text: String,
    #[serde(default)]
    details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    generated_tokens: Option<u64>,
    /// Per generated position, the `top_n_tokens` alternatives (absent unless asked).
    #[serde(default)]
    top_tokens: Option<Vec<Vec<TopToken>>>,
}

#[derive(Deserialize)]
struct TopToken {
    text: String,
    #[serde(default)]
    logprob: Option<f64>,
}

fn invalid(error: &serde_json::Error) -> ApiError {
    ApiError::InvalidResponse(error.to_string())
}

/// Parses a Messages API (`/v1/chat/completions`) body, OpenAI-shaped: the first choice's
/// content, the usage of the request, and the first choice's logprobs when it has some
/// (distilabel reads `choices[0]` only; TGI answers one choice).
pub fn parse_chat(body: &[u8]) -> Result<Completion, ApiError> {
    let completion = openai::response::parse_chat_choices(body, 1)?;
    if completion.generations.is_empty() {
        return Err(ApiError::InvalidResponse(
            "the chat completion has no choices".into(),
        ));
    }
    Ok(completion)
}

/// The generation of a generate body: an object, or the first element of an array.
fn generation(body: &[u8]) -> Result<Generation, ApiError> {
    let is_array = body
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|byte| *byte == b'[');
    if !is_array {
        return serde_json::from_slice(body).map_err(|e| invalid(&e));
    }
    let many: Vec<Generation> = serde_json::from_slice(body).map_err(|e| invalid(&e))?;
    many.into_iter()
        .next()
        .ok_or_else(|| ApiError::InvalidResponse("the generate response is an empty list".into()))
}

/// Parses a generate (`POST {base_url}`) body: `generated_text`, the generated tokens of
/// `details` (0 without details; the prompt's tokens are not reported, distilabel counts
/// them on its side), and `details.top_tokens` as the logprobs of the one generation (an
/// empty list of positions when `top_tokens` is an empty list, as distilabel returns it).
pub fn parse_generate(body: &[u8]) -> Result<Completion, ApiError> {
    let parsed = generation(body)?;
    let details = parsed.details;
    let output_tokens = details
        .as_ref()
        .and_then(|d| d.generated_tokens)
        .unwrap_or(0);
    let mut completion = Completion::counting(0, output_tokens);
    completion.generations.push(Some(parsed.generated_text));
    if let Some(top_tokens) = details.and_then(|d| d.top_tokens) {
        completion.logprobs.push(
            top_tokens
                .into_iter()
                .map(|alternatives| {
                    Some(
                        alternatives
                            .into_iter()
                            .map(|top| TokenLogprob {
                                token: top.text,
                                logprob: top.logprob.unwrap_or(f64::NAN),
                            })
                            .collect(),
                    )
                })
                .collect(),
        );
    }
    Ok(completion)
}

/// The tokens a generate body reports (`details.generated_tokens`, 0 without details);
/// fails if it is not a generate response.
pub fn generated_tokens(body: &[u8]) -> Result<u64, ApiError> {
    let parsed = generation(body)?;
    Ok(parsed.details.and_then(|d| d.generated_tokens).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DETAILS: &str = r#"{"generated_text":" Paris is","details":{"finish_reason":"length",
        "generated_tokens":2,"seed":42,"prefill":[],
        "tokens":[{"id":1,"text":" Paris","logprob":-0.1,"special":false},
                  {"id":2,"text":" is","logprob":-0.3,"special":false}],
        "top_tokens":[[{"id":1,"text":" Paris","logprob":-0.1,"special":false},
                       {"id":7,"text":" Lyon","logprob":-2.5,"special":false}],
                      [{"id":2,"text":" is","logprob":-0.3,"special":false}]]}}"#;

    #[test]
    fn generate_object_with_details_and_top_tokens() {
        let c = parse_generate(DETAILS.as_bytes()).expect("parses");
        assert_eq!(c.generations, vec![Some(" Paris is".to_owned())]);
        assert_eq!((c.input_tokens, c.output_tokens), (0, 2));
        assert_eq!(c.logprobs.len(), 1, "one generation");
        let positions = &c.logprobs[0];
        assert_eq!(positions.len(), 2);
        let first = positions[0].as_ref().expect("alternatives");
        assert_eq!((first[1].token.as_str(), first[1].logprob), (" Lyon", -2.5));
        assert!(c.empty_finish_reasons.is_empty());
    }

    #[test]
    fn generate_array_takes_the_first_element() {
        let body = format!("  [{DETAILS}, {{\"generated_text\": \"second\"}}]");
        let c = parse_generate(body.as_bytes()).expect("parses");
        assert_eq!(c.generations, vec![Some(" Paris is".to_owned())]);
        assert_eq!(c.output_tokens, 2);
        assert!(matches!(
            parse_generate(b"[]"),
            Err(ApiError::InvalidResponse(message)) if message.contains("empty list")
        ));
        assert_eq!(generated_tokens(body.as_bytes()).expect("usage"), 2);
    }

    #[test]
    fn generate_without_details_or_top_tokens() {
        let c = parse_generate(br#"[{"generated_text":"hi"}]"#).expect("parses");
        assert_eq!((c.generations.len(), c.output_tokens), (1, 0));
        assert!(c.logprobs.is_empty(), "no details, no logprobs");
        let c = parse_generate(br#"{"generated_text":"hi","details":{"generated_tokens":1}}"#)
            .expect("parses");
        assert!(
            c.logprobs.is_empty(),
            "details without top_tokens, no logprobs"
        );
        let c = parse_generate(
            br#"{"generated_text":"","details":{"generated_tokens":0,"top_tokens":[]}}"#,
        )
        .expect("parses");
        assert_eq!(
            c.logprobs,
            vec![Vec::new()],
            "an empty top_tokens list is kept"
        );
    }

    #[test]
    fn malformed_generate_bodies_are_invalid_responses() {
        for body in [
            &b"{\"generated_text\": "[..],
            b"{\"error\": \"x\"}",
            b"[1]",
            b"oops",
        ] {
            assert!(
                matches!(parse_generate(body), Err(ApiError::InvalidResponse(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(generated_tokens(b"{}").is_err());
    }

    #[test]
    fn chat_keeps_the_first_choice_only() {
        let body = br#"{"id":"x","created":0,"model":"tgi","system_fingerprint":"3.0",
            "choices":[
              {"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop",
               "logprobs":{"content":[{"token":"hi","logprob":-0.1,
                  "top_logprobs":[{"token":"hi","logprob":-0.1},{"token":"yo","logprob":-2.0}]}]}},
              {"index":1,"message":{"role":"assistant","content":"other"},"finish_reason":"stop",
               "logprobs":null}],
            "usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
        let c = parse_chat(body).expect("parses");
        assert_eq!(c.generations, vec![Some("hi".to_owned())]);
        assert_eq!((c.input_tokens, c.output_tokens), (5, 1));
        assert_eq!(c.logprobs.len(), 1);
        let first = c.logprobs[0][0].as_ref().expect("alternatives");
        assert_eq!(first[1].token, "yo");
    }

    #[test]
    fn chat_without_content_or_logprobs() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"0","type":"function","function":{"name":"f","arguments":{}}}]},
            "finish_reason":"tool_calls","logprobs":{"content":[]}}],
            "usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let c = parse_chat(body).expect("parses");
        assert_eq!(c.generations, vec![None]);
        assert_eq!(c.empty_finish_reasons, vec![Some("tool_calls".to_owned())]);
        assert!(
            c.logprobs.is_empty(),
            "empty logprobs are dropped, as distilabel does"
        );
        assert!(matches!(
            parse_chat(br#"{"choices":[]}"#),
            Err(ApiError::InvalidResponse(message)) if message.contains("no choices")
        ));
        assert!(matches!(
            parse_chat(b"{\"choices\": [ not json"),
            Err(ApiError::InvalidResponse(_))
        ));
    }
}
