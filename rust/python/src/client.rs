//! `NativeClient` and `RequestsHandle`: online requests of any provider, seen from Python.
//!
//! A set of requests crosses into Rust once (`NativeClient.start`, which converts every body
//! under the GIL and then hands them to tokio) and back once (`RequestsHandle.results`).
//! Tokio threads never touch Python: completion is signalled through a condition variable
//! that `RequestsHandle.wait` waits on with the GIL released.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use distilabel_rs_core::adaptive::ConcurrencyLimit;
use distilabel_rs_core::http::{
    ApiError, Client, ClientConfig, Completion, Endpoint, Limiter, Method, Provider, Request,
    RequestCounters, run_many_limited,
};
use distilabel_rs_core::limits::{CLIENT_DEFAULTS, RetryPolicy};
use distilabel_rs_core::providers::AnyProvider;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde_json::Value;
use tokio::task::AbortHandle;

use crate::convert::{generate_output, json_bytes, request_json, templated_bodies, to_json};
use crate::errors::IntoPyErr;
use crate::fanout::concurrency_limit;
use crate::task::{Finished, block_on, runtime};

type Results = Vec<Result<Completion, ApiError>>;

/// `_core.CLIENT_DEFAULTS`: the one set of client defaults, for the Python side.
pub fn client_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let defaults = PyDict::new(py);
    defaults.set_item("timeout", CLIENT_DEFAULTS.timeout.as_secs_f64())?;
    defaults.set_item("max_retries", CLIENT_DEFAULTS.retry.max_retries)?;
    defaults.set_item("backoff_base", CLIENT_DEFAULTS.retry.base_seconds)?;
    defaults.set_item("backoff_cap", CLIENT_DEFAULTS.retry.cap_seconds)?;
    defaults.set_item("max_concurrency", CLIENT_DEFAULTS.max_concurrency)?;
    Ok(defaults)
}

/// `"chat"` or `"text"`.
pub fn endpoint(name: &str) -> PyResult<Endpoint> {
    match name {
        "chat" => Ok(Endpoint::Chat),
        "text" => Ok(Endpoint::Text),
        other => Err(PyValueError::new_err(format!(
            "unknown endpoint {other:?}: expected \"chat\" or \"text\""
        ))),
    }
}

/// A client of one provider with its own connection pool (one per LLM and process).
#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct NativeClient {
    pub(crate) inner: Arc<Client<AnyProvider>>,
    /// What `inner` was built from (for a single-attempt twin, see `BatchJobs`). Holds the
    /// key: never printed.
    pub(crate) config: ClientConfig,
    /// The adaptive limiter of `max_concurrency="auto"`, kept across `start` calls so that
    /// what it learned about the provider carries over from one batch to the next.
    adaptive: std::sync::Mutex<Option<Arc<Limiter>>>,
}

