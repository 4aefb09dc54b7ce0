//! The Catalog: where the admission server gets the other objects from. Two sources, one
//! interface: static files (`--objects`: local use, CI, benchmarks) and the cluster's watch caches
//! (`crate::cluster::catalog`). Handlers only ever call `read`, whatever the source.
//!
//! A cluster catalog also has a [`Refresher`]: when a review would be denied because a referenced
//! object is missing (E22, A14; G5 for the AccessPolicy an ExternalService needs, G7 for an
//! EgressGuardrail's `allowedGateways`), the handler asks [`Catalog::refresh_for`] (or
//! `refresh_for_guardrail`) to fetch those objects from the apiserver once, and validates again.
//! So an object created a moment ago, whose watch event has not arrived yet, never causes a
//! denial. A static catalog has no refresher: what the
//! files hold is the whole truth.
//!
//! Nobody waits to read (issue 13): the current snapshot is an immutable `Arc<Snapshot>` behind
//! an [`ArcSwap`]. A review loads it (no lock) and decides on it; a writer (a watch event, an
//! admission entering the overlay, a re-list) changes a private clone under the overlay's mutex
//! and publishes it in one store. The snapshot's persistent maps make that clone a few reference
//! counts, and a change copies only the path to what it touches. Reviews and `/readyz` never
//! wait for a writer, and writers never wait for a review.

mod guardrails;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU64, Ordering},
};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::api::{ObjectSelector, list, text};
use crate::core::{
    Finding, Object, Options, Severity, Snapshot,
    defaults::default_object,
    expand::{ParentRef, affected_parents},
    mesh_config::Outbound,
    selectors::is_local_cluster,
    snapshot::external_service_destinations,
};

/// Rules whose errors a stale cache can cause: a reference to an object that does not exist
/// (yet, as far as the cache knows). G7: a guardrail applied right after the VirtualGateway it
/// names (one `kubectl apply -f` of both) must not be refused because the watch is behind; G5:
/// nor an ExternalService applied right after its AccessPolicy (which another replica admitted),
/// nor the delete of an AccessPolicy right after another that selects the same ones.
pub const STALE_CACHE_RULES: [&str; 4] = ["E22", "A14", "G5", "G7"];

/// How long a review may wait for the live lookups (the apiserver gives a review 10 s).
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(3);

/// An object that a rule looks up by name, which a live source can fetch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reference {
    VirtualGateway {
        namespace: String,
        name: String,
    },
    /// `namespace: None`: an ExternalService of this name in any namespace.
    ExternalService {
        namespace: Option<String>,
        name: String,
    },
    /// Every AccessPolicy (G5): a policy in any namespace may select an ExternalService, by name,
    /// labels or namespace, so the one the cache lacks is found only in the full list. Asked for
    /// on G5's denial path only.
    AccessPolicies,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::VirtualGateway { namespace, name } => {
                write!(f, "VirtualGateway {namespace}/{name}")
            }
            Reference::ExternalService {
                namespace: Some(ns),
                name,
            } => write!(f, "ExternalService {ns}/{name}"),
            Reference::ExternalService {
                namespace: None,
                name,
            } => write!(f, "ExternalService */{name}"),
            Reference::AccessPolicies => f.write_str("AccessPolicies */*"),
        }
    }
}

/// Fetches referenced objects from their source of truth (the apiserver).
pub trait Refresher: Send + Sync {
    /// The objects that exist among `refs`, as read now; an error says why the lookup failed.
    fn fetch<'a>(&'a self, refs: &'a [Reference]) -> BoxFuture<'a, Result<Vec<Object>, String>>;

    /// The labels of a namespace (`None`: it does not exist), for the guardrails' selectors.
    fn namespace_labels<'a>(
        &'a self,
        _namespace: &'a str,
    ) -> BoxFuture<'a, Result<Option<guardrails::NamespaceLabels>, String>> {
        Box::pin(async { Ok(None) })
    }
}

