//! The `distilabel-rs generate` job, running on tokio and watched from Python, and the
//! same input read into batch rows for `--batch-api`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use distilabel_rs_core::adaptive::{ConcurrencyLimit, InvalidConcurrency};
use distilabel_rs_core::generate_job::{
    JobConfig, JobError, JobProgress, MalformedLines, Summary, append_results as append,
    batch_rows, run_job,
};
use distilabel_rs_core::http::RequestDefaults;
use distilabel_rs_core::providers::AnyProvider;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokio::task::AbortHandle;

use crate::batch_jobs::BatchJobs;
use crate::client::NativeClient;
use crate::errors::IntoPyErr;
use crate::fanout::concurrency_limit;
use crate::task::{Finished, runtime};

/// How long `cancel` waits for the last results to be written and synced.
const CANCEL_WRITE_GRACE: Duration = Duration::from_secs(10);

type Outcome = Result<Summary, JobError>;

/// Reads the job's settings: `defaults` is `{"model", "n", "max_tokens", "temperature",
/// "top_p"}` (all but `model` optional).
fn job_config(
    input: PathBuf,
    output: PathBuf,
    defaults: &Bound<'_, PyDict>,
    max_concurrency: ConcurrencyLimit,
    skip_malformed: bool,
) -> PyResult<JobConfig> {
    let get = |key: &str| {
        defaults
            .get_item(key)
            .map(|value| value.filter(|v| !v.is_none()))
    };
    let model: String = match get("model")? {
        Some(model) => model.extract()?,
        None => return Err(PyRuntimeError::new_err("defaults need a `model`")),
    };
    Ok(JobConfig {
        input,
        output,
        defaults: RequestDefaults {
            model,
            generations: get("n")?.map(|v| v.extract()).transpose()?,
            max_tokens: get("max_tokens")?.map(|v| v.extract()).transpose()?,
            temperature: get("temperature")?.map(|v| v.extract()).transpose()?,
            top_p: get("top_p")?.map(|v| v.extract()).transpose()?,
        },
        max_concurrency,
        skip_malformed,
    })
}

/// The job's `max_concurrency`: as `NativeClient.start`'s, but a number is needed: with no
/// limit, every line of the input would be in flight at once.
fn job_concurrency(value: &Bound<'_, PyAny>) -> PyResult<ConcurrencyLimit> {
    match concurrency_limit(Some(value))? {
        ConcurrencyLimit::Unbounded => Err(PyValueError::new_err(format!(
            "{} (a generate job needs a limit)",
            InvalidConcurrency {
                value: value.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
            }
        ))),
        limit => Ok(limit),
    }
}

/// Starts the job: `input` JSONL requests to `output` JSONL results (see the CLI).
/// `max_concurrency`: a positive number, `"auto"` or `"auto:N"` (adaptive, up to N).
#[pyfunction]
#[pyo3(signature = (client, input, output, *, defaults, max_concurrency, skip_malformed))]
pub fn start_generate_job(
    py: Python<'_>,
    client: &NativeClient,
    input: PathBuf,
    output: PathBuf,
    defaults: &Bound<'_, PyDict>,
    max_concurrency: &Bound<'_, PyAny>,
    skip_malformed: bool,
) -> PyResult<GenerateJob> {
    let max_concurrency = job_concurrency(max_concurrency)?;
    let config = job_config(input, output, defaults, max_concurrency, skip_malformed)?;
    let progress = Arc::new(JobProgress::default());
    let finished = Arc::new(Finished::<Outcome>::default());
    let runtime = runtime()?;
    let inner = Arc::clone(&client.inner);
    let (task_progress, task_finished) = (Arc::clone(&progress), Arc::clone(&finished));
    let task = py.detach(|| {
        runtime.spawn(async move {
            task_finished.set(run_job(inner, config, task_progress).await);
        })
    });
    Ok(GenerateJob {
        abort: task.abort_handle(),
        progress,
        finished,
    })
}

/// INPUT read by the online path's parser into rows of the provider's batch format:
/// `(rows as bytes, [(line number, reason)] of skipped malformed lines)`.
#[pyfunction]
#[pyo3(signature = (client, jobs, input, *, defaults, skip_malformed))]
pub fn batch_rows_from_file<'py>(
    py: Python<'py>,
    client: &NativeClient,
    jobs: &BatchJobs,
    input: PathBuf,
    defaults: &Bound<'_, PyDict>,
    skip_malformed: bool,
) -> PyResult<(Vec<Bound<'py, PyBytes>>, MalformedLines)> {
    let config = job_config(
        input,
        PathBuf::new(),
        defaults,
        ConcurrencyLimit::Fixed(1),
        skip_malformed,
    )?;
    let provider: &AnyProvider = client.inner.provider();
    let (rows, malformed) = py
        .detach(|| batch_rows(&config, provider, jobs.inner()))
        .map_err(IntoPyErr::into_pyerr)?;
    let rows = rows.iter().map(|row| PyBytes::new(py, row)).collect();
    Ok((rows, malformed))
}

/// Appends to `output` the result lines (`{custom_id: line}`) whose custom id it does not
/// have yet, after removing a line cut by an earlier kill, then syncs it; returns how many
/// were written. Raises `OSError` naming the file and the cause.
#[pyfunction]
pub fn append_results(
    py: Python<'_>,
    output: PathBuf,
    results: std::collections::HashMap<String, String>,
) -> PyResult<usize> {
    py.detach(|| {
        append(
            &output,
            results
                .iter()
                .map(|(id, line)| (id.as_str(), line.as_str())),
        )
    })
    .map_err(IntoPyErr::into_pyerr)
}

/// A running `generate` job.
#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct GenerateJob {
    abort: AbortHandle,
    progress: Arc<JobProgress>,
    finished: Arc<Finished<Outcome>>,
}

#[pymethods]
impl GenerateJob {
    /// Waits (without the GIL) until the job ended (`True`) or `timeout` seconds passed.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> bool {
        self.finished.wait(py, timeout)
    }

    /// Stops the job: the requests in flight are abandoned (a re-run sends them again);
    /// the results that had come back are written and OUTPUT synced before this returns
    /// (waiting at most [`CANCEL_WRITE_GRACE`] for a disk that does not answer).
    fn cancel(&self, py: Python<'_>) {
        self.abort.abort();
        py.detach(|| {
            let deadline = Instant::now() + CANCEL_WRITE_GRACE;
            while self.progress.writing.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    }

    /// `(total read, done, failed, retried, in_flight, skipped, malformed, tokens, limit)`;
    /// `limit`: the concurrency limit in force (it moves with `auto`), `None` until the job
    /// started.
    #[allow(clippy::type_complexity)]
    fn progress(
        &self,
    ) -> (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        u64,
        Option<usize>,
    ) {
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
            self.progress.requests.limit(),
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
        out.set_item("final_limit", summary.final_limit)?;
        out.set_item("peak_limit", summary.peak_limit)?;
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
        JobError::Changed { path, reason } => JobError::Changed {
            path: path.clone(),
            reason: reason.clone(),
        },
        JobError::Malformed { path, line, reason } => JobError::Malformed {
            path: path.clone(),
            line: *line,
            reason: reason.clone(),
        },
        JobError::Fatal(error) => JobError::Fatal(error.clone()),
    }
}
