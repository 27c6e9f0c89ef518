//! The client's own HTTP/1.1 connections for generation requests to plain-`http://` servers
//! (`http/http1.rs`): the same requests as through reqwest, connections kept and reused,
//! servers that close them, and the faults of `bad_servers.rs` on the reqwest transport
//! (which still carries TLS, proxies and redirects elsewhere).

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use distilabel_rs_core::http::{ApiError, Client, ClientConfig, Endpoint, Request, RetryObserver};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::AnyProvider;
use distilabel_rs_mock::MockServer;
use serde_json::json;

const BOUND: Duration = Duration::from_secs(60);

struct Unobserved;

impl RetryObserver for Unobserved {
    fn retried(&self) {}
}

fn client(
    server: &MockServer,
    own: bool,
    tune: impl FnOnce(&mut ClientConfig),
) -> Arc<Client<AnyProvider>> {
    let mut config = ClientConfig {
        api_key: Some("sk-own-connections".into()),
        default_headers: vec![("x-extra".into(), "kept".into())],
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 1,
            base_seconds: 0.01,
            cap_seconds: 0.02,
        },
        own_http1_connections: own,
        ..ClientConfig::new(format!("{}/v1", server.origin()))
    };
    tune(&mut config);
    let provider = AnyProvider::from_spec("openai", &json!({})).expect("provider");
    Client::new(provider, &config).expect("client")
}

async fn send(client: &Client<AnyProvider>, text: &str) -> Result<String, ApiError> {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    let request = Request::new(client.provider(), Endpoint::Chat, &body).expect("request");
    let completion = tokio::time::timeout(BOUND, client.send(&request, &Unobserved))
        .await
        .expect("the request ended within the bound")?;
    Ok(completion.generations[0].clone().expect("a generation"))
}

#[tokio::test]
async fn both_transports_send_the_same_request() {
    let server = MockServer::start(true).await.expect("server");
    for own in [true, false] {
        let client = client(&server, own, |_| {});
        assert_eq!(send(&client, "same").await.expect("answer"), "echo: same");
    }
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 2);
    let seen = |index: usize| {
        let request = &recorded[index];
        let mut headers = request.headers.clone();
        headers.sort();
        (
            request.method.clone(),
            request.path.clone(),
            request.query.clone(),
            request.body.clone(),
            headers,
        )
    };
    assert_eq!(seen(0), seen(1));
    let headers = seen(0).4;
    for (name, value) in [
        ("authorization", "Bearer sk-own-connections"),
        ("content-type", "application/json"),
        ("x-extra", "kept"),
        ("accept", "*/*"),
    ] {
        assert!(
            headers.contains(&(name.to_owned(), value.to_owned())),
            "{name}: {headers:?}"
        );
    }
}

#[tokio::test]
async fn connections_are_kept_and_reused() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, true, |c| c.pool_size = 8);
    for number in 0..50 {
        send(&client, &format!("one after another {number}"))
            .await
            .expect("answer");
    }
    assert_eq!(server.connections(), 1);

    // Eight at a time, several rounds: never more connections than requests at once.
    for round in 0..5 {
        let sends = (0..8).map(|number| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { send(&client, &format!("round {round} {number}")).await })
        });
        for sent in results_of(sends).await {
            sent.expect("answer");
        }
    }
    assert!(server.connections() <= 8, "{}", server.connections());
}

async fn results_of<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut results = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        results.push(handle.await.expect("task"));
    }
    results
}

#[tokio::test]
async fn a_server_that_closes_each_connection_is_answered_on_new_ones() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, true, |c| c.retry.max_retries = 0);
    for number in 0..20 {
        // No retry allowed: a closed connection taken from the pool would fail the request.
        let text = format!("[[close]] closed {number}");
        assert!(
            send(&client, &text)
                .await
                .expect("answer")
                .contains("closed")
        );
    }
    assert_eq!(server.connections(), 20);
}

#[tokio::test]
async fn the_reqwest_transport_handles_bad_servers_too() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, false, |c| {
        c.max_response_bytes = 100_000;
        c.timeout = Duration::from_millis(500);
    });
    let error = send(&client, "[[reset_mid_body]] cut")
        .await
        .expect_err("reset");
    assert!(
        matches!(&error, ApiError::Connection(m) if m.contains("while reading the response body")),
        "{error:?}"
    );
    let error = send(&client, "[[huge_mb=1]] big")
        .await
        .expect_err("too large");
    assert!(
        matches!(&error, ApiError::InvalidResponse(m) if m.contains("response larger than 100000 bytes")),
        "{error:?}"
    );
    let error = send(&client, "[[trickle_ms=400]] slow")
        .await
        .expect_err("slow");
    assert!(matches!(error, ApiError::Timeout(_)), "{error:?}");
    assert!(
        send(&client, "[[redirects=2]] there")
            .await
            .expect("answer")
            .contains("there")
    );
}

#[tokio::test]
async fn the_own_transport_bounds_a_trickling_body_by_the_timeout() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, true, |c| c.timeout = Duration::from_millis(500));
    let error = send(&client, "[[trickle_ms=400]] slow")
        .await
        .expect_err("slow");
    assert!(matches!(error, ApiError::Timeout(_)), "{error:?}");
    // The connection cut by the deadline is not reused: the next request is answered.
    assert_eq!(send(&client, "after").await.expect("answer"), "echo: after");
}
