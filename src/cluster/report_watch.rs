//! What our Reports (or PolicyReports) in the cluster say, for `guardrail_reports` to compare
//! with the audit's results: a watch of our Reports (managed-by label, our Report's name) in a
//! kube-runtime reflector store, running only while the kind's CustomResourceDefinition exists.
//!
//! Whether the CRD exists comes from a watch of that one CRD's metadata: the CRD may be
//! installed or removed at any time, and asking discovery at every audit pass (as before) was a
//! request per pass on an idle cluster. A watch of Reports without their CRD would fail and
//! retry every few seconds instead, so the Report watch is started when the CRD appears and
//! stopped when it goes. kube-runtime has no "watch while the CRD exists" of its own; the
//! start/stop around its watcher is what this module adds.
//!
//! Neither watch counts in the catalog's watch health: the Report kinds are optional, and a
//! cluster without them must not show a watch that is never connected. Their watchers retry
//! with the same backoff as the others.

use std::sync::{Arc, Mutex};

use futures::{FutureExt, StreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::task::JoinHandle;

use super::guardrail_reports::{REPORT_NAME, ReportKind};
use crate::core::expand::metadata::{MANAGED_BY, MANAGER};

/// The Report watch of an installed CRD; dropping it stops the watch.
struct Running {
    store: Store<DynamicObject>,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Our Reports of one kind as the watch last saw them.
pub struct ObservedReports {
    running: Arc<Mutex<Option<Running>>>,
    crd_task: JoinHandle<()>,
}

impl Drop for ObservedReports {
    fn drop(&mut self) {
        self.crd_task.abort();
    }
}

impl ObservedReports {
    pub fn start(client: Client, kind: ReportKind) -> ObservedReports {
        let running = Arc::new(Mutex::new(None));
        let crd_task = tokio::spawn(follow_crd(client, kind, running.clone()));
        ObservedReports { running, crd_task }
    }

    /// The Reports, once the CRD exists and the watch has listed; `None` before (not installed,
    /// or not listed yet: nothing can be compared, so nothing is written).
    pub fn store(&self) -> Option<Store<DynamicObject>> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let store = running.as_ref()?.store.clone();
        matches!(store.wait_until_ready().now_or_never(), Some(Ok(()))).then_some(store)
    }
}

fn crd_name(kind: ReportKind) -> String {
    format!("{}.{}", kind.plural, kind.group)
}

async fn follow_crd(client: Client, kind: ReportKind, running: Arc<Mutex<Option<Running>>>) {
    let api: Api<PartialObjectMeta<CustomResourceDefinition>> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("metadata.name={}", crd_name(kind)));
    let stream = watcher(api, config).backoff(super::watch_backoff());
    let mut stream = std::pin::pin!(stream);
    let mut present = false;
    let set = |present: bool| {
        let mut slot = running.lock().unwrap_or_else(|e| e.into_inner());
        match (present, slot.is_some()) {
            (true, false) => {
                tracing::info!(crd = %crd_name(kind), "report CRD installed: watching our reports");
                *slot = Some(start_reports(client.clone(), kind));
            }
            (false, true) => {
                tracing::info!(crd = %crd_name(kind), "report CRD gone: no reports to keep");
                *slot = None;
            }
            _ => {}
        }
    };
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => present = false,
            Ok(watcher::Event::InitApply(crd)) => {
                present = crd.metadata.deletion_timestamp.is_none();
            }
            Ok(watcher::Event::InitDone) => set(present),
            Ok(watcher::Event::Apply(crd)) => set(crd.metadata.deletion_timestamp.is_none()),
            Ok(watcher::Event::Delete(_)) => set(false),
            Err(e) => {
                tracing::warn!(crd = %crd_name(kind), error = %e, "watch of the report CRD failed; retrying with backoff")
            }
        }
    }
}

fn start_reports(client: Client, kind: ReportKind) -> Running {
    let ar: ApiResource = kind.resource();
    let writer = reflector::store::Writer::new(ar.clone());
    let store = writer.as_reader();
    let task = tokio::spawn(async move {
        let api: Api<DynamicObject> = Api::all_with(client, &ar);
        let config = watcher::Config::default()
            .labels(&format!("{MANAGED_BY}={MANAGER}"))
            .fields(&format!("metadata.name={REPORT_NAME}"))
            .any_semantic();
        // Until the CRD is established the list fails; the backoff retries it.
        let stream =
            reflector::reflector(writer, watcher(api, config).backoff(super::watch_backoff()));
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(kind = ar.kind, error = %e, "watch of our reports failed; retrying with backoff");
            }
        }
    });
    Running { store, task }
}
