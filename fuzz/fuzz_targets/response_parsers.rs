//! The parsers of response bodies (OpenAI chat and text completions, Anthropic messages,
//! TGI's generate and Messages APIs) and of error bodies: any body is a completion or a
//! clear error, never a panic.
#![no_main]

use distilabel_rs_core::http::error::provider_message;
use distilabel_rs_core::providers::{anthropic, openai, tgi};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let completions = [
        openai::response::parse_chat(body),
        openai::response::parse_text(body),
        anthropic::response::parse_message(body),
        tgi::response::parse_chat(body),
        tgi::response::parse_generate(body),
    ];
    for completion in completions.into_iter().flatten() {
        // Each empty generation has its finish reason.
        let empty = completion
            .generations
            .iter()
            .filter(|g| g.is_none())
            .count();
        assert!(completion.empty_finish_reasons.len() <= empty.max(completion.generations.len()));
    }
    let _ = openai::response::total_tokens(body);
    let _ = anthropic::response::total_tokens(body);
    let _ = tgi::response::generated_tokens(body);
    let message = provider_message(body);
    assert!(
        message.chars().count() <= 501 || serde_json::from_slice::<serde_json::Value>(body).is_ok()
    );
    let _ = anthropic::response::error_message(body);
});
