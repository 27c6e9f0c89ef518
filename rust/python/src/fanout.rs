//! `FanOutScheduler`: the fan-out decisions of the core, called synchronously by the
//! Python worker coroutines (no await, no thread hop, no GIL release per call).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use distilabel_rs_core::adaptive::{ConcurrencyLimit, InvalidConcurrency};
use distilabel_rs_core::fanout::{FailureDecision, Next, Progress, Scheduler, SchedulerConfig};
use distilabel_rs_core::limits::RetryPolicy;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBool;

/// Decides which request each worker runs next, when failures are retried and when the
/// rate limit makes workers wait; counts progress.
#[pyclass(module = "distilabel_rs._core", frozen)]
pub struct FanOutScheduler {
    // The event loop's thread is the only caller, so the lock is never contended; it is
    // there because Python objects may be shared between threads.
    inner: Mutex<Scheduler>,
}

impl FanOutScheduler {
    fn scheduler(&self) -> MutexGuard<'_, Scheduler> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl FanOutScheduler {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        jobs,
        *,
        max_retries = 0,
        backoff_base = 1.0,
        backoff_cap = 60.0,
        requests_per_minute = None,
        seed = None,
        max_concurrency = None,
        previous = None,
    ))]
    fn new(
        jobs: usize,
        max_retries: u32,
        backoff_base: f64,
        backoff_cap: f64,
        requests_per_minute: Option<f64>,
        seed: Option<u64>,
        max_concurrency: Option<&Bound<'_, PyAny>>,
        previous: Option<PyRef<'_, FanOutScheduler>>,
    ) -> PyResult<Self> {
        let config = SchedulerConfig {
            jobs,
            retry: RetryPolicy {
                max_retries,
                base_seconds: backoff_base,
                cap_seconds: backoff_cap,
            },
            requests_per_minute,
            seed: seed.unwrap_or_else(time_seed),
            concurrency: concurrency_limit(max_concurrency)?,
        };
        let mut scheduler = Scheduler::new(&config);
        if let Some(previous) = previous {
            scheduler.continue_from(&previous.scheduler());
        }
        Ok(Self {
            inner: Mutex::new(scheduler),
        })
    }

    /// The job to run (an `int`), seconds to wait before asking again (a `float`), or
    /// `None` when this worker has nothing left to do.
    fn next_job<'py>(&self, py: Python<'py>, now: f64) -> PyResult<Option<Bound<'py, PyAny>>> {
        let next = self.scheduler().next_job(now);
        next_to_python(py, next)
    }

    /// Records a success; with `now`, its latency steers an adaptive limit.
    #[pyo3(signature = (job, now = None))]
    fn succeeded(&self, job: usize, now: Option<f64>) {
        self.scheduler().succeeded(job, now);
    }

    /// How many workers should be running (`auto`: follows the adaptive limit).
    fn workers_wanted(&self) -> usize {
        self.scheduler().workers_wanted()
    }

    /// The concurrency limit in force (`None`: no limit).
    #[getter]
    fn limit(&self) -> Option<usize> {
        self.scheduler().progress().limit
    }

    /// `succeeded(job)` then `next_job(now)`, in one call (the per-request hot path).
    fn succeeded_then_next<'py>(
        &self,
        py: Python<'py>,
        job: usize,
        now: f64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let next = {
            let mut scheduler = self.scheduler();
            scheduler.succeeded(job, Some(now));
            scheduler.next_job(now)
        };
        next_to_python(py, next)
    }

    /// Seconds before the job is retried, or `None` if it has failed for good.
    #[pyo3(signature = (job, retryable, retry_after, now))]
    fn failed(
        &self,
        job: usize,
        retryable: bool,
        retry_after: Option<f64>,
        now: f64,
    ) -> Option<f64> {
        match self.scheduler().failed(job, retryable, retry_after, now) {
            FailureDecision::RetryAfter(seconds) => Some(seconds),
            FailureDecision::GiveUp => None,
        }
    }

    fn abort(&self) {
        self.scheduler().abort();
    }

    /// `(total, done, failed, retried, in_flight, limit)` (`limit`: the concurrency limit
    /// in force, `None` for no limit).
    fn progress(&self) -> (usize, usize, usize, usize, usize, Option<usize>) {
        let Progress {
            total,
            done,
            failed,
            retried,
            in_flight,
            limit,
        } = self.scheduler().progress();
        (total, done, failed, retried, in_flight, limit)
    }

    #[getter]
    fn peak_in_flight(&self) -> usize {
        self.scheduler().peak_in_flight()
    }
}

/// A `max_concurrency` from Python: a positive `int`, `None` (no limit), `"auto"` or
/// `"auto:N"` (adaptive, up to N).
pub fn concurrency_limit(value: Option<&Bound<'_, PyAny>>) -> PyResult<ConcurrencyLimit> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(ConcurrencyLimit::Unbounded);
    };
    if let Ok(text) = value.extract::<String>() {
        return ConcurrencyLimit::parse(&text).map_err(|e| PyValueError::new_err(e.to_string()));
    }
    match value.extract::<usize>() {
        Ok(limit) if limit > 0 && !value.is_instance_of::<PyBool>() => {
            Ok(ConcurrencyLimit::Fixed(limit))
        }
        _ => Err(PyValueError::new_err(format!(
            "{}",
            InvalidConcurrency {
                value: value.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
            }
        ))),
    }
}

fn next_to_python(py: Python<'_>, next: Next) -> PyResult<Option<Bound<'_, PyAny>>> {
    Ok(match next {
        Next::Run(job) => Some(job.into_pyobject(py)?.into_any()),
        Next::Wait(seconds) => Some(seconds.into_pyobject(py)?.into_any()),
        Next::Done => None,
    })
}

fn time_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    // Truncation is fine: any bits make a seed.
    #[allow(clippy::cast_possible_truncation)]
    let low = nanos as u64;
    low ^ u64::from(std::process::id()).rotate_left(32)
}
