//! The `on_publish` webhook against a real HTTP listener: what it is sent, and that only a
//! 2xx answer allows (a refusal, a slow hook and a missing hook all refuse).

use ferrocast_auth::publish::{PublishAuth, PublishAuthConfig, PublishRequest};
use ferrocast_auth::{AuthError, AuthMetrics};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A one-route HTTP/1.1 server answering every request with `status` after `delay`, and
/// handing over each request body.
async fn hook(status: u16, delay: Duration) -> (String, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/on_publish", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let _ = tx.send(text[end + 4..end + 4 + len].to_string()).await;
                    tokio::time::sleep(delay).await;
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                    buf.clear();
                }
            });
        }
    });
    (url, rx)
}

fn auth(url: &str, timeout: Duration) -> PublishAuth {
    PublishAuth::new(
        PublishAuthConfig {
            webhook: url.to_string(),
            webhook_timeout: timeout,
            ..Default::default()
        },
        AuthMetrics::unregistered(),
    )
    .unwrap()
}

fn req(credential: Option<&str>) -> PublishRequest<'_> {
    PublishRequest {
        protocol: "rtmp",
        stream: "cam",
        credential,
        client: "192.0.2.9:40000".parse().unwrap(),
    }
}

#[tokio::test]
async fn allows_on_2xx_and_is_told_everything() {
    let (url, mut bodies) = hook(204, Duration::ZERO).await;
    let a = auth(&url, Duration::from_secs(2));
    assert_eq!(a.check(req(Some("k1"))).await, Ok("webhook"));
    let body: serde_json::Value = serde_json::from_str(&bodies.recv().await.unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "action": "publish", "protocol": "rtmp", "stream": "cam",
            "client_addr": "192.0.2.9:40000", "key": "k1"
        })
    );
    // asked again for the next attempt (no decision is cached)
    assert_eq!(a.check(req(None)).await, Ok("webhook"));
    let body: serde_json::Value = serde_json::from_str(&bodies.recv().await.unwrap()).unwrap();
    assert_eq!(body["key"], serde_json::Value::Null);
}

#[tokio::test]
async fn refuses_on_other_answers() {
    let (url, _bodies) = hook(403, Duration::ZERO).await;
    assert_eq!(
        auth(&url, Duration::from_secs(2))
            .check(req(Some("k")))
            .await,
        Err(AuthError::Denied(403))
    );
    let (url, _bodies) = hook(500, Duration::ZERO).await;
    assert_eq!(
        auth(&url, Duration::from_secs(2))
            .check(req(Some("k")))
            .await,
        Err(AuthError::Denied(500))
    );
}

#[tokio::test]
async fn fails_closed() {
    // slower than the timeout
    let (url, mut bodies) = hook(200, Duration::from_secs(5)).await;
    let started = tokio::time::Instant::now();
    let r = auth(&url, Duration::from_millis(300))
        .check(req(Some("k")))
        .await;
    assert!(matches!(r, Err(AuthError::Webhook(_))), "{r:?}");
    assert!(bodies.recv().await.is_some(), "the hook was asked");
    assert!(started.elapsed() < Duration::from_secs(3));
    // nobody listening
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    drop(l);
    let r = auth(&url, Duration::from_secs(1))
        .check(req(Some("k")))
        .await;
    assert!(matches!(r, Err(AuthError::Webhook(_))), "{r:?}");
}

#[test]
fn only_plain_http_urls() {
    for bad in ["https://x/", "ftp://x/", "not a url", "/path"] {
        assert!(
            PublishAuth::new(
                PublishAuthConfig {
                    webhook: bad.into(),
                    webhook_timeout: Duration::from_secs(1),
                    ..Default::default()
                },
                AuthMetrics::unregistered()
            )
            .is_err(),
            "{bad}"
        );
    }
}
