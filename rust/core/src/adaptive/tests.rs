//! The controller's rules on a virtual clock, and whole runs against a simulated provider
//! with the benchmark's capacity model (C requests served at once at a base latency, a
//! FIFO queue beyond, 429 with Retry-After beyond 2C), by a client that sends as each
//! answer arrives or one that reads answers in batches.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::*;
use crate::limits::Jitter;

/// Finishes `count` requests started at `start`, each after `latency`, in order.
fn complete(limit: &mut AdaptiveLimit, count: usize, start: f64, latency: f64) {
    let tickets: Vec<Ticket> = (0..count).map(|_| limit.on_start(start)).collect();
    for ticket in tickets {
        limit.on_success(ticket, start + latency);
    }
}

/// Keeps the limit full for `rounds` rounds of requests that each take `latency`; returns
/// the time at the end.
fn run_rounds(limit: &mut AdaptiveLimit, rounds: usize, mut now: f64, latency: f64) -> f64 {
    for _ in 0..rounds {
        let count = limit.limit();
        complete(limit, count, now, latency);
        now += latency;
    }
    now
}

#[test]
fn parses_auto_with_or_without_a_ceiling() {
    assert_eq!(
        ConcurrencyLimit::parse("auto"),
        Ok(ConcurrencyLimit::Auto {
            ceiling: DEFAULT_CEILING
        })
    );
    assert_eq!(
        ConcurrencyLimit::parse("auto:512"),
        Ok(ConcurrencyLimit::Auto { ceiling: 512 })
    );
    for bad in ["auto:0", "auto:", "auto:-3", "fast", "auto:1.5", "64"] {
        let error = ConcurrencyLimit::parse(bad).unwrap_err();
        assert!(error.to_string().contains("max_concurrency"), "{error}");
        assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
    }
    assert_eq!(
        ConcurrencyLimit::Auto { ceiling: 512 }.to_string(),
        "auto:512"
    );
    assert_eq!(
        ConcurrencyLimit::parse("auto").map(|l| l.to_string()),
        Ok("auto".into())
    );
    assert_eq!(ConcurrencyLimit::Fixed(0).most(), Some(1));
    assert_eq!(ConcurrencyLimit::Unbounded.most(), None);
}

#[test]
fn slow_start_doubles_per_round_while_latency_is_flat() {
    let mut limit = AdaptiveLimit::new(10_000);
    assert_eq!(limit.limit(), 8);
    let mut seen = vec![limit.limit()];
    let mut now = 0.0;
    for _ in 0..4 {
        now = run_rounds(&mut limit, 1, now, 0.3);
        seen.push(limit.limit());
    }
    // The first round doubles too (it is taken as flat).
    assert_eq!(seen, [8, 16, 32, 64, 128]);
    assert!(limit.in_slow_start());
    assert!((limit.base_latency().unwrap() - 0.3).abs() < 1e-9);
}

#[test]
fn the_ceiling_bounds_the_limit() {
    let mut limit = AdaptiveLimit::new(40);
    run_rounds(&mut limit, 10, 0.0, 0.1);
    assert_eq!(limit.limit(), 40);
    let mut tiny = AdaptiveLimit::new(4);
    assert_eq!(tiny.limit(), 4);
    run_rounds(&mut tiny, 5, 0.0, 0.1);
    assert_eq!(tiny.limit(), 4);
}

#[test]
fn an_overload_halves_the_limit_once_per_round_trip() {
    let mut limit = AdaptiveLimit::new(10_000);
    let now = run_rounds(&mut limit, 3, 0.0, 0.1);
    assert_eq!(limit.limit(), 64);
    let old: Vec<Ticket> = (0..64).map(|_| limit.on_start(now)).collect();
    limit.on_overload(old[0], now + 0.01);
    assert_eq!(limit.limit(), 32);
    assert!(!limit.in_slow_start());
    // The other requests sent under the old limit say the same thing: no further cut.
    for ticket in &old[1..10] {
        limit.on_overload(*ticket, now + 0.02);
    }
    assert_eq!(limit.limit(), 32);
    assert_eq!(limit.decreases(), 1);
    // A request sent after the cut that is overloaded again cuts again.
    let new = limit.on_start(now + 0.03);
    limit.on_overload(new, now + 0.04);
    assert_eq!(limit.limit(), 16);
    // The floor is one request.
    for i in 0..20 {
        let t = now + 1.0 + f64::from(i);
        let ticket = limit.on_start(t);
        limit.on_overload(ticket, t + 0.5);
    }
    assert_eq!(limit.limit(), 1);
}

