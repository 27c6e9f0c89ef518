//! The OpenAI Batch API: JSONL files of requests, uploaded and run as batch jobs.
//!
//! [`split_into_files`] cuts the rows at both of the API's limits (50,000 requests and
//! 200 MB per file); [`BatchApi`] uploads files, creates, retrieves and cancels batches and
//! downloads result files; [`collect`] turns the output and error files of a set of jobs
//! into one result per `custom_id`, and finds the rows that an expired or cancelled job left
//! unfinished, so that only those are submitted again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::OpenAiClient;
use super::error::ApiError;
use super::response::{self, Completion};

/// At most this many requests per input file (the API's limit).
pub const MAX_ROWS_PER_FILE: usize = 50_000;
/// At most this many bytes per input file (the API's limit).
pub const MAX_BYTES_PER_FILE: usize = 200 * 1024 * 1024;

/// Groups JSONL rows (each ending with `\n`) into files within both limits, in order.
pub fn split_into_files(rows: Vec<Vec<u8>>, max_rows: usize, max_bytes: usize) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut count = 0;
    for row in rows {
        let full = count >= max_rows || (count > 0 && current.len() + row.len() > max_bytes);
        if full {
            files.push(std::mem::take(&mut current));
            count = 0;
        }
        current.extend_from_slice(&row);
        count += 1;
    }
    if count > 0 {
        files.push(current);
    }
    files
}

/// What `retrieve` says of a batch.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BatchStatus {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub input_file_id: Option<String>,
    #[serde(default)]
    pub output_file_id: Option<String>,
    #[serde(default)]
    pub error_file_id: Option<String>,
    #[serde(default)]
    pub request_counts: Option<RequestCounts>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct RequestCounts {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
}

impl BatchStatus {
    /// Still running: validating, in progress, finalizing or cancelling.
    pub fn is_running(&self) -> bool {
        matches!(
            self.status.as_str(),
            "validating" | "in_progress" | "finalizing" | "cancelling"
        )
    }

    /// Ended before finishing its rows (they can be submitted again).
    pub fn is_interrupted(&self) -> bool {
        matches!(self.status.as_str(), "expired" | "cancelled")
    }
}

/// The Files and Batches endpoints of one client.
#[derive(Debug, Clone)]
pub struct BatchApi {
    client: Arc<OpenAiClient>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

impl BatchApi {
    pub fn new(client: Arc<OpenAiClient>) -> Self {
        Self { client }
    }

