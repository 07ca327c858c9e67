//! Prometheus metrics of the ingest.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Ingest metrics. Per-stream series are removed when the stream's publisher leaves.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    /// Publishers (RTMP and WHIP) currently connected and publishing.
    pub publishers: IntGauge,
    /// RTMP connections open (publishing or not yet).
    pub connections: IntGauge,
    /// Bytes received from publishers, by stream.
    pub bytes: IntCounterVec,
    /// Media frames received, by stream and track.
    pub frames: IntCounterVec,
    /// Publish attempts refused, by reason.
    pub rejected: IntCounterVec,
    /// Connections closed because of protocol or media errors, by kind.
    pub errors: IntCounterVec,
    /// Relay connections up, by target.
    pub relay_connected: IntGaugeVec,
    /// Relay messages dropped (target too slow or down), by target.
    pub relay_dropped: IntCounterVec,
    /// Relay reconnect attempts, by target.
    pub relay_reconnects: IntCounterVec,
}

impl IngestMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.publishers.clone()))?;
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.frames.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        registry.register(Box::new(m.relay_connected.clone()))?;
        registry.register(Box::new(m.relay_dropped.clone()))?;
        registry.register(Box::new(m.relay_reconnects.clone()))?;
        // every reason and kind is exported from the start (at 0), so rates and dashboards
        // work before the first refusal
        for reason in [
            "bad_app",
            "bad_name",
            "unauthorized",
            "max_publishers",
            "already_publishing",
            "connections_per_ip",
            "overloaded",
        ] {
            m.rejected.with_label_values(&[reason]);
        }
        for kind in ["protocol", "refused", "media", "bitrate"] {
            m.errors.with_label_values(&[kind]);
        }
        Ok(m)
    }

    /// Unregistered metrics (tests).
    pub fn unregistered() -> Self {
        let vec = |n: &str, h: &str, l: &[&str]| {
            IntCounterVec::new(Opts::new(n, h), l).expect("valid metric")
        };
        Self {
            publishers: IntGauge::new(
                "ferrocast_ingest_publishers",
                "Publishers (RTMP and WHIP) currently publishing",
            )
            .expect("valid metric"),
            connections: IntGauge::new(
                "ferrocast_ingest_connections",
                "RTMP connections open, publishing or not",
            )
            .expect("valid metric"),
            bytes: vec(
                "ferrocast_ingest_bytes_total",
                "Bytes received from publishers",
                &["stream"],
            ),
            frames: vec(
                "ferrocast_ingest_frames_total",
                "Media frames received from publishers",
                &["stream", "track"],
            ),
            rejected: vec(
                "ferrocast_ingest_rejected_total",
                "Publish attempts refused",
                &["reason"],
            ),
            errors: vec(
                "ferrocast_ingest_errors_total",
                "Publisher connections dropped on errors",
                &["kind"],
            ),
            relay_connected: IntGaugeVec::new(
                Opts::new(
                    "ferrocast_relay_connected",
                    "Relay connections currently publishing to a target",
                ),
                &["target"],
            )
            .expect("valid metric"),
            relay_dropped: vec(
                "ferrocast_relay_dropped_total",
                "Relay messages dropped because a target was too slow or down",
                &["target"],
            ),
            relay_reconnects: vec(
                "ferrocast_relay_reconnects_total",
                "Relay reconnect attempts",
                &["target"],
            ),
        }
    }

    /// Removes a stream's series (bounded label cardinality).
    pub fn forget_stream(&self, stream: &str) {
        let _ = self.bytes.remove_label_values(&[stream]);
        for t in ["video", "audio"] {
            let _ = self.frames.remove_label_values(&[stream, t]);
        }
    }
}