/// An object admitted by this process whose stored version the watches have not delivered yet
/// (the overlay): the snapshot shows `admitted` in the meantime, so that the controller, which
/// reads the snapshot, wants the companions admission wrote for it instead of undoing them.
struct Pending {
    /// Identifies one admission: a later admission of the same object replaces this entry, and
    /// reverting an older one must not touch it.
    seq: u64,
    admitted: Object,
    since: Instant,
    /// What the watches last said is stored under this key (`None`: nothing).
    stored: Option<Object>,
}

/// (kind, namespace, name) of a catalog object.
pub type ObjectKey = (&'static str, String, String);

fn object_key(o: &Object) -> ObjectKey {
    (
        o.kind_name(),
        o.namespace().to_string(),
        o.name().to_string(),
    )
}

/// Do two versions of an object mean the same thing to rules and expansion? Spec and labels;
/// resourceVersion, uid, managedFields and status do not count.
pub fn same_content(a: &Object, b: &Object) -> bool {
    let (va, vb) = (a.to_value(), b.to_value());
    object_key(a) == object_key(b)
        && va.get("spec") == vb.get("spec")
        && va.pointer("/metadata/labels") == vb.pointer("/metadata/labels")
}

/// Is `after` `before` with only its status (or resourceVersion, managedFields) changed, and a
/// status that has seen the current generation? Such a change (most often our own status write)
/// needs no reconcile. A status behind its generation does: it is how an update admitted (and
/// held in the overlay) ends up with a status for its new generation once it is stored.
pub fn status_only(before: &Object, after: &Object) -> bool {
    let strip = |o: &Object| {
        let mut v = o.to_value();
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
        }
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        v
    };
    let after_v = after.to_value();
    let observed = after_v.pointer("/status/common/State/observedGeneration");
    let generation = after_v.pointer("/metadata/generation");
    observed.is_some() && observed == generation && strip(before) == strip(after)
}

/// What [`Catalog::admit`] returns: the affected parents, and the handle to take it back.
#[derive(Debug)]
pub struct Admitted {
    key: ObjectKey,
    seq: u64,
    /// Parents whose companions the object affects, before and after it.
    pub parents: BTreeSet<ParentRef>,
}

pub struct Catalog {
    /// The current version, replaced whole by each change.
    snapshot: ArcSwap<Snapshot>,
    /// The overlay. Its mutex is also the writers' lock: every change of `snapshot` is made and
    /// published under it, so that the overlay and the published snapshot agree for anyone who
    /// holds it.
    pending: Mutex<HashMap<ObjectKey, Pending>>,
    seq: AtomicU64,
    synced: AtomicBool,
    opts: Options,
    refresher: Option<Arc<dyn Refresher>>,
    /// Where changes are announced (the reconciler), as the parents whose companions they affect.
    changes: Mutex<Option<mpsc::UnboundedSender<BTreeSet<ParentRef>>>>,
    /// Whether the watches feeding it are connected (a cluster catalog only).
    pub health: crate::watch_health::WatchHealth,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("synced", &self.is_synced())
            .field("counts", &self.counts())
            .field("refresher", &self.refresher.is_some())
            .finish()
    }
}

impl Catalog {
    /// An empty catalog, not yet synced (`/readyz` stays false until `mark_synced`).
    pub fn new(opts: &Options) -> Self {
        Catalog {
            snapshot: ArcSwap::from_pointee(Snapshot::new(Vec::new(), opts)),
            pending: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            synced: AtomicBool::new(false),
            opts: opts.clone(),
            refresher: None,
            changes: Mutex::new(None),
            health: Default::default(),
        }
    }

    /// A synced catalog of fixed objects (defaulted here, as in the cluster).
    pub fn from_objects(objects: Vec<Object>, opts: &Options) -> Self {
        let snap = Snapshot::new(objects.into_iter().map(|o| default_object(o, opts)), opts);
        Self::from_snapshot(snap, opts)
    }

    /// A synced catalog of the objects of `snap` (defaulted by the caller).
    pub fn from_snapshot(snap: Snapshot, opts: &Options) -> Self {
        Catalog {
            snapshot: ArcSwap::from_pointee(snap),
            pending: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            synced: AtomicBool::new(true),
            opts: opts.clone(),
            refresher: None,
            changes: Mutex::new(None),
            health: Default::default(),
        }
    }

