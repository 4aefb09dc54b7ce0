//! Listener shape rules: V1–V7, V9, V10, V17, V18.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::api::virtual_gateway::Listener;
use crate::api::{VirtualGateway, list, text};
use crate::core::findings::Report;
use crate::core::rules::syntax::{is_port, parse_scoped_host};

use super::{PortKey, listener_path, port_key};

/// The CRD's `MaxItems` on `listeners`.
const MAX_LISTENERS: usize = 300_000;

/// V4: the appProtocol values of the CEL rule (compared upper-cased).
const APP_PROTOCOLS: &[&str] = &[
    "GRPC",
    "GRPC-WEB",
    "HTTP",
    "HTTP_PROXY",
    "HTTP2",
    "HTTPS",
    "TCP",
    "TLS",
    "MONGO",
    "REDIS",
    "MYSQL",
];
const MAX_APP_PROTOCOL_LEN: usize = 10;

/// The listener TLS modes of the CRD enum (2.14 adds OPTIONAL_MUTUAL).
const TLS_MODES: &[&str] = &[
    "PASSTHROUGH",
    "SIMPLE",
    "MUTUAL",
    "AUTO_PASSTHROUGH",
    "ISTIO_MUTUAL",
    "OPTIONAL_MUTUAL",
];

pub(super) fn validate(written: &VirtualGateway, defaulted: &VirtualGateway, report: &mut Report) {
    v1(written, report);
    let vg_ns = super::namespace(written);
    let written_listeners = list(&written.spec.listeners);
    let defaulted_listeners = list(&defaulted.spec.listeners);
    for (i, (w, d)) in written_listeners
        .iter()
        .zip(defaulted_listeners)
        .enumerate()
    {
        let path = listener_path(i);
        v2(w, &path, report);
        v3(w, &path, report);
        v4(w, &path, report);
        v5(d, &path, report);
        v6(w, &path, report);
        v7(d, &path, report);
        v17(w, &path, report);
        v18(w, &path, report);
    }
    v9(defaulted_listeners, report);
    v10(defaulted_listeners, vg_ns, report);
}

fn v1(vg: &VirtualGateway, report: &mut Report) {
    let n = list(&vg.spec.listeners).len();
    if n == 0 {
        report.error(
            "V1",
            "spec.listeners",
            "listeners is required and must have at least one listener",
        );
    } else if n > MAX_LISTENERS {
        report.error(
            "V1",
            "spec.listeners",
            format!("listeners has {n} entries; at most {MAX_LISTENERS} are allowed"),
        );
    }
}

fn v2(l: &Listener, path: &str, report: &mut Report) {
    let Some(port) = &l.port else {
        report.error(
            "V2",
            format!("{path}.port"),
            "port is required: set port.number (1..65535) or port.name (a port of the gateway Service)",
        );
        return;
    };
    match (port.number, port.name.as_deref()) {
        (Some(_), Some(_)) => report.error(
            "V2",
            format!("{path}.port"),
            "set either port.number or port.name, not both",
        ),
        (Some(n), None) if !is_port(n) => report.error(
            "V2",
            format!("{path}.port.number"),
            format!("port number {n} is out of range 1..65535"),
        ),
        (None, None | Some("")) => report.error(
            "V2",
            format!("{path}.port"),
            "port must set port.number (1..65535) or port.name (a port of the gateway Service)",
        ),
        _ => {}
    }
}

fn v3(l: &Listener, path: &str, report: &mut Report) {
    if l.tls.is_some() && l.https_redirect.is_some() {
        report.error(
            "V3",
            format!("{path}.httpsRedirect"),
            "tls and httpsRedirect are mutually exclusive: a listener either serves TLS or redirects to HTTPS",
        );
    }
    if l.http.is_some() && l.tcp.is_some() {
        report.error(
            "V3",
            format!("{path}.tcp"),
            "http and tcp are mutually exclusive: set `http: {}` for an http listener, `tcp: {}` (or neither) for a tcp listener",
        );
    }
}

/// The appProtocol as compared (upper-cased), or None when it is unset or empty.
fn app_protocol(l: &Listener) -> Option<String> {
    match text(&l.app_protocol) {
        "" => None,
        p => Some(p.to_ascii_uppercase()),
    }
}

fn is_known_app_protocol(p: &str) -> bool {
    APP_PROTOCOLS.contains(&p)
}

