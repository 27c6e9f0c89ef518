//! Bad servers: each misbehaviour is a clear per-request error that the one retry loop
//! handles (retried or not, as `ApiError` documents) — never a hang, a panic or an unbounded
//! buffer — for every provider, since every API of the mock runs the same directives.

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use distilabel_rs_core::http::{
    ApiError, Client, ClientConfig, Completion, Endpoint, Request, RetryObserver,
};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::AnyProvider;
use distilabel_rs_mock::MockServer;
use serde_json::{Value, json};

/// A test that hangs fails here instead of never ending.
const BOUND: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Retries(AtomicUsize);

impl RetryObserver for Retries {
    fn retried(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The four APIs of the mock, with a request of each carrying `text`.
#[derive(Debug, Clone, Copy)]
enum Api {
    OpenAi,
    Anthropic,
    Tgi,
    Ollama,
}

const APIS: [Api; 4] = [Api::OpenAi, Api::Anthropic, Api::Tgi, Api::Ollama];

impl Api {
    fn provider(self) -> AnyProvider {
        let kind = match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
            Api::Tgi => "tgi",
            Api::Ollama => "ollama",
        };
        AnyProvider::from_spec(kind, &json!({})).expect("provider")
    }

    fn base_url(self, server: &MockServer) -> String {
        match self {
            Api::OpenAi => format!("{}/v1", server.origin()),
            Api::Anthropic => server.origin(),
            Api::Tgi => format!("{}/tgi", server.origin()),
            // Ollama's host: the client adds `/api/chat`.
            Api::Ollama => server.origin(),
        }
    }

    fn request(self, text: &str) -> (Endpoint, Value) {
        match self {
            Api::OpenAi => (
                Endpoint::Chat,
                json!({"model": "m", "messages": [{"role": "user", "content": text}]}),
            ),
            Api::Anthropic => (
                Endpoint::Chat,
                json!({"model": "m", "max_tokens": 16,
                       "messages": [{"role": "user", "content": text}]}),
            ),
            Api::Tgi => (Endpoint::Text, json!({"inputs": text, "parameters": {}})),
            Api::Ollama => (
                Endpoint::Chat,
                json!({"model": "m", "stream": false,
                       "messages": [{"role": "user", "content": text}]}),
            ),
        }
    }
}

fn client(
    api: Api,
    server: &MockServer,
    tune: impl FnOnce(&mut ClientConfig),
) -> Arc<Client<AnyProvider>> {
    let mut config = ClientConfig {
        api_key: Some("sk-bad-servers-key".into()),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 2,
            base_seconds: 0.01,
            cap_seconds: 0.02,
        },
        ..ClientConfig::new(api.base_url(server))
    };
    tune(&mut config);
    Client::new(api.provider(), &config).expect("client")
}

/// Sends `text` once through `client` (the parsed completion), with the retries it took.
async fn send(
    api: Api,
    client: &Client<AnyProvider>,
    text: &str,
) -> (Result<Completion, ApiError>, usize) {
    let (endpoint, body) = api.request(text);
    let request = Request::new(client.provider(), endpoint, &body).expect("request");
    let retries = Retries::default();
    let result = tokio::time::timeout(BOUND, client.send(&request, &retries))
        .await
        .expect("the request ended within the bound");
    (result, retries.0.load(Ordering::Relaxed))
}

/// Like [`send`], as the command sends (`send_raw`).
async fn send_raw(api: Api, client: &Client<AnyProvider>, text: &str) -> Result<(), ApiError> {
    let (endpoint, body) = api.request(text);
    let request = Request::new(client.provider(), endpoint, &body).expect("request");
    tokio::time::timeout(BOUND, client.send_raw(&request, &Retries::default()))
        .await
        .expect("the request ended within the bound")
        .map(|_| ())
}