#[test]
fn a_retry_counts_as_an_overload_and_restarts_the_ticket() {
    let mut limit = AdaptiveLimit::new(100);
    let ticket = limit.on_start(1.0);
    let retry = limit.on_retry(ticket, 2.0);
    assert_eq!(limit.limit(), 4);
    assert_eq!(retry.started(), 2.0);
    assert_eq!(limit.in_flight(), 1);
    limit.on_other(retry);
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(limit.limit(), 4);
}

#[test]
fn rising_latency_ends_slow_start_and_scales_the_limit_to_the_target() {
    let mut limit = AdaptiveLimit::new(10_000);
    let now = run_rounds(&mut limit, 4, 0.0, 0.1); // 128, no-load latency 0.1
    assert_eq!(limit.limit(), 128);
    // The provider now queues: latency triples. Slow start ends before the round does.
    complete(&mut limit, 40, now, 0.3);
    assert!(!limit.in_slow_start());
    // Scaled to the target (halved at most).
    let after = limit.limit();
    assert!((64..=80).contains(&after), "{after}");
    assert_eq!(limit.decreases(), 1);
}

#[test]
fn a_decrease_that_helped_is_followed_by_another_one_that_did_not_help_is_not() {
    let mut limit = AdaptiveLimit::new(10_000);
    let ticket = limit.on_start(0.0);
    limit.on_overload(ticket, 0.0); // steady state at 8
    let mut now = run_rounds(&mut limit, 12, 1.0, 0.1);
    let grown = limit.limit();
    // A queue: 3x latency, then 2x after the first cut (it helped), then flat.
    now = run_rounds(&mut limit, 1, now, 0.3);
    let first = limit.limit();
    assert_eq!(first, grown / 2);
    now = run_rounds(&mut limit, 1, now, 0.2);
    let second = limit.limit();
    assert!(second < first, "{second} >= {first}");
    // Not improving any more: the limit holds for the stuck rounds...
    now = run_rounds(&mut limit, STUCK_ROUNDS as usize - 1, now, 0.2);
    assert_eq!(limit.limit(), second);
    // ...then the latency becomes the no-load one, and the limit grows again.
    now = run_rounds(&mut limit, 1, now, 0.2);
    assert!((limit.base_latency().unwrap() - 0.2).abs() < 1e-9);
    run_rounds(&mut limit, 1, now, 0.2);
    assert!(limit.limit() > second);
}

#[test]
fn steady_state_holds_in_the_tolerance_band_and_grows_below_it() {
    let mut limit = AdaptiveLimit::new(10_000);
    let ticket = limit.on_start(0.0);
    limit.on_overload(ticket, 0.0); // leaves slow start at 4
    assert_eq!(limit.limit(), 4);
    // Flat latency: grows by about its square root per round.
    let mut now = run_rounds(&mut limit, 1, 1.0, 0.1);
    assert_eq!(limit.limit(), 6); // 4 + sqrt(4)
    now = run_rounds(&mut limit, 10, now, 0.1);
    let grown = limit.limit();
    assert!(grown > 40, "{grown}");
    // Latency 1.3x the no-load latency: inside the band, the limit holds.
    run_rounds(&mut limit, 10, now, 0.13);
    assert_eq!(limit.limit(), grown);
}

#[test]
fn the_limit_only_grows_while_it_is_in_use() {
    let mut limit = AdaptiveLimit::new(10_000);
    // One request at a time, many times: no reason to allow more.
    for i in 0..500 {
        let t = f64::from(i);
        let ticket = limit.on_start(t);
        limit.on_success(ticket, t + 0.5);
    }
    assert_eq!(limit.limit(), INITIAL_LIMIT as usize);
}

