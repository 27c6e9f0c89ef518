//! Durable batch submissions against the local mock server: a journal resumes, settles and
//! reuses submissions; interrupted chunks are found at the provider (OpenAI-format: by the
//! recorded input file; Message Batches: by shape) or cleaned up; creates that may have
//! worked are looked up instead of repeated. (Kills of real processes are tested from
//! Python, `tests/test_durable_batch.py`.)

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use distilabel_rs_core::batch_jobs::BatchJobs;
use distilabel_rs_core::batch_jobs::journal::{Journal, JournalAt, unix_now};
use distilabel_rs_core::http::{Client, ClientConfig, Endpoint};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::{AnyBatchJobs, AnyProvider};
use distilabel_rs_mock::MockServer;
use serde_json::{Value, json};

fn client(
    server: &MockServer,
    kind: &str,
    profile: Value,
    retries: u32,
) -> Arc<Client<AnyProvider>> {
    let provider = AnyProvider::from_spec(kind, &profile).expect("profile");
    let base = if kind == "openai" {
        format!("{}/v1", server.origin())
    } else {
        server.origin()
    };
    let config = ClientConfig {
        api_key: Some("sk-test".into()),
        retry: RetryPolicy {
            max_retries: retries,
            base_seconds: 0.01,
            cap_seconds: 0.02,
        },
        timeout: Duration::from_millis(500),
        ..ClientConfig::new(base)
    };
    Client::new(provider, &config).expect("client")
}

/// Batch jobs whose creates go through a single-attempt twin of the client.
fn jobs(server: &MockServer, kind: &str, profile: Value) -> AnyBatchJobs {
    let normal = client(server, kind, profile.clone(), 2);
    let single = client(server, kind, profile, 0);
    let retry = RetryPolicy {
        max_retries: 2,
        base_seconds: 0.01,
        cap_seconds: 0.02,
    };
    AnyProvider::batch_jobs(&normal)
        .expect("batch api")
        .single_attempt_creates(single, retry)
}

fn rows(jobs: &AnyBatchJobs, texts: &[&str]) -> Vec<Vec<u8>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let body = json!({"model": "m", "max_tokens": 5,
                              "messages": [{"role": "user", "content": text}]});
            let row = jobs.row(&i.to_string(), Endpoint::Chat, body).expect("row");
            serde_json::to_vec(&row).expect("json")
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "distilabel-rs-durable-{name}-{}-{}",
        std::process::id(),
        unix_now()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Makes the journal look as a kill right after the create call left it: the chunk's job
/// id was never written.
fn forget_the_job_id(path: &Path) {
    let mut journal = Journal::load(path).expect("load");
    journal.jobs_ids.clear();
    let submission = journal.submissions.last_mut().expect("submission");
    submission.complete = false;
    submission.chunks[0].job_id = None;
    journal.save(path).expect("save");
}

async fn get(server: &MockServer, path: &str) -> Value {
    let client = client(server, "openai", json!({}), 0);
    let body = client
        .call(reqwest::Method::GET, path, None)
        .await
        .expect("get");
    serde_json::from_slice(&body).expect("json")
}

