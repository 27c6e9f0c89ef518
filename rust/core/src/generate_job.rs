//! `distilabel-rs generate`: a JSONL file of requests in, a JSONL file of results out, for
//! any provider.
//!
//! Input and output stream (memory stays flat in the file sizes); each result is appended
//! and flushed as soon as it lands, so a killed run loses nothing finished; a re-run skips
//! the `custom_id`s already in the output, so nothing is duplicated. Input lines are OpenAI
//! Batch requests (`custom_id`, `method`, `url`, `body`) or simple records
//! (`{"messages": [...]}` or `{"prompt": "..."}`, whose custom id is the line number).

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{Value, json};
use thiserror::Error;
use tokio::sync::{Semaphore, mpsc};

use crate::batch_jobs::BatchJobs;
use crate::http::{
    ApiError, Client, Endpoint, Provider, Request, RequestCounters, RequestDefaults,
};
use crate::providers::AnyProvider;

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub input: PathBuf,
    pub output: PathBuf,
    /// The model and generation options added to every body that does not set them.
    pub defaults: RequestDefaults,
    pub max_concurrency: usize,
    /// Skip (and report) malformed input lines instead of stopping at the first.
    pub skip_malformed: bool,
}

#[derive(Debug, Error)]
pub enum JobError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// The server cannot be used at all (unreachable, or the key is refused).
    #[error("{0}")]
    Fatal(ApiError),
}

/// Counters read by the progress bar.
#[derive(Debug, Default)]
pub struct JobProgress {
    pub requests: RequestCounters,
    pub skipped: AtomicUsize,
    pub malformed: AtomicUsize,
    pub tokens: AtomicU64,
}

/// Line numbers and reasons of the malformed lines that were skipped.
pub type MalformedLines = Vec<(usize, String)>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub requests: usize,
    pub succeeded: usize,
    /// Failed requests by kind (`status_429`, `timeout`, `connection_error`...).
    pub failures: BTreeMap<String, usize>,
    /// Malformed input lines that were skipped: line number and what is wrong.
    pub malformed_lines: MalformedLines,
    /// Requests already in the output from an earlier run.
    pub skipped: usize,
    pub tokens: u64,
    pub seconds: f64,
}

struct Job {
    custom_id: String,
    request: Request,
}

/// Runs the whole job; see the module documentation.
pub async fn run_job(
    client: Arc<Client<AnyProvider>>,
    config: JobConfig,
    progress: Arc<JobProgress>,
) -> Result<Summary, JobError> {
    let started = Instant::now();
    let done = finished_ids(&config.output)?;
    let output = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.output)
        .map_err(|source| JobError::Io {
            action: "write",
            path: config.output.clone(),
            source,
        })?;
    let input = open_input(&config)?;

    let capacity = config.max_concurrency.max(1);
    let (jobs_tx, mut jobs_rx) = mpsc::channel::<Job>(capacity * 2);
    let reader_progress = Arc::clone(&progress);
    let reader_config = config.clone();
    let provider = client.provider().clone();
    let reader = tokio::task::spawn_blocking(move || {
        read_lines(
            input,
            &reader_config,
            &|line, number| parse_line(line, number, &reader_config.defaults, &provider),
            &mut |job| {
                if done.contains(&job.custom_id) {
                    reader_progress.skipped.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                reader_progress
                    .requests
                    .total
                    .fetch_add(1, Ordering::Relaxed);
                // Stops reading once the job stopped (fatal error or cancellation).
                jobs_tx.blocking_send(job).is_ok()
            },
            &reader_progress.malformed,
        )
    });

    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let output_path = config.output.clone();
    let writer = tokio::task::spawn_blocking(move || write_output(output, &output_path, &lines_rx));

    let permits = Arc::new(Semaphore::new(capacity));
    let mut tasks = tokio::task::JoinSet::new();
    let mut summary = Summary::default();
    let mut fatal = None;
    let mut number = 0u64;
    let mut input_open = true;
    loop {
        tokio::select! {
            biased;
            Some(finished) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((line, outcome)) = finished else { continue };
                if let Some(error) = record(&mut summary, outcome)
                    && fatal.is_none()
                {
                    fatal = Some(error);
                    tasks.abort_all();
                    jobs_rx.close();
                    input_open = false;
                } else if lines_tx.send(line).is_err() {
                    break;
                }
            }
            next = next_job(&permits, &mut jobs_rx), if input_open => {
                let Some((permit, job)) = next else {
                    input_open = false;
                    continue;
                };
                number += 1;
                let client = Arc::clone(&client);
                let progress = Arc::clone(&progress);
                let id = number;
                tasks.spawn(async move {
                    let _permit = permit;
                    send(&client, job, id, &progress).await
                });
            }
            else => break,
        }
    }
    drop(lines_tx);
    // A reader blocked on a full channel must see the job end, or awaiting it would hang.
    drop(jobs_rx);
    let malformed = reader.await.unwrap_or(Ok(Vec::new()));
    let written = writer.await.unwrap_or(Ok(()));
    if let Some(error) = fatal {
        return Err(JobError::Fatal(error));
    }
    written?;
    summary.malformed_lines = malformed?;
    summary.skipped = progress.skipped.load(Ordering::Relaxed);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

