//! The provider-neutral client, with the OpenAI provider, against the local mock server.

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use distilabel_rs_core::http::{
    ApiError, Client, ClientConfig, Completion, Endpoint, Request, RequestCounters, run_many,
};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::openai::OpenAi;
use distilabel_rs_mock::MockServer;
use serde_json::json;

type OpenAiClient = Client<OpenAi>;

fn openai(config: &ClientConfig) -> Arc<OpenAiClient> {
    Client::new(OpenAi::default(), config).expect("client")
}

fn config(server: &MockServer) -> ClientConfig {
    ClientConfig {
        base_url: format!("{}/v1", server.origin()),
        api_key: Some("sk-test-key".into()),
        default_headers: vec![("x-team".into(), "synthetic".into())],
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            base_seconds: 0.01,
            cap_seconds: 0.05,
        },
        requests_per_minute: None,
        tokens_per_minute: None,
        extra_root_certificates: vec![],
        follow_redirects: true,
        pool_size: 64,
        seed: 1,
        ..ClientConfig::new(server.origin())
    }
}

fn chat(text: &str) -> Request {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}], "n": 2});
    Request::new(&OpenAi::default(), Endpoint::Chat, &body).expect("request")
}

async fn batch(
    client: &Arc<OpenAiClient>,
    requests: Vec<Request>,
    limit: Option<usize>,
    fail_fast: bool,
) -> (Vec<Result<Completion, ApiError>>, Arc<RequestCounters>) {
    let progress = Arc::new(RequestCounters::default());
    let results = run_many(
        Arc::clone(client),
        requests,
        limit,
        fail_fast,
        Arc::clone(&progress),
    )
    .await;
    (results, progress)
}

#[tokio::test]
async fn chat_round_trip_in_order_with_auth_and_headers() {
    let server = MockServer::start(true).await.expect("server");
    let client = openai(&config(&server));
    let requests = (0..50).map(|i| chat(&format!("q{i}"))).collect();
    let (results, progress) = batch(&client, requests, Some(8), false).await;
    for (i, result) in results.iter().enumerate() {
        let completion = result.as_ref().expect("ok");
        assert_eq!(
            completion.generations,
            vec![Some(format!("echo: q{i}")), Some(format!("echo: q{i}"))]
        );
    }
    assert!(server.peak_in_flight() <= 8);
    assert_eq!(progress.snapshot(), (50, 50, 0, 0, 0));
    let recorded = server.recorded();
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(
        recorded[0].authorization.as_deref(),
        Some("Bearer sk-test-key")
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_other_4xx_are_not_retried() {
    let server = MockServer::start(false).await.expect("server");
    let client = openai(&config(&server));
    let started = Instant::now();
    let (results, progress) = batch(
        &client,
        vec![
            chat("[[status=429 times=2 retry_after=0.2]] a"),
            chat("[[status=400]] b"),
        ],
        None,
        false,
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(results[0].is_ok());
    match &results[1] {
        Err(ApiError::Status {
            status, message, ..
        }) => {
            assert_eq!(*status, 400);
            assert_eq!(message, "Scripted failure with status 400");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    // 2 retries of the 429s, none of the 400: 4 requests in all.
    assert_eq!(server.requests(), 4);
    assert_eq!(progress.snapshot().3, 2);
}

#[tokio::test]
async fn retries_give_up_after_max_retries() {
    let server = MockServer::start(false).await.expect("server");
    let client = openai(&config(&server));
    let (results, _) = batch(&client, vec![chat("[[status=503]] down")], None, false).await;
    assert!(matches!(
        results[0],
        Err(ApiError::Status { status: 503, .. })
    ));
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn timeouts_malformed_and_truncated_bodies_are_clear_errors() {
    let server = MockServer::start(false).await.expect("server");
    let mut cfg = config(&server);
    cfg.timeout = Duration::from_millis(100);
    cfg.retry.max_retries = 0;
    let client = openai(&cfg);
    let (results, _) = batch(
        &client,
        vec![
            chat("[[sleep_ms=2000]] slow"),
            chat("[[malformed]] bad"),
            chat("[[truncated]] cut"),
        ],
        None,
        false,
    )
    .await;
    assert!(matches!(results[0], Err(ApiError::Timeout(_))));
    assert!(matches!(results[1], Err(ApiError::InvalidResponse(_))));
    assert!(matches!(results[2], Err(ApiError::InvalidResponse(_))));
}

#[tokio::test]
async fn fail_fast_cancels_the_rest() {
    let server = MockServer::start(true).await.expect("server");
    let client = openai(&config(&server));
    let mut requests = vec![chat("[[status=401]] unauthorized")];
    requests.extend((0..20).map(|i| chat(&format!("[[sleep_ms=3000]] slow {i}"))));
    let started = Instant::now();
    let (results, _) = batch(&client, requests, Some(4), true).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        results[0],
        Err(ApiError::Status { status: 401, .. })
    ));
    assert!(
        results[1..]
            .iter()
            .all(|r| matches!(r, Err(ApiError::Cancelled)))
    );
    // The three sent with the failing one were cut short; none started after it failed.
    assert_eq!(server.recorded().len(), 4);
}

#[tokio::test]
async fn connection_refused_is_a_connection_error() {
    let server = MockServer::start(false).await.expect("server");
    let mut cfg = config(&server);
    server.stop();
    drop(server);
    cfg.base_url = "http://127.0.0.1:9/v1".into();
    cfg.retry.max_retries = 1;
    let client = openai(&cfg);
    let (results, _) = batch(&client, vec![chat("x")], None, false).await;
    match &results[0] {
        Err(error @ ApiError::Connection(message)) => {
            assert!(!message.contains("sk-test-key"));
            assert!(error.is_retryable());
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_per_minute_are_respected() {
    let server = MockServer::start(false).await.expect("server");
    let mut cfg = config(&server);
    cfg.requests_per_minute = Some(1200.0); // 20 per second, burst of 20
    let client = openai(&cfg);
    let started = Instant::now();
    let (results, _) = batch(
        &client,
        (0..50).map(|i| chat(&format!("{i}"))).collect(),
        None,
        false,
    )
    .await;
    assert!(results.iter().all(Result::is_ok));
    // 20 at once, then 30 more at 20/s: at least 1.5 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1450),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn completions_endpoint() {
    let server = MockServer::start(true).await.expect("server");
    let client = openai(&config(&server));
    let body = json!({"model": "m", "prompt": "hello", "logprobs": 2});
    let request = Request::new(&OpenAi::default(), Endpoint::Text, &body).expect("request");
    let (results, _) = batch(&client, vec![request], None, false).await;
    let completion = results[0].as_ref().expect("ok");
    assert_eq!(completion.generations, vec![Some(" echo: hello".into())]);
    assert_eq!(completion.logprobs[0].len(), 2);
    assert_eq!(server.recorded()[0].path, "/v1/completions");
}

#[tokio::test]
async fn requests_start_in_order() {
    let server = MockServer::start(true).await.expect("server");
    let client = openai(&config(&server));
    let requests = (0..10).map(|i| chat(&format!("q{i}"))).collect();
    let (results, _) = batch(&client, requests, Some(1), false).await;
    assert!(results.iter().all(Result::is_ok));
    let texts: Vec<String> = server
        .recorded()
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).expect("json");
            body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, (0..10).map(|i| format!("q{i}")).collect::<Vec<_>>());
}
