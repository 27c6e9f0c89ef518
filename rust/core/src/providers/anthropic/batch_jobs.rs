//! Message Batches: requests sent in the body of `POST /v1/messages/batches` (split at the
//! API's limits: 100,000 requests and 256 MB per batch), polled with `GET
//! /v1/messages/batches/{id}`, their results read from the batch's `results_url` (an
//! absolute URL; JSONL lines in no particular order, matched by `custom_id`).
//!
//! The API never gives a request back: the results of `expired` and `canceled` rows carry
//! only their `custom_id`. So that such rows can be submitted again by any process, a copy
//! of each batch's requests is kept in a local store (`{store}/{batch id}.jsonl`, written
//! before the batch is created) until every row of the batches being collected has a
//! result; rows the store does not have (another machine, a cleared cache) are reported as
//! [`Collected::lost`], for the caller to rebuild from its inputs. Copies are written
//! atomically (`pending-<chunk tag>.jsonl`, renamed after the batch once it exists).
//!
//! Submissions are durable ([`crate::batch_jobs::durable`]), but Message Batches keep no
//! metadata, and a batch shows neither its requests nor their custom ids before it ends: the
//! only thing that tells the batch an interrupted create made is its shape. It is found in
//! `GET /v1/messages/batches` (newest first, paginated) as the one batch with as many
//! requests as the chunk, created after the attempt began (give or take [`CLOCK_SKEW`]), not
//! being canceled, and not already the job of another chunk or journal. None: the create did
//! not happen, and the chunk starts again. More than one (another client created a batch of
//! the same size in those minutes): the submission stops with an error naming them rather
//! than risk a second batch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::BatchProfile;
use super::rate_limits::parse_rfc3339;
use super::response::{error_value_message, message_value_completion};
use crate::batch_jobs::durable::{
    self, CreateRetries, DurableSteps, Recorder, SubmitError, refused,
};
use crate::batch_jobs::journal::{
    ChunkRecord, JournalAt, kill_point, remove_stale_temporaries, unix_now, write_atomically,
};
use crate::batch_jobs::{BatchJobs, Check, Collected, RequestCounts, RowResult};
use crate::http::{ApiError, Client, Endpoint, Payload, Provider};
use crate::limits::RetryPolicy;

/// Clocks of the client and of the API may differ by this much (seconds) when telling
/// which batches were created after an attempt began.
pub const CLOCK_SKEW: f64 = 300.0;
/// At most this many pages of batches are read looking for one.
const MAX_LIST_PAGES: usize = 1000;

/// `{"requests":[` and `]}` around the rows of a batch.
const ENVELOPE_START: &[u8] = b"{\"requests\":[";
const ENVELOPE_END: &[u8] = b"]}";

/// What `retrieve` says of a batch.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MessageBatch {
    pub id: String,
    pub processing_status: String,
    #[serde(default)]
    pub request_counts: Option<BatchCounts>,
    #[serde(default)]
    pub results_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub cancel_initiated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BatchPage {
    data: Vec<MessageBatch>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

/// Rows of a batch by state; all but `processing` stay 0 until the batch ends.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct BatchCounts {
    #[serde(default)]
    pub processing: u64,
    #[serde(default)]
    pub succeeded: u64,
    #[serde(default)]
    pub errored: u64,
    #[serde(default)]
    pub canceled: u64,
    #[serde(default)]
    pub expired: u64,
}

impl From<BatchCounts> for RequestCounts {
    fn from(counts: BatchCounts) -> Self {
        Self {
            total: counts.processing
                + counts.succeeded
                + counts.errored
                + counts.canceled
                + counts.expired,
            completed: counts.succeeded,
            failed: counts.errored,
        }
    }
}

impl MessageBatch {
    /// `in_progress` or `canceling` (anything but `ended`: results exist only then).
    pub fn is_running(&self) -> bool {
        self.processing_status != "ended"
    }
}

