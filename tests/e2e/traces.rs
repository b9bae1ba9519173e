//! Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, `hotpatchd` exports its spans over OTLP/HTTP
//! (here to a stand-in collector that keeps what it is sent); without it, nothing is sent.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use hotpatch_e2e::{start_fresh, Started};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A collector that answers 200 to everything and keeps each request (head and body) as bytes.
async fn collector() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 16384];
                // Until the body announced by content-length is in.
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&chunk[..n]);
                    if complete(&request) {
                        break;
                    }
                }
                keep.lock().unwrap().push(request);
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, received)
}

fn complete(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some(head_end) = text.find("\r\n\r\n") else { return false };
    let length = text[..head_end]
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    request.len() >= head_end + 4 + length
}

#[tokio::test]
async fn requests_are_exported_as_spans_to_the_configured_collector() {
    let (url, received) = collector().await;
    let Started { server, token, dir: _dir, db: _db } =
        start_fresh(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &url)]).await;
    for _ in 0..3 {
        let r = server.http().get(server.url("/v1/machines")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // The batch exporter sends what is left when the service stops.
    let (status, output) = server.terminate().await;
    let served =
        output.lines().find(|l| l.contains("served") && l.contains("/v1/machines")).unwrap_or_default();
    let trace_id =
        served.split("trace_id=").nth(1).map(|t| t.chars().take_while(char::is_ascii_hexdigit).count());
    assert_eq!(trace_id, Some(32), "log lines name the request's trace: {served}");
    assert!(status.success(), "{output}");
    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "no export reached the collector:\n{output}");
    let all: Vec<u8> = received.concat();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("POST /v1/traces "), "{}", &text[..text.len().min(200)]);
    assert!(text.to_ascii_lowercase().contains("content-type: application/x-protobuf"));
    // Protobuf keeps strings as they are: the service's name, the span's name and its fields.
    assert!(text.contains("hotpatchd"), "the service name");
    assert!(text.contains("request") && text.contains("/v1/machines"), "a span per request");
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported() {
    let (url, received) = collector().await;
    let Started { server, token, dir: _dir, db: _db } =
        start_fresh(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]).await;
    let r = server.http().get(server.url("/v1/machines")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = server.terminate().await;
    assert!(received.lock().unwrap().is_empty(), "nothing may reach {url}");
}
