//! TLS for the HTTPS and HTTP/3 listeners (rustls with the ring provider only): a certificate
//! chain and key from PEM files, or a self-signed certificate generated at start.

use rcgen::PublicKeyData;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate and key do not make a valid configuration.
    #[error("certificate/key rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// Generating the self-signed certificate failed.
    #[error("self-signed certificate: {0}")]
    Generate(String),
    /// Writing the generated certificate failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// QUIC needs TLS 1.3 with a suitable cipher suite.
    #[error("no QUIC-capable cipher suite: {0}")]
    Quic(String),
}

/// Certificate and key, and where they came from.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    /// The certificate file (given, or written for a generated certificate).
    pub cert_path: PathBuf,
    /// Whether it was generated here.
    pub self_signed: bool,
    /// base64(SHA-256(SubjectPublicKeyInfo)) of a generated certificate, for browsers'
    /// `--ignore-certificate-errors-spki-list`.
    pub spki_sha256: Option<String>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Identity {
    /// Loads a PEM certificate chain and private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_err = |path: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_err(cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert, &e))?;
        if chain.is_empty() {
            return Err(pem_err(cert, &"no certificate in file"));
        }
        let k = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, &e))?;
        Ok(Self {
            chain,
            key: Arc::new(k),
            cert_path: cert.to_path_buf(),
            self_signed: false,
            spki_sha256: None,
        })
    }

    /// Generates a self-signed certificate for `names` (DNS names or IP addresses) and writes
    /// its PEM to `cert_path` so clients can be told to trust it.
    pub fn self_signed(names: &[String], cert_path: &Path) -> Result<Self, TlsError> {
        let ck = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        std::fs::write(cert_path, ck.cert.pem()).map_err(|source| TlsError::Write {
            path: cert_path.to_path_buf(),
            source,
        })?;
        let spki = ck.signing_key.subject_public_key_info();
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        use base64::Engine as _;
        let spki_sha256 = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into();
        Ok(Self {
            chain: vec![ck.cert.der().clone()],
            key: Arc::new(key),
            cert_path: cert_path.to_path_buf(),
            self_signed: true,
            spki_sha256: Some(spki_sha256),
        })
    }

    /// SHA-256 fingerprint of the leaf certificate, `AA:BB:…`.
    pub fn fingerprint(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.chain[0]);
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    fn server_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(cfg)
    }

    /// The TCP listener's config: ALPN h2 and http/1.1.
    pub fn tcp_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        Ok(Arc::new(self.server_config(&[b"h2", b"http/1.1"])?))
    }

    /// The QUIC listener's config: ALPN h3.
    pub fn quic_config(&self) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsError> {
        let cfg = self.server_config(&[b"h3"])?;
        quinn::crypto::rustls::QuicServerConfig::try_from(cfg)
            .map_err(|e| TlsError::Quic(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_round_trips_through_pem() {
        let dir = std::env::temp_dir().join(format!("ferrocast-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        let id = Identity::self_signed(&["localhost".into(), "127.0.0.1".into()], &cert).unwrap();
        assert!(id.spki_sha256.as_ref().unwrap().len() == 44);
        assert_eq!(id.fingerprint().len(), 32 * 3 - 1);
        id.tcp_config().unwrap();
        id.quic_config().unwrap();
        let loaded = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(loaded, id.chain);
        let missing = Identity::load(&dir.join("nope.pem"), &cert).unwrap_err();
        assert!(missing.to_string().contains("nope.pem"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
