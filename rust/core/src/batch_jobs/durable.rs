//! Submitting batch jobs so that a kill at any moment, followed by a re-run, never creates a
//! second job for the same rows and loses no job.
//!
//! The rows are cut into chunks (one job each) and recorded in a [journal](super::journal)
//! before anything is sent. Each chunk then goes through the provider's steps
//! ([`DurableSteps::start`]), which record every intent (an upload, a create) before making
//! the call, and every id the provider hands back as soon as it comes. A re-run with the
//! same rows finds the submission by their digest and resumes it: chunks with a job are
//! done; chunks never attempted are started; chunks whose attempt was interrupted are
//! looked up at the provider ([`DurableSteps::recover`]) — their job is adopted if it
//! exists, otherwise what the attempt left (an uploaded file) is deleted and the chunk
//! starts again.
//!
//! A submission's job ids join the journal's `jobs_ids` (the jobs to collect) only once
//! every chunk has its job, so that what is computed from the collected jobs (the rows to
//! submit again) does not change under a submission in progress: submitting those same
//! rows again resumes it. A submission interrupted for good (its rows are no longer asked
//! for) is *settled*: its jobs found at the provider join `jobs_ids`, the rest is given up.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::journal::{
    ChunkRecord, Digest, Journal, JournalAt, JournalError, JournalLock, Submission, job_ids_in_dir,
    remove_stale_temporaries, unix_now,
};
use crate::http::ApiError;
use crate::limits::{Jitter, RetryPolicy};

/// Why a submission failed: the API, or its journal (a file that cannot be written, a
/// damaged one...).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The provider-specific steps of a durable submission.
pub trait DurableSteps: Sync {
    /// Cuts `rows` (JSON documents of the API's row format) into the rows of one job each,
    /// in order, within the API's limits.
    fn chunks(&self, rows: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>>;

    /// Fills what this API needs in a new chunk's record (e.g. the file name).
    fn describe(&self, record: &mut ChunkRecord, number: usize, name: &str);

    /// Creates the job of one chunk, recording each intent and id through `recorder`
    /// before and after each call; returns the job id.
    fn start(
        &self,
        rows: &[Vec<u8>],
        recorder: &mut Recorder,
        metadata: &Value,
    ) -> impl Future<Output = Result<String, SubmitError>> + Send;

    /// After an interruption: the job an earlier attempt of this chunk created, if any. When
    /// there is none, removes what the attempt left (uploaded files) so that the chunk can
    /// start again. `known`: job ids that belong to other chunks or submissions.
    fn recover(
        &self,
        record: &ChunkRecord,
        known: &BTreeSet<String>,
    ) -> impl Future<Output = Result<Option<String>, SubmitError>> + Send;
}

/// Writes the journal of one submission as its chunks progress.
#[derive(Debug)]
pub struct Recorder {
    path: Option<PathBuf>,
    journal: Journal,
    submission: usize,
    chunk: usize,
    /// Jobs of other submissions (the caller's, the shared directory's).
    known: BTreeSet<String>,
}

impl Recorder {
    /// Jobs that are not the current chunk's: the journal's and the caller's.
    pub fn known_jobs(&self) -> BTreeSet<String> {
        let mut known = self.known.clone();
        known.extend(self.journal.all_job_ids().cloned());
        known
    }

    /// The record of the chunk being submitted.
    pub fn record(&self) -> &ChunkRecord {
        &self.journal.submissions[self.submission].chunks[self.chunk]
    }

    /// Changes the chunk's record, then writes the journal (atomically) before returning:
    /// what follows the call may rely on it being on disk.
    pub async fn update(
        &mut self,
        change: impl FnOnce(&mut ChunkRecord),
    ) -> Result<(), SubmitError> {
        change(&mut self.journal.submissions[self.submission].chunks[self.chunk]);
        self.save().await
    }

    async fn save(&self) -> Result<(), SubmitError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let journal = self.journal.clone();
        blocking(move || journal.save(&path)).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, JournalError> + Send + 'static,
) -> Result<T, SubmitError> {
    let outcome = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::InvalidRequest(format!("journal task failed: {e}")))?;
    Ok(outcome?)
}

