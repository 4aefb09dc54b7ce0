//! Whether the watches that feed the catalog are connected: when the apiserver (or etcd behind
//! it) is down, the webhook keeps answering from what it has cached, and says so in `/readyz`'s
//! text and the `egress_webhook_watch_connected{kind}` gauge, instead of turning unready: an
//! unready webhook would be dropped from its Service's endpoints and refuse every review once the
//! apiserver is back, until its watches had listed again.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per watched kind: `Some(since)` while its watch fails, `None` once an event arrived again.
#[derive(Debug, Default)]
pub struct WatchHealth {
    failing: Mutex<BTreeMap<&'static str, Option<Instant>>>,
}

impl WatchHealth {
    /// The watch of `kind` failed (connection refused, an error from the apiserver); the time of
    /// the first failure in a row is kept.
    pub fn failed(&self, kind: &'static str) {
        let mut m = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let since = m.entry(kind).or_insert(None);
        since.get_or_insert_with(Instant::now);
    }

    /// The watch of `kind` delivered an event: it is connected.
    pub fn ok(&self, kind: &'static str) {
        let mut m = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(kind, None);
    }

    /// The kinds whose watches fail now, and for how long.
    pub fn failing(&self) -> Vec<(&'static str, Duration)> {
        let m = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter_map(|(k, since)| since.map(|t| (*k, t.elapsed())))
            .collect()
    }

    /// Every kind seen so far, with whether its watch is connected.
    pub fn connected(&self) -> Vec<(&'static str, bool)> {
        let m = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, since)| (*k, since.is_none())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_lasts_until_the_next_event() {
        let h = WatchHealth::default();
        h.ok("Service");
        assert!(h.failing().is_empty());
        h.failed("Service");
        std::thread::sleep(Duration::from_millis(5));
        h.failed("Service");
        let f = h.failing();
        assert_eq!(f.len(), 1);
        assert!(
            f[0].1 >= Duration::from_millis(5),
            "the first failure counts"
        );
        assert_eq!(h.connected(), [("Service", false)]);
        h.ok("Service");
        assert!(h.failing().is_empty());
        assert_eq!(h.connected(), [("Service", true)]);
    }
}
