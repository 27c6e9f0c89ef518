//! `MockServer`: the project's local server of the LLM APIs (crate `distilabel-rs-mock`),
//! for tests, benchmarks and `distilabel-rs generate --mock`. Serves on this process's
//! runtime until stopped. Built with the default feature `mock`.

use std::time::Duration;

use distilabel_rs_mock::{CapacityModel, MockServer as Server};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::task::runtime;

#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct MockServer {
    inner: Server,
}

#[pymethods]
impl MockServer {
    /// With `tls_certificate_pem` and `tls_key_pem`, serves HTTPS. With `capacity` (and
    /// `base_latency_ms`), generation requests of every API are served at most `capacity`
    /// at once, each taking `base_latency_ms`, up to `capacity` more queue, and beyond that
    /// they get 429 with a Retry-After of one base latency; `base_latency_ms` alone delays
    /// every generation request without limiting them.
    #[new]
    #[pyo3(signature = (
        *,
        record = false,
        tls_certificate_pem = None,
        tls_key_pem = None,
        capacity = None,
        base_latency_ms = 0.0,
    ))]
    fn new(
        py: Python<'_>,
        record: bool,
        tls_certificate_pem: Option<Vec<u8>>,
        tls_key_pem: Option<Vec<u8>>,
        capacity: Option<usize>,
        base_latency_ms: f64,
    ) -> PyResult<Self> {
        if capacity == Some(0) {
            return Err(PyValueError::new_err(
                "capacity must be a positive number of requests, or None for no limit",
            ));
        }
        let base_latency = Duration::try_from_secs_f64(base_latency_ms / 1000.0).map_err(|_| {
            PyValueError::new_err(format!(
                "base_latency_ms must be a non-negative number of milliseconds, got \
                 {base_latency_ms}"
            ))
        })?;
        let model = (capacity.is_some() || !base_latency.is_zero()).then_some(CapacityModel {
            capacity,
            base_latency,
        });
        let runtime = runtime()?;
        let tls = tls_certificate_pem.as_deref().zip(tls_key_pem.as_deref());
        let inner = py
            .detach(|| runtime.block_on(Server::start_with_options(record, tls, model)))
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the mock server: {e}")))?;
        Ok(Self { inner })
    }

    #[getter]
    fn port(&self) -> u16 {
        self.inner.address().port()
    }

    /// `http(s)://127.0.0.1:<port>`
    #[getter]
    fn origin(&self) -> String {
        self.inner.origin()
    }

    /// `http(s)://127.0.0.1:<port>/v1`
    #[getter]
    fn base_url(&self) -> String {
        format!("{}/v1", self.inner.origin())
    }

    #[getter]
    fn requests(&self) -> usize {
        self.inner.requests()
    }

    #[getter]
    fn peak_in_flight(&self) -> usize {
        self.inner.peak_in_flight()
    }

    /// Generation requests refused with 429 by the capacity model so far.
    #[getter]
    fn rejected(&self) -> usize {
        self.inner.rejected()
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

    /// Each request as a dict (`method`, `path`, `query`, `headers` as a list of pairs with
    /// lower-case names, `body`), when started with `record`.
    fn recorded_requests<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.inner
            .recorded()
            .into_iter()
            .map(|r| {
                let entry = PyDict::new(py);
                entry.set_item("method", r.method)?;
                entry.set_item("path", r.path)?;
                entry.set_item("query", r.query)?;
                entry.set_item("headers", r.headers)?;
                entry.set_item("body", r.body)?;
                Ok(entry)
            })
            .collect()
    }

    fn stop(&self) {
        self.inner.stop();
    }
}
