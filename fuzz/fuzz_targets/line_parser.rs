//! The `distilabel-rs generate` command's parser of INPUT lines, for each provider: any
//! line is a request or a clear error, never a panic; a request's body is JSON.
#![no_main]

use std::sync::OnceLock;

use distilabel_rs_core::generate_job::parse_input_line;
use distilabel_rs_core::http::RequestDefaults;
use distilabel_rs_core::providers::AnyProvider;
use libfuzzer_sys::fuzz_target;

fn providers() -> &'static [AnyProvider] {
    static PROVIDERS: OnceLock<Vec<AnyProvider>> = OnceLock::new();
    PROVIDERS.get_or_init(|| {
        ["openai", "anthropic", "tgi"]
            .iter()
            .filter_map(|kind| AnyProvider::from_spec(kind, &serde_json::json!({})).ok())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let defaults = RequestDefaults {
        model: "m".into(),
        generations: Some(2),
        max_tokens: Some(16),
        temperature: Some(0.5),
        top_p: None,
    };
    for provider in providers() {
        if let Ok((custom_id, request)) = parse_input_line(line, 7, &defaults, provider) {
            assert!(!custom_id.is_empty() || line.contains("\"custom_id\""));
            assert!(serde_json::from_slice::<serde_json::Value>(&request.body).is_ok());
        }
    }
});
