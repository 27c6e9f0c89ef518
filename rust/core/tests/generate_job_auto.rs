//! `distilabel-rs generate --max-concurrency auto`: the job's adaptive limit against the
//! mock server's capacity model (C served at once, C more queued, 429 with Retry-After
//! beyond 2C).

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

mod capacity;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use distilabel_rs_core::adaptive::{ConcurrencyLimit, INITIAL_LIMIT};
use distilabel_rs_core::generate_job::{JobConfig, JobProgress, Summary, run_job};
use distilabel_rs_core::http::{Client, RequestDefaults};
use distilabel_rs_core::providers::AnyProvider;
use distilabel_rs_mock::MockServer;
use serde_json::{Value, json};

fn client(server: &MockServer) -> Arc<Client<AnyProvider>> {
    let provider = AnyProvider::from_spec("openai", &json!({})).expect("provider");
    Client::new(provider, &capacity::config(server)).expect("client")
}

/// A fresh directory holding an input of `count` chat records.
fn input(name: &str, count: usize) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "distilabel-rs-generate-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let lines: String = (0..count)
        .map(|i| format!("{{\"messages\": [{{\"role\": \"user\", \"content\": \"q{i}\"}}]}}\n"))
        .collect();
    let input = dir.join("in.jsonl");
    std::fs::write(&input, lines).expect("input");
    (dir, input)
}

async fn run(
    server: &MockServer,
    name: &str,
    count: usize,
    limit: ConcurrencyLimit,
) -> (Summary, Arc<JobProgress>, HashMap<String, Value>) {
    let (dir, input) = input(name, count);
    let output = dir.join("out.jsonl");
    let config = JobConfig {
        input,
        output: output.clone(),
        defaults: RequestDefaults {
            model: "m".into(),
            generations: None,
            max_tokens: None,
            temperature: None,
            top_p: None,
        },
        max_concurrency: limit,
        skip_malformed: false,
    };
    let progress = Arc::new(JobProgress::default());
    let summary = run_job(client(server), config, Arc::clone(&progress))
        .await
        .expect("the job runs");
    let rows = rows(&output, count);
    let _ = std::fs::remove_dir_all(dir);
    (summary, progress, rows)
}

/// The output's rows by custom id, checking that each of the `count` ids is there once.
fn rows(output: &Path, count: usize) -> HashMap<String, Value> {
    let text = std::fs::read_to_string(output).expect("output");
    let mut rows = HashMap::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).expect("a JSON line");
        let id = row["custom_id"].as_str().expect("custom_id").to_owned();
        assert!(rows.insert(id.clone(), row).is_none(), "{id} twice");
    }
    assert_eq!(rows.len(), count);
    for i in 1..=count {
        assert!(rows.contains_key(&i.to_string()), "line {i} missing");
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_grows_to_the_capacity_without_a_429_storm() {
    let server = capacity::server(32, 20).await;
    let count = 1500;
    let (summary, progress, rows) = run(
        &server,
        "auto",
        count,
        ConcurrencyLimit::Auto { ceiling: 256 },
    )
    .await;
    assert_eq!(summary.succeeded, count, "{summary:?}");
    let answer = &rows["7"]["response"]["body"]["choices"][0]["message"]["content"];
    assert_eq!(answer, "echo: q6");
    // Few: an overshoot of the slow start (a doubling past twice the capacity, halved at
    // the first 429) costs a few dozen; a fixed 256 would have 192 of its first 256 refused.
    assert!(
        server.rejected() < count / 10,
        "{} refused",
        server.rejected()
    );
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let initial = INITIAL_LIMIT as usize;
    let peak = summary.peak_limit.expect("auto has a limit");
    assert!(peak > initial, "{summary:?}");
    assert!(peak <= 256, "{summary:?}");
    // The progress counters follow the limiter.
    assert_eq!(progress.requests.limit(), summary.final_limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_limit_stays_put_and_is_reported() {
    let server = capacity::server(1000, 5).await;
    let (summary, progress, _) = run(&server, "fixed", 200, ConcurrencyLimit::Fixed(7)).await;
    assert_eq!(summary.succeeded, 200);
    assert_eq!(summary.peak_limit, Some(7));
    assert_eq!(summary.final_limit, Some(7));
    assert_eq!(progress.requests.limit(), Some(7));
    assert!(server.peak_in_flight() <= 7, "{}", server.peak_in_flight());
}
