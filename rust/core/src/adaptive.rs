//! Adaptive concurrency: how many requests may be in flight at once, learned from the
//! latencies and the overload signals of the requests themselves (`max_concurrency="auto"`).
//!
//! [`AdaptiveLimit`] is a pure controller: the caller says when a request starts
//! ([`AdaptiveLimit::on_start`]) and how it ended ([`AdaptiveLimit::on_success`],
//! [`AdaptiveLimit::on_overload`], [`AdaptiveLimit::on_other`]), passing the time in seconds on
//! any monotonic clock, and asks [`AdaptiveLimit::limit`]. No clock, no lock, no I/O: the
//! fan-out scheduler (Python `agenerate`s) and the native dispatch (`http::dispatch::Limiter`)
//! wrap it, and tests drive it with a virtual clock.
//!
//! # The rules
//!
//! Ideas from TCP (slow start, AIMD, Vegas' latency-based queue estimate), Netflix's
//! concurrency-limits (Gradient2: the ratio of the latency now to the no-load latency, with a
//! tolerance) and Envoy's adaptive concurrency filter (a no-load latency taken as a minimum
//! and re-measured, so that it follows the provider):
//!
//! - **Rounds**: a round is made of requests started since it began (so each ran under the
//!   round's limit): as many as the limit before a slow-start doubling (the requests that
//!   filled the new room), else half the limit; about one latency either way. In slow
//!   start (and while it may resume) a round also waits for every request of it sent no
//!   later than the latest one answered, up to twice its size: requests sent together to
//!   an idle provider that serves half of them at once come back in two waves, and a
//!   round of the first wave only would miss the queue and double into the 429s.
//!   Decisions are made on the mean latency of a round less two standard errors (what the
//!   round shows for sure; one in slow start, where a false exit costs little, see below),
//!   which stays steady when single requests vary a lot (LLM outputs of different
//!   lengths), where the latency of one request says little.
//! - **No-load latency** (`base`): the smallest round mean in the last two windows of
//!   [`BASE_WINDOW_ROUNDS`] rounds. Being a windowed minimum, it follows a provider that
//!   became slower or faster. The first round has nothing to be judged against: it is
//!   taken as flat (it may double) and sets the first estimate, which the next round
//!   brings down if opening the connections (TCP, TLS) made the first one slow.
//! - **Slow start**: from [`INITIAL_LIMIT`], the limit doubles ([`SLOW_START_GROWTH`]) at
//!   the end of every round whose latency stayed below [`SLOW_START_FLAT`] times the
//!   no-load latency and in which the limit was in use (at least half of it in flight),
//!   until the first overload signal, a round with a higher latency, or a recent latency
//!   (an average of the last [`RECENT_SAMPLES`] or so) above [`FAST_EXIT`] times the no-load
//!   latency.
//! - **A false exit resumes slow start** (HyStart++'s conservative slow start, RFC 9406):
//!   after slow start ended on a round's latency alone (no overload, no decrease), a round
//!   within [`CONSERVATIVE_ROUNDS`] rounds whose latency is flat again (below
//!   [`SLOW_START_FLAT`] times the no-load latency, the limit in use) shows that the exit
//!   was noise (a busy CPU, a few long outputs), and doubling resumes. Without it, one noisy
//!   round at a limit far below a large provider's capacity leaves only the steady state's
//!   slow growth to get there.
//! - **Steady state**, once per round: latency above [`TOLERANCE`] times the no-load latency
//!   means a queue builds up at the provider: the limit is scaled down to what leaves a
//!   latency of [`TARGET`] times the no-load latency (Vegas: the requests beyond that are
//!   waiting, not running), by at most half. Latency below [`GROW_BELOW`] times the no-load
//!   latency, with the limit in use, means room: the limit grows by its square root (quick at
//!   first, careful near a large limit), but only up to just below the limit at which the
//!   last decrease happened; there it probes one request more per round, and a round at that
//!   limit with room to spare forgets it (CUBIC's idea: the provider is full near where it
//!   last said so). In between, it holds.
//! - **A slower provider is not a queue**: when a decrease for latency did not bring the
//!   latency down (by [`IMPROVED`]) for [`STUCK_ROUNDS`] rounds, the provider itself got
//!   slower (longer outputs, a busier model): that latency becomes the no-load latency,
//!   instead of cutting the limit down to one.
//! - **Overload** (429, 503, 529, any retried failure, a timeout, a `Retry-After`): the limit
//!   halves (multiplicative decrease) and slow start ends.
//! - **One decrease per round trip**: after a decrease, the outcomes of requests started
//!   before it (which were sent under the old limit) neither decrease it again nor steer it;
//!   a request that is retried starts anew at its retry.
//! - **Bounds**: between 1 and the ceiling; the limit only grows while it is in use
//!   (at least half of it in flight), so that a slow trickle of work never inflates it.

