//! `distilabel-rs generate`: a JSONL file of requests in, a JSONL file of results out, for
//! any provider.
//!
//! Input and output stream (memory stays flat in the file sizes); each result is appended
//! and flushed as soon as it lands, so a killed run loses nothing finished; a re-run skips
//! the `custom_id`s already in the output, so nothing is duplicated. Input lines are OpenAI
//! Batch requests (`custom_id`, `method`, `url`, `body`) or simple records
//! (`{"messages": [...]}` or `{"prompt": "..."}`, whose custom id is the line number).
//!
//! I/O errors stop the job at once, whichever side they happen on: a write that fails (disk
//! full, read-only or vanished file, EIO) or an output file deleted or moved while being
//! written (checked every [`IDENTITY_CHECK`]); a read that fails or an input that shrank
//! while being read. The requests in flight are abandoned (a re-run sends them again), a
//! line cut by the failing write is removed, and the error names the file and the cause.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use thiserror::Error;
use tokio::sync::Notify;

/// How often the writer checks that OUTPUT is still the file it writes to.
pub const IDENTITY_CHECK: Duration = Duration::from_millis(250);
/// How long a stopped job waits for its reader thread (it may be stuck in a read).
const READER_GRACE: Duration = Duration::from_secs(1);
/// With `auto`, the requests read ahead are sized on at most this many in flight: the
/// ceiling (1024 by default) is seldom reached, and buffering twice it would hold thousands
/// of request bodies; parsing a line takes microseconds, so a few hundred keep up with any
/// growth of the limit.
const AUTO_READ_AHEAD: usize = 256;

use crate::adaptive::ConcurrencyLimit;
use crate::batch_jobs::BatchJobs;
use crate::http::{
    ApiError, Client, Endpoint, Limiter, Observers, Permit, Provider, Request, RequestCounters,
    RequestDefaults, RetryObserver,
};
use crate::providers::AnyProvider;

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub input: PathBuf,
    pub output: PathBuf,
    /// The model and generation options added to every body that does not set them.
    pub defaults: RequestDefaults,
    /// A fixed number, or `auto`/`auto:N` (adaptive, see [`crate::adaptive`]).
    pub max_concurrency: ConcurrencyLimit,
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
    /// The file at the path is no longer the one being read or written.
    #[error("{}: {reason}", path.display())]
    Changed { path: PathBuf, reason: String },
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
    /// Shared with each request's permit, which keeps `limit` up to date (`auto`).
    pub requests: Arc<RequestCounters>,
    pub skipped: AtomicUsize,
    pub malformed: AtomicUsize,
    pub tokens: AtomicU64,
    /// True while the writer runs, including after the job was cancelled (dropped): it
    /// then writes the lines that had landed and syncs OUTPUT, which a caller that wants
    /// them kept waits for before exiting.
    pub writing: AtomicBool,
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
    /// The concurrency limit at the end, and the highest it reached (they differ with
    /// `auto` only; `None`: no limit).
    pub final_limit: Option<usize>,
    pub peak_limit: Option<usize>,
}

struct Job {
    custom_id: String,
    request: Request,
}

/// The first I/O error of the reader (a thread) or the writer (a task), and a wake-up for the job.
#[derive(Default)]
struct Stop {
    error: Mutex<Option<JobError>>,
    notify: Notify,
}

