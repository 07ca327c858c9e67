//! The publish hook: every ingest protocol asks it before a stream goes live.

use crate::jwt::Jwt;
use crate::secret::SecretTag;
use crate::webhook::Webhook;
use crate::{AuthError, AuthMetrics};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// A publish attempt.
#[derive(Debug, Clone, Copy)]
pub struct PublishRequest<'a> {
    /// `"rtmp"` or `"whip"`.
    pub protocol: &'static str,
    /// The stream name.
    pub stream: &'a str,
    /// The key or token presented (RTMP `?key=`/`?token=`, WHIP bearer), if any.
    pub credential: Option<&'a str>,
    /// The publisher's address.
    pub client: SocketAddr,
}

/// Publish auth settings.
#[derive(Debug, Clone, Default)]
pub struct PublishAuthConfig {
    /// Stream name → key. The name `"*"` holds a key valid for every stream.
    pub keys: HashMap<String, String>,
    /// Accept JWTs (HS256/RS256) whose `stream` claim names the stream.
    pub jwt: Option<Arc<Jwt>>,
    /// `on_publish` webhook URL (empty: none).
    pub webhook: String,
    /// How long the webhook may take.
    pub webhook_timeout: Duration,
}

/// The publish hook. Clones share it: [`PublishAuth::replace`] changes the methods of every
/// clone (a config reload), and a publish being decided finishes with the methods it began with.
#[derive(Debug, Clone)]
pub struct PublishAuth {
    inner: Arc<arc_swap::ArcSwap<Inner>>,
}

#[derive(Debug)]
struct Inner {
    /// Keys by stream, compared in constant time.
    keys: HashMap<String, SecretTag>,
    jwt: Option<Arc<Jwt>>,
    webhook: Option<Webhook>,
    metrics: AuthMetrics,
}

#[derive(serde::Serialize)]
struct WebhookBody<'a> {
    action: &'static str,
    protocol: &'static str,
    stream: &'a str,
    client_addr: String,
    key: Option<&'a str>,
}

impl PublishAuth {
    /// The hook for `cfg`.
    pub fn new(cfg: PublishAuthConfig, metrics: AuthMetrics) -> Result<PublishAuth, AuthError> {
        let mut keys = HashMap::new();
        for (stream, key) in &cfg.keys {
            if key.is_empty() {
                return Err(AuthError::Config(format!(
                    "the publish key of stream {stream:?} is empty"
                )));
            }
            keys.insert(stream.clone(), SecretTag::new(key.as_bytes())?);
        }
        let webhook = if cfg.webhook.is_empty() {
            None
        } else {
            Some(Webhook::new(&cfg.webhook, cfg.webhook_timeout)?)
        };
        Ok(PublishAuth {
            inner: Arc::new(arc_swap::ArcSwap::from_pointee(Inner {
                keys,
                jwt: cfg.jwt,
                webhook,
                metrics,
            })),
        })
    }

    /// Anyone may publish.
    pub fn open(metrics: AuthMetrics) -> PublishAuth {
        Self::new(PublishAuthConfig::default(), metrics).expect("empty config")
    }

    /// Whether any method is configured (otherwise every publish is allowed).
    pub fn enabled(&self) -> bool {
        self.inner.load().enabled()
    }

    /// Decides with `other`'s methods from now on, in this hook and every clone of it.
    pub fn replace(&self, other: &PublishAuth) {
        self.inner.store(other.inner.load_full());
    }

    /// Decides a publish attempt: `Ok(method)` names what allowed it. Logged and counted.
    pub async fn check(&self, req: PublishRequest<'_>) -> Result<&'static str, AuthError> {
        // the methods at the start decide, even if a reload replaces them meanwhile
        let inner = self.inner.load_full();
        let r = inner.decide(req).await;
        inner.metrics.count("publish", &r);
        match &r {
            Ok(method) => {
                info!(stream = %req.stream, client = %req.client, protocol = req.protocol, method, "publish authorized")
            }
            Err(e) => {
                warn!(stream = %req.stream, client = %req.client, protocol = req.protocol, reason = %e, "publish refused")
            }
        }
        r
    }
}

impl Inner {
    fn enabled(&self) -> bool {
        !self.keys.is_empty() || self.jwt.is_some() || self.webhook.is_some()
    }

