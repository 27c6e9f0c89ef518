//! `run_jsonl_job`: the `distilabel-rs generate` job, running on tokio, watched from Python.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use distilabel_rs_core::jsonl_job::{JobConfig, JobError, JobProgress, Summary, run_job};
use distilabel_rs_core::runtime::runtime;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;
use tokio::task::AbortHandle;

use crate::convert::to_json;
use crate::errors::IntoPyErr;
use crate::openai::{Finished, OpenAIClient};

type Outcome = Result<Summary, JobError>;

/// Starts the job: `input` JSONL requests to `output` JSONL results (see the CLI).
#[pyfunction]
#[pyo3(signature = (client, input, output, *, model, defaults, max_concurrency, skip_malformed))]
#[allow(clippy::too_many_arguments)]
pub fn run_jsonl_job(
    py: Python<'_>,
    client: &OpenAIClient,
    input: PathBuf,
    output: PathBuf,
    model: String,
    defaults: &Bound<'_, PyDict>,
    max_concurrency: usize,
    skip_malformed: bool,
) -> PyResult<JsonlJob> {
    let Value::Object(defaults) = to_json(defaults.as_any(), "defaults")? else {
        return Err(PyRuntimeError::new_err("defaults must be a dict"));
    };
    let config = JobConfig {
        input,
        output,
        model,
        defaults,
        max_concurrency,
        skip_malformed,
    };
    let progress = Arc::new(JobProgress::default());
    let finished = Arc::new(Finished::<Outcome>::default());
    let runtime = runtime().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    let inner = Arc::clone(&client.inner);
    let (task_progress, task_finished) = (Arc::clone(&progress), Arc::clone(&finished));
    let task = py.detach(|| {
        runtime.spawn(async move {
            task_finished.set(run_job(inner, config, task_progress).await);
        })
    });
    Ok(JsonlJob {
        abort: task.abort_handle(),
        progress,
        finished,
    })
}

/// A running `generate` job.
#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct JsonlJob {
    abort: AbortHandle,
    progress: Arc<JobProgress>,
    finished: Arc<Finished<Outcome>>,
}

#[pymethods]
impl JsonlJob {
    /// Waits (without the GIL) until the job ended (`True`) or `timeout` seconds passed.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> bool {
        self.finished.wait(py, timeout)
    }

    /// Stops the job; every result already written stays in the output.
    fn cancel(&self) {
        self.abort.abort();
    }

    /// `(total read, done, failed, retried, in_flight, skipped, malformed, tokens)`.
    fn progress(&self) -> (usize, usize, usize, usize, usize, usize, usize, u64) {
        let (total, done, failed, retried, in_flight) = self.progress.requests.snapshot();
        (
            total,
            done,
            failed,
            retried,
            in_flight,
            self.progress.skipped.load(Ordering::Relaxed),
            self.progress.malformed.load(Ordering::Relaxed),
            self.progress.tokens.load(Ordering::Relaxed),
        )
    }

    /// The summary of a finished job, or the error that stopped it (raised).
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let guard = self.finished.lock();
        let summary = match guard.as_ref() {
            None => {
                return Err(PyRuntimeError::new_err(
                    "the job is still running; wait() first",
                ));
            }
            Some(Err(error)) => return Err(clone_error(error).into_pyerr()),
            Some(Ok(summary)) => summary,
        };
        let out = PyDict::new(py);
        out.set_item("requests", summary.requests)?;
        out.set_item("succeeded", summary.succeeded)?;
        out.set_item("failures", summary.failures.clone())?;
        out.set_item("malformed_lines", summary.malformed_lines.clone())?;
        out.set_item("skipped", summary.skipped)?;
        out.set_item("tokens", summary.tokens)?;
        out.set_item("seconds", summary.seconds)?;
        Ok(out)
    }
}

/// `JobError` holds an `io::Error`, which is not `Clone`: rebuilt with the same kind.
fn clone_error(error: &JobError) -> JobError {
    match error {
        JobError::Io {
            action,
            path,
            source,
        } => JobError::Io {
            action,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        JobError::Malformed { path, line, reason } => JobError::Malformed {
            path: path.clone(),
            line: *line,
            reason: reason.clone(),
        },
        JobError::Fatal(error) => JobError::Fatal(error.clone()),
    }
}
