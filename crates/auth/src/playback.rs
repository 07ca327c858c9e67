//! Playback authorization: who may fetch `/live/{stream}/…`.
//!
//! A viewer's token (a signed URL token, see [`crate::signed`], or a JWT) arrives in one of
//! three places, looked at in this order:
//!
//! 1. a path segment after the stream name: `/live/{stream}/{token}/{file}` — the form to give
//!    players, because the playlists' relative URIs then carry it to every request;
//! 2. the query: `?token={token}` (that request only);
//! 3. `Authorization: Bearer {token}` (what an edge sends its origins).
//!
//! The token segment is taken out of the path before routing, so the object (and an edge's
//! cache key) is the same for every viewer.

use crate::jwt::Jwt;
use crate::signed::UrlSigner;
use crate::{AuthError, AuthMetrics};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

/// Playback auth settings.
#[derive(Debug, Clone, Default)]
pub struct PlaybackAuthConfig {
    /// Key of signed URLs (`None`: signed URLs not accepted).
    pub signer: Option<UrlSigner>,
    /// Accept JWTs whose `stream` claim names the stream.
    pub jwt: Option<Arc<Jwt>>,
}

/// Playback authorization (cheap to clone).
#[derive(Debug, Clone)]
pub struct PlaybackAuth {
    cfg: Arc<PlaybackAuthConfig>,
    metrics: AuthMetrics,
}

/// The playback auth in force, shared by every listener and an edge's upstream: a config
/// reload sets it (turning playback auth on, off, or to other keys) for the next request.
#[derive(Debug, Clone, Default)]
pub struct SharedPlayback(Arc<arc_swap::ArcSwapOption<PlaybackAuth>>);

impl SharedPlayback {
    /// Starts with `auth` (`None`: everyone may watch).
    pub fn new(auth: Option<PlaybackAuth>) -> Self {
        Self(Arc::new(arc_swap::ArcSwapOption::from(auth.map(Arc::new))))
    }

    /// Puts `auth` in force.
    pub fn set(&self, auth: Option<PlaybackAuth>) {
        self.0.store(auth.map(Arc::new));
    }

    /// The auth in force now, for one request (a short-lived guard).
    pub fn load(&self) -> arc_swap::Guard<Option<Arc<PlaybackAuth>>> {
        self.0.load()
    }
}

/// Takes a token segment out of a stream path: `/live/{stream}/{token}/{file}` becomes
/// `/live/{stream}/{file}` and the token. Other paths are returned as they are.
pub fn split_path_token(path: &str) -> (Cow<'_, str>, Option<&str>) {
    let Some(rest) = path.strip_prefix("/live/") else {
        return (Cow::Borrowed(path), None);
    };
    let mut it = rest.splitn(3, '/');
    let (Some(stream), Some(token), Some(file)) = (it.next(), it.next(), it.next()) else {
        return (Cow::Borrowed(path), None);
    };
    if token.is_empty() || file.contains('/') {
        return (Cow::Borrowed(path), None);
    }
    (Cow::Owned(format!("/live/{stream}/{file}")), Some(token))
}

/// The `token` query parameter.
pub fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .filter(|t| !t.is_empty())
}

/// The token of an `Authorization: Bearer` header value.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The stream name of a `/live/{stream}/…` path.
fn stream_of(path: &str) -> Option<&str> {
    path.strip_prefix("/live/")?.split('/').next()
}

impl PlaybackAuth {
    /// Playback auth for `cfg`; `None` when no method is configured (everyone may watch).
    pub fn new(cfg: PlaybackAuthConfig, metrics: AuthMetrics) -> Option<PlaybackAuth> {
        (cfg.signer.is_some() || cfg.jwt.is_some()).then(|| PlaybackAuth {
            cfg: Arc::new(cfg),
            metrics,
        })
    }

    /// Whether `path` (token segment already taken out) needs a token: everything under
    /// `/live/`.
    pub fn guards(path: &str) -> bool {
        path.starts_with("/live/")
    }

