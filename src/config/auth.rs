//! `[auth]`: who may publish and who may watch.

use super::HumanDuration;
use anyhow::{bail, Context, Result};
use ferrocast_auth::jwt::{Jwt, JwtConfig};
use ferrocast_auth::playback::{PlaybackAuth, PlaybackAuthConfig};
use ferrocast_auth::publish::{PublishAuth, PublishAuthConfig};
use ferrocast_auth::signed::UrlSigner;
use ferrocast_auth::AuthMetrics;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT keys (publish and playback).
    pub jwt: JwtToml,
    /// Publish auth.
    pub publish: PublishToml,
    /// Playback auth.
    pub playback: PlaybackToml,
}

/// `[auth.jwt]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtToml {
    /// HS256 shared secret.
    pub hs256_secret: String,
    /// RS256 public key (PEM file path).
    pub rs256_public_key: String,
    /// Required audience.
    pub audience: String,
    /// Allowed clock skew.
    pub leeway: HumanDuration,
}

impl std::fmt::Debug for JwtToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtToml")
            .field("hs256_secret", &(!self.hs256_secret.is_empty()))
            .field("rs256_public_key", &self.rs256_public_key)
            .field("audience", &self.audience)
            .finish()
    }
}

/// `[auth.publish]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishToml {
    /// Stream → key (`"*"`: any stream).
    pub keys: HashMap<String, String>,
    /// Accept JWTs.
    pub jwt: bool,
    /// `on_publish` webhook URL.
    pub webhook: String,
    /// Webhook timeout.
    pub webhook_timeout: HumanDuration,
}

impl std::fmt::Debug for PublishToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishToml")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("jwt", &self.jwt)
            .field("webhook", &self.webhook)
            .finish()
    }
}

/// `[auth.playback]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybackToml {
    /// Signed-URL secret.
    pub secret: String,
    /// Accept JWTs.
    pub jwt: bool,
}

impl std::fmt::Debug for PlaybackToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackToml")
            .field("secret", &(!self.secret.is_empty()))
            .field("jwt", &self.jwt)
            .finish()
    }
}

impl AuthConfig {
    pub(super) fn validate(&self, role: &str) -> Result<()> {
        let j = &self.jwt;
        let jwt_keys = !j.hs256_secret.is_empty() || !j.rs256_public_key.is_empty();
        if !j.hs256_secret.is_empty() && j.hs256_secret.len() < 32 {
            bail!("auth.jwt.hs256_secret: at least 32 bytes (HS256 keys shorter than the hash are weak)");
        }
        if (self.publish.jwt || self.playback.jwt) && !jwt_keys {
            bail!("auth.publish.jwt / auth.playback.jwt: set auth.jwt.hs256_secret or auth.jwt.rs256_public_key");
        }
        if j.leeway.0 > Duration::from_secs(300) {
            bail!("auth.jwt.leeway: at most 5m");
        }
        for (stream, key) in &self.publish.keys {
            if stream != "*" && !ferrocast_ingest::rtmp::server::valid_stream_name(stream) {
                bail!("auth.publish.keys: {stream:?} is not a stream name (or \"*\")");
            }
            if key.len() < 8 || key.contains(['&', '?', '/', ' ']) {
                bail!("auth.publish.keys.{stream}: keys are at least 8 characters, without & ? / or spaces");
            }
        }
        let w = &self.publish.webhook;
        if !w.is_empty() {
            let u: http::Uri = w
                .parse()
                .with_context(|| format!("auth.publish.webhook: {w:?} is not a URL"))?;
            if u.scheme_str() != Some("http") || u.authority().is_none() {
                bail!("auth.publish.webhook: {w:?} must be an http://host[:port]/path URL");
            }
        }
        let t = self.publish.webhook_timeout.0;
        if t < Duration::from_millis(100) || t > Duration::from_secs(30) {
            bail!("auth.publish.webhook_timeout: must be between 100ms and 30s");
        }
        if !self.playback.secret.is_empty() && self.playback.secret.len() < 16 {
            bail!("auth.playback.secret: at least 16 bytes");
        }
        if role == "edge" && self.playback.jwt && self.playback.secret.is_empty() {
            bail!("auth.playback: an edge checking JWTs also needs auth.playback.secret, to sign its own requests to the origins");
        }
        Ok(())
    }

    /// The publish hook and the playback check (`None`: everyone may watch).
    pub fn build(&self, metrics: &AuthMetrics) -> Result<(PublishAuth, Option<PlaybackAuth>)> {
        let j = &self.jwt;
        let jwt = if j.hs256_secret.is_empty() && j.rs256_public_key.is_empty() {
            None
        } else {
            let pem = if j.rs256_public_key.is_empty() {
                Vec::new()
            } else {
                std::fs::read(&j.rs256_public_key).with_context(|| {
                    format!(
                        "auth.jwt.rs256_public_key: cannot read {:?}",
                        j.rs256_public_key
                    )
                })?
            };
            Some(Arc::new(
                Jwt::new(&JwtConfig {
                    hs256_secret: j.hs256_secret.as_bytes().to_vec(),
                    rs256_public_key_pem: pem,
                    audience: j.audience.clone(),
                    leeway: j.leeway.0,
                })
                .context("auth.jwt")?,
            ))
        };
        let p = &self.publish;
        let publish = PublishAuth::new(
            PublishAuthConfig {
                keys: p.keys.clone(),
                jwt: jwt.clone().filter(|_| p.jwt),
                webhook: p.webhook.clone(),
                webhook_timeout: p.webhook_timeout.0,
            },
            metrics.clone(),
        )
        .context("auth.publish")?;
        let signer = if self.playback.secret.is_empty() {
            None
        } else {
            Some(UrlSigner::new(self.playback.secret.as_bytes()).context("auth.playback.secret")?)
        };
        let playback = PlaybackAuth::new(
            PlaybackAuthConfig {
                signer,
                jwt: jwt.filter(|_| self.playback.jwt),
            },
            metrics.clone(),
        );
        Ok((publish, playback))
    }
}