    /// Uploads a JSONL file with purpose `batch`; returns its id.
    pub async fn upload(&self, file_name: &str, content: Vec<u8>) -> Result<String, ApiError> {
        let boundary = "distilabel-rs-boundary-7d1b2c";
        let mut body = Vec::with_capacity(content.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
                 Content-Type: application/jsonl\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let answer = self
            .client
            .request_raw(
                reqwest::Method::POST,
                "files",
                Some((format!("multipart/form-data; boundary={boundary}"), body)),
            )
            .await?;
        parse::<Created>(&answer).map(|created| created.id)
    }

    /// Creates a batch of chat completions over an uploaded file, with a 24 h window.
    pub async fn create(&self, input_file_id: &str, metadata: &Value) -> Result<String, ApiError> {
        let request = json!({
            "input_file_id": input_file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": metadata,
        });
        let answer = self
            .client
            .request_raw(
                reqwest::Method::POST,
                "batches",
                Some((
                    "application/json".to_owned(),
                    request.to_string().into_bytes(),
                )),
            )
            .await?;
        parse::<Created>(&answer).map(|created| created.id)
    }

    pub async fn retrieve(&self, batch_id: &str) -> Result<BatchStatus, ApiError> {
        let answer = self
            .client
            .request_raw(reqwest::Method::GET, &format!("batches/{batch_id}"), None)
            .await?;
        parse(&answer)
    }

    pub async fn cancel(&self, batch_id: &str) -> Result<BatchStatus, ApiError> {
        let answer = self
            .client
            .request_raw(
                reqwest::Method::POST,
                &format!("batches/{batch_id}/cancel"),
                None,
            )
            .await?;
        parse(&answer)
    }

    pub async fn content(&self, file_id: &str) -> Result<Vec<u8>, ApiError> {
        self.client
            .request_raw(
                reqwest::Method::GET,
                &format!("files/{file_id}/content"),
                None,
            )
            .await
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidResponse(e.to_string()))
}

/// The outcome of one row of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum RowResult {
    Completed(Completion),
    /// The provider's error for this row (non-200 status, error file entry, failed job).
    Failed(String),
}

/// What the jobs produced so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// One entry per `custom_id` that has a result.
    pub rows: BTreeMap<String, RowResult>,
    /// Every `custom_id` the jobs' input files contain.
    pub submitted: BTreeSet<String>,
    /// Input rows (JSONL lines) that an expired or cancelled job left without a result.
    pub unfinished: Vec<Vec<u8>>,
    /// The output or error file line behind each result, as the API wrote it.
    pub raw: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct OutputRow {
    custom_id: String,
    #[serde(default)]
    response: Option<OutputResponse>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct OutputResponse {
    status_code: u16,
    #[serde(default)]
    body: Value,
}

#[derive(Deserialize)]
struct InputRow {
    custom_id: String,
}

/// Downloads and reads the files of finished jobs (`statuses` must all be terminal).
pub async fn collect(api: &BatchApi, statuses: &[BatchStatus]) -> Result<Collected, ApiError> {
    let mut collected = Collected::default();
    let mut inputs: Vec<(bool, Vec<u8>)> = Vec::new();
    for status in statuses {
        if let Some(file) = &status.input_file_id {
            inputs.push((status.is_interrupted(), api.content(file).await?));
        }
        for file in [&status.output_file_id, &status.error_file_id]
            .into_iter()
            .flatten()
        {
            let content = api.content(file).await?;
            read_output_file(&content, &mut collected.rows, &mut collected.raw)?;
        }
        if status.status == "failed" {
            // The whole job failed (e.g. its file was rejected): every row of it fails.
            if let Some((_, content)) = inputs.last() {
                for id in custom_ids(content)? {
                    collected.rows.entry(id).or_insert_with(|| {
                        RowResult::Failed(format!("The batch job {} failed.", status.id))
                    });
                }
            }
        }
    }
    for (interrupted, content) in &inputs {
        for line in content.split_inclusive(|byte| *byte == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let row: InputRow = parse(line)?;
            if *interrupted && !collected.rows.contains_key(&row.custom_id) {
                collected.unfinished.push(line.to_vec());
            }
            collected.submitted.insert(row.custom_id);
        }
    }
    Ok(collected)
}

fn custom_ids(content: &[u8]) -> Result<Vec<String>, ApiError> {
    content
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| parse::<InputRow>(line).map(|row| row.custom_id))
        .collect()
}

fn read_output_file(
    content: &[u8],
    rows: &mut BTreeMap<String, RowResult>,
    raw: &mut BTreeMap<String, String>,
) -> Result<(), ApiError> {
    for line in content.split(|byte| *byte == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let row: OutputRow = parse(line)?;
        let result = match (row.response, row.error) {
            (Some(response), _) if response.status_code == 200 => {
                match response::parse_chat(response.body.to_string().as_bytes()) {
                    Ok(completion) => RowResult::Completed(completion),
                    Err(error) => RowResult::Failed(error.to_string()),
                }
            }
            (Some(response), _) => RowResult::Failed(format!(
                "Error code: {} - {}",
                response.status_code,
                response::error_message(response.body.to_string().as_bytes())
            )),
            // Not run before the job expired or was cancelled: left for a resubmission.
            (None, Some(error))
                if matches!(
                    error.get("code").and_then(Value::as_str),
                    Some("batch_expired" | "batch_cancelled")
                ) =>
            {
                continue;
            }
            (None, Some(error)) => RowResult::Failed(
                error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_owned),
            ),
            (None, None) => {
                RowResult::Failed("The row has neither a response nor an error.".into())
            }
        };
        // A completed row wins over an error for the same id (a resubmission that worked).
        if !matches!(rows.get(&row.custom_id), Some(RowResult::Completed(_))) {
            raw.insert(
                row.custom_id.clone(),
                String::from_utf8_lossy(line).into_owned(),
            );
            rows.insert(row.custom_id, result);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(count: usize, size: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|_| {
                let mut row = vec![b'x'; size - 1];
                row.push(b'\n');
                row
            })
            .collect()
    }

    #[test]
    fn split_at_the_row_limit() {
        let files = split_into_files(rows(50_001, 10), MAX_ROWS_PER_FILE, MAX_BYTES_PER_FILE);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].len(), 500_000);
        assert_eq!(files[1].len(), 10);
    }

    #[test]
    fn split_at_the_byte_limit() {
        let files = split_into_files(rows(10, 100), 1000, 250);
        assert_eq!(files.iter().map(Vec::len).collect::<Vec<_>>(), vec![200; 5]);
        assert!(split_into_files(Vec::new(), 10, 10).is_empty());
        // A single row larger than the limit still goes (alone) into a file.
        assert_eq!(split_into_files(rows(2, 300), 10, 250).len(), 2);
    }

    #[test]
    fn output_rows_errors_and_resubmissions() {
        let mut collected = BTreeMap::new();
        let mut raw = BTreeMap::new();
        let output = br#"{"custom_id":"0","response":{"status_code":200,"body":{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}}}
{"custom_id":"1","response":{"status_code":400,"body":{"error":{"message":"bad request"}}}}
{"custom_id":"2","error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}
"#;
        read_output_file(output, &mut collected, &mut raw).expect("reads");
        assert!(
            matches!(collected.get("0"), Some(RowResult::Completed(c)) if c.generations == vec![Some("hi".to_owned())])
        );
        assert_eq!(
            collected.get("1"),
            Some(&RowResult::Failed("Error code: 400 - bad request".into()))
        );
        assert_eq!(collected.get("2"), None); // expired: left for a resubmission
        let retry = br#"{"custom_id":"2","response":{"status_code":200,"body":{"choices":[{"message":{"content":"ok"}}]}}}"#;
        read_output_file(retry, &mut collected, &mut raw).expect("reads");
        assert!(raw["2"].contains("\"ok\""));
        assert!(matches!(collected.get("2"), Some(RowResult::Completed(_))));
    }
}

