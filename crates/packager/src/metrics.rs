//! Prometheus metrics of the packager. Created once by the binary and registered in its
//! registry; cloned (cheaply) into every stream.

use ferrocast_media::TrackKind;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Packager metrics.
#[derive(Clone, Debug)]
pub struct PackagerMetrics {
    /// Live streams in the store.
    pub active_streams: IntGauge,
    /// Parts produced, by rendition.
    pub parts: IntCounterVec,
    /// Segments produced, by rendition.
    pub segments: IntCounterVec,
    /// Segments cut without a keyframe because the GOP outgrew TARGETDURATION.
    pub forced_cuts: IntCounterVec,
    /// Last frame of a part received → part servable, seconds, by rendition.
    pub part_publish_latency: HistogramVec,
    /// GAP parts published while the input was lost, by rendition.
    pub gap_parts: IntCounterVec,
    /// The per-rendition series, resolved once (video, audio): not hashed per part.
    by_track: [TrackMetrics; 2],
}

/// One rendition's series.
#[derive(Clone, Debug)]
pub struct TrackMetrics {
    /// `ferrocast_parts_total{rendition}`.
    pub parts: IntCounter,
    /// `ferrocast_segments_total{rendition}`.
    pub segments: IntCounter,
    /// `ferrocast_part_publish_latency_seconds{rendition}`.
    pub part_publish_latency: Histogram,
    /// `ferrocast_gap_parts_total{rendition}`.
    pub gap_parts: IntCounter,
}

impl PackagerMetrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.active_streams.clone()))?;
        registry.register(Box::new(m.parts.clone()))?;
        registry.register(Box::new(m.segments.clone()))?;
        registry.register(Box::new(m.forced_cuts.clone()))?;
        registry.register(Box::new(m.part_publish_latency.clone()))?;
        registry.register(Box::new(m.gap_parts.clone()))?;
        Ok(m)
    }

    /// Metrics that are not registered anywhere (tests, benches).
    pub fn unregistered() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let parts = counter(
            "ferrocast_parts_total",
            "LL-HLS parts produced",
            &["rendition"],
        );
        let segments = counter(
            "ferrocast_segments_total",
            "Segments produced",
            &["rendition"],
        );
        let gap_parts = counter(
            "ferrocast_gap_parts_total",
            "GAP parts published while a stream's input was lost",
            &["rendition"],
        );
        let part_publish_latency = HistogramVec::new(
            HistogramOpts::new(
                "ferrocast_part_publish_latency_seconds",
                "Time from receiving the last frame of a part to the part being servable",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
            ]),
            &["rendition"],
        )
        .expect("valid metric");
        let by_track = [TrackKind::Video, TrackKind::Audio].map(|t| TrackMetrics {
            parts: parts.with_label_values(&[t.as_str()]),
            segments: segments.with_label_values(&[t.as_str()]),
            part_publish_latency: part_publish_latency.with_label_values(&[t.as_str()]),
            gap_parts: gap_parts.with_label_values(&[t.as_str()]),
        });
        Self {
            active_streams: IntGauge::new(
                "ferrocast_active_streams",
                "Streams currently in the store (live or within their window after the end)",
            )
            .expect("valid metric"),
            parts,
            segments,
            forced_cuts: counter(
                "ferrocast_segments_forced_cut_total",
                "Segments cut without a keyframe because the GOP exceeded TARGETDURATION",
                &["stream"],
            ),
            part_publish_latency,
            gap_parts,
            by_track,
        }
    }
}

impl PackagerMetrics {
    /// The series of one rendition.
    pub fn track(&self, t: TrackKind) -> &TrackMetrics {
        &self.by_track[usize::from(t == TrackKind::Audio)]
    }
}
