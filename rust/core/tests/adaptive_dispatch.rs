//! `max_concurrency="auto"` in the native dispatch, against the mock server's capacity
//! model (C served at once, C more queued, 429 with Retry-After beyond 2C).

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

mod capacity;

use std::sync::Arc;
use std::time::Duration;

use distilabel_rs_core::adaptive::ConcurrencyLimit;
use distilabel_rs_core::http::{
    ApiError, Client, Endpoint, Limiter, Request, RequestCounters, is_overload, run_many,
    run_many_limited,
};
use distilabel_rs_core::providers::openai::OpenAi;
use distilabel_rs_mock::MockServer;
use serde_json::json;

fn client(server: &MockServer) -> Arc<Client<OpenAi>> {
    Client::new(OpenAi::default(), &capacity::config(server)).expect("client")
}

fn requests(count: usize) -> Vec<Request> {
    (0..count)
        .map(|i| {
            let body =
                json!({"model": "m", "messages": [{"role": "user", "content": format!("q{i}")}]});
            Request::new(&OpenAi::default(), Endpoint::Chat, &body).expect("request")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_finds_the_capacity_without_a_429_storm() {
    let server = capacity::server(8, 20).await;
    let counters = Arc::new(RequestCounters::default());
    let results = run_many(
        client(&server),
        requests(400),
        ConcurrencyLimit::Auto { ceiling: 256 },
        false,
        Arc::clone(&counters),
    )
    .await;
    for (i, result) in results.iter().enumerate() {
        let completion = result.as_ref().expect("every request succeeds");
        assert_eq!(completion.generations, vec![Some(format!("echo: q{i}"))]);
    }
    // A fixed limit of 256 would have 240 of its first 256 requests refused. Auto may
    // overshoot once while slow start doubles past the queue (16 refused at 32 in flight,
    // plus their retries): 100 runs here, idle and with the cores loaded, refused 0-28.
    assert!(server.rejected() <= 48, "{} refused", server.rejected());
    let limit = counters.limit().expect("auto reports its limit");
    assert!((1..=64).contains(&limit), "{limit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_limit_beyond_twice_the_capacity_is_refused() {
    let server = capacity::server(4, 20).await;
    let counters = Arc::new(RequestCounters::default());
    run_many(
        client(&server),
        requests(40),
        Some(40),
        false,
        Arc::clone(&counters),
    )
    .await;
    assert!(server.rejected() >= 32, "{}", server.rejected()); // 32 at once, then retries
    assert_eq!(counters.limit(), Some(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_limiter_carries_the_limit_over_to_the_next_call() {
    let server = capacity::server(1000, 10).await;
    let client = client(&server);
    let limiter = Limiter::new(ConcurrencyLimit::Auto { ceiling: 512 });
    assert_eq!(limiter.limit(), Some(8));
    let counters = Arc::new(RequestCounters::default());
    run_many_limited(
        Arc::clone(&client),
        requests(300),
        &limiter,
        false,
        counters,
    )
    .await;
    let learned = limiter.limit().expect("a limit");
    assert!(learned > 8, "{learned}");
    // The next call starts from what was learned, not from 8.
    let counters = Arc::new(RequestCounters::default());
    run_many_limited(client, requests(0), &limiter, false, Arc::clone(&counters)).await;
    assert_eq!(counters.limit(), Some(learned));
    assert!(limiter.is_auto_with(ConcurrencyLimit::Auto { ceiling: 512 }));
    assert!(!limiter.is_auto_with(ConcurrencyLimit::Auto { ceiling: 64 }));
}

#[test]
fn overload_errors_are_told_apart() {
    let status = |status, retry_after| ApiError::Status {
        status,
        message: String::new(),
        retry_after,
    };
    for error in [
        status(429, None),
        status(503, None),
        status(529, None),
        status(500, Some(1.0)),
        ApiError::Timeout(Duration::from_secs(1)),
    ] {
        assert!(is_overload(&error), "{error}");
    }
    for error in [
        status(400, None),
        status(401, None),
        status(500, None),
        ApiError::InvalidResponse("x".into()),
        ApiError::Cancelled,
    ] {
        assert!(!is_overload(&error), "{error}");
    }
}
