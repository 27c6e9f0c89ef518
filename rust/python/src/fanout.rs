//! `FanOutScheduler`: the fan-out decisions of the core, called synchronously by the
//! Python worker coroutines (no await, no thread hop, no GIL release per call).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use distilabel_rs_core::fanout::{FailureDecision, Next, Progress, Scheduler, SchedulerConfig};
use distilabel_rs_core::limits::RetryPolicy;
use pyo3::prelude::*;

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
    #[pyo3(signature = (
        jobs,
        *,
        max_retries = 0,
        backoff_base = 1.0,
        backoff_cap = 60.0,
        requests_per_minute = None,
        seed = None,
    ))]
    fn new(
        jobs: usize,
        max_retries: u32,
        backoff_base: f64,
        backoff_cap: f64,
        requests_per_minute: Option<f64>,
        seed: Option<u64>,
    ) -> Self {
        let config = SchedulerConfig {
            jobs,
            retry: RetryPolicy {
                max_retries,
                base_seconds: backoff_base,
                cap_seconds: backoff_cap,
            },
            requests_per_minute,
            seed: seed.unwrap_or_else(time_seed),
        };
        Self {
            inner: Mutex::new(Scheduler::new(&config)),
        }
    }

    /// The job to run (an `int`), seconds to wait before asking again (a `float`), or
    /// `None` when this worker has nothing left to do.
    fn next_job<'py>(&self, py: Python<'py>, now: f64) -> PyResult<Option<Bound<'py, PyAny>>> {
        let next = self.scheduler().next_job(now);
        next_to_python(py, next)
    }

    fn succeeded(&self, job: usize) {
        self.scheduler().succeeded(job);
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
            scheduler.succeeded(job);
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

    /// `(total, done, failed, retried, in_flight)`.
    fn progress(&self) -> (usize, usize, usize, usize, usize) {
        let Progress {
            total,
            done,
            failed,
            retried,
            in_flight,
        } = self.scheduler().progress();
        (total, done, failed, retried, in_flight)
    }

    #[getter]
    fn peak_in_flight(&self) -> usize {
        self.scheduler().peak_in_flight()
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
