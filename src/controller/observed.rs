//! Observed state: kube-runtime reflector stores of the companion kinds, by our label, and an
//! index from parent to its companions. The controller compares against these in memory; it
//! never lists to find out what exists.
//!
//! Every event is also classified: an *echo* of a write this process sent (nothing to do), or a
//! *foreign* change (someone deleted or changed a companion, or another replica's admission wrote
//! it). A foreign change enqueues the companion's parent, and is not undone for
//! [`FOREIGN_GRACE`]: another replica's admission writes companions before its parent is
//! stored, and our catalog learns of that parent a moment later.

use std::collections::{BTreeSet, HashMap};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::companions::kinds;
use crate::core::{
    expand::{
        ParentRef,
        metadata::{MANAGED_BY, MANAGER, PARENT_KIND, PARENT_NAME, PARENT_NAMESPACE},
    },
    object::GlooKind,
};

use super::plan::CompanionKey;

/// How long a foreign change stands before the controller may undo it.
pub const FOREIGN_GRACE: Duration = Duration::from_secs(2);

/// Where observed changes are announced: the parent, and when to look at it.
pub type Notify = tokio::sync::mpsc::UnboundedSender<(ParentRef, Duration)>;

/// A write this process sent, to recognise its echo.
#[derive(Debug)]
struct Own {
    /// The spec sent (`None`: a delete).
    spec: Option<Value>,
    at: Instant,
}

#[derive(Default)]
struct Index {
    by_parent: HashMap<ParentRef, BTreeSet<CompanionKey>>,
    parent_of: HashMap<CompanionKey, ParentRef>,
    foreign: HashMap<CompanionKey, Instant>,
    own: HashMap<CompanionKey, Own>,
}

impl Index {
    fn insert(&mut self, key: CompanionKey, parent: Option<ParentRef>) {
        self.remove(&key);
        if let Some(p) = parent {
            self.by_parent
                .entry(p.clone())
                .or_default()
                .insert(key.clone());
            self.parent_of.insert(key, p);
        }
    }

    fn remove(&mut self, key: &CompanionKey) -> Option<ParentRef> {
        let p = self.parent_of.remove(key)?;
        if let Some(set) = self.by_parent.get_mut(&p) {
            set.remove(key);
            if set.is_empty() {
                self.by_parent.remove(&p);
            }
        }
        Some(p)
    }
}

pub struct Observed {
    stores: Vec<(ApiResource, Store<DynamicObject>)>,
    index: Mutex<Index>,
    /// Kinds whose first list is not in yet.
    unsynced: AtomicUsize,
}

/// The parent a companion belongs to, from its labels.
pub fn parent_from_labels(o: &DynamicObject) -> Option<ParentRef> {
    parent_of_labels(o.metadata.labels.as_ref())
}

