//! Per-stream Prometheus metrics, read from the store and the viewer counts at each scrape:
//! a stream's series exist while the stream does (no stale labels after it is removed).

use ferrocast_edge::viewers::Viewers;
use ferrocast_packager::store::Store;
use ferrocast_packager::stream::status::StreamState;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGaugeVec, Opts};
use std::sync::Arc;
use std::time::Instant;

/// The per-stream gauges.
pub struct StreamMetrics {
    store: Option<Arc<Store>>,
    viewers: Arc<Viewers>,
    /// Scrapes fill the gauges one at a time.
    gauges: parking_lot::Mutex<Gauges>,
    descs: Vec<Desc>,
}

struct Gauges {
    viewers: IntGaugeVec,
    bitrate: IntGaugeVec,
    uptime: GaugeVec,
    live: IntGaugeVec,
}

impl StreamMetrics {
    /// Registers the gauges of `store`'s streams (none on an edge) and of `viewers`.
    pub fn register(
        registry: &prometheus::Registry,
        store: Option<Arc<Store>>,
        viewers: Arc<Viewers>,
    ) -> prometheus::Result<()> {
        let gauges = Gauges {
            viewers: IntGaugeVec::new(
                Opts::new(
                    "ferrocast_stream_viewers",
                    "Viewers of a stream: distinct clients (address and User-Agent) that fetched one of its media playlists within the last 15 s",
                ),
                &["stream"],
            )?,
            bitrate: IntGaugeVec::new(
                Opts::new(
                    "ferrocast_stream_bitrate_bits_per_second",
                    "Media bitrate of a stream's track over its last 5 segments",
                ),
                &["stream", "track"],
            )?,
            uptime: GaugeVec::new(
                Opts::new(
                    "ferrocast_stream_uptime_seconds",
                    "Time since the stream was first published",
                ),
                &["stream"],
            )?,
            live: IntGaugeVec::new(
                Opts::new(
                    "ferrocast_stream_live",
                    "1 while a publisher is on the stream, 0 while it waits for one or has ended",
                ),
                &["stream"],
            )?,
        };
        let descs = [
            gauges.viewers.desc(),
            gauges.bitrate.desc(),
            gauges.uptime.desc(),
            gauges.live.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        registry.register(Box::new(StreamMetrics {
            store,
            viewers,
            gauges: parking_lot::Mutex::new(gauges),
            descs,
        }))
    }
}

impl Collector for StreamMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let g = self.gauges.lock();
        g.viewers.reset();
        g.bitrate.reset();
        g.uptime.reset();
        g.live.reset();
        let now = Instant::now();
        let counts = self.viewers.counts(now);
        for (name, n) in &counts {
            g.viewers.with_label_values(&[name]).set(*n as i64);
        }
        for stream in self.store.iter().flat_map(|s| s.list()) {
            let st = stream.status();
            let name = st.name.as_str();
            if !counts.iter().any(|(n, _)| n == name) {
                g.viewers.with_label_values(&[name]).set(0);
            }
            for (track, t) in [("video", &st.video), ("audio", &st.audio)] {
                if let Some(t) = t {
                    g.bitrate
                        .with_label_values(&[name, track])
                        .set(t.bitrate as i64);
                }
            }
            g.uptime
                .with_label_values(&[name])
                .set(st.uptime.as_secs_f64());
            g.live
                .with_label_values(&[name])
                .set(i64::from(st.state == StreamState::Live));
        }
        let mut out = g.viewers.collect();
        out.extend(g.bitrate.collect());
        out.extend(g.uptime.collect());
        out.extend(g.live.collect());
        out
    }
}
