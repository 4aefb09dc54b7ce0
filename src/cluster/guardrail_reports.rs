//! OpenReports (`openreports.io/v1alpha1` `Report`, the policy-report API that Kyverno,
//! Kubewarden and Trivy write and Policy Reporter shows): after each audit pass, one Report per
//! namespace with a result per violation (policy = guardrail, rule = G id, result `fail` for
//! deny and audit guardrails, `warn` for warn ones), written only when the CRD is installed,
//! rewritten only when the namespace's results changed, deleted when the namespace is clean.
//!
//! The Reports carry our managed-by label and are watched (`report_watch`): each pass compares
//! the desired results with the observed Reports, so a new leader or a restarted replica
//! rewrites nothing that is right, a Report edited by hand is put right at the next pass, and a
//! Report of a namespace that became clean while we were not running goes too. Nothing is sent
//! while nothing changes.
//!
//! Older tooling reads `wgpolicyk8s.io/v1alpha2` `PolicyReport`s, whose results and summary
//! have the same shape: `serve --policy-reports` writes those too ([`ReportKind::POLICY_REPORT`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::{
    Client,
    api::{
        Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
        Preconditions,
    },
};
use serde_json::{Value, json};

use crate::companions::FIELD_MANAGER;
use crate::core::expand::metadata::{MANAGED_BY, MANAGER};
use crate::core::guardrails::{Action, audit::GuardrailAudit};
use crate::metrics::Metrics;

use super::own_writes::OwnWrites;

/// The one Report egress-webhook writes in a namespace.
pub const REPORT_NAME: &str = "egress-webhook-guardrails";

/// Which report API: the group, version, kind and plural of a namespaced report kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl ReportKind {
    pub const OPEN_REPORTS: ReportKind = ReportKind {
        group: "openreports.io",
        version: "v1alpha1",
        kind: "Report",
        plural: "reports",
    };
    pub const POLICY_REPORT: ReportKind = ReportKind {
        group: "wgpolicyk8s.io",
        version: "v1alpha2",
        kind: "PolicyReport",
        plural: "policyreports",
    };

    /// OpenReports always; wg-policy PolicyReports too with `--policy-reports`.
    pub fn for_flags(policy_reports: bool) -> Vec<ReportKind> {
        let mut kinds = vec![ReportKind::OPEN_REPORTS];
        if policy_reports {
            kinds.push(ReportKind::POLICY_REPORT);
        }
        kinds
    }

    fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    pub(super) fn resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }
}

/// The results of one namespace, in a stable order (no timestamps: they are added when written).
pub fn desired(results: &BTreeMap<String, GuardrailAudit>) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (guardrail, audit) in results {
        let result = match audit.action {
            Action::Warn => "warn",
            Action::Deny | Action::Audit => "fail",
        };
        for v in &audit.violations {
            let o = &v.finding.object;
            out.entry(o.namespace.clone()).or_default().push(json!({
                "source": "egress-webhook",
                "policy": guardrail,
                "rule": v.finding.rule,
                "result": result,
                "message": format!("{}: {}", v.finding.path, v.finding.message),
                "resources": [{
                    "apiVersion": format!("{}/{}", crate::api::NETWORKING_GROUP, crate::api::VERSION),
                    "kind": o.kind,
                    "namespace": o.namespace,
                    "name": o.name,
                }],
            }));
        }
    }
    out
}

/// One report kind: what the cluster holds (watched) and what this replica sent.
pub struct Reports {
    kind: ReportKind,
    observed: super::report_watch::ObservedReports,
    /// Untimed content ([`content`]) sent per namespace, while the watch has not shown it.
    sent: OwnWrites<Value>,
}

/// A Report's results without their timestamps and its summary: what is compared. Timestamps
/// say when a result was written, not what it is; comparing them would rewrite every Report.
fn content(results: &[Value]) -> Value {
    let untimed: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(m) = r.as_object_mut() {
                m.remove("timestamp");
            }
            r
        })
        .collect();
    let fail = untimed.iter().filter(|r| r["result"] == "fail").count();
    let warn = untimed.len() - fail;
    json!({
        "results": untimed,
        "summary": {"pass": 0, "fail": fail, "warn": warn, "error": 0, "skip": 0},
    })
}

/// The same of a Report as stored (`Null` where a field is missing, which then differs).
fn observed_content(r: &DynamicObject) -> Value {
    let results: Vec<Value> = r
        .data
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut c = content(&results);
    c["summary"] = r.data.get("summary").cloned().unwrap_or(Value::Null);
    c
}