    /// Use `refresher` for live lookups before a denial for a missing reference.
    pub fn with_refresher(mut self, refresher: Arc<dyn Refresher>) -> Self {
        self.refresher = Some(refresher);
        self
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Run `f` on the current snapshot. No lock: a writer publishing meanwhile does not
    /// change the version `f` sees.
    pub fn read<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        f(&self.snapshot.load())
    }

    /// The current snapshot, to keep (several computations on one version).
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The writers' lock (the overlay's mutex). A panic while holding it cannot leave a
    /// half-published change (the snapshot is replaced whole, or not), so a poisoned lock is
    /// still consistent.
    fn writing(&self) -> MutexGuard<'_, HashMap<ObjectKey, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A private copy of the current snapshot to change (shares every node until changed).
    fn draft(&self) -> Snapshot {
        Snapshot::clone(&self.snapshot.load())
    }

    fn publish(&self, snap: Snapshot) {
        self.snapshot.store(Arc::new(snap));
    }

    /// Insert or replace an object (defaulted by the caller): what a watch says is stored.
    /// Under a pending admission of the same object, the admitted version stays visible until
    /// the stored one says the same thing.
    pub fn upsert(&self, obj: Object) {
        self.stored(object_key(&obj), Some(obj));
    }

    /// What a watch says was deleted (only kind, namespace and name of `obj` count).
    pub fn remove(&self, obj: &Object) {
        self.stored(object_key(obj), None);
    }

    /// The watches' word on one key: `Some` stored, `None` gone.
    fn stored(&self, key: ObjectKey, obj: Option<Object>) {
        let mut pending = self.writing();
        if let Some(p) = pending.get_mut(&key) {
            match &obj {
                Some(o) if same_content(o, &p.admitted) => {
                    pending.remove(&key);
                }
                _ => {
                    // Older than the admission (or someone else's later change, which
                    // admission will see too): the admitted version stays until then.
                    p.stored = obj;
                    return;
                }
            }
        }
        let mut snap = self.draft();
        let affected = self.set(&mut snap, &key, obj);
        self.publish(snap);
        drop(pending);
        self.announce(affected);
    }

    /// Make `snap` hold `obj` (or nothing) under `key`; the affected parents, when subscribed.
    fn set(
        &self,
        snap: &mut Snapshot,
        key: &ObjectKey,
        obj: Option<Object>,
    ) -> Option<BTreeSet<ParentRef>> {
        let current = placeholder(key.0, &key.1, &key.2).and_then(|p| snap.get(&p));
        if current == obj {
            return None;
        }
        if let (Some(before), Some(after)) = (&current, &obj)
            && status_only(before, after)
        {
            // Kept (the controller compares the stored status with the one it would write),
            // announced to nobody: writing a status must not cause another reconcile.
            snap.insert(after.clone());
            return None;
        }
        // Affected before and after: a reference the change drops only shows before.
        let mut affected = self.subscribed().then(BTreeSet::new);
        for o in current.iter().chain(obj.iter()) {
            if let Some(a) = affected.as_mut() {
                a.extend(affected_parents(snap, o));
            }
        }
        match obj {
            Some(o) => {
                snap.insert(o.clone());
                if let Some(a) = affected.as_mut() {
                    a.extend(affected_parents(snap, &o));
                }
            }
            None => {
                if let Some(c) = &current {
                    snap.remove(c);
                }
            }
        }
        affected
    }

    /// Admission wrote (or is about to write) the companions of `obj` (defaulted): from now on
    /// it is part of the desired state, until the watches deliver it stored, [`Catalog::revert`]
    /// takes it back, or [`Catalog::settle`] finds it never was stored.
    pub fn admit(&self, obj: Object) -> Admitted {
        let key = object_key(&obj);
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let mut pending = self.writing();
        let mut snap = self.draft();
        let mut parents = affected_parents(&snap, &obj);
        let current = snap.get(&obj);
        let stored = match pending.remove(&key) {
            Some(p) => p.stored,
            None => current,
        };
        pending.insert(
            key.clone(),
            Pending {
                seq,
                admitted: obj.clone(),
                since: Instant::now(),
                stored,
            },
        );
        snap.insert(obj.clone());
        parents.extend(affected_parents(&snap, &obj));
        self.publish(snap);
        Admitted { key, seq, parents }
    }

    /// Take an admission back (its companion writes failed and it is denied): the stored
    /// version is visible again, and the affected parents are announced so that the controller
    /// puts right whatever the rollback could not.
    pub fn revert(&self, admitted: &Admitted) {
        let mut pending = self.writing();
        let stored = match pending.get(&admitted.key) {
            Some(p) if p.seq == admitted.seq => pending.remove(&admitted.key).map(|p| p.stored),
            // A later admission of the same object owns the entry now.
            _ => None,
        };
        let Some(stored) = stored else {
            return;
        };
        let mut snap = self.draft();
        let mut affected = self
            .set(&mut snap, &admitted.key, stored)
            .unwrap_or_default();
        self.publish(snap);
        drop(pending);
        affected.extend(admitted.parents.iter().cloned());
        self.announce(Some(affected));
    }

    /// Admissions pending for longer than `grace`: the caller asks the apiserver what is stored
    /// and calls [`Catalog::settle`].
    pub fn pending_older_than(&self, grace: Duration) -> Vec<ObjectKey> {
        let pending = self.writing();
        pending
            .iter()
            .filter(|(_, p)| p.since.elapsed() >= grace)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The apiserver's answer (read live, defaulted by the caller) for a pending admission:
    /// what it says is stored replaces the admitted version, whatever it is. An admission that
    /// was refused later in the apiserver's chain ends here.
    pub fn settle(&self, key: &ObjectKey, live: Option<Object>) {
        let mut pending = self.writing();
        if pending.remove(key).is_none() {
            return;
        }
        let mut snap = self.draft();
        let affected = self.set(&mut snap, key, live);
        self.publish(snap);
        drop(pending);
        self.announce(affected);
    }

    /// Run `f` on the snapshot as it would be with `obj` (defaulted) stored, without keeping it:
    /// `obj` goes into a private copy of the current version, which nobody else sees, and no
    /// lock is held. `f` also gets the parents `obj` affected in the current version.
    pub fn with_object<T>(
        &self,
        obj: &Object,
        f: impl FnOnce(BTreeSet<ParentRef>, &Snapshot) -> T,
    ) -> T {
        let current = self.snapshot.load_full();
        let before = affected_parents(&current, obj);
        let mut view = Snapshot::clone(&current);
        view.insert(obj.clone());
        f(before, &view)
    }

    /// The parent as stored (the watch's version), `None` while an admission of it is pending
    /// or when it does not exist: a status describes what the apiserver has.
    pub fn stored_parent(&self, p: &ParentRef) -> Option<Object> {
        let holder = placeholder(p.kind.as_str(), &p.namespace, &p.name)?;
        // Under the writers' lock, the overlay and the published snapshot agree.
        let pending = self.writing();
        if pending.contains_key(&object_key(&holder)) {
            return None;
        }
        self.snapshot.load().get(&holder)
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

    /// Replace every object of `kind` (an [`Object::kind_name`]) with `objects` (defaulted by
    /// the caller), in one step: what a full re-list of a watch says is the whole truth (but
    /// for pending admissions, as in [`Catalog::upsert`]).
    pub fn replace_kind(&self, kind: &str, objects: Vec<Object>) {
        // Readers keep deciding on the version before the re-list until it is published whole.
        let mut pending = self.writing();
        let mut snap = self.draft();
        let mut listed: HashMap<ObjectKey, Object> = objects
            .into_iter()
            .filter(|o| o.kind_name() == kind)
            .map(|o| (object_key(&o), o))
            .collect();
        let mut keys: BTreeSet<ObjectKey> = snap
            .keys(kind)
            .into_iter()
            .filter_map(|(ns, name)| placeholder(kind, &ns, &name).map(|p| object_key(&p)))
            .collect();
        keys.extend(listed.keys().cloned());
        let mut affected = self.subscribed().then(BTreeSet::new);
        for key in keys {
            let obj = listed.remove(&key);
            if let Some(p) = pending.get_mut(&key) {
                if obj.as_ref().is_some_and(|o| same_content(o, &p.admitted)) {
                    pending.remove(&key);
                } else {
                    p.stored = obj;
                    continue;
                }
            }
            // Unchanged objects (most of a re-list) affect nothing.
            if let Some(a) = self.set(&mut snap, &key, obj)
                && let Some(all) = affected.as_mut()
            {
                all.extend(a);
            }
        }
        self.publish(snap);
        drop(pending);
        self.announce(affected);
    }

    /// The mesh's outbound traffic policy as its ConfigMaps now say (M1). Announced to nobody:
    /// it changes no companion and no status (M1 is reported on apply only, `rules::mesh`).
    pub fn set_outbound(&self, outbound: Option<Outbound>) {
        let _writing = self.writing();
        if self.snapshot.load().outbound() == outbound.as_ref() {
            return;
        }
        let mut snap = self.draft();
        snap.set_outbound(outbound);
        self.publish(snap);
    }

    /// The outbound policy the rules see now (`None`: not known).
    pub fn outbound(&self) -> Option<Outbound> {
        self.read(|s| s.outbound().cloned())
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

    /// Is a live lookup worth trying for these findings? Only with a refresher, and only when
    /// an error says that a referenced object is missing.
    pub fn may_refresh(&self, findings: &[Finding]) -> bool {
        self.refresher.is_some()
            && findings
                .iter()
                .any(|f| f.severity == Severity::Error && STALE_CACHE_RULES.contains(&f.rule))
    }

    /// Fetch the objects that `obj` references and the catalog lacks, once, and insert what
    /// exists. True when something was inserted (validate again); false when there is no
    /// refresher, nothing is missing, nothing was found, or the lookup failed (logged).
    /// `findings`: the decision's, which say whether G5 refused an ExternalService for want of
    /// an AccessPolicy, or the delete or change of an AccessPolicy that would leave one without
    /// (then every AccessPolicy is listed: the cache may lack one that selects it).
    pub async fn refresh_for(&self, obj: &Object, findings: &[Finding]) -> bool {
        let Some(refresher) = &self.refresher else {
            return false;
        };
        let mut refs = self.read(|snap| missing_references(obj, snap, &self.opts));
        let g5 = findings
            .iter()
            .any(|f| f.severity == Severity::Error && f.rule == "G5");
        if g5 && matches!(obj, Object::ExternalService(_) | Object::AccessPolicy(_)) {
            refs.push(Reference::AccessPolicies);
        }
        self.look_up(refresher.as_ref(), refs).await
    }

    /// Fetch `refs` (what the cache lacks) once and insert what exists; see `refresh_for`.
    async fn look_up(&self, refresher: &dyn Refresher, refs: Vec<Reference>) -> bool {
        if refs.is_empty() {
            return false;
        }
        let wanted: Vec<String> = refs.iter().map(ToString::to_string).collect();
        let found = match tokio::time::timeout(REFRESH_TIMEOUT, refresher.fetch(&refs)).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!(wanted = ?wanted, error = %e, "live lookup failed; the cache decides");
                return false;
            }
            Err(_) => {
                tracing::warn!(wanted = ?wanted, timeout = ?REFRESH_TIMEOUT, "live lookup timed out; the cache decides");
                return false;
            }
        };
        tracing::info!(
            wanted = ?wanted,
            found = found.len(),
            "cache miss on a reference: looked it up in the apiserver"
        );
        // Only what the cache lacks: a list (AccessPolicies) returns what it has too, and an
        // object the watch has is at least as new as this answer, or about to be.
        let missing: Vec<Object> =
            self.read(|snap| found.into_iter().filter(|o| !snap.has(o)).collect());
        if missing.is_empty() {
            return false;
        }
        for o in missing {
            self.upsert(default_object(o, &self.opts));
        }
        true
    }
}