/// A unique tag for the chunks of a new submission: time, process and a counter.
fn new_tag(digest: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut unique = Digest::default();
    unique.part(digest.as_bytes());
    unique.part(&unix_now().to_le_bytes());
    unique.part(&std::process::id().to_le_bytes());
    unique.part(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    format!("drs{}", &unique.hex()[..16])
}

/// Submits `rows` durably (see the module documentation); returns the job ids of this
/// submission in order, plus, first, those of other submissions of the journal that were
/// settled on the way (jobs the caller did not know of).
///
/// `known_jobs`: the jobs the caller already collects. A complete submission of the same
/// rows whose jobs are all among them is an earlier round (its rows are asked for again,
/// e.g. after the job expired): a new submission is made. One whose jobs the caller does not
/// know (it was killed before recording them) is returned as it is.
///
/// Without a journal, nothing is recorded (a kill loses track of the jobs).
pub async fn submit<S: DurableSteps>(
    steps: &S,
    rows: Vec<Vec<u8>>,
    name: &str,
    metadata: &Value,
    journal_at: Option<&JournalAt>,
    known_jobs: &[String],
) -> Result<Vec<String>, SubmitError> {
    let chunks = steps.chunks(rows);
    let chunk_digests: Vec<String> = chunks
        .iter()
        .map(|rows| Digest::of_parts(rows.iter().map(Vec::as_slice)))
        .collect();
    let digest = Digest::of_parts(chunk_digests.iter().map(String::as_bytes));
    let path = journal_at.map(|at| at.path(&digest));
    let _lock = match &path {
        Some(path) => {
            let path = path.clone();
            Some(
                blocking(move || {
                    let lock = JournalLock::acquire(&path)?;
                    remove_stale_temporaries(&path);
                    Ok(lock)
                })
                .await?,
            )
        }
        None => None,
    };
    let journal = match &path {
        Some(path) => {
            let path = path.clone();
            blocking(move || Journal::load(&path)).await?
        }
        None => Journal::default(),
    };
    let mut known: BTreeSet<String> = known_jobs.iter().cloned().collect();
    if let Some(dir) = journal_at.and_then(JournalAt::shared_dir) {
        let dir = dir.to_path_buf();
        known.extend(
            tokio::task::spawn_blocking(move || job_ids_in_dir(&dir))
                .await
                .unwrap_or_default(),
        );
    }
    let mut recorder = Recorder {
        path,
        journal,
        submission: 0,
        chunk: 0,
        known: known.clone(),
    };

    let is_same = |submission: &Submission| {
        submission.digest == digest
            && !submission.settled
            && (!submission.complete
                || submission
                    .job_ids()
                    .iter()
                    .all(|id| !known_jobs.contains(id)))
    };
    let resumed = recorder.journal.submissions.iter().position(is_same);
    // Other submissions left incomplete: settled first (their jobs found are adopted).
    let mut adopted = Vec::new();
    for index in 0..recorder.journal.submissions.len() {
        let submission = &recorder.journal.submissions[index];
        if Some(index) == resumed || submission.complete || submission.settled {
            continue;
        }
        adopted.extend(settle(steps, &mut recorder, index).await?);
    }
    let index = match resumed {
        Some(index) => index,
        None => {
            let tag = new_tag(&digest);
            let records = chunks
                .iter()
                .zip(&chunk_digests)
                .enumerate()
                .map(|(number, (rows, chunk_digest))| {
                    let mut record = ChunkRecord {
                        tag: format!("{tag}-{number}"),
                        digest: chunk_digest.clone(),
                        rows: rows.len(),
                        bytes: rows.iter().map(|row| row.len() + 1).sum(),
                        ..ChunkRecord::default()
                    };
                    steps.describe(&mut record, number, name);
                    record
                })
                .collect();
            recorder.journal.submissions.push(Submission {
                digest: digest.clone(),
                started_at: unix_now(),
                chunks: records,
                complete: false,
                settled: false,
            });
            recorder.save().await?;
            recorder.journal.submissions.len() - 1
        }
    };
    recorder.submission = index;
    for (number, rows) in chunks.iter().enumerate() {
        recorder.chunk = number;
        let record = recorder.record().clone();
        if record.job_id.is_some() {
            continue;
        }
        if record.interrupted() {
            if let Some(job) = steps.recover(&record, &recorder.known_jobs()).await? {
                recorder
                    .update(|record| record.job_id = Some(job.clone()))
                    .await?;
                continue;
            }
            recorder
                .update(|record| {
                    record.upload_started = None;
                    record.file_id = None;
                    record.create_started = None;
                })
                .await?;
        }
        let job = steps.start(rows, &mut recorder, metadata).await?;
        recorder.update(|record| record.job_id = Some(job)).await?;
    }
    let submission = &mut recorder.journal.submissions[index];
    let ids = submission.job_ids();
    if !submission.complete {
        submission.complete = true;
        recorder.journal.jobs_ids.extend(ids.iter().cloned());
        recorder.save().await?;
    }
    adopted.extend(ids);
    Ok(adopted)
}

/// Ends an incomplete submission whose rows are no longer asked for: the jobs its chunks
/// created (recorded, or found at the provider) join `jobs_ids`; the rest is given up.
async fn settle<S: DurableSteps>(
    steps: &S,
    recorder: &mut Recorder,
    index: usize,
) -> Result<Vec<String>, SubmitError> {
    recorder.submission = index;
    for number in 0..recorder.journal.submissions[index].chunks.len() {
        recorder.chunk = number;
        let record = recorder.record().clone();
        if !record.interrupted() {
            continue;
        }
        let found = steps.recover(&record, &recorder.known_jobs()).await?;
        recorder
            .update(|record| {
                record.job_id = found;
                if record.job_id.is_none() {
                    record.upload_started = None;
                    record.file_id = None;
                    record.create_started = None;
                }
            })
            .await?;
    }
    let submission = &mut recorder.journal.submissions[index];
    submission.settled = true;
    submission.complete = true;
    let ids = submission.job_ids();
    recorder.journal.jobs_ids.extend(ids.iter().cloned());
    recorder.save().await?;
    Ok(ids)
}

/// The jobs of a journal and whether its first submission (the initial one of the
/// command) completed: `(jobs_ids, first submission complete)`.
pub fn journal_state(path: &std::path::Path) -> Result<(Vec<String>, bool), JournalError> {
    let journal = Journal::load(path)?;
    let first_complete = match journal.submissions.first() {
        Some(first) => first.complete,
        // The state file of earlier versions: its jobs were submitted whole.
        None => !journal.jobs_ids.is_empty(),
    };
    Ok((journal.jobs_ids, first_complete))
}

/// How an API's job creates are retried: only after a lookup found that a failed attempt
/// created nothing, since a create is billed.
#[derive(Debug)]
pub(crate) struct CreateRetries {
    pub(crate) policy: RetryPolicy,
    jitter: Mutex<Jitter>,
}

impl CreateRetries {
    /// No retry (the default until `single_attempt_creates` sets a policy).
    pub(crate) fn none() -> Self {
        Self::new(RetryPolicy {
            max_retries: 0,
            base_seconds: 0.0,
            cap_seconds: 0.0,
        })
    }

    pub(crate) fn new(policy: RetryPolicy) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5EED, |elapsed| elapsed.as_nanos() as u64)
            ^ u64::from(std::process::id());
        Self {
            policy,
            jitter: Mutex::new(Jitter::new(seed)),
        }
    }

    /// Runs `attempt` (one call, no retries of its own) until it returns a job id. A
    /// failure that may have created the job anyway (a timeout, a 5xx, a 2xx that is not a
    /// job) is followed by `lookup`, whose find is the answer; a new attempt is made only
    /// when nothing was found and the error is retryable, after the server's hint or a
    /// backoff.
    pub(crate) async fn create<A, AF, L, LF>(
        &self,
        mut attempt: A,
        mut lookup: L,
    ) -> Result<String, ApiError>
    where
        A: FnMut() -> AF,
        AF: Future<Output = Result<String, ApiError>>,
        L: FnMut() -> LF,
        LF: Future<Output = Result<Option<String>, ApiError>>,
    {
        let mut retries = 0;
        loop {
            let error = match attempt().await {
                Ok(id) => return Ok(id),
                Err(error) if refused(&error) => return Err(error),
                Err(error) => error,
            };
            if let Some(id) = lookup().await? {
                return Ok(id);
            }
            if !error.is_retryable() || retries >= self.policy.max_retries {
                return Err(error);
            }
            let delay = match error.retry_after() {
                Some(hint) if hint.is_finite() && hint >= 0.0 => hint,
                _ => {
                    let mut jitter = self.jitter.lock().unwrap_or_else(PoisonError::into_inner);
                    self.policy.backoff(retries, &mut jitter)
                }
            };
            retries += 1;
            tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        }
    }
}

/// The API refused the call (a 4xx other than 408, 409 and 429), or it could not be made:
/// nothing was created.
pub(crate) fn refused(error: &ApiError) -> bool {
    match error {
        ApiError::Status { .. } => !error.is_retryable(),
        ApiError::InvalidRequest(_) => true,
        _ => false,
    }
}
