//! A provider with limited capacity, for benchmarks of concurrency control: at most
//! `capacity` generation requests are served at once, each taking `base_latency`; up to
//! `capacity` more wait their turn in a first-come, first-served queue; beyond that (more
//! than twice the capacity in the server) requests are refused at once with 429 and a
//! `Retry-After` of one base latency (also as `retry-after-ms`), in the API's own error
//! shape. Without a capacity, every generation request just takes `base_latency`.
//!
//! Applies to the generation endpoints of every API (OpenAI chat and completions,
//! Anthropic Messages, TGI, Ollama's chat and generate); batch, file and model endpoints
//! are not limited. Directives (`[[sleep_ms=...]]`...) still apply on top.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::header::HeaderValue;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::{Call, Reply, reply_json};

/// How a server with limited capacity behaves (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapacityModel {
    /// Requests served at once; `None`: no limit.
    pub capacity: Option<usize>,
    /// How long serving one request takes.
    pub base_latency: Duration,
}

#[derive(Debug)]
pub(crate) struct Capacity {
    model: CapacityModel,
    slots: Option<Semaphore>,
    /// Requests in the server: served and queued.
    admitted: AtomicUsize,
    rejected: AtomicUsize,
}

/// Gives the admission back when the request is answered (or its connection drops).
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Capacity {
    pub(crate) fn new(model: CapacityModel) -> Self {
        Self {
            model,
            slots: model.capacity.map(|c| Semaphore::new(c.max(1))),
            admitted: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
        }
    }

    /// Requests refused with 429 so far.
    pub(crate) fn rejected(&self) -> usize {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Whether `call` asks for a generation (the requests the capacity applies to).
    pub(crate) fn applies_to(call: &Call<'_>) -> bool {
        if call.method != "POST" {
            return false;
        }
        let path = call.path.trim_end_matches('/');
        path.ends_with("/completions")
            || path.ends_with("/v1/messages")
            || path.ends_with("/api/chat")
            || path.ends_with("/generate")
            || matches!(path, "" | "/tgi")
            || path.starts_with("/hf-inference/models/")
    }

    /// Serves `answer` within the capacity: waits for a slot and the base latency, or
    /// refuses with 429 when the server holds twice its capacity already.
    pub(crate) async fn serve(
        &self,
        call: &Call<'_>,
        answer: impl Future<Output = Reply>,
    ) -> Reply {
        let Some(slots) = &self.slots else {
            tokio::time::sleep(self.model.base_latency).await;
            return answer.await;
        };
        let capacity = self.model.capacity.unwrap_or(1).max(1);
        let before = self.admitted.fetch_add(1, Ordering::Relaxed);
        let admitted = Admitted(&self.admitted);
        if before >= 2 * capacity {
            drop(admitted);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return self.refusal(call);
        }
        // Fair (first come, first served); never closed.
        let Ok(_slot) = slots.acquire().await else {
            return self.refusal(call);
        };
        tokio::time::sleep(self.model.base_latency).await;
        let reply = answer.await;
        drop(admitted);
        reply
    }

    fn refusal(&self, call: &Call<'_>) -> Reply {
        let message = "The server is at capacity; retry after the time in retry-after.";
        let body = if call.path.contains("/messages") {
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": message}})
        } else if call.path.contains("completions") {
            json!({"error": {"message": message, "type": "requests", "code": "rate_limit_exceeded"}})
        } else {
            json!({"error": message, "error_type": "overloaded"})
        };
        let mut reply = reply_json(429, &body);
        let wait = self.model.base_latency.max(Duration::from_millis(1));
        let headers = reply.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&format!("{:.3}", wait.as_secs_f64())) {
            headers.insert("retry-after", value);
        }
        if let Ok(value) = HeaderValue::from_str(&wait.as_millis().to_string()) {
            headers.insert("retry-after-ms", value);
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(
        method: &'a str,
        path: &'a str,
        headers: &'a hyper::HeaderMap,
        body: &'a bytes::Bytes,
    ) -> Call<'a> {
        Call {
            method,
            path,
            query: "",
            headers,
            body,
        }
    }

    #[test]
    fn applies_to_generation_endpoints_only() {
        let headers = hyper::HeaderMap::new();
        let body = bytes::Bytes::new();
        for path in [
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/messages",
            "/",
            "/tgi",
            "/generate",
            "/tgi/generate",
            "/api/chat",
            "/api/generate",
            "/hf-inference/models/m",
        ] {
            assert!(
                Capacity::applies_to(&call("POST", path, &headers, &body)),
                "{path}"
            );
        }
        for (method, path) in [
            ("GET", "/v1/models"),
            ("POST", "/v1/files"),
            ("POST", "/v1/batches"),
            ("POST", "/v1/messages/batches"),
            ("GET", "/v1/chat/completions"),
        ] {
            assert!(
                !Capacity::applies_to(&call(method, path, &headers, &body)),
                "{path}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn queues_beyond_capacity_and_refuses_beyond_twice_it() {
        let capacity = std::sync::Arc::new(Capacity::new(CapacityModel {
            capacity: Some(2),
            base_latency: Duration::from_millis(100),
        }));
        let headers = hyper::HeaderMap::new();
        let body = bytes::Bytes::new();
        let started = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let capacity = std::sync::Arc::clone(&capacity);
            let (headers, body) = (headers.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let call = call("POST", "/v1/chat/completions", &headers, &body);
                let reply = capacity
                    .serve(&call, async { reply_json(200, &json!({})) })
                    .await;
                let retry_after = reply
                    .headers()
                    .get("retry-after-ms")
                    .map(|v| v.to_str().unwrap_or_default().to_owned());
                (reply.status().as_u16(), started.elapsed(), retry_after)
            }));
            tokio::task::yield_now().await;
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let ms = |d: Duration| d.as_millis();
        let summary: Vec<(u16, u128)> = outcomes.iter().map(|(s, d, _)| (*s, ms(*d))).collect();
        // Two served at once, two queued (served after the first two), the fifth refused.
        assert_eq!(
            summary,
            [(200, 100), (200, 100), (200, 200), (200, 200), (429, 0)]
        );
        assert_eq!(outcomes[4].2.as_deref(), Some("100"));
        assert_eq!(capacity.rejected(), 1);
    }
}
