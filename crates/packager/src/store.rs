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
    created: tokio::sync::broadcast::Sender<Arc<Stream>>,
}

impl Store {
    /// An empty store.
    pub fn new(settings: StreamSettings, metrics: PackagerMetrics) -> Self {
        Self {
            streams: RwLock::new(HashMap::new()),
            settings,
            metrics,
            created: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// Every stream created from now on (a receiver that falls more than 256 streams behind
    /// misses some and is told so).
    pub fn created(&self) -> tokio::sync::broadcast::Receiver<Arc<Stream>> {
        self.created.subscribe()
    }

    /// A stream by name.
    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().get(name).cloned()
    }

    /// How many streams there are (live, waiting for a publisher, or ended and lingering).
    pub fn len(&self) -> usize {
        self.streams.read().len()
    }

    /// Whether there is no stream.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stream (live, waiting for its publisher, or ended and lingering), by name.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<Arc<Stream>> = self.streams.read().values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// The stream a publisher of `name` publishes into: the live (or reconnect-pending) one,
    /// or a new one. A stream that has ended (EXT-X-ENDLIST) is final, so a publisher arriving
    /// while it is still in its linger window gets a fresh stream whose media sequence numbers
    /// and init generations continue after the ended one's: object names never repeat, and
    /// caches holding the old objects cannot serve them for the new stream.
    pub fn get_or_create(&self, name: &str) -> Arc<Stream> {
        if let Some(s) = self.get(name).filter(|s| !s.is_ended()) {
            return s;
        }
        let mut w = self.streams.write();
        if let Some(s) = w.get(name).filter(|s| !s.is_ended()) {
            return s.clone();
        }
        let fresh = Arc::new(Stream::new(
            name,
            self.settings.clone(),
            self.metrics.clone(),
        ));
        match w.insert(name.to_string(), fresh.clone()) {
            Some(old) => fresh.continue_after(&old),
            None => self.metrics.active_streams.inc(),
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // the stream's input-loss clock (GAP parts), for as long as it lives
            rt.spawn(crate::stream::drive(Arc::downgrade(&fresh)));
        }
        let _ = self.created.send(fresh.clone());
        fresh
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
}