impl Stop {
    fn fail(&self, error: JobError) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(error);
        }
        drop(slot);
        self.notify.notify_one();
    }

    fn take(&self) -> Option<JobError> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
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
        .map_err(|source| write_failed(&config.output, source))?;
    let input = open_input(&config)?;
    let stop = Arc::new(Stop::default());

    let read_ahead = match config.max_concurrency {
        ConcurrencyLimit::Auto { ceiling } => ceiling.clamp(1, AUTO_READ_AHEAD),
        limit => limit.most().unwrap_or(AUTO_READ_AHEAD).max(1),
    };
    // Jobs go to the queue in chunks: one lock (and at most one wake-up of the workers) per
    // chunk, not per request. INPUT is a regular file (the command refuses anything else),
    // whose reads never wait long: a chunk is not held back waiting for its input.
    let jobs = Arc::new(JobQueue::new(read_ahead * 2));
    let reader_jobs = Arc::clone(&jobs);
    let reader_progress = Arc::clone(&progress);
    let reader_config = config.clone();
    let provider = client.provider().clone();
    let reader_stop = Arc::clone(&stop);
    let mut reader = tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(JOB_CHUNK);
        let read = read_lines(
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
                chunk.push(job);
                // Stops reading once the job stopped (fatal error or cancellation).
                chunk.len() < JOB_CHUNK || reader_jobs.push(&mut chunk)
            },
            &reader_progress.malformed,
        );
        reader_jobs.push(&mut chunk);
        reader_jobs.close();
        match read {
            Err(error @ (JobError::Io { .. } | JobError::Changed { .. })) => {
                reader_stop.fail(error);
                Ok(Vec::new())
            }
            other => other,
        }
    });

    let lines = Arc::new(Lines::default());
    let output_path = config.output.clone();
    let writer_stop = Arc::clone(&stop);
    let writer_lines = Arc::clone(&lines);
    let writer_progress = Arc::clone(&progress);
    progress.writing.store(true, Ordering::Release);
    let writer = tokio::spawn(async move {
        if let Err(error) = write_output(output, output_path, &writer_lines).await {
            writer_lines.gone.store(true, Ordering::Relaxed);
            writer_stop.fail(error);
        }
        writer_progress.writing.store(false, Ordering::Release);
    });
    // Also when the job is cancelled (dropped): the writer writes what landed, then ends.
    let closing = ClosesOnDrop(Arc::clone(&lines));

    let driven = match config.max_concurrency {
        ConcurrencyLimit::Fixed(limit) => {
            drive_workers(&client, limit.max(1), &jobs, &progress, &stop, &lines).await
        }
        limit => drive_spawning(&client, limit, &jobs, &progress, &stop, &lines).await,
    };
    // A reader waiting for room must see the job end, or awaiting it would hang.
    jobs.close();
    drop(closing);
    let Driven {
        mut summary,
        fatal,
        failed_io,
        peak_limit,
        final_limit,
    } = driven;

    let malformed = if failed_io.is_some() {
        // The reader may be stuck in a read of a broken file: not waited for long.
        match tokio::time::timeout(READER_GRACE, &mut reader).await {
            Ok(joined) => joined.unwrap_or(Ok(Vec::new())),
            Err(_) => Ok(Vec::new()),
        }
    } else {
        reader.await.unwrap_or(Ok(Vec::new()))
    };
    writer.await.ok();
    if let Some(error) = failed_io.or_else(|| stop.take()) {
        return Err(error);
    }
    if let Some(error) = fatal {
        return Err(JobError::Fatal(error));
    }
    summary.malformed_lines = malformed?;
    summary.skipped = progress.skipped.load(Ordering::Relaxed);
    summary.seconds = started.elapsed().as_secs_f64();
    summary.final_limit = final_limit;
    summary.peak_limit = peak_limit.max(final_limit);
    Ok(summary)
}

/// How the requests went: what [`run_job`] reports once the reader and writer are done.
struct Driven {
    summary: Summary,
    /// The error that made going on pointless (a refused key...).
    fatal: Option<ApiError>,
    /// The reader's or writer's I/O error that stopped the job.
    failed_io: Option<JobError>,
    peak_limit: Option<usize>,
    final_limit: Option<usize>,
}

/// The lines waiting for the writer: whoever adds to an empty buffer wakes it, so a line is
/// written as soon as it lands, with every line that landed while the writer was busy (one
/// write for all of them). The writer is a task on the runtime, not a thread: waking it is
/// a push to the waking worker's queue, where a thread's wake-up was a futex call and two
/// context switches, half of the command's context switches per request.
#[derive(Default)]
struct Lines {
    waiting: Mutex<String>,
    ready: Notify,
    /// Set once the job sends nothing more: the writer writes what is left and ends.
    closed: AtomicBool,
    /// Set when the writer stopped on an error: adding more is pointless.
    gone: AtomicBool,
}

impl Lines {
    /// Adds `line` (without its newline); `false` once the writer is gone.
    fn push(&self, line: &str) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let was_empty = waiting.is_empty();
        waiting.push_str(line);
        waiting.push('\n');
        drop(waiting);
        if was_empty {
            self.ready.notify_one();
        }
        !self.gone.load(Ordering::Relaxed)
    }

    /// Everything waiting, leaving `into`'s old contents (cleared) for the next turn.
    fn take(&self, into: &mut String) {
        into.clear();
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *waiting, into);
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

struct ClosesOnDrop(Arc<Lines>);

impl Drop for ClosesOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The requests read ahead, between the reader's thread and the tasks sending them. The
/// reader waits while it holds `capacity`; a task finding it empty waits for the next
/// chunk. Nobody is woken per request: the reader when it falls to half, the tasks when a
/// chunk lands in an empty queue.
struct JobQueue {
    state: Mutex<Queued>,
    capacity: usize,
    /// The reader waits here for room.
    room: std::sync::Condvar,
    /// Tasks wait here for a request.
    ready: Notify,
}

