//! The Catalog: where the admission server gets the other objects from. Two sources, one
//! interface: static files (`--objects`: local use, CI, benchmarks) and the cluster's watch caches.
//! Handlers only ever call `read`, whatever the source.

use std::collections::BTreeSet;
use std::sync::{
    Mutex, RwLock,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::mpsc;

use crate::core::{
    Object, Options, Snapshot,
    defaults::default_object,
    expand::{ParentRef, affected_parents},
};

#[derive(Debug)]
pub struct Catalog {
    snapshot: RwLock<Snapshot>,
    synced: AtomicBool,
    /// Where changes are announced (the reconciler), as the parents whose companions they affect.
    changes: Mutex<Option<mpsc::UnboundedSender<BTreeSet<ParentRef>>>>,
}

impl Catalog {
    /// An empty catalog, not yet synced (`/readyz` stays false until `mark_synced`).
    pub fn new(opts: &Options) -> Self {
        Catalog {
            snapshot: RwLock::new(Snapshot::new(Vec::new(), opts)),
            synced: AtomicBool::new(false),
            changes: Mutex::new(None),
        }
    }

    /// A synced catalog of fixed objects (defaulted here, as in the cluster).
    pub fn from_objects(objects: Vec<Object>, opts: &Options) -> Self {
        let snap = Snapshot::new(objects.into_iter().map(|o| default_object(o, opts)), opts);
        Catalog {
            snapshot: RwLock::new(snap),
            synced: AtomicBool::new(true),
            changes: Mutex::new(None),
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
        let mut snap = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        // Affected before and after: a reference the change drops only shows before.
        let mut affected = self.subscribed().then(|| affected_parents(&snap, &obj));
        snap.insert(obj.clone());
        if let Some(a) = affected.as_mut() {
            a.extend(affected_parents(&snap, &obj));
        }
        drop(snap);
        self.announce(affected);
    }

    pub fn remove(&self, obj: &Object) {
        let mut snap = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let affected = self.subscribed().then(|| affected_parents(&snap, obj));
        snap.remove(obj);
        drop(snap);
        self.announce(affected);
    }

    /// Receive, for every later change, the parents whose companions it may change.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<BTreeSet<ParentRef>> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.changes.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    fn subscribed(&self) -> bool {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn announce(&self, parents: Option<BTreeSet<ParentRef>>) {
        if let Some(p) = parents.filter(|p| !p.is_empty())
            && let Some(tx) = self
                .changes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
        {
            let _ = tx.send(p);
        }
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
