//! All streams of this process, by name.

use crate::metrics::PackagerMetrics;
use crate::stream::{Stream, StreamSettings};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// The stream registry shared by ingest (writers) and HTTP delivery (readers).
#[derive(Debug)]
pub struct Store {
    streams: RwLock<HashMap<String, Arc<Stream>>>,
    settings: StreamSettings,
    metrics: PackagerMetrics,
}

impl Store {
    /// An empty store.
    pub fn new(settings: StreamSettings, metrics: PackagerMetrics) -> Self {
        Self {
            streams: RwLock::new(HashMap::new()),
            settings,
            metrics,
        }
    }

    /// Settings applied to new streams.
    pub fn settings(&self) -> StreamSettings {
        self.settings
    }

    /// A stream by name.
    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().get(name).cloned()
    }

    /// The stream of that name, created if absent.
    pub fn get_or_create(&self, name: &str) -> Arc<Stream> {
        if let Some(s) = self.get(name) {
            return s;
        }
        let mut w = self.streams.write();
        let s = w
            .entry(name.to_string())
            .or_insert_with(|| {
                self.metrics.active_streams.inc();
                Arc::new(Stream::new(name, self.settings, self.metrics.clone()))
            })
            .clone();
        s
    }

    /// Removes a stream if it is still this instance and has ended.
    pub fn remove_if_ended(&self, stream: &Arc<Stream>) -> bool {
        let mut w = self.streams.write();
        match w.get(stream.name()) {
            Some(s) if Arc::ptr_eq(s, stream) && s.is_ended() => {
                w.remove(stream.name());
                self.metrics.active_streams.dec();
                true
            }
            _ => false,
        }
    }

    /// Names of all streams.
    pub fn names(&self) -> Vec<String> {
        self.streams.read().keys().cloned().collect()
    }
}
