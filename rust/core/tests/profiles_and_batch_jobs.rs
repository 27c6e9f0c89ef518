//! OpenAI-compatible profiles (Azure's URL, query and key header) and OpenAI-format batch
//! jobs, against the local mock server.

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use distilabel_rs_core::batch_jobs::{BatchJobs, Check, RowResult};
use distilabel_rs_core::http::{
    Client, ClientConfig, Endpoint, Request, RequestCounters, run_many,
};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::AnyProvider;
use distilabel_rs_mock::MockServer;
use serde_json::{Value, json};

fn client(server: &MockServer, base_path: &str, profile: Value) -> Arc<Client<AnyProvider>> {
    let provider = AnyProvider::from_spec("openai", &profile).expect("profile");
    let config = ClientConfig {
        api_key: Some("azure-secret".into()),
        retry: RetryPolicy {
            max_retries: 2,
            base_seconds: 0.01,
            cap_seconds: 0.02,
        },
        timeout: Duration::from_secs(5),
        ..ClientConfig::new(format!("{}{base_path}", server.origin()))
    };
    Client::new(provider, &config).expect("client")
}

fn azure_profile() -> Value {
    json!({
        "name": "azure",
        "auth": {"header": "api-key"},
        "query": {"api-version": "2024-10-21"},
        "chat_path": "openai/deployments/my-deployment/chat/completions",
        "text_path": null,
        "batch": {"path_prefix": "openai/", "endpoint": "/chat/completions", "wait_for_files": true},
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[tokio::test]
async fn azure_chat_goes_to_the_deployment_with_version_and_key_header() {
    let server = MockServer::start(true).await.expect("server");
    let client = client(&server, "", azure_profile());
    let body = json!({"model": "my-deployment", "messages": [{"role": "user", "content": "hi"}]});
    let request = Request::new(client.provider(), Endpoint::Chat, &body).expect("request");
    let results = run_many(
        Arc::clone(&client),
        vec![request],
        None,
        true,
        Arc::new(RequestCounters::default()),
    )
    .await;
    let completion = results[0].as_ref().expect("completion");
    assert_eq!(completion.generations, vec![Some("echo: hi".to_owned())]);
    let recorded = server.recorded();
    assert_eq!(
        recorded[0].path,
        "/openai/deployments/my-deployment/chat/completions"
    );
    assert_eq!(recorded[0].query, "api-version=2024-10-21");
    assert_eq!(
        header(&recorded[0].headers, "api-key"),
        Some("azure-secret")
    );
    assert_eq!(recorded[0].authorization, None);
    // No text endpoint on this profile: a clear error, nothing sent.
    let text =
        Request::new(client.provider(), Endpoint::Text, &json!({"prompt": "x"})).expect("request");
    let results = run_many(
        client,
        vec![text],
        None,
        true,
        Arc::new(RequestCounters::default()),
    )
    .await;
    assert!(
        matches!(&results[0], Err(e) if e.to_string().contains("no text completions endpoint"))
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn azure_batch_jobs_wait_for_processed_files_and_collect_in_any_order() {
    let server = MockServer::start(true).await.expect("server");
    let client = client(&server, "", azure_profile());
    let jobs = AnyProvider::batch_jobs(&client).expect("batch api");
    let rows: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let body = json!({"model": "my-deployment",
                              "messages": [{"role": "user", "content": format!("q{i}")}]});
            let row = jobs.row(&i.to_string(), Endpoint::Chat, body).expect("row");
            serde_json::to_vec(&row).expect("json")
        })
        .collect();
    // A file name with characters that must be escaped in the multipart header.
    let ids = jobs
        .submit(
            rows,
            "run \"quoted\"",
            &json!({"description": "test"}),
            None,
            &[],
        )
        .await
        .expect("submitted");
    assert_eq!(ids.len(), 1);
    let recorded = server.recorded();
    let paths: Vec<&str> = recorded.iter().map(|r| r.path.as_str()).collect();
    // Upload, the file is pending once then processed, then the job.
    assert_eq!(
        paths,
        vec![
            "/openai/files",
            "/openai/files/file_0",
            "/openai/files/file_0",
            "/openai/batches"
        ]
    );
    assert!(recorded.iter().all(|r| r.query == "api-version=2024-10-21"));
    let created: Value = serde_json::from_str(&recorded[3].body).expect("json");
    assert_eq!(created["endpoint"], "/chat/completions");
    assert!(recorded[0].body.contains(r#""url":"/chat/completions""#));

    let mut checks = 0;
    let collected = loop {
        checks += 1;
        match jobs.check(&ids).await.expect("check") {
            Check::Running(_) => continue,
            Check::Done(counts, collected) => {
                assert_eq!((counts.total, counts.completed, counts.failed), (3, 3, 0));
                break collected;
            }
        }
    };
    assert!(checks >= 3, "the mock job advances one state per retrieve");
    for i in 0..3 {
        assert!(matches!(
            collected.rows.get(&i.to_string()),
            Some(RowResult::Completed(c)) if c.generations == vec![Some(format!("echo: q{i}"))]
        ));
    }
    assert!(collected.unfinished.is_empty());
}

#[tokio::test]
async fn profiles_without_a_batch_api_say_so() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, "/v1", json!({"name": "vllm", "batch": null}));
    let error = AnyProvider::batch_jobs(&client).expect_err("no batch api");
    assert!(error.to_string().contains("the vllm API has no batch API"));
}
