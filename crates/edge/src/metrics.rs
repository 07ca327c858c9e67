//! Prometheus metrics of HTTP delivery.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// HTTP metrics.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    /// Requests by route, status and HTTP version.
    pub requests: IntCounterVec,
    /// Blocking playlist / preload-hinted part requests being held.
    pub blocking_in_flight: IntGauge,
    /// Response body bytes, by route.
    pub bytes: IntCounterVec,
}

impl HttpMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.blocking_in_flight.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        Ok(m)
    }

    /// Unregistered metrics.
    pub fn unregistered() -> Self {
        Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "ferrocast_http_requests_total",
                    "HTTP requests by route, status and version",
                ),
                &["route", "status", "version"],
            )
            .expect("valid metric"),
            blocking_in_flight: IntGauge::new(
                "ferrocast_http_blocking_requests_in_flight",
                "Blocking requests being held",
            )
            .expect("valid metric"),
            bytes: IntCounterVec::new(
                Opts::new(
                    "ferrocast_http_response_bytes_total",
                    "Response body bytes by route",
                ),
                &["route"],
            )
            .expect("valid metric"),
        }
    }
}
