//! `hold=N`: answers wait until N requests are in flight at once.

#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use distilabel_rs_mock::MockServer;

async fn post(address: std::net::SocketAddr, text: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{text}"}}]}}"#);
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_releases_when_enough_requests_are_in_flight() {
    let server = MockServer::start(false).await.expect("server");
    let address = server.address();
    let started = Instant::now();
    let tasks: Vec<_> = (0..5)
        .map(|i| tokio::spawn(post(address, format!("[[hold=5]] {i}"))))
        .collect();
    for task in tasks {
        let answer = task.await.expect("joined");
        assert!(answer.contains("echo: [[hold=5]]"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(server.peak_in_flight(), 5);
}
