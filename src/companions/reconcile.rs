//! The reconcile loop: keeps the companions equal to the expansion of the catalog.
//!
//! Triggers: (1) catalog changes (the catalog announces the parents each change affects: a
//! deleted parent, a ServiceAccount that now matches a selector); (2) companion deletions by
//! anyone (put back within a second); (3) companions whose parent the catalog does not know
//! (an orphan, e.g. the parent's create was refused after our webhook wrote them: removed after a
//! short grace that lets an in-flight create land); (4) a full resync every `resync` interval.
//!
//! Several replicas: every replica computes the same desired objects from the same inputs and
//! writes them with server-side apply under one field manager, so concurrent writes converge to
//! the same content instead of fighting; no leader election is needed for correctness.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::DynamicObject,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::mpsc;

use crate::admission::metrics::{Metrics, ReconcileLabels};
use crate::catalog::Catalog;
use crate::core::{
    Object, Options,
    defaults::default_object,
    expand::{
        ParentRef, expand_parents,
        metadata::{MANAGED_BY, MANAGER, PARENT_KIND, PARENT_NAME, PARENT_NAMESPACE},
    },
    object::GlooKind,
};

use super::{SyncReport, Writer, kinds};

/// How long a companion may exist without a known parent before it is an orphan: the parent's
/// create may still be on its way through the apiserver's admission chain.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug)]
enum Work {
    Sync(BTreeSet<ParentRef>),
    /// A companion whose parent the catalog does not know.
    MaybeOrphan(ParentRef),
}

pub struct Reconciler {
    pub catalog: Arc<Catalog>,
    pub writer: Writer,
    pub client: Client,
    pub opts: Options,
    pub metrics: Arc<Metrics>,
    pub resync: Duration,
}

