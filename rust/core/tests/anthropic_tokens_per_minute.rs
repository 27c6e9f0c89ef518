//! The tokens-per-minute limit of an Anthropic client is reconciled with the input *plus*
//! output tokens of each answer's `usage`: one combined budget (Anthropic itself enforces
//! separate input and output limits).
//!
//! The client and the mock server share one runtime whose clock is paused: it moves only
//! when every task waits for a timer, so the wait of a request held back by the limit is
//! exact (virtual seconds), not a measurement of this machine's speed.

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use distilabel_rs_core::http::{Client, ClientConfig, Endpoint, Request, RetryObserver};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::AnyProvider;
use distilabel_rs_mock::MockServer;
use serde_json::{Value, json};
use tokio::time::Instant;

const TOKENS_PER_MINUTE: f64 = 600.0;

struct NoRetries;

impl RetryObserver for NoRetries {
    fn retried(&self) {
        panic!("no request of this test fails");
    }
}

fn client(server: &MockServer) -> Arc<Client<AnyProvider>> {
    let provider = AnyProvider::from_spec("anthropic", &json!({})).expect("provider");
    let config = ClientConfig {
        api_key: Some("sk-ant-tpm".into()),
        tokens_per_minute: Some(TOKENS_PER_MINUTE),
        retry: RetryPolicy {
            max_retries: 0,
            base_seconds: 0.0,
            cap_seconds: 0.0,
        },
        ..ClientConfig::new(server.origin())
    };
    Client::new(provider, &config).expect("client")
}

fn message(text: &str) -> Value {
    json!({"model": "claude", "max_tokens": 1,
           "messages": [{"role": "user", "content": text}]})
}

fn seconds(tokens: f64) -> f64 {
    tokens / (TOKENS_PER_MINUTE / 60.0)
}

#[tokio::test(start_paused = true)]
async fn the_limit_is_reconciled_with_input_plus_output_tokens() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server);

    // A long prompt (about 2000 input tokens by the mock's count, more than the whole
    // minute's budget) answered with one token: it is admitted on the full bucket.
    let long = format!("[[content=ok]] {}", vec!["w"; 2000].join(" "));
    let first = Request::new(client.provider(), Endpoint::Chat, &message(&long)).expect("body");
    let started = Instant::now();
    let answer = client.send(&first, &NoRetries).await.expect("first answer");
    assert_eq!(started.elapsed().as_secs_f64(), 0.0, "admitted at once");
    assert_eq!(answer.generations, vec![Some("ok".to_owned())]);
    assert_eq!(answer.output_tokens, 1);
    assert!(answer.input_tokens > 2000, "{}", answer.input_tokens);

    // The bucket (a minute's worth, refilled continuously) is now down to
    // TOKENS_PER_MINUTE - (input + output): the next request waits until it holds that
    // request's reservation again.
    let second = Request::new(client.provider(), Endpoint::Chat, &message("hi")).expect("body");
    let used = (answer.input_tokens + answer.output_tokens) as f64;
    let expected = seconds(second.reserved_tokens as f64 + used - TOKENS_PER_MINUTE);
    let started = Instant::now();
    let again = client
        .send(&second, &NoRetries)
        .await
        .expect("second answer");
    let waited = started.elapsed().as_secs_f64();
    assert_eq!(again.generations, vec![Some("echo: hi".to_owned())]);
    assert!(
        (waited - expected).abs() < 0.01,
        "waited {waited} s, the input + output usage makes it {expected} s"
    );

    // Counting the output alone would have left the bucket nearly full (no wait), and not
    // reconciling the reservation at all would give another wait.
    let output_only = seconds(second.reserved_tokens as f64 + 1.0 - TOKENS_PER_MINUTE);
    assert!(output_only < 0.0);
    let reserved_only =
        seconds(second.reserved_tokens as f64 + first.reserved_tokens as f64 - TOKENS_PER_MINUTE);
    assert!(
        (waited - reserved_only).abs() > 10.0,
        "{waited} vs {reserved_only}"
    );
    server.stop();
}
