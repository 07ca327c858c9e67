//! The `on_publish` webhook: one HTTP POST per publish attempt, answered within a timeout.

use crate::AuthError;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A webhook endpoint (plain HTTP; it is meant to run next to the server).
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    url: http::Uri,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Webhook {
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Webhook, AuthError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| AuthError::Config(format!("webhook URL {url:?}: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(AuthError::Config(format!(
                "webhook URL {url:?} must be http://host[:port]/path"
            )));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .build(connector);
        Ok(Webhook {
            url: uri,
            timeout,
            client,
        })
    }

    /// Posts `body` (JSON); any 2xx answer allows, any other refuses, and no answer within the
    /// timeout refuses too (fail closed).
    pub(crate) async fn ask(&self, body: String) -> Result<(), AuthError> {
        let req = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "ferrocast")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AuthError::Webhook(e.to_string()))?;
        let resp = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| AuthError::Webhook(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| AuthError::Webhook(e.to_string()))?;
        let status = resp.status();
        // the body is not read: the status is the answer (dropping it closes the connection
        // rather than draining an unbounded body)
        drop(resp);
        if status.is_success() {
            Ok(())
        } else {
            Err(AuthError::Denied(status.as_u16()))
        }
    }
}
