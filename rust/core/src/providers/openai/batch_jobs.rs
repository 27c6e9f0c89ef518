//! OpenAI-format batch jobs: JSONL files of requests uploaded through the Files endpoint and
//! run by the Batches endpoint (OpenAI, Groq, Azure OpenAI's global batch).
//!
//! Files are cut at the profile's limits (OpenAI: 50,000 requests and 200 MB); the output
//! and error files of finished jobs are read into one result per `custom_id`; rows an
//! expired or cancelled job left undone are found in its input file, so that only those are
//! submitted again.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::BatchProfile;
use super::response;
use crate::batch_jobs::split::split_into_files;
use crate::batch_jobs::{BatchJobs, Check, Collected, RequestCounts, RowResult};
use crate::http::error::provider_message;
use crate::http::{ApiError, Client, Endpoint, FormPart, Payload, Provider};

/// How long an uploaded file may take to be `processed` (Azure) before submission fails.
const FILE_PROCESSING_LIMIT: Duration = Duration::from_secs(600);
const FILE_PROCESSING_POLL: Duration = Duration::from_millis(500);

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
    pub request_counts: Option<JobCounts>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct JobCounts {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
}

impl From<JobCounts> for RequestCounts {
    fn from(counts: JobCounts) -> Self {
        Self {
            total: counts.total,
            completed: counts.completed,
            failed: counts.failed,
        }
    }
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

/// The Files and Batches endpoints of one client, as its profile describes them.
#[derive(Debug)]
pub struct OpenAiBatchJobs<P: Provider> {
    client: Arc<Client<P>>,
    profile: BatchProfile,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct UploadedFile {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    status_details: Option<Value>,
}

impl<P: Provider> OpenAiBatchJobs<P> {
    pub fn new(client: Arc<Client<P>>, profile: BatchProfile) -> Self {
        Self { client, profile }
    }

    fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.profile.path_prefix)
    }

    /// Uploads a JSONL file with purpose `batch`; returns its id.
    pub async fn upload(&self, file_name: &str, content: Vec<u8>) -> Result<String, ApiError> {
        let form = vec![
            FormPart {
                name: "purpose".into(),
                file_name: None,
                content_type: None,
                content: "batch".into(),
            },
            FormPart {
                name: "file".into(),
                file_name: Some(file_name.to_owned()),
                content_type: Some("application/jsonl".into()),
                content: content.into(),
            },
        ];
        let answer = self
            .client
            .call(
                reqwest::Method::POST,
                &self.path("files"),
                Some(Payload::Form(form)),
            )
            .await?;
        let id = parse::<Created>(&answer)?.id;
        if self.profile.wait_for_files {
            self.wait_until_processed(&id).await?;
        }
        Ok(id)
    }

    /// Polls an uploaded file until the API has validated it (Azure creates no job on a
    /// file that is still `pending`), within [`FILE_PROCESSING_LIMIT`].
    async fn wait_until_processed(&self, file_id: &str) -> Result<(), ApiError> {
        let started = tokio::time::Instant::now();
        loop {
            let answer = self
                .client
                .call(
                    reqwest::Method::GET,
                    &self.path(&format!("files/{file_id}")),
                    None,
                )
                .await?;
            let file: UploadedFile = parse(&answer)?;
            match file.status.as_deref() {
                Some("processed") | None => return Ok(()),
                Some("error" | "failed" | "deleted") => {
                    let details = file.status_details.map_or_else(String::new, |d| {
                        d.as_str().map_or_else(|| d.to_string(), str::to_owned)
                    });
                    return Err(ApiError::InvalidRequest(format!(
                        "the API rejected the uploaded batch file {file_id}: {details}"
                    )));
                }
                Some(_) => {}
            }
            if started.elapsed() >= FILE_PROCESSING_LIMIT {
                return Err(ApiError::Timeout(FILE_PROCESSING_LIMIT));
            }
            tokio::time::sleep(FILE_PROCESSING_POLL).await;
        }
    }

    /// Creates a 24 h batch job over an uploaded file.
    pub async fn create(&self, input_file_id: &str, metadata: &Value) -> Result<String, ApiError> {
        let request = json!({
            "input_file_id": input_file_id,
            "endpoint": self.profile.endpoint,
            "completion_window": "24h",
            "metadata": metadata,
        });
        let answer = self
            .client
            .call(
                reqwest::Method::POST,
                &self.path("batches"),
                Some(Payload::Json(request.to_string().into())),
            )
            .await?;
        parse::<Created>(&answer).map(|created| created.id)
    }

    pub async fn retrieve(&self, batch_id: &str) -> Result<BatchStatus, ApiError> {
        let answer = self
            .client
            .call(
                reqwest::Method::GET,
                &self.path(&format!("batches/{batch_id}")),
                None,
            )
            .await?;
        parse(&answer)
    }

