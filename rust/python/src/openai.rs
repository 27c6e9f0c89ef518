//! `OpenAIClient`, `BatchHandle` and `MockServer`: the native request path seen from Python.
//!
//! A batch crosses into Rust once (`OpenAIClient.start`, which converts every body under the
//! GIL and then hands the batch to tokio) and back once (`BatchHandle.results`). Tokio
//! threads never touch Python: completion is signalled through a condition variable that
//! `BatchHandle.wait` waits on with the GIL released.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use distilabel_rs_core::fanout::RetryPolicy;
use distilabel_rs_core::mock_server::MockServer as CoreMockServer;
use distilabel_rs_core::openai::batch_api::{
    self, BatchApi, Check, MAX_BYTES_PER_FILE, MAX_ROWS_PER_FILE, RowResult,
};
use distilabel_rs_core::openai::{
    ApiError, BatchProgress, ClientConfig, Completion, Endpoint, OpenAiClient, Request,
    TokenLogprob, run_batch,
};
use distilabel_rs_core::runtime::runtime;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use serde_json::Value;
use tokio::task::AbortHandle;

use crate::convert::to_json;
use crate::errors::IntoPyErr;

type BatchResults = Vec<Result<Completion, ApiError>>;

/// An OpenAI-compatible client with its own connection pool (one per LLM and process).
#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct OpenAIClient {
    pub(crate) inner: Arc<OpenAiClient>,
}

#[pymethods]
impl OpenAIClient {
    #[new]
    #[pyo3(signature = (
        base_url,
        *,
        api_key = None,
        default_headers = None,
        timeout = 120.0,
        max_retries = 6,
        backoff_base = 0.5,
        backoff_cap = 8.0,
        requests_per_minute = None,
        tokens_per_minute = None,
        root_certificate_pem = None,
        pool_size = 64,
        seed = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        base_url: String,
        api_key: Option<String>,
        default_headers: Option<HashMap<String, String>>,
        timeout: f64,
        max_retries: u32,
        backoff_base: f64,
        backoff_cap: f64,
        requests_per_minute: Option<f64>,
        tokens_per_minute: Option<f64>,
        root_certificate_pem: Option<Vec<u8>>,
        pool_size: usize,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let config = ClientConfig {
            base_url,
            api_key,
            default_headers: default_headers.unwrap_or_default().into_iter().collect(),
            timeout: Duration::try_from_secs_f64(timeout).unwrap_or(Duration::from_secs(120)),
            retry: RetryPolicy {
                max_retries,
                base_seconds: backoff_base,
                cap_seconds: backoff_cap,
            },
            requests_per_minute,
            tokens_per_minute,
            extra_root_certificates: root_certificate_pem.into_iter().collect(),
            pool_size,
            seed: seed.unwrap_or(0x5EED),
        };
        let inner = OpenAiClient::new(&config).map_err(IntoPyErr::into_pyerr)?;
        Ok(Self { inner })
    }

    /// Starts sending `requests` (pairs of `is_chat` and the JSON body) and returns at once.
    #[pyo3(signature = (requests, *, max_concurrency = None, fail_fast = false))]
    fn start(
        &self,
        py: Python<'_>,
        requests: Vec<(bool, Bound<'_, PyAny>)>,
        max_concurrency: Option<usize>,
        fail_fast: bool,
    ) -> PyResult<BatchHandle> {
        let mut prepared = Vec::with_capacity(requests.len());
        for (index, (is_chat, body)) in requests.iter().enumerate() {
            let value = to_json(body, &format!("request {index}"))?;
            let reserved_tokens = reserved_tokens(&value);
            prepared.push(Request {
                endpoint: if *is_chat {
                    Endpoint::Chat
                } else {
                    Endpoint::Completions
                },
                body: serde_json::to_vec(&value)
                    .map_err(|e| PyRuntimeError::new_err(e.to_string()))?
                    .into(),
                reserved_tokens,
            });
        }
        let count = prepared.len();
        let progress = Arc::new(BatchProgress::default());
        let finished = Arc::new(Finished::<BatchResults>::default());
        let runtime = runtime().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let client = Arc::clone(&self.inner);
        let task_progress = Arc::clone(&progress);
        let task_finished = Arc::clone(&finished);
        let task = py.detach(|| {
            runtime.spawn(async move {
                let results =
                    run_batch(client, prepared, max_concurrency, fail_fast, task_progress).await;
                task_finished.set(results);
            })
        });
        Ok(BatchHandle {
            count,
            abort: task.abort_handle(),
            progress,
            finished,
        })
    }

    /// Writes `rows` (dicts in the Batch API's JSONL format, or JSONL lines as bytes) into
    /// files split at the API's limits, uploads them and starts one batch per file. Returns
    /// the batch ids, in file order.
    #[pyo3(signature = (
        rows,
        *,
        file_name_prefix,
        metadata,
        max_rows_per_file = MAX_ROWS_PER_FILE,
        max_bytes_per_file = MAX_BYTES_PER_FILE,
    ))]
    fn batch_submit(
        &self,
        py: Python<'_>,
        rows: Vec<Bound<'_, PyAny>>,
        file_name_prefix: &str,
        metadata: &Bound<'_, PyAny>,
        max_rows_per_file: usize,
        max_bytes_per_file: usize,
    ) -> PyResult<Vec<String>> {
        let mut lines = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let mut line = match row.cast::<PyBytes>() {
                Ok(bytes) => bytes.as_bytes().to_vec(),
                Err(_) => serde_json::to_vec(&to_json(row, &format!("row {index}"))?)
                    .map_err(|e| PyRuntimeError::new_err(e.to_string()))?,
            };
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            lines.push(line);
        }
        let metadata = to_json(metadata, "metadata")?;
        let files = batch_api::split_into_files(lines, max_rows_per_file, max_bytes_per_file)
            .into_iter()
            .enumerate()
            .map(|(number, content)| (format!("{file_name_prefix}-fileno-{number}.jsonl"), content))
            .collect();
        let api = BatchApi::new(Arc::clone(&self.inner));
        block_on(py, async move {
            batch_api::submit(&api, files, &metadata).await
        })?
        .map_err(IntoPyErr::into_pyerr)
    }

    /// Where the batches stand: `{"running", "counts": (total, completed, failed),
    /// "results": {custom_id: GenerateOutput | error message}, "submitted": [custom_id],
    /// "unfinished": [JSONL line]}` (results only once none is running). With `raw`, each
    /// result is the API's own output or error line instead.
    #[pyo3(signature = (batch_ids, *, raw = false))]
    fn batch_check<'py>(
        &self,
        py: Python<'py>,
        batch_ids: Vec<String>,
        raw: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let api = BatchApi::new(Arc::clone(&self.inner));
        let check = block_on(py, async move { batch_api::check(&api, &batch_ids).await })?
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
        if let Some(collected) = collected {
            for (custom_id, row) in &collected.rows {
                if raw {
                    // The API's own output or error line, for writing it out unchanged.
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
        }
        answer.set_item("results", results)?;
        answer.set_item("unfinished", unfinished)?;
        answer.set_item("submitted", submitted)?;
        Ok(answer)
    }

    /// Asks the API to cancel the batches (their finished rows stay available).
    fn batch_cancel(&self, py: Python<'_>, batch_ids: Vec<String>) -> PyResult<()> {
        let api = BatchApi::new(Arc::clone(&self.inner));
        block_on(py, async move {
            for id in &batch_ids {
                api.cancel(id).await?;
            }
            Ok::<(), ApiError>(())
        })?
        .map_err(IntoPyErr::into_pyerr)
    }
}