fn parent_from_labels(o: &DynamicObject) -> Option<ParentRef> {
    let l = o.metadata.labels.as_ref()?;
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

impl Reconciler {
    /// Start the loop and its watches in the background.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        // (1) catalog changes
        let mut changes = self.catalog.subscribe();
        let fwd = tx.clone();
        tokio::spawn(async move {
            while let Some(parents) = changes.recv().await {
                if fwd.send(Work::Sync(parents)).is_err() {
                    break;
                }
            }
        });
        // (2) and (3): companions, by our label, in every namespace
        for ar in kinds::all() {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
            let cfg = watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
            let (tx, catalog, metrics) = (tx.clone(), self.catalog.clone(), self.metrics.clone());
            tokio::spawn(async move {
                let mut events = watcher(api, cfg).default_backoff().boxed();
                while let Some(ev) = events.next().await {
                    let work = match ev {
                        Ok(watcher::Event::Delete(o)) => parent_from_labels(&o).map(|p| {
                            // Drift: a companion deleted by someone (or by our own prune; the
                            // sync that follows then finds nothing to do).
                            metrics
                                .reconcile
                                .get_or_create(&ReconcileLabels {
                                    outcome: "drift".into(),
                                })
                                .inc();
                            Work::Sync([p].into())
                        }),
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                            parent_from_labels(&o)
                                .filter(|p| !catalog.read(|s| s.has_parent(p)))
                                .map(Work::MaybeOrphan)
                        }
                        Ok(_) => None,
                        Err(e) => {
                            tracing::debug!(error = %e, "companion watch error (retrying)");
                            None
                        }
                    };
                    if let Some(w) = work
                        && tx.send(w).is_err()
                    {
                        break;
                    }
                }
            });
        }
        // (4) periodic resync of everything the catalog knows
        let (tick_tx, catalog, every) = (tx.clone(), self.catalog.clone(), self.resync);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if tick_tx
                    .send(Work::Sync(catalog.read(|s| s.parents())))
                    .is_err()
                {
                    break;
                }
            }
        });
        drop(tx);
        tokio::spawn(self.run(rx))
    }

    async fn run(self, mut rx: mpsc::UnboundedReceiver<Work>) {
        let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<Work>();
        loop {
            let first = tokio::select! {
                w = rx.recv() => match w { Some(w) => w, None => return },
                Some(w) = retry_rx.recv() => w,
            };
            // Coalesce a burst of events into one pass.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut batch = vec![first];
            while let Ok(w) = rx.try_recv() {
                batch.push(w);
            }
            let mut sync = BTreeSet::new();
            for w in batch {
                match w {
                    Work::Sync(p) => sync.extend(p),
                    Work::MaybeOrphan(p) => {
                        let (catalog, client, tx, opts) = (
                            self.catalog.clone(),
                            self.client.clone(),
                            retry_tx.clone(),
                            self.opts.clone(),
                        );
                        // Wait out the grace, then ask the apiserver (not the cache) whether the
                        // parent exists; either way a sync of that parent follows.
                        tokio::spawn(async move {
                            tokio::time::sleep(ORPHAN_GRACE).await;
                            if let Some(obj) = fetch_parent(&client, &p).await {
                                catalog.upsert(default_object(obj, &opts));
                            }
                            let _ = tx.send(Work::Sync([p].into()));
                        });
                    }
                }
            }
            if sync.is_empty() {
                continue;
            }
            let started = Instant::now();
            let desired = self.catalog.read(|s| expand_parents(s, &self.opts, &sync));
            let orphans: Vec<&ParentRef> = sync
                .iter()
                .filter(|p| !self.catalog.read(|s| s.has_parent(p)))
                .collect();
            match self
                .writer
                .sync(&desired, &sync, Duration::from_secs(10))
                .await
            {
                Ok(report) => {
                    self.record(&report, !orphans.is_empty());
                    if !(report.created.is_empty() && report.deleted.is_empty()) {
                        tracing::info!(
                            parents = sync.len(),
                            created = ?report.created,
                            deleted = ?report.deleted,
                            ms = started.elapsed().as_millis() as u64,
                            "reconciled companions"
                        );
                    }
                }
                Err(e) => {
                    let outcome = if matches!(e, super::SyncError::Conflict { .. }) {
                        "conflict"
                    } else {
                        "error"
                    };
                    self.metrics
                        .reconcile
                        .get_or_create(&ReconcileLabels {
                            outcome: outcome.into(),
                        })
                        .inc();
                    tracing::warn!(error = %e, "reconcile failed; retrying in 2 s");
                    let tx = retry_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        let _ = tx.send(Work::Sync(sync));
                    });
                }
            }
        }
    }

    fn record(&self, report: &SyncReport, orphans: bool) {
        self.metrics.record_sync(report);
        let changed = (report.created.len() + report.deleted.len()) as u64;
        if changed > 0 {
            let outcome = if orphans { "orphan" } else { "repair" };
            self.metrics
                .reconcile
                .get_or_create(&ReconcileLabels {
                    outcome: outcome.into(),
                })
                .inc_by(changed);
        }
    }
}

/// The parent as the apiserver has it now (None when it does not exist).
pub async fn fetch_parent(client: &Client, p: &ParentRef) -> Option<Object> {
    use crate::api::{AccessPolicy, ExternalService, VirtualGateway};
    let got = match p.kind {
        GlooKind::ExternalService => {
            Api::<ExternalService>::namespaced(client.clone(), &p.namespace)
                .get_opt(&p.name)
                .await
                .map(|o| o.map(Object::ExternalService))
        }
        GlooKind::VirtualGateway => Api::<VirtualGateway>::namespaced(client.clone(), &p.namespace)
            .get_opt(&p.name)
            .await
            .map(|o| o.map(Object::VirtualGateway)),
        GlooKind::AccessPolicy => Api::<AccessPolicy>::namespaced(client.clone(), &p.namespace)
            .get_opt(&p.name)
            .await
            .map(|o| o.map(Object::AccessPolicy)),
    };
    got.unwrap_or_else(|e| {
        tracing::warn!(error = %e, parent = ?p, "looking up a parent failed");
        None
    })
}
