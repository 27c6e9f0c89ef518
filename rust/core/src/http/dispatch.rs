//! Many requests at once: bounded (or adaptive) concurrency, one result per request in
//! request order, and either every result (isolate) or the first failure cancelling the
//! rest (fail fast).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{Client, Request, RetryObserver};
use super::completion::Completion;
use super::error::ApiError;
use super::provider::Provider;
use crate::adaptive::{AdaptiveLimit, ConcurrencyLimit, Ticket};

/// Counters of concurrent online requests, read by the Python side about ten times a second.
#[derive(Debug, Default)]
pub struct RequestCounters {
    pub total: AtomicUsize,
    pub done: AtomicUsize,
    pub failed: AtomicUsize,
    pub retried: AtomicUsize,
    pub in_flight: AtomicUsize,
    /// The concurrency limit in force (0 until a [`Limiter`] reports it: no limit).
    pub limit: AtomicUsize,
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

    /// The concurrency limit in force, `None` for no limit.
    pub fn limit(&self) -> Option<usize> {
        Some(self.limit.load(Ordering::Relaxed)).filter(|limit| *limit > 0)
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

/// Whether a failure says the provider is overloaded (the limit should come down): rate
/// limits, overload and unavailability statuses, timeouts, broken connections, and any
/// failure carrying a retry-after hint.
pub fn is_overload(error: &ApiError) -> bool {
    match error {
        ApiError::Timeout(_) | ApiError::Connection(_) => true,
        ApiError::Status {
            status,
            retry_after,
            ..
        } => retry_after.is_some() || matches!(status, 408 | 429 | 502 | 503 | 504 | 529),
        _ => false,
    }
}

/// How many requests run at once: a semaphore for a fixed limit, the adaptive controller
/// ([`AdaptiveLimit`]) for `auto`. Shared by [`run_many`] and the `distilabel-rs generate`
/// job: `limiter.acquire().await` before a request, then `permit.finish(&result)` (or drop
/// the permit) after it; pass the permit as the request's [`RetryObserver`] so that retries
/// count as overload signals. An adaptive limiter kept across calls (one per client)
/// remembers what it learned about the provider.
#[derive(Debug)]
pub struct Limiter {
    kind: LimiterKind,
}

#[derive(Debug)]
enum LimiterKind {
    /// The semaphore and its size (`usize::MAX`: no limit).
    Fixed(Arc<Semaphore>, usize),
    Adaptive(Arc<Adaptive>),
}

#[derive(Debug)]
struct Adaptive {
    controller: Mutex<AdaptiveLimit>,
    /// Woken when a request ends (there may be room).
    room: Notify,
    started: Instant,
    ceiling: usize,
}

impl Adaptive {
    fn controller(&self) -> MutexGuard<'_, AdaptiveLimit> {
        self.controller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl Limiter {
    /// A limiter for `limit`.
    pub fn new(limit: ConcurrencyLimit) -> Self {
        let kind = match limit {
            ConcurrencyLimit::Auto { ceiling } => LimiterKind::Adaptive(Arc::new(Adaptive {
                controller: Mutex::new(AdaptiveLimit::new(ceiling)),
                room: Notify::new(),
                started: Instant::now(),
                ceiling,
            })),
            fixed => {
                let size = fixed
                    .most()
                    .unwrap_or(Semaphore::MAX_PERMITS)
                    .clamp(1, Semaphore::MAX_PERMITS);
                let shown = fixed.most().unwrap_or(usize::MAX);
                LimiterKind::Fixed(Arc::new(Semaphore::new(size)), shown)
            }
        };
        Self { kind }
    }

    /// Whether this limiter is adaptive with this ceiling (so that it can be reused for
    /// `limit`).
    pub fn is_auto_with(&self, limit: ConcurrencyLimit) -> bool {
        match (&self.kind, limit) {
            (LimiterKind::Adaptive(adaptive), ConcurrencyLimit::Auto { ceiling }) => {
                adaptive.ceiling == ceiling
            }
            _ => false,
        }
    }

    /// The limit in force now (`None`: no limit).
    pub fn limit(&self) -> Option<usize> {
        match &self.kind {
            LimiterKind::Fixed(_, usize::MAX) => None,
            LimiterKind::Fixed(_, size) => Some(*size),
            LimiterKind::Adaptive(adaptive) => Some(adaptive.controller().limit()),
        }
    }

    /// Waits until one more request may run.
    pub async fn acquire(&self) -> Permit {
        match &self.kind {
            LimiterKind::Fixed(semaphore, _) => {
                // The semaphore is never closed, so this cannot fail; a closed one would
                // mean no limit at all.
                let permit = Arc::clone(semaphore).acquire_owned().await.ok();
                Permit {
                    inner: PermitKind::Fixed { _held: permit },
                    counters: None,
                }
            }
            LimiterKind::Adaptive(adaptive) => loop {
                let room = adaptive.room.notified();
                tokio::pin!(room);
                // Registered before checking, so that a request ending in between wakes us.
                room.as_mut().enable();
                {
                    let mut controller = adaptive.controller();
                    if controller.has_room() {
                        let ticket = controller.on_start(adaptive.now());
                        return Permit {
                            inner: PermitKind::Adaptive {
                                shared: Arc::clone(adaptive),
                                ticket: Mutex::new(Some(ticket)),
                            },
                            counters: None,
                        };
                    }
                }
                room.await;
            },
        }
    }
}

/// Leave to run one request; its outcome steers an adaptive limit.
#[derive(Debug)]
pub struct Permit {
    inner: PermitKind,
    counters: Option<Arc<RequestCounters>>,
}

#[derive(Debug)]
enum PermitKind {
    /// Holds the semaphore's permit until dropped.
    Fixed { _held: Option<OwnedSemaphorePermit> },
    Adaptive {
        shared: Arc<Adaptive>,
        /// `None` once finished. (A lock, because retries are reported through `&self`.)
        ticket: Mutex<Option<Ticket>>,
    },
}

impl Permit {
    /// Keeps `counters.limit` up to date with the limit in force.
    #[must_use]
    pub fn reporting_to(mut self, counters: &Arc<RequestCounters>) -> Self {
        let limit = match &self.inner {
            PermitKind::Fixed { .. } => return self,
            PermitKind::Adaptive { shared, .. } => shared.controller().limit(),
        };
        counters.limit.store(limit, Ordering::Relaxed);
        self.counters = Some(Arc::clone(counters));
        self
    }

    /// Reports how the request ended (a success's latency, an overload) and frees the slot.
    pub fn finish<T>(self, result: &Result<T, ApiError>) {
        self.end(Some(result.as_ref().map(|_| ()).map_err(is_overload)));
    }

    /// `Some(Ok)`: success; `Some(Err(true))`: overload; otherwise neutral.
    fn end(&self, outcome: Option<Result<(), bool>>) {
        let PermitKind::Adaptive { shared, ticket } = &self.inner else {
            return;
        };
        let Some(ticket) = ticket.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        let now = shared.now();
        let limit = {
            let mut controller = shared.controller();
            match outcome {
                Some(Ok(())) => controller.on_success(ticket, now),
                Some(Err(true)) => controller.on_overload(ticket, now),
                Some(Err(false)) | None => controller.on_other(ticket),
            }
            controller.limit()
        };
        if let Some(counters) = &self.counters {
            counters.limit.store(limit, Ordering::Relaxed);
        }
        shared.room.notify_waiters();
    }
}

impl RetryObserver for Permit {
    /// An attempt failed and will be retried: an overload signal; the retry starts anew.
    fn retried(&self) {
        let PermitKind::Adaptive { shared, ticket } = &self.inner else {
            return;
        };
        let mut ticket = ticket.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = ticket.take() {
            let now = shared.now();
            let mut controller = shared.controller();
            *ticket = Some(controller.on_retry(current, now));
            if let Some(counters) = &self.counters {
                counters.limit.store(controller.limit(), Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // Not finished (cancelled, aborted): the slot is freed without a signal.
        self.end(None);
    }
}

/// Both the progress counters and the permit hear about each retry: the observer to pass
/// to [`Client::send`] for a request sent under a [`Permit`].
pub struct Observers<'a>(pub &'a RequestCounters, pub &'a Permit);

impl RetryObserver for Observers<'_> {
    fn retried(&self) {
        self.0.retried();
        self.1.retried();
    }
}

/// Sends every request, at most `limit` at once (or as many as the adaptive limit allows),
/// and returns the results in request order. With `fail_fast`, the first request that fails
/// for good cancels the others (their results are [`ApiError::Cancelled`]).
/// (`limit`: a [`ConcurrencyLimit`], or `Option<usize>` with `None` for no limit.)
pub async fn run_many<P: Provider>(
    client: Arc<Client<P>>,
    requests: Vec<Request>,
    limit: impl Into<ConcurrencyLimit>,
    fail_fast: bool,
    counters: Arc<RequestCounters>,
) -> Vec<Result<Completion, ApiError>> {
    let limiter = Limiter::new(limit.into());
    run_many_limited(client, requests, &limiter, fail_fast, counters).await
}

/// [`run_many`] within `limiter` (an adaptive one may be shared by successive calls).
pub async fn run_many_limited<P: Provider>(
    client: Arc<Client<P>>,
    requests: Vec<Request>,
    limiter: &Limiter,
    fail_fast: bool,
    counters: Arc<RequestCounters>,
) -> Vec<Result<Completion, ApiError>> {
    let count = requests.len();
    counters.total.store(count, Ordering::Relaxed);
    counters
        .limit
        .store(limiter.limit().unwrap_or(0), Ordering::Relaxed);
    match &limiter.kind {
        LimiterKind::Fixed(_, size) => {
            run_on_workers(client, requests, (*size).max(1), fail_fast, counters).await
        }
        LimiterKind::Adaptive(_) => {
            run_spawning(client, requests, limiter, fail_fast, counters).await
        }
    }
}

/// What the workers of [`run_on_workers`] share: the requests, the next one to take, and
/// one slot per result (written as each request ends, so that aborting the workers loses
/// no finished result).
struct Work {
    requests: Vec<Request>,
    next: AtomicUsize,
    stopped: AtomicBool,
    results: Mutex<Vec<Result<Completion, ApiError>>>,
}

/// A fixed limit: `limit` tasks each send one request after another, taking the next in
/// order. (A task spawned, joined and woken per request, a permit taken from a semaphore
/// and a dispatcher woken per result was most of this module's cost per request.) With
/// `fail_fast`, the worker whose request fails stops the others from taking more, and the
/// requests still in flight are aborted.
async fn run_on_workers<P: Provider>(
    client: Arc<Client<P>>,
    requests: Vec<Request>,
    limit: usize,
    fail_fast: bool,
    counters: Arc<RequestCounters>,
) -> Vec<Result<Completion, ApiError>> {
    let count = requests.len();
    let work = Arc::new(Work {
        requests,
        next: AtomicUsize::new(0),
        stopped: AtomicBool::new(false),
        results: Mutex::new((0..count).map(|_| Err(ApiError::Cancelled)).collect()),
    });
    let mut workers = JoinSet::new();
    for _ in 0..limit.min(count) {
        let (client, counters, work) = (
            Arc::clone(&client),
            Arc::clone(&counters),
            Arc::clone(&work),
        );
        workers.spawn(async move {
            while !work.stopped.load(Ordering::Relaxed) {
                let index = work.next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = work.requests.get(index) else {
                    return false;
                };
                let result = counters
                    .track(client.send(request, counters.as_ref()))
                    .await;
                let failed = result.is_err();
                if let Some(slot) = lock(&work.results).get_mut(index) {
                    *slot = result;
                }
                if failed && fail_fast {
                    work.stopped.store(true, Ordering::Relaxed);
                    return true;
                }
            }
            false
        });
    }
    while let Some(joined) = workers.join_next().await {
        if matches!(joined, Ok(true)) {
            workers.abort_all();
        }
    }
    // Every worker has ended (and dropped its share), so the results are ours alone.
    std::mem::take(&mut *lock(&work.results))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An adaptive limit: a task per request, spawned when the controller has room.
async fn run_spawning<P: Provider>(
    client: Arc<Client<P>>,
    requests: Vec<Request>,
    limiter: &Limiter,
    fail_fast: bool,
    counters: Arc<RequestCounters>,
) -> Vec<Result<Completion, ApiError>> {
    let count = requests.len();
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
            permit = limiter.acquire(), if next.is_some() => {
                let Some((index, request)) = next.take() else {
                    break;
                };
                let client = Arc::clone(&client);
                let counters = Arc::clone(&counters);
                let permit = permit.reporting_to(&counters);
                tasks.spawn(async move {
                    let result = counters
                        .track(client.send(&request, &Observers(counters.as_ref(), &permit)))
                        .await;
                    permit.finish(&result);
                    (index, result)
                });
                next = pending.next();
            }
            else => break,
        }
    }
    results
}
