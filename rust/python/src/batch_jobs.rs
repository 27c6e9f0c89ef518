//! `BatchJobs`: a provider's Batch API (offline generation), seen from Python. Every call
//! blocks on tokio with the GIL released; rows and results cross the boundary once.

use std::path::PathBuf;

use distilabel_rs_core::batch_jobs::durable::journal_state;
use distilabel_rs_core::batch_jobs::journal::{JournalAt, default_journal_dir, forget};
use distilabel_rs_core::batch_jobs::{BatchJobs as _, Check, RowResult};
use distilabel_rs_core::http::{Client, ClientConfig};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::{AnyBatchJobs, AnyProvider};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::client::{NativeClient, endpoint};
use crate::convert::{generate_output, request_json, to_json};
use crate::errors::IntoPyErr;
use crate::task::block_on;

/// The Batch API of a client's provider.
#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct BatchJobs {
    inner: AnyBatchJobs,
}

impl BatchJobs {
    pub(crate) fn inner(&self) -> &AnyBatchJobs {
        &self.inner
    }
}

#[pymethods]
impl BatchJobs {
    /// Raises `ValueError` if the client's provider has no batch API. Jobs are created
    /// through a twin of the client that makes one attempt per call: a create that may
    /// have worked is looked up before it is tried again (the client's retries).
    #[new]
    fn new(client: &NativeClient) -> PyResult<Self> {
        let inner = AnyProvider::batch_jobs(&client.inner).map_err(IntoPyErr::into_pyerr)?;
        let single_attempt = ClientConfig {
            retry: RetryPolicy {
                max_retries: 0,
                ..client.config.retry
            },
            ..client.config.clone()
        };
        let creator = Client::new(client.inner.provider().clone(), &single_attempt)
            .map_err(IntoPyErr::into_pyerr)?;
        Ok(Self {
            inner: inner.single_attempt_creates(creator, client.config.retry),
        })
    }

