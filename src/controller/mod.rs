//! The companion controller: keeps the Istio objects of every parent (ExternalService,
//! VirtualGateway, AccessPolicy) equal to the expansion of the catalog, and is the one place
//! that writes them, for admission and for its own reconciles alike.
//!
//! The invariants (DESIGN §6), and where each one lives:
//! - **One desired state.** The catalog's snapshot, where an object admitted by this process is
//!   visible from the moment its companions are written (the catalog's overlay), until the watch
//!   delivers it stored or a live read says it never was (`settle`, after [`PENDING_GRACE`]).
//! - **Observed state from watch caches** ([`observed`]): reflector stores of our companions by
//!   label. A reconcile compares in memory ([`plan`]) and sends only what differs; idle means
//!   zero requests, and the periodic resync is a comparison in memory.
//! - **Per-parent serialisation** ([`locks`]): a parent's companions are written under its lock,
//!   by admission (one affected parent at a time, for that parent's write only) and by a
//!   reconcile alike; the queue ([`runner`]) never runs a parent twice at once.
//! - **No lost update**: every write carries the resourceVersion it was planned against; the
//!   apiserver refuses it (409) when someone wrote in between, and it is planned again
//!   ([`writer`]).
//! - **Never undo what a lagging cache does not explain.** A change of a companion by anyone
//!   but this process (a hand edit, another replica's admission) stands for
//!   [`observed::FOREIGN_GRACE`] before it is reverted; companions of a parent the catalog does
//!   not know are deleted only after a live read says the parent does not exist.
//! - **Start-up**: nothing is reconciled before the catalog and every companion watch have
//!   listed once.
//! - **Fan-out by index**: a Service or ServiceAccount change enqueues only the parents that
//!   select it (`core::expand::affected_parents`).
//! - **Make-before-break**: creates and updates before deletes in every write; an
//!   ExternalService's open rule is deleted only once the policies replacing it stand.
//! - **One reconciler** among replicas ([`leader`]); every replica admits.
//! - **Status and events** ([`status`], [`events`]): after a reconcile the parent's status is
//!   computed by the pure core and written only when it differs from the stored one; a change
//!   of the status alone wakes no reconcile (`catalog::status_only`). Events on the parent say
//!   what was created, repaired, refused or removed, rate-limited.
//! - **Bounded admission writes**: an undo is recorded before its request is awaited, and the
//!   rollback of a denied admission is bounded ([`ROLLBACK_BUDGET`]).

pub mod events;
pub mod leader;
pub mod locks;
pub mod observed;
pub mod plan;
pub mod preview;
mod reconcile;
pub mod runner;
mod status;
pub mod writer;

use std::collections::{BTreeSet, HashSet};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};
use std::time::Duration;

use kube::Client;
use tokio::task::JoinHandle;

use crate::catalog::Catalog;
use crate::core::{
    Object, Options,
    expand::{ParentRef, affected_parents, expand_parents},
};
use crate::metrics::Metrics;

use locks::ParentLocks;
use observed::Observed;
use runner::Queue;
pub use writer::{Report, WriteError};

/// An admitted object not seen stored after this long is looked up live. The apiserver stores an
/// object milliseconds after its last admission check; an object still in the admission chain
/// after this long (another webhook close to its timeout) has its companions removed and written
/// again when it lands: a gap, never a companion that outlives a refused parent.
pub const PENDING_GRACE: Duration = Duration::from_secs(5);
/// Upper bound for taking back the writes of a denied admission.
pub const ROLLBACK_BUDGET: Duration = Duration::from_secs(2);

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Every parent is compared with its companions this often (in memory).
    pub resync: Duration,
    /// Reconciles at once.
    pub concurrency: usize,
    /// Leader election; `None`: this process is the only reconciler.
    pub election: Option<leader::Election>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(300),
            concurrency: 8,
            election: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the companions of the objects it affects are being written by another request; retry")]
    Busy,
}