/// WHIP metrics.
#[derive(Clone, Debug)]
pub struct WhipMetrics {
    /// WHIP sessions publishing (or connecting) now.
    pub sessions: prometheus::IntGauge,
    /// RTP packets received, by track.
    pub packets: IntCounterVec,
    /// RTP payload bytes received, by track.
    pub bytes: IntCounterVec,
    /// RTP packets never received (gaps given up on), by track.
    pub lost: IntCounterVec,
    /// Keyframe requests (PLI) sent.
    pub plis: prometheus::IntCounter,
    /// Frames dropped, by reason (`loss`: damaged or waiting for an IDR after a loss;
    /// `malformed`; `overflow`: RTP packets the session fell behind on, counted as packets).
    pub dropped: IntCounterVec,
    /// WHIP requests refused, by reason.
    pub rejected: IntCounterVec,
}

/// One WHIP session's series, resolved once (not hashed per packet). Indexed video, audio.
#[derive(Clone, Debug)]
pub struct WhipSessionCounters {
    /// `ferrocast_whip_rtp_packets_total{track}`.
    pub packets: [prometheus::IntCounter; 2],
    /// `ferrocast_whip_rtp_bytes_total{track}`.
    pub bytes: [prometheus::IntCounter; 2],
    /// `ferrocast_whip_rtp_packets_lost_total{track}`.
    pub lost: [prometheus::IntCounter; 2],
    /// `ferrocast_whip_frames_dropped_total{reason}`: loss, malformed, overflow.
    pub dropped: [prometheus::IntCounter; 3],
}

impl WhipMetrics {
    /// A session's counters.
    pub fn session(&self) -> WhipSessionCounters {
        let tracks = |v: &IntCounterVec| ["video", "audio"].map(|t| v.with_label_values(&[t]));
        WhipSessionCounters {
            packets: tracks(&self.packets),
            bytes: tracks(&self.bytes),
            lost: tracks(&self.lost),
            dropped: ["loss", "malformed", "overflow"]
                .map(|r| self.dropped.with_label_values(&[r])),
        }
    }

    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.sessions.clone()))?;
        registry.register(Box::new(m.packets.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.lost.clone()))?;
        registry.register(Box::new(m.plis.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        for t in ["video", "audio"] {
            m.packets.with_label_values(&[t]);
            m.bytes.with_label_values(&[t]);
            m.lost.with_label_values(&[t]);
        }
        for r in ["loss", "malformed", "overflow"] {
            m.dropped.with_label_values(&[r]);
        }
        for r in [
            "bad_request",
            "unsupported",
            "unauthorized",
            "max_publishers",
            "already_publishing",
            "no_port",
            "failed",
        ] {
            m.rejected.with_label_values(&[r]);
        }
        Ok(m)
    }

    /// Unregistered metrics (tests).
    pub fn unregistered() -> Self {
        let vec = |n: &str, h: &str, l: &[&str]| {
            IntCounterVec::new(Opts::new(n, h), l).expect("valid metric")
        };
        Self {
            sessions: prometheus::IntGauge::new(
                "ferrocast_whip_publishes_active",
                "WHIP sessions publishing or connecting",
            )
            .expect("valid metric"),
            packets: vec(
                "ferrocast_whip_rtp_packets_total",
                "RTP packets received from WHIP publishers",
                &["track"],
            ),
            bytes: vec(
                "ferrocast_whip_rtp_bytes_total",
                "RTP payload bytes received from WHIP publishers",
                &["track"],
            ),
            lost: vec(
                "ferrocast_whip_rtp_packets_lost_total",
                "RTP packets never received (sequence gaps given up on)",
                &["track"],
            ),
            plis: prometheus::IntCounter::new(
                "ferrocast_whip_plis_sent_total",
                "Keyframe requests (RTCP PLI) sent to WHIP publishers",
            )
            .expect("valid metric"),
            dropped: vec(
                "ferrocast_whip_frames_dropped_total",
                "Frames dropped from WHIP publishers, by reason",
                &["reason"],
            ),
            rejected: vec(
                "ferrocast_whip_rejected_total",
                "WHIP publish requests refused, by reason",
                &["reason"],
            ),
        }
    }
}