    async fn cancel_one(&self, batch_id: &str) -> Result<BatchStatus, ApiError> {
        let answer = self
            .client
            .call(
                reqwest::Method::POST,
                &self.path(&format!("batches/{batch_id}/cancel")),
                None,
            )
            .await?;
        parse(&answer)
    }

    pub async fn content(&self, file_id: &str) -> Result<Vec<u8>, ApiError> {
        let bytes = self
            .client
            .call(
                reqwest::Method::GET,
                &self.path(&format!("files/{file_id}/content")),
                None,
            )
            .await?;
        Ok(bytes.to_vec())
    }

    /// Downloads and reads the files of finished jobs (`statuses` must all be terminal).
    async fn collect(&self, statuses: &[BatchStatus]) -> Result<Collected, ApiError> {
        let mut collected = Collected::default();
        let mut inputs: Vec<(bool, Vec<u8>)> = Vec::new();
        for status in statuses {
            if let Some(file) = &status.input_file_id {
                inputs.push((status.is_interrupted(), self.content(file).await?));
            }
            for file in [&status.output_file_id, &status.error_file_id]
                .into_iter()
                .flatten()
            {
                let content = self.content(file).await?;
                read_output_file(&content, &mut collected)?;
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
}

impl<P: Provider> BatchJobs for OpenAiBatchJobs<P> {
    fn row(&self, custom_id: &str, endpoint: Endpoint, body: Value) -> Result<Value, ApiError> {
        if endpoint != Endpoint::Chat {
            return Err(ApiError::InvalidRequest(
                "batch jobs run chat requests only (one endpoint per job)".into(),
            ));
        }
        Ok(json!({
            "custom_id": custom_id,
            "method": "POST",
            "url": self.profile.endpoint,
            "body": body,
        }))
    }

    async fn submit(
        &self,
        rows: Vec<Vec<u8>>,
        name: &str,
        metadata: &Value,
    ) -> Result<Vec<String>, ApiError> {
        let rows = rows
            .into_iter()
            .map(|mut row| {
                if row.last() != Some(&b'\n') {
                    row.push(b'\n');
                }
                row
            })
            .collect();
        let files = split_into_files(rows, self.profile.max_rows, self.profile.max_bytes);
        let mut ids = Vec::with_capacity(files.len());
        for (number, content) in files.into_iter().enumerate() {
            let file_id = self
                .upload(&format!("{name}-fileno-{number}.jsonl"), content)
                .await?;
            ids.push(self.create(&file_id, metadata).await?);
        }
        Ok(ids)
    }

    async fn check(&self, job_ids: &[String]) -> Result<Check, ApiError> {
        let mut statuses = Vec::with_capacity(job_ids.len());
        for id in job_ids {
            statuses.push(self.retrieve(id).await?);
        }
        let counts = statuses
            .iter()
            .filter_map(|status| status.request_counts)
            .map(RequestCounts::from)
            .fold(RequestCounts::default(), |sum, counts| sum + counts);
        if statuses.iter().any(BatchStatus::is_running) {
            return Ok(Check::Running(counts));
        }
        Ok(Check::Done(counts, self.collect(&statuses).await?))
    }

    async fn cancel(&self, job_ids: &[String]) -> Result<(), ApiError> {
        for id in job_ids {
            self.cancel_one(id).await?;
        }
        Ok(())
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidResponse(e.to_string()))
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

fn custom_ids(content: &[u8]) -> Result<Vec<String>, ApiError> {
    content
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| parse::<InputRow>(line).map(|row| row.custom_id))
        .collect()
}

fn read_output_file(content: &[u8], collected: &mut Collected) -> Result<(), ApiError> {
    let Collected { rows, raw, .. } = collected;
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
                provider_message(response.body.to_string().as_bytes())
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

    #[test]
    fn output_rows_errors_and_resubmissions() {
        let mut collected = Collected::default();
        let output = br#"{"custom_id":"0","response":{"status_code":200,"body":{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}}}
{"custom_id":"1","response":{"status_code":400,"body":{"error":{"message":"bad request"}}}}
{"custom_id":"2","error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}
"#;
        read_output_file(output, &mut collected).expect("reads");
        let rows = &collected.rows;
        assert!(
            matches!(rows.get("0"), Some(RowResult::Completed(c)) if c.generations == vec![Some("hi".to_owned())])
        );
        assert_eq!(
            rows.get("1"),
            Some(&RowResult::Failed("Error code: 400 - bad request".into()))
        );
        assert_eq!(rows.get("2"), None); // expired: left for a resubmission
        let retry = br#"{"custom_id":"2","response":{"status_code":200,"body":{"choices":[{"message":{"content":"ok"}}]}}}"#;
        read_output_file(retry, &mut collected).expect("reads");
        assert!(collected.raw["2"].contains("\"ok\""));
        assert!(matches!(
            collected.rows.get("2"),
            Some(RowResult::Completed(_))
        ));
    }
}
