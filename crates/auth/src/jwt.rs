//! JSON Web Tokens (RFC 7519) signed with HS256 or RS256, for publishers and viewers.
//!
//! Claims are checked by `jsonwebtoken` (`exp`, `nbf`, `aud`); the signatures are computed by
//! `ring` (the crypto library rustls already uses here) through a small `jsonwebtoken`
//! crypto provider, so the binary carries one crypto stack. Only HS256 and RS256 are offered:
//! a token whose header names any other algorithm is refused before any key is used.

use crate::AuthError;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::{hmac, rand, signature as rsig};
use serde::Deserialize;
use std::time::Duration;

/// The claims ferrocast reads. `stream` names the one stream the token grants (`"*"`: all);
/// `use` says what for, so a token handed to viewers can never publish.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// The stream this token is for, or `"*"`.
    pub stream: String,
    /// `"publish"` or `"play"`.
    #[serde(rename = "use")]
    pub purpose: String,
}

/// What a token is presented for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Publishing a stream (`"use": "publish"`).
    Publish,
    /// Watching a stream (`"use": "play"`).
    Play,
}

impl Purpose {
    /// The `use` claim's value.
    pub fn claim(self) -> &'static str {
        match self {
            Purpose::Publish => "publish",
            Purpose::Play => "play",
        }
    }
}

/// How JWTs are verified.
#[derive(Clone)]
pub struct JwtConfig {
    /// HS256 shared secret (empty: HS256 not accepted).
    pub hs256_secret: Vec<u8>,
    /// RS256 public key, PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`; empty: RS256 not accepted).
    pub rs256_public_key_pem: Vec<u8>,
    /// Required `aud` (empty: tokens must not need one).
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("hs256", &!self.hs256_secret.is_empty())
            .field("rs256", &!self.rs256_public_key_pem.is_empty())
            .field("audience", &self.audience)
            .finish()
    }
}

/// A JWT verifier with its keys loaded.
pub struct Jwt {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    audience: String,
    leeway: u64,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .finish()
    }
}

impl Jwt {
    /// Loads the keys. At least one of the two must be configured.
    pub fn new(cfg: &JwtConfig) -> Result<Jwt, AuthError> {
        install_provider();
        let hs256 =
            (!cfg.hs256_secret.is_empty()).then(|| DecodingKey::from_secret(&cfg.hs256_secret));
        let rs256 = if cfg.rs256_public_key_pem.is_empty() {
            None
        } else {
            Some(
                DecodingKey::from_rsa_pem(&cfg.rs256_public_key_pem)
                    .map_err(|e| AuthError::Config(format!("RS256 public key: {e}")))?,
            )
        };
        if hs256.is_none() && rs256.is_none() {
            return Err(AuthError::Config(
                "JWT needs an HS256 secret or an RS256 public key".into(),
            ));
        }
        Ok(Jwt {
            hs256,
            rs256,
            audience: cfg.audience.clone(),
            leeway: cfg.leeway.as_secs(),
        })
    }

    /// Verifies `token`'s signature, `exp` (required), `nbf`, `aud` (when an audience is
    /// configured), and that it grants `stream` for `purpose`.
    pub fn verify(&self, token: &str, stream: &str, purpose: Purpose) -> Result<(), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or(AuthError::Algorithm)?;
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        if self.audience.is_empty() {
            v.set_required_spec_claims(&["exp"]);
            v.validate_aud = false;
        } else {
            // a token without `aud` must not pass where one is required
            v.set_required_spec_claims(&["exp", "aud"]);
            v.set_audience(&[self.audience.as_str()]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, &v).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidAudience => AuthError::Audience,
            ErrorKind::InvalidSignature => AuthError::Signature,
            _ => AuthError::Malformed,
        })?;
        if data.claims.purpose != purpose.claim() {
            return Err(AuthError::WrongUse);
        }
        if data.claims.stream == "*" || data.claims.stream == stream {
            Ok(())
        } else {
            Err(AuthError::WrongStream)
        }
    }
}

