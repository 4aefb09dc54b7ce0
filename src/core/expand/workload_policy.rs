//! AccessPolicy → AuthorizationPolicy rules, and the non-egress AccessPolicy forms of API.md §6.5:
//! `applyToWorkloads` and SERVICE destinations become ALLOW policies on those workloads, and
//! `authn.tlsMode` a PeerAuthentication. EXTERNAL_SERVICE destinations are in
//! `authorization_policy`; both share `rule_for`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;

use crate::api::{AccessPolicy, Text, access_policy::Authorization, list, text};
use crate::core::{Options, names, object::GlooKind, selectors, snapshot::Snapshot};
use crate::istio::{
    AuthorizationPolicySpec, Condition, From, IstioObject, Mtls, Operation, PeerAuthenticationSpec,
    Rule, Source, Spec, To, WorkloadSelector,
};

use super::metadata::{Parent, metadata};

/// The authorization entries in force: `authzList`, else the deprecated `authz` (A6).
pub fn authz_entries(ap: &AccessPolicy) -> Vec<&Authorization> {
    let Some(config) = &ap.spec.config else {
        return Vec::new();
    };
    match list(&config.authz_list) {
        [] => config.authz.as_deref().into_iter().collect(),
        entries => entries.iter().collect(),
    }
}

/// One Istio rule for one authorization entry, `operation` carrying what the destination adds
/// (hosts, ports). `None` when the entry can match nobody: an empty entry on workloads ("allow
/// nothing", A7), or clients that resolve to no identity. An Istio rule without `from` would
/// allow every source, so a selector that matches nothing must drop the rule, never its `from`.
pub fn rule_for(
    entry: &Authorization,
    operation: Operation,
    empty_means_all: bool,
    snap: &Snapshot,
    opts: &Options,
) -> Option<Rule> {
    if *entry == Authorization::default() && !empty_means_all {
        return None;
    }
    let from = sources(entry, snap, opts)?;
    let mut operation = operation;
    operation.methods = nonempty(&entry.allowed_methods)
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    operation.paths = nonempty(&entry.allowed_paths);
    let to = if operation == Operation::default() {
        Vec::new()
    } else {
        vec![To { operation }]
    };
    let when = entry
        .match_
        .as_ref()
        .and_then(|m| m.request.as_ref())
        .and_then(|r| r.headers.as_ref())
        .into_iter()
        .flatten()
        .map(|(name, v)| Condition {
            key: format!("request.headers[{name}]"),
            values: nonempty(&v.values),
            not_values: nonempty(&v.not_values),
        })
        .collect();
    Some(Rule { from, to, when })
}

/// The list without empty strings: Istio rejects an empty string in any AuthorizationPolicy
/// list, and the rules only warn about some of them (A16).
fn nonempty(v: &Option<Vec<Text>>) -> Vec<String> {
    list(v)
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
        .collect()
}

/// `from` sources: one for the ServiceAccount principals, one per request-identity matcher;
/// IP blocks are added to each (fields of one source are AND-ed, sources OR-ed). `Some(vec![])`
/// = any source; `None` = the clients named resolve to nobody.
fn sources(entry: &Authorization, snap: &Snapshot, opts: &Options) -> Option<Vec<From>> {
    let clients = list(&entry.allowed_clients);
    let any_client = clients.is_empty() || clients.iter().any(|c| *c == Default::default());
    let mut sources: Vec<Source> = Vec::new();
    if !any_client {
        let mut principals = BTreeSet::new();
        for c in clients {
            if let Some(sel) = &c.service_account_selector {
                principals.extend(principals_for(sel, snap, opts));
            }
            if let Some(m) = &c.request_identity_matcher {
                let (req, not_req) = (
                    nonempty(&m.request_principals),
                    nonempty(&m.not_request_principals),
                );
                if !req.is_empty() || !not_req.is_empty() {
                    sources.push(Source {
                        request_principals: req,
                        not_request_principals: not_req,
                        ..Default::default()
                    });
                }
            }
            // externalWorkloadSelector (VMs) has no Istio principal we can derive: it allows nothing.
        }
        if !principals.is_empty() {
            sources.insert(
                0,
                Source {
                    principals: principals.into_iter().collect(),
                    ..Default::default()
                },
            );
        }
        if sources.is_empty() {
            return None;
        }
    }
    let (ip, remote) = (
        nonempty(&entry.allowed_ip_blocks),
        nonempty(&entry.allowed_remote_ip_blocks),
    );
    if !ip.is_empty() || !remote.is_empty() {
        if sources.is_empty() {
            sources.push(Source::default());
        }
        for s in &mut sources {
            s.ip_blocks = ip.clone();
            s.remote_ip_blocks = remote.clone();
        }
    }
    Some(sources.into_iter().map(|source| From { source }).collect())
}

/// `<trust-domain>/ns/<ns>/sa/<sa>` for each ServiceAccount a selector picks. A selector with only
/// name, namespace (and cluster) names a ServiceAccount that may not exist yet: it gets its
/// principal anyway (the IdentitySelector contract for future accounts; A13 warns).
fn principals_for(
    sel: &crate::api::ObjectSelector,
    snap: &Snapshot,
    opts: &Options,
) -> Vec<String> {
    if !selectors::is_local_cluster(text(&sel.cluster), &opts.cluster_name) {
        return Vec::new();
    }
    let principal = |ns: &str, name: &str| format!("{}/ns/{ns}/sa/{name}", opts.trust_domain);
    let (ns, name) = (text(&sel.namespace), text(&sel.name));
    let by_name_only = sel.labels.as_ref().is_none_or(|l| l.is_empty());
    if !ns.is_empty() && !name.is_empty() && by_name_only {
        return vec![principal(ns, name)];
    }
    snap.service_accounts_selected(sel)
        .into_iter()
        .map(|sa| {
            principal(
                sa.metadata.namespace.as_deref().unwrap_or("default"),
                sa.metadata.name.as_deref().unwrap_or(""),
            )
        })
        .collect()
}

