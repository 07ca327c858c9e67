//! Connection admission: a bound on open connections in total and per client address, shared
//! by the listeners it guards. A connection holds a [`Slot`] for its life; dropping it frees
//! the place.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_total` connections are open.
    Total,
    /// `max_per_ip` connections from this address are open.
    PerIp,
}

impl Refused {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerIp => "per_ip",
        }
    }
}

/// Open connections counted against limits.
#[derive(Debug)]
pub struct Admission {
    max_total: AtomicUsize,
    max_per_ip: AtomicUsize,
    open: Mutex<Open>,
    /// Mirrors the open count for Prometheus, when given.
    gauge: Option<prometheus::IntGauge>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection's place.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address (one client, one count).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Admission {
    /// Limits (`0`: no limit of that kind); `gauge`, when given, shows the open count.
    pub fn new(
        max_total: usize,
        max_per_ip: usize,
        gauge: Option<prometheus::IntGauge>,
    ) -> Arc<Admission> {
        let a = Arc::new(Admission {
            max_total: AtomicUsize::new(usize::MAX),
            max_per_ip: AtomicUsize::new(usize::MAX),
            open: Mutex::new(Open::default()),
            gauge,
        });
        a.set_limits(max_total, max_per_ip);
        a
    }

    /// Changes the limits (`0`: no limit of that kind) for connections admitted from now on;
    /// open connections stay open even when they are over a lowered limit.
    pub fn set_limits(&self, max_total: usize, max_per_ip: usize) {
        let unbounded = |n: usize| if n == 0 { usize::MAX } else { n };
        self.max_total
            .store(unbounded(max_total), Ordering::Relaxed);
        self.max_per_ip
            .store(unbounded(max_per_ip), Ordering::Relaxed);
    }

    /// Admits a connection from `ip`, or says which limit it hit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let ip = canonical(ip);
        let mut o = self.open.lock();
        if o.total >= self.max_total.load(Ordering::Relaxed) {
            return Err(Refused::Total);
        }
        let n = o.by_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip.load(Ordering::Relaxed) {
            return Err(Refused::PerIp);
        }
        *n += 1;
        o.total += 1;
        if let Some(g) = &self.gauge {
            g.set(o.total as i64);
        }
        Ok(Slot {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.admission.open.lock();
        o.total -= 1;
        if let Some(g) = &self.admission.gauge {
            g.set(o.total as i64);
        }
        if let Some(n) = o.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_release() {
        let gauge = prometheus::IntGauge::new("open", "open").unwrap();
        let a = Admission::new(3, 2, Some(gauge.clone()));
        let x: IpAddr = "192.0.2.1".parse().unwrap();
        let y: IpAddr = "192.0.2.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let s1 = a.admit(x).unwrap();
        let _s2 = a.admit(mapped).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Refused::PerIp);
        let _s3 = a.admit(y).unwrap();
        assert_eq!(a.admit(y).unwrap_err(), Refused::Total);
        assert_eq!(gauge.get(), 3);
        drop(s1);
        assert_eq!(a.open(), 2);
        assert_eq!(gauge.get(), 2);
        let _s4 = a.admit(x).unwrap();
        let unlimited = Admission::new(0, 0, None);
        let slots: Vec<_> = (0..1000).map(|_| unlimited.admit(x).unwrap()).collect();
        assert_eq!(unlimited.open(), 1000);
        drop(slots);
        assert_eq!(unlimited.open(), 0);
        assert!(unlimited.open.lock().by_ip.is_empty());
    }
}