#[test]
fn the_no_load_latency_follows_a_provider_that_became_slower() {
    let mut limit = AdaptiveLimit::new(10_000);
    let ticket = limit.on_start(0.0);
    limit.on_overload(ticket, 0.0);
    let mut now = run_rounds(&mut limit, 30, 1.0, 0.1);
    let before = limit.limit();
    // Every request now takes twice as long (longer outputs), whatever the concurrency:
    // the limit drops at first, then the no-load latency is re-learned and it grows again.
    now = run_rounds(&mut limit, 1, now, 0.2);
    assert!(limit.limit() < before);
    run_rounds(&mut limit, 20, now, 0.2);
    assert!((limit.base_latency().unwrap() - 0.2).abs() < 1e-9);
    assert!(limit.limit() > before, "{} <= {before}", limit.limit());
}

#[test]
fn requests_of_very_different_lengths_are_not_mistaken_for_a_queue() {
    // Latencies from 0.2 s to 3 s whatever the concurrency (outputs of any length): the
    // limit keeps growing instead of collapsing.
    let mut limit = AdaptiveLimit::new(10_000);
    let mut jitter = Jitter::new(11);
    let mut now = 0.0;
    for _ in 0..40 {
        let count = limit.limit();
        let tickets: Vec<Ticket> = (0..count).map(|_| limit.on_start(now)).collect();
        for ticket in tickets {
            limit.on_success(ticket, now + 0.2 + 2.8 * jitter.next_unit());
        }
        now += 3.0;
    }
    assert!(limit.limit() >= 200, "{} after 40 rounds", limit.limit());
}

/// 16 requests sent at `now` to a provider that serves 8 at once in 0.3 s and queues 8:
/// the queued half comes back at twice the latency. The limit must never pass 16 (its 429s).
fn sixteen_sent_to_a_provider_of_eight(limit: &mut AdaptiveLimit, now: f64) {
    let tickets: Vec<Ticket> = (0..16).map(|_| limit.on_start(now)).collect();
    for (i, ticket) in tickets.into_iter().enumerate() {
        let latency = if i < 8 { 0.3 } else { 0.6 };
        limit.on_success(ticket, now + latency);
        assert!(limit.limit() <= 16, "after {} answers: {limit:?}", i + 1);
    }
}

#[test]
fn a_round_after_a_doubling_waits_for_the_requests_the_provider_queued() {
    // A provider that serves 8 at once in 0.3 s and queues 8 more: after 8 -> 16, the 16
    // requests leave together; the 8 served come back first, the 8 queued at twice the
    // latency. Judging on the first 8 would double again, into its 429s.
    let mut limit = AdaptiveLimit::new(10_000);
    let now = run_rounds(&mut limit, 1, 0.0, 0.3);
    assert_eq!(limit.limit(), 16);
    sixteen_sent_to_a_provider_of_eight(&mut limit, now);
    assert!(!limit.in_slow_start());
    assert_eq!(limit.limit(), 16);
}

#[test]
fn a_first_round_slowed_by_opening_connections_still_shows_the_next_queue() {
    // The first round's latencies include opening the connections (here a twentieth of a
    // latency): its doubling to 16 at a provider that serves 8 at once and queues 8 must
    // still end slow start when the queued half comes back at twice the latency.
    let mut limit = AdaptiveLimit::new(10_000);
    complete(&mut limit, 8, 0.0, 0.3 + 0.015);
    assert_eq!(limit.limit(), 16);
    let now = 0.315;
    sixteen_sent_to_a_provider_of_eight(&mut limit, now);
    assert!(!limit.in_slow_start());
    assert!((limit.base_latency().unwrap() - 0.315).abs() < 1e-9);
}

#[test]
fn a_noisy_round_that_ended_slow_start_lets_it_resume() {
    let mut limit = AdaptiveLimit::new(10_000);
    let mut now = run_rounds(&mut limit, 2, 0.0, 0.1);
    assert_eq!(limit.limit(), 32);
    // One round 1.4x slower (a busy CPU, a few long outputs): slow start ends, the limit
    // holds (within the tolerance).
    now = run_rounds(&mut limit, 1, now, 0.14);
    assert!(!limit.in_slow_start());
    assert_eq!(limit.limit(), 32);
    // The next round is flat again: the exit was noise, doubling resumes.
    now = run_rounds(&mut limit, 1, now, 0.1);
    assert!(limit.in_slow_start());
    assert_eq!(limit.limit(), 64);
    // A latency that stays up for the conservative rounds is a full provider: a flat round
    // after them grows the limit by the steady state's step, not by doubling.
    now = run_rounds(&mut limit, 1, now, 0.14);
    assert!(!limit.in_slow_start());
    now = run_rounds(&mut limit, CONSERVATIVE_ROUNDS as usize, now, 0.14);
    assert_eq!(limit.limit(), 64);
    run_rounds(&mut limit, 1, now, 0.1);
    assert!(!limit.in_slow_start());
    assert_eq!(limit.limit(), 72); // 64 + sqrt(64)
}

