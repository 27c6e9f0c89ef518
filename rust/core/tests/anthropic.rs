//! The Anthropic provider (Messages API and Message Batches) against the local mock server.

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distilabel_rs_core::batch_jobs::{BatchJobs, Check, Collected, RowResult};
use distilabel_rs_core::http::{
    ApiError, Client, ClientConfig, Endpoint, Request, RequestCounters, run_many,
};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::{AnyBatchJobs, AnyProvider};
use distilabel_rs_mock::MockServer;
use serde_json::{Value, json};

const KEY: &str = "sk-ant-secret";

fn client(server: &MockServer, profile: Value) -> Arc<Client<AnyProvider>> {
    let provider = AnyProvider::from_spec("anthropic", &profile).expect("profile");
    let config = ClientConfig {
        api_key: Some(KEY.into()),
        retry: RetryPolicy {
            max_retries: 3,
            base_seconds: 0.01,
            cap_seconds: 0.02,
        },
        timeout: Duration::from_secs(5),
        ..ClientConfig::new(server.origin())
    };
    Client::new(provider, &config).expect("client")
}

fn message(text: &str) -> Value {
    json!({"model": "claude", "max_tokens": 16, "stream": false,
           "messages": [{"role": "user", "content": text}]})
}

async fn send(
    client: &Arc<Client<AnyProvider>>,
    bodies: &[Value],
) -> Vec<Result<distilabel_rs_core::http::Completion, ApiError>> {
    let requests = bodies
        .iter()
        .map(|body| Request::new(client.provider(), Endpoint::Chat, body).expect("request"))
        .collect();
    run_many(
        Arc::clone(client),
        requests,
        None,
        false,
        Arc::new(RequestCounters::default()),
    )
    .await
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[tokio::test]
async fn messages_go_to_v1_messages_with_key_and_version() {
    let server = MockServer::start(true).await.expect("server");
    let client = client(&server, json!({}));
    let results = send(&client, &[message("hi there")]).await;
    let completion = results[0].as_ref().expect("completion");
    assert_eq!(
        completion.generations,
        vec![Some("echo: hi there".to_owned())]
    );
    assert!(completion.input_tokens > 0 && completion.output_tokens == 3);
    let recorded = server.recorded();
    assert_eq!(recorded[0].path, "/v1/messages");
    assert_eq!(header(&recorded[0].headers, "x-api-key"), Some(KEY));
    assert_eq!(
        header(&recorded[0].headers, "anthropic-version"),
        Some("2023-06-01")
    );
    assert_eq!(recorded[0].authorization, None);
    assert!(format!("{client:?}").find(KEY).is_none());
}

#[tokio::test]
async fn errors_carry_the_type_and_overloaded_is_retried_as_asked() {
    let server = MockServer::start(true).await.expect("server");
    let client = client(&server, json!({}));
    let started = Instant::now();
    let results = send(
        &client,
        &[
            message("[[status=529 times=2 retry_after=0.2]] busy"),
            message("[[status=400]] bad"),
        ],
    )
    .await;
    assert!(results[0].is_ok());
    assert!(started.elapsed() >= Duration::from_millis(400));
    let error = results[1].as_ref().expect_err("400");
    assert_eq!(
        error.to_string(),
        "Error code: 400 - invalid_request_error: Scripted failure with status 400"
    );
    assert_eq!(server.requests(), 4); // 3 attempts + 1 (400 is not retried)
    let overloaded = send(&client, &[message("[[status=529]] always")]).await;
    assert_eq!(
        overloaded[0].as_ref().expect_err("529").to_string(),
        "Error code: 529 - overloaded_error: Scripted failure with status 529"
    );
    assert!(
        !overloaded[0]
            .as_ref()
            .expect_err("529")
            .to_string()
            .contains(KEY)
    );
}

#[tokio::test]
async fn rate_limit_reset_times_are_waited_for() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, json!({}));
    let started = Instant::now();
    let results = send(
        &client,
        &[message("[[status=429 times=1 ratelimit_reset=0.6]] x")],
    )
    .await;
    assert!(results[0].is_ok());
    // The reset time (RFC 3339, milliseconds) is about 0.6 s ahead, not the jittered
    // 10-20 ms backoff.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn invalid_params_are_refused_like_the_api() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, json!({}));
    let body = json!({"model": "claude", "max_tokens": 16,
                      "messages": [{"role": "system", "content": "no"}, {"role": "user", "content": "x"}]});
    let results = send(&client, &[body]).await;
    let error = results[0].as_ref().expect_err("400").to_string();
    assert!(
        error.starts_with("Error code: 400 - invalid_request_error: messages.0.role"),
        "{error}"
    );
}

