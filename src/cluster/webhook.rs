//! The Mutating- and ValidatingWebhookConfiguration of egress-webhook, from one function for
//! both uses: the in-cluster manifests (`manifests/base/`, a Service as the endpoint) and the
//! local control plane (`https://127.0.0.1:<port>` with the caBundle of `certs`). A test compares
//! the committed manifest with [`manifest_yaml`], so the two cannot drift.
//!
//! Decisions (DESIGN §6):
//! * `failurePolicy: Fail`: when the webhook cannot answer, nothing unchecked gets in.
//! * `timeoutSeconds: 10`, the apiserver's maximum wait; the server answers within 80 % of it.
//! * `matchPolicy: Equivalent` with `apiVersions: [v2]`: a request made through another version
//!   of the same resource is converted to v2 and still reviewed.
//! * `sideEffects: NoneOnDryRun`: the webhook writes companion objects, but never on dry-run.
//! * a namespaceSelector that excludes `kube-system` and the webhook's own namespace: the
//!   webhook can always be repaired, and the system never waits on it.
//! * validating also sees DELETE of VirtualGateways (the warning naming the ExternalServices
//!   that still use one) and of AccessPolicies (an EgressGuardrail's requireAccessPolicy), and
//!   our own EgressGuardrails (cluster-scoped).
//! * a guard entry for the Istio kinds we generate, limited by objectSelector to objects carrying
//!   our managed-by label, so no other Istio object ever depends on the webhook.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use crate::api::{NETWORKING_GROUP, SECURITY_GROUP, VERSION};

/// Name of both configuration objects (and of the Service, ServiceAccount, ClusterRole).
pub const NAME: &str = "egress-webhook";
pub const MUTATING_WEBHOOK: &str = "mutate.egress-webhook.io";
pub const VALIDATING_WEBHOOK: &str = "validate.egress-webhook.io";
/// Guards the Istio objects egress-webhook generates: only objects carrying our managed-by label
/// are sent (objectSelector), so other Istio objects never depend on the webhook.
pub const GUARD_WEBHOOK: &str = "guard.egress-webhook.io";
/// The namespace the manifests install the webhook into.
pub const DEFAULT_NAMESPACE: &str = "egress-webhook";
pub const TIMEOUT_SECONDS: i32 = 10;
/// The label every namespace carries (set by the apiserver) that the namespaceSelector uses.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where the committed RBAC manifest lives (for messages).
pub const RBAC_MANIFEST_PATH: &str = "manifests/base/rbac.yaml";
/// The committed RBAC manifest: the local control plane applies it and runs the webhook as its
/// ServiceAccount.
pub const RBAC_MANIFEST: &str = include_str!("../../manifests/base/rbac.yaml");

/// Where the apiserver sends reviews.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// An in-cluster Service (port 443 of `namespace/name`).
    Service { namespace: String, name: String },
    /// A URL without path, e.g. `https://127.0.0.1:8443`; `/mutate` and `/validate` are added.
    Url(String),
}

#[derive(Clone, Debug)]
pub struct Registration {
    pub endpoint: Endpoint,
    /// PEM of the CA that signed the serving certificate; `None` leaves caBundle out (to be
    /// filled in at install time).
    pub ca_bundle_pem: Option<String>,
    /// The namespace the webhook runs in: excluded, with kube-system.
    pub own_namespace: String,
    /// The identities the webhook writes companions as: the apiserver does not call the guard for
    /// their writes (a `matchConditions` entry), so a companion write costs no admission round
    /// trip back to us.
    pub writer_identities: Vec<String>,
}

impl Registration {
    /// The in-cluster registration of the manifests.
    pub fn in_cluster(namespace: &str) -> Self {
        Registration {
            endpoint: Endpoint::Service {
                namespace: namespace.to_string(),
                name: NAME.to_string(),
            },
            ca_bundle_pem: None,
            own_namespace: namespace.to_string(),
            writer_identities: vec![format!("system:serviceaccount:{namespace}:{NAME}")],
        }
    }

    fn client_config(&self, path: &str) -> WebhookClientConfig {
        let (service, url) = match &self.endpoint {
            Endpoint::Service { namespace, name } => (
                Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.to_string()),
                    port: Some(443),
                }),
                None,
            ),
            Endpoint::Url(base) => (None, Some(format!("{}{path}", base.trim_end_matches('/')))),
        };
        WebhookClientConfig {
            ca_bundle: self
                .ca_bundle_pem
                .as_ref()
                .map(|p| ByteString(p.as_bytes().to_vec())),
            service,
            url,
        }
    }

    fn namespace_selector(&self) -> LabelSelector {
        let mut excluded = vec!["kube-system".to_string()];
        if !excluded.contains(&self.own_namespace) {
            excluded.push(self.own_namespace.clone());
        }
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: NAMESPACE_NAME_LABEL.to_string(),
                operator: "NotIn".to_string(),
                values: Some(excluded),
            }]),
            match_labels: None,
        }
    }
}