/// The references of `obj` (as defaulted) that E22 and A14 look up and `snap` does not have.
pub fn missing_references(obj: &Object, snap: &Snapshot, opts: &Options) -> Vec<Reference> {
    let mut out = BTreeSet::new();
    match default_object(obj.clone(), opts) {
        Object::ExternalService(es) => {
            let own_ns = es.metadata.namespace.as_deref().unwrap_or("default");
            for port in list(&es.spec.ports) {
                let Some(routes) = &port.egress_gateway_routes else {
                    continue;
                };
                for r in list(&routes.virtual_gateway_refs) {
                    let name = text(&r.name);
                    if name.is_empty() || !is_local_cluster(text(&r.cluster), &opts.cluster_name) {
                        continue;
                    }
                    let namespace = match text(&r.namespace) {
                        "" => own_ns,
                        ns => ns,
                    };
                    if snap.virtual_gateway(namespace, name).is_none() {
                        out.insert(Reference::VirtualGateway {
                            namespace: namespace.to_string(),
                            name: name.to_string(),
                        });
                    }
                }
            }
        }
        Object::AccessPolicy(ap) => {
            for (_, sel) in external_service_destinations(&ap) {
                let name = text(&sel.name);
                if name.is_empty() || !is_local_cluster(text(&sel.cluster), &opts.cluster_name) {
                    continue;
                }
                // By name (and namespace) only: labels that do not match are a warning, which
                // no lookup changes.
                let by_name = ObjectSelector {
                    name: sel.name.clone(),
                    namespace: sel.namespace.clone(),
                    cluster: sel.cluster.clone(),
                    ..Default::default()
                };
                if snap.external_services_selected(&by_name).is_empty() {
                    out.insert(Reference::ExternalService {
                        namespace: Some(text(&sel.namespace))
                            .filter(|ns| !ns.is_empty())
                            .map(str::to_string),
                        name: name.to_string(),
                    });
                }
            }
        }
        _ => {}
    }
    out.into_iter().collect()
}

