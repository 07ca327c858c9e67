//! Origins of a redundant pair agree on each stream's PROGRAM-DATE-TIME epoch
//! (`ferrocast_packager::epoch` has the rule). This is the glue: it watches for publish sessions
//! that propose an epoch, asks every peer's admin listener
//! (`GET /cluster/epoch/{stream}?proposal=MS`) at once, and commits from the answers. Peers that
//! do not answer within `cluster.timeout` count as not knowing the stream.

use bytes::Bytes;
use ferrocast_packager::epoch::EpochAnswer;
use ferrocast_packager::store::Store;
use ferrocast_packager::stream::Stream;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Asks peers about epochs.
#[derive(Clone)]
pub struct Peers {
    urls: Arc<[String]>,
    timeout: Duration,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Peers {
    /// Peers by admin base URL (`http://host:port`).
    pub fn new(urls: &[String], timeout: Duration) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(timeout));
        conn.set_nodelay(true);
        Self {
            urls: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            timeout,
            client: Client::builder(TokioExecutor::new()).build(conn),
        }
    }

    async fn ask(&self, base: &str, stream: &str, proposal: i64) -> EpochAnswer {
        let uri = format!("{base}/cluster/epoch/{stream}?proposal={proposal}");
        let Ok(uri) = uri.parse::<http::Uri>() else {
            return EpochAnswer::Unknown;
        };
        let req = async {
            let resp = self.client.get(uri).await.ok()?;
            if resp.status() != http::StatusCode::OK {
                return None;
            }
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            Some(EpochAnswer::parse(std::str::from_utf8(&body).ok()?))
        };
        match tokio::time::timeout(self.timeout, req).await {
            Ok(Some(a)) => a,
            _ => {
                tracing::debug!(
                    peer = base,
                    stream,
                    "peer did not answer the epoch question"
                );
                EpochAnswer::Unknown
            }
        }
    }

    /// Agrees on the epoch of every session of `stream` until it is dropped.
    async fn follow(self, stream: Weak<Stream>) {
        let Some(mut proposals) = stream.upgrade().map(|s| s.epoch_proposals()) else {
            return;
        };
        loop {
            let Some(s) = stream.upgrade() else { return };
            if let Some(own) = s.epoch_pending() {
                let name = s.name().to_string();
                drop(s);
                let mut asks = tokio::task::JoinSet::new();
                for url in self.urls.iter() {
                    let (peers, url, name) = (self.clone(), url.clone(), name.clone());
                    asks.spawn(async move { peers.ask(&url, &name, own).await });
                }
                let answers: Vec<EpochAnswer> = asks.join_all().await;
                let Some(s) = stream.upgrade() else { return };
                match s.commit_epoch(own, &answers) {
                    Some(epoch) => tracing::info!(stream = %name, own, epoch, ?answers,
                        "PROGRAM-DATE-TIME epoch agreed"),
                    // a new session proposed meanwhile: the loop asks again for it
                    None => continue,
                }
            }
            if proposals.changed().await.is_err() {
                return;
            }
        }
    }

    /// Runs the agreement for every stream `store` creates, until `shutdown`.
    pub async fn run(self, store: Arc<Store>, shutdown: CancellationToken) {
        let mut created = store.created();
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = created.recv() => match r {
                    Ok(s) => s,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "epoch agreement fell behind new streams; they use this origin's clock");
                        continue;
                    }
                    Err(_) => return,
                },
            };
            let weak = Arc::downgrade(&stream);
            drop(stream);
            tokio::spawn(self.clone().follow(weak));
        }
    }
}

/// The admin endpoint's answer for `GET /cluster/epoch/{stream}?proposal=MS`.
pub fn answer(store: &Store, stream: &str, query: Option<&str>) -> EpochAnswer {
    let proposal = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("proposal="))
            .and_then(|v| v.parse::<i64>().ok())
    });
    match store.get(stream) {
        Some(s) => s.epoch_answer(proposal),
        None => EpochAnswer::Unknown,
    }
}
