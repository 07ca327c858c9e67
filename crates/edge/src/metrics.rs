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
    /// Open client connections (HTTP/1.1, HTTP/2 and HTTP/3 listeners together), kept by
    /// their shared admission.
    pub connections: IntGauge,
    /// Connections refused at accept, by limit (`total`, `per_ip`).
    pub refused: IntCounterVec,
    /// Connections closed because no bytes moved for the idle timeout.
    pub idle_closed: prometheus::IntCounter,
    /// Response bytes sent from memory files with `sendfile` (HTTP/1.1 without TLS).
    pub sendfile_bytes: prometheus::IntCounter,
}

impl HttpMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.blocking_in_flight.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.refused.clone()))?;
        registry.register(Box::new(m.idle_closed.clone()))?;
        registry.register(Box::new(m.sendfile_bytes.clone()))?;
        // exported from the start (at 0), so rates and dashboards work before the first one
        for limit in ["total", "per_ip"] {
            m.refused.with_label_values(&[limit]);
        }
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
            connections: IntGauge::new(
                "ferrocast_http_connections",
                "Open client connections, all HTTP listeners",
            )
            .expect("valid metric"),
            refused: IntCounterVec::new(
                Opts::new(
                    "ferrocast_http_connections_refused_total",
                    "Client connections refused at accept, by limit",
                ),
                &["limit"],
            )
            .expect("valid metric"),
            idle_closed: prometheus::IntCounter::new(
                "ferrocast_http_connections_idle_closed_total",
                "Client connections closed after the idle timeout",
            )
            .expect("valid metric"),
            sendfile_bytes: prometheus::IntCounter::new(
                "ferrocast_http_sendfile_bytes_total",
                "Response bytes sent from memory files with sendfile (HTTP/1.1 without TLS)",
            )
            .expect("valid metric"),
        }
    }
}

/// Metrics of the edge role: cache and upstream.
#[derive(Clone, Debug)]
pub struct EdgeMetrics {
    /// Requests answered from a stored object.
    pub cache_hits: prometheus::IntCounter,
    /// Requests that started an upstream fill.
    pub cache_misses: prometheus::IntCounter,
    /// Requests that joined a fill already in flight (coalesced).
    pub coalesced_waits: prometheus::IntCounter,
    /// Bytes of stored objects.
    pub bytes_cached: IntGauge,
    /// Objects removed, by reason (`expired`, `budget`).
    pub evictions: IntCounterVec,
    /// Fills in flight.
    pub fills_in_flight: IntGauge,
    /// Fills stopped because every waiter went away.
    pub fills_abandoned: prometheus::IntCounter,
    /// Preload-hinted parts fetched before any viewer asked.
    pub prefetches: prometheus::IntCounter,
    /// Upstream requests by origin and status (`error`, `timeout`, `down` for no answer).
    pub upstream_requests: IntCounterVec,
    /// Upstream response time (headers and body), seconds, by origin.
    pub upstream_seconds: prometheus::HistogramVec,
    /// Requests retried on another origin.
    pub failovers: prometheus::IntCounter,
    /// 1 when an origin is considered healthy.
    pub origin_up: prometheus::IntGaugeVec,
}

impl EdgeMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.cache_hits.clone()))?;
        registry.register(Box::new(m.cache_misses.clone()))?;
        registry.register(Box::new(m.coalesced_waits.clone()))?;
        registry.register(Box::new(m.bytes_cached.clone()))?;
        registry.register(Box::new(m.evictions.clone()))?;
        registry.register(Box::new(m.fills_in_flight.clone()))?;
        registry.register(Box::new(m.fills_abandoned.clone()))?;
        registry.register(Box::new(m.prefetches.clone()))?;
        registry.register(Box::new(m.upstream_requests.clone()))?;
        registry.register(Box::new(m.upstream_seconds.clone()))?;
        registry.register(Box::new(m.failovers.clone()))?;
        for reason in ["expired", "budget"] {
            m.evictions.with_label_values(&[reason]);
        }
        registry.register(Box::new(m.origin_up.clone()))?;
        Ok(m)
    }

    /// Unregistered metrics.
    pub fn unregistered() -> Self {
        let counter = |n: &str, h: &str| prometheus::IntCounter::new(n, h).expect("valid metric");
        Self {
            cache_hits: counter(
                "ferrocast_edge_cache_hits_total",
                "Requests served from the cache",
            ),
            cache_misses: counter(
                "ferrocast_edge_cache_misses_total",
                "Requests that started an upstream fill",
            ),
            coalesced_waits: counter(
                "ferrocast_edge_coalesced_waits_total",
                "Requests that waited on a fill already in flight",
            ),
            bytes_cached: IntGauge::new("ferrocast_edge_cache_bytes", "Bytes of cached objects")
                .expect("valid metric"),
            evictions: IntCounterVec::new(
                Opts::new(
                    "ferrocast_edge_cache_evictions_total",
                    "Objects removed, by reason",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            fills_in_flight: IntGauge::new(
                "ferrocast_edge_fills_in_flight",
                "Upstream fills in flight",
            )
            .expect("valid metric"),
            fills_abandoned: counter(
                "ferrocast_edge_fills_abandoned_total",
                "Fills stopped because every waiting viewer went away",
            ),
            prefetches: counter(
                "ferrocast_edge_prefetches_total",
                "Preload-hinted parts requested upstream before any viewer asked",
            ),
            upstream_requests: IntCounterVec::new(
                Opts::new(
                    "ferrocast_edge_upstream_requests_total",
                    "Upstream requests by origin and status",
                ),
                &["origin", "status"],
            )
            .expect("valid metric"),
            upstream_seconds: prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new(
                    "ferrocast_edge_upstream_seconds",
                    "Upstream response time by origin (blocking requests include their wait)",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["origin"],
            )
            .expect("valid metric"),
            failovers: counter(
                "ferrocast_edge_failovers_total",
                "Upstream requests retried on another origin",
            ),
            origin_up: prometheus::IntGaugeVec::new(
                Opts::new("ferrocast_edge_origin_up", "1 when the origin is healthy"),
                &["origin"],
            )
            .expect("valid metric"),
        }
    }
}
