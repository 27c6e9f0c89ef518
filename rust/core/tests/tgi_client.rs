//! The `tgi` provider through the client against the local mock server: TGI's generate API
//! (array and object answers), its Messages API, its error bodies and `Retry-After`.

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use distilabel_rs_core::http::{
    ApiError, Client, ClientConfig, Completion, Endpoint, Request, RequestCounters, run_many,
};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::AnyProvider;
use distilabel_rs_mock::MockServer;
use serde_json::{Value, json};

fn client(base_url: String) -> Arc<Client<AnyProvider>> {
    let provider = AnyProvider::from_spec("tgi", &json!({})).expect("provider");
    let config = ClientConfig {
        api_key: Some("hf_secret".into()),
        retry: RetryPolicy {
            max_retries: 2,
            base_seconds: 30.0,
            cap_seconds: 30.0,
        },
        timeout: Duration::from_secs(5),
        ..ClientConfig::new(base_url)
    };
    Client::new(provider, &config).expect("client")
}

fn generate(inputs: &str) -> Value {
    json!({"inputs": inputs, "parameters": {"details": true, "top_n_tokens": 2, "seed": 5}})
}

async fn send(
    client: &Arc<Client<AnyProvider>>,
    endpoint: Endpoint,
    body: &Value,
) -> Vec<Result<Completion, ApiError>> {
    let request = Request::new(client.provider(), endpoint, body).expect("request");
    run_many(
        Arc::clone(client),
        vec![request],
        None,
        false,
        Arc::new(RequestCounters::default()),
    )
    .await
}

#[tokio::test]
async fn generate_answers_as_an_array_or_an_object() {
    let server = MockServer::start(true).await.expect("server");
    for path in ["/tgi", "/tgi/generate"] {
        let client = client(format!("{}{path}", server.origin()));
        let results = send(&client, Endpoint::Text, &generate("hello world")).await;
        let completion = results[0].as_ref().expect("completion");
        assert_eq!(
            completion.generations,
            vec![Some("echo: hello world".to_owned())]
        );
        assert_eq!(completion.output_tokens, 3);
        assert_eq!(
            completion.logprobs[0].len(),
            3,
            "one entry per generated token"
        );
        let first = completion.logprobs[0][0].as_ref().expect("alternatives");
        assert_eq!(first.len(), 2);
    }
    let recorded = server.recorded();
    assert_eq!(recorded[0].path, "/tgi");
    assert_eq!(recorded[1].path, "/tgi/generate");
    assert_eq!(
        recorded[0].authorization.as_deref(),
        Some("Bearer hf_secret")
    );
}

#[tokio::test]
async fn conversations_go_to_the_messages_api() {
    let server = MockServer::start(true).await.expect("server");
    let client = client(format!("{}/tgi", server.origin()));
    let body = json!({"model": "dummy", "messages": [{"role": "user", "content": "hi"}],
                      "logprobs": true, "top_logprobs": 2});
    let results = send(&client, Endpoint::Chat, &body).await;
    let completion = results[0].as_ref().expect("completion");
    assert_eq!(completion.generations, vec![Some("echo: hi".to_owned())]);
    assert_eq!(completion.logprobs.len(), 1);
    assert_eq!(server.recorded()[0].path, "/tgi/v1/chat/completions");
}

#[tokio::test]
async fn overloaded_and_loading_are_retried_as_the_server_asks() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(format!("{}/tgi", server.origin()));
    for status in [429, 503] {
        let started = Instant::now();
        let text = format!("[[status={status} times=2 retry_after=0.2]] x");
        let results = send(&client, Endpoint::Text, &generate(&text)).await;
        assert!(results[0].is_ok(), "{:?}", results[0]);
        // Twice the 0.2 s the server asked for, not the 30 s backoff.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(400), "{waited:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");
    }
    assert_eq!(server.requests(), 6);
}

#[tokio::test]
async fn tgi_error_bodies_give_the_message() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(format!("{}/tgi", server.origin()));
    let results = send(&client, Endpoint::Text, &generate("[[status=422]] x")).await;
    match &results[0] {
        Err(ApiError::Status {
            status, message, ..
        }) => {
            assert_eq!(*status, 422);
            assert_eq!(message, "Scripted failure with status 422");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert_eq!(server.requests(), 1, "a 422 is not retried");
    let results = send(&client, Endpoint::Text, &generate("[[malformed]] x")).await;
    assert!(matches!(&results[0], Err(ApiError::InvalidResponse(_))));
}

#[tokio::test]
async fn the_command_reads_generated_tokens_as_usage() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(format!("{}/tgi", server.origin()));
    let request =
        Request::new(client.provider(), Endpoint::Text, &generate("a b c")).expect("request");
    let (body, tokens) = client
        .send_raw(&request, &RequestCounters::default())
        .await
        .expect("raw");
    assert_eq!(tokens, 4); // "echo:" and three words
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body[0]["details"]["seed"], 5);
}