    async fn decide(&self, req: PublishRequest<'_>) -> Result<&'static str, AuthError> {
        if !self.enabled() {
            return Ok("open");
        }
        let i = self;
        let credential = req.credential.filter(|c| !c.is_empty());
        // the most telling refusal so far: a key or token that was wrong says more than none
        let mut refusal = AuthError::Missing;
        if let Some(c) = credential {
            // the stream's own key, and the "*" key, which is good for every stream
            for key in [i.keys.get(req.stream), i.keys.get("*")]
                .into_iter()
                .flatten()
            {
                if key.matches(c.as_bytes()) {
                    return Ok("key");
                }
                refusal = AuthError::WrongKey;
            }
            if let Some(jwt) = &i.jwt {
                if c.bytes().filter(|&b| b == b'.').count() == 2 {
                    match jwt.verify(c, req.stream, crate::jwt::Purpose::Publish) {
                        Ok(()) => return Ok("jwt"),
                        Err(e) => refusal = e,
                    }
                }
            }
        }
        if let Some(w) = &i.webhook {
            let body = WebhookBody {
                action: "publish",
                protocol: req.protocol,
                stream: req.stream,
                client_addr: req.client.to_string(),
                key: credential,
            };
            let body =
                serde_json::to_string(&body).map_err(|e| AuthError::Webhook(e.to_string()))?;
            return w.ask(body).await.map(|()| "webhook");
        }
        Err(refusal)
    }
}

/// The credential in an RTMP publish name's query (`name?key=…` or `name?token=…`).
pub fn rtmp_credential(query: &str) -> Option<&str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "key" || k == "token").then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{self, JwtConfig};

    fn req<'a>(stream: &'a str, credential: Option<&'a str>) -> PublishRequest<'a> {
        PublishRequest {
            protocol: "rtmp",
            stream,
            credential,
            client: "192.0.2.1:5000".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn open_without_methods() {
        let a = PublishAuth::open(AuthMetrics::unregistered());
        assert!(!a.enabled());
        assert_eq!(a.check(req("x", None)).await, Ok("open"));
    }

    #[tokio::test]
    async fn static_keys() {
        let m = AuthMetrics::unregistered();
        let a = PublishAuth::new(
            PublishAuthConfig {
                keys: [("cam".to_string(), "s3cret".to_string())].into(),
                ..Default::default()
            },
            m.clone(),
        )
        .unwrap();
        assert_eq!(a.check(req("cam", Some("s3cret"))).await, Ok("key"));
        assert_eq!(
            a.check(req("cam", Some("s3cre"))).await,
            Err(AuthError::WrongKey)
        );
        assert_eq!(a.check(req("cam", None)).await, Err(AuthError::Missing));
        // no key for this stream and no wildcard
        assert_eq!(
            a.check(req("other", Some("s3cret"))).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            m.decisions
                .with_label_values(&["publish", "deny", "wrong_key"])
                .get(),
            1
        );
        let any = PublishAuth::new(
            PublishAuthConfig {
                keys: [("*".to_string(), "all".to_string())].into(),
                ..Default::default()
            },
            m,
        )
        .unwrap();
        assert_eq!(any.check(req("whatever", Some("all"))).await, Ok("key"));
        // the "*" key is good for a stream with its own key too
        let both = PublishAuth::new(
            PublishAuthConfig {
                keys: [
                    ("cam".to_string(), "own".to_string()),
                    ("*".to_string(), "all".to_string()),
                ]
                .into(),
                ..Default::default()
            },
            AuthMetrics::unregistered(),
        )
        .unwrap();
        assert_eq!(both.check(req("cam", Some("own"))).await, Ok("key"));
        assert_eq!(both.check(req("cam", Some("all"))).await, Ok("key"));
        assert_eq!(
            both.check(req("cam", Some("neither"))).await,
            Err(AuthError::WrongKey)
        );
    }

    #[tokio::test]
    async fn jwt_and_keys_together() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let j = jwt::Jwt::new(&JwtConfig {
            hs256_secret: secret.to_vec(),
            rs256_public_key_pem: Vec::new(),
            audience: String::new(),
            leeway: Duration::from_secs(1),
        })
        .unwrap();
        let a = PublishAuth::new(
            PublishAuthConfig {
                keys: [("cam".to_string(), "k".to_string())].into(),
                jwt: Some(Arc::new(j)),
                ..Default::default()
            },
            AuthMetrics::unregistered(),
        )
        .unwrap();
        let exp = crate::unix_now() + 60;
        let t = jwt::sign(
            &serde_json::json!({"stream": "cam", "use": "publish", "exp": exp}),
            secret,
            false,
        )
        .unwrap();
        assert_eq!(a.check(req("cam", Some(&t))).await, Ok("jwt"));
        assert_eq!(a.check(req("cam", Some("k"))).await, Ok("key"));
        assert_eq!(
            a.check(req("dog", Some(&t))).await,
            Err(AuthError::WrongStream)
        );
    }

    #[test]
    fn credentials_in_rtmp_names() {
        assert_eq!(rtmp_credential("key=abc"), Some("abc"));
        assert_eq!(rtmp_credential("relay=1&token=a.b.c"), Some("a.b.c"));
        assert_eq!(rtmp_credential("relay=1"), None);
        assert_eq!(rtmp_credential(""), None);
    }
}