/// Signs `claims` as a JWT (the `ferrocast sign` command and tests). `key` is the HS256
/// secret, or an RS256 private key in PEM (`PRIVATE KEY`/`RSA PRIVATE KEY`) when `rs256`.
pub fn sign(claims: &serde_json::Value, key: &[u8], rs256: bool) -> Result<String, AuthError> {
    install_provider();
    let (alg, key) = if rs256 {
        let k = EncodingKey::from_rsa_pem(key)
            .map_err(|e| AuthError::Config(format!("RS256 private key: {e}")))?;
        (Algorithm::RS256, k)
    } else {
        (Algorithm::HS256, EncodingKey::from_secret(key))
    };
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, &key)
        .map_err(|e| AuthError::Config(e.to_string()))
}

fn install_provider() {
    // Fails only when a provider is installed already (ours, by an earlier call).
    let _ = RING_PROVIDER.install_default();
}

static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, JwtError> {
    match (alg, key.family()) {
        (Algorithm::HS256, AlgorithmFamily::Hmac) => Ok(Box::new(Hs256(hmac::Key::new(
            hmac::HMAC_SHA256,
            key.as_bytes(),
        )))),
        (Algorithm::RS256, AlgorithmFamily::Rsa) => {
            let pair = rsig::RsaKeyPair::from_der(key.as_bytes())
                .map_err(|e| JwtError::from(ErrorKind::InvalidRsaKey(e.to_string())))?;
            Ok(Box::new(Rs256Signer(pair)))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, JwtError> {
    match (alg, key.family(), key.kind()) {
        (Algorithm::HS256, AlgorithmFamily::Hmac, DecodingKeyKind::SecretOrDer(secret)) => {
            Ok(Box::new(Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret))))
        }
        (Algorithm::RS256, AlgorithmFamily::Rsa, DecodingKeyKind::SecretOrDer(der)) => {
            Ok(Box::new(Rs256Verifier(RsaKey::Der(der.clone()))))
        }
        (Algorithm::RS256, AlgorithmFamily::Rsa, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            Ok(Box::new(Rs256Verifier(RsaKey::Components(
                n.clone(),
                e.clone(),
            ))))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

struct Hs256(hmac::Key);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.0, msg).as_ref().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        // constant-time comparison
        hmac::verify(&self.0, msg, sig).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

struct Rs256Signer(rsig::RsaKeyPair);

impl Signer<Vec<u8>> for Rs256Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut sig = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &rsig::RSA_PKCS1_SHA256,
                &rand::SystemRandom::new(),
                msg,
                &mut sig,
            )
            .map_err(|_| signature::Error::new())?;
        Ok(sig)
    }
}

impl JwtSigner for Rs256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

/// An RS256 public key: `RSAPublicKey` DER (what jsonwebtoken extracts from PEM) or n/e.
enum RsaKey {
    Der(Vec<u8>),
    Components(Vec<u8>, Vec<u8>),
}

struct Rs256Verifier(RsaKey);

