//! Many requests at once: bounded concurrency, one result per request in request order, and
//! either every result (isolate) or the first failure cancelling the rest (fail fast).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::{Client, Request, RetryObserver};
use super::completion::Completion;
use super::error::ApiError;
use super::provider::Provider;

/// Counters of concurrent online requests, read by the Python side about ten times a second.
#[derive(Debug, Default)]
pub struct RequestCounters {
    pub total: AtomicUsize,
    pub done: AtomicUsize,
    pub failed: AtomicUsize,
    pub retried: AtomicUsize,
    pub in_flight: AtomicUsize,
}

impl RequestCounters {
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

    /// Counts one request from start to end around `send`.
    pub async fn track<T, F>(&self, send: F) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let result = send.await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let counter = if result.is_ok() {
            &self.done
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }
}

impl RetryObserver for RequestCounters {
    fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends every request, at most `max_concurrency` at once (`None`: no limit), and returns
/// the results in request order. With `fail_fast`, the first request that fails for good
/// cancels the others (their results are [`ApiError::Cancelled`]).
pub async fn run_many<P: Provider>(
    client: Arc<Client<P>>,
    requests: Vec<Request>,
    max_concurrency: Option<usize>,
    fail_fast: bool,
    counters: Arc<RequestCounters>,
) -> Vec<Result<Completion, ApiError>> {
    let count = requests.len();
    counters.total.store(count, Ordering::Relaxed);
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
    // are collected meanwhile, so that a failure can stop the rest before it starts.
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
                let counters = Arc::clone(&counters);
                tasks.spawn(async move {
                    let _permit = permit;
                    let result = counters
                        .track(client.send(&request, counters.as_ref()))
                        .await;
                    (index, result)
                });
                next = pending.next();
            }
            else => break,
        }
    }
    results
}