enum Outcome {
    Succeeded(u64),
    Failed(String, ApiError),
}

/// A permit, then the next request (waiting for the permit first keeps the input unread
/// while every permit is in use).
async fn next_job(
    permits: &Arc<Semaphore>,
    jobs: &mut mpsc::Receiver<Job>,
) -> Option<(tokio::sync::OwnedSemaphorePermit, Job)> {
    let permit = Arc::clone(permits).acquire_owned().await.ok()?;
    let job = jobs.recv().await?;
    Some((permit, job))
}

/// Counts a finished request; returns the error if it makes the whole job pointless.
fn record(summary: &mut Summary, outcome: Outcome) -> Option<ApiError> {
    summary.requests += 1;
    match outcome {
        Outcome::Succeeded(tokens) => {
            summary.succeeded += 1;
            summary.tokens += tokens;
            None
        }
        Outcome::Failed(kind, error) => {
            *summary.failures.entry(kind).or_insert(0) += 1;
            is_fatal(&error, summary.succeeded).then_some(error)
        }
    }
}

/// Unreachable before anything succeeded, or a refused key: no point going on.
fn is_fatal(error: &ApiError, succeeded: usize) -> bool {
    match error {
        ApiError::Status { status, .. } => matches!(status, 401 | 403),
        ApiError::Connection(_) => succeeded == 0,
        _ => false,
    }
}

fn failure_kind(error: &ApiError) -> String {
    match error {
        ApiError::Status { status, .. } => format!("status_{status}"),
        ApiError::Connection(_) => "connection_error".into(),
        ApiError::Timeout(_) => "timeout".into(),
        ApiError::InvalidResponse(_) => "invalid_response".into(),
        ApiError::InvalidRequest(_) => "invalid_request".into(),
        ApiError::Cancelled => "cancelled".into(),
    }
}

async fn send(
    client: &Client<AnyProvider>,
    job: Job,
    number: u64,
    progress: &JobProgress,
) -> (String, Outcome) {
    let counters = &progress.requests;
    let result = counters
        .track(client.send_raw(&job.request, counters))
        .await;
    let id = format!("batch_req_{number}");
    match result {
        Ok((body, tokens)) => {
            progress.tokens.fetch_add(tokens, Ordering::Relaxed);
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let line = json!({"id": id, "custom_id": job.custom_id,
                "response": {"status_code": 200, "body": body}, "error": null});
            (line.to_string(), Outcome::Succeeded(tokens))
        }
        Err(error) => {
            let kind = failure_kind(&error);
            let line = match &error {
                ApiError::Status {
                    status, message, ..
                } => json!({"id": id, "custom_id": job.custom_id,
                    "response": {"status_code": status, "body": {"error": {"message": message}}},
                    "error": null}),
                other => json!({"id": id, "custom_id": job.custom_id, "response": null,
                    "error": {"code": kind, "message": other.to_string()}}),
            };
            (line.to_string(), Outcome::Failed(kind, error))
        }
    }
}

/// The custom ids already in the output. A last line cut short by a killed run is removed.
fn finished_ids(output: &Path) -> Result<HashSet<String>, JobError> {
    let io = |source| JobError::Io {
        action: "read",
        path: output.to_path_buf(),
        source,
    };
    let mut done = HashSet::new();
    let mut file = match OpenOptions::new().read(true).write(true).open(output) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(error) => return Err(io(error)),
    };
    let mut complete_length = 0u64;
    let mut reader = BufReader::new(&mut file);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(io)?;
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        complete_length += read as u64;
        if let Ok(value) = serde_json::from_str::<Value>(&line)
            && let Some(id) = value.get("custom_id").and_then(Value::as_str)
        {
            done.insert(id.to_owned());
        }
    }
    drop(reader);
    file.set_len(complete_length).map_err(io)?;
    file.seek(SeekFrom::End(0)).map_err(io)?;
    Ok(done)
}