use std::fmt;

/// Where the limit starts: low enough that a provider serving 4 at once (with as many
/// queued) sees no 429 in the first round (which sets the first no-load latency), high enough that
/// doubling reaches hundreds in a few round trips.
pub const INITIAL_LIMIT: f64 = 8.0;
/// How much the limit grows per round in slow start (doubling, as TCP's slow start). It
/// grows at the end of a round, once the latencies of the requests started under the
/// round's limit are known: growing on every success (as TCP does) launches more before the
/// requests that queued at the provider have come back to say so.
pub const SLOW_START_GROWTH: f64 = 2.0;
/// Slow start goes on while the mean latency of a round stays below this multiple of the
/// no-load latency.
pub const SLOW_START_FLAT: f64 = 1.25;
/// After slow start ended on latency alone, the rounds during which a flat latency resumes
/// it (HyStart++ uses 5 rounds of conservative slow start; fewer here, since the steady
/// state holds the limit meanwhile instead of growing it slowly).
pub const CONSERVATIVE_ROUNDS: u32 = 3;
/// The default ceiling of `"auto"` (also the connection pool size it asks for).
pub const DEFAULT_CEILING: usize = 1024;
/// Latency above this multiple of the no-load latency means a queue at the provider.
pub const TOLERANCE: f64 = 1.5;
/// A decrease aims at this multiple of the no-load latency (a short queue keeps the
/// provider busy between our requests).
pub const TARGET: f64 = 1.2;
/// Below this multiple of the no-load latency the limit grows.
pub const GROW_BELOW: f64 = 1.2;
/// A decrease keeps at least this fraction of the limit.
pub const MAX_DECREASE: f64 = 0.5;
/// The no-load latency is the minimum over the last two windows of this many rounds.
pub const BASE_WINDOW_ROUNDS: u32 = 25;
/// The recent latency is an exponential average over about this many samples.
pub const RECENT_SAMPLES: f64 = 16.0;
/// In slow start, a recent latency above this multiple of the no-load latency ends it at
/// once, without waiting for the end of the round (a provider that queues without limit).
pub const FAST_EXIT: f64 = 2.0;
/// After a decrease for latency, a round whose latency is below this fraction of the one
/// that caused it shows that the decrease helped.
pub const IMPROVED: f64 = 0.9;
/// Rounds after a decrease for latency without improvement after which the latency is
/// taken as the provider's new no-load latency.
pub const STUCK_ROUNDS: u32 = 2;

/// How many requests may run at once: a number, no limit, or adaptive up to a ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyLimit {
    Fixed(usize),
    Unbounded,
    Auto { ceiling: usize },
}

/// A `max_concurrency` value that is neither a positive number, `None`, `"auto"` nor
/// `"auto:N"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid max_concurrency {value:?}: expected a positive integer, None (no limit), \"auto\" \
     (adaptive, up to {DEFAULT_CEILING}) or \"auto:N\" (adaptive, up to N, a positive integer)"
)]
pub struct InvalidConcurrency {
    pub value: String,
}

impl ConcurrencyLimit {
    /// `"auto"` or `"auto:N"` (N > 0).
    pub fn parse(text: &str) -> Result<Self, InvalidConcurrency> {
        let invalid = || InvalidConcurrency {
            value: text.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed == "auto" {
            return Ok(Self::Auto {
                ceiling: DEFAULT_CEILING,
            });
        }
        let ceiling = trimmed
            .strip_prefix("auto:")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(invalid)?;
        Ok(Self::Auto { ceiling })
    }

    /// The most requests that can ever be in flight (`None`: no bound).
    pub fn most(&self) -> Option<usize> {
        match self {
            Self::Fixed(n) => Some((*n).max(1)),
            Self::Unbounded => None,
            Self::Auto { ceiling } => Some((*ceiling).max(1)),
        }
    }
}

impl From<Option<usize>> for ConcurrencyLimit {
    /// A number, or `None` for no limit.
    fn from(limit: Option<usize>) -> Self {
        limit.map_or(Self::Unbounded, Self::Fixed)
    }
}

impl fmt::Display for ConcurrencyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(n) => write!(f, "{n}"),
            Self::Unbounded => write!(f, "None"),
            Self::Auto { ceiling } if *ceiling == DEFAULT_CEILING => write!(f, "auto"),
            Self::Auto { ceiling } => write!(f, "auto:{ceiling}"),
        }
    }
}

