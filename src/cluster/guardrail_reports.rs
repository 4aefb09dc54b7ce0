//! OpenReports (`openreports.io/v1alpha1` `Report`, the policy-report API that Kyverno,
//! Kubewarden and Trivy write and Policy Reporter shows): after each audit pass, one Report per
//! namespace with a result per violation (policy = guardrail, rule = G id, result `fail` for
//! deny and audit guardrails, `warn` for warn ones), written only when the CRD is installed,
//! rewritten only when the namespace's results changed, deleted when the namespace is clean.
//!
//! The Reports carry our managed-by label; at the first pass with the CRD present, ours are
//! listed so that a Report of a namespace that became clean while we were not running goes too.
//!
//! Older tooling reads `wgpolicyk8s.io/v1alpha2` `PolicyReport`s, whose results and summary
//! have the same shape: `serve --policy-reports` writes those too ([`ReportKind::POLICY_REPORT`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;
use kube::{
    Client,
    api::{
        Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
        PatchParams,
    },
};
use serde_json::{Value, json};

use crate::companions::FIELD_MANAGER;
use crate::core::expand::metadata::{MANAGED_BY, MANAGER};
use crate::core::guardrails::{Action, audit::GuardrailAudit};

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

    fn resource(&self) -> ApiResource {
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

/// What has been written, per namespace, of one report kind.
pub struct Reports {
    kind: ReportKind,
    written: BTreeMap<String, Vec<Value>>,
    /// Our Reports listed once (stale ones of an earlier run found).
    listed: bool,
}

impl Reports {
    pub fn new(kind: ReportKind) -> Self {
        Reports {
            kind,
            written: BTreeMap::new(),
            listed: false,
        }
    }

    /// Bring the Reports in line with `want`; nothing when the CRD is not installed.
    pub async fn sync(&mut self, client: &Client, want: BTreeMap<String, Vec<Value>>) {
        // Idle and clean: no request at all (not even the discovery of the CRD).
        if self.listed && want.is_empty() && self.written.is_empty() {
            return;
        }
        match client
            .list_api_group_resources(&self.kind.api_version())
            .await
        {
            Ok(list) if list.resources.iter().any(|r| r.name == self.kind.plural) => {}
            // Not installed (or not readable): no Report of ours can exist; they are written
            // once it is installed and there is something to report.
            _ => {
                self.written.clear();
                self.listed = true;
                return;
            }
        }
        let ar = self.kind.resource();
        if !self.listed {
            let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let ours = ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
            match all.list(&ours).await {
                Ok(list) => {
                    for r in list.items {
                        if let Some(ns) = r.metadata.namespace {
                            // Unknown content: rewritten if wanted, deleted if not.
                            self.written.entry(ns).or_insert_with(|| vec![Value::Null]);
                        }
                    }
                    self.listed = true;
                }
                Err(e) => tracing::warn!(error = %e, "listing our Reports failed"),
            }
        }
        let stale: BTreeSet<String> = self
            .written
            .keys()
            .filter(|ns| !want.contains_key(*ns))
            .cloned()
            .collect();
        for ns in stale {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            match api.delete(REPORT_NAME, &DeleteParams::default()).await {
                Ok(_) => {
                    self.written.remove(&ns);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.written.remove(&ns);
                }
                Err(e) => tracing::warn!(namespace = %ns, error = %e, "deleting the Report failed"),
            }
        }
        let now = Timestamp::now();
        for (ns, results) in want {
            if self.written.get(&ns) == Some(&results) {
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
            let fail = results.iter().filter(|r| r["result"] == "fail").count();
            let warn = results.len() - fail;
            let body = json!({
                "apiVersion": self.kind.api_version(),
                "kind": self.kind.kind,
                "metadata": {
                    "name": REPORT_NAME,
                    "namespace": ns,
                    "labels": {MANAGED_BY: MANAGER},
                },
                "summary": {"pass": 0, "fail": fail, "warn": warn, "error": 0, "skip": 0},
                "results": stamped,
            });
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch(REPORT_NAME, &params, &Patch::Apply(&body)).await {
                Ok(_) => {
                    self.written.insert(ns, results);
                }
                Err(e) => tracing::warn!(namespace = %ns, error = %e, "writing the Report failed"),
            }
        }
    }
}