impl Verifier<Vec<u8>> for Rs256Verifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let alg = &rsig::RSA_PKCS1_2048_8192_SHA256;
        let ok = match &self.0 {
            RsaKey::Der(der) => rsig::UnparsedPublicKey::new(alg, der).verify(msg, sig),
            RsaKey::Components(n, e) => rsig::RsaPublicKeyComponents { n, e }.verify(alg, msg, sig),
        };
        ok.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Rs256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: Purpose = Purpose::Play;

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs(aud: &str) -> Jwt {
        Jwt::new(&JwtConfig {
            hs256_secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            rs256_public_key_pem: Vec::new(),
            audience: aud.into(),
            leeway: Duration::from_secs(2),
        })
        .unwrap()
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn hs256_claims() {
        let j = hs("");
        let t = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() + 60}),
            SECRET,
            false,
        )
        .unwrap();
        j.verify(&t, "cam", P).unwrap();
        assert_eq!(j.verify(&t, "other", P), Err(AuthError::WrongStream));
        let any = sign(
            &json!({"stream": "*", "use": "play", "exp": now() + 60}),
            SECRET,
            false,
        )
        .unwrap();
        j.verify(&any, "other", P).unwrap();
        let old = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() - 60}),
            SECRET,
            false,
        )
        .unwrap();
        assert_eq!(j.verify(&old, "cam", P), Err(AuthError::Expired));
        let early = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() + 600, "nbf": now() + 300}),
            SECRET,
            false,
        )
        .unwrap();
        assert_eq!(j.verify(&early, "cam", P), Err(AuthError::NotYetValid));
        let no_exp = sign(&json!({"stream": "cam", "use": "play"}), SECRET, false).unwrap();
        assert_eq!(j.verify(&no_exp, "cam", P), Err(AuthError::Malformed));
        let forged = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() + 60}),
            b"another secret",
            false,
        )
        .unwrap();
        assert_eq!(j.verify(&forged, "cam", P), Err(AuthError::Signature));
        assert_eq!(j.verify("not.a.jwt", "cam", P), Err(AuthError::Malformed));
        assert_eq!(j.verify("", "cam", P), Err(AuthError::Malformed));
    }

    #[test]
    fn a_token_is_good_for_its_use_only() {
        let j = hs("");
        let play = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() + 60}),
            SECRET,
            false,
        )
        .unwrap();
        j.verify(&play, "cam", Purpose::Play).unwrap();
        assert_eq!(
            j.verify(&play, "cam", Purpose::Publish),
            Err(AuthError::WrongUse)
        );
        let publish = sign(
            &json!({"stream": "cam", "use": "publish", "exp": now() + 60}),
            SECRET,
            false,
        )
        .unwrap();
        j.verify(&publish, "cam", Purpose::Publish).unwrap();
        assert_eq!(
            j.verify(&publish, "cam", Purpose::Play),
            Err(AuthError::WrongUse)
        );
        let none = sign(&json!({"stream": "cam", "exp": now() + 60}), SECRET, false).unwrap();
        assert_eq!(
            j.verify(&none, "cam", Purpose::Publish),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn audience() {
        let j = hs("ferrocast");
        let t = |aud: serde_json::Value| {
            sign(
                &json!({"stream": "cam", "use": "play", "exp": now() + 60, "aud": aud}),
                SECRET,
                false,
            )
            .unwrap()
        };
        j.verify(&t(json!("ferrocast")), "cam", P).unwrap();
        j.verify(&t(json!(["x", "ferrocast"])), "cam", P).unwrap();
        assert_eq!(
            j.verify(&t(json!("other")), "cam", P),
            Err(AuthError::Audience)
        );
        let none = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() + 60}),
            SECRET,
            false,
        )
        .unwrap();
        assert_eq!(j.verify(&none, "cam", P), Err(AuthError::Malformed));
    }

    #[test]
    fn unsupported_algorithms_are_refused() {
        let j = hs("");
        // alg "none", and HS512: refused before any key is used
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let claims = b64(&format!(r#"{{"stream":"cam","exp":{}}}"#, now() + 60));
        for h in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"HS512","typ":"JWT"}"#,
        ] {
            let t = format!("{}.{claims}.", b64(h));
            assert!(j.verify(&t, "cam", P).is_err(), "{h}");
        }
        // an RS256 token when only HS256 is configured
        let rs = include_bytes!("../tests/keys/rs256-private.pem");
        let t = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() + 60}),
            rs,
            true,
        )
        .unwrap();
        assert_eq!(j.verify(&t, "cam", P), Err(AuthError::Algorithm));
    }

    #[test]
    fn rs256() {
        let j = Jwt::new(&JwtConfig {
            hs256_secret: Vec::new(),
            rs256_public_key_pem: include_bytes!("../tests/keys/rs256-public.pem").to_vec(),
            audience: String::new(),
            leeway: Duration::from_secs(2),
        })
        .unwrap();
        let rs = include_bytes!("../tests/keys/rs256-private.pem");
        let t = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() + 60}),
            rs,
            true,
        )
        .unwrap();
        j.verify(&t, "cam", P).unwrap();
        // the public key used as an HS256 secret (the classic confusion attack) is refused
        let pem = include_bytes!("../tests/keys/rs256-public.pem");
        let t = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() + 60}),
            pem,
            false,
        )
        .unwrap();
        assert_eq!(j.verify(&t, "cam", P), Err(AuthError::Algorithm));
        // a tampered payload
        let t = sign(
            &json!({"stream": "cam", "use": "play", "exp": now() + 60}),
            rs,
            true,
        )
        .unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = sign(
            &json!({"stream": "*", "use": "play", "exp": now() + 60}),
            rs,
            true,
        )
        .unwrap();
        let other_claims = other.split('.').nth(1).unwrap().to_string();
        parts[1] = &other_claims;
        assert_eq!(
            j.verify(&parts.join("."), "x", P),
            Err(AuthError::Signature)
        );
    }
}