/// The parent named by a companion's labels (ours only).
pub fn parent_of_labels(
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<ParentRef> {
    let l = labels?;
    if l.get(MANAGED_BY).map(String::as_str) != Some(MANAGER) {
        return None;
    }
    let kind = match l.get(PARENT_KIND)?.as_str() {
        "ExternalService" => GlooKind::ExternalService,
        "VirtualGateway" => GlooKind::VirtualGateway,
        "AccessPolicy" => GlooKind::AccessPolicy,
        _ => return None,
    };
    Some(ParentRef::new(
        kind,
        l.get(PARENT_NAMESPACE)?,
        l.get(PARENT_NAME)?,
    ))
}

impl Observed {
    /// Start one watch per companion kind (by our label) feeding a reflector store. Changes are
    /// sent to `notify`.
    pub fn start(client: Client, notify: Notify) -> (Arc<Observed>, Vec<JoinHandle<()>>) {
        let mut writers = Vec::new();
        let mut stores = Vec::new();
        for ar in kinds::all() {
            let writer = reflector::store::Writer::new(ar.clone());
            stores.push((ar.clone(), writer.as_reader()));
            writers.push((ar, writer));
        }
        let observed = Arc::new(Observed {
            stores,
            index: Mutex::new(Index::default()),
            unsynced: AtomicUsize::new(writers.len()),
        });
        let tasks = writers
            .into_iter()
            .map(|(ar, writer)| {
                tokio::spawn(watch(
                    client.clone(),
                    ar,
                    writer,
                    observed.clone(),
                    notify.clone(),
                ))
            })
            .collect();
        (observed, tasks)
    }

    /// Every companion kind has been listed once.
    pub fn is_synced(&self) -> bool {
        self.unsynced.load(Ordering::SeqCst) == 0
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self, kind: &str) -> Option<&(ApiResource, Store<DynamicObject>)> {
        self.stores.iter().find(|(ar, _)| ar.kind == kind)
    }

    pub fn get(&self, key: &CompanionKey) -> Option<Arc<DynamicObject>> {
        let (ar, store) = self.store(&key.kind)?;
        store.get(&ObjectRef::new_with(&key.name, ar.clone()).within(&key.namespace))
    }

    /// The stored companions of `parent`, with their kinds.
    pub fn of_parent(&self, parent: &ParentRef) -> Vec<(String, Arc<DynamicObject>)> {
        let keys: Vec<CompanionKey> = self
            .index()
            .by_parent
            .get(parent)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        keys.into_iter()
            .filter_map(|k| self.get(&k).map(|o| (k.kind, o)))
            .collect()
    }

    /// Every parent that has stored companions.
    pub fn parents(&self) -> Vec<ParentRef> {
        self.index().by_parent.keys().cloned().collect()
    }

    /// Companions stored, all kinds.
    pub fn len(&self) -> usize {
        self.stores.iter().map(|(_, s)| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When a foreign change of `key` may be undone, if that is still in the future.
    pub fn foreign_until(&self, key: &CompanionKey) -> Option<Instant> {
        let until = *self.index().foreign.get(key)? + FOREIGN_GRACE;
        (until > Instant::now()).then_some(until)
    }

    /// Was `key` last changed by someone else (its state now is not what we wrote)?
    pub fn changed_by_others(&self, key: &CompanionKey) -> bool {
        self.index().foreign.contains_key(key)
    }

    /// About to send a write of `key` (`spec: None` for a delete): its echo is not foreign.
    pub fn sending(&self, key: &CompanionKey, spec: Option<Value>) {
        let mut index = self.index();
        index.foreign.remove(key);
        index.own.insert(
            key.clone(),
            Own {
                spec,
                at: Instant::now(),
            },
        );
    }

    /// Is this event the echo of our own write? (Consumes the record when it is.)
    fn is_echo(&self, key: &CompanionKey, obj: Option<&DynamicObject>) -> bool {
        let mut index = self.index();
        // Records whose echo never came (a write that failed) do not live for ever.
        if index.own.len() > 10_000 {
            index
                .own
                .retain(|_, o| o.at.elapsed() < Duration::from_secs(60));
        }
        let echo = match (index.own.get(key), obj) {
            (Some(Own { spec: None, .. }), None) => true,
            (Some(Own { spec: Some(s), .. }), Some(o)) => o.data.get("spec") == Some(s),
            _ => false,
        };
        if echo {
            index.own.remove(key);
        }
        echo
    }

    fn foreign(&self, key: &CompanionKey) {
        self.index().foreign.insert(key.clone(), Instant::now());
    }
}

async fn watch(
    client: Client,
    ar: ApiResource,
    writer: reflector::store::Writer<DynamicObject>,
    observed: Arc<Observed>,
    notify: Notify,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let cfg = watcher::Config::default()
        .labels(&format!("{MANAGED_BY}={MANAGER}"))
        .any_semantic();
    // managedFields are most of an object's size and nothing here reads them.
    let stream = watcher(api, cfg)
        .backoff(crate::cluster::watch_backoff())
        .modify(|o: &mut DynamicObject| o.metadata.managed_fields = None);
    let mut stream = std::pin::pin!(reflector::reflector(writer, stream));
    let mut relist: Option<BTreeSet<CompanionKey>> = None;
    let mut synced = false;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(kind = %ar.kind, error = %e, "companion watch failed; retrying with backoff");
                continue;
            }
        };
        match event {
            watcher::Event::Init => relist = Some(BTreeSet::new()),
            watcher::Event::InitApply(o) => {
                let key = CompanionKey::of_observed(&ar.kind, &o);
                observed.index().insert(key.clone(), parent_from_labels(&o));
                if let Some(r) = relist.as_mut() {
                    r.insert(key);
                }
            }
            watcher::Event::InitDone => {
                let listed = relist.take().unwrap_or_default();
                let gone: Vec<(CompanionKey, ParentRef)> = {
                    let mut index = observed.index();
                    let stale: Vec<CompanionKey> = index
                        .parent_of
                        .keys()
                        .filter(|k| k.kind == ar.kind && !listed.contains(k))
                        .cloned()
                        .collect();
                    stale
                        .into_iter()
                        .filter_map(|k| index.remove(&k).map(|p| (k, p)))
                        .collect()
                };
                if synced {
                    // A re-list after a broken watch: what changed meanwhile is unknown, so
                    // every parent of this kind's companions is compared again.
                    let parents: BTreeSet<ParentRef> = listed
                        .iter()
                        .filter_map(|k| observed.index().parent_of.get(k).cloned())
                        .chain(gone.into_iter().map(|(_, p)| p))
                        .collect();
                    for p in parents {
                        let _ = notify.send((p, FOREIGN_GRACE));
                    }
                } else {
                    synced = true;
                    observed.unsynced.fetch_sub(1, Ordering::SeqCst);
                    tracing::debug!(kind = %ar.kind, objects = listed.len(), "companions listed");
                }
            }
            watcher::Event::Apply(o) => {
                let key = CompanionKey::of_observed(&ar.kind, &o);
                let parent = parent_from_labels(&o);
                let previous = {
                    let mut index = observed.index();
                    let previous = index.parent_of.get(&key).cloned();
                    index.insert(key.clone(), parent.clone());
                    previous
                };
                if !observed.is_echo(&key, Some(&o)) {
                    observed.foreign(&key);
                    for p in parent.into_iter().chain(previous) {
                        let _ = notify.send((p, FOREIGN_GRACE));
                    }
                }
            }
            watcher::Event::Delete(o) => {
                let key = CompanionKey::of_observed(&ar.kind, &o);
                let parent = observed
                    .index()
                    .remove(&key)
                    .or_else(|| parent_from_labels(&o));
                if !observed.is_echo(&key, None) {
                    observed.foreign(&key);
                    if let Some(p) = parent {
                        let _ = notify.send((p, FOREIGN_GRACE));
                    }
                }
            }
        }
    }
}