/// The Message Batches endpoints of one client.
#[derive(Debug)]
pub struct AnthropicBatchJobs<P: Provider> {
    client: Arc<Client<P>>,
    /// Sends the create calls: a client that makes one attempt per call, or `client`.
    creator: Arc<Client<P>>,
    /// Attempts of a create after a failure that may be transient (each one after a
    /// lookup found no batch).
    creates: CreateRetries,
    profile: BatchProfile,
    /// Where the requests of each batch are kept (`None`: nowhere to keep them).
    store: Option<PathBuf>,
}

/// The store used when the profile names none: `$XDG_CACHE_HOME/distilabel-rs/
/// message-batches`, else `$HOME/.cache/distilabel-rs/message-batches`.
pub fn default_store_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let cache = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("distilabel-rs").join("message-batches"))
}

impl<P: Provider> AnthropicBatchJobs<P> {
    pub fn new(client: Arc<Client<P>>, profile: BatchProfile) -> Self {
        let store = profile
            .store_dir
            .as_ref()
            .map(PathBuf::from)
            .or_else(default_store_dir);
        Self {
            creator: Arc::clone(&client),
            client,
            creates: CreateRetries::none(),
            profile,
            store,
        }
    }

    /// Creates batches through `creator`, a client of the same API that makes one attempt
    /// per call, retrying as `retry` says only after a lookup found no batch.
    #[must_use]
    pub fn single_attempt_creates(mut self, creator: Arc<Client<P>>, retry: RetryPolicy) -> Self {
        self.creator = creator;
        self.creates = CreateRetries::new(retry);
        self
    }

    fn batch_path(&self, batch_id: &str, rest: &str) -> String {
        format!("{}/{batch_id}{rest}", self.profile.path)
    }

    /// Creates one batch from rows that fit in it (the chunk of `record`); returns its id.
    /// A failure that may have created it anyway (a timeout, a 5xx, a 2xx that is not a
    /// batch) is followed by a lookup ([`Self::find_created`]), and a new attempt only if
    /// there is none.
    async fn create(
        &self,
        rows: &[Vec<u8>],
        record: &ChunkRecord,
        known: &BTreeSet<String>,
    ) -> Result<String, ApiError> {
        let body: bytes::Bytes = envelope(rows).into();
        self.creates
            .create(
                || async {
                    let answer = self
                        .creator
                        .call(
                            reqwest::Method::POST,
                            &self.profile.path,
                            Some(Payload::Json(body.clone())),
                        )
                        .await?;
                    Ok(parse::<MessageBatch>(&answer)?.id)
                },
                || self.find_created(record, known),
            )
            .await
    }