impl Reports {
    /// Start watching the kind (every replica watches, so that a new leader compares at once).
    pub fn start(client: Client, kind: ReportKind) -> Self {
        Reports {
            kind,
            observed: super::report_watch::ObservedReports::start(client, kind),
            sent: OwnWrites::default(),
        }
    }

    /// Bring the Reports in line with `want`: nothing when the CRD is not installed (or not
    /// listed yet), nothing when the observed Reports already say it.
    pub async fn sync(
        &mut self,
        client: &Client,
        want: &BTreeMap<String, Vec<Value>>,
        metrics: &Metrics,
    ) {
        let Some(store) = self.observed.store() else {
            return;
        };
        let observed: BTreeMap<String, Arc<DynamicObject>> = store
            .state()
            .into_iter()
            .filter(|r| r.metadata.name.as_deref() == Some(REPORT_NAME))
            .filter_map(|r| r.metadata.namespace.clone().map(|ns| (ns, r)))
            .collect();
        for ns in observed.keys().chain(want.keys()) {
            let rv = observed
                .get(ns)
                .and_then(|r| r.metadata.resource_version.as_deref());
            self.sent.observe(ns, rv);
        }
        let ar = self.kind.resource();
        for (ns, r) in &observed {
            if want.contains_key(ns) {
                continue;
            }
            let rv = r.metadata.resource_version.clone();
            if self.sent.already_sent(ns, rv.as_deref(), None) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            // Only the version compared: a newer one is compared again when the watch has it.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: rv.clone(),
                    uid: r.metadata.uid.clone(),
                }),
                ..DeleteParams::default()
            };
            metrics.guardrail_write(self.kind.kind, "delete");
            match api.delete(REPORT_NAME, &params).await {
                Ok(_) => self.sent.record(ns.clone(), rv, None),
                Err(kube::Error::Api(s)) if s.code == 404 => self.sent.record(ns.clone(), rv, None),
                Err(e) => tracing::warn!(namespace = %ns, error = %e, "deleting the Report failed"),
            }
        }
        let now = Timestamp::now();
        for (ns, results) in want {
            let desired = content(results);
            let seen = observed.get(ns);
            if seen.is_some_and(|r| observed_content(r) == desired) {
                continue;
            }
            let rv = seen.and_then(|r| r.metadata.resource_version.clone());
            if self.sent.already_sent(ns, rv.as_deref(), Some(&desired)) {
                continue;
            }
            let stamped: Vec<Value> = results
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r["timestamp"] = json!({"seconds": now.as_second(), "nanos": 0});
                    r
                })
                .collect();
            let body = json!({
                "apiVersion": self.kind.api_version(),
                "kind": self.kind.kind,
                "metadata": {
                    "name": REPORT_NAME,
                    "namespace": ns,
                    "labels": {MANAGED_BY: MANAGER},
                },
                "summary": desired["summary"],
                "results": stamped,
            });
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            let params = PatchParams::apply(FIELD_MANAGER).force();
            metrics.guardrail_write(self.kind.kind, "apply");
            match api.patch(REPORT_NAME, &params, &Patch::Apply(&body)).await {
                Ok(_) => self.sent.record(ns.clone(), rv, Some(desired)),
                Err(e) => tracing::warn!(namespace = %ns, error = %e, "writing the Report failed"),
            }
        }
        self.sent
            .retain(|ns| want.contains_key(ns) || observed.contains_key(ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_report_compares_without_its_timestamps() {
        let results = vec![json!({"policy": "g", "rule": "G1", "result": "fail", "message": "m"})];
        let stored: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "openreports.io/v1alpha1",
            "kind": "Report",
            "metadata": {"name": REPORT_NAME, "namespace": "a"},
            "summary": {"pass": 0, "fail": 1, "warn": 0, "error": 0, "skip": 0},
            "results": [{"policy": "g", "rule": "G1", "result": "fail", "message": "m",
                         "timestamp": {"seconds": 1, "nanos": 0}}],
        }))
        .unwrap();
        assert_eq!(observed_content(&stored), content(&results));
        let mut edited = stored.clone();
        edited.data["summary"]["fail"] = json!(0);
        assert_ne!(
            observed_content(&edited),
            content(&results),
            "summary edited"
        );
        let mut emptied = stored;
        emptied.data["results"] = json!([]);
        assert_ne!(
            observed_content(&emptied),
            content(&results),
            "results edited"
        );
    }
}
