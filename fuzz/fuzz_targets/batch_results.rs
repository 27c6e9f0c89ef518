//! The readers of batch result files — OpenAI's output and error files (and the input file
//! of a failed or interrupted job), Anthropic's results — through the public `BatchJobs`
//! API (the readers are private to their modules), against the mock server answering the
//! fuzzed bytes as the files: any file is rows or a clear error, never a panic or a hang.
//!
//! Input: first byte = the OpenAI job's status; the rest split at the first two 0x00 bytes
//! into the output, error and input files (the output is also Anthropic's results file).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use distilabel_rs_core::batch_jobs::{BatchJobs, Check, RowResult};
use distilabel_rs_core::http::{Client, ClientConfig};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::{AnyBatchJobs, AnyProvider};
use distilabel_rs_mock::MockServer;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

struct Harness {
    runtime: tokio::runtime::Runtime,
    server: MockServer,
    openai: AnyBatchJobs,
    anthropic: AnyBatchJobs,
}

fn jobs(kind: &str, base_url: String, profile: serde_json::Value) -> AnyBatchJobs {
    let provider = AnyProvider::from_spec(kind, &profile).unwrap_or_else(|e| panic!("{e}"));
    let config = ClientConfig {
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_retries: 0,
            base_seconds: 0.0,
            cap_seconds: 0.0,
        },
        ..ClientConfig::new(base_url)
    };
    let client = Client::new(provider, &config).unwrap_or_else(|e| panic!("{e}"));
    AnyProvider::batch_jobs(&client).unwrap_or_else(|e| panic!("{e}"))
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // One thread for the server and the client: they run only inside `block_on`, with
        // no wake-ups across threads (several times faster).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let server = runtime
            .block_on(MockServer::start(false))
            .unwrap_or_else(|e| panic!("{e}"));
        let origin = server.origin();
        // Expired and canceled rows look for their kept requests here: an empty directory.
        let store = std::env::temp_dir().join(format!("distilabel-rs-fuzz-{}", std::process::id()));
        let openai = jobs("openai", format!("{origin}/v1"), json!({}));
        let anthropic = jobs(
            "anthropic",
            origin.clone(),
            json!({"batch": {"store_dir": store.display().to_string()}}),
        );
        let results_url = format!("{origin}/results/msgbatch_f");
        server.set_answer(
            "/v1/messages/batches/msgbatch_f",
            200,
            "application/json",
            Bytes::from(
                json!({"id": "msgbatch_f", "type": "message_batch", "processing_status": "ended",
                       "request_counts": {"processing": 0, "succeeded": 1, "errored": 0,
                                          "canceled": 0, "expired": 0},
                       "results_url": results_url})
                .to_string(),
            ),
        );
        Harness {
            runtime,
            server,
            openai,
            anthropic,
        }
    })
}

const STATUSES: [&str; 4] = ["completed", "expired", "cancelled", "failed"];

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |byte| *byte == 0);
    let output = Bytes::copy_from_slice(parts.next().unwrap_or_default());
    let errors = parts.next().map(Bytes::copy_from_slice);
    let input = parts.next().map(Bytes::copy_from_slice);
    let h = harness();
    let status = STATUSES[usize::from(*first) % STATUSES.len()];
    let file =
        |path: &str, content: Bytes| h.server.set_answer(path, 200, "application/jsonl", content);
    file("/v1/files/out/content", output.clone());
    file("/results/msgbatch_f", output);
    let mut batch = json!({"id": "batch_f", "object": "batch", "status": status,
                           "output_file_id": "out",
                           "request_counts": {"total": 1, "completed": 1, "failed": 0}});
    if let Some(errors) = errors {
        file("/v1/files/err/content", errors);
        batch["error_file_id"] = json!("err");
    }
    if let Some(input) = input {
        file("/v1/files/in/content", input);
        batch["input_file_id"] = json!("in");
    }
    h.server.set_answer(
        "/v1/batches/batch_f",
        200,
        "application/json",
        Bytes::from(batch.to_string()),
    );
    for (jobs, id) in [(&h.openai, "batch_f"), (&h.anthropic, "msgbatch_f")] {
        let checked = h.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), jobs.check(&[id.to_owned()])).await
        });
        let Ok(checked) = checked else {
            panic!("checking {id} hung");
        };
        if let Ok(Check::Done(_, collected)) = checked {
            // Every completed row has the provider's line behind it (a failed job's rows
            // have none: no line of the provider names them).
            for (custom_id, row) in &collected.rows {
                if matches!(row, RowResult::Completed(_)) {
                    assert!(collected.raw.contains_key(custom_id), "{custom_id}");
                }
            }
        }
    }
});