    /// Submits `requests` as batch jobs split at the API's limits; returns the job ids in
    /// order. Each request is `(custom_id, endpoint, body)`, or a row already in the API's
    /// format as bytes (e.g. an unfinished row to submit again). `name` names the uploaded
    /// files; `metadata` is attached to each job.
    ///
    /// Durable with `journal` (a state file) or `scope` (a journal in the shared directory
    /// named after the scope and the requests): a re-run after a kill resumes the
    /// submission instead of creating jobs twice. `known_jobs`: the jobs the caller already
    /// collects (see `durable::submit`). Raises `OSError` when the journal cannot be used.
    #[pyo3(signature = (requests, *, name, metadata, journal = None, scope = None, known_jobs = Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        requests: Vec<Bound<'_, PyAny>>,
        name: &str,
        metadata: &Bound<'_, PyAny>,
        journal: Option<PathBuf>,
        scope: Option<String>,
        known_jobs: Vec<String>,
    ) -> PyResult<Vec<String>> {
        let journal = match (journal, scope) {
            (Some(path), _) => Some(JournalAt::File(path)),
            (None, Some(scope)) => Some(JournalAt::Keyed {
                dir: shared_dir()?,
                scope,
            }),
            (None, None) => None,
        };
        let mut rows = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            if let Ok(bytes) = request.cast::<PyBytes>() {
                rows.push(bytes.as_bytes().to_vec());
                continue;
            }
            let (custom_id, endpoint_name, body): (
                Bound<'_, PyString>,
                Bound<'_, PyString>,
                Bound<'_, PyAny>,
            ) = request.extract()?;
            let body = request_json(&body, index)?;
            let row = self
                .inner
                .row(
                    custom_id.to_str()?,
                    endpoint(endpoint_name.to_str()?)?,
                    body,
                )
                .map_err(IntoPyErr::into_pyerr)?;
            rows.push(
                serde_json::to_vec(&row).map_err(|e| PyRuntimeError::new_err(e.to_string()))?,
            );
        }
        let metadata = to_json(metadata, "metadata")?;
        let jobs = &self.inner;
        block_on(py, async move {
            jobs.submit(rows, name, &metadata, journal.as_ref(), &known_jobs)
                .await
        })?
        .map_err(IntoPyErr::into_pyerr)
    }

    /// Where the jobs stand: `{"running", "counts": (total, completed, failed), "results":
    /// {custom_id: GenerateOutput | error message}, "failed": [custom_id], "submitted":
    /// [custom_id], "unfinished": [row as bytes], "lost": [custom_id]}` (results only once
    /// none is running; `lost`: rows left undone whose requests the API cannot give back,
    /// to rebuild from the inputs). With `raw`, each result is the API's own result line
    /// instead.
    #[pyo3(signature = (job_ids, *, raw = false))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        job_ids: Vec<String>,
        raw: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let jobs = &self.inner;
        let check = block_on(py, async move { jobs.check(&job_ids).await })?
            .map_err(IntoPyErr::into_pyerr)?;
        let answer = PyDict::new(py);
        let (counts, collected) = match check {
            Check::Running(counts) => (counts, None),
            Check::Done(counts, collected) => (counts, Some(collected)),
        };
        answer.set_item("running", collected.is_none())?;
        answer.set_item("counts", (counts.total, counts.completed, counts.failed))?;
        let results = PyDict::new(py);
        let unfinished = PyList::empty(py);
        let submitted = PyList::empty(py);
        let failed = PyList::empty(py);
        let lost = PyList::empty(py);
        if let Some(collected) = collected {
            for (custom_id, row) in &collected.rows {
                if matches!(row, RowResult::Failed(_)) {
                    failed.append(custom_id)?;
                }
                if raw {
                    if let Some(line) = collected.raw.get(custom_id) {
                        results.set_item(custom_id, line)?;
                    }
                    continue;
                }
                match row {
                    RowResult::Completed(completion) => {
                        results.set_item(custom_id, generate_output(py, completion)?)?;
                    }
                    RowResult::Failed(message) => results.set_item(custom_id, message)?,
                }
            }
            for line in &collected.unfinished {
                unfinished.append(PyBytes::new(py, line))?;
            }
            for custom_id in &collected.submitted {
                submitted.append(custom_id)?;
            }
            for custom_id in &collected.lost {
                lost.append(custom_id)?;
            }
        }
        answer.set_item("results", results)?;
        answer.set_item("unfinished", unfinished)?;
        answer.set_item("submitted", submitted)?;
        answer.set_item("failed", failed)?;
        answer.set_item("lost", lost)?;
        Ok(answer)
    }

    /// Asks the API to cancel the jobs (their finished rows stay available).
    fn cancel(&self, py: Python<'_>, job_ids: Vec<String>) -> PyResult<()> {
        let jobs = &self.inner;
        block_on(py, async move { jobs.cancel(&job_ids).await })?.map_err(IntoPyErr::into_pyerr)
    }
}

/// The shared directory of submission journals, or an error saying how to get one.
fn shared_dir() -> PyResult<PathBuf> {
    default_journal_dir().ok_or_else(|| {
        PyOSError::new_err(
            "no directory for the batch submission journals: set XDG_CACHE_HOME (or HOME) to \
             a writable directory",
        )
    })
}

/// `(jobs_ids, first_submission_complete)` of a batch state file (`([], False)` if there
/// is none). Raises `OSError` if it cannot be read or is damaged.
#[pyfunction]
pub fn batch_journal_state(py: Python<'_>, path: PathBuf) -> PyResult<(Vec<String>, bool)> {
    py.detach(|| journal_state(&path))
        .map_err(|e| PyOSError::new_err(e.to_string()))
}

/// Removes the submission journals of the shared directory whose jobs are all among
/// `job_ids` (their results were collected), and the expired ones; returns how many.
#[pyfunction]
pub fn forget_batch_submissions(py: Python<'_>, job_ids: Vec<String>) -> usize {
    py.detach(|| default_journal_dir().map_or(0, |dir| forget(&dir, &job_ids)))
}