pub struct Controller {
    catalog: Arc<Catalog>,
    observed: Arc<Observed>,
    writer: writer::Writer,
    locks: ParentLocks,
    opts: Options,
    metrics: Arc<Metrics>,
    leader: Arc<AtomicBool>,
    queue: Queue,
    client: Client,
    /// Parents of the running full resync not compared yet.
    resync_left: Mutex<HashSet<ParentRef>>,
    events: events::Events,
    /// Companions admission created, announced once their parent is stored.
    created: status::Created,
    /// What admissions' writes and live reads left lately, by parent: the next admission that
    /// shares the parent plans against it rather than against a watch cache a few ms behind.
    recent: Mutex<Recent>,
    /// Admissions counted once in the catalog: an admission numbered n is in every expansion
    /// computed after this counter was seen at n or more.
    admissions: std::sync::atomic::AtomicU64,
    /// By companion: the admission count its last write here was computed at. An admission
    /// numbered no higher finds its own change in it and has nothing left to send there (group
    /// commit: fifty admissions through one VirtualGateway need a few Gateway writes, not fifty).
    covered: Mutex<std::collections::HashMap<plan::CompanionKey, u64>>,
}

/// Coverage older than this many admissions is forgotten (it covers no admission still running).
const COVERED_KEPT: u64 = 10_000;

/// How long a write or live read of a companion is taken as fresher than the watch cache. A
/// wrong guess costs one refused (409) write and a live read, never an update.
const RECENT: Duration = Duration::from_secs(2);

type Recent = std::collections::HashMap<
    plan::CompanionKey,
    (
        ParentRef,
        std::time::Instant,
        Option<Arc<kube::api::DynamicObject>>,
    ),
>;

/// The running controller; dropping it stops it without releasing the Lease (use `stop`).
pub struct Running {
    pub controller: Arc<Controller>,
    tasks: Vec<JoinHandle<()>>,
    elected: Option<leader::Elected>,
}

