//! Work running on tokio, seen from Python: the per-process runtime, and the outcome handed
//! to Python threads through a condition variable (tokio threads never take the GIL).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use distilabel_rs_core::runtime::runtime as process_runtime;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// This process's tokio runtime (built on first use; see `distilabel_rs_core::runtime`).
pub fn runtime() -> PyResult<&'static Runtime> {
    process_runtime().map_err(|e| PyRuntimeError::new_err(format!("cannot start tokio: {e}")))
}

/// Runs `future` on this process's runtime with the GIL released.
pub fn block_on<F: std::future::Future + Send>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F::Output: Send,
{
    let runtime = runtime()?;
    Ok(py.detach(|| runtime.block_on(future)))
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
