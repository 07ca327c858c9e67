//! The edge's object table: cached objects plus in-progress fills, with request coalescing.
//!
//! A lookup answers one of three ways (the shape of pingora's cache lock):
//! - [`Lookup::Hit`]: a fresh object; serve it (its `Bytes` are shared, never copied).
//! - [`Lookup::Fill`]: nobody is fetching this key; the caller gets the [`FillPermit`] and must
//!   fetch it once, for everyone, then [`FillPermit::finish`].
//! - [`Lookup::Wait`]: a fill is in flight; wait on its channel.
//!
//! A permit dropped without `finish` (the fill task died, or every waiter went away) removes the
//! slot and tells the waiters [`FillError::Abandoned`], so they compete again. A failed fill or an
//! error answer is handed to the waiters of that fill and never stored, so the next request
//! retries. Waiters hold only a `watch::Receiver`; when the last one goes away the fill sees
//! [`FillPermit::abandoned`] and stops its upstream request.
//!
//! Memory: the sum of stored objects' sizes is kept under a byte budget. Eviction removes expired
//! objects first, then the least recently used until 90 % of the budget. Live objects are wanted
//! by everyone within a few seconds of being published and by nobody afterwards, so recency is
//! the best predictor there is; playlists (one key per blocking position, a few seconds' TTL)
//! mostly leave by expiry before the budget matters.

use super::object::Object;
use crate::metrics::EdgeMetrics;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Why a fill produced no object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    /// The fill was dropped before finishing; look up again.
    #[error("fill abandoned")]
    Abandoned,
    /// No origin gave an answer.
    #[error("upstream failed: {0}")]
    Upstream(String),
    /// No origin answered in time.
    #[error("upstream timed out")]
    Timeout,
}

/// State of a fill as its waiters see it: `None` while in flight.
pub type FillState = Option<Result<Arc<Object>, FillError>>;

enum Slot {
    Ready { object: Arc<Object>, used: u64 },
    Filling(Arc<watch::Sender<FillState>>),
}

struct Table {
    map: HashMap<Arc<str>, Slot>,
    bytes: usize,
    tick: u64,
}

/// The object table. Cheap to share (`Arc`).
pub struct Cache {
    table: Mutex<Table>,
    budget: usize,
    metrics: EdgeMetrics,
}

/// The outcome of [`Cache::lookup`].
pub enum Lookup {
    /// A fresh stored object.
    Hit(Arc<Object>),
    /// Someone else is filling this key.
    Wait(watch::Receiver<FillState>),
    /// The caller fills this key (and waits on the receiver like everyone else).
    Fill(FillPermit, watch::Receiver<FillState>),
}

/// The right (and duty) to fill one key.
pub struct FillPermit {
    cache: Arc<Cache>,
    key: Arc<str>,
    tx: Arc<watch::Sender<FillState>>,
    done: bool,
}

