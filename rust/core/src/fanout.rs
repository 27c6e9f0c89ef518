//! Decisions of the bounded fan-out: which request runs next, when a failed one is retried,
//! when the rate limit says wait, and the progress counters.
//!
//! The requests themselves run elsewhere (Python coroutines on the caller's event loop, one
//! pool of workers per `generate()`); each worker asks [`Scheduler::next_job`] what to do and
//! reports back with [`Scheduler::succeeded`] or [`Scheduler::failed`]. Every call is a few
//! hundred nanoseconds of bookkeeping, so the workers never wait on the scheduler. Time is
//! passed in by the caller (seconds on any monotonic clock), which keeps the scheduler
//! deterministic under test.
//!
//! With a fixed limit, the caller runs that many workers. With `max_concurrency="auto"`
//! ([`ConcurrencyLimit::Auto`]) the scheduler runs the adaptive controller
//! ([`AdaptiveLimit`]): a worker asking for work while the limit is reached gets
//! [`Next::Done`] and ends, and [`Scheduler::workers_wanted`] says how many workers the
//! caller should have running (it starts more when the limit grows).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::adaptive::{AdaptiveLimit, ConcurrencyLimit, Ticket};
use crate::limits::{Jitter, RetryPolicy, TokenBucket};

/// What a worker does next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Run the request with this job index.
    Run(usize),
    /// Nothing can run yet (rate limit, or only retries that are not due): ask again after
    /// this many seconds.
    Wait(f64),
    /// No work left for this worker.
    Done,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    pub jobs: usize,
    pub retry: RetryPolicy,
    /// Requests per minute; `None` is unlimited.
    pub requests_per_minute: Option<f64>,
    /// Seed of the jitter, so that tests can predict delays.
    pub seed: u64,
    /// How many jobs run at once (the caller runs the workers of a fixed limit).
    pub concurrency: ConcurrencyLimit,
}

/// Counters for progress reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub retried: usize,
    pub in_flight: usize,
    /// The concurrency limit in force (`None`: no limit).
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailureDecision {
    /// Run the job again, not before this many seconds from now.
    RetryAfter(f64),
    /// The job has failed for good.
    GiveUp,
}

/// A retry due at `due` (seconds); ordered by due time, then job index.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DueRetry {
    due: f64,
    job: usize,
}

impl Eq for DueRetry {}

impl PartialOrd for DueRetry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DueRetry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.due
            .total_cmp(&other.due)
            .then(self.job.cmp(&other.job))
    }
}

#[derive(Debug, Clone)]
pub struct Scheduler {
    retry: RetryPolicy,
    next_fresh: usize,
    jobs: usize,
    retries_due: BinaryHeap<Reverse<DueRetry>>,
    attempts: Vec<u32>,
    limiter: Option<TokenBucket>,
    jitter: Jitter,
    aborted: bool,
    progress: Progress,
    peak_in_flight: usize,
    /// `auto`: the controller, and the ticket of each running job (by job index).
    adaptive: Option<Box<Adaptive>>,
}

#[derive(Debug, Clone)]
struct Adaptive {
    limit: AdaptiveLimit,
    tickets: Vec<Option<Ticket>>,
}

impl Scheduler {
    pub fn new(config: &SchedulerConfig) -> Self {
        let adaptive = match config.concurrency {
            ConcurrencyLimit::Auto { ceiling } => Some(Box::new(Adaptive {
                limit: AdaptiveLimit::new(ceiling),
                tickets: vec![None; config.jobs],
            })),
            _ => None,
        };
        let limit = match &adaptive {
            Some(adaptive) => Some(adaptive.limit.limit()),
            None => config.concurrency.most(),
        };
        Self {
            retry: config.retry,
            next_fresh: 0,
            jobs: config.jobs,
            retries_due: BinaryHeap::new(),
            attempts: Vec::new(),
            limiter: config
                .requests_per_minute
                .filter(|rpm| *rpm > 0.0)
                .map(TokenBucket::per_minute),
            jitter: Jitter::new(config.seed),
            aborted: false,
            progress: Progress {
                total: config.jobs,
                limit,
                ..Progress::default()
            },
            peak_in_flight: 0,
            adaptive,
        }
    }