fn metadata() -> ObjectMeta {
    ObjectMeta {
        name: Some(NAME.to_string()),
        labels: Some(
            [("app.kubernetes.io/name".to_string(), NAME.to_string())]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    }
}

fn rule(group: &str, resources: &[&str], operations: &[&str]) -> RuleWithOperations {
    let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
    RuleWithOperations {
        api_groups: strings(&[group]),
        api_versions: strings(&[VERSION]),
        operations: strings(operations),
        resources: strings(resources),
        scope: Some("Namespaced".to_string()),
    }
}

const CREATE_UPDATE: &[&str] = &["CREATE", "UPDATE"];

/// Our own EgressGuardrails (cluster-scoped: the namespaceSelector does not apply to them) are
/// validated too: bad globs and unknown gateways are denied (G6-G8).
fn guardrail_rule() -> RuleWithOperations {
    use crate::api::egress_guardrail::{POLICY_GROUP, POLICY_VERSION};
    RuleWithOperations {
        api_groups: Some(vec![POLICY_GROUP.to_string()]),
        api_versions: Some(vec![POLICY_VERSION.to_string()]),
        operations: Some(CREATE_UPDATE.iter().map(|s| s.to_string()).collect()),
        resources: Some(vec!["egressguardrails".to_string()]),
        scope: Some("Cluster".to_string()),
    }
}

pub fn mutating(reg: &Registration) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: metadata(),
        webhooks: Some(vec![MutatingWebhook {
            name: MUTATING_WEBHOOK.to_string(),
            admission_review_versions: vec!["v1".to_string()],
            client_config: reg.client_config("/mutate"),
            failure_policy: Some("Fail".to_string()),
            match_policy: Some("Equivalent".to_string()),
            namespace_selector: Some(reg.namespace_selector()),
            reinvocation_policy: Some("Never".to_string()),
            rules: Some(vec![
                rule(
                    NETWORKING_GROUP,
                    &["externalservices", "virtualgateways"],
                    CREATE_UPDATE,
                ),
                rule(SECURITY_GROUP, &["accesspolicies"], CREATE_UPDATE),
            ]),
            side_effects: "NoneOnDryRun".to_string(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            match_conditions: None,
            object_selector: None,
        }]),
    }
}

pub fn validating(reg: &Registration) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: metadata(),
        webhooks: Some(vec![
            ValidatingWebhook {
                name: VALIDATING_WEBHOOK.to_string(),
                admission_review_versions: vec!["v1".to_string()],
                client_config: reg.client_config("/validate"),
                failure_policy: Some("Fail".to_string()),
                match_policy: Some("Equivalent".to_string()),
                namespace_selector: Some(reg.namespace_selector()),
                rules: Some(vec![
                    rule(NETWORKING_GROUP, &["externalservices"], CREATE_UPDATE),
                    rule(
                        NETWORKING_GROUP,
                        &["virtualgateways"],
                        &["CREATE", "UPDATE", "DELETE"],
                    ),
                    // DELETE: an EgressGuardrail's requireAccessPolicy protects the only
                    // AccessPolicy of an ExternalService (G5).
                    rule(
                        SECURITY_GROUP,
                        &["accesspolicies"],
                        &["CREATE", "UPDATE", "DELETE"],
                    ),
                    guardrail_rule(),
                ]),
                side_effects: "NoneOnDryRun".to_string(),
                timeout_seconds: Some(TIMEOUT_SECONDS),
                match_conditions: None,
                object_selector: None,
            },
            guard(reg),
        ]),
    }
}

