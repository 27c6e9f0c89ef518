//! The provider-neutral HTTP layer: one client (connection pool, TLS, admission by request
//! and token rate limits, one retry loop), the dispatch of many requests at once, one error
//! type and one completion type. What differs between APIs (paths, authentication, body
//! parsing, error bodies, rate-limit headers) is behind [`Provider`].

pub mod client;
pub mod completion;
pub mod dispatch;
pub mod error;
mod http1;
mod http1_wire;
pub mod provider;
pub mod retry_hint;

pub use client::{Client, ClientConfig, FormPart, Payload, Request, RetryObserver};
// So that users of the core (the binding) name HTTP methods without depending on reqwest.
pub use completion::{Completion, TokenLogprob};
pub use dispatch::{
    Limiter, Observers, Permit, RequestCounters, is_overload, run_many, run_many_limited,
};
pub use error::ApiError;
pub use provider::{Endpoint, Provider, RequestDefaults, TokenFields, reserve_tokens};
pub use reqwest::Method;