#[pymethods]
impl NativeClient {
    #[new]
    #[pyo3(signature = (
        provider,
        base_url,
        *,
        profile = None,
        api_key = None,
        default_headers = None,
        timeout = CLIENT_DEFAULTS.timeout.as_secs_f64(),
        max_retries = CLIENT_DEFAULTS.retry.max_retries,
        backoff_base = CLIENT_DEFAULTS.retry.base_seconds,
        backoff_cap = CLIENT_DEFAULTS.retry.cap_seconds,
        requests_per_minute = None,
        tokens_per_minute = None,
        root_certificate_pem = None,
        pool_size = CLIENT_DEFAULTS.max_concurrency,
        seed = None,
        follow_redirects = true,
        max_response_bytes = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        provider: &str,
        base_url: String,
        profile: Option<&Bound<'_, PyAny>>,
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
        follow_redirects: bool,
        max_response_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let profile = match profile {
            Some(profile) => to_json(profile, "profile")?,
            None => Value::Object(serde_json::Map::new()),
        };
        let provider = AnyProvider::from_spec(provider, &profile).map_err(IntoPyErr::into_pyerr)?;
        let timeout = Duration::try_from_secs_f64(timeout).map_err(|_| {
            PyValueError::new_err(format!(
                "timeout must be a positive number of seconds, got {timeout}"
            ))
        })?;
        let mut config = ClientConfig {
            api_key,
            default_headers: default_headers.unwrap_or_default().into_iter().collect(),
            timeout,
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
            follow_redirects,
            ..ClientConfig::new(base_url)
        };
        if let Some(limit) = max_response_bytes {
            config.max_response_bytes = limit;
        }
        let inner = Client::new(provider, &config).map_err(IntoPyErr::into_pyerr)?;
        Ok(Self {
            inner,
            config,
            adaptive: std::sync::Mutex::default(),
        })
    }

    /// The provider's name (`"openai"`, `"azure"`...).
    #[getter]
    fn provider(&self) -> String {
        self.inner.provider().name().to_owned()
    }

    /// Whether one request can return several generations.
    #[getter]
    fn supports_n(&self) -> bool {
        self.inner.provider().supports_n()
    }

    /// GETs `path` (relative to the base URL) with the client's headers, query parameters
    /// and retries; returns the body as text. For metadata calls (e.g. `models`), not for
    /// generation.
    fn get(&self, py: Python<'_>, path: &str) -> PyResult<String> {
        let client = Arc::clone(&self.inner);
        let body = block_on(
            py,
            async move { client.call(Method::GET, path, None).await },
        )?
        .map_err(IntoPyErr::into_pyerr)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Starts sending `requests` (pairs of endpoint, `"chat"` or `"text"`, and the JSON
    /// body) and returns at once. `max_concurrency`: a positive number, `None` (no limit),
    /// `"auto"` or `"auto:N"` (adaptive, up to N).
    #[pyo3(signature = (requests, *, max_concurrency = None, fail_fast = false))]
    fn start(
        &self,
        py: Python<'_>,
        requests: Vec<(Bound<'_, PyString>, Bound<'_, PyAny>)>,
        max_concurrency: Option<&Bound<'_, PyAny>>,
        fail_fast: bool,
    ) -> PyResult<RequestsHandle> {
        let max_concurrency = concurrency_limit(max_concurrency)?;
        let provider = self.inner.provider();
        // Without a tokens-per-minute limit no request reserves tokens: bodies are written
        // as JSON straight from Python.
        let reserves_tokens = self.config.tokens_per_minute.is_some();
        let mut prepared = Vec::with_capacity(requests.len());
        for (index, (name, body)) in requests.iter().enumerate() {
            let endpoint = endpoint(name.to_str()?)?;
            if !reserves_tokens && let Some(bytes) = json_bytes(body) {
                prepared.push(Request::serialized(endpoint, bytes.into()));
                continue;
            }
            let body = request_json(body, index)?;
            let request = Request::new(provider, endpoint, &body).map_err(IntoPyErr::into_pyerr)?;
            prepared.push(request);
        }
        self.launch(py, prepared, max_concurrency, fail_fast)
    }

    /// Like `start`, for requests to `endpoint` whose bodies are `template` (a dict) with
    /// `key` set to each of `inputs`, `repeat` times each (and, with `seed_key`, a member of
    /// that name set to each of `seeds`, one per request, in order): the template is
    /// written once. `None` (nothing started) when a value cannot be written directly or
    /// the client reserves tokens per request: the caller then uses `start`.
    #[pyo3(signature = (
        endpoint, template, key, inputs, *, repeat = 1, seed_key = None, seeds = None,
        max_concurrency = None, fail_fast = false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn start_templated(
        &self,
        py: Python<'_>,
        endpoint: &str,
        template: &Bound<'_, PyAny>,
        key: &str,
        inputs: &Bound<'_, PyList>,
        repeat: usize,
        seed_key: Option<&str>,
        seeds: Option<Vec<u64>>,
        max_concurrency: Option<&Bound<'_, PyAny>>,
        fail_fast: bool,
    ) -> PyResult<Option<RequestsHandle>> {
        let max_concurrency = concurrency_limit(max_concurrency)?;
        let endpoint = self::endpoint(endpoint)?;
        if self.config.tokens_per_minute.is_some() {
            return Ok(None);
        }
        let seeds = match (seed_key, seeds.as_deref()) {
            (Some(seed_key), Some(seeds)) => Some((seed_key, seeds)),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "seed_key and seeds: give both or neither",
                ));
            }
        };
        let Some(bodies) = templated_bodies(template, key, inputs, repeat, seeds) else {
            return Ok(None);
        };
        let prepared = bodies
            .into_iter()
            .map(|body| Request::serialized(endpoint, body.into()))
            .collect();
        self.launch(py, prepared, max_concurrency, fail_fast)
            .map(Some)
    }
}

impl NativeClient {
    /// Hands `prepared` to the runtime and returns at once.
    fn launch(
        &self,
        py: Python<'_>,
        prepared: Vec<Request>,
        max_concurrency: ConcurrencyLimit,
        fail_fast: bool,
    ) -> PyResult<RequestsHandle> {
        let count = prepared.len();
        let counters = Arc::new(RequestCounters::default());
        let finished = Arc::new(Finished::<Results>::default());
        let runtime = runtime()?;
        let client = Arc::clone(&self.inner);
        let task_counters = Arc::clone(&counters);
        let task_finished = Arc::clone(&finished);
        let limiter = self.limiter(max_concurrency);
        let task = py.detach(|| {
            runtime.spawn(async move {
                let results =
                    run_many_limited(client, prepared, &limiter, fail_fast, task_counters).await;
                task_finished.set(results);
            })
        });
        Ok(RequestsHandle {
            count,
            abort: task.abort_handle(),
            counters,
            finished,
        })
    }

    /// A new limiter for a fixed limit; the client's own adaptive one for `auto`.
    fn limiter(&self, limit: ConcurrencyLimit) -> Arc<Limiter> {
        if !matches!(limit, ConcurrencyLimit::Auto { .. }) {
            return Arc::new(Limiter::new(limit));
        }
        let mut kept = self
            .adaptive
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match kept.as_ref() {
            Some(limiter) if limiter.is_auto_with(limit) => Arc::clone(limiter),
            _ => Arc::clone(kept.insert(Arc::new(Limiter::new(limit)))),
        }
    }
}

/// Online requests being sent. `wait` blocks without the GIL; `results` converts everything
/// once.
#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct RequestsHandle {
    count: usize,
    abort: AbortHandle,
    counters: Arc<RequestCounters>,
    finished: Arc<Finished<Results>>,
}

#[pymethods]
impl RequestsHandle {
    /// Waits until every request is done (`True`) or `timeout` seconds passed (`False`).
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

    /// `(total, done, failed, retried, in_flight, limit)` (`limit`: the concurrency limit
    /// in force, `None` for no limit).
    fn progress(&self) -> (usize, usize, usize, usize, usize, Option<usize>) {
        let (_, done, failed, retried, in_flight) = self.counters.snapshot();
        (
            self.count,
            done,
            failed,
            retried,
            in_flight,
            self.counters.limit(),
        )
    }

    /// One entry per request, in order: a `GenerateOutput` dict, or the exception (an
    /// instance, not raised) for a request that failed.
    fn results<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let guard = self.finished.lock();
        let Some(results) = guard.as_ref() else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the requests are still running; wait() first",
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