/// Uploads each file and starts a batch on it; returns the batch ids in file order.
pub async fn submit(
    api: &BatchApi,
    files: Vec<(String, Vec<u8>)>,
    metadata: &Value,
) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::with_capacity(files.len());
    for (name, content) in files {
        let file_id = api.upload(&name, content).await?;
        ids.push(api.create(&file_id, metadata).await?);
    }
    Ok(ids)
}

/// Where a set of jobs stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Some job still runs; the request counts summed over all jobs.
    Running(RequestCounts),
    /// Every job ended; what they produced.
    Done(RequestCounts, Collected),
}

/// Retrieves every job; once none is running, collects their results.
pub async fn check(api: &BatchApi, batch_ids: &[String]) -> Result<Check, ApiError> {
    let mut statuses = Vec::with_capacity(batch_ids.len());
    for id in batch_ids {
        statuses.push(api.retrieve(id).await?);
    }
    let counts = statuses
        .iter()
        .filter_map(|status| status.request_counts)
        .fold(RequestCounts::default(), |sum, counts| RequestCounts {
            total: sum.total + counts.total,
            completed: sum.completed + counts.completed,
            failed: sum.failed + counts.failed,
        });
    if statuses.iter().any(BatchStatus::is_running) {
        return Ok(Check::Running(counts));
    }
    Ok(Check::Done(counts, collect(api, &statuses).await?))
}