fn generation(result: &Result<Completion, ApiError>) -> String {
    match result {
        Ok(completion) => completion.generations[0].clone().expect("a generation"),
        Err(error) => panic!("expected a completion, got {error}"),
    }
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_a_retried_connection_error() {
    let server = MockServer::start(false).await.expect("server");
    for api in APIS {
        let client = client(api, &server, |c| c.retry.max_retries = 1);
        let before = server.requests();
        let (result, retries) = send(api, &client, "[[reset_mid_body]] cut").await;
        let error = result.expect_err("a reset is an error");
        assert!(
            matches!(&error, ApiError::Connection(m) if m.contains("while reading the response body")),
            "{api:?}: {error}"
        );
        assert!(error.is_retryable());
        assert_eq!((retries, server.requests() - before), (1, 2), "{api:?}");
        // A reset once, then a whole answer: the retry succeeds.
        // (`times` counts attempts per text: one text per API.)
        let text = format!("[[reset_mid_body times=1]] once {api:?}");
        let (result, retries) = send(api, &client, &text).await;
        assert!(generation(&result).contains("once"), "{api:?}");
        assert_eq!(retries, 1);
    }
}

#[tokio::test]
async fn the_timeout_bounds_a_body_that_trickles_in() {
    let server = MockServer::start(false).await.expect("server");
    for api in APIS {
        // At least 7 chunks of 8 bytes, 250 ms apart: every chunk comes well within a second,
        // the whole body in 1.5 s or more. Only a deadline on the whole response stops it.
        let slow = client(api, &server, |c| {
            c.timeout = Duration::from_secs(1);
            c.retry.max_retries = 1;
        });
        let before = server.requests();
        let (result, retries) = send(api, &slow, "[[trickle_ms=250]] slowly").await;
        assert!(
            matches!(result, Err(ApiError::Timeout(t)) if t == Duration::from_secs(1)),
            "{api:?}: {result:?}"
        );
        assert_eq!((retries, server.requests() - before), (1, 2));
        // Trickled once, then answered at once: the retry succeeds.
        let text = format!("[[trickle_ms=250 times=1]] later {api:?}");
        let (result, retries) = send(api, &slow, &text).await;
        assert!(generation(&result).contains("later"));
        assert_eq!(retries, 1);
        // A body trickled faster than the timeout arrives whole.
        let patient = client(api, &server, |_| {});
        let (result, retries) = send(api, &patient, "[[trickle_ms=1]] bit by bit").await;
        assert!(generation(&result).contains("bit by bit"), "{api:?}");
        assert_eq!(retries, 0);
    }
}

#[tokio::test]
async fn a_huge_body_is_refused_at_the_limit_and_not_retried() {
    let server = MockServer::start(false).await.expect("server");
    let default_limit = 32 * 1024 * 1024;
    for api in APIS {
        let client = client(api, &server, |c| {
            c.max_retry_wait = Duration::from_millis(50)
        });
        for text in ["[[huge_mb=100]] big", "[[huge_mb=100 content_length]] big"] {
            let before = server.requests();
            let (result, retries) = send(api, &client, text).await;
            let expected = format!("response larger than {default_limit} bytes");
            assert!(
                matches!(&result, Err(ApiError::InvalidResponse(m)) if m.contains(&expected)),
                "{api:?} {text}: {result:?}"
            );
            assert_eq!((retries, server.requests() - before), (0, 1));
        }
    }
    // The limit is the client's: a small one refuses an ordinary answer too.
    let small = client(Api::OpenAi, &server, |c| c.max_response_bytes = 100);
    let (result, _) = send(Api::OpenAi, &small, "an ordinary answer").await;
    assert!(
        matches!(&result, Err(ApiError::InvalidResponse(m)) if m.contains("response larger than 100 bytes")),
        "{result:?}"
    );
    let roomy = client(Api::OpenAi, &server, |c| {
        c.max_response_bytes = 3 * 1024 * 1024
    });
    let (result, _) = send(Api::OpenAi, &roomy, "[[huge_mb=2]] fits").await;
    // 2 MiB fit, but the body is not a whole completion: the limit let it through.
    assert!(
        matches!(&result, Err(ApiError::InvalidResponse(m)) if m.contains("not valid JSON")),
        "{result:?}"
    );
}

#[tokio::test]
async fn invalid_utf8_and_invalid_json_are_clear_and_not_retried() {
    let server = MockServer::start(false).await.expect("server");
    for api in APIS {
        let client = client(api, &server, |c| {
            c.max_retry_wait = Duration::from_millis(50)
        });
        let before = server.requests();
        let (result, retries) = send(api, &client, "[[invalid_utf8]] bytes").await;
        assert!(
            matches!(&result, Err(ApiError::InvalidResponse(m)) if m.starts_with("the response body is not valid UTF-8 (invalid byte at offset")),
            "{api:?}: {result:?}"
        );
        let raw = send_raw(api, &client, "[[invalid_utf8]] bytes").await;
        assert_eq!(raw.as_ref().err(), result.as_ref().err());
        let (result, _) = send(api, &client, "[[malformed]] json").await;
        assert!(
            matches!(&result, Err(ApiError::InvalidResponse(m)) if m.starts_with("the response body is not valid JSON (")),
            "{api:?}: {result:?}"
        );
        assert_eq!((retries, server.requests() - before), (0, 3));
    }
}

#[tokio::test]
async fn an_error_body_with_status_200_reports_the_providers_message() {
    let server = MockServer::start(false).await.expect("server");
    let expected = [
        (Api::OpenAi, "Scripted error in a 200 response"),
        (
            Api::Anthropic,
            "api_error: Scripted error in a 200 response",
        ),
        (Api::Tgi, "Scripted error in a 200 response"),
        (Api::Ollama, "Scripted error in a 200 response"),
    ];
    for (api, message) in expected {
        let client = client(api, &server, |c| {
            c.max_retry_wait = Duration::from_millis(50)
        });
        let before = server.requests();
        let (result, retries) = send(api, &client, "[[error_200]] disguised").await;
        let wanted =
            format!("the API answered 200 with an error instead of a completion: {message}");
        assert_eq!(
            result.as_ref().err(),
            Some(&ApiError::InvalidResponse(wanted.clone())),
            "{api:?}"
        );
        assert_eq!((retries, server.requests() - before), (0, 1));
        // The command's path (the body passed on unparsed) checks it too.
        assert_eq!(
            send_raw(api, &client, "[[error_200]] disguised").await,
            Err(ApiError::InvalidResponse(wanted))
        );
    }
}

#[tokio::test]
async fn same_host_307s_are_followed_a_bounded_number_of_times() {
    let server = MockServer::start(false).await.expect("server");
    for api in APIS {
        let client = client(api, &server, |c| {
            c.max_retry_wait = Duration::from_millis(50)
        });
        let before = server.requests();
        let (result, _) = send(api, &client, "[[redirects=3]] over there").await;
        assert!(generation(&result).contains("over there"), "{api:?}");
        assert_eq!(server.requests() - before, 4);

        let before = server.requests();
        let (result, retries) = send(api, &client, "[[redirect_loop]] round").await;
        match &result {
            Err(
                error @ ApiError::Status {
                    status: 307,
                    message,
                    ..
                },
            ) => {
                assert!(message.starts_with("redirect loop: "), "{message}");
                assert!(!error.is_retryable());
            }
            other => panic!("{api:?}: expected a redirect loop, got {other:?}"),
        }
        assert_eq!((retries, server.requests() - before), (0, 2));

        let before = server.requests();
        let (result, _) = send(api, &client, "[[redirects=11]] far").await;
        assert!(
            matches!(&result, Err(ApiError::Status { status: 307, message, .. }) if message.starts_with("more than 10 redirects")),
            "{api:?}: {result:?}"
        );
        assert_eq!(server.requests() - before, 11);
    }
    let strict = client(Api::OpenAi, &server, |c| c.max_redirects = 0);
    let (result, _) = send(Api::OpenAi, &strict, "[[redirects=1]] none").await;
    assert!(
        matches!(&result, Err(ApiError::Status { message, .. }) if message.starts_with("more than 0 redirects")),
        "{result:?}"
    );
}

#[tokio::test]
async fn redirects_that_would_drop_the_body_or_leak_the_key_are_refused() {
    let server = MockServer::start(true).await.expect("server");
    let client = client(Api::OpenAi, &server, |_| {});
    for status in [301, 302, 303] {
        let before = server.requests();
        let text = format!("[[redirects=1 redirect_status={status}]] moved");
        let (result, retries) = send(Api::OpenAi, &client, &text).await;
        match &result {
            Err(ApiError::Status {
                status: got,
                message,
                ..
            }) => {
                assert_eq!(*got, status);
                assert!(message.contains("redirects other than 307 and 308 are not followed"));
                assert!(
                    message.contains("mock_hop=1"),
                    "names where it pointed: {message}"
                );
            }
            other => panic!("expected a refused redirect, got {other:?}"),
        }
        assert_eq!((retries, server.requests() - before), (0, 1));
    }
    // `localhost` is this same server under another name: the key must not go there.
    let before = server.requests();
    let (result, _) = send(
        Api::OpenAi,
        &client,
        "[[redirects=1 redirect_host=localhost]] away",
    )
    .await;
    assert!(
        matches!(&result, Err(ApiError::Status { status: 307, message, .. }) if message.contains("another host")),
        "{result:?}"
    );
    assert_eq!(server.requests() - before, 1);
    // The redirects that were followed resent the body and the key.
    let (result, _) = send(Api::OpenAi, &client, "[[redirects=2]] kept").await;
    assert!(generation(&result).contains("kept"));
    let recorded = server.recorded();
    let hops: Vec<_> = recorded
        .iter()
        .filter(|r| r.body.contains("[[redirects=2]] kept"))
        .collect();
    assert_eq!(hops.len(), 3);
    assert!(
        hops.iter().all(|r| r.method == "POST"
            && r.authorization.as_deref() == Some("Bearer sk-bad-servers-key"))
    );
    assert_eq!(hops[2].query, "mock_hop=2");
}

#[tokio::test]
async fn error_statuses_with_bad_bodies_keep_their_status() {
    // A 503 is retried whatever its body; the message is what could be read of it.
    let server = MockServer::start(false).await.expect("server");
    let client = client(Api::OpenAi, &server, |c| c.retry.max_retries = 1);
    let (result, retries) = send(Api::OpenAi, &client, "[[status=503 times=1]] busy").await;
    assert!(generation(&result).contains("busy"));
    assert_eq!(retries, 1);
}

/// Fuzzing finding: a retry hint too large for a `Duration` (`retry-after: 1e300`, a Go
/// duration of 10^20 hours) panicked the retry loop; any hint now waits at most
/// `max_retry_wait`.
#[tokio::test]
async fn absurd_retry_hints_wait_at_most_the_bound() {
    let server = MockServer::start(false).await.expect("server");
    let hints = [
        (Api::OpenAi, "retry_after=1e300"),
        (Api::OpenAi, "retry_after_ms=1e308"),
        (Api::OpenAi, "ratelimit_reset=100000000000000000000h"),
        (Api::Anthropic, "retry_after=1e300"),
        (Api::Tgi, "retry_after=1e300"),
        (Api::Ollama, "retry_after=1e300"),
        (Api::Ollama, "retry_after_ms=1e308"),
    ];
    for (api, hint) in hints {
        let client = client(api, &server, |c| {
            c.max_retry_wait = Duration::from_millis(50)
        });
        let text = format!("[[status=429 times=1 {hint}]] {api:?}");
        let (result, retries) = send(api, &client, &text).await;
        assert!(generation(&result).contains(&format!("{api:?}")), "{hint}");
        assert_eq!(retries, 1);
    }
}