/// When a request started, as the controller needs it back at its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ticket {
    started: f64,
    /// A retry's latency includes the wait before it: it is not a latency sample.
    retry: bool,
}

impl Ticket {
    pub fn started(&self) -> f64 {
        self.started
    }
}

#[derive(Debug, Clone)]
struct Round {
    samples: usize,
    latency_sum: f64,
    latency_squares: f64,
    /// The most requests in flight during the round.
    peak_in_flight: usize,
    /// When the round began: only requests started since then are its samples (they ran
    /// under its limit).
    began: f64,
    /// Samples that end the round (0: the limit).
    size: usize,
    /// When the round's requests started, in order (kept in slow start only): the round
    /// waits for those sent no later than the latest answered one.
    starts: Option<Vec<f64>>,
    /// The latest start among the round's answered requests.
    latest_answered_start: f64,
}

impl Default for Round {
    fn default() -> Self {
        Self {
            samples: 0,
            latency_sum: 0.0,
            latency_squares: 0.0,
            peak_in_flight: 0,
            began: f64::NEG_INFINITY,
            size: 0,
            starts: None,
            latest_answered_start: f64::NEG_INFINITY,
        }
    }
}

/// The adaptive concurrency controller (see the module documentation for the rules).
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    limit: f64,
    ceiling: f64,
    in_flight: usize,
    slow_start: bool,
    /// Rounds left in which a flat latency resumes slow start (after an exit on latency).
    conservative_rounds: u32,
    /// Minimum latency of the current and of the previous window.
    window_min: f64,
    previous_window_min: f64,
    window_rounds: u32,
    /// Exponential average of the latest latencies (current epoch only).
    recent: Option<f64>,
    round: Round,
    /// Time of the last decrease: outcomes of requests started before it do not steer.
    epoch: f64,
    decreases: u64,
    /// The latency ratio that made the last decrease for latency, while it is still high.
    cut_ratio: Option<f64>,
    /// Rounds since that decrease in which the latency did not come down.
    stuck_rounds: u32,
    /// The limit at which the last decrease happened: steady-state growth slows down below
    /// it (a round with a latency just under the tolerance at, say, 15 of a provider that
    /// holds 16 must not grow the limit by 4 into its 429s).
    cut_limit: Option<f64>,
}

