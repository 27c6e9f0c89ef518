//! Pure-Rust core of distilabel-rs.
//!
//! Nothing here knows about Python: the binding crate (`rust/python`) adapts Python objects
//! to the types and small traits defined here, so every algorithm can be tested with
//! `cargo test` alone.
//!
//! - [`merge`]: group `n` single-generation responses per input (distilabel's
//!   `merge_responses`), in one pass; [`grouper`]: distilabel's `grouper` chunking.
//! - [`fanout`]: the decisions of the bounded fan-out of Python `agenerate` calls (order,
//!   retries, rate limit, progress).
//! - [`limits`]: token buckets, jitter, the retry policy and the one set of client defaults.
//! - [`http`]: the provider-neutral HTTP layer (client, admission, retries, dispatch of many
//!   online requests, errors, completions) and the [`http::Provider`] trait.
//! - [`providers`]: one folder per API (OpenAI and its compatible profiles, Anthropic...).
//! - [`batch_jobs`]: offline generation through a provider's Batch API, provider-neutral.
//! - [`generate_job`]: the `distilabel-rs generate` command's streaming, resumable job.
//! - [`runtime`]: the per-process tokio runtime.

pub mod adaptive;
pub mod batch_jobs;
pub mod fanout;
pub mod generate_job;
pub mod grouper;
pub mod http;
pub mod limits;
pub mod merge;
pub mod providers;
pub mod runtime;
