//! A shared secret (a stream key, the admin token) that presented values are compared with in
//! constant time: it is kept only as an HMAC-SHA256 tag under a random key, and a presented
//! value is checked by `ring`'s tag verification, whatever its length or contents.

use crate::AuthError;
use ring::hmac;

/// A secret to compare presented values with.
pub struct SecretTag {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl std::fmt::Debug for SecretTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretTag(..)")
    }
}

impl SecretTag {
    /// Keeps `secret` as a tag under a fresh random key.
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| AuthError::Config("no random numbers".into()))?;
        let tag = hmac::sign(&key, secret);
        Ok(Self { key, tag })
    }

    /// Whether `presented` is the secret.
    pub fn matches(&self, presented: &[u8]) -> bool {
        hmac::verify(&self.key, presented, self.tag.as_ref()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_secret() {
        let s = SecretTag::new(b"0123456789abcdef").unwrap();
        assert!(s.matches(b"0123456789abcdef"));
        for other in [
            &b""[..],
            b"0123456789abcde",
            b"0123456789abcdeF",
            b"0123456789abcdef0",
        ] {
            assert!(!s.matches(other));
        }
    }
}