/// Runs `future` on this process's runtime with the GIL released.
pub fn block_on<F: std::future::Future + Send>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F::Output: Send,
{
    let runtime = runtime().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(py.detach(|| runtime.block_on(future)))
}

/// Prompt characters / 4 (a usual tokens estimate) plus the most the request may generate.
fn reserved_tokens(body: &Value) -> u64 {
    fn characters(value: &Value) -> usize {
        match value {
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(characters).sum(),
            Value::Object(fields) => fields.values().map(characters).sum(),
            _ => 0,
        }
    }
    let prompt = body
        .get("messages")
        .or_else(|| body.get("prompt"))
        .map_or(0, characters);
    let max_tokens = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(16);
    let n = body.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
    u64::try_from(prompt / 4)
        .unwrap_or(u64::MAX)
        .saturating_add(max_tokens.saturating_mul(n))
}

/// The outcome of work running on tokio, handed to Python threads without the GIL.
pub struct Finished<T> {
    results: Mutex<Option<T>>,
    ready: Condvar,
}

impl<T> Default for Finished<T> {
    fn default() -> Self {
        Self {
            results: Mutex::new(None),
            ready: Condvar::new(),
        }
    }
}

impl<T: Send> Finished<T> {
    pub fn lock(&self) -> MutexGuard<'_, Option<T>> {
        self.results.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the outcome (the first one wins) and wakes the waiters.
    pub fn set(&self, results: T) {
        let mut slot = self.lock();
        if slot.is_none() {
            *slot = Some(results);
        }
        self.ready.notify_all();
    }

    /// Waits until an outcome is stored (`true`) or `timeout` passed, with the GIL released.
    pub fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> bool {
        py.detach(|| {
            let guard = self.lock();
            let guard = match timeout.and_then(|t| Duration::try_from_secs_f64(t).ok()) {
                Some(limit) => {
                    self.ready
                        .wait_timeout_while(guard, limit, |results| results.is_none())
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .ready
                    .wait_while(guard, |results| results.is_none())
                    .unwrap_or_else(PoisonError::into_inner),
            };
            guard.is_some()
        })
    }
}

/// A batch being sent. `wait` blocks without the GIL; `results` converts everything once.
#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct BatchHandle {
    count: usize,
    abort: AbortHandle,
    progress: Arc<BatchProgress>,
    finished: Arc<Finished<BatchResults>>,
}

#[pymethods]
impl BatchHandle {
    /// Waits until the batch is done (`True`) or `timeout` seconds passed (`False`).
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> bool {
        self.finished.wait(py, timeout)
    }

