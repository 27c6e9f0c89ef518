//! What the tests of `max_concurrency="auto"` share: the mock given a capacity model, and a
//! client configuration that retries quickly.

use std::time::Duration;

use distilabel_rs_core::http::ClientConfig;
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_mock::{CapacityModel, MockServer};

/// The mock serving `capacity` requests at once in `latency_ms`, as many queued, 429 beyond.
pub async fn server(capacity: usize, latency_ms: u64) -> MockServer {
    MockServer::start_with_options(
        false,
        None,
        Some(CapacityModel {
            capacity: Some(capacity),
            base_latency: Duration::from_millis(latency_ms),
        }),
    )
    .await
    .expect("server")
}

/// Eight quick retries (10-100 ms), room for 256 connections.
pub fn config(server: &MockServer) -> ClientConfig {
    ClientConfig {
        api_key: Some("sk-test".into()),
        timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            max_retries: 8,
            base_seconds: 0.01,
            cap_seconds: 0.1,
        },
        pool_size: 256,
        ..ClientConfig::new(format!("{}/v1", server.origin()))
    }
}