    /// The next thing a worker should do at time `now`. Retries that are due go first, then
    /// fresh jobs in order.
    pub fn next_job(&mut self, now: f64) -> Next {
        if self.aborted {
            return Next::Done;
        }
        let due_retry = self
            .retries_due
            .peek()
            .map(|Reverse(retry)| *retry)
            .filter(|retry| retry.due <= now);
        let job = match due_retry {
            Some(retry) => retry.job,
            None if self.next_fresh < self.jobs => self.next_fresh,
            None => {
                return match self.retries_due.peek() {
                    Some(Reverse(retry)) => Next::Wait(retry.due - now),
                    None => Next::Done,
                };
            }
        };
        if let Some(adaptive) = &self.adaptive
            && !adaptive.limit.has_room()
        {
            // The limit is reached: this worker ends (another one holds a job, and asks
            // for more workers when the limit grows).
            return Next::Done;
        }
        if let Some(limiter) = &mut self.limiter
            && let Err(wait) = limiter.take(now)
        {
            return Next::Wait(wait);
        }
        if let Some(adaptive) = &mut self.adaptive
            && let Some(slot) = adaptive.tickets.get_mut(job)
        {
            *slot = Some(adaptive.limit.on_start(now));
        }
        if due_retry.is_some() {
            self.retries_due.pop();
        } else {
            self.next_fresh += 1;
        }
        self.progress.in_flight += 1;
        self.peak_in_flight = self.peak_in_flight.max(self.progress.in_flight);
        Next::Run(job)
    }

    /// Records that `job` succeeded at `now` (`None`: a time not known, no latency sample).
    pub fn succeeded(&mut self, job: usize, now: Option<f64>) {
        self.progress.in_flight = self.progress.in_flight.saturating_sub(1);
        self.progress.done += 1;
        if let Some(ticket) = self.take_ticket(job)
            && let Some(adaptive) = &mut self.adaptive
        {
            match now {
                Some(now) => adaptive.limit.on_success(ticket, now),
                None => adaptive.limit.on_other(ticket),
            }
            self.progress.limit = Some(adaptive.limit.limit());
        }
    }

    /// Starts from what the adaptive limit of `previous` (an earlier fan-out to the same
    /// provider, with the same ceiling) learned, instead of from scratch.
    pub fn continue_from(&mut self, previous: &Scheduler) {
        if let (Some(adaptive), Some(earlier)) = (&mut self.adaptive, &previous.adaptive)
            && adaptive.limit.ceiling() == earlier.limit.ceiling()
        {
            adaptive.limit = earlier.limit.resumed();
            self.progress.limit = Some(adaptive.limit.limit());
        }
    }

    /// How many workers should be running (the caller starts the missing ones): with
    /// `auto`, the limit, or fewer when less work is left; with a fixed limit, that limit.
    pub fn workers_wanted(&self) -> usize {
        let left = self.jobs - self.next_fresh + self.retries_due.len() + self.progress.in_flight;
        let limit = match &self.adaptive {
            Some(adaptive) => adaptive.limit.limit(),
            None => self.progress.limit.unwrap_or(usize::MAX),
        };
        if self.aborted { 0 } else { limit.min(left) }
    }

    fn take_ticket(&mut self, job: usize) -> Option<Ticket> {
        self.adaptive
            .as_mut()
            .and_then(|adaptive| adaptive.tickets.get_mut(job))
            .and_then(Option::take)
    }

    /// Records a failed attempt of `job`. A `retryable` failure is retried while retries
    /// remain: after `retry_after` seconds when the failure said so, else after the jittered
    /// backoff.
    pub fn failed(
        &mut self,
        job: usize,
        retryable: bool,
        retry_after: Option<f64>,
        now: f64,
    ) -> FailureDecision {
        self.progress.in_flight = self.progress.in_flight.saturating_sub(1);
        if let Some(ticket) = self.take_ticket(job)
            && let Some(adaptive) = &mut self.adaptive
        {
            // A retryable failure (rate limit, timeout, overload...) or a retry-after hint
            // says the provider has too much; anything else says nothing about load.
            if retryable || retry_after.is_some() {
                adaptive.limit.on_overload(ticket, now);
            } else {
                adaptive.limit.on_other(ticket);
            }
            self.progress.limit = Some(adaptive.limit.limit());
        }
        let attempts_so_far = self.attempts_of(job);
        if self.aborted || !retryable || attempts_so_far >= self.retry.max_retries {
            self.progress.failed += 1;
            return FailureDecision::GiveUp;
        }
        let delay = match retry_after {
            Some(hint) if hint.is_finite() => hint.max(0.0),
            _ => self.backoff(attempts_so_far),
        };
        self.record_attempt(job);
        self.progress.retried += 1;
        self.retries_due.push(Reverse(DueRetry {
            due: now + delay,
            job,
        }));
        FailureDecision::RetryAfter(delay)
    }

