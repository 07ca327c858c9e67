//! Signed playback URLs: stateless tokens that grant a path prefix until an expiry, optionally
//! only to one client address. Sans-IO: the caller passes the time and the client address.
//!
//! A token has four dot-separated fields, all URL- and path-safe:
//!
//! ```text
//! {expiry}.{prefix}.{bind}.{signature}
//! expiry     Unix time in seconds after which the token is refused
//! prefix     base64url (no padding) of the path prefix granted, e.g. "/live/cam/"
//! bind       "0", or "1" when the token is valid only from one client address
//! signature  base64url (no padding) of HMAC-SHA256(secret, "{expiry}.{prefix}.{bind}"),
//!            followed by ".{client address}" when bind is "1"
//! ```
//!
//! The prefix matches whole path segments: "/live/cam" grants "/live/cam/…" but not
//! "/live/camera/…". Players carry the token in the path (`/live/cam/{token}/index.m3u8`):
//! every URI in the playlists is relative, so each part, segment and playlist request carries
//! it too, with nothing rewritten and the playlists the same for every viewer.

use crate::AuthError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use std::net::IpAddr;

/// The longest token accepted (a bound IPv6 prefix path fits well within it).
pub const MAX_TOKEN_LEN: usize = 512;

/// A signing and verifying key for playback URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner")
    }
}

/// The address form that is signed: IPv4-mapped IPv6 addresses as IPv4.
fn canonical_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Whether `prefix` grants `path`, on whole path segments.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if !prefix.starts_with('/') || !path.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'
}

impl UrlSigner {
    /// A signer with this secret (at least 16 bytes).
    pub fn new(secret: &[u8]) -> Result<UrlSigner, AuthError> {
        if secret.len() < 16 {
            return Err(AuthError::Config(
                "the playback signing secret must be at least 16 bytes".into(),
            ));
        }
        Ok(UrlSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    fn message(expiry: &str, prefix: &str, bind: &str, ip: Option<IpAddr>) -> String {
        let mut m = format!("{expiry}.{prefix}.{bind}");
        if let Some(ip) = ip {
            m.push('.');
            m.push_str(&canonical_ip(ip));
        }
        m
    }

    /// A token granting `prefix` until `expiry` (Unix seconds), to `ip` only when given.
    pub fn sign(&self, prefix: &str, expiry: u64, ip: Option<IpAddr>) -> String {
        let p = URL_SAFE_NO_PAD.encode(prefix);
        let bind = if ip.is_some() { "1" } else { "0" };
        let m = Self::message(&expiry.to_string(), &p, bind, ip);
        let sig = URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, m.as_bytes()));
        format!("{expiry}.{p}.{bind}.{sig}")
    }