/// An object of `kind` with only its namespace and name: enough for [`Snapshot::remove`].
pub fn placeholder(kind: &str, namespace: &str, name: &str) -> Option<Object> {
    let meta = crate::api::Meta {
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        ..Default::default()
    };
    Some(match kind {
        "ExternalService" => Object::ExternalService(crate::api::ExternalService {
            metadata: meta,
            ..Default::default()
        }),
        "VirtualGateway" => Object::VirtualGateway(crate::api::VirtualGateway {
            metadata: meta,
            ..Default::default()
        }),
        "AccessPolicy" => Object::AccessPolicy(crate::api::AccessPolicy {
            metadata: meta,
            ..Default::default()
        }),
        "Service" => Object::Service(k8s_openapi::api::core::v1::Service {
            metadata: meta.into(),
            ..Default::default()
        }),
        "ServiceAccount" => Object::ServiceAccount(k8s_openapi::api::core::v1::ServiceAccount {
            metadata: meta.into(),
            ..Default::default()
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_text;

    fn objects(yaml: &str) -> Vec<Object> {
        let mut out = crate::load::LoadResult::default();
        load_text("test.yaml", yaml, &mut out).expect("loads");
        out.objects.into_iter().map(|l| l.object).collect()
    }

    const VG: &str = "apiVersion: networking.gloo.solo.io/v2\nkind: VirtualGateway\nmetadata: {name: egress-vg, namespace: istio-egress}\nspec: {}\n";
    const ES: &str = "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {name: httpbin.org, namespace: global}\nspec:\n  hosts: [httpbin.org]\n  ports:\n  - {name: https, number: 443, protocol: HTTPS, egressGatewayRoutes: {virtualGatewayRefs: [{name: egress-vg, namespace: istio-egress}, {name: other-cluster-vg, cluster: cluster2}, {name: local-vg}]}}\n";
    const AP: &str = "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {name: p, namespace: istio-egress}\nspec:\n  applyToDestinations:\n  - {kind: EXTERNAL_SERVICE, selector: {name: httpbin.org, namespace: global}}\n  - {kind: EXTERNAL_SERVICE, selector: {name: anywhere.org}}\n  - {kind: EXTERNAL_SERVICE, selector: {labels: {a: b}}}\n  - {kind: SERVICE, selector: {name: svc}}\n";

    #[test]
    fn missing_references_are_the_local_named_ones_the_snapshot_lacks() {
        let opts = Options::default();
        let es = objects(ES).remove(0);
        let empty = Snapshot::new(Vec::new(), &opts);
        assert_eq!(
            missing_references(&es, &empty, &opts),
            vec![
                Reference::VirtualGateway {
                    namespace: "global".into(),
                    name: "local-vg".into()
                },
                Reference::VirtualGateway {
                    namespace: "istio-egress".into(),
                    name: "egress-vg".into()
                },
            ]
        );
        let with_vg = Snapshot::new(objects(VG), &opts);
        assert_eq!(missing_references(&es, &with_vg, &opts).len(), 1);

        let ap = objects(AP).remove(0);
        assert_eq!(
            missing_references(&ap, &empty, &opts),
            vec![
                Reference::ExternalService {
                    namespace: None,
                    name: "anywhere.org".into()
                },
                Reference::ExternalService {
                    namespace: Some("global".into()),
                    name: "httpbin.org".into()
                },
            ]
        );
        let with_es = Snapshot::new(objects(ES), &opts);
        assert_eq!(missing_references(&ap, &with_es, &opts).len(), 1);
    }

    #[test]
    fn a_status_that_has_seen_its_generation_is_kept_and_announced_to_nobody() {
        let opts = Options::default();
        let catalog = Catalog::from_objects(objects(ES), &opts);
        let mut rx = catalog.subscribe();
        let stored = |generation: i64, observed: Option<i64>, rv: &str| {
            let mut v = objects(ES).remove(0).to_value();
            v["metadata"]["generation"] = serde_json::json!(generation);
            v["metadata"]["resourceVersion"] = serde_json::json!(rv);
            if let Some(o) = observed {
                v["status"] = serde_json::json!({"common": {"State": {
                    "observedGeneration": o, "approval": "ACCEPTED"}}});
            }
            default_object(Object::from_value(v).unwrap(), &opts)
        };
        catalog.upsert(stored(2, None, "1"));
        assert!(rx.try_recv().is_ok(), "a new version is announced");
        // Our status write for generation 2: kept, no reconcile.
        catalog.upsert(stored(2, Some(2), "2"));
        assert!(rx.try_recv().is_err(), "a status-only change was announced");
        let es = catalog.read(|s| s.external_service("global", "httpbin.org").cloned());
        assert!(es.unwrap().status.is_some(), "the stored status is kept");
        // A status behind its generation (an update whose status is not written yet): announced.
        catalog.upsert(stored(3, Some(2), "3"));
        assert!(rx.try_recv().is_ok(), "a new generation was not announced");
    }

    #[test]
    fn replace_kind_drops_what_the_relist_lacks_and_keeps_other_kinds() {
        let opts = Options::default();
        let mut all = objects(VG);
        all.extend(objects(ES));
        let catalog = Catalog::from_objects(all, &opts);
        assert!(catalog.read(|s| s.virtual_gateway("istio-egress", "egress-vg").is_some()));
        catalog.replace_kind("VirtualGateway", Vec::new());
        assert!(catalog.read(|s| s.virtual_gateway("istio-egress", "egress-vg").is_none()));
        assert!(catalog.read(|s| s.external_service("global", "httpbin.org").is_some()));
        catalog.replace_kind("VirtualGateway", objects(VG));
        assert!(catalog.read(|s| s.virtual_gateway("istio-egress", "egress-vg").is_some()));
    }

    struct Fixed(Vec<Object>);
    impl Refresher for Fixed {
        fn fetch<'a>(
            &'a self,
            refs: &'a [Reference],
        ) -> BoxFuture<'a, Result<Vec<Object>, String>> {
            Box::pin(async move {
                assert!(!refs.is_empty());
                Ok(self.0.clone())
            })
        }
    }

    #[tokio::test]
    async fn refresh_inserts_what_the_refresher_finds() {
        let opts = Options::default();
        let es = objects(ES).remove(0);
        let plain = Catalog::new(&opts);
        assert!(
            !plain.refresh_for(&es, &[]).await,
            "no refresher, no lookup"
        );
        let catalog = Catalog::new(&opts).with_refresher(Arc::new(Fixed(objects(VG))));
        assert!(catalog.refresh_for(&es, &[]).await);
        assert!(catalog.read(|s| s.virtual_gateway("istio-egress", "egress-vg").is_some()));
        let nothing = Catalog::new(&opts).with_refresher(Arc::new(Fixed(Vec::new())));
        assert!(!nothing.refresh_for(&es, &[]).await);
    }

    /// Records what it was asked for; answers with its objects.
    struct Asked(Vec<Object>, Mutex<Vec<Reference>>);
    impl Refresher for Asked {
        fn fetch<'a>(
            &'a self,
            refs: &'a [Reference],
        ) -> BoxFuture<'a, Result<Vec<Object>, String>> {
            self.1.lock().unwrap().extend(refs.iter().cloned());
            Box::pin(async move { Ok(self.0.clone()) })
        }
    }

    #[tokio::test]
    async fn a_g5_denial_lists_the_access_policies_and_inserts_only_those_the_cache_lacks() {
        let opts = Options::default();
        let es = objects(ES).remove(0);
        let ap = |name: &str| {
            objects(&format!(
                "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: {name}, namespace: global}}\nspec:\n  applyToDestinations: [{{kind: EXTERNAL_SERVICE, selector: {{namespace: global}}}}]\n"
            ))
            .remove(0)
        };
        let mut report = crate::core::findings::Report::new(es.id(), false);
        report.error("G5", "metadata.name", "no AccessPolicy selects it");
        let g5 = report.findings;
        // The cache has the VirtualGateway and one policy; the apiserver has a second one too.
        let mut cached = objects(VG);
        cached.push(ap("cached"));
        let asked = Arc::new(Asked(vec![ap("cached"), ap("new")], Mutex::new(Vec::new())));
        let catalog = Catalog::from_objects(cached, &opts).with_refresher(asked.clone());
        assert!(catalog.refresh_for(&es, &g5).await);
        assert!(
            asked.1.lock().unwrap().contains(&Reference::AccessPolicies),
            "{:?}",
            asked.1
        );
        assert!(catalog.read(|s| s.has(&ap("new"))));
        // Nothing more to insert: no second decision.
        assert!(!catalog.refresh_for(&es, &g5).await);
        // Without G5 the policies are not listed.
        let quiet = Arc::new(Asked(Vec::new(), Mutex::new(Vec::new())));
        let catalog = Catalog::new(&opts).with_refresher(quiet.clone());
        catalog.refresh_for(&es, &[]).await;
        assert!(!quiet.1.lock().unwrap().contains(&Reference::AccessPolicies));
    }
}

