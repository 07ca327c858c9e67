//! Who may publish and who may watch.
//!
//! - [`publish`]: the publish hook every ingest protocol goes through (RTMP stream keys and
//!   `?token=`, WHIP bearer tokens): static keys per stream, JWTs, and an `on_publish`
//!   webhook, tried in that order; the first that allows wins; without any configured, anyone
//!   may publish.
//! - [`playback`]: signed URLs ([`signed`]) and JWTs for viewers, checked by origins and edges
//!   alike without server-side state.
//! - [`jwt`]: HS256/RS256 token verification.
//! - [`secret`]: shared secrets compared in constant time (stream keys, the admin token).
//!
//! Token and signature checks are sans-IO; only the webhook does IO.
#![warn(missing_docs)]

pub mod admission;
pub mod jwt;
pub mod metrics;
pub mod playback;
pub mod publish;
pub mod secret;
pub mod signed;
mod webhook;

pub use metrics::AuthMetrics;

/// Why a credential was refused (or the configuration is unusable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential was presented.
    #[error("no credential")]
    Missing,
    /// The credential is not a token of any accepted form.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match.
    #[error("bad signature")]
    Signature,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// The token is not valid yet (`nbf`).
    #[error("token not yet valid")]
    NotYetValid,
    /// The token's audience is not ours.
    #[error("wrong audience")]
    Audience,
    /// The token is for another stream or path.
    #[error("token not valid for this stream")]
    WrongStream,
    /// The token is for another use (a viewer's token presented to publish, or back).
    #[error("token not valid for this use")]
    WrongUse,
    /// The token is bound to another client address.
    #[error("token bound to another address")]
    Address,
    /// The token's algorithm is not accepted.
    #[error("token algorithm not accepted")]
    Algorithm,
    /// The stream key does not match.
    #[error("wrong stream key")]
    WrongKey,
    /// The webhook answered with a refusal.
    #[error("refused by the on_publish webhook (HTTP {0})")]
    Denied(u16),
    /// The webhook could not be asked (fails closed).
    #[error("on_publish webhook failed: {0}")]
    Webhook(String),
    /// Unusable configuration.
    #[error("{0}")]
    Config(String),
}

impl AuthError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::Signature => "signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::Audience => "audience",
            AuthError::WrongStream => "wrong_stream",
            AuthError::WrongUse => "wrong_use",
            AuthError::Address => "address",
            AuthError::Algorithm => "algorithm",
            AuthError::WrongKey => "wrong_key",
            AuthError::Denied(_) => "webhook_denied",
            AuthError::Webhook(_) => "webhook_error",
            AuthError::Config(_) => "config",
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