impl Running {
    /// Stop reconciling and give up the Lease.
    pub async fn stop(mut self) {
        if let Some(e) = self.elected.take() {
            e.stop(Duration::from_secs(3)).await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Controller {
    /// Start the companion watches, the queue, the resync and pending-admission sweeps, and the
    /// election, on the current tokio runtime. `catalog` must be fed by the cluster's watches.
    pub fn start(
        client: Client,
        catalog: Arc<Catalog>,
        opts: Options,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Running {
        let (queue, rx) = Queue::new();
        let (observed, mut tasks) = Observed::start(client.clone(), queue.sender());
        let controller = Arc::new(Controller {
            writer: writer::Writer::new(client.clone(), metrics.clone(), observed.clone()),
            catalog: catalog.clone(),
            observed,
            locks: ParentLocks::default(),
            opts,
            metrics: metrics.clone(),
            leader: Arc::new(AtomicBool::new(settings.election.is_none())),
            queue: queue.clone(),
            client: client.clone(),
            resync_left: Mutex::default(),
            events: events::Events::new(
                client.clone(),
                settings.election.as_ref().map(|e| e.identity.clone()),
                metrics.clone(),
            ),
            created: status::Created::default(),
            recent: Mutex::default(),
            admissions: Default::default(),
            covered: Mutex::default(),
        });
        // Catalog changes: the parents they affect.
        let mut changes = catalog.subscribe();
        let q = queue.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(parents) = changes.recv().await {
                for p in parents {
                    q.schedule(p, Duration::ZERO);
                }
            }
        }));
        // The queue, gated on every watch having listed once.
        let (c, ready_c) = (controller.clone(), controller.clone());
        let done_c = controller.clone();
        tasks.push(tokio::spawn(async move {
            let ready = async move {
                while !ready_c.is_ready() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tracing::info!(
                    companions = ready_c.observed.len(),
                    "companion watches and catalog synced: reconciling"
                );
                ready_c.resync();
            };
            runner::run(
                queue,
                rx,
                settings.concurrency.max(1),
                ready,
                move |p| {
                    let c = c.clone();
                    async move { c.reconcile(p).await }
                },
                move |p, _| done_c.finished(p),
            )
            .await;
        }));
        // Full resync, and pending admissions looked up live.
        let c = controller.clone();
        tasks.push(tokio::spawn(async move {
            let mut resync = tokio::time::interval(settings.resync);
            resync.tick().await;
            let mut sweep = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = resync.tick() => if c.is_ready() { c.resync() },
                    _ = sweep.tick() => {
                        c.metrics.queue_depth.set(c.queue.depth() as i64);
                        c.settle_pending().await;
                    }
                }
            }
        }));
        let elected = settings.election.map(|election| {
            let c = controller.clone();
            metrics.leader.set(0);
            leader::campaign(client, election, controller.leader.clone(), move |now| {
                c.metrics.leader.set(i64::from(now));
                if now && c.is_ready() {
                    c.resync();
                }
            })
        });
        if controller.leader.load(Ordering::SeqCst) {
            metrics.leader.set(1);
        }
        Running {
            controller,
            tasks,
            elected,
        }
    }

    /// The catalog and every companion watch have listed once.
    pub fn is_ready(&self) -> bool {
        self.catalog.is_synced() && self.observed.is_synced()
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Compare every parent (known to the catalog, or owning stored companions) again.
    fn resync(&self) {
        let mut all: HashSet<ParentRef> = self.catalog.read(|s| s.parents()).into_iter().collect();
        all.extend(self.observed.parents());
        *self.resync_left.lock().unwrap_or_else(|e| e.into_inner()) = all.clone();
        for p in all {
            self.queue.schedule(p, Duration::ZERO);
        }
    }

    fn finished(&self, p: &ParentRef) {
        let mut left = self.resync_left.lock().unwrap_or_else(|e| e.into_inner());
        if left.remove(p) && left.is_empty() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            self.metrics.last_resync.set(now);
            tracing::info!("full resync complete");
        }
    }

    /// Admissions pending for longer than [`PENDING_GRACE`]: what the apiserver has decides.
    async fn settle_pending(&self) {
        for key in self.catalog.pending_older_than(PENDING_GRACE) {
            let Some(kind) = crate::core::object::GlooKind::from_name(key.0) else {
                continue;
            };
            let p = ParentRef::new(kind, &key.1, &key.2);
            self.metrics.controller_read("get");
            match reconcile::fetch_parent(&self.client, &p).await {
                Ok(live) => {
                    let live = live.map(|o| crate::core::defaults::default_object(o, &self.opts));
                    tracing::info!(parent = ?p, stored = live.is_some(), "admitted object not seen by the watch in time: settled by a live read");
                    self.catalog.settle(&key, live);
                }
                Err(e) => {
                    tracing::warn!(parent = ?p, error = %e, "live read of an admitted object failed; retrying")
                }
            }
        }
    }

    /// The companions an admission created, by parent, for the `CompanionsCreated` event that
    /// the first reconcile of the stored parent sends (the parent has no uid before, and
    /// `kubectl describe` finds events by uid).
    fn record_created(&self, steps: &[plan::Step], report: &Report) {
        let mut by_parent: std::collections::BTreeMap<ParentRef, Vec<String>> = Default::default();
        for step in steps {
            if let plan::Step::Create(d) = step {
                let key = step.key().to_string();
                if report.created.contains(&key)
                    && let Some(p) = observed::parent_of_labels(d.metadata.labels.as_ref())
                {
                    by_parent.entry(p).or_default().push(key);
                }
            }
        }
        for (p, keys) in by_parent {
            self.created.record(p, keys);
        }
    }

    /// Write the companions of everything `obj` (admitted, defaulted) affects, before admission
    /// answers. On failure everything written is taken back (within [`ROLLBACK_BUDGET`]) and the
    /// object leaves the desired state again.
    ///
    /// Each affected parent is written under its own lock, one at a time, and the lock is held
    /// only for that parent's write: fifty ExternalServices routed through one VirtualGateway
    /// queue for the few milliseconds of the Gateway's write each, not for one another's whole
    /// admission (tests/e2e_concurrency.rs). No update is lost: the object is in the catalog
    /// before any write, each parent's companions are computed from the catalog under that
    /// parent's lock (so a later write of a shared Gateway includes every earlier admission),
    /// and every write carries the resourceVersion it was planned against, so the apiserver
    /// refuses it when anyone else wrote in between; it is then planned again against the
    /// stored version. Holding one lock at a time, two admissions cannot deadlock.
    pub async fn write_admitted(
        &self,
        obj: Object,
        create: bool,
        budget: Duration,
    ) -> Result<Report, AdmitError> {
        let deadline = tokio::time::Instant::now() + budget;
        let mut obj = obj;
        if create {
            // The uid the apiserver gave an object being created is not stored yet: an owner
            // reference to it would let the garbage collector, which checks owners live, delete
            // the companions before the object lands. The controller adds the owner references
            // once the watch delivers the stored object.
            obj.clear_uid();
        }
        // What each parent's companions were without this object: of a parent other than the
        // object itself, only the companions the object changes are this admission's to write
        // (an AccessPolicy removes the open rule of each ExternalService it selects, and does
        // not write their ServiceEntries for them: their own admissions and the controller do).
        let own = obj
            .gloo_kind()
            .map(|k| ParentRef::new(k, obj.namespace(), obj.name()));
        let estimate = self.catalog.with_object(&obj, |mut parents, snap| {
            parents.extend(affected_parents(snap, &obj));
            parents
        });
        let before: std::collections::HashMap<ParentRef, Vec<crate::istio::IstioObject>> =
            self.catalog.read(|s| {
                estimate
                    .iter()
                    .filter(|p| Some(*p) != own.as_ref())
                    .map(|p| {
                        (
                            p.clone(),
                            expand_parents(s, &self.opts, &[p.clone()].into()),
                        )
                    })
                    .collect()
            });
        let admitted = self.catalog.admit(obj);
        let seq = self.admissions.fetch_add(1, Ordering::SeqCst) + 1;
        let mut undo = Vec::new();
        let mut report = Report::default();
        // Make-before-break across parents: every parent's creates and updates, then every
        // parent's deletes (an AccessPolicy's rule stands before the open rule it replaces goes).
        let mut passes = Vec::with_capacity(2 * admitted.parents.len());
        for deletes in [false, true] {
            passes.extend(admitted.parents.iter().map(|p| (p.clone(), deletes)));
        }
        for (p, deletes) in passes {
            let before = before.get(&p).map(Vec::as_slice);
            match self
                .write_parent(&p, deletes, before, seq, deadline, &mut undo)
                .await
            {
                Ok(r) => {
                    report.extend(r);
                }
                Err(e) => {
                    // Out of the desired state first, so that no other admission writes it into
                    // a shared parent again; the rollback leaves alone what others wrote since.
                    self.catalog.revert(&admitted);
                    self.writer.rollback(undo, ROLLBACK_BUDGET).await;
                    // What the rollback put back covers nobody (rare: forget all).
                    self.covered
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clear();
                    // The revert announced these parents already; a reconcile that ran before the
                    // watch delivered our writes may have seen nothing to undo.
                    for p in &admitted.parents {
                        self.queue.schedule(p.clone(), Duration::from_secs(1));
                    }
                    return Err(e);
                }
            }
        }
        Ok(report)
    }

    /// Make the companions of `p` equal to its expansion of the catalog now, under `p`'s lock:
    /// its creates and updates, or (`deletes`) its deletes; with `before` (what they were
    /// without the admitted object), only those that differ from it. A write refused as stale
    /// is planned again against the stored object, until `deadline`.
    async fn write_parent(
        &self,
        p: &ParentRef,
        deletes: bool,
        before: Option<&[crate::istio::IstioObject]>,
        seq: u64,
        deadline: tokio::time::Instant,
        undo: &mut Vec<writer::Undo>,
    ) -> Result<Report, AdmitError> {
        let one: BTreeSet<ParentRef> = [p.clone()].into();
        // One expansion of `p` serves the check below and the first plan, unless the catalog
        // changed in between (a Gateway shared by 20,000 ExternalServices is an O(20,000)
        // expansion, so this is most of an admission's CPU at that scale).
        let mut snap = self.catalog.current();
        let mut desired = expand_parents(&snap, &self.opts, &one);
        if self.covered_already(p, &desired, before, seq) {
            return Ok(Report::default());
        }
        let _held = tokio::time::timeout_at(deadline, self.locks.lock_all(&one))
            .await
            .map_err(|_| AdmitError::Busy)?;

        let mut fresh = self.recent_of(p);
        let mut report = Report::default();
        loop {
            // `seen` before the snapshot: every admission numbered up to it published its
            // object first, so the snapshot holds it. An unchanged snapshot (the same Arc, still
            // held, so never a reused address) means nothing was published since it was
            // expanded, and its expansion holds for `seen` too.
            let seen = self.admissions.load(Ordering::SeqCst);
            let now = self.catalog.current();
            if !Arc::ptr_eq(&now, &snap) {
                snap = now;
                desired = expand_parents(&snap, &self.opts, &one);
            }
            let observed = fresher(self.observed.of_parent(p), &fresh);
            let mut steps = plan::plan(&desired, &observed);
            steps.retain(|s| s.is_delete() == deletes);
            if let Some(before) = before {
                let changed = changed_keys(before, &desired);
                steps.retain(|s| changed.contains(&s.key()));
            }
            {
                let covered = self.covered.lock().unwrap_or_else(|e| e.into_inner());
                steps.retain(|s| covered.get(&s.key()).is_none_or(|at| *at < seq));
            }
            let result = self
                .writer
                .run_fresh(&steps, Some(deadline), undo, &mut fresh)
                .await;
            self.remember(p, &fresh);
            match result {
                Ok(r) => {
                    {
                        let mut covered = self.covered.lock().unwrap_or_else(|e| e.into_inner());
                        covered.retain(|_, at| seen.saturating_sub(*at) < COVERED_KEPT);
                        for step in &steps {
                            let at = covered.entry(step.key()).or_default();
                            *at = (*at).max(seen);
                        }
                    }
                    self.record_created(&steps, &r);
                    report.extend(r);
                    return Ok(report);
                }
                Err(WriteError::Stale(key)) if tokio::time::Instant::now() < deadline => {
                    let live = self.writer.live(&key, Some(deadline)).await?;
                    tracing::debug!(companion = %key, "written by someone else since it was read: planned again");
                    // Only a companion of this parent is planned against (a foreign object that
                    // took the name is refused by the create step's own check).
                    let live = live.filter(|o| observed::parent_from_labels(o).as_ref() == Some(p));
                    fresh.insert(key, live.map(Arc::new));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Controller {
    /// Has every companion of `p` this admission (number `seq`) could write been written since
    /// from a catalog that held it? Then it waits for no lock: under fifty parallel admissions
    /// through one VirtualGateway most find their host in a Gateway another one wrote.
    fn covered_already(
        &self,
        p: &ParentRef,
        desired: &[crate::istio::IstioObject],
        before: Option<&[crate::istio::IstioObject]>,
        seq: u64,
    ) -> bool {
        let keys: BTreeSet<plan::CompanionKey> = match before {
            Some(before) => changed_keys(before, desired),
            None => desired
                .iter()
                .map(plan::CompanionKey::of_desired)
                .chain(
                    self.observed
                        .of_parent(p)
                        .iter()
                        .map(|(kind, o)| plan::CompanionKey::of_observed(kind, o)),
                )
                .collect(),
        };
        let covered = self.covered.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .all(|k| covered.get(k).is_some_and(|at| *at >= seq))
    }

    /// The recent writes and live reads of `p`'s companions (older ones are forgotten).
    fn recent_of(&self, p: &ParentRef) -> writer::Fresh {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|_, (_, at, _)| at.elapsed() < RECENT);
        recent
            .iter()
            .filter(|(_, (parent, _, _))| parent == p)
            .map(|(k, (_, _, o))| (k.clone(), o.clone()))
            .collect()
    }

    fn remember(&self, p: &ParentRef, fresh: &writer::Fresh) {
        let now = std::time::Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for (k, o) in fresh {
            let same = recent
                .get(k)
                .is_some_and(|(_, _, r)| rv(r.as_deref()) == rv(o.as_deref()));
            if !same {
                recent.insert(k.clone(), (p.clone(), now, o.clone()));
            }
        }
    }
}

/// The companions that differ between two expansions of one parent: added, removed or changed.
fn changed_keys(
    before: &[crate::istio::IstioObject],
    after: &[crate::istio::IstioObject],
) -> std::collections::BTreeSet<plan::CompanionKey> {
    fn index(
        objs: &[crate::istio::IstioObject],
    ) -> std::collections::BTreeMap<plan::CompanionKey, &crate::istio::IstioObject> {
        objs.iter()
            .map(|o| (plan::CompanionKey::of_desired(o), o))
            .collect()
    }
    let (b, a) = (index(before), index(after));
    b.keys()
        .chain(a.keys())
        .filter(|k| b.get(*k) != a.get(*k))
        .cloned()
        .collect()
}

fn rv(o: Option<&kube::api::DynamicObject>) -> Option<&str> {
    o.and_then(|o| o.metadata.resource_version.as_deref())
}

/// The watched companions of one parent with what this admission wrote or read live since laid
/// over them (the watch delivers both a moment later).
fn fresher(
    observed: Vec<(String, Arc<kube::api::DynamicObject>)>,
    fresh: &writer::Fresh,
) -> Vec<(String, Arc<kube::api::DynamicObject>)> {
    let mut out: Vec<_> = observed
        .into_iter()
        .filter(|(kind, o)| !fresh.contains_key(&plan::CompanionKey::of_observed(kind, o)))
        .collect();
    out.extend(
        fresh
            .iter()
            .filter_map(|(k, o)| o.clone().map(|o| (k.kind.clone(), o))),
    );
    out
}
