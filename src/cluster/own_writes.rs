//! Our own writes that a watch has not shown yet. The guardrail audit and lockdown decide what
//! to write by comparing the desired content with the observed one (the watch caches: the
//! catalog's guardrails, the Report and NetworkPolicy watches), so that a new leader or a
//! restarted replica rewrites nothing that is already right. Right after a write the cache still
//! shows the object as it was, and the next pass would send the same write again; this remembers,
//! per object, the resourceVersion the cache showed when we wrote and what we wrote, and says
//! "already sent" while the cache still shows that version.
//!
//! Once the cache shows any other version (our write, or someone's after it), the record is
//! dropped ([`OwnWrites::observe`], for every object at every comparison) and the observed
//! content decides again: a status or policy changed or deleted by hand after our write is
//! corrected. Dropping it as soon as the version moves matters for absence: "absent before our
//! create" and "deleted by hand after it" look the same (no version), and only the version seen
//! in between tells them apart.

use std::collections::BTreeMap;

/// Per object key: the resourceVersion observed when we wrote (`None`: absent) and what we
/// wrote (`None`: a delete).
#[derive(Debug)]
pub struct OwnWrites<V> {
    sent: BTreeMap<String, (Option<String>, Option<V>)>,
}

impl<V> Default for OwnWrites<V> {
    fn default() -> Self {
        OwnWrites {
            sent: BTreeMap::new(),
        }
    }
}

impl<V: PartialEq> OwnWrites<V> {
    /// Was `desired` (`None`: the object's absence) sent for `key` while the cache showed
    /// `observed_rv`, and does the cache still show that version?
    pub fn already_sent(&self, key: &str, observed_rv: Option<&str>, desired: Option<&V>) -> bool {
        self.sent
            .get(key)
            .is_some_and(|(rv, v)| rv.as_deref() == observed_rv && v.as_ref() == desired)
    }

    /// The cache shows `observed_rv` for `key` (`None`: absent): a record made at another
    /// version is obsolete. Call for every key compared, before [`Self::already_sent`].
    pub fn observe(&mut self, key: &str, observed_rv: Option<&str>) {
        if self
            .sent
            .get(key)
            .is_some_and(|(rv, _)| rv.as_deref() != observed_rv)
        {
            self.sent.remove(key);
        }
    }

    /// `desired` was written (or deleted, `None`) while the cache showed `observed_rv`.
    pub fn record(&mut self, key: String, observed_rv: Option<String>, desired: Option<V>) {
        self.sent.insert(key, (observed_rv, desired));
    }

    /// Drop what is known of keys that `keep` rejects (objects neither wanted nor observed any
    /// more), so that the map does not grow with every namespace that ever had a Report.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.sent.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_counts_as_sent_until_the_cache_moves_on() {
        let mut w = OwnWrites::default();
        assert!(!w.already_sent("a", Some("1"), Some(&"x")));
        w.record("a".into(), Some("1".into()), Some("x"));
        assert!(w.already_sent("a", Some("1"), Some(&"x")), "cache behind");
        assert!(
            !w.already_sent("a", Some("1"), Some(&"y")),
            "another content"
        );
        assert!(
            !w.already_sent("a", Some("2"), Some(&"x")),
            "the cache moved on: its content decides"
        );
        w.record("b".into(), None, Some("x"));
        assert!(w.already_sent("b", None, Some(&"x")), "a create in flight");
        w.record("c".into(), Some("7".into()), None);
        assert!(w.already_sent("c", Some("7"), None), "a delete in flight");
        assert!(!w.already_sent("c", Some("8"), None));
        w.retain(|k| k != "a");
        assert!(!w.already_sent("a", Some("1"), Some(&"x")));
    }

    #[test]
    fn a_create_seen_and_then_deleted_by_hand_is_not_taken_for_the_create_in_flight() {
        let mut w = OwnWrites::default();
        w.record("a".into(), None, Some("x"));
        w.observe("a", None);
        assert!(w.already_sent("a", None, Some(&"x")), "not seen yet");
        w.observe("a", Some("5"));
        w.observe("a", None);
        assert!(
            !w.already_sent("a", None, Some(&"x")),
            "deleted after it was seen"
        );
    }
}