impl Cache {
    /// A table holding at most `budget` bytes of objects.
    pub fn new(budget: usize, metrics: EdgeMetrics) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::new(Table {
                map: HashMap::new(),
                bytes: 0,
                tick: 0,
            }),
            budget,
            metrics,
        })
    }

    /// Bytes of stored objects.
    pub fn bytes(&self) -> usize {
        self.table.lock().bytes
    }

    /// Stored objects and fills in flight.
    pub fn counts(&self) -> (usize, usize) {
        let t = self.table.lock();
        let fills = t
            .map
            .values()
            .filter(|s| matches!(s, Slot::Filling(_)))
            .count();
        (t.map.len() - fills, fills)
    }

    /// Looks `key` up at `now` for a viewer's request.
    pub fn lookup(self: &Arc<Self>, key: &str, now: Instant) -> Lookup {
        self.lookup_counted(key, now, true)
    }

    /// Looks `key` up for the edge itself (a prefetch): not counted as a hit, miss or wait.
    pub fn lookup_quiet(self: &Arc<Self>, key: &str, now: Instant) -> Lookup {
        self.lookup_counted(key, now, false)
    }

    fn lookup_counted(self: &Arc<Self>, key: &str, now: Instant, count: bool) -> Lookup {
        let mut t = self.table.lock();
        t.tick += 1;
        let tick = t.tick;
        let mut expired = None;
        if let Some(slot) = t.map.get_mut(key) {
            match slot {
                Slot::Ready { object, used } => {
                    if object.fresh(now) {
                        *used = tick;
                        if count {
                            self.metrics.cache_hits.inc();
                        }
                        return Lookup::Hit(object.clone());
                    }
                    expired = Some(object.size);
                }
                Slot::Filling(tx) => {
                    if count {
                        self.metrics.coalesced_waits.inc();
                    }
                    return Lookup::Wait(tx.subscribe());
                }
            }
        }
        if let Some(size) = expired {
            t.bytes -= size;
            self.metrics.evictions.with_label_values(&["expired"]).inc();
        }
        if count {
            self.metrics.cache_misses.inc();
        }
        let (tx, rx) = watch::channel(None);
        let tx = Arc::new(tx);
        let key: Arc<str> = Arc::from(key);
        t.map.insert(key.clone(), Slot::Filling(tx.clone()));
        self.metrics.bytes_cached.set(t.bytes as i64);
        Lookup::Fill(
            FillPermit {
                cache: self.clone(),
                key,
                tx,
                done: false,
            },
            rx,
        )
    }

    /// Removes expired objects (run periodically so idle keys do not hold memory).
    pub fn sweep(&self, now: Instant) {
        let mut t = self.table.lock();
        self.remove_expired(&mut t, now);
        self.metrics.bytes_cached.set(t.bytes as i64);
    }

    fn remove_expired(&self, t: &mut Table, now: Instant) {
        let mut freed = 0;
        let mut n = 0;
        t.map.retain(|_, s| match s {
            Slot::Ready { object, .. } if !object.fresh(now) => {
                freed += object.size;
                n += 1;
                false
            }
            _ => true,
        });
        t.bytes -= freed;
        self.metrics
            .evictions
            .with_label_values(&["expired"])
            .inc_by(n);
    }

    fn complete(
        &self,
        key: &Arc<str>,
        tx: &Arc<watch::Sender<FillState>>,
        store: Option<Arc<Object>>,
    ) {
        let mut t = self.table.lock();
        // only our own slot: a sweep or eviction cannot remove a Filling slot, but be exact
        let ours = matches!(t.map.get(key), Some(Slot::Filling(s)) if Arc::ptr_eq(s, tx));
        if !ours {
            return;
        }
        match store {
            Some(object) if object.size <= self.budget / 4 => {
                t.bytes += object.size;
                t.tick += 1;
                let used = t.tick;
                t.map.insert(key.clone(), Slot::Ready { object, used });
                if t.bytes > self.budget {
                    self.evict(&mut t);
                }
            }
            _ => {
                t.map.remove(key);
            }
        }
        self.metrics.bytes_cached.set(t.bytes as i64);
    }

    fn evict(&self, t: &mut Table) {
        self.remove_expired(t, Instant::now());
        let goal = self.budget / 10 * 9;
        if t.bytes <= goal {
            return;
        }
        let mut by_use: Vec<(u64, Arc<str>, usize)> = t
            .map
            .iter()
            .filter_map(|(k, s)| match s {
                Slot::Ready { object, used } => Some((*used, k.clone(), object.size)),
                Slot::Filling(_) => None,
            })
            .collect();
        by_use.sort_unstable_by_key(|e| e.0);
        let mut n = 0;
        for (_, k, size) in by_use {
            if t.bytes <= goal {
                break;
            }
            t.map.remove(&k);
            t.bytes -= size;
            n += 1;
        }
        self.metrics
            .evictions
            .with_label_values(&["budget"])
            .inc_by(n);
    }
}

impl FillPermit {
    /// The key being filled.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Resolves when every waiter has gone: the fill may stop.
    pub async fn abandoned(&self) {
        self.tx.closed().await
    }

    /// Hands `result` to every waiter; stores the object when `store` is set.
    pub fn finish(mut self, result: Result<Arc<Object>, FillError>, store: bool) {
        self.done = true;
        let keep = match (&result, store) {
            (Ok(o), true) => Some(o.clone()),
            _ => None,
        };
        self.cache.complete(&self.key, &self.tx, keep);
        self.tx.send_replace(Some(result));
    }
}

impl Drop for FillPermit {
    fn drop(&mut self) {
        if !self.done {
            self.cache.complete(&self.key, &self.tx, None);
            self.tx.send_replace(Some(Err(FillError::Abandoned)));
        }
    }
}