fn store(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("distilabel-rs-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn jobs(client: &Arc<Client<AnyProvider>>) -> AnyBatchJobs {
    AnyProvider::batch_jobs(client).expect("batch jobs")
}

fn rows(jobs: &AnyBatchJobs, texts: &[&str]) -> Vec<Vec<u8>> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let row = jobs
                .row(&index.to_string(), Endpoint::Chat, message(text))
                .expect("row");
            serde_json::to_vec(&row).expect("json")
        })
        .collect()
}

async fn wait(jobs: &AnyBatchJobs, ids: &[String]) -> Collected {
    for _ in 0..10 {
        if let Check::Done(_, collected) = jobs.check(ids).await.expect("check") {
            return collected;
        }
    }
    panic!("the batches never ended");
}

fn text(collected: &Collected, id: &str) -> Option<String> {
    match collected.rows.get(id) {
        Some(RowResult::Completed(completion)) => completion.generations[0].clone(),
        _ => None,
    }
}

#[tokio::test]
async fn batches_split_run_and_return_unordered_results_by_custom_id() {
    let server = MockServer::start(true).await.expect("server");
    let dir = store("split");
    let profile = json!({"batch": {"max_requests": 2, "store_dir": dir}});
    let client = client(&server, profile);
    let jobs = jobs(&client);
    let texts = ["a", "[[status=400]] b", "c", "d", "e"];
    let ids = jobs
        .submit(rows(&jobs, &texts), "ignored", &json!({}), None, &[])
        .await
        .expect("submit");
    assert_eq!(ids.len(), 3);
    let created: Vec<Value> = server
        .recorded()
        .iter()
        .filter(|r| r.path == "/v1/messages/batches")
        .map(|r| serde_json::from_str(&r.body).expect("json"))
        .collect();
    assert_eq!(created[0]["requests"][0]["custom_id"], "0");
    assert_eq!(created[0]["requests"][0]["params"].get("stream"), None);
    assert_eq!(created[2]["requests"].as_array().map(Vec::len), Some(1));
    match jobs.check(&ids).await.expect("check") {
        Check::Running(counts) => assert_eq!((counts.total, counts.completed), (5, 0)),
        Check::Done(..) => panic!("ended at once"),
    }
    let collected = wait(&jobs, &ids).await;
    assert_eq!(text(&collected, "0").as_deref(), Some("echo: a"));
    assert_eq!(text(&collected, "4").as_deref(), Some("echo: e"));
    assert_eq!(
        collected.rows.get("1"),
        Some(&RowResult::Failed(
            "invalid_request_error: Scripted failure with status 400".into()
        ))
    );
    assert!(collected.unfinished.is_empty() && collected.lost.is_empty());
    assert_eq!(collected.submitted.len(), 5);
    // Everything has its result: the copies of the requests are gone.
    assert_eq!(std::fs::read_dir(&dir).map(Iterator::count).unwrap_or(0), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn expired_and_canceled_rows_come_back_from_the_store_or_as_lost() {
    let server = MockServer::start(false).await.expect("server");
    let dir = store("expire");
    let client = client(&server, json!({"batch": {"store_dir": dir}}));
    let jobs = jobs(&client);
    let ids = jobs
        .submit(
            rows(&jobs, &["a", "[[expire]] b", "c"]),
            "",
            &json!({}),
            None,
            &[],
        )
        .await
        .expect("submit");
    let collected = wait(&jobs, &ids).await;
    assert_eq!(collected.unfinished.len(), 1);
    let row: Value = serde_json::from_slice(&collected.unfinished[0]).expect("row");
    assert_eq!(row["custom_id"], "1");
    assert_eq!(row["params"]["messages"][0]["content"], "[[expire]] b");
    // Submitted again, it runs (an expire directive fires once per text).
    let mut all = ids.clone();
    all.extend(
        jobs.submit(collected.unfinished.clone(), "", &json!({}), None, &[])
            .await
            .expect("resubmit"),
    );
    let collected = wait(&jobs, &all).await;
    assert_eq!(text(&collected, "1").as_deref(), Some("echo: [[expire]] b"));
    assert!(collected.unfinished.is_empty());

    // A canceled batch whose copy is gone: its rows are lost, for the caller to rebuild.
    let ids = jobs
        .submit(rows(&jobs, &["x", "y"]), "", &json!({}), None, &[])
        .await
        .expect("submit");
    jobs.cancel(&ids).await.expect("cancel");
    let _ = std::fs::remove_dir_all(&dir);
    let collected = wait(&jobs, &ids).await;
    assert_eq!(collected.lost, vec!["0".to_owned(), "1".to_owned()]);
    assert!(collected.rows.is_empty() && collected.unfinished.is_empty());
}

#[tokio::test]
async fn an_unwritable_store_fails_before_anything_is_created() {
    let server = MockServer::start(true).await.expect("server");
    let file = store("file");
    std::fs::write(&file, b"not a directory").expect("write");
    let client = client(&server, json!({"batch": {"store_dir": file.join("sub")}}));
    let jobs = jobs(&client);
    let error = jobs
        .submit(rows(&jobs, &["a"]), "", &json!({}), None, &[])
        .await
        .expect_err("unwritable");
    assert!(error.to_string().contains("XDG_CACHE_HOME"), "{error}");
    assert_eq!(server.requests(), 0);
    let _ = std::fs::remove_file(file);
}

async fn list(client: &Arc<Client<AnyProvider>>, query: &str) -> Value {
    let body = client
        .call(
            reqwest::Method::GET,
            &format!("v1/messages/batches{query}"),
            None,
        )
        .await
        .expect("list");
    serde_json::from_slice(&body).expect("json")
}

#[tokio::test]
async fn the_mock_lists_and_deletes_batches() {
    let server = MockServer::start(false).await.expect("server");
    let dir = store("list");
    let client = client(&server, json!({"batch": {"store_dir": dir}}));
    let jobs = jobs(&client);
    let mut ids = Vec::new();
    for text in ["a", "b", "c"] {
        ids.extend(
            jobs.submit(rows(&jobs, &[text]), "", &json!({}), None, &[])
                .await
                .expect("submit"),
        );
    }
    let page = list(&client, "?limit=2").await;
    let listed: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|batch| batch["id"].as_str())
        .collect();
    assert_eq!(listed, vec![ids[2].as_str(), ids[1].as_str()]); // newest first
    assert_eq!(page["has_more"], true);
    let rest = list(&client, &format!("?after_id={}", ids[1])).await;
    assert_eq!(rest["data"][0]["id"], ids[0].as_str());
    assert_eq!(rest["has_more"], false);
    // Only an ended batch can be deleted.
    let path = format!("v1/messages/batches/{}", ids[0]);
    let refused = client.call(reqwest::Method::DELETE, &path, None).await;
    assert!(matches!(refused, Err(ApiError::Status { status: 400, .. })));
    wait(&jobs, &ids[..1]).await;
    let deleted = client
        .call(reqwest::Method::DELETE, &path, None)
        .await
        .expect("delete");
    assert!(String::from_utf8_lossy(&deleted).contains("message_batch_deleted"));
    let _ = std::fs::remove_dir_all(dir);
}