struct Queued {
    jobs: VecDeque<Job>,
    /// No more will come: the input is done, or the job stopped.
    closed: bool,
}

impl JobQueue {
    fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(Queued {
                jobs: VecDeque::new(),
                closed: false,
            }),
            capacity: capacity.max(1),
            room: std::sync::Condvar::new(),
            ready: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues (and empties) `chunk` once there is room, from the reader's thread; `false`
    /// once the job stopped.
    fn push(&self, chunk: &mut Vec<Job>) -> bool {
        if chunk.is_empty() {
            return !self.state().closed;
        }
        let mut state = self.state();
        while state.jobs.len() >= self.capacity && !state.closed {
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.closed {
            return false;
        }
        let was_empty = state.jobs.is_empty();
        state.jobs.extend(chunk.drain(..));
        drop(state);
        if was_empty {
            self.ready.notify_waiters();
        }
        true
    }

    /// No more requests will come: the input is done (what is queued is still taken), or
    /// the job stopped (see [`JobQueue::stop`]); a reader waiting for room gives up.
    fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        drop(state);
        self.room.notify_all();
        self.ready.notify_waiters();
    }

    /// Drops what is queued and stops the reader.
    fn stop(&self) {
        let mut state = self.state();
        state.jobs.clear();
        drop(state);
        self.close();
    }

    /// The next request, `None` once the queue is closed and empty. Cancel-safe: a request
    /// is taken and returned in the same poll.
    async fn next(&self) -> Option<Job> {
        if let Some(taken) = self.take() {
            return taken;
        }
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            // Registered before looking again, so that a chunk landing in between wakes us.
            ready.as_mut().enable();
            if let Some(taken) = self.take() {
                return taken;
            }
            ready.await;
        }
    }

    /// `Some(Some(job))`, `Some(None)` once closed and empty, `None` for nothing yet.
    fn take(&self) -> Option<Option<Job>> {
        let mut state = self.state();
        match state.jobs.pop_front() {
            Some(job) => {
                if state.jobs.len() == self.capacity / 2 {
                    self.room.notify_one();
                }
                Some(Some(job))
            }
            None => state.closed.then_some(None),
        }
    }
}

