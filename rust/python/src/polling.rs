//! The wait between two polls of offline batch jobs, interruptible within 100 ms.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// How often the wait re-attaches to check for Ctrl-C and for the pipeline's SIGINT marker.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// Set by distilabel's pipeline workers when they receive SIGINT (they do not die on it).
const SIGINT_MARKER: &str = "sigint_handler_called";

/// Sleeps `seconds` with the GIL released. Raises `KeyboardInterrupt` (from the signal
/// handler) on Ctrl-C; returns `True` early if a pipeline worker recorded a SIGINT in the
/// `sigint_handler_called` environment variable, `False` after the full wait.
#[pyfunction]
pub fn wait_between_polls(py: Python<'_>, seconds: f64) -> PyResult<bool> {
    let total = Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX);
    let started = Instant::now();
    loop {
        // Runs pending Python signal handlers: the default one raises KeyboardInterrupt,
        // a pipeline worker's sets the environment variable checked below.
        py.check_signals()?;
        if std::env::var_os(SIGINT_MARKER).is_some() {
            return Ok(true);
        }
        let left = total.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(false);
        }
        py.detach(|| std::thread::sleep(left.min(CHECK_EVERY)));
    }
}
