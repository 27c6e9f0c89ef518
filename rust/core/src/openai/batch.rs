//! A whole batch of requests: bounded concurrency, one result per request in order, and
//! either every result (isolate) or the first failure cancelling the rest (fail fast).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::{OpenAiClient, Request, RetryObserver};
use super::error::ApiError;
use super::response::Completion;

/// Progress counters, read by the Python side about ten times a second.
#[derive(Debug, Default)]
pub struct BatchProgress {
    pub total: AtomicUsize,
    pub done: AtomicUsize,
    pub failed: AtomicUsize,
    pub retried: AtomicUsize,
    pub in_flight: AtomicUsize,
}

impl BatchProgress {
    /// `(total, done, failed, retried, in_flight)`.
    pub fn snapshot(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.total.load(Ordering::Relaxed),
            self.done.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
        )
    }
}

impl RetryObserver for BatchProgress {
    fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends every request, at most `max_concurrency` at once (`None`: no limit), and returns
/// the results in request order. With `fail_fast`, the first request that fails for good
/// cancels the others (their results are [`ApiError::Cancelled`]).
pub async fn run_batch(
    client: Arc<OpenAiClient>,
    requests: Vec<Request>,
    max_concurrency: Option<usize>,
    fail_fast: bool,
    progress: Arc<BatchProgress>,
) -> Vec<Result<Completion, ApiError>> {
    let count = requests.len();
    progress.total.store(count, Ordering::Relaxed);
    let permits = Arc::new(Semaphore::new(
        max_concurrency
            .unwrap_or(Semaphore::MAX_PERMITS)
            .clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut results: Vec<Result<Completion, ApiError>> =
        (0..count).map(|_| Err(ApiError::Cancelled)).collect();
    let mut tasks: JoinSet<(usize, Result<Completion, ApiError>)> = JoinSet::new();
    let mut pending = requests.into_iter().enumerate();
    let mut next = pending.next();
    let mut stopped = false;
    // Requests start in order (a permit is taken before each is spawned), and finished ones
    // are collected meanwhile, so that a failure can stop the batch before the rest starts.
    loop {
        tokio::select! {
            biased;
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((index, result)) = joined else {
                    continue; // a task only ends early when aborted below
                };
                let failed = result.is_err();
                if let Some(slot) = results.get_mut(index) {
                    *slot = result;
                }
                if failed && fail_fast && !stopped {
                    stopped = true;
                    next = None;
                    tasks.abort_all();
                }
            }
            permit = Arc::clone(&permits).acquire_owned(), if next.is_some() => {
                let (Ok(permit), Some((index, request))) = (permit, next.take()) else {
                    break;
                };
                let client = Arc::clone(&client);
                let progress = Arc::clone(&progress);
                tasks.spawn(async move {
                    let _permit = permit;
                    progress.in_flight.fetch_add(1, Ordering::Relaxed);
                    let result = client.send(&request, progress.as_ref()).await;
                    progress.in_flight.fetch_sub(1, Ordering::Relaxed);
                    let counter = if result.is_ok() {
                        &progress.done
                    } else {
                        &progress.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    (index, result)
                });
                next = pending.next();
            }
            else => break,
        }
    }
    results
}