/// A fixed limit: `limit` workers, each sending one request after another (no task, no
/// permit and no wake-up of a dispatcher per request). A fatal failure stops the others
/// from taking more and aborts what is in flight, as does an I/O error of the reader or
/// writer.
async fn drive_workers(
    client: &Arc<Client<AnyProvider>>,
    limit: usize,
    jobs: &Arc<JobQueue>,
    progress: &Arc<JobProgress>,
    stop: &Stop,
    lines: &Arc<Lines>,
) -> Driven {
    // The first fatal failure; each worker counts its own requests (the counts of a job
    // that failed are not reported, so aborted workers lose nothing that matters).
    let fatal: Arc<Mutex<Option<ApiError>>> = Arc::default();
    let stopping = Arc::new(AtomicBool::new(false));
    progress.requests.limit.store(limit, Ordering::Relaxed);
    let numbers = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..limit {
        let (client, jobs, progress, lines, fatal, stopping, numbers) = (
            Arc::clone(client),
            Arc::clone(jobs),
            Arc::clone(progress),
            Arc::clone(lines),
            Arc::clone(&fatal),
            Arc::clone(&stopping),
            Arc::clone(&numbers),
        );
        workers.spawn(async move {
            let mut summary = Summary::default();
            while let Some(job) = jobs.next().await {
                let number = numbers.fetch_add(1, Ordering::Relaxed) + 1;
                let (line, outcome) = send(&client, job, number, &progress, None).await;
                if stopping.load(Ordering::Relaxed) {
                    // A result that came anyway is kept; a failure goes again on a re-run.
                    if matches!(outcome, Outcome::Succeeded(_)) {
                        lines.push(&line);
                    }
                    break;
                }
                let succeeded = progress.requests.done.load(Ordering::Relaxed);
                if let Some(error) = record(&mut summary, outcome, succeeded) {
                    let mut first = fatal.lock().unwrap_or_else(PoisonError::into_inner);
                    first.get_or_insert(error);
                    stopping.store(true, Ordering::Relaxed);
                    break;
                }
                if !lines.push(&line) {
                    break;
                }
            }
            summary
        });
    }
    let mut summary = Summary::default();
    let mut failed_io = None;
    loop {
        tokio::select! {
            biased;
            () = stop.notify.notified() => {
                // An I/O error: nothing more can be read or written usefully.
                failed_io = stop.take();
                break;
            }
            joined = workers.join_next() => {
                match joined {
                    None => break,
                    Some(Ok(counted)) => summary.add(counted),
                    Some(Err(_)) => {} // a task only ends early when aborted below
                }
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
    }
    jobs.stop();
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    let fatal = fatal.lock().unwrap_or_else(PoisonError::into_inner).take();
    let limit = Some(limit);
    Driven {
        summary,
        fatal,
        failed_io,
        peak_limit: limit,
        final_limit: limit,
    }
}

/// No limit or `auto`: a task per request, spawned when the limiter has room (an adaptive
/// limit learns from each request's permit).
async fn drive_spawning(
    client: &Arc<Client<AnyProvider>>,
    limit: ConcurrencyLimit,
    jobs: &JobQueue,
    progress: &Arc<JobProgress>,
    stop: &Stop,
    lines: &Lines,
) -> Driven {
    let limiter = Limiter::new(limit);
    let mut peak_limit = limiter.limit();
    progress
        .requests
        .limit
        .store(peak_limit.unwrap_or(0), Ordering::Relaxed);
    let mut tasks: tokio::task::JoinSet<(String, Outcome)> = tokio::task::JoinSet::new();
    let mut summary = Summary::default();
    let mut fatal = None;
    let mut failed_io = None;
    let mut number = 0u64;
    let mut input_open = true;
    // The next request, read but waiting for a permit. The request is read before its
    // permit is taken (as `run_many` does), so that an adaptive limit times the request
    // only, not a wait for the reader (which, at the start, made the no-load latency look
    // slower than it is, and the limit overshoot twice the provider's capacity).
    let mut pending: Option<Job> = None;
    while input_open || pending.is_some() || !tasks.is_empty() {
        tokio::select! {
            biased;
            () = stop.notify.notified() => {
                // An I/O error: nothing more can be read or written usefully.
                failed_io = stop.take();
                tasks.abort_all();
                jobs.stop();
                break;
            }
            Some(finished) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((line, outcome)) = finished else {
                    continue; // a task only ends early when aborted
                };
                peak_limit = peak_limit.max(limiter.limit());
                let succeeded = summary.succeeded;
                if let Some(error) = record(&mut summary, outcome, succeeded)
                    && fatal.is_none()
                {
                    fatal = Some(error);
                    tasks.abort_all();
                    jobs.stop();
                    input_open = false;
                    pending = None;
                    continue;
                }
                // Lines that land while the writer is busy go in its next write together.
                if !lines.push(&line) {
                    break;
                }
            }
            // Both branches are cancel-safe: a job taken stays in `pending`, and a permit is
            // only taken once there is a job for it.
            next = jobs.next(), if input_open && pending.is_none() => {
                match next {
                    Some(job) => pending = Some(job),
                    None => input_open = false,
                }
            }
            permit = limiter.acquire(), if pending.is_some() => {
                let Some(job) = pending.take() else { continue };
                number += 1;
                let client = Arc::clone(client);
                let progress = Arc::clone(progress);
                let id = number;
                let permit = permit.reporting_to(&progress.requests);
                tasks.spawn(async move { send(&client, job, id, &progress, Some(permit)).await });
            }
        }
    }
    tasks.abort_all();
    Driven {
        summary,
        fatal,
        failed_io,
        peak_limit,
        final_limit: limiter.limit(),
    }
}

enum Outcome {
    Succeeded(u64),
    Failed(String, ApiError),
}

/// Counts a finished request; returns the error if it makes the whole job pointless
/// (`succeeded`: the requests of the job that succeeded so far).
fn record(summary: &mut Summary, outcome: Outcome, succeeded: usize) -> Option<ApiError> {
    summary.requests += 1;
    match outcome {
        Outcome::Succeeded(tokens) => {
            summary.succeeded += 1;
            summary.tokens += tokens;
            None
        }
        Outcome::Failed(kind, error) => {
            *summary.failures.entry(kind).or_insert(0) += 1;
            is_fatal(&error, succeeded).then_some(error)
        }
    }
}

impl Summary {
    /// Adds the requests counted by one worker.
    fn add(&mut self, other: Summary) {
        self.requests += other.requests;
        self.succeeded += other.succeeded;
        self.tokens += other.tokens;
        for (kind, count) in other.failures {
            *self.failures.entry(kind).or_insert(0) += count;
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

/// Sends one request under `permit`, which hears about its retries and its outcome as in
/// the native client's dispatch (`run_many`), so that `auto` learns from every request.
async fn send(
    client: &Client<AnyProvider>,
    job: Job,
    number: u64,
    progress: &JobProgress,
    permit: Option<Permit>,
) -> (String, Outcome) {
    let counters = progress.requests.as_ref();
    let observers = permit.as_ref().map(|permit| Observers(counters, permit));
    let observer: &dyn RetryObserver = match &observers {
        Some(observers) => observers,
        None => counters,
    };
    let result = counters
        .track(client.send_raw(&job.request, observer))
        .await;
    if let Some(permit) = permit {
        permit.finish(&result);
    }
    let id = format!("batch_req_{number}");
    match result {
        Ok((body, tokens)) => {
            progress.tokens.fetch_add(tokens, Ordering::Relaxed);
            (
                success_line(&id, &job.custom_id, &body),
                Outcome::Succeeded(tokens),
            )
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

/// The custom ids already in the output, kept as 128-bit hashes (16 bytes each, whatever
/// the ids' length: a resumed run of a million requests holds 16 MB of them, not the ids),
/// keyed at random per process: two ids collide with a chance of about n²/2¹²⁹.
#[derive(Default)]
struct FinishedIds {
    hashes: HashSet<u128>,
    keys: (std::hash::RandomState, std::hash::RandomState),
}

impl FinishedIds {
    fn hash(&self, id: &str) -> u128 {
        use std::hash::BuildHasher;
        (u128::from(self.keys.0.hash_one(id)) << 64) | u128::from(self.keys.1.hash_one(id))
    }

    fn insert(&mut self, id: &str) {
        let hash = self.hash(id);
        self.hashes.insert(hash);
    }

    fn contains(&self, id: &str) -> bool {
        self.hashes.contains(&self.hash(id))
    }
}

/// The custom ids already in the output. A last line cut short by a killed run is removed.
/// An output that is not a regular file (`/dev/stdout`, a pipe, a device) has none.
fn finished_ids(output: &Path) -> Result<FinishedIds, JobError> {
    let io = |source| JobError::Io {
        action: "read",
        path: output.to_path_buf(),
        source,
    };
    let mut done = FinishedIds::default();
    match std::fs::metadata(output) {
        Ok(metadata) if !metadata.is_file() => return Ok(done),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(error) => return Err(io(error)),
    }
    let mut file = match OpenOptions::new().read(true).write(true).open(output) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(error) => return Err(io(error)),
    };
    let mut complete_length = 0u64;
    let mut reader = BufReader::new(&mut file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(io)?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        complete_length += read as u64;
        if let Ok(value) = serde_json::from_slice::<Value>(&line)
            && let Some(id) = value.get("custom_id").and_then(Value::as_str)
        {
            done.insert(id);
        }
    }
    drop(reader);
    if file.metadata().map_err(io)?.len() != complete_length {
        file.set_len(complete_length).map_err(io)?;
    }
    file.seek(SeekFrom::End(0)).map_err(io)?;
    Ok(done)
}

/// Which file a path or handle is: device and inode (on Unix).
#[cfg(unix)]
fn identity(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn identity(_metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Reads INPUT line by line, parsing each with `parse` and handing the result to `take`
/// (which returns `false` to stop reading). Returns the malformed lines skipped (with
/// `skip_malformed`), or the first one as an error. A read error, or a regular file that
/// ends before the size it had when opened (it was truncated while being read), is an
/// error naming the file.
fn read_lines<T>(
    input: File,
    config: &JobConfig,
    parse: &dyn Fn(&str, usize) -> Result<T, String>,
    take: &mut dyn FnMut(T) -> bool,
    malformed_count: &AtomicUsize,
) -> Result<MalformedLines, JobError> {
    let size = input
        .metadata()
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|metadata| metadata.len());
    read_lines_from(input, size, config, parse, take, malformed_count)
}

/// [`read_lines`] from any reader; `size`: the bytes it must have (a regular file's).
fn read_lines_from<T>(
    input: impl Read,
    size: Option<u64>,
    config: &JobConfig,
    parse: &dyn Fn(&str, usize) -> Result<T, String>,
    take: &mut dyn FnMut(T) -> bool,
    malformed_count: &AtomicUsize,
) -> Result<MalformedLines, JobError> {
    let mut malformed = Vec::new();
    let mut reader = BufReader::new(input);
    let mut bytes = Vec::new();
    let mut consumed = 0u64;
    let mut number = 0;
    loop {
        bytes.clear();
        let read = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|source| JobError::Io {
                action: "read",
                path: config.input.clone(),
                source,
            })?;
        if read == 0 {
            break;
        }
        consumed += read as u64;
        if bytes.last() != Some(&b'\n') {
            // The last line: if the file ends early, it was cut by the truncation.
            truncated(consumed, size, config)?;
        }
        number += 1;
        let parsed = match std::str::from_utf8(&bytes) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => parse(line.trim_end_matches(['\n', '\r']), number),
            Err(e) => Err(format!("not valid UTF-8: {e}")),
        };
        let item = match parsed {
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
            return Ok(malformed);
        }
    }
    truncated(consumed, size, config)?;
    Ok(malformed)
}

/// An error if the input ended after `consumed` bytes when it had `size` when opened.
fn truncated(consumed: u64, size: Option<u64>, config: &JobConfig) -> Result<(), JobError> {
    match size {
        Some(size) if consumed < size => Err(JobError::Changed {
            path: config.input.clone(),
            reason: format!(
                "the input was truncated while being read (it ended after {consumed} of its \
                 {size} bytes); restore it and re-run"
            ),
        }),
        _ => Ok(()),
    }
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

/// Appends each line to OUTPUT as it comes: the lines waiting when a write starts go in
/// that one write (a syscall per line was a fifth of the job's CPU at 10k requests/s; none
/// waits for more to arrive). Stops at the first failing write, keeping the whole lines it
/// wrote and removing the part of a line; checks every [`IDENTITY_CHECK`] that OUTPUT is
/// still the file being written (a deleted or moved file would swallow every later line);
/// syncs at the end.
///
/// A write to a regular file goes to the page cache and is made in place, on the runtime's
/// worker; anything else (a pipe, a terminal) may block for as long as its reader wants,
/// so its writes tell the runtime first, which hands the worker's other tasks to another
/// thread.
async fn write_output(mut output: File, path: PathBuf, lines: &Lines) -> Result<(), JobError> {
    let regular = output.metadata().is_ok_and(|metadata| metadata.is_file());
    // `block_in_place` needs workers to hand the others to (a one-thread runtime has none).
    let may_hand_over = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread;
    let mut length = if regular {
        output
            .metadata()
            .map_err(|source| write_failed(&path, source))?
            .len()
    } else {
        0
    };
    let mut checked = Instant::now();
    let mut waiting = String::new();
    loop {
        // A timeout only brings the identity check below.
        let _ = tokio::time::timeout(IDENTITY_CHECK, lines.ready.notified()).await;
        // The lines of the other requests that finished with this one (woken by the same
        // turn of the event loop) land first and go in the same write.
        tokio::task::yield_now().await;
        // Read before taking: every line pushed before the close is in this take.
        let ended = lines.closed.load(Ordering::Acquire);
        lines.take(&mut waiting);
        if !waiting.is_empty() {
            let written = if regular || !may_hand_over {
                write_lines(&mut output, waiting.as_bytes())
            } else {
                tokio::task::block_in_place(|| write_lines(&mut output, waiting.as_bytes()))
            };
            if let Err((kept, source)) = written {
                if regular {
                    // Best effort: a cut line would be dropped on resume anyway.
                    let _ = output.set_len(length + kept);
                }
                return Err(write_failed(&path, source));
            }
            length += waiting.len() as u64;
        }
        if ended {
            break;
        }
        if regular && checked.elapsed() >= IDENTITY_CHECK {
            checked = Instant::now();
            still_there(&output, &path)?;
        }
    }
    // Syncing may take as long as the disk needs: off the runtime's workers.
    tokio::task::spawn_blocking(move || {
        output
            .flush()
            .map_err(|source| write_failed(&path, source))?;
        if regular {
            still_there(&output, &path)?;
            // Errors a filesystem reports only when data reaches the disk surface here.
            output
                .sync_data()
                .map_err(|source| write_failed(&path, source))?;
        }
        Ok(())
    })
    .await
    .unwrap_or(Ok(()))
}

fn write_failed(path: &Path, source: std::io::Error) -> JobError {
    JobError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    }
}

/// The output line of a 2xx answer. The body goes in as the server sent it when it is one
/// line of valid JSON (it is, for compact JSON: raw newlines in JSON can only be whitespace
/// between tokens); parsing it into a tree and printing it again was a fifth of the job's
/// CPU per request.
fn success_line(id: &str, custom_id: &str, body: &[u8]) -> String {
    let one_line = !body.iter().any(|byte| matches!(byte, b'\n' | b'\r'));
    if one_line
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
        && let (Ok(body), Ok(custom_id)) =
            (std::str::from_utf8(body), serde_json::to_string(custom_id))
    {
        return format!(
            r#"{{"id":"{id}","custom_id":{custom_id},"response":{{"status_code":200,"body":{body}}},"error":null}}"#
        );
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    json!({"id": id, "custom_id": custom_id,
        "response": {"status_code": 200, "body": body}, "error": null})
    .to_string()
}

/// Jobs per chunk sent from the reader to the job loop.
const JOB_CHUNK: usize = 32;

/// Writes `lines` (each ending in a newline); on a failure, the error with the length of
/// the whole lines written before it.
fn write_lines(output: &mut impl Write, lines: &[u8]) -> Result<(), (u64, std::io::Error)> {
    let whole = |written: usize| {
        lines[..written]
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |end| end as u64 + 1)
    };
    let mut written = 0;
    while written < lines.len() {
        match output.write(&lines[written..]) {
            Ok(0) => return Err((whole(written), std::io::ErrorKind::WriteZero.into())),
            Ok(count) => written += count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err((whole(written), error)),
        }
    }
    Ok(())
}

/// An error if `path` is no longer the file `file` (it was deleted or moved).
fn still_there(file: &File, path: &Path) -> Result<(), JobError> {
    let ours = file.metadata().ok().as_ref().and_then(identity);
    let there = std::fs::metadata(path);
    let vanished = match &there {
        Err(error) => error.kind() == std::io::ErrorKind::NotFound,
        Ok(metadata) => ours.is_some() && identity(metadata) != ours,
    };
    if vanished {
        return Err(JobError::Changed {
            path: path.to_path_buf(),
            reason: "the output file (or its directory) was deleted or moved while being \
                     written; every later result would be lost: restore it (or remove the \
                     partial copy) and re-run"
                .into(),
        });
    }
    Ok(())
}

/// Appends to `output` the result lines whose custom id it does not have yet (a line cut
/// by an earlier kill or full disk is removed first), then syncs it; returns how many were
/// written. For `--batch-api`, whose results arrive all at once.
pub fn append_results<'a>(
    output: &Path,
    results: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<usize, JobError> {
    let done = finished_ids(output)?;
    let failed = |source| write_failed(output, source);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(output)
        .map_err(failed)?;
    let regular = file.metadata().is_ok_and(|metadata| metadata.is_file());
    let mut length = file.metadata().map_or(0, |metadata| metadata.len());
    let mut written = 0;
    for (custom_id, line) in results {
        if done.contains(custom_id) {
            continue;
        }
        let mut line = line.trim_end_matches(['\n', '\r']).to_owned();
        line.push('\n');
        if let Err(source) = file.write_all(line.as_bytes()) {
            if regular {
                let _ = file.set_len(length);
            }
            return Err(failed(source));
        }
        length += line.len() as u64;
        written += 1;
    }
    if regular {
        file.sync_data().map_err(failed)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_line_is_the_same_json_whether_the_body_is_copied_or_reprinted() {
        let compact = br#"{"choices":[{"message":{"content":"a \"quoted\"\nline"}}],"usage":{"total_tokens":7}}"#;
        let pretty = b"{\n  \"choices\": [],\r\n  \"usage\": {\"total_tokens\": 7}\n}";
        for (body, custom_id) in [
            (&compact[..], "plain"),
            (&pretty[..], "with \"quotes\" and \\"),
            (&b"not json"[..], "x"),
        ] {
            let line = success_line("batch_req_1", custom_id, body);
            assert!(!line.contains('\n'), "{line}");
            let parsed: Value = serde_json::from_str(&line).expect("a JSON line");
            let expected_body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            assert_eq!(
                parsed,
                json!({"id": "batch_req_1", "custom_id": custom_id,
                    "response": {"status_code": 200, "body": expected_body}, "error": null})
            );
        }
    }

    /// A writer that takes `room` bytes, then fails with EIO (a failing disk).
    struct FailingWriter {
        written: Vec<u8>,
        room: usize,
    }

    impl Write for FailingWriter {
        fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            let count = buffer.len().min(self.room);
            self.written.extend_from_slice(&buffer[..count]);
            self.room -= count;
            Ok(count)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_failing_mid_batch_reports_the_whole_lines_written() {
        let lines = b"{\"a\":1}\n{\"b\":22}\n{\"c\":333}\n";
        for room in 0..lines.len() {
            let mut writer = FailingWriter {
                written: Vec::new(),
                room,
            };
            let (kept, error) = write_lines(&mut writer, lines).expect_err("EIO");
            assert_eq!(error.raw_os_error(), Some(5));
            let kept = usize::try_from(kept).expect("small");
            // What is kept is what was written, up to its last whole line.
            assert!(kept <= room && lines[..kept].ends_with(b"\n") || kept == 0);
            assert!(
                !lines[kept..room].contains(&b'\n'),
                "room {room}: kept {kept}"
            );
            assert_eq!(&writer.written[..kept], &lines[..kept]);
        }
        let mut writer = FailingWriter {
            written: Vec::new(),
            room: usize::MAX,
        };
        assert!(write_lines(&mut writer, lines).is_ok());
        assert_eq!(writer.written, lines);
    }

    /// A reader that fails with EIO after `good` bytes (a failing disk).
    struct FailingAfter {
        data: std::io::Cursor<Vec<u8>>,
        good: u64,
    }

    impl Read for FailingAfter {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            if self.data.position() >= self.good {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            let room = usize::try_from(self.good - self.data.position()).unwrap_or(usize::MAX);
            let end = buffer.len().min(room);
            self.data.read(&mut buffer[..end])
        }
    }

    fn config() -> JobConfig {
        JobConfig {
            input: PathBuf::from("/data/in.jsonl"),
            output: PathBuf::from("/data/out.jsonl"),
            defaults: RequestDefaults {
                model: "m".into(),
                generations: None,
                max_tokens: None,
                temperature: None,
                top_p: None,
            },
            max_concurrency: ConcurrencyLimit::Fixed(1),
            skip_malformed: false,
        }
    }

    fn lines(count: usize) -> Vec<u8> {
        (0..count)
            .map(|i| format!("{{\"prompt\": \"q{i}\"}}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn an_input_that_fails_mid_read_is_an_error_naming_it() {
        let data = lines(100);
        let mut taken = 0;
        let error = read_lines_from(
            FailingAfter {
                data: std::io::Cursor::new(data),
                good: 500,
            },
            None,
            &config(),
            &|line, _| Ok(line.to_owned()),
            &mut |_| {
                taken += 1;
                true
            },
            &AtomicUsize::new(0),
        )
        .expect_err("EIO");
        assert!(taken > 0 && taken < 100, "{taken}");
        let message = error.to_string();
        assert!(
            message.starts_with("cannot read /data/in.jsonl: "),
            "{message}"
        );
        assert!(
            matches!(error, JobError::Io { ref source, .. } if source.raw_os_error() == Some(5))
        );
    }

    #[test]
    fn an_input_shorter_than_it_was_is_an_error() {
        let data = lines(10);
        let size = data.len() as u64;
        let truncated = data[..data.len() / 2].to_vec();
        let error = read_lines_from(
            truncated.as_slice(),
            Some(size),
            &config(),
            &|line, _| Ok(line.to_owned()),
            &mut |_| true,
            &AtomicUsize::new(0),
        )
        .expect_err("truncated");
        assert!(
            error.to_string().contains("truncated while being read"),
            "{error}"
        );
        // A whole input, and one that stopped because the job stopped, are fine.
        let whole = read_lines_from(
            data.as_slice(),
            Some(size),
            &config(),
            &|line, _| Ok(line.to_owned()),
            &mut |_| true,
            &AtomicUsize::new(0),
        );
        assert!(whole.is_ok());
    }

    #[test]
    fn invalid_utf8_is_a_malformed_line() {
        let data = b"{\"prompt\": \"a\"}\n\xff\xfe\n".to_vec();
        let error = read_lines_from(
            data.as_slice(),
            None,
            &config(),
            &|line, _| Ok(line.to_owned()),
            &mut |_| true,
            &AtomicUsize::new(0),
        )
        .expect_err("malformed");
        assert!(
            matches!(error, JobError::Malformed { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn appended_results_skip_what_is_there_and_drop_a_cut_line() {
        let dir = std::env::temp_dir().join(format!("distilabel-rs-append-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let output = dir.join("out.jsonl");
        std::fs::write(
            &output,
            "{\"custom_id\": \"a\"}\n{\"custom_id\": \"b\", \"cut",
        )
        .expect("write");
        let written = append_results(
            &output,
            [
                ("a", "{\"custom_id\": \"a\", \"again\": 1}"),
                ("b", "{\"custom_id\": \"b\"}\n"),
            ],
        )
        .expect("append");
        assert_eq!(written, 1);
        assert_eq!(
            std::fs::read_to_string(&output).expect("read"),
            "{\"custom_id\": \"a\"}\n{\"custom_id\": \"b\"}\n"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