    /// The batch an interrupted create of `record`'s chunk made, if any (see the module
    /// documentation); an error when several batches fit.
    async fn find_created(
        &self,
        record: &ChunkRecord,
        known: &BTreeSet<String>,
    ) -> Result<Option<String>, ApiError> {
        let Some(since) = record.create_started else {
            return Ok(None);
        };
        let earliest = since - CLOCK_SKEW;
        let mut candidates = Vec::new();
        let mut after: Option<String> = None;
        'pages: for _ in 0..MAX_LIST_PAGES {
            let query = match &after {
                Some(after) => format!("?limit=100&after_id={after}"),
                None => "?limit=100".to_owned(),
            };
            let answer = self
                .client
                .call(
                    reqwest::Method::GET,
                    &format!("{}{query}", self.profile.path),
                    None,
                )
                .await?;
            let page: BatchPage = parse(&answer)?;
            for batch in page.data {
                let created = batch.created_at.as_deref().and_then(parse_rfc3339);
                if created.is_some_and(|created| created < earliest) {
                    break 'pages;
                }
                let total = batch
                    .request_counts
                    .map(|counts| RequestCounts::from(counts).total);
                if total == Some(record.rows as u64)
                    && batch.cancel_initiated_at.is_none()
                    && !known.contains(&batch.id)
                {
                    candidates.push(batch.id);
                }
            }
            match page.last_id {
                Some(last) if page.has_more => after = Some(last),
                _ => break,
            }
        }
        match candidates.len() {
            0 => Ok(None),
            1 => Ok(candidates.pop()),
            _ => Err(ApiError::InvalidRequest(format!(
                "an interrupted submission may have created one of the message batches {} \
                 ({} requests each, created since the attempt began); Message Batches keep no \
                 metadata to tell which: cancel the ones that are not this submission's and \
                 run again (canceled batches are not considered)",
                candidates.join(", "),
                record.rows
            ))),
        }
    }

    /// Keeps the copy of a created batch's rows under its id.
    async fn keep_copy(&self, tag: &str, batch_id: &str) {
        let Some(dir) = self.store.clone() else {
            return;
        };
        let (pending, kept) = (pending_file(&dir, tag), store_file(&dir, batch_id));
        blocking(move || {
            match std::fs::rename(&pending, &kept) {
                Ok(()) => {}
                // Already renamed by an earlier run.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(error) => return Err(error),
            }
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .ok();
    }

    /// Drops the copy of rows whose batch was not created.
    async fn drop_copy(&self, tag: &str) {
        if let Some(dir) = self.store.clone() {
            let pending = pending_file(&dir, tag);
            blocking(move || std::fs::remove_file(pending)).await.ok();
        }
    }

    pub async fn retrieve(&self, batch_id: &str) -> Result<MessageBatch, ApiError> {
        let answer = self
            .client
            .call(reqwest::Method::GET, &self.batch_path(batch_id, ""), None)
            .await?;
        parse(&answer)
    }

    async fn cancel_one(&self, batch_id: &str) -> Result<MessageBatch, ApiError> {
        let answer = self
            .client
            .call(
                reqwest::Method::POST,
                &self.batch_path(batch_id, "/cancel"),
                None,
            )
            .await?;
        parse(&answer)
    }

    /// Reads the results of ended batches (in job order: a later row of the same
    /// `custom_id`, from a resubmission, wins unless it did less).
    async fn collect(&self, batches: &[MessageBatch]) -> Result<Collected, ApiError> {
        let mut collected = Collected::default();
        // Custom ids left undone, with the batch whose stored copy has their request.
        let mut interrupted: BTreeMap<String, String> = BTreeMap::new();
        for batch in batches {
            let url = batch.results_url.as_deref().ok_or_else(|| {
                ApiError::InvalidResponse(format!(
                    "the batch {} ended without a results_url",
                    batch.id
                ))
            })?;
            let content = self.client.get_url(url).await?;
            read_results(&content, &batch.id, &mut collected, &mut interrupted)?;
        }
        interrupted.retain(|custom_id, _| !collected.rows.contains_key(custom_id));
        let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (custom_id, batch_id) in interrupted {
            wanted.entry(batch_id).or_default().insert(custom_id);
        }
        for (batch_id, custom_ids) in wanted {
            let found = match &self.store {
                Some(dir) => stored_rows(store_file(dir, &batch_id), custom_ids.clone()).await?,
                None => BTreeMap::new(),
            };
            for custom_id in custom_ids {
                match found.get(&custom_id) {
                    Some(row) => collected.unfinished.push(row.clone()),
                    None => collected.lost.push(custom_id),
                }
            }
        }
        if collected.unfinished.is_empty()
            && collected.lost.is_empty()
            && let Some(dir) = &self.store
        {
            // Every row has its result: the copies are no longer needed.
            let files: Vec<PathBuf> = batches.iter().map(|b| store_file(dir, &b.id)).collect();
            blocking(move || {
                for file in files {
                    let _ = std::fs::remove_file(file);
                }
                Ok(())
            })
            .await
            .ok();
        }
        Ok(collected)
    }
}

impl<P: Provider> BatchJobs for AnthropicBatchJobs<P> {
    /// `{"custom_id", "params"}`: the Messages request without `stream` (batches do not
    /// stream).
    fn row(&self, custom_id: &str, endpoint: Endpoint, body: Value) -> Result<Value, ApiError> {
        if endpoint != Endpoint::Chat {
            return Err(ApiError::InvalidRequest(
                "Message Batches run conversations only (a list of messages), not prompts".into(),
            ));
        }
        let mut params = body;
        if let Some(params) = params.as_object_mut() {
            params.remove("stream");
        }
        Ok(json!({"custom_id": custom_id, "params": params}))
    }

    /// Message Batches have no names nor metadata: `name` and `metadata` are not sent.
    async fn submit(
        &self,
        rows: Vec<Vec<u8>>,
        name: &str,
        metadata: &Value,
        journal: Option<&JournalAt>,
        known_jobs: &[String],
    ) -> Result<Vec<String>, SubmitError> {
        durable::submit(self, rows, name, metadata, journal, known_jobs).await
    }

    async fn check(&self, job_ids: &[String]) -> Result<Check, ApiError> {
        let mut batches = Vec::with_capacity(job_ids.len());
        for id in job_ids {
            batches.push(self.retrieve(id).await?);
        }
        let counts = batches
            .iter()
            .filter_map(|batch| batch.request_counts)
            .map(RequestCounts::from)
            .fold(RequestCounts::default(), |sum, counts| sum + counts);
        if batches.iter().any(MessageBatch::is_running) {
            return Ok(Check::Running(counts));
        }
        Ok(Check::Done(counts, self.collect(&batches).await?))
    }

    async fn cancel(&self, job_ids: &[String]) -> Result<(), ApiError> {
        for id in job_ids {
            self.cancel_one(id).await?;
        }
        Ok(())
    }
}

impl<P: Provider> DurableSteps for AnthropicBatchJobs<P> {
    fn chunks(&self, rows: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
        split_rows(rows, self.profile.max_requests, self.profile.max_bytes)
    }

    fn describe(&self, _record: &mut ChunkRecord, _number: usize, _name: &str) {}

    /// The local copy, then the create (intent recorded before the call).
    async fn start(
        &self,
        rows: &[Vec<u8>],
        recorder: &mut Recorder,
        _metadata: &Value,
    ) -> Result<String, SubmitError> {
        let tag = recorder.record().tag.clone();
        if let Some(dir) = &self.store {
            store_pending(dir.clone(), &tag, rows.to_vec()).await?;
        }
        recorder
            .update(|record| record.create_started = Some(unix_now()))
            .await?;
        let record = recorder.record().clone();
        let known = recorder.known_jobs();
        match self.create(rows, &record, &known).await {
            Ok(batch) => {
                kill_point("after-create");
                self.keep_copy(&tag, &batch).await;
                Ok(batch)
            }
            // Refused: no batch was created.
            Err(error) if refused(&error) => {
                self.drop_copy(&tag).await;
                recorder
                    .update(|record| record.create_started = None)
                    .await?;
                Err(error.into())
            }
            // Maybe created: left recorded for the next run's lookup.
            Err(error) => Err(error.into()),
        }
    }

    async fn recover(
        &self,
        record: &ChunkRecord,
        known: &BTreeSet<String>,
    ) -> Result<Option<String>, SubmitError> {
        let found = self.find_created(record, known).await?;
        match &found {
            Some(batch) => self.keep_copy(&record.tag, batch).await,
            None => self.drop_copy(&record.tag).await,
        }
        Ok(found)
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidResponse(e.to_string()))
}

/// A row without the whitespace around it (rows arrive as JSONL lines).
fn trimmed(mut row: Vec<u8>) -> Vec<u8> {
    let end = row.len()
        - row
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    row.truncate(end);
    let start = row.iter().take_while(|b| b.is_ascii_whitespace()).count();
    row.drain(..start);
    row
}

/// Groups rows into batches of at most `max_requests` rows whose creation body (rows joined
/// by commas in the `requests` envelope) has at most `max_bytes` bytes, in order. A row too
/// large on its own goes alone (the API then says what is wrong with it).
pub fn split_rows(rows: Vec<Vec<u8>>, max_requests: usize, max_bytes: usize) -> Vec<Vec<Vec<u8>>> {
    let envelope = ENVELOPE_START.len() + ENVELOPE_END.len();
    let mut batches = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut size = envelope;
    for row in rows.into_iter().map(trimmed).filter(|row| !row.is_empty()) {
        let full = !current.is_empty()
            && (current.len() >= max_requests || size + 1 + row.len() > max_bytes);
        if full {
            batches.push(std::mem::take(&mut current));
            size = envelope;
        }
        size += row.len() + usize::from(!current.is_empty());
        current.push(row);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The creation body of a batch: `{"requests":[row,row,...]}`.
fn envelope(rows: &[Vec<u8>]) -> Vec<u8> {
    let size = rows.iter().map(|row| row.len() + 1).sum::<usize>() + ENVELOPE_START.len();
    let mut body = Vec::with_capacity(size + ENVELOPE_END.len());
    body.extend_from_slice(ENVELOPE_START);
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(row);
    }
    body.extend_from_slice(ENVELOPE_END);
    body
}

/// Reads a results file into `collected`; `canceled` and `expired` rows go to
/// `interrupted` (with `batch_id`, where their request is kept).
fn read_results(
    content: &[u8],
    batch_id: &str,
    collected: &mut Collected,
    interrupted: &mut BTreeMap<String, String>,
) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    struct ResultLine {
        custom_id: String,
        result: Value,
    }
    for line in content.split(|byte| *byte == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let ResultLine { custom_id, result } = parse(line)?;
        collected.submitted.insert(custom_id.clone());
        let kind = result
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let row = match kind {
            "succeeded" => match message_value_completion(
                result.get("message").cloned().unwrap_or(Value::Null),
            ) {
                Ok(completion) => RowResult::Completed(completion),
                Err(error) => RowResult::Failed(error.to_string()),
            },
            "errored" => RowResult::Failed(result.get("error").map_or_else(
                || "The request errored.".to_owned(),
                |error| error_value_message(error).unwrap_or_else(|| error.to_string()),
            )),
            "canceled" | "expired" => {
                interrupted.insert(custom_id, batch_id.to_owned());
                continue;
            }
            other => RowResult::Failed(format!("Unknown batch result type {other:?}.")),
        };
        // A completed row wins over an error for the same id (a resubmission that worked).
        if !matches!(
            collected.rows.get(&custom_id),
            Some(RowResult::Completed(_))
        ) {
            collected.raw.insert(
                custom_id.clone(),
                String::from_utf8_lossy(line).into_owned(),
            );
            collected.rows.insert(custom_id, row);
        }
    }
    Ok(())
}

/// The store file of a batch.
fn store_file(dir: &Path, batch_id: &str) -> PathBuf {
    let safe: String = batch_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.jsonl"))
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

/// The copy of a chunk's rows before its batch exists.
fn pending_file(dir: &Path, tag: &str) -> PathBuf {
    store_file(dir, &format!("pending-{tag}"))
}

/// Writes the rows of a batch about to be created to the store, atomically, under the
/// chunk's tag (renamed after the batch once it exists).
async fn store_pending(dir: PathBuf, tag: &str, rows: Vec<Vec<u8>>) -> Result<(), ApiError> {
    let path = pending_file(&dir, tag);
    let shown = dir.display().to_string();
    blocking(move || {
        std::fs::create_dir_all(&dir)?;
        remove_stale_temporaries(&path);
        let mut content = Vec::with_capacity(rows.iter().map(|row| row.len() + 1).sum());
        for row in &rows {
            content.extend_from_slice(row);
            content.push(b'\n');
        }
        write_atomically(&path, &content)
    })
    .await
    .map_err(|e| {
        ApiError::InvalidRequest(format!(
            "cannot keep a copy of the batch's requests in {shown} ({e}); they are needed to \
             submit expired or canceled rows again: set XDG_CACHE_HOME (or the profile's \
             batch.store_dir) to a writable directory"
        ))
    })
}

/// The rows of `custom_ids` in a batch's store file (none if the file is missing).
async fn stored_rows(
    file: PathBuf,
    custom_ids: BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<u8>>, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        custom_id: String,
    }
    let shown = file.display().to_string();
    let content = match blocking(move || std::fs::read(&file)).await {
        Ok(content) => content,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(ApiError::InvalidRequest(format!(
                "cannot read the kept batch requests {shown}: {e}"
            )));
        }
    };
    let mut found = BTreeMap::new();
    for line in content.split(|byte| *byte == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // A damaged line is as good as missing: its row is reported lost.
        if let Ok(row) = serde_json::from_slice::<Row>(line)
            && custom_ids.contains(&row.custom_id)
        {
            found.insert(row.custom_id, line.to_vec());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: usize, size: usize) -> Vec<u8> {
        let prefix = format!("{{\"custom_id\":\"{id}\",\"params\":\"");
        let mut row = prefix.into_bytes();
        row.resize(size - 2, b'x');
        row.extend_from_slice(b"\"}");
        row
    }

    #[test]
    fn batches_split_at_the_request_limit() {
        let rows: Vec<Vec<u8>> = (0..5).map(|i| row(i, 40)).collect();
        let batches = split_rows(rows, 2, 1 << 20);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        assert!(split_rows(Vec::new(), 2, 100).is_empty());
    }

    #[test]
    fn batches_split_at_the_byte_limit_counting_the_envelope() {
        let rows: Vec<Vec<u8>> = (0..4).map(|i| row(i, 40)).collect();
        // 15 bytes of envelope + 40 + 1 + 40 = 96: two rows fit in 96 bytes, not in 95.
        assert_eq!(
            split_rows(rows.clone(), 100, 96)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            vec![2, 2]
        );
        assert_eq!(split_rows(rows.clone(), 100, 95).len(), 4);
        // A row too large on its own still goes (alone).
        assert_eq!(split_rows(rows, 100, 10).len(), 4);
        for batch in split_rows((0..9).map(|i| row(i, 40)).collect(), 100, 200) {
            let body = envelope(&batch);
            assert!(body.len() <= 200);
            let parsed: Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(
                parsed["requests"].as_array().map(Vec::len),
                Some(batch.len())
            );
        }
    }

    #[test]
    fn rows_from_jsonl_lines_are_trimmed() {
        let batches = split_rows(vec![b"{\"a\":1}\n".to_vec(), b"  \n".to_vec()], 10, 100);
        assert_eq!(
            envelope(&batches[0]),
            b"{\"requests\":[{\"a\":1}]}".to_vec()
        );
    }

    #[test]
    fn results_are_matched_by_custom_id_whatever_their_order() {
        let content = br#"{"custom_id":"2","result":{"type":"expired"}}
{"custom_id":"1","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: required"}}}}
{"custom_id":"0","result":{"type":"succeeded","message":{"content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":3,"output_tokens":1}}}}
{"custom_id":"3","result":{"type":"canceled"}}
"#;
        let mut collected = Collected::default();
        let mut interrupted = BTreeMap::new();
        read_results(content, "msgbatch_1", &mut collected, &mut interrupted).expect("reads");
        assert!(matches!(
            collected.rows.get("0"),
            Some(RowResult::Completed(c)) if c.generations == vec![Some("hi".to_owned())]
        ));
        assert_eq!(
            collected.rows.get("1"),
            Some(&RowResult::Failed(
                "invalid_request_error: max_tokens: required".into()
            ))
        );
        assert_eq!(
            interrupted.keys().collect::<Vec<_>>(),
            vec!["2", "3"],
            "left for a resubmission"
        );
        assert_eq!(collected.submitted.len(), 4);
        // The resubmission's results: a success replaces nothing finished before.
        let again = br#"{"custom_id":"2","result":{"type":"succeeded","message":{"content":[{"type":"text","text":"late"}]}}}"#;
        read_results(again, "msgbatch_2", &mut collected, &mut interrupted).expect("reads");
        assert!(collected.raw["2"].contains("late"));
    }

    #[test]
    fn rows_are_params_without_stream() {
        let params = json!({"model": "m", "max_tokens": 5, "stream": false, "messages": []});
        let client = Client::new(
            super::super::Anthropic::default(),
            &crate::http::ClientConfig::new("http://127.0.0.1:9"),
        )
        .expect("client");
        let mut jobs = AnthropicBatchJobs::new(client, BatchProfile::default());
        jobs.store = None;
        assert_eq!(
            jobs.row("7", Endpoint::Chat, params).expect("row"),
            json!({"custom_id": "7", "params": {"model": "m", "max_tokens": 5, "messages": []}})
        );
        assert!(jobs.row("7", Endpoint::Text, json!({})).is_err());
    }
}
