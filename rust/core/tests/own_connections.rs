//! The client's own HTTP/1.1 connections for generation requests to plain-`http://` servers
//! (`http/http1.rs`): the same requests as through reqwest, connections kept and reused,
//! servers that close them, and the faults of `bad_servers.rs` on the reqwest transport
//! (which still carries TLS, proxies and redirects elsewhere). Then the same connections
//! against scripted servers on raw sockets: answers in pieces, interim heads, chunked and
//! until-close bodies, and connections the server closes between or during requests — each
//! request sent once.

// Helpers of these tests panic on setup failures, like the tests themselves.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use distilabel_rs_core::http::{ApiError, Client, ClientConfig, Endpoint, Request, RetryObserver};
use distilabel_rs_core::limits::RetryPolicy;
use distilabel_rs_core::providers::AnyProvider;
use distilabel_rs_mock::MockServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(60);
const COMPLETION: &str = r#"{"id":"c","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}"#;

struct Unobserved;

impl RetryObserver for Unobserved {
    fn retried(&self) {}
}

fn client(
    server: &MockServer,
    own: bool,
    tune: impl FnOnce(&mut ClientConfig),
) -> Arc<Client<AnyProvider>> {
    let mut config = ClientConfig {
        api_key: Some("sk-own-connections".into()),
        default_headers: vec![("x-extra".into(), "kept".into())],
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 1,
            base_seconds: 0.01,
            cap_seconds: 0.02,
        },
        own_http1_connections: own,
        ..ClientConfig::new(format!("{}/v1", server.origin()))
    };
    tune(&mut config);
    let provider = AnyProvider::from_spec("openai", &json!({})).expect("provider");
    Client::new(provider, &config).expect("client")
}

async fn send(client: &Client<AnyProvider>, text: &str) -> Result<String, ApiError> {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    let request = Request::new(client.provider(), Endpoint::Chat, &body).expect("request");
    let completion = tokio::time::timeout(BOUND, client.send(&request, &Unobserved))
        .await
        .expect("the request ended within the bound")?;
    Ok(completion.generations[0].clone().expect("a generation"))
}

#[tokio::test]
async fn both_transports_send_the_same_request() {
    let server = MockServer::start(true).await.expect("server");
    for own in [true, false] {
        let client = client(&server, own, |_| {});
        assert_eq!(send(&client, "same").await.expect("answer"), "echo: same");
    }
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 2);
    let seen = |index: usize| {
        let request = &recorded[index];
        let mut headers = request.headers.clone();
        headers.sort();
        (
            request.method.clone(),
            request.path.clone(),
            request.query.clone(),
            request.body.clone(),
            headers,
        )
    };
    assert_eq!(seen(0), seen(1));
    let headers = seen(0).4;
    for (name, value) in [
        ("authorization", "Bearer sk-own-connections"),
        ("content-type", "application/json"),
        ("x-extra", "kept"),
        ("accept", "*/*"),
    ] {
        assert!(
            headers.contains(&(name.to_owned(), value.to_owned())),
            "{name}: {headers:?}"
        );
    }
}

#[tokio::test]
async fn connections_are_kept_and_reused() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, true, |c| c.pool_size = 8);
    for number in 0..50 {
        send(&client, &format!("one after another {number}"))
            .await
            .expect("answer");
    }
    assert_eq!(server.connections(), 1);

    // Eight at a time, several rounds: never more connections than requests at once.
    for round in 0..5 {
        let sends = (0..8).map(|number| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { send(&client, &format!("round {round} {number}")).await })
        });
        for sent in results_of(sends).await {
            sent.expect("answer");
        }
    }
    assert!(server.connections() <= 8, "{}", server.connections());
}

async fn results_of<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut results = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        results.push(handle.await.expect("task"));
    }
    results
}

#[tokio::test]
async fn a_server_that_closes_each_connection_is_answered_on_new_ones() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, true, |c| c.retry.max_retries = 0);
    for number in 0..20 {
        // No retry allowed: a closed connection taken from the pool would fail the request.
        let text = format!("[[close]] closed {number}");
        assert!(
            send(&client, &text)
                .await
                .expect("answer")
                .contains("closed")
        );
    }
    assert_eq!(server.connections(), 20);
}

#[tokio::test]
async fn the_reqwest_transport_handles_bad_servers_too() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, false, |c| {
        c.max_response_bytes = 100_000;
        c.timeout = Duration::from_millis(500);
    });
    let error = send(&client, "[[reset_mid_body]] cut")
        .await
        .expect_err("reset");
    assert!(
        matches!(&error, ApiError::Connection(m) if m.contains("while reading the response body")),
        "{error:?}"
    );
    let error = send(&client, "[[huge_mb=1]] big")
        .await
        .expect_err("too large");
    assert!(
        matches!(&error, ApiError::InvalidResponse(m) if m.contains("response larger than 100000 bytes")),
        "{error:?}"
    );
    let error = send(&client, "[[trickle_ms=400]] slow")
        .await
        .expect_err("slow");
    assert!(matches!(error, ApiError::Timeout(_)), "{error:?}");
    assert!(
        send(&client, "[[redirects=2]] there")
            .await
            .expect("answer")
            .contains("there")
    );
}

#[tokio::test]
async fn the_own_transport_bounds_a_trickling_body_by_the_timeout() {
    let server = MockServer::start(false).await.expect("server");
    let client = client(&server, true, |c| c.timeout = Duration::from_millis(500));
    let error = send(&client, "[[trickle_ms=400]] slow")
        .await
        .expect_err("slow");
    assert!(matches!(error, ApiError::Timeout(_)), "{error:?}");
    // The connection cut by the deadline is not reused: the next request is answered.
    assert_eq!(send(&client, "after").await.expect("answer"), "echo: after");
}

