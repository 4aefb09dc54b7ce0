//! The answer to "who can reach this host?": every route of the host, and per gateway on it,
//! the decision for each ServiceAccount in scope. Pure: the CLI gathers the inputs.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::core::mesh_config::{MeshConfig, OutboundMode};
use crate::core::snapshot::Snapshot;

use super::decide::{Decision, Skipped, decide, select};
use super::pattern::{TrustDomains, principal_account};
use super::policy::Policy;
use super::route::{GatewayHop, Route, routes};
use super::rule::Request;

/// What to ask.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    pub host: &'a str,
    pub port: Option<u32>,
    /// One ServiceAccount (`namespace`, `name`); `None`: every one in scope.
    pub from: Option<(&'a str, &'a str)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    pub routes: Vec<RouteReport>,
    /// Set when no ExternalService declares the host (on that port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undeclared: Option<Undeclared>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RouteReport {
    pub route: Route,
    /// One per gateway the route reaches (none for a direct route).
    pub gateways: Vec<GatewayReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GatewayReport {
    pub gateway: GatewayHop,
    /// Policies in the gateway's (or the root) namespace that do not apply to its pods, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    pub answers: Vec<Answer>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// `namespace/name` of the ServiceAccount.
    pub service_account: String,
    pub principal: String,
    pub decision: Decision,
}

/// A host no ExternalService declares: the client's sidecar handles it by the outbound mode.
#[derive(Clone, Debug, Serialize)]
pub struct Undeclared {
    pub outbound_mode: OutboundMode,
    /// False when the mode is Istio's default (nothing set it).
    pub mode_set: bool,
    pub allowed: bool,
    pub explanation: String,
}

/// Evaluate `query` over the snapshot, the policies (generated and user-written) and the mesh
/// settings. `accounts` are the ServiceAccounts known from the inputs (`namespace`, `name`).
pub fn report(
    query: &Query<'_>,
    snap: &Snapshot,
    policies: &[Policy],
    mesh: &MeshConfig,
    trust: &TrustDomains,
    accounts: &[(String, String)],
) -> Report {
    let mut found = routes(snap, query.host, query.port);
    // One answer for `--from`: without a port it is about the routes through a gateway.
    if query.from.is_some()
        && query.port.is_none()
        && found.iter().any(|r| matches!(r, Route::Gateway { .. }))
    {
        found.retain(|r| matches!(r, Route::Gateway { .. }));
    }
    let undeclared = found.is_empty().then(|| undeclared(mesh));
    let routes = found
        .into_iter()
        .map(|route| {
            let gateways = match &route {
                Route::Gateway {
                    host_header, hops, ..
                } => hops
                    .iter()
                    .map(|hop| {
                        gateway_report(hop, host_header, query, policies, mesh, trust, accounts)
                    })
                    .collect(),
                Route::Direct { .. } => Vec::new(),
            };
            RouteReport { route, gateways }
        })
        .collect();
    Report {
        host: query.host.to_string(),
        port: query.port,
        routes,
        undeclared,
    }
}

fn gateway_report(
    hop: &GatewayHop,
    host_header: &str,
    query: &Query<'_>,
    policies: &[Policy],
    mesh: &MeshConfig,
    trust: &TrustDomains,
    accounts: &[(String, String)],
) -> GatewayReport {
    let (applied, skipped) = select(policies, &hop.workload, &mesh.root_namespace);
    let in_scope: BTreeSet<(String, String)> = match query.from {
        Some((ns, sa)) => [(ns.to_string(), sa.to_string())].into(),
        None => accounts
            .iter()
            .cloned()
            .chain(named_accounts(&applied))
            .collect(),
    };
    let answers = in_scope
        .into_iter()
        .map(|(ns, sa)| {
            let principal = trust.principal(&ns, &sa);
            let req = Request {
                principal: &principal,
                host_header,
                port: hop.pod_port,
                trust,
            };
            Answer {
                service_account: format!("{ns}/{sa}"),
                decision: decide(&applied, &req),
                principal,
            }
        })
        .collect();
    GatewayReport {
        gateway: hop.clone(),
        skipped,
        answers,
    }
}

/// ServiceAccounts that applied policies name explicitly in `principals`/`notPrincipals`.
fn named_accounts(policies: &[&Policy]) -> Vec<(String, String)> {
    policies
        .iter()
        .flat_map(|p| &p.rules)
        .flat_map(|r| r.from.iter().flatten())
        .filter_map(|f| f.source.as_ref())
        .flat_map(|s| {
            s.principals
                .iter()
                .flatten()
                .chain(s.not_principals.iter().flatten())
        })
        .filter_map(|p| principal_account(p))
        .map(|(ns, sa)| (ns.to_string(), sa.to_string()))
        .collect()
}

fn undeclared(mesh: &MeshConfig) -> Undeclared {
    let (allowed, explanation) = match mesh.outbound_mode {
        OutboundMode::AllowAny => (
            true,
            "no ExternalService declares it, and under ALLOW_ANY the client's sidecar sends it out directly, bypassing the egress gateway: no gateway AuthorizationPolicy applies, every workload reaches it (set meshConfig.outboundTrafficPolicy.mode: REGISTRY_ONLY to block undeclared hosts)",
        ),
        OutboundMode::RegistryOnly => (
            false,
            "no ExternalService declares it, and under REGISTRY_ONLY the client's sidecar blocks it (BlackHoleCluster): no workload reaches it",
        ),
    };
    Undeclared {
        outbound_mode: mesh.outbound_mode,
        mode_set: mesh.outbound_mode_set,
        allowed,
        explanation: explanation.to_string(),
    }
}