/// Reads INPUT line by line, parsing each with `parse` and handing the result to `take`
/// (which returns `false` to stop reading). Returns the malformed lines skipped (with
/// `skip_malformed`), or the first one as an error.
fn read_lines<T>(
    input: File,
    config: &JobConfig,
    parse: &dyn Fn(&str, usize) -> Result<T, String>,
    take: &mut dyn FnMut(T) -> bool,
    malformed_count: &AtomicUsize,
) -> Result<MalformedLines, JobError> {
    let mut malformed = Vec::new();
    for (index, line) in BufReader::new(input).lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|source| JobError::Io {
            action: "read",
            path: config.input.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let item = match parse(&line, number) {
            Ok(item) => item,
            Err(reason) if config.skip_malformed => {
                malformed.push((number, reason));
                malformed_count.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(reason) => {
                return Err(JobError::Malformed {
                    path: config.input.clone(),
                    line: number,
                    reason,
                });
            }
        };
        if !take(item) {
            break;
        }
    }
    Ok(malformed)
}

fn open_input(config: &JobConfig) -> Result<File, JobError> {
    File::open(&config.input).map_err(|source| JobError::Io {
        action: "read",
        path: config.input.clone(),
        source,
    })
}

/// A request of the input file, ready to send: its custom id, endpoint and complete body.
struct ParsedLine {
    custom_id: String,
    endpoint: Endpoint,
    body: Value,
}

/// The one parser of INPUT lines, for online requests and for `--batch-api` alike: an
/// OpenAI Batch API request (`custom_id`, `method`, `url`, `body`) or a simple record
/// (`messages` or `prompt`, custom id = line number), completed with the defaults.
fn parse_request(
    line: &str,
    number: usize,
    defaults: &RequestDefaults,
    provider: &AnyProvider,
) -> Result<ParsedLine, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut record) = value else {
        return Err("a line must be a JSON object".into());
    };
    let (custom_id, endpoint, mut body) = if let Some(body) = record.remove("body") {
        let custom_id = match record.get("custom_id") {
            Some(Value::String(id)) => id.clone(),
            _ => return Err("`custom_id` must be a string".into()),
        };
        let endpoint = match record.get("url").and_then(Value::as_str) {
            Some("/v1/chat/completions" | "/chat/completions") | None => Endpoint::Chat,
            Some("/v1/completions" | "/completions") => Endpoint::Text,
            Some(other) => return Err(format!("unsupported url {other:?}")),
        };
        let Value::Object(body) = body else {
            return Err("`body` must be a JSON object".into());
        };
        (custom_id, endpoint, body)
    } else if record.contains_key("messages") {
        (number.to_string(), Endpoint::Chat, record)
    } else if record.contains_key("prompt") {
        (number.to_string(), Endpoint::Text, record)
    } else {
        return Err("expected a Batch API request (`custom_id`, `body`) or a record with `messages` or `prompt`".into());
    };
    provider.apply_defaults(endpoint, &mut body, defaults);
    Ok(ParsedLine {
        custom_id,
        endpoint,
        body: Value::Object(body),
    })
}

fn parse_line(
    line: &str,
    number: usize,
    defaults: &RequestDefaults,
    provider: &AnyProvider,
) -> Result<Job, String> {
    let parsed = parse_request(line, number, defaults, provider)?;
    let request =
        Request::new(provider, parsed.endpoint, &parsed.body).map_err(|e| e.to_string())?;
    Ok(Job {
        custom_id: parsed.custom_id,
        request,
    })
}

/// The parser of INPUT lines as the command runs it ([`parse_request`], then the request
/// built), exposed for fuzzing: the custom id and the request, or what is wrong with the
/// line.
pub fn parse_input_line(
    line: &str,
    number: usize,
    defaults: &RequestDefaults,
    provider: &AnyProvider,
) -> Result<(String, Request), String> {
    parse_line(line, number, defaults, provider).map(|job| (job.custom_id, job.request))
}

/// INPUT as rows of the provider's batch format, read by the same parser as the online
/// path: `(rows, malformed lines skipped)`.
pub fn batch_rows(
    config: &JobConfig,
    provider: &AnyProvider,
    jobs: &impl BatchJobs,
) -> Result<(Vec<Vec<u8>>, MalformedLines), JobError> {
    let mut rows = Vec::new();
    let malformed = read_lines(
        open_input(config)?,
        config,
        &|line, number| {
            let parsed = parse_request(line, number, &config.defaults, provider)?;
            let row = jobs
                .row(&parsed.custom_id, parsed.endpoint, parsed.body)
                .map_err(|e| e.to_string())?;
            serde_json::to_vec(&row).map_err(|e| e.to_string())
        },
        &mut |row| {
            rows.push(row);
            true
        },
        &AtomicUsize::new(0),
    )?;
    Ok((rows, malformed))
}

fn write_output(
    mut output: File,
    path: &Path,
    lines: &std::sync::mpsc::Receiver<String>,
) -> Result<(), JobError> {
    for mut line in lines {
        line.push('\n');
        // One write per result: a killed run leaves whole lines (a cut last line is
        // dropped on resume).
        output
            .write_all(line.as_bytes())
            .map_err(|source| JobError::Io {
                action: "write",
                path: path.to_path_buf(),
                source,
            })?;
    }
    output.flush().map_err(|source| JobError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}
