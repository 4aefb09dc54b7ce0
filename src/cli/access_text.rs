//! `access --output text`: one header line per route and gateway, one line per ServiceAccount.

use std::io::{self, Write};

use crate::core::access::{
    DENIED_TEXT, Decision, Reason, Verdict,
    report::{GatewayReport, Report},
    route::Route,
};

pub fn write(out: &mut impl Write, rep: &Report) -> io::Result<()> {
    if let Some(u) = &rep.undeclared {
        let default = if u.mode_set {
            ""
        } else {
            " (Istio's default: the mesh config does not set it)"
        };
        let port = rep.port.map(|p| format!(" port {p}")).unwrap_or_default();
        writeln!(
            out,
            "{}{port}: {}: outbound traffic policy {}{default}: {}",
            rep.host,
            if u.allowed {
                "allowed, bypassing the egress gateway"
            } else {
                "blocked"
            },
            u.outbound_mode.as_str(),
            u.explanation
        )?;
        return Ok(());
    }
    for r in &rep.routes {
        match &r.route {
            Route::Direct {
                external_service,
                port,
            } => writeln!(
                out,
                "{} port {port}: declared by ExternalService {external_service} but not routed through an egress gateway: the client's sidecar connects to the host itself, so no gateway AuthorizationPolicy applies to it",
                rep.host
            )?,
            Route::Gateway {
                external_service,
                port,
                host_header,
                ..
            } => {
                for g in &r.gateways {
                    gateway(out, &rep.host, external_service, *port, host_header, g)?;
                }
            }
        }
    }
    Ok(())
}

fn gateway(
    out: &mut impl Write,
    host: &str,
    es: &str,
    port: u32,
    host_header: &str,
    g: &GatewayReport,
) -> io::Result<()> {
    let hop = &g.gateway;
    let pod_port = hop
        .pod_port
        .map(|p| p.to_string())
        .unwrap_or_else(|| "named".into());
    writeln!(
        out,
        "{host} port {port} (ExternalService {es}): through egress gateway {} port {} (pod port {pod_port}, VirtualGateway {}), Host header {host_header}",
        hop.service, hop.service_port, hop.virtual_gateway
    )?;
    let width = g
        .answers
        .iter()
        .map(|a| a.service_account.len())
        .max()
        .unwrap_or(0);
    for a in &g.answers {
        writeln!(
            out,
            "  {:<width$}  {}",
            a.service_account,
            decision(&a.decision)
        )?;
        if let Some(dry) = &a.decision.dry_run
            && (dry.verdict != a.decision.verdict || dry.reason != a.decision.reason)
        {
            writeln!(
                out,
                "  {:<width$}    with dry-run policies enforced: {}",
                "",
                decision(dry)
            )?;
        }
    }
    for s in &g.skipped {
        writeln!(out, "  not applied: {}: {}", s.policy, s.why)?;
    }
    Ok(())
}

/// `allowed  by ...`, `denied   by ...: 403 RBAC: access denied`, `depends  ...`.
pub fn decision(d: &Decision) -> String {
    let outcome = match (&d.reason, d.allowed) {
        (Reason::Rule(hit), true) => format!("by {hit}"),
        (Reason::Rule(hit), false) => format!("by {hit}: {DENIED_TEXT}"),
        (Reason::NoAllowPolicy, _) => {
            "no ALLOW AuthorizationPolicy selects the gateway pods".to_string()
        }
        (Reason::NoAllowRuleMatched { policies }, _) => {
            let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
            format!("no rule of {} matches: {DENIED_TEXT}", names.join(", "))
        }
    };
    let mut text = match d.verdict {
        Verdict::Allowed => format!("allowed  {outcome}"),
        Verdict::Denied => format!("denied   {outcome}"),
        Verdict::DependsOnRequest => {
            let mut parts: Vec<String> = d
                .conditional
                .iter()
                .map(|h| {
                    let effect = if h.policy.action == crate::core::access::Action::Deny {
                        "denied"
                    } else {
                        "allowed"
                    };
                    format!("{effect} by {h}")
                })
                .collect();
            let otherwise = if d.allowed { "allowed" } else { "denied" };
            parts.push(format!("otherwise {otherwise} {outcome}"));
            format!("depends on the request: {}", parts.join("; "))
        }
    };
    for c in &d.custom {
        let provider = "its CUSTOM provider decides first";
        text.push_str(&format!("; {c}: {provider}"));
    }
    text
}
