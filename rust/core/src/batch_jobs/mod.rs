//! Offline generation through a provider's Batch API, in provider-neutral terms.
//!
//! A provider's batch jobs ([`BatchJobs`]) take rows in its own format, split them at its
//! limits, submit them as jobs, report where the jobs stand and, once none is running, read
//! their results into one [`RowResult`] per `custom_id`. What an expired or cancelled job left
//! undone is returned as rows to submit again, so nothing finished is paid for twice and
//! nothing unfinished is lost. Submissions are durable ([`durable`]): a kill at any moment
//! followed by a re-run never creates a second job for the same rows and loses no job.

pub mod durable;
pub mod journal;
pub mod split;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::http::{ApiError, Completion, Endpoint};

/// Requests of a set of jobs, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

impl std::ops::Add for RequestCounts {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            total: self.total + other.total,
            completed: self.completed + other.completed,
            failed: self.failed + other.failed,
        }
    }
}

/// The outcome of one row of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum RowResult {
    Completed(Completion),
    /// The provider's error for this row (an error status, an errored row, a failed job).
    Failed(String),
}

/// What the jobs produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// One entry per `custom_id` that has a result.
    pub rows: BTreeMap<String, RowResult>,
    /// Every `custom_id` the jobs were given.
    pub submitted: BTreeSet<String>,
    /// Rows (in the provider's row format) that an expired or cancelled job left without a
    /// result: to be submitted again.
    pub unfinished: Vec<Vec<u8>>,
    /// Custom ids that an expired or cancelled job left without a result and whose rows
    /// the provider cannot give back (its API keeps no copy of the requests and none was
    /// kept locally): the caller rebuilds them from its inputs, or reports them.
    pub lost: Vec<String>,
    /// The provider's own result line behind each result (written out unchanged by the
    /// command).
    pub raw: BTreeMap<String, String>,
}

/// Where a set of jobs stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Some job still runs.
    Running(RequestCounts),
    /// Every job ended; what they produced.
    Done(RequestCounts, Collected),
}

/// A provider's Batch API.
pub trait BatchJobs {
    /// One row of this API's input format for a request to `endpoint`.
    fn row(&self, custom_id: &str, endpoint: Endpoint, body: Value) -> Result<Value, ApiError>;

    /// Submits `rows` (each a JSON document of this API's row format), split at the API's
    /// limits into as many jobs as needed; returns the job ids in order. `name` names the
    /// uploaded files, `metadata` is attached to each job (where the API keeps metadata).
    ///
    /// With a `journal`, the submission is durable (see [`durable::submit`], which also
    /// says what `known_jobs` is for); without one, a kill loses track of its jobs.
    fn submit(
        &self,
        rows: Vec<Vec<u8>>,
        name: &str,
        metadata: &Value,
        journal: Option<&journal::JournalAt>,
        known_jobs: &[String],
    ) -> impl Future<Output = Result<Vec<String>, durable::SubmitError>> + Send;

    /// Where the jobs stand; once none runs, their results.
    fn check(&self, job_ids: &[String]) -> impl Future<Output = Result<Check, ApiError>> + Send;

    /// Asks the API to cancel the jobs (their finished rows stay available).
    fn cancel(&self, job_ids: &[String]) -> impl Future<Output = Result<(), ApiError>> + Send;
}