/// The guard of generated objects: CREATE and UPDATE (deletes are allowed, the reconciler puts
/// back what should exist) of the Istio kinds we write, for objects labelled as ours.
fn guard(reg: &Registration) -> ValidatingWebhook {
    let kinds = crate::companions::kinds::KINDS;
    let resources =
        |group: &str| -> Vec<&str> { kinds.iter().filter(|k| k.0 == group).map(|k| k.3).collect() };
    ValidatingWebhook {
        name: GUARD_WEBHOOK.to_string(),
        admission_review_versions: vec!["v1".to_string()],
        client_config: reg.client_config("/validate"),
        failure_policy: Some("Fail".to_string()),
        match_policy: Some("Equivalent".to_string()),
        namespace_selector: Some(reg.namespace_selector()),
        object_selector: Some(LabelSelector {
            match_labels: Some(
                [(
                    crate::core::expand::metadata::MANAGED_BY.to_string(),
                    crate::core::expand::metadata::MANAGER.to_string(),
                )]
                .into(),
            ),
            match_expressions: None,
        }),
        rules: Some(vec![
            RuleWithOperations {
                api_groups: Some(vec!["networking.istio.io".to_string()]),
                api_versions: Some(vec!["*".to_string()]),
                operations: Some(CREATE_UPDATE.iter().map(|s| s.to_string()).collect()),
                resources: Some(
                    resources("networking.istio.io")
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                ),
                scope: Some("Namespaced".to_string()),
            },
            RuleWithOperations {
                api_groups: Some(vec!["security.istio.io".to_string()]),
                api_versions: Some(vec!["*".to_string()]),
                operations: Some(CREATE_UPDATE.iter().map(|s| s.to_string()).collect()),
                resources: Some(
                    resources("security.istio.io")
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                ),
                scope: Some("Namespaced".to_string()),
            },
        ]),
        side_effects: "None".to_string(),
        timeout_seconds: Some(TIMEOUT_SECONDS),
        // Our own writes need no guard (the review would only say "allowed"): skipped by the
        // apiserver, which halves the requests of every companion write. The guard itself still
        // checks the identity, should a cluster ignore matchConditions.
        match_conditions: (!reg.writer_identities.is_empty()).then(|| {
            vec![MatchCondition {
                name: "not-egress-webhook-itself".to_string(),
                expression: format!(
                    "!(request.userInfo.username in {})",
                    serde_json::to_string(&reg.writer_identities).unwrap_or_default()
                ),
            }]
        }),
    }
}

/// Both configurations as multi-document YAML.
pub fn to_yaml(reg: &Registration) -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!(
        "---\n{}---\n{}",
        serde_saphyr::to_string(&mutating(reg))?,
        serde_saphyr::to_string(&validating(reg))?
    ))
}

/// The header of the committed manifest.
const MANIFEST_HEADER: &str = "\
# Generated by `egress-webhook webhook-config` (`make manifests`); a unit test compares it with
# the code. Do not edit by hand.
#
# caBundle is left out: the overlays fill it (cert-manager's CA injector, or the webhook itself
# in self-signed mode); with the base alone, set it to the base64 of the CA that signed the
# serving certificate (`egress-webhook certs --namespace egress-webhook` writes one).
";

/// The content of `manifests/base/webhook-configurations.yaml`.
pub fn manifest_yaml() -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!(
        "{MANIFEST_HEADER}{}",
        to_yaml(&Registration::in_cluster(DEFAULT_NAMESPACE))?
    ))
}

/// The ClusterRole of [`RBAC_MANIFEST`].
pub fn cluster_role() -> Result<ClusterRole, String> {
    let doc = rbac_document("ClusterRole")?;
    serde_json::from_value(doc).map_err(|e| format!("{RBAC_MANIFEST_PATH}: ClusterRole: {e}"))
}