#[test]
fn an_overload_after_a_noisy_round_ends_slow_start_for_good() {
    let mut limit = AdaptiveLimit::new(10_000);
    let mut now = run_rounds(&mut limit, 2, 0.0, 0.1);
    now = run_rounds(&mut limit, 1, now, 0.14);
    let ticket = limit.on_start(now);
    limit.on_overload(ticket, now);
    assert_eq!(limit.limit(), 16);
    run_rounds(&mut limit, 1, now + 0.1, 0.1);
    assert!(!limit.in_slow_start());
    assert_eq!(limit.limit(), 20); // 16 + sqrt(16)
}

// ---- whole runs against a simulated provider -------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The answer to request `id` arrives (`ok`: 200, else 429).
    Answer { id: usize, ok: bool },
    /// The provider finished serving one request.
    Served { id: usize },
    /// Request `id` is sent again after its Retry-After wait.
    Resend { id: usize },
    /// The client has read the answers of a batch and sends again.
    BatchRead,
}

/// Outcome of one simulated run.
#[derive(Debug)]
struct Run {
    seconds: f64,
    rejected: usize,
    peak_limit: usize,
}

/// `jobs` requests through a client that keeps each request's slot during its retries
/// (as `run_many` does), against a provider serving `capacity` at once in `latency` s
/// (with up to 5 % jitter), queueing up to `capacity` more and answering 429 (Retry-After:
/// `latency`) beyond. `limit: None` runs the adaptive controller, `Some(n)` a fixed limit.
/// A client with a `batch_window` takes in every answer that arrives within that many
/// seconds of the first before it sends again (a busy event loop, answers read in a
/// batch): its new requests leave together, as they do from the real client.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn simulate(
    jobs: usize,
    capacity: usize,
    latency: f64,
    fixed: Option<usize>,
    batch_window: f64,
) -> Run {
    const NETWORK: f64 = 0.0005;
    let mut controller = AdaptiveLimit::new(DEFAULT_CEILING);
    let mut tickets: Vec<Option<Ticket>> = vec![None; jobs];
    let mut jitter = Jitter::new(3);
    // Events by time (in nanoseconds, for a total order).
    let mut events: BinaryHeap<Reverse<(u64, Event)>> = BinaryHeap::new();
    let at = |t: f64| (t * 1e9) as u64;
    let mut serving = 0usize;
    let mut queue: VecDeque<usize> = VecDeque::new();
    let (mut next, mut done, mut rejected, mut in_flight) = (0usize, 0usize, 0usize, 0usize);
    let mut peak_limit = 0;
    let mut now = 0.0;
    // In nanoseconds, as the events' times.
    let (mut now_ns, mut batch_ends) = (0u64, 0u64);
    loop {
        // Start what the limit allows, once the answers of the batch are in.
        let batch_read = now_ns >= batch_ends;
        while batch_read && next < jobs {
            let room = match fixed {
                Some(n) => in_flight < n,
                None => controller.has_room(),
            };
            if !room {
                break;
            }
            tickets[next] = Some(controller.on_start(now));
            in_flight += 1;
            events.push(Reverse((at(now + NETWORK), Event::Resend { id: next })));
            next += 1;
        }
        peak_limit = peak_limit.max(controller.limit());
        let Some(Reverse((time, event))) = events.pop() else {
            break;
        };
        now_ns = time;
        now = time as f64 / 1e9;
        match event {
            Event::Resend { id } => {
                // Arrives at the provider.
                if serving + queue.len() >= 2 * capacity {
                    rejected += 1;
                    events.push(Reverse((
                        at(now + NETWORK),
                        Event::Answer { id, ok: false },
                    )));
                } else if serving < capacity {
                    serving += 1;
                    let took = latency * (1.0 + 0.05 * jitter.next_unit());
                    events.push(Reverse((at(now + took), Event::Served { id })));
                } else {
                    queue.push_back(id);
                }
            }
            Event::Served { id } => {
                serving -= 1;
                events.push(Reverse((at(now + NETWORK), Event::Answer { id, ok: true })));
                if let Some(waiting) = queue.pop_front() {
                    serving += 1;
                    let took = latency * (1.0 + 0.05 * jitter.next_unit());
                    events.push(Reverse((at(now + took), Event::Served { id: waiting })));
                }
            }
            Event::Answer { id, ok: true } => {
                if now_ns >= batch_ends && batch_window > 0.0 {
                    batch_ends = at(now + batch_window);
                    events.push(Reverse((batch_ends, Event::BatchRead)));
                }
                done += 1;
                in_flight -= 1;
                if let Some(ticket) = tickets[id].take() {
                    controller.on_success(ticket, now);
                }
            }
            Event::BatchRead => {}
            Event::Answer { id, ok: false } => {
                if now_ns >= batch_ends && batch_window > 0.0 {
                    batch_ends = at(now + batch_window);
                    events.push(Reverse((batch_ends, Event::BatchRead)));
                }
                if let Some(ticket) = tickets[id].take() {
                    tickets[id] = Some(controller.on_retry(ticket, now));
                }
                events.push(Reverse((at(now + latency), Event::Resend { id })));
            }
        }
        if done == jobs {
            break;
        }
    }
    assert_eq!(done, jobs, "the simulation stopped early");
    Run {
        seconds: now,
        rejected,
        peak_limit,
    }
}