/// A server whose every connection is handled by `script` (given the connection's number
/// from 0); counts connections and requests read.
struct Scripted {
    origin: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start<F, Fut>(script: F) -> Self
    where
        F: Fn(usize, Conn) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (counted, read) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let number = counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(script(
                    number,
                    Conn {
                        stream,
                        requests: Arc::clone(&read),
                    },
                ));
            }
        });
        Self {
            origin,
            connections,
            requests,
        }
    }

    fn client(&self) -> Arc<Client<AnyProvider>> {
        let config = ClientConfig {
            api_key: Some("sk-wire".into()),
            timeout: Duration::from_secs(5),
            // No retry: a request that needed one would fail the test.
            retry: RetryPolicy {
                max_retries: 0,
                base_seconds: 0.01,
                cap_seconds: 0.02,
            },
            own_http1_connections: true,
            ..ClientConfig::new(format!("{}/v1", self.origin))
        };
        let provider = AnyProvider::from_spec("openai", &json!({})).expect("provider");
        Client::new(provider, &config).expect("client")
    }
}

struct Conn {
    stream: TcpStream,
    requests: Arc<AtomicUsize>,
}

impl Conn {
    /// Reads one whole request (head and `content-length` body); false at the end of the
    /// stream.
    async fn read_request(&mut self) -> bool {
        let mut data = Vec::new();
        let mut piece = [0u8; 4096];
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .and_then(|value| value.trim().parse().ok())
                    .expect("a content-length");
                if data.len() >= end + 4 + length {
                    self.requests.fetch_add(1, Ordering::SeqCst);
                    return true;
                }
            }
            match self.stream.read(&mut piece).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => data.extend_from_slice(&piece[..n]),
            }
        }
    }

    /// Writes `pieces` one by one, each sent on its own.
    async fn write_pieces(&mut self, pieces: &[&[u8]]) {
        for piece in pieces {
            self.stream.write_all(piece).await.expect("write");
            self.stream.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn answer(&mut self) {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            COMPLETION.len()
        );
        self.write_pieces(&[head.as_bytes(), COMPLETION.as_bytes()])
            .await;
    }
}

#[tokio::test]
async fn an_answer_in_pieces_after_interim_heads_with_chunks_is_read_whole() {
    let server = Scripted::start(|_, mut conn| async move {
        while conn.read_request().await {
            let (first, rest) = COMPLETION.split_at(40);
            let chunks = [
                format!("{:x};ext=1\r\n{first}\r\n", first.len()),
                format!("{:X}\r\n{rest}\r\n", rest.len()),
            ];
            conn.write_pieces(&[
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 200 OK\r\ncontent-type: appli",
                b"cation/json\r\ntransfer-encoding: chunked\r\n\r\n",
                chunks[0].as_bytes(),
                &chunks[1].as_bytes()[..3],
                &chunks[1].as_bytes()[3..],
                b"0\r\nx-trailer: t\r\n",
                b"\r\n",
            ])
            .await;
        }
    })
    .await;
    let client = server.client();
    for _ in 0..3 {
        assert_eq!(send(&client, "q").await.expect("answer"), "hi there");
    }
    // Read to the end of the chunked body: the connection carried all three.
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_not_used() {
    // Each connection answers one request as if it kept the connection, then closes it.
    let server = Scripted::start(|_, mut conn| async move {
        if conn.read_request().await {
            conn.answer().await;
        }
    })
    .await;
    let client = server.client();
    for _ in 0..5 {
        assert_eq!(send(&client, "q").await.expect("answer"), "hi there");
        // The server's end of stream reaches the client while the connection is idle.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 5);
    assert_eq!(server.requests.load(Ordering::SeqCst), 5, "each sent once");
}

#[tokio::test]
async fn a_body_until_the_close_is_read_and_its_connection_not_kept() {
    let server = Scripted::start(|_, mut conn| async move {
        if conn.read_request().await {
            let (first, rest) = COMPLETION.split_at(10);
            conn.write_pieces(&[
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n",
                first.as_bytes(),
                rest.as_bytes(),
            ])
            .await;
        }
    })
    .await;
    let client = server.client();
    for _ in 0..2 {
        assert_eq!(send(&client, "q").await.expect("answer"), "hi there");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_closed_before_or_within_the_answer_is_a_connection_error() {
    let server = Scripted::start(|number, mut conn| async move {
        if conn.read_request().await {
            match number {
                0 => {}
                1 => conn.write_pieces(&[b"HTTP/1.1 200 OK\r\ncontent-le"]).await,
                _ => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                        COMPLETION.len()
                    );
                    conn.write_pieces(&[head.as_bytes(), &COMPLETION.as_bytes()[..20]])
                        .await;
                }
            }
        }
    })
    .await;
    let client = server.client();
    for expected in [
        "connection closed before message completed",
        "connection closed before message completed",
        "the connection broke while reading the response body",
    ] {
        let error = send(&client, "q").await.expect_err("cut");
        assert!(
            matches!(&error, ApiError::Connection(message) if message.contains(expected)),
            "{error:?}"
        );
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 3, "none sent twice");
}

#[tokio::test]
async fn a_response_that_is_not_http_is_a_clear_error() {
    let server = Scripted::start(|_, mut conn| async move {
        if conn.read_request().await {
            conn.write_pieces(&[b"SSH-2.0-OpenSSH_9.6\r\n\r\n"]).await;
        }
    })
    .await;
    let error = send(&server.client(), "q").await.expect_err("not http");
    assert!(
        matches!(&error, ApiError::Connection(message) if message.contains("invalid HTTP response head")),
        "{error:?}"
    );
}