impl AdaptiveLimit {
    /// A controller that keeps the limit between 1 and `ceiling`.
    pub fn new(ceiling: usize) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let ceiling = ceiling.max(1) as f64;
        Self {
            limit: INITIAL_LIMIT.min(ceiling),
            ceiling,
            in_flight: 0,
            slow_start: true,
            conservative_rounds: 0,
            window_min: f64::INFINITY,
            previous_window_min: f64::INFINITY,
            window_rounds: 0,
            recent: None,
            round: Round {
                starts: Some(Vec::new()),
                ..Round::default()
            },
            epoch: f64::NEG_INFINITY,
            decreases: 0,
            cut_ratio: None,
            stuck_rounds: 0,
            cut_limit: None,
        }
    }

    /// What this controller learned (limit, no-load latency, phase), for a new run with
    /// nothing in flight yet.
    #[must_use]
    pub fn resumed(&self) -> Self {
        Self {
            in_flight: 0,
            recent: None,
            round: Round {
                starts: (self.slow_start || self.conservative_rounds > 0).then(Vec::new),
                ..Round::default()
            },
            epoch: f64::NEG_INFINITY,
            ..self.clone()
        }
    }

    /// The ceiling of the limit.
    pub fn ceiling(&self) -> usize {
        // A positive whole number given as a `usize`.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ceiling = self.ceiling as usize;
        ceiling
    }

    /// The number of requests that may be in flight now.
    pub fn limit(&self) -> usize {
        // At least 1, at most the ceiling: the cast cannot truncate meaningfully.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let limit = self.limit.floor().clamp(1.0, self.ceiling) as usize;
        limit
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether one more request may start now.
    pub fn has_room(&self) -> bool {
        self.in_flight < self.limit()
    }

    /// Whether the limit is still in slow start (doubling per round trip).
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// How many times the limit was decreased so far.
    pub fn decreases(&self) -> u64 {
        self.decreases
    }

    /// The no-load latency estimate in seconds, once a request succeeded.
    pub fn base_latency(&self) -> Option<f64> {
        let base = self.window_min.min(self.previous_window_min);
        base.is_finite().then_some(base)
    }

    /// A request starts at `now` (whether or not there was room: the caller decides).
    pub fn on_start(&mut self, now: f64) -> Ticket {
        self.in_flight += 1;
        self.round.peak_in_flight = self.round.peak_in_flight.max(self.in_flight);
        let size = self.round_size();
        if let Some(starts) = &mut self.round.starts
            && starts.len() < 2 * size
        {
            // A round waits for twice its size at most: later starts never count (and a
            // round that never ends, all its requests failing, keeps no more).
            starts.push(now);
        }
        Ticket {
            started: now,
            retry: false,
        }
    }

    /// A request ended well at `now`: its latency steers the limit.
    pub fn on_success(&mut self, ticket: Ticket, now: f64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if ticket.retry || ticket.started < self.epoch {
            // A retry's latency includes its wait; a request sent before the last decrease
            // says what the old limit did.
            return;
        }
        let latency = (now - ticket.started).max(0.0);
        let recent = match self.recent {
            Some(recent) => recent + (latency - recent) / RECENT_SAMPLES,
            None => latency,
        };
        self.recent = Some(recent);
        if self.slow_start
            && let Some(base) = self.base_latency()
            && base > 0.0
            && recent / base > FAST_EXIT
        {
            // A queue builds up faster than a round shows it.
            self.slow_start = false;
            self.decrease_for_latency(recent / base, now);
            return;
        }
        if ticket.started < self.round.began {
            return; // started under the previous round's limit
        }
        let size = self.round_size();
        let round = &mut self.round;
        round.samples += 1;
        round.latency_sum += latency;
        round.latency_squares += latency * latency;
        round.latest_answered_start = round.latest_answered_start.max(ticket.started);
        let sent_with_the_answered = round.starts.as_ref().map_or(0, |starts| {
            starts.partition_point(|started| *started <= round.latest_answered_start)
        });
        if round.samples >= size.max(sent_with_the_answered.min(2 * size)) {
            self.end_round(now);
        }
    }

    /// A request failed in a way that says the provider is overloaded (429, 503, 529, a
    /// timeout, a retry-after hint, any retried failure): halve the limit, once per round
    /// trip.
    pub fn on_overload(&mut self, ticket: Ticket, now: f64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.overloaded(ticket, now);
    }

    /// An attempt of a request that is still running (it will be retried) was overloaded:
    /// like [`AdaptiveLimit::on_overload`] without ending the request. Returns the ticket
    /// of the retry (it starts anew).
    pub fn on_retry(&mut self, ticket: Ticket, now: f64) -> Ticket {
        self.overloaded(ticket, now);
        Ticket {
            started: now,
            retry: true,
        }
    }

    /// A request ended in a way that says nothing about load (a bad request, a
    /// cancellation, or an outcome already reported through [`AdaptiveLimit::on_retry`]).
    pub fn on_other(&mut self, _ticket: Ticket) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn overloaded(&mut self, ticket: Ticket, now: f64) {
        self.slow_start = false;
        self.conservative_rounds = 0;
        if ticket.started < self.epoch {
            return;
        }
        self.decrease(MAX_DECREASE, now);
    }

    /// Samples that end the current round (before it waits for requests sent with them).
    fn round_size(&self) -> usize {
        match self.round.size {
            0 => self.limit(),
            size => size,
        }
    }

    fn end_round(&mut self, now: f64) {
        let round = std::mem::take(&mut self.round);
        self.round.peak_in_flight = self.in_flight;
        self.round.began = now;
        let before = self.limit();
        self.judge(&round, now);
        // After a doubling in slow start, the requests started at once to fill the new room
        // are as many as the old limit: they make the next round (about one latency). In the
        // steady state, the requests in flight when a round begins belong to the previous
        // one: half of the limit's worth of new ones comes back within about one and a half
        // latencies.
        self.round.size = if self.slow_start {
            before
        } else {
            self.limit().div_ceil(2)
        };
        if self.slow_start || self.conservative_rounds > 0 {
            // Reuses the last round's allocation.
            let mut starts = round.starts.unwrap_or_default();
            starts.clear();
            self.round.starts = Some(starts);
        }
    }

    /// The decisions at the end of a round.
    fn judge(&mut self, round: &Round, now: f64) {
        if round.samples == 0 {
            return;
        }
        #[allow(clippy::cast_precision_loss)]
        let samples = round.samples as f64;
        let mean = round.latency_sum / samples;
        // What the round says for sure: its mean less two standard errors (requests of
        // very different lengths make a mean of a few samples noisy).
        let variance = (round.latency_squares / samples - mean * mean).max(0.0);
        let standard_error = (variance / samples).sqrt();
        // Against the no-load latency before this round (none yet: the first round is
        // taken as flat); a latency of zero (a clock too coarse) says nothing either.
        let (ratio, slow_start_ratio) = match self.base_latency() {
            Some(base) if base > 0.0 => (
                (mean - 2.0 * standard_error).max(0.0) / base,
                (mean - standard_error).max(0.0) / base,
            ),
            _ => (1.0, 1.0),
        };
        self.window_min = self.window_min.min(mean);
        self.window_rounds += 1;
        if self.window_rounds >= BASE_WINDOW_ROUNDS {
            self.window_rounds = 0;
            self.previous_window_min = self.window_min;
            self.window_min = f64::INFINITY;
        }
        let in_use = self.in_use(round.peak_in_flight);
        if self.conservative_rounds > 0 {
            self.conservative_rounds -= 1;
            if slow_start_ratio <= SLOW_START_FLAT && in_use {
                // The exit was noise: the latency is flat again at the same limit.
                self.conservative_rounds = 0;
                self.slow_start = true;
            }
        }
        if self.slow_start {
            if slow_start_ratio <= SLOW_START_FLAT {
                // The first round too: waiting one more round trip at 8 before the first
                // doubling cost 3 % of a 20 s job at a 300 ms provider of 512. A first
                // round slowed by opening connections can hide a queue in the second
                // (half of 16 queued at a provider of 8 reads as flat once the set-up took
                // a tenth of a latency); the 429s of the third round then end slow start.
                if in_use {
                    self.limit = (self.limit * SLOW_START_GROWTH).min(self.ceiling);
                }
                return;
            }
            // Some requests of the round waited: the provider is full, or the round was
            // noisy (a decrease below ends the chance to resume).
            self.slow_start = false;
            self.conservative_rounds = CONSERVATIVE_ROUNDS;
            if ratio <= TOLERANCE {
                // Held, not grown: the round that just showed a queue is no room.
                return;
            }
        }
        if ratio <= TOLERANCE {
            self.cut_ratio = None;
            self.stuck_rounds = 0;
            if ratio < GROW_BELOW && in_use {
                self.grow();
            }
            return;
        }
        match self.cut_ratio {
            // Still too slow, but the last decrease helped: decrease again.
            Some(cut) if ratio < cut * IMPROVED => self.decrease_for_latency(ratio, now),
            // The last decrease did not bring the latency down: it is not our queue, the
            // provider itself got slower (longer outputs, a busier model). After
            // STUCK_ROUNDS such rounds, its new latency is the no-load latency.
            Some(_) => {
                self.stuck_rounds += 1;
                if self.stuck_rounds >= STUCK_ROUNDS {
                    self.window_min = mean;
                    self.previous_window_min = mean;
                    self.window_rounds = 0;
                    self.cut_ratio = None;
                    self.stuck_rounds = 0;
                }
            }
            None => self.decrease_for_latency(ratio, now),
        }
    }

    /// Steady-state growth: by the square root of the limit, up to just below the limit of
    /// the last decrease, then one at a time up to it; a round with room at that limit
    /// means the provider takes more now.
    fn grow(&mut self) {
        let step = self.limit.sqrt().max(1.0);
        let grown = match self.cut_limit {
            Some(cut) if self.limit + 1.0 < cut => (self.limit + step).min(cut - 1.0),
            Some(cut) if self.limit < cut => self.limit + 1.0,
            Some(_) => {
                self.cut_limit = None;
                self.limit + step
            }
            None => self.limit + step,
        };
        self.limit = grown.min(self.ceiling);
    }

    /// Whether the limit was in use: at least half of it in flight at some point.
    fn in_use(&self, peak_in_flight: usize) -> bool {
        #[allow(clippy::cast_precision_loss)]
        let peak = peak_in_flight as f64;
        peak * 2.0 >= self.limit
    }

    /// Scales the limit to leave a latency of [`TARGET`] times the no-load one.
    fn decrease_for_latency(&mut self, ratio: f64, now: f64) {
        self.decrease((TARGET / ratio).max(MAX_DECREASE), now);
        self.cut_ratio = Some(ratio);
        self.stuck_rounds = 0;
    }

    fn decrease(&mut self, factor: f64, now: f64) {
        self.conservative_rounds = 0;
        self.cut_limit = Some(self.limit.floor());
        self.limit = (self.limit * factor).max(1.0);
        self.epoch = now;
        self.recent = None;
        self.round = Round {
            peak_in_flight: self.in_flight,
            began: now,
            size: self.limit(),
            ..Round::default()
        };
        self.decreases += 1;
    }
}

#[cfg(test)]
mod tests;
