//! The Catalog: where the admission server gets the other objects from. Two sources, one
//! interface: static files (`--objects`: local use, CI, benchmarks) and the cluster's watch caches.
//! Handlers only ever call `read`, whatever the source.

use std::sync::{
    RwLock,
    atomic::{AtomicBool, Ordering},
};

use crate::core::{Object, Options, Snapshot, defaults::default_object};

#[derive(Debug)]
pub struct Catalog {
    snapshot: RwLock<Snapshot>,
    synced: AtomicBool,
}

impl Catalog {
    /// An empty catalog, not yet synced (`/readyz` stays false until `mark_synced`).
    pub fn new(opts: &Options) -> Self {
        Catalog {
            snapshot: RwLock::new(Snapshot::new(Vec::new(), opts)),
            synced: AtomicBool::new(false),
        }
    }

    /// A synced catalog of fixed objects (defaulted here, as in the cluster).
    pub fn from_objects(objects: Vec<Object>, opts: &Options) -> Self {
        let snap = Snapshot::new(objects.into_iter().map(|o| default_object(o, opts)), opts);
        Catalog {
            snapshot: RwLock::new(snap),
            synced: AtomicBool::new(true),
        }
    }

    /// Run `f` on the current snapshot. Writers wait while readers validate: validation is
    /// microseconds and never awaits, so the lock is never held across I/O.
    pub fn read<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        // A panic while holding the lock cannot leave a half-applied insert (insert is
        // remove-then-add of one key), so a poisoned lock is still consistent.
        let guard = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Insert or replace an object (defaulted by the caller).
    pub fn upsert(&self, obj: Object) {
        self.snapshot
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(obj);
    }

    pub fn remove(&self, obj: &Object) {
        self.snapshot
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(obj);
    }

    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::SeqCst);
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// Objects per kind, for the `catalog_objects` metric.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        self.read(|s| s.counts())
    }
}
