//! Rate limiting, jitter, the retry policy and the client defaults, shared by the fan-out
//! scheduler, the native HTTP client and the `distilabel-rs generate` command.

use std::time::Duration;

/// A token bucket refilled continuously at `per_second`, holding at most `capacity`.
/// Takes may overdraw it (a reservation later reconciled down), which delays later takes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    updated: Option<f64>,
}

impl TokenBucket {
    /// Requests per minute, spread evenly: at most one second's worth (and at least one
    /// request) at once.
    pub fn per_minute(requests_per_minute: f64) -> Self {
        let per_second = requests_per_minute / 60.0;
        Self::new(per_second, per_second.max(1.0))
    }

    /// Tokens per minute: a whole minute's worth may be used at once (a single request
    /// may need thousands of tokens).
    pub fn tokens_per_minute(tokens_per_minute: f64) -> Self {
        Self::new(tokens_per_minute / 60.0, tokens_per_minute)
    }

    fn new(per_second: f64, capacity: f64) -> Self {
        Self {
            per_second,
            capacity,
            tokens: capacity,
            updated: None,
        }
    }

    fn refill(&mut self, now: f64) {
        if let Some(updated) = self.updated {
            let elapsed = (now - updated).max(0.0);
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        }
        self.updated = Some(now);
    }

    /// Takes one token at time `now` (seconds), or says how long until one is there.
    pub fn take(&mut self, now: f64) -> Result<(), f64> {
        self.take_n(1.0, now)
    }

    /// Takes `amount` tokens (at most the capacity is waited for), or says how long until
    /// they are there.
    pub fn take_n(&mut self, amount: f64, now: f64) -> Result<(), f64> {
        self.refill(now);
        let needed = amount.min(self.capacity);
        if self.tokens >= needed {
            self.tokens -= amount;
            Ok(())
        } else {
            Err((needed - self.tokens) / self.per_second)
        }
    }

    /// Gives back tokens taken in excess (or takes more, when `amount` is negative).
    pub fn refund(&mut self, amount: f64) {
        self.tokens = (self.tokens + amount).min(self.capacity);
    }
}

/// splitmix64: small, fast and good enough for jitter; no dependency needed.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A uniform random number in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 random bits -> [0, 1)
        #[allow(clippy::cast_precision_loss)]
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }
}

/// Exponential backoff with full jitter: the n-th retry waits a uniform random time in
/// `[0, min(cap, base * 2^n))`, unless the failure carried a retry-after hint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_seconds: f64,
    pub cap_seconds: f64,
}

impl RetryPolicy {
    /// The full-jitter backoff before retry number `retry_number` (0 for the first).
    pub fn backoff(&self, retry_number: u32, jitter: &mut Jitter) -> f64 {
        let exponent = i32::try_from(retry_number).unwrap_or(i32::MAX);
        let ceiling = (self.base_seconds * 2f64.powi(exponent)).min(self.cap_seconds);
        ceiling.max(0.0) * jitter.next_unit()
    }
}

/// The defaults of every native client (`OpenAILLM` and the other native LLMs, and the
/// `distilabel-rs` command): one set, so that both behave the same unless told otherwise.
/// The Python side reads them from `_core.CLIENT_DEFAULTS`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientDefaults {
    /// Per request attempt (distilabel's `timeout=120`).
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Requests in flight at once (also the keep-alive pool size).
    pub max_concurrency: usize,
}

/// distilabel's `max_retries=6` and `timeout=120`, and `AsyncLLM`'s backoff fields
/// (`retry_backoff_base=1.0`, `retry_backoff_max=60.0`, `max_concurrency=64`).
pub const CLIENT_DEFAULTS: ClientDefaults = ClientDefaults {
    timeout: Duration::from_secs(120),
    retry: RetryPolicy {
        max_retries: 6,
        base_seconds: 1.0,
        cap_seconds: 60.0,
    },
    max_concurrency: 64,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_per_minute_waits_for_large_reservations_and_reconciles() {
        let mut bucket = TokenBucket::tokens_per_minute(600.0); // 10 tokens/s, 600 at once
        assert_eq!(bucket.take_n(500.0, 0.0), Ok(()));
        assert_eq!(bucket.take_n(200.0, 0.0), Err(10.0));
        bucket.refund(300.0); // the first request used 200, not 500
        assert_eq!(bucket.take_n(200.0, 0.0), Ok(()));
        // More than the capacity: waits until the bucket is full, then overdraws.
        assert!(bucket.take_n(1000.0, 0.0).is_err());
        assert_eq!(bucket.take_n(1000.0, 60.0), Ok(()));
        assert!(bucket.take(60.0).is_err());
    }

    #[test]
    fn jitter_is_uniform_enough() {
        let mut jitter = Jitter::new(1);
        let samples: Vec<f64> = (0..10_000).map(|_| jitter.next_unit()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = samples.iter().sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
