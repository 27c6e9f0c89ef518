//! Pure-Rust core of distilabel-rs.
//!
//! Nothing here knows about Python: the binding crate (`rust/python`) adapts Python objects
//! to the small traits defined in each module, so every algorithm can be tested with
//! `cargo test` alone.
//!
//! - [`grouping`]: group `n` single-generation responses per input (distilabel's
//!   `merge_responses`), in one pass.
//! - [`fanout`]: the decisions of the bounded fan-out of requests (order, retries, rate
//!   limit, progress).
//! - [`chunking`]: split a stream into fixed-size chunks with distilabel's `grouper` policies.

pub mod chunking;
pub mod fanout;
pub mod grouping;
pub mod jsonl_job;
pub mod limits;
pub mod mock_server;
pub mod openai;
pub mod runtime;
