//! The native OpenAI-compatible client: requests, retries, limits and parsing, all in Rust.
//!
//! [`client::OpenAiClient`] sends one request with retries; [`batch::run_batch`] runs a
//! whole batch with bounded concurrency and rate limits, and returns one result per request
//! in request order. Nothing here touches Python.

pub mod batch;
pub mod batch_api;
pub mod client;
pub mod error;
pub mod response;

pub use batch::{BatchProgress, run_batch};
pub use client::{ClientConfig, Endpoint, OpenAiClient, Request};
pub use error::ApiError;
pub use response::{Completion, TokenLogprob};