#[cfg(test)]
mod with_object_tests {
    use super::*;
    use crate::core::Object;

    fn es(name: &str, host: &str) -> Object {
        Object::from_value(serde_json::json!({
            "apiVersion": "networking.gloo.solo.io/v2", "kind": "ExternalService",
            "metadata": {"name": name, "namespace": "global"},
            "spec": {"hosts": [host], "ports": [{"name": "https", "number": 443, "protocol": "HTTPS"}]}
        }))
        .unwrap()
    }

    #[test]
    fn with_object_sees_the_object_and_leaves_the_catalog_as_it_was() {
        let opts = Options::default();
        let catalog = Catalog::from_objects(vec![es("a", "old.example.com")], &opts);
        let hosts = |s: &Snapshot| {
            s.external_service("global", "a")
                .and_then(|e| e.spec.hosts.clone())
        };
        let seen = catalog.with_object(&es("a", "new.example.com"), |_, s| hosts(s));
        assert_eq!(seen, Some(vec!["new.example.com".into()]));
        assert_eq!(
            catalog.read(hosts),
            Some(vec!["old.example.com".into()]),
            "stored version back"
        );
        let absent = catalog.with_object(&es("b", "b.example.com"), |_, s| {
            s.external_service("global", "b").is_some()
        });
        assert!(absent);
        assert!(
            catalog.read(|s| s.external_service("global", "b").is_none()),
            "a new object is not kept"
        );
    }
}