/// Where a workload policy goes.
struct WorkloadTarget {
    namespace: String,
    /// Distinguishes the policies of one AccessPolicy.
    suffix: String,
    /// Pod labels; `None` = the whole namespace.
    labels: Option<std::collections::BTreeMap<String, String>>,
    /// Pod ports (`to.operation.ports`); empty = all.
    ports: Vec<String>,
}

/// Policies for `applyToWorkloads`, or else for SERVICE destinations, plus PeerAuthentications.
pub fn for_access_policy(ap: &AccessPolicy, snap: &Snapshot, opts: &Options) -> Vec<IstioObject> {
    let ap_ns = ap.metadata.namespace.as_deref().unwrap_or("default");
    let mut targets: Vec<WorkloadTarget> = Vec::new();
    let workloads = list(&ap.spec.apply_to_workloads);
    if !workloads.is_empty() {
        for (i, w) in workloads.iter().enumerate() {
            let sel = w.selector.clone().unwrap_or_default();
            if !selectors::is_local_cluster(text(&sel.cluster), &opts.cluster_name) {
                continue;
            }
            // An omitted namespace means the policy's own namespace (we cannot enumerate a workspace).
            let ns = match text(&sel.namespace) {
                "" => ap_ns,
                ns => ns,
            };
            let labels = sel.labels.filter(|l| !l.is_empty()).map(Into::into);
            targets.push(WorkloadTarget {
                namespace: ns.to_string(),
                suffix: format!("workloads-{i}"),
                labels,
                ports: Vec::new(),
            });
        }
    } else {
        for d in list(&ap.spec.apply_to_destinations)
            .iter()
            .filter(|d| text(&d.kind) == "SERVICE")
        {
            let sel = d.selector.clone().unwrap_or_default();
            for svc in services_selected(&sel, snap, opts) {
                let Some(pods) = svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.clone())
                    .filter(|l| !l.is_empty())
                else {
                    continue;
                };
                let ports = target_ports(svc, d.port.as_ref());
                let (ns, name) = (
                    svc.metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    svc.metadata.name.clone().unwrap_or_default(),
                );
                targets.push(WorkloadTarget {
                    namespace: ns,
                    suffix: format!("service-{name}"),
                    labels: Some(pods),
                    ports,
                });
            }
        }
    }
    let ap_name = ap.metadata.name.as_deref().unwrap_or("");
    let parent = Parent {
        kind: GlooKind::AccessPolicy,
        meta: &ap.metadata,
    };
    let entries = authz_entries(ap);
    let tls_mode = ap
        .spec
        .config
        .as_ref()
        .and_then(|c| c.authn.as_ref())
        .map(|a| text(&a.tls_mode))
        .filter(|m| !m.is_empty());
    let mut out = Vec::new();
    for WorkloadTarget {
        namespace: ns,
        suffix,
        labels,
        ports,
    } in targets
    {
        let selector = labels.map(|match_labels| WorkloadSelector { match_labels });
        let name = names::object_name(&["accesspolicy", ap_name, ap_ns, &suffix]);
        if !entries.is_empty() {
            let op = Operation {
                ports: ports.clone(),
                ..Default::default()
            };
            let rules = entries
                .iter()
                .filter_map(|e| rule_for(e, op.clone(), false, snap, opts))
                .collect();
            let spec = AuthorizationPolicySpec {
                selector: selector.clone(),
                action: "ALLOW",
                rules,
            };
            out.push(IstioObject::new(
                metadata(parent, &ns, name.clone(), opts),
                Spec::AuthorizationPolicy(spec),
            ));
        }
        if let Some(mode) = tls_mode {
            let spec = PeerAuthenticationSpec {
                selector,
                mtls: Mtls {
                    mode: mode.to_string(),
                },
            };
            out.push(IstioObject::new(
                metadata(parent, &ns, name, opts),
                Spec::PeerAuthentication(spec),
            ));
        }
    }
    out
}

/// Services a SERVICE destination selector picks by name, namespace and metadata labels.
fn services_selected<'a>(
    sel: &crate::api::ObjectSelector,
    snap: &'a Snapshot,
    opts: &Options,
) -> Vec<&'a Service> {
    if !selectors::is_local_cluster(text(&sel.cluster), &opts.cluster_name) {
        return Vec::new();
    }
    snap.services()
        .filter(|s| {
            selectors::object_selector_matches(
                sel,
                None,
                s.metadata.namespace.as_deref().unwrap_or("default"),
                s.metadata.name.as_deref().unwrap_or(""),
                s.metadata.labels.as_ref(),
            )
        })
        .collect()
}

/// The pod ports (numeric targetPorts) of the selected Service port; empty = all ports.
fn target_ports(svc: &Service, port: Option<&crate::api::PortSelector>) -> Vec<String> {
    let Some(port) = port else { return Vec::new() };
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    ports
        .iter()
        .filter(|p| selectors::service_port_matches(port, p))
        .map(|p| match &p.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(t)) => {
                t.to_string()
            }
            _ => p.port.to_string(),
        })
        .collect()
}