#[tokio::test]
async fn a_journal_resumes_reuses_and_tells_rounds_apart() {
    let server = MockServer::start(false).await.expect("server");
    let jobs = jobs(&server, "openai", json!({}));
    let dir = scratch("reuse");
    let at = JournalAt::File(dir.join("out.jsonl.batch.json"));
    let first = jobs
        .submit(rows(&jobs, &["a", "b"]), "run", &json!({}), Some(&at), &[])
        .await
        .expect("submit");
    assert_eq!(first.len(), 1);
    // The same rows again, their jobs unknown to the caller (it was killed before keeping
    // them): the same jobs, nothing created.
    let again = jobs
        .submit(rows(&jobs, &["a", "b"]), "run", &json!({}), Some(&at), &[])
        .await
        .expect("submit");
    assert_eq!(again, first);
    assert_eq!(server.batch_ids().len(), 1);
    // The same rows while the caller collects their jobs: a new round (e.g. they expired).
    let round = jobs
        .submit(
            rows(&jobs, &["a", "b"]),
            "run",
            &json!({}),
            Some(&at),
            &first,
        )
        .await
        .expect("submit");
    assert_ne!(round, first);
    assert_eq!(server.batch_ids().len(), 2);
    let journal = Journal::load(&dir.join("out.jsonl.batch.json")).expect("journal");
    assert_eq!(journal.jobs_ids, server.batch_ids());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_interrupted_create_is_found_by_its_input_file() {
    let server = MockServer::start(false).await.expect("server");
    let jobs = jobs(&server, "openai", json!({}));
    let dir = scratch("found");
    let path = dir.join("state.json");
    let at = JournalAt::File(path.clone());
    let ids = jobs
        .submit(rows(&jobs, &["a"]), "run", &json!({}), Some(&at), &[])
        .await
        .expect("submit");
    forget_the_job_id(&path);
    let resumed = jobs
        .submit(rows(&jobs, &["a"]), "run", &json!({}), Some(&at), &[])
        .await
        .expect("resume");
    assert_eq!(resumed, ids);
    assert_eq!(server.batch_ids(), ids, "no second job");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_uploaded_file_without_a_job_is_deleted_and_the_chunk_starts_again() {
    let server = MockServer::start(false).await.expect("server");
    let jobs = jobs(&server, "openai", json!({}));
    let dir = scratch("orphan");
    let path = dir.join("state.json");
    let at = JournalAt::File(path.clone());
    jobs.submit(rows(&jobs, &["a"]), "run", &json!({}), Some(&at), &[])
        .await
        .expect("submit");
    // As if the create had never been sent: the recorded file points to no job.
    let mut journal = Journal::load(&path).expect("load");
    journal.jobs_ids.clear();
    let submission = &mut journal.submissions[0];
    submission.complete = false;
    submission.chunks[0].job_id = None;
    submission.chunks[0].file_id = Some("file_99".into());
    journal.save(&path).expect("save");
    let uploaded = get(&server, "files?purpose=batch").await;
    assert_eq!(uploaded["data"].as_array().map(Vec::len), Some(1));
    let ids = jobs
        .submit(rows(&jobs, &["a"]), "run", &json!({}), Some(&at), &[])
        .await
        .expect("resume");
    assert_eq!(ids.len(), 1);
    assert_eq!(server.batch_ids().len(), 2, "the chunk was started again");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_create_that_timed_out_after_creating_is_looked_up_not_repeated() {
    let server = MockServer::start(true).await.expect("server");
    let jobs = jobs(&server, "openai", json!({}));
    // The mock records the job, then answers after 2 s; the client gives up after 0.5 s.
    let ids = jobs
        .submit(
            rows(&jobs, &["[[slow_create=2000]] a"]),
            "run",
            &json!({}),
            None,
            &[],
        )
        .await
        .expect("submit");
    assert_eq!(server.batch_ids(), ids);
    let creates = server
        .recorded()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/batches")
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn a_refused_create_deletes_its_file_and_leaves_nothing_pending() {
    let server = MockServer::start(false).await.expect("server");
    let jobs = jobs(&server, "openai", json!({}));
    let dir = scratch("refused");
    let path = dir.join("state.json");
    let at = JournalAt::File(path.clone());
    let error = jobs
        .submit(
            rows(&jobs, &["[[refuse_create]] a"]),
            "run",
            &json!({}),
            Some(&at),
            &[],
        )
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("400"), "{error}");
    let journal = Journal::load(&path).expect("journal");
    let chunk = &journal.submissions[0].chunks[0];
    assert!(!chunk.interrupted() && chunk.file_id.is_none(), "{chunk:?}");
    let files = get(&server, "files?purpose=batch").await;
    assert_eq!(
        files["data"].as_array().map(Vec::len),
        Some(0),
        "the file is deleted"
    );
    assert!(server.batch_ids().is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_mock_lists_files_and_batches_newest_first_and_deletes_files() {
    let server = MockServer::start(false).await.expect("server");
    let jobs = jobs(&server, "openai", json!({}));
    for text in ["a", "b", "c"] {
        jobs.submit(rows(&jobs, &[text]), "run", &json!({"k": text}), None, &[])
            .await
            .expect("submit");
    }
    let page = get(&server, "batches?limit=2").await;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["data"][0]["metadata"], json!({"k": "c"}));
    assert!(page["data"][0]["created_at"].as_u64().is_some());
    let rest = get(&server, &format!("batches?limit=2&after={}", ids[1])).await;
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["has_more"], false);
    let files = get(&server, "files?purpose=batch").await;
    let first = files["data"][2]["id"].as_str().expect("id").to_owned();
    assert_eq!(files["data"][2]["filename"], "run-fileno-0.jsonl");
    let client = client(&server, "openai", json!({}), 0);
    client
        .call(reqwest::Method::DELETE, &format!("files/{first}"), None)
        .await
        .expect("delete");
    let files = get(&server, "files?purpose=batch").await;
    assert_eq!(files["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn an_interrupted_message_batch_is_found_by_its_shape_or_reported_ambiguous() {
    let server = MockServer::start(false).await.expect("server");
    let dir = scratch("anthropic");
    let store = dir.join("store");
    let jobs = jobs(&server, "anthropic", json!({"batch": {"store_dir": store}}));
    let path = dir.join("state.json");
    let at = JournalAt::File(path.clone());
    let ids = jobs
        .submit(rows(&jobs, &["a", "b"]), "", &json!({}), Some(&at), &[])
        .await
        .expect("submit");
    forget_the_job_id(&path);
    let resumed = jobs
        .submit(rows(&jobs, &["a", "b"]), "", &json!({}), Some(&at), &[])
        .await
        .expect("resume");
    assert_eq!(resumed, ids);
    assert_eq!(server.batch_ids(), ids);
    assert!(
        store.join(format!("{}.jsonl", ids[0])).exists(),
        "the copy is kept"
    );

    // Another batch of the same size, created by someone else meanwhile: no guess.
    forget_the_job_id(&path);
    jobs.submit(rows(&jobs, &["x", "y"]), "", &json!({}), None, &[])
        .await
        .expect("other");
    let error = jobs
        .submit(rows(&jobs, &["a", "b"]), "", &json!({}), Some(&at), &[])
        .await
        .expect_err("ambiguous");
    assert!(error.to_string().contains(&ids[0]), "{error}");
    assert_eq!(server.batch_ids().len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}