fn v4(l: &Listener, path: &str, report: &mut Report) {
    let Some(p) = app_protocol(l) else {
        return;
    };
    if is_known_app_protocol(&p) {
        return;
    }
    // Every known value has at most 10 characters, so a too-long value is also unknown: one
    // finding says both.
    let raw = text(&l.app_protocol);
    let length = if raw.len() > MAX_APP_PROTOCOL_LEN {
        format!(" (and longer than {MAX_APP_PROTOCOL_LEN} characters)")
    } else {
        String::new()
    };
    report.error(
        "V4",
        format!("{path}.appProtocol"),
        format!(
            "appProtocol `{raw}` is not one of {}{length}",
            APP_PROTOCOLS.join(", ")
        ),
    );
}

/// The appProtocols the CEL rules allow for this listener type and TLS presence.
fn allowed_app_protocols(is_http: bool, has_tls: bool) -> &'static [&'static str] {
    match (is_http, has_tls) {
        (true, true) => &["HTTPS"],
        (true, false) => &["GRPC", "GRPC-WEB", "HTTP", "HTTP_PROXY", "HTTP2"],
        (false, true) => &["TLS"],
        (false, false) => &["TCP", "MONGO", "REDIS", "MYSQL"],
    }
}

/// `l` is the defaulted listener: its appProtocol is the effective one.
fn v5(l: &Listener, path: &str, report: &mut Report) {
    let Some(p) = app_protocol(l) else {
        return;
    };
    // V4 already reports an unknown value.
    if !is_known_app_protocol(&p) {
        return;
    }
    let (is_http, has_tls) = (l.http.is_some(), l.tls.is_some());
    let allowed = allowed_app_protocols(is_http, has_tls);
    if allowed.contains(&p.as_str()) {
        return;
    }
    // HTTPS on an http listener or TLS on a tcp listener without `tls`: adding `tls` is the one
    // fix, and V7 says so; a second finding would only repeat it.
    if !has_tls && allowed_app_protocols(is_http, true).contains(&p.as_str()) {
        return;
    }
    let kind = if is_http {
        "http (the http field is set)"
    } else {
        "tcp (tcp is set, or neither tcp nor http)"
    };
    let tls = if has_tls { "set" } else { "unset" };
    report.error(
        "V5",
        format!("{path}.appProtocol"),
        format!(
            "appProtocol {p} does not fit the listener: the listener type is {kind} and tls is {tls}, so appProtocol must be empty or one of {}",
            allowed.join(", ")
        ),
    );
}

fn v6(l: &Listener, path: &str, report: &mut Report) {
    if l.https_redirect.is_some() && l.http.is_none() {
        report.error(
            "V6",
            format!("{path}.httpsRedirect"),
            "httpsRedirect is only allowed on http listeners (set `http: {}`); this listener is tcp",
        );
    }
}

/// `l` is the defaulted listener (an inferred HTTPS/TLS always comes with `tls`).
fn v7(l: &Listener, path: &str, report: &mut Report) {
    let Some(p) = app_protocol(l) else {
        return;
    };
    if (p == "HTTPS" || p == "TLS") && l.tls.is_none() {
        report.error(
            "V7",
            format!("{path}.tls"),
            format!("appProtocol {p} requires tls settings on the listener (e.g. tls.mode ISTIO_MUTUAL or SIMPLE)"),
        );
    }
}

/// The effective appProtocol when it is known (unknown values are V4's; comparing them only
/// repeats that finding).
fn known_app_protocol(l: &Listener) -> Option<String> {
    app_protocol(l).filter(|p| is_known_app_protocol(p))
}

/// `listeners` are defaulted. Each listener is compared with the first one on its port. One
/// pass with a map: a VirtualGateway may have 300000 listeners (V1).
fn v9(listeners: &[Listener], report: &mut Report) {
    let mut first_on_port: HashMap<PortKey<'_>, (usize, Option<String>)> = HashMap::new();
    for (j, l) in listeners.iter().enumerate() {
        let Some(port) = port_key(l) else {
            continue;
        };
        let p = known_app_protocol(l);
        match first_on_port.entry(port) {
            Entry::Vacant(v) => {
                v.insert((j, p));
            }
            Entry::Occupied(o) => {
                let (i, q) = o.get();
                if let (Some(p), Some(q)) = (&p, q)
                    && p != q
                {
                    report.error(
                        "V9",
                        format!("{}.appProtocol", listener_path(j)),
                        format!(
                            "listeners on the same {} must share the appProtocol: listeners[{i}] has {q}, this one has {p} (explicit or inferred from http/tcp and tls)",
                            o.key()
                        ),
                    );
                }
            }
        }
    }
}