    /// Stops handing out work (the caller is cancelling the whole fan-out).
    pub fn abort(&mut self) {
        self.aborted = true;
    }

    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// The most requests that were ever running at once.
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight
    }

    fn backoff(&mut self, retry_number: u32) -> f64 {
        self.retry.backoff(retry_number, &mut self.jitter)
    }

    fn attempts_of(&self, job: usize) -> u32 {
        self.attempts.get(job).copied().unwrap_or(0)
    }

    fn record_attempt(&mut self, job: usize) {
        // Retries are rare: grow the per-job counters only up to the jobs that failed.
        if self.attempts.len() <= job {
            self.attempts.resize(job + 1, 0);
        }
        self.attempts[job] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(jobs: usize) -> SchedulerConfig {
        SchedulerConfig {
            jobs,
            retry: RetryPolicy {
                max_retries: 2,
                base_seconds: 1.0,
                cap_seconds: 3.0,
            },
            requests_per_minute: None,
            seed: 7,
            concurrency: ConcurrencyLimit::Fixed(8),
        }
    }

    #[test]
    fn jobs_come_in_order_then_done() {
        let mut s = Scheduler::new(&config(3));
        assert_eq!(s.next_job(0.0), Next::Run(0));
        assert_eq!(s.next_job(0.0), Next::Run(1));
        assert_eq!(s.next_job(0.0), Next::Run(2));
        assert_eq!(s.next_job(0.0), Next::Done);
        assert_eq!(s.progress().in_flight, 3);
        s.succeeded(0, Some(1.0));
        assert_eq!(s.progress().done, 1);
        assert_eq!(s.progress().limit, Some(8));
        assert_eq!(s.peak_in_flight(), 3);
    }

    #[test]
    fn retryable_failures_back_off_with_jitter_then_give_up() {
        let mut s = Scheduler::new(&config(1));
        assert_eq!(s.next_job(0.0), Next::Run(0));
        let FailureDecision::RetryAfter(first) = s.failed(0, true, None, 10.0) else {
            panic!("first failure is retried");
        };
        assert!((0.0..1.0).contains(&first), "{first}");
        // Not due yet: wait until it is.
        let Next::Wait(wait) = s.next_job(10.0) else {
            panic!("the retry is not due");
        };
        assert!((wait - first).abs() < 1e-9);
        assert_eq!(s.next_job(10.0 + first), Next::Run(0));
        let FailureDecision::RetryAfter(second) = s.failed(0, true, None, 20.0) else {
            panic!("second failure is retried");
        };
        assert!((0.0..2.0).contains(&second), "{second}");
        assert_eq!(s.next_job(30.0), Next::Run(0));
        assert_eq!(s.failed(0, true, None, 30.0), FailureDecision::GiveUp);
        assert_eq!(s.next_job(30.0), Next::Done);
        let p = s.progress();
        assert_eq!((p.retried, p.failed, p.in_flight), (2, 1, 0));
    }

    #[test]
    fn backoff_is_capped() {
        let mut s = Scheduler::new(&SchedulerConfig {
            retry: RetryPolicy {
                max_retries: 50,
                base_seconds: 1.0,
                cap_seconds: 3.0,
            },
            ..config(1)
        });
        for attempt in 0..40 {
            assert_eq!(s.next_job(f64::from(attempt) * 100.0), Next::Run(0));
            match s.failed(0, true, None, f64::from(attempt) * 100.0) {
                FailureDecision::RetryAfter(d) => assert!((0.0..3.0).contains(&d)),
                FailureDecision::GiveUp => panic!("retries remain"),
            }
        }
    }

    #[test]
    fn retry_after_hint_is_honoured_and_non_retryable_gives_up() {
        let mut s = Scheduler::new(&config(2));
        assert_eq!(s.next_job(0.0), Next::Run(0));
        assert_eq!(
            s.failed(0, true, Some(4.5), 1.0),
            FailureDecision::RetryAfter(4.5)
        );
        assert_eq!(s.next_job(1.0), Next::Run(1));
        assert_eq!(s.failed(1, false, Some(1.0), 1.0), FailureDecision::GiveUp);
        assert_eq!(s.next_job(2.0), Next::Wait(3.5));
        assert_eq!(s.next_job(5.5), Next::Run(0));
    }

    #[test]
    fn rate_limit_spaces_requests() {
        let mut s = Scheduler::new(&SchedulerConfig {
            requests_per_minute: Some(120.0),
            ..config(10)
        });
        // Two per second, burst of two.
        assert_eq!(s.next_job(0.0), Next::Run(0));
        assert_eq!(s.next_job(0.0), Next::Run(1));
        assert_eq!(s.next_job(0.0), Next::Wait(0.5));
        assert_eq!(s.next_job(0.5), Next::Run(2));
        let mut started = 3;
        let mut now = 0.5;
        while now < 10.5 {
            now += 0.01;
            if let Next::Run(_) = s.next_job(now) {
                started += 1;
            }
        }
        assert_eq!(started, 10);
        let mut s = Scheduler::new(&SchedulerConfig {
            requests_per_minute: Some(60.0),
            ..config(100)
        });
        let runs = (0..1000)
            .filter(|i| matches!(s.next_job(f64::from(*i) * 0.01), Next::Run(_)))
            .count();
        // 10 s at one per second, plus the initial token.
        assert_eq!(runs, 10);
    }

    #[test]
    fn abort_stops_handing_out_work() {
        let mut s = Scheduler::new(&config(5));
        assert_eq!(s.next_job(0.0), Next::Run(0));
        s.abort();
        assert_eq!(s.next_job(0.0), Next::Done);
        assert_eq!(s.failed(0, true, None, 0.0), FailureDecision::GiveUp);
    }

    #[test]
    fn auto_stops_workers_at_the_limit_and_wants_more_as_it_grows() {
        let mut s = Scheduler::new(&SchedulerConfig {
            concurrency: ConcurrencyLimit::Auto { ceiling: 1000 },
            ..config(100)
        });
        assert_eq!(s.workers_wanted(), 8);
        let mut now = 0.0;
        let mut running: Vec<usize> = Vec::new();
        while let Next::Run(job) = s.next_job(now) {
            running.push(job);
        }
        // The limit is reached: the next worker is told to end.
        assert_eq!(running.len(), 8);
        assert_eq!(s.progress().limit, Some(8));
        // A round at a flat latency doubles the limit (slow start).
        now += 0.5;
        for job in running.drain(..) {
            s.succeeded(job, Some(now));
        }
        while running.len() < 8
            && let Next::Run(job) = s.next_job(now)
        {
            running.push(job);
        }
        assert_eq!(s.progress().limit, Some(16));
        assert_eq!(s.workers_wanted(), 16);
        // (Half a round: not enough to judge it.)
        for job in running.drain(..4) {
            s.succeeded(job, Some(now + 0.5));
        }
        // A rate limit error halves it.
        let Next::Run(job) = s.next_job(now) else {
            panic!("there is room");
        };
        s.failed(job, true, Some(1.0), now + 0.1);
        assert_eq!(s.progress().limit, Some(8));
        for job in running.drain(..) {
            s.succeeded(job, Some(now + 2.5));
        }
        // Near the end fewer workers are wanted than the limit allows: with one job left,
        // one worker.
        let mut finished = 0;
        while let Next::Run(job) = s.next_job(now + 2.0) {
            s.succeeded(job, Some(now + 2.5));
            finished += 1;
            if finished == 83 {
                assert_eq!(s.workers_wanted(), 1);
            }
        }
        assert_eq!(finished, 84); // 83 fresh jobs and the retry
        assert_eq!(s.workers_wanted(), 0);
        assert_eq!(s.next_job(now + 3.0), Next::Done);
    }

    #[test]
    fn a_failure_that_is_not_retryable_does_not_cut_the_limit() {
        let mut s = Scheduler::new(&SchedulerConfig {
            concurrency: ConcurrencyLimit::Auto { ceiling: 1000 },
            ..config(100)
        });
        let Next::Run(job) = s.next_job(0.0) else {
            panic!("there is room");
        };
        assert_eq!(s.failed(job, false, None, 0.1), FailureDecision::GiveUp);
        assert_eq!(s.progress().limit, Some(8));
        assert_eq!(s.progress().in_flight, 0);
    }
}
