//! The Ollama provider against the local mock server: paths, bodies, statistics, error
//! bodies, retries, the host setting and the command's defaults.

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use distilabel_rs_core::http::{
    ApiError, Client, ClientConfig, Endpoint, Provider, Request, RequestCounters, RequestDefaults,
    run_many,
};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::AnyProvider;
use distilabel_rs_mock::MockServer;
use serde_json::{Value, json};

fn client(host: String) -> Arc<Client<AnyProvider>> {
    let provider = AnyProvider::from_spec("ollama", &json!({})).expect("provider");
    let config = ClientConfig {
        retry: RetryPolicy {
            max_retries: 2,
            base_seconds: 0.01,
            cap_seconds: 0.02,
        },
        timeout: Duration::from_secs(5),
        ..ClientConfig::new(host)
    };
    Client::new(provider, &config).expect("client")
}

fn chat(text: &str) -> Value {
    json!({"model": "llama3", "stream": false, "messages": [{"role": "user", "content": text}],
           "tools": []})
}

#[tokio::test]
async fn chats_and_raw_prompts_with_statistics() {
    let server = MockServer::start(true).await.expect("server");
    // A host without a scheme, as `OLLAMA_HOST` often is.
    let client = client(format!("127.0.0.1:{}", server.address().port()));
    let provider = client.provider().clone();
    let requests = vec![
        Request::new(&provider, Endpoint::Chat, &chat("hello there")).expect("request"),
        Request::new(
            &provider,
            Endpoint::Text,
            &json!({"model": "llama3", "stream": false, "prompt": "<|user|>hi", "raw": true}),
        )
        .expect("request"),
    ];
    let results = run_many(
        client,
        requests,
        None,
        false,
        Arc::new(RequestCounters::default()),
    )
    .await;
    let chat = results[0].as_ref().expect("chat");
    assert_eq!(chat.generations, vec![Some("echo: hello there".to_owned())]);
    assert_eq!(chat.output_tokens, 3);
    assert!(chat.input_tokens > 0);
    let text = results[1].as_ref().expect("generate");
    assert_eq!(text.generations, vec![Some("echo: <|user|>hi".to_owned())]);
    let paths: Vec<String> = server.recorded().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/api/chat", "/api/generate"]);
    assert!(server.recorded().iter().all(|r| r.authorization.is_none()));
}

#[tokio::test]
async fn error_bodies_retries_and_streams() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(server.origin());
    let counters = RequestCounters::default();
    let provider = client.provider().clone();
    let send = |body: Value| {
        let request = Request::new(&provider, Endpoint::Chat, &body).expect("request");
        let client = Arc::clone(&client);
        let counters = &counters;
        async move { client.send(&request, counters).await }
    };
    match send(chat("[[status=404]] gone")).await {
        Err(ApiError::Status {
            status, message, ..
        }) => {
            assert_eq!(status, 404);
            assert_eq!(message, "Scripted failure with status 404");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    let busy = send(chat("[[status=503 times=2]] busy"))
        .await
        .expect("retried");
    assert_eq!(
        busy.generations,
        vec![Some("echo: [[status=503 times=2]] busy".to_owned())]
    );
    // Without `"stream": false` Ollama streams NDJSON, which is not a response body.
    let mut streamed = chat("x");
    streamed["stream"] = Value::Bool(true);
    assert!(matches!(
        send(streamed).await,
        Err(ApiError::InvalidResponse(_))
    ));
    // And a body without a model is Ollama's 400.
    match send(json!({"messages": []})).await {
        Err(ApiError::Status {
            status, message, ..
        }) => assert_eq!((status, message.as_str()), (400, "model is required")),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn bad_hosts_fail_when_the_client_is_built() {
    let provider = AnyProvider::from_spec("ollama", &json!({})).expect("provider");
    let error = Client::new(provider, &ClientConfig::new("localhost:port")).expect_err("bad");
    assert!(error.to_string().contains("OLLAMA_HOST"), "{error}");
}

#[tokio::test]
async fn command_defaults_reach_the_server() {
    let server = MockServer::start(true).await.expect("server");
    let client = client(server.origin());
    let provider = client.provider().clone();
    let mut body = json!({"prompt": "go"})
        .as_object()
        .cloned()
        .expect("object");
    let defaults = RequestDefaults {
        model: "llama3".into(),
        generations: Some(2),
        max_tokens: Some(7),
        temperature: None,
        top_p: Some(0.9),
    };
    provider.apply_defaults(Endpoint::Text, &mut body, &defaults);
    let request = Request::new(&provider, Endpoint::Text, &Value::Object(body)).expect("request");
    let (raw, tokens) = client
        .send_raw(&request, &RequestCounters::default())
        .await
        .expect("sent");
    let answer: Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(answer["response"], "echo: go");
    assert!(tokens > 0);
    let sent: Value = serde_json::from_str(&server.recorded()[0].body).expect("json");
    assert_eq!(
        sent,
        json!({"prompt": "go", "model": "llama3", "stream": false,
               "options": {"num_predict": 7, "top_p": 0.9}})
    );
}