/// V10's "first host": allowedRouteTables[0].host, else exposedExternalServices[0].host, else
/// `*`; `*/` (the default namespace prefix) and `./` (the VirtualGateway's namespace) are
/// spelled out so that equal meanings compare equal.
fn first_host(l: &Listener, vg_ns: &str) -> String {
    let host = list(&l.allowed_route_tables)
        .first()
        .map(|r| text(&r.host))
        .or_else(|| {
            list(&l.exposed_external_services)
                .first()
                .map(|e| text(&e.host))
        })
        .unwrap_or("*")
        .to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix("*/") {
        rest.to_string()
    } else if let Some(rest) = host.strip_prefix("./") {
        format!("{vg_ns}/{rest}")
    } else {
        host
    }
}

/// `listeners` are defaulted. Reports each listener that repeats an earlier one (one pass, as
/// in V9).
fn v10(listeners: &[Listener], vg_ns: &str, report: &mut Report) {
    let mut first: HashMap<(PortKey<'_>, String, String), usize> = HashMap::new();
    for (j, l) in listeners.iter().enumerate() {
        let (Some(port), Some(p)) = (port_key(l), known_app_protocol(l)) else {
            continue;
        };
        let host = first_host(l, vg_ns);
        match first.entry((port, p, host)) {
            Entry::Vacant(v) => {
                v.insert(j);
            }
            Entry::Occupied(o) => {
                let i = o.get();
                let (port, p, host) = o.key();
                report.error(
                    "V10",
                    format!("{}.port", listener_path(j)),
                    format!(
                        "listeners[{i}] and listeners[{j}] collide: same {port}, appProtocol {p} and first host `{host}`; give them different first hosts (allowedRouteTables[0] or exposedExternalServices[0]) or merge them"
                    ),
                );
            }
        }
    }
}

/// `l` is the listener as written: a defaulted mode would hide the omission.
fn v17(l: &Listener, path: &str, report: &mut Report) {
    let Some(tls) = &l.tls else {
        return;
    };
    match text(&tls.mode) {
        "" if l.http.is_some() => report.warning(
            "V17",
            format!("{path}.tls"),
            "tls has no mode, so it is PASSTHROUGH (the zero value): this http listener will not terminate TLS; did you mean ISTIO_MUTUAL or SIMPLE?",
        ),
        // A tcp listener without mode passes TLS through, which is what tcp listeners do.
        "" => {}
        // The CRD enum rejects this on current servers; keep the check for old CRDs. It lives
        // here because V17 is the rule about `tls.mode`.
        mode if !TLS_MODES.contains(&mode) => report.error(
            "V17",
            format!("{path}.tls.mode"),
            format!(
                "tls.mode `{mode}` is not one of {} (the values are case-sensitive)",
                TLS_MODES.join(", ")
            ),
        ),
        _ => {}
    }
}

fn v18(l: &Listener, path: &str, report: &mut Report) {
    let route_tables = list(&l.allowed_route_tables).iter().map(|r| &r.host);
    let external = list(&l.exposed_external_services).iter().map(|e| &e.host);
    for (field, hosts) in [
        ("allowedRouteTables", route_tables.collect::<Vec<_>>()),
        ("exposedExternalServices", external.collect::<Vec<_>>()),
    ] {
        for (k, host) in hosts.into_iter().enumerate() {
            let host_path = format!("{path}.{field}[{k}].host");
            match text(host) {
                "" => report.error(
                    "V18",
                    host_path,
                    format!("{field}[{k}].host is required (`*` matches every host)"),
                ),
                h if parse_scoped_host(h).is_none() => report.error(
                    "V18",
                    host_path,
                    format!(
                        "host `{h}` is not `[namespace/]dnsName`: the namespace is `*`, `.` or a DNS-1123 label, the dnsName is `*`, an FQDN, or `*.` followed by an FQDN"
                    ),
                ),
                _ => {}
            }
        }
    }
}