#[test]
fn auto_matches_the_best_fixed_limit_without_a_429_storm() {
    // Every cell of the benchmark, with a client that sends as each answer arrives and with
    // one that reads answers in batches (its new requests leave together: the case where
    // judging a round on its first answers doubled into the 429s).
    let cells = [8, 64, 512]
        .into_iter()
        .flat_map(|c| [0.05, 0.3].map(|l| (c, l)))
        .flat_map(|(c, l)| [0.0, 0.06 * l].map(|w| (c, l, w)));
    for (capacity, latency, batch_window) in cells {
        let jobs = 64 * capacity;
        let best = [capacity, capacity * 3 / 2, 2 * capacity]
            .into_iter()
            .map(|n| simulate(jobs, capacity, latency, Some(n), batch_window).seconds)
            .fold(f64::INFINITY, f64::min);
        let auto = simulate(jobs, capacity, latency, None, batch_window);
        let share = best / auto.seconds;
        eprintln!(
            "C={capacity} L={latency} window={batch_window} best={best:.3} {auto:?} \
             share={share:.3}"
        );
        #[allow(clippy::cast_precision_loss)]
        let rejected = auto.rejected as f64 / jobs as f64;
        assert!(
            share >= 0.9 && rejected <= 0.01,
            "C={capacity} latency={latency} batch window={batch_window}: {share:.3} of the \
             best fixed limit, {rejected:.4} rejected, {auto:?}"
        );
        // It found the capacity, and did not run away above it.
        assert!(auto.peak_limit >= capacity, "{auto:?}");
    }
}

#[test]
fn a_fixed_limit_above_twice_the_capacity_storms() {
    // The check above can fail: the simulated provider does reject.
    let run = simulate(1000, 8, 0.05, Some(64), 0.0);
    assert!(run.rejected > 100, "{run:?}");
}

#[test]
fn growth_slows_down_below_the_limit_of_the_last_decrease() {
    let mut limit = AdaptiveLimit::new(10_000);
    // Slow start: 8 -> 16 -> 32.
    let mut now = run_rounds(&mut limit, 2, 0.0, 0.1);
    assert_eq!(limit.limit(), 32);
    let ticket = limit.on_start(now);
    limit.on_overload(ticket, now); // at 32: halved to 16, and 32 remembered
    assert_eq!(limit.limit(), 16);
    let mut seen = Vec::new();
    for _ in 0..8 {
        now = run_rounds(&mut limit, 1, now, 0.1);
        seen.push(limit.limit());
    }
    // By its square root up to just below 32, then one at a time up to it; a round with
    // room at 32 forgets it, and growth by the square root resumes.
    assert_eq!(seen[..5], [20, 24, 29, 31, 32], "{seen:?}");
    assert!(seen[5] >= 37, "{seen:?}");
}