    /// Checks `token` for `path` at `now` (Unix seconds) from `client`. Counted.
    pub fn check(
        &self,
        path: &str,
        token: Option<&str>,
        client: Option<IpAddr>,
        now: u64,
    ) -> Result<&'static str, AuthError> {
        let r = self.decide(path, token, client, now);
        self.metrics.count("playback", &r);
        r
    }

    fn decide(
        &self,
        path: &str,
        token: Option<&str>,
        client: Option<IpAddr>,
        now: u64,
    ) -> Result<&'static str, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        match token.bytes().filter(|&b| b == b'.').count() {
            3 => {
                let s = self.cfg.signer.as_ref().ok_or(AuthError::Malformed)?;
                s.verify(token, path, now, client).map(|()| "signed_url")
            }
            2 => {
                let j = self.cfg.jwt.as_ref().ok_or(AuthError::Malformed)?;
                let stream = stream_of(path).ok_or(AuthError::WrongStream)?;
                j.verify(token, stream, crate::jwt::Purpose::Play)
                    .map(|()| "jwt")
            }
            _ => Err(AuthError::Malformed),
        }
    }

    /// A short-lived token for everything under `/live/`, for an edge's requests to its
    /// origins (`None` without a signing key).
    pub fn upstream_token(&self, now: u64, ttl: u64) -> Option<String> {
        self.cfg
            .signer
            .as_ref()
            .map(|s| s.sign("/live/", now + ttl, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_segments() {
        assert_eq!(
            split_path_token("/live/cam/T.o.k.n/video_3.1.m4s"),
            (Cow::Borrowed("/live/cam/video_3.1.m4s"), Some("T.o.k.n"))
        );
        assert_eq!(
            split_path_token("/live/cam/index.m3u8"),
            (Cow::Borrowed("/live/cam/index.m3u8"), None)
        );
        for p in [
            "/live/cam//index.m3u8",
            "/live/cam/a/b/c",
            "/other/a/b/c",
            "/live/",
        ] {
            assert_eq!(split_path_token(p), (Cow::Borrowed(p), None), "{p}");
        }
        assert_eq!(query_token("_HLS_msn=3&token=abc"), Some("abc"));
        assert_eq!(query_token("token="), None);
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
    }

    #[test]
    fn signed_urls_and_jwts() {
        let signer = UrlSigner::new(b"0123456789abcdef-playback").unwrap();
        let secret = b"0123456789abcdef0123456789abcdef";
        let jwt = Jwt::new(&crate::jwt::JwtConfig {
            hs256_secret: secret.to_vec(),
            rs256_public_key_pem: Vec::new(),
            audience: String::new(),
            leeway: std::time::Duration::from_secs(1),
        })
        .unwrap();
        let m = AuthMetrics::unregistered();
        assert!(PlaybackAuth::new(PlaybackAuthConfig::default(), m.clone()).is_none());
        let a = PlaybackAuth::new(
            PlaybackAuthConfig {
                signer: Some(signer.clone()),
                jwt: Some(Arc::new(jwt)),
            },
            m.clone(),
        )
        .unwrap();
        let now = crate::unix_now();
        let t = signer.sign("/live/cam/", now + 60, None);
        let p = "/live/cam/index.m3u8";
        assert_eq!(a.check(p, Some(&t), None, now), Ok("signed_url"));
        assert_eq!(a.check(p, None, None, now), Err(AuthError::Missing));
        assert_eq!(a.check(p, Some("x"), None, now), Err(AuthError::Malformed));
        let j = crate::jwt::sign(
            &serde_json::json!({"stream": "cam", "use": "play", "exp": now + 60}),
            secret,
            false,
        )
        .unwrap();
        assert_eq!(a.check(p, Some(&j), None, now), Ok("jwt"));
        assert_eq!(
            a.check("/live/dog/index.m3u8", Some(&j), None, now),
            Err(AuthError::WrongStream)
        );
        let up = a.upstream_token(now, 60).unwrap();
        assert_eq!(
            a.check("/live/any/video.m3u8", Some(&up), None, now),
            Ok("signed_url")
        );
        assert_eq!(
            m.decisions
                .with_label_values(&["playback", "allow", "signed_url"])
                .get(),
            2
        );
    }
}