    /// Checks that `token` grants `path` at `now` (Unix seconds) to a client at `ip`.
    pub fn verify(
        &self,
        token: &str,
        path: &str,
        now: u64,
        ip: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let mut f = token.split('.');
        let (Some(expiry), Some(p), Some(bind), Some(sig), None) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(AuthError::Malformed);
        };
        // canonical decimal only, so one token has one spelling
        if expiry.is_empty()
            || expiry.len() > 12
            || !expiry.bytes().all(|b| b.is_ascii_digit())
            || (expiry.len() > 1 && expiry.starts_with('0'))
        {
            return Err(AuthError::Malformed);
        }
        let signed_ip = match bind {
            "0" => None,
            "1" => Some(ip.ok_or(AuthError::Address)?),
            _ => return Err(AuthError::Malformed),
        };
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| AuthError::Malformed)?;
        let m = Self::message(expiry, p, bind, signed_ip);
        if hmac::verify(&self.key, m.as_bytes(), &sig).is_err() {
            // with bind = 1 a signature made for another address fails here too
            return Err(if signed_ip.is_some() {
                AuthError::Address
            } else {
                AuthError::Signature
            });
        }
        // authentic from here on
        let expiry: u64 = expiry.parse().map_err(|_| AuthError::Malformed)?;
        if now >= expiry {
            return Err(AuthError::Expired);
        }
        let prefix = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(AuthError::Malformed)?;
        if !prefix_matches(&prefix, path) {
            return Err(AuthError::WrongStream);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> UrlSigner {
        UrlSigner::new(b"a playback secret of some length").unwrap()
    }

    #[test]
    fn grants_its_prefix_until_expiry() {
        let s = signer();
        let t = s.sign("/live/cam/", 1000, None);
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        s.verify(&t, "/live/cam/index.m3u8", 999, None).unwrap();
        s.verify(&t, "/live/cam/video_3.1.m4s", 0, None).unwrap();
        assert_eq!(
            s.verify(&t, "/live/cam/index.m3u8", 1000, None),
            Err(AuthError::Expired)
        );
        assert_eq!(
            s.verify(&t, "/live/other/index.m3u8", 10, None),
            Err(AuthError::WrongStream)
        );
        // whole segments only
        let t = s.sign("/live/cam", 1000, None);
        s.verify(&t, "/live/cam/index.m3u8", 10, None).unwrap();
        assert_eq!(
            s.verify(&t, "/live/camera/index.m3u8", 10, None),
            Err(AuthError::WrongStream)
        );
        let all = s.sign("/live/", 1000, None);
        s.verify(&all, "/live/x/audio.m3u8", 10, None).unwrap();
    }

    #[test]
    fn tampering_is_refused() {
        let s = signer();
        let t = s.sign("/live/cam/", 1000, None);
        let f: Vec<&str> = t.split('.').collect();
        // a later expiry
        let later = format!("2000.{}.{}.{}", f[1], f[2], f[3]);
        assert_eq!(
            s.verify(&later, "/live/cam/index.m3u8", 10, None),
            Err(AuthError::Signature)
        );
        // a wider prefix
        let wider = format!("{}.{}.{}.{}", f[0], URL_SAFE_NO_PAD.encode("/"), f[2], f[3]);
        assert_eq!(
            s.verify(&wider, "/live/x/index.m3u8", 10, None),
            Err(AuthError::Signature)
        );
        // another key
        let other = UrlSigner::new(b"another secret, just as long").unwrap();
        assert_eq!(
            other.verify(&t, "/live/cam/index.m3u8", 10, None),
            Err(AuthError::Signature)
        );
        for bad in [
            "",
            "1000",
            "1000.a.0",
            "1000.a.0.b.c",
            "01000.L2xpdmUv.0.xx",
            "+1000.L2xpdmUv.0.xx",
            "1000.L2xpdmUv.2.xx",
            "1000.L2xpdmUv.0.!!",
            "99999999999999999999.L2xpdmUv.0.xx",
        ] {
            assert_eq!(
                s.verify(bad, "/live/cam/index.m3u8", 10, None),
                Err(AuthError::Malformed),
                "{bad}"
            );
        }
        let long = "1".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            s.verify(&long, "/live/cam/index.m3u8", 10, None),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn address_binding() {
        let s = signer();
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let t = s.sign("/live/cam/", 1000, Some(a));
        s.verify(&t, "/live/cam/index.m3u8", 10, Some(a)).unwrap();
        s.verify(&t, "/live/cam/index.m3u8", 10, Some(mapped))
            .unwrap();
        assert_eq!(
            s.verify(&t, "/live/cam/index.m3u8", 10, Some(b)),
            Err(AuthError::Address)
        );
        assert_eq!(
            s.verify(&t, "/live/cam/index.m3u8", 10, None),
            Err(AuthError::Address)
        );
        // an unbound token cannot be turned into a bound one or back
        let f: Vec<String> = t.split('.').map(str::to_string).collect();
        let unbound = format!("{}.{}.0.{}", f[0], f[1], f[3]);
        assert_eq!(
            s.verify(&unbound, "/live/cam/index.m3u8", 10, Some(a)),
            Err(AuthError::Signature)
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(UrlSigner::new(b"short").is_err());
    }
}