fn rbac_document(kind: &str) -> Result<serde_json::Value, String> {
    serde_saphyr::from_multiple::<serde_json::Value>(RBAC_MANIFEST)
        .map_err(|e| format!("{RBAC_MANIFEST_PATH}: {e}"))?
        .into_iter()
        .find(|doc| doc.get("kind").and_then(|k| k.as_str()) == Some(kind))
        .ok_or_else(|| format!("{RBAC_MANIFEST_PATH} has no {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::catalog::Kind;

    #[test]
    fn committed_manifest_is_generated_from_the_code() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/manifests/base/webhook-configurations.yaml"
        );
        let committed = std::fs::read_to_string(path).expect("read the manifest");
        assert_eq!(
            committed,
            manifest_yaml().unwrap(),
            "stale: run `make manifests`"
        );
    }

    #[test]
    fn local_registration_points_at_the_url_with_the_ca() {
        let reg = Registration {
            endpoint: Endpoint::Url("https://127.0.0.1:9443/".into()),
            ca_bundle_pem: Some("PEM".into()),
            own_namespace: "egress-webhook".into(),
            writer_identities: vec!["egress-webhook".into()],
        };
        let m = mutating(&reg);
        let v = validating(&reg);
        let mc = &m.webhooks.as_ref().unwrap()[0].client_config;
        let vc = &v.webhooks.as_ref().unwrap()[0].client_config;
        assert_eq!(mc.url.as_deref(), Some("https://127.0.0.1:9443/mutate"));
        assert_eq!(vc.url.as_deref(), Some("https://127.0.0.1:9443/validate"));
        assert_eq!(mc.ca_bundle.as_ref().unwrap().0, b"PEM");
        assert!(mc.service.is_none());
        // Everything but the client config is the same as in the manifests.
        let mut in_cluster = mutating(&Registration::in_cluster("egress-webhook"));
        in_cluster.webhooks.as_mut().unwrap()[0].client_config = mc.clone();
        assert_eq!(in_cluster, m);
    }

    #[test]
    fn settings_are_the_decided_ones() {
        let reg = Registration::in_cluster("egress-webhook");
        let m = &mutating(&reg).webhooks.unwrap()[0];
        let v = &validating(&reg).webhooks.unwrap()[0];
        for (fp, to, mp, se, ns) in [
            (
                &m.failure_policy,
                m.timeout_seconds,
                &m.match_policy,
                &m.side_effects,
                &m.namespace_selector,
            ),
            (
                &v.failure_policy,
                v.timeout_seconds,
                &v.match_policy,
                &v.side_effects,
                &v.namespace_selector,
            ),
        ] {
            assert_eq!(fp.as_deref(), Some("Fail"));
            assert!(to.unwrap() <= 10);
            assert_eq!(mp.as_deref(), Some("Equivalent"));
            assert_eq!(se, "NoneOnDryRun");
            let req = &ns.as_ref().unwrap().match_expressions.as_ref().unwrap()[0];
            assert_eq!(req.key, NAMESPACE_NAME_LABEL);
            assert_eq!(req.operator, "NotIn");
            assert_eq!(
                req.values.as_deref().unwrap(),
                ["kube-system", "egress-webhook"]
            );
        }
        let ops = |rules: &Option<Vec<RuleWithOperations>>, res: &str| {
            rules
                .iter()
                .flatten()
                .find(|r| r.resources.as_ref().unwrap().iter().any(|x| x == res))
                .and_then(|r| r.operations.clone())
                .unwrap()
        };
        assert_eq!(ops(&m.rules, "virtualgateways"), ["CREATE", "UPDATE"]);
        assert_eq!(
            ops(&v.rules, "virtualgateways"),
            ["CREATE", "UPDATE", "DELETE"]
        );
        assert_eq!(ops(&v.rules, "externalservices"), ["CREATE", "UPDATE"]);
        // DELETE: G5 (an EgressGuardrail's requireAccessPolicy) protects the only AccessPolicy.
        assert_eq!(
            ops(&v.rules, "accesspolicies"),
            ["CREATE", "UPDATE", "DELETE"]
        );
        assert_eq!(ops(&v.rules, "egressguardrails"), ["CREATE", "UPDATE"]);
    }

    /// The ClusterRole lets the webhook do what the catalog does: get, list and watch every
    /// kind it watches.
    #[test]
    fn cluster_role_covers_every_watched_kind() {
        let role = cluster_role().unwrap();
        // And the guardrail watches' kinds (src/cluster/guardrail_watch.rs).
        // The lockdown NetworkPolicies (src/cluster/lockdown.rs), the report kinds and their
        // CRDs (src/cluster/report_watch.rs).
        let report = |k: crate::cluster::guardrail_reports::ReportKind| {
            kube::api::ApiResource::from_gvk_with_plural(
                &kube::api::GroupVersionKind::gvk(k.group, k.version, k.kind),
                k.plural,
            )
        };
        let guardrail_watches = [
            kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
            kube::api::ApiResource::erase::<crate::api::EgressGuardrail>(&()),
            kube::api::ApiResource::erase::<k8s_openapi::api::networking::v1::NetworkPolicy>(&()),
            kube::api::ApiResource::erase::<
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
            >(&()),
            report(crate::cluster::guardrail_reports::ReportKind::OPEN_REPORTS),
            report(crate::cluster::guardrail_reports::ReportKind::POLICY_REPORT),
        ];
        for ar in Kind::ALL
            .map(|k| k.api_resource())
            .into_iter()
            .chain(guardrail_watches)
        {
            for verb in ["get", "list", "watch"] {
                let allowed = role.rules.iter().flatten().any(|r| {
                    r.api_groups.iter().flatten().any(|g| *g == ar.group)
                        && r.resources.iter().flatten().any(|x| *x == ar.plural)
                        && r.verbs.iter().any(|v| v == verb)
                });
                assert!(allowed, "ClusterRole lacks {verb} on {}", ar.plural);
            }
        }
    }
}
