//! Prometheus metrics of authorization decisions.

use prometheus::{IntCounterVec, Opts, Registry};

/// Decisions by kind (`publish`, `playback`), result (`allow`, `deny`) and method or reason.
#[derive(Clone, Debug)]
pub struct AuthMetrics {
    /// `ferrocast_auth_decisions_total{kind, result, detail}`: `detail` is the method that
    /// allowed (`open`, `key`, `jwt`, `webhook`, `signed_url`) or the refusal reason.
    pub decisions: IntCounterVec,
}

impl AuthMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.decisions.clone()))?;
        Ok(m)
    }

    /// Unregistered metrics (tests).
    pub fn unregistered() -> Self {
        Self {
            decisions: IntCounterVec::new(
                Opts::new(
                    "ferrocast_auth_decisions_total",
                    "Publish and playback authorization decisions",
                ),
                &["kind", "result", "detail"],
            )
            .expect("valid metric"),
        }
    }

    pub(crate) fn count(&self, kind: &str, result: &Result<&'static str, crate::AuthError>) {
        let (r, detail) = match result {
            Ok(method) => ("allow", *method),
            Err(e) => ("deny", e.reason()),
        };
        self.decisions.with_label_values(&[kind, r, detail]).inc();
    }
}