    /// Stops every request still running or waiting; their results become cancelled.
    fn cancel(&self) {
        self.abort.abort();
        self.finished
            .set((0..self.count).map(|_| Err(ApiError::Cancelled)).collect());
    }

    /// `(total, done, failed, retried, in_flight)`.
    fn progress(&self) -> (usize, usize, usize, usize, usize) {
        let (_, done, failed, retried, in_flight) = self.progress.snapshot();
        (self.count, done, failed, retried, in_flight)
    }

    /// One entry per request, in order: a `GenerateOutput` dict, or the exception (an
    /// instance, not raised) for a request that failed.
    fn results<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let guard = self.finished.lock();
        let Some(results) = guard.as_ref() else {
            return Err(PyRuntimeError::new_err(
                "the batch is still running; wait() first",
            ));
        };
        let out = PyList::empty(py);
        for result in results {
            match result {
                Ok(completion) => out.append(generate_output(py, completion)?)?,
                Err(error) => out.append(error.clone().into_pyerr().into_value(py))?,
            }
        }
        Ok(out)
    }

    /// `(request index, finish reason)` of every choice that came back without content.
    fn empty_choices(&self) -> Vec<(usize, Option<String>)> {
        let guard = self.finished.lock();
        guard.as_ref().map_or_else(Vec::new, |results| {
            results
                .iter()
                .enumerate()
                .filter_map(|(index, result)| result.as_ref().ok().map(|c| (index, c)))
                .flat_map(|(index, completion)| {
                    completion
                        .empty_finish_reasons
                        .iter()
                        .map(move |reason| (index, reason.clone()))
                })
                .collect()
        })
    }
}

/// distilabel's `prepare_output`: token counts always (one value per request), logprobs
/// only when there are some.
fn generate_output<'py>(py: Python<'py>, completion: &Completion) -> PyResult<Bound<'py, PyDict>> {
    let output = PyDict::new(py);
    output.set_item(pyo3::intern!(py, "generations"), &completion.generations)?;
    let statistics = PyDict::new(py);
    statistics.set_item(pyo3::intern!(py, "input_tokens"), [completion.input_tokens])?;
    statistics.set_item(
        pyo3::intern!(py, "output_tokens"),
        [completion.output_tokens],
    )?;
    output.set_item(pyo3::intern!(py, "statistics"), statistics)?;
    if !completion.logprobs.is_empty() {
        let choices = PyList::empty(py);
        for positions in &completion.logprobs {
            let rows = PyList::empty(py);
            for position in positions {
                match position {
                    Some(alternatives) => rows.append(logprob_list(py, alternatives)?)?,
                    None => rows.append(py.None())?,
                }
            }
            choices.append(rows)?;
        }
        output.set_item(pyo3::intern!(py, "logprobs"), choices)?;
    }
    Ok(output)
}

fn logprob_list<'py>(
    py: Python<'py>,
    alternatives: &[TokenLogprob],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for alternative in alternatives {
        let entry = PyDict::new(py);
        entry.set_item(pyo3::intern!(py, "token"), &alternative.token)?;
        entry.set_item(pyo3::intern!(py, "logprob"), alternative.logprob)?;
        list.append(entry)?;
    }
    Ok(list)
}

/// The local OpenAI-compatible server (see `distilabel_rs_core::mock_server`), for tests,
/// benchmarks and `--mock` runs. Serves on this process's runtime until stopped.
#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct MockServer {
    inner: CoreMockServer,
}

#[pymethods]
impl MockServer {
    /// With `tls_certificate_pem` and `tls_key_pem`, serves HTTPS.
    #[new]
    #[pyo3(signature = (*, record = false, tls_certificate_pem = None, tls_key_pem = None))]
    fn new(
        py: Python<'_>,
        record: bool,
        tls_certificate_pem: Option<Vec<u8>>,
        tls_key_pem: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let runtime = runtime().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let tls = tls_certificate_pem.as_deref().zip(tls_key_pem.as_deref());
        let inner = py
            .detach(|| runtime.block_on(CoreMockServer::start_with_tls(record, tls)))
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the mock server: {e}")))?;
        Ok(Self { inner })
    }

    #[getter]
    fn port(&self) -> u16 {
        self.inner.address().port()
    }

    /// `http(s)://127.0.0.1:<port>/v1`
    #[getter]
    fn base_url(&self) -> String {
        let scheme = if self.inner.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}/v1", self.inner.address())
    }

    #[getter]
    fn requests(&self) -> usize {
        self.inner.requests()
    }

    #[getter]
    fn peak_in_flight(&self) -> usize {
        self.inner.peak_in_flight()
    }

    /// Ids of the batches created so far, oldest first.
    fn batch_ids(&self) -> Vec<String> {
        self.inner.batch_ids()
    }

    /// `(path, body, authorization header)` of each request, when started with `record`.
    fn recorded(&self) -> Vec<(String, String, Option<String>)> {
        self.inner
            .recorded()
            .into_iter()
            .map(|r| (r.path, r.body, r.authorization))
            .collect()
    }

    fn stop(&self) {
        self.inner.stop();
    }
}
