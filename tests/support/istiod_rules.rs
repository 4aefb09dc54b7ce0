//! The rules istiod's validating webhook (Istio 1.24, `pkg/config/validation`) applies to the
//! kinds the generator emits, re-implemented for tests (EGRESS.md §4).
//!
//! Why: kube-apiserver + the CRDs ([`super::istio_schema`]) do not run istiod's webhook, so an
//! object can pass schema validation and still be rejected by a real cluster (or silently never
//! match). Only *errors* are reported here; istiod warnings (partial-wildcard SE hosts, unused
//! routes, ...) are not, since they do not block admission.
//!
//! A few checks are deliberately stricter than istiod, because they guard the generator's own
//! conventions and an object violating them would be wrong even if admitted; each is marked
//! "generator policy" below.
//!
//! Every message starts with the field path (`spec.servers[0].port.name: ...`).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::istio_schema::{check_label_value, check_qualified_name, is_dns1123_subdomain};

/// Check one object against istiod's rules for its kind. Empty = istiod would admit it.
pub fn check_istiod(obj: &Value) -> Vec<String> {
    let mut c = Ctx::default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");

    let expected_group = match kind {
        "ServiceEntry" | "Gateway" | "VirtualService" | "DestinationRule" | "Sidecar" => {
            "networking.istio.io"
        }
        "AuthorizationPolicy" | "PeerAuthentication" => "security.istio.io",
        _ => {
            c.err(
                "kind",
                format!("no istiod rules implemented for kind {kind:?}"),
            );
            return c.errs;
        }
    };
    if group != expected_group {
        c.err(
            "apiVersion",
            format!("{kind} belongs to {expected_group}, got {api_version:?}"),
        );
    }

    let empty = Value::Object(Map::new());
    let meta = obj.get("metadata").unwrap_or(&empty);
    let spec = obj.get("spec").filter(|s| !s.is_null()).unwrap_or(&empty);
    check_metadata(&mut c, kind, meta, spec);

    match kind {
        "ServiceEntry" => service_entry(&mut c, spec),
        "Gateway" => gateway(&mut c, spec),
        "VirtualService" => virtual_service(&mut c, spec),
        "DestinationRule" => destination_rule(&mut c, spec),
        "AuthorizationPolicy" => authorization_policy(&mut c, spec),
        "PeerAuthentication" => peer_authentication(&mut c, spec),
        "Sidecar" => sidecar(&mut c, spec),
        _ => {}
    }
    c.errs
}

#[derive(Default)]
struct Ctx {
    errs: Vec<String>,
    /// The object's namespace (exportTo treats `.` and this name as the same entry).
    namespace: String,
}

impl Ctx {
    fn err(&mut self, path: &str, msg: impl Display) {
        self.errs.push(format!("{path}: {msg}"));
    }

    fn result(&mut self, path: &str, r: Result<(), String>) {
        if let Err(e) = r {
            self.err(path, e);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value access with protobuf defaults: istiod sees a missing field as "", 0, false or empty.

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn present(v: &Value, key: &str) -> bool {
    field(v, key).is_some()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn int_of(v: &Value) -> i128 {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().map(|f| f as i128))
            .unwrap_or(0),
        _ => 0,
    }
}

fn int(v: &Value, key: &str) -> i128 {
    v.get(key).map(int_of).unwrap_or(0)
}

fn boolean(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn entries<'a>(v: &'a Value, key: &str) -> Vec<(&'a str, &'a Value)> {
    v.get(key)
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, x)| (k.as_str(), x)).collect())
        .unwrap_or_default()
}

fn str_items<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    list(v, key).iter().filter_map(Value::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// names, hosts, addresses

/// Istio's `labels.IsDNS1123Label`: ≤ 63, alphanumerics and `-`, alphanumeric at both ends
/// (upper case accepted, unlike Kubernetes object names).
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// First label of a wildcard host: `*`, or a DNS label optionally prefixed by `*` or `*-`.
fn is_wildcard_label(s: &str) -> bool {
    if s.len() > 63 {
        return false;
    }
    if s == "*" {
        return true;
    }
    let rest = s
        .strip_prefix("*-")
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    is_dns_label(rest)
}

/// Every dot-label a DNS label, top-level label not all digits, a trailing dot allowed.
fn check_dns_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts.last().copied().unwrap_or("");
    if !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

fn dns_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    Ok(())
}

fn validate_fqdn(name: &str) -> Result<(), String> {
    dns_preconditions(name)?;
    check_dns_labels(name)
}

/// A domain whose first label may be a wildcard (`*`, `*.example.com`, `*foo.example.com`).
fn validate_wildcard_domain(name: &str) -> Result<(), String> {
    dns_preconditions(name)?;
    let (first, rest) = match name.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (name, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "domain name {name:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(r) => check_dns_labels(r),
        None => Ok(()),
    }
}

/// `*` only as a whole first label (`*.example.com`) or alone; `*foo.com`, `foo*` are partial.
fn check_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        Err(format!("partial wildcard {host:?} not allowed"))
    } else {
        Ok(())
    }
}

fn is_ip(s: &str) -> bool {
    // Go's netip also accepts an IPv6 zone (`fe80::1%eth0`).
    let addr = match s.split_once('%') {
        Some((a, zone)) if a.contains(':') && !zone.is_empty() => a,
        _ => s,
    };
    addr.parse::<IpAddr>().is_ok()
}

/// An IP address, or a CIDR block `addr/bits` with bits in range for the address family.
fn validate_ip_subnet(s: &str) -> Result<(), String> {
    if s.matches('/').count() == 1 {
        let (addr, bits) = s.split_once('/').unwrap_or((s, ""));
        let max = match addr.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => 32,
            Ok(IpAddr::V6(_)) => 128,
            Err(_) => return Err(format!("{s} is not a valid CIDR block")),
        };
        let digits_ok = !bits.is_empty()
            && bits.bytes().all(|b| b.is_ascii_digit())
            && (bits == "0" || !bits.starts_with('0'));
        match bits.parse::<u32>() {
            Ok(b) if digits_ok && b <= max => Ok(()),
            _ => Err(format!("{s} is not a valid CIDR block")),
        }
    } else if is_ip(s) {
        Ok(())
    } else {
        Err(format!("{s} is not a valid IP"))
    }
}

fn check_port(c: &mut Ctx, path: &str, port: i128) {
    if !(1..=65535).contains(&port) {
        c.err(
            path,
            format!("port number {port} must be in the range 1..65535"),
        );
    }
}

/// Istio's `protocol.Parse` list (case-insensitive).
const PROTOCOLS: &[&str] = &[
    "http",
    "https",
    "http2",
    "grpc",
    "grpc-web",
    "http_proxy",
    "tcp",
    "tls",
    "udp",
    "mongo",
    "redis",
    "mysql",
];

fn protocol_known(p: &str) -> bool {
    PROTOCOLS.contains(&p.to_ascii_lowercase().as_str())
}

fn protocol_is_http(p: &str) -> bool {
    matches!(
        p.to_ascii_lowercase().as_str(),
        "http" | "http2" | "http_proxy" | "grpc" | "grpc-web"
    )
}

fn protocol_is_tls(p: &str) -> bool {
    matches!(p.to_ascii_lowercase().as_str(), "https" | "tls")
}

/// Empty protocol = sniffing, allowed on ServiceEntry and Sidecar ports.
fn check_protocol_or_empty(c: &mut Ctx, path: &str, p: &str) {
    if !p.is_empty() && !protocol_known(p) {
        c.err(
            path,
            format!(
                "unsupported protocol {p:?} (known: HTTP, HTTPS, HTTP2, GRPC, GRPC-Web, \
                 HTTP_PROXY, TCP, TLS, UDP, Mongo, Redis, MySQL)"
            ),
        );
    }
}

/// `labels.Instance.Validate`: Kubernetes label keys and values.
fn check_labels(c: &mut Ctx, path: &str, labels: &[(&str, &Value)]) {
    for (k, v) in labels {
        if let Err(e) = check_qualified_name(k) {
            c.err(path, format!("invalid label key {k:?}: {e}"));
        }
        if let Err(e) = check_label_value(v.as_str().unwrap_or("")) {
            c.err(&format!("{path}[{k}]"), format!("invalid label value: {e}"));
        }
    }
}

/// Selector labels (`workloadSelector.labels`, `selector.matchLabels`): no empty key, no `*`.
fn check_selector_labels(c: &mut Ctx, path: &str, labels: &[(&str, &Value)]) {
    for (k, v) in labels {
        let value = v.as_str().unwrap_or("");
        if k.is_empty() {
            c.err(
                path,
                format!("empty key is not supported in selector: \"={value}\""),
            );
        }
        if k.contains('*') || value.contains('*') {
            c.err(
                path,
                format!("wildcard is not supported in selector: \"{k}={value}\""),
            );
        }
    }
}

fn check_unix_address(c: &mut Ctx, path: &str, addr: &str) {
    if addr.is_empty() {
        c.err(path, "unix address must not be empty");
    } else if !addr.starts_with('@') && (!addr.starts_with('/') || addr.ends_with('/')) {
        c.err(path, format!("{addr} is not an absolute path to a file"));
    }
}

// ---------------------------------------------------------------------------------------------
// metadata, exportTo

fn check_metadata(c: &mut Ctx, kind: &str, meta: &Value, spec: &Value) {
    let name = text(meta, "name");
    if name.is_empty() {
        c.err("metadata.name", "Required value");
    } else {
        if !is_dns1123_subdomain(name) {
            c.err(
                "metadata.name",
                format!("{name:?} is not a lowercase DNS-1123 subdomain"),
            );
        }
        // Generator policy: every generated name is a ≤ 63-char DNS name, so it can also be
        // used as a label value or a Gateway/subset/port name.
        if name.len() > 63 {
            c.err(
                "metadata.name",
                format!("{name:?} is longer than 63 characters"),
            );
        }
        if kind == "Gateway" && !is_dns_label(name) {
            c.err(
                "metadata.name",
                format!("invalid gateway name: {name:?} (must be a DNS-1123 label, no dots)"),
            );
        }
    }
    let ns = text(meta, "namespace");
    if ns.is_empty() {
        c.err("metadata.namespace", "Required value");
    } else if !is_dns_label(ns) {
        c.err(
            "metadata.namespace",
            format!("{ns:?} is not a DNS-1123 label"),
        );
    }
    c.namespace = ns.to_string();

    for (key, value) in entries(meta, "annotations") {
        let path = format!("metadata.annotations[{key}]");
        if key == "istio.io/dry-run" {
            if kind != "AuthorizationPolicy" {
                c.err(
                    &path,
                    format!("{kind} has unsupported annotation istio.io/dry-run"),
                );
                continue;
            }
            let action = field(spec, "action")
                .and_then(Value::as_str)
                .unwrap_or("ALLOW");
            if !matches!(action, "ALLOW" | "DENY") {
                c.err(
                    &path,
                    format!("istio.io/dry-run only supports action ALLOW/DENY, found {action}"),
                );
            }
            // Generator policy: only the canonical spellings (Go's ParseBool also takes "1", "T").
            if !matches!(value.as_str(), Some("true" | "false")) {
                c.err(&path, format!("must be \"true\" or \"false\", got {value}"));
            }
        } else if key.starts_with("internal.istio.io/") {
            // istiod rejects its internal annotations (always-reject, parent references) on
            // user objects; a generator has no reason to emit any of that reserved prefix.
            c.err(
                &path,
                "internal.istio.io annotations may not be set by users",
            );
        }
    }
}

fn check_export_to(c: &mut Ctx, spec: &Value, is_service_entry: bool, dr_with_selector: bool) {
    let items = list(spec, "exportTo");
    if items.is_empty() {
        return;
    }
    let ns = c.namespace.clone();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.exportTo[{i}]");
        let e = item.as_str().unwrap_or("");
        // `.` is the object's own namespace (when it is known; a missing one is reported above).
        let key = if e == "." && !ns.is_empty() {
            ns.as_str()
        } else {
            e
        };
        if seen.contains(key) {
            if key != e {
                c.err(
                    &path,
                    format!("duplicate entries in exportTo: . and current namespace {ns}"),
                );
            } else {
                c.err(
                    &path,
                    format!("duplicate entries in exportTo for entry {e}"),
                );
            }
        } else if (is_service_entry && e == "~") || key == "*" || key == "." || is_dns_label(key) {
            // `~` (visible to no one but the service's own proxies) exists only for ServiceEntry.
            seen.insert(key.to_string());
        } else if key == "~" {
            c.err(
                &path,
                "exportTo ~ (none) is not allowed for Istio configuration objects",
            );
        } else {
            c.err(
                &path,
                format!("{e:?}: only ., *, or a valid DNS 1123 label is allowed as exportTo entry"),
            );
        }
    }
    if dr_with_selector && !seen.is_empty() {
        if !seen.contains(ns.as_str()) {
            c.err(
                "spec.exportTo",
                "destination rule with workload selector cannot have exportTo beyond current namespace",
            );
        } else if seen.len() > 1 {
            c.err(
                "spec.exportTo",
                "destination rule with workload selector cannot have multiple entries in exportTo",
            );
        }
    }
    if seen.contains("*") && items.len() > 1 {
        c.err(
            "spec.exportTo",
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if seen.contains("~") && items.len() > 1 {
        c.err(
            "spec.exportTo",
            "cannot export service entry to no one (~) and someone",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ServiceEntry

fn service_entry(c: &mut Ctx, spec: &Value) {
    let selector = field(spec, "workloadSelector");
    if let Some(sel) = selector {
        check_selector_labels(c, "spec.workloadSelector.labels", &entries(sel, "labels"));
    }
    let endpoints = list(spec, "endpoints");
    if selector.is_some() && present(spec, "endpoints") {
        c.err(
            "spec",
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        );
    }

    let hosts = str_items(spec, "hosts");
    if hosts.is_empty() {
        c.err("spec.hosts", "service entry must have at least one host");
    }
    for (i, h) in hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        if *h == "*" {
            c.err(
                &path,
                "invalid host * (a ServiceEntry cannot use the full wildcard)",
            );
        } else {
            // A partial wildcard (`*foo.com`) is only a warning for ServiceEntry hosts.
            c.result(&path, validate_wildcard_domain(h));
        }
    }

    let mut cidr = false;
    for (i, a) in list(spec, "addresses").iter().enumerate() {
        let a = a.as_str().unwrap_or("");
        cidr |= a.contains('/');
        c.result(&format!("spec.addresses[{i}]"), validate_ip_subnet(a));
    }
    let resolution = text(spec, "resolution");
    let resolution = if resolution.is_empty() {
        "NONE"
    } else {
        resolution
    };
    if cidr && !matches!(resolution, "NONE" | "STATIC") {
        c.err(
            "spec.addresses",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }

    let mut names = HashSet::new();
    let mut numbers = HashSet::new();
    for (i, p) in list(spec, "ports").iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if !p.is_object() {
            c.err(&path, "service entry port may not be null");
            continue;
        }
        let name = text(p, "name");
        let number = int(p, "number");
        if !names.insert(name) {
            c.err(
                &format!("{path}.name"),
                format!("service entry port name {name:?} already defined"),
            );
        }
        if !numbers.insert(number) {
            c.err(
                &format!("{path}.number"),
                format!("service entry port {number} already defined"),
            );
        }
        if present(p, "targetPort") && int(p, "targetPort") != 0 {
            check_port(c, &format!("{path}.targetPort"), int(p, "targetPort"));
        }
        if !is_dns_label(name) {
            c.err(
                &format!("{path}.name"),
                format!("invalid port name: {name:?}"),
            );
        }
        check_protocol_or_empty(c, &format!("{path}.protocol"), text(p, "protocol"));
        check_port(c, &format!("{path}.number"), number);
    }

    match resolution {
        "NONE" => {
            if !endpoints.is_empty() {
                c.err(
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type none",
                );
            }
        }
        "STATIC" => {
            for (i, ep) in endpoints.iter().enumerate() {
                static_endpoint(c, &format!("spec.endpoints[{i}]"), ep, &names);
            }
        }
        "DNS" | "DNS_ROUND_ROBIN" => {
            if endpoints.is_empty() {
                for (i, h) in hosts.iter().enumerate() {
                    if validate_fqdn(h).is_err() {
                        c.err(
                            &format!("spec.hosts[{i}]"),
                            format!(
                                "hosts must be FQDN if no endpoints are provided for resolution \
                                 mode {resolution} (got {h:?})"
                            ),
                        );
                    }
                }
            }
            if resolution == "DNS_ROUND_ROBIN" && endpoints.len() > 1 {
                c.err(
                    "spec.endpoints",
                    "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
                );
            }
            for (i, ep) in endpoints.iter().enumerate() {
                let path = format!("spec.endpoints[{i}]");
                if !ep.is_object() {
                    c.err(&path, "endpoint cannot be nil");
                    continue;
                }
                let addr = text(ep, "address");
                if !is_ip(addr) && validate_fqdn(addr).is_err() {
                    c.err(
                        &format!("{path}.address"),
                        format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
                    );
                }
                check_labels(c, &format!("{path}.labels"), &entries(ep, "labels"));
                endpoint_ports(c, &path, ep, &names);
            }
        }
        other => c.err(
            "spec.resolution",
            format!("unsupported resolution type {other}"),
        ),
    }

    // Several hosts can only be told apart by Host header (HTTP) or SNI (TLS).
    if resolution != "NONE" && hosts.len() > 1 {
        for (i, p) in list(spec, "ports").iter().enumerate() {
            let proto = text(p, "protocol");
            if !protocol_is_http(proto) && !protocol_is_tls(proto) {
                c.err(
                    &format!("spec.ports[{i}].protocol"),
                    format!(
                        "multiple hosts provided with non-HTTP, non-TLS ports (protocol {proto:?}, \
                         resolution {resolution})"
                    ),
                );
                break;
            }
        }
    }
    check_export_to(c, spec, true, false);
}

fn endpoint_ports(c: &mut Ctx, path: &str, ep: &Value, service_ports: &HashSet<&str>) {
    for (name, port) in entries(ep, "ports") {
        let p = format!("{path}.ports[{name}]");
        if !service_ports.contains(name) {
            c.err(
                &p,
                format!("endpoint port {name:?} is not defined by the service entry"),
            );
        }
        if !is_dns_label(name) {
            c.err(&p, format!("invalid port name: {name:?}"));
        }
        check_port(c, &p, int_of(port));
    }
}

/// STATIC endpoints are validated like WorkloadEntries whose address must be an IP (or unix://).
fn static_endpoint(c: &mut Ctx, path: &str, ep: &Value, service_ports: &HashSet<&str>) {
    if !ep.is_object() {
        c.err(path, "endpoint cannot be nil");
        return;
    }
    let addr = text(ep, "address");
    if addr.is_empty() {
        if text(ep, "network").is_empty() {
            c.err(&format!("{path}.address"), "address is required");
        }
        return;
    }
    let unix = addr.strip_prefix("unix://");
    if let Some(socket) = unix {
        check_unix_address(c, &format!("{path}.address"), socket);
        if !entries(ep, "ports").is_empty() {
            c.err(
                &format!("{path}.ports"),
                format!("unix endpoint {addr} must not include ports"),
            );
        }
        if service_ports.len() != 1 {
            c.err(path, "exactly 1 service port required for unix endpoints");
        }
    } else if !is_ip(addr) {
        c.err(
            &format!("{path}.address"),
            format!("endpoint address {addr:?} is not a valid IP address"),
        );
    }
    endpoint_ports(c, path, ep, service_ports);
    check_labels(c, &format!("{path}.labels"), &entries(ep, "labels"));
}

// ---------------------------------------------------------------------------------------------
// Gateway

fn gateway(c: &mut Ctx, spec: &Value) {
    let servers = list(spec, "servers");
    if servers.is_empty() {
        c.err("spec.servers", "gateway must have at least one server");
    }
    let mut port_names = HashSet::new();
    for (i, server) in servers.iter().enumerate() {
        let path = format!("spec.servers[{i}]");
        if !server.is_object() {
            c.err(&path, "server may not be null");
            continue;
        }
        gateway_server(c, &path, server);
        if let Some(port) = field(server, "port") {
            let name = text(port, "name");
            if !port_names.insert(name) {
                c.err(
                    &format!("{path}.port.name"),
                    format!("port names in servers must be unique: duplicate name {name}"),
                );
            }
        }
    }
}

fn gateway_server(c: &mut Ctx, path: &str, server: &Value) {
    let hosts = str_items(server, "hosts");
    if hosts.is_empty() {
        c.err(
            &format!("{path}.hosts"),
            "server config must contain at least one host",
        );
    }
    for (i, h) in hosts.iter().enumerate() {
        check_ns_slash_host(c, &format!("{path}.hosts[{i}]"), h, true);
    }

    let bind = text(server, "bind");
    let port = field(server, "port");
    let mut port_ok = false;
    match port {
        None => c.err(&format!("{path}.port"), "port is required"),
        Some(port) => {
            let before = c.errs.len();
            let protocol = text(port, "protocol");
            if !protocol_known(protocol) {
                c.err(
                    &format!("{path}.port.protocol"),
                    format!("invalid protocol {protocol:?} for a gateway server"),
                );
            }
            let number = int(port, "number");
            if number > 0 || !bind.starts_with("unix://") {
                check_port(c, &format!("{path}.port.number"), number);
            }
            if int(port, "targetPort") > 0 {
                c.err(
                    &format!("{path}.port.targetPort"),
                    "targetPort has no impact on Gateways",
                );
            }
            if text(port, "name").is_empty() {
                c.err(&format!("{path}.port.name"), "port name must be set");
            }
            port_ok = c.errs.len() == before;
        }
    }

    if let Some(socket) = bind.strip_prefix("unix://") {
        check_unix_address(c, &format!("{path}.bind"), socket);
        if port.is_some_and(|p| int(p, "number") != 0) {
            c.err(
                &format!("{path}.port.number"),
                "port number must be 0 for unix domain socket",
            );
        }
    } else if !bind.is_empty() && !is_ip(bind) {
        c.err(&format!("{path}.bind"), format!("{bind} is not a valid IP"));
    }

    let tls = field(server, "tls");
    if let Some(tls) = tls {
        server_tls(c, &format!("{path}.tls"), tls);
    }
    if let (true, Some(port)) = (port_ok, port) {
        let protocol = text(port, "protocol");
        if protocol_is_tls(protocol) && tls.is_none() {
            c.err(
                &format!("{path}.tls"),
                "server must have TLS settings for HTTPS/TLS protocols",
            );
        } else if let (false, Some(tls)) = (protocol_is_tls(protocol), tls) {
            if protocol_is_http(protocol) {
                // Only `httpsRedirect` (tls left in passthrough mode, no certificates) is allowed.
                let mode = text(tls, "mode");
                let passthrough = matches!(mode, "" | "PASSTHROUGH" | "AUTO_PASSTHROUGH");
                let certs = ["caCertificates", "privateKey", "serverCertificate"]
                    .iter()
                    .any(|k| !text(tls, k).is_empty());
                if !passthrough || certs {
                    c.err(
                        &format!("{path}.tls"),
                        "server cannot have TLS settings for plain text HTTP ports",
                    );
                }
            } else {
                c.err(
                    &format!("{path}.tls"),
                    "server cannot have TLS settings for non HTTPS/TLS ports",
                );
            }
        }
    }
}

fn server_tls(c: &mut Ctx, path: &str, tls: &Value) {
    let mode = text(tls, "mode");
    let mode = if mode.is_empty() { "PASSTHROUGH" } else { mode };
    let has = |k: &str| !text(tls, k).is_empty();
    let has_list = |k: &str| !list(tls, k).is_empty();
    if mode == "ISTIO_MUTUAL" {
        for (k, what) in [
            ("serverCertificate", "server certificate"),
            ("privateKey", "private key"),
            ("caCertificates", "CA bundle"),
            ("credentialName", "credentialName"),
        ] {
            if has(k) {
                c.err(
                    &format!("{path}.{k}"),
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        for k in ["tlsCertificates", "credentialNames"] {
            if has_list(k) {
                c.err(
                    &format!("{path}.{k}"),
                    format!("ISTIO_MUTUAL TLS cannot have associated {k}"),
                );
            }
        }
        return;
    }
    let sources = [
        has("serverCertificate") && has("privateKey"),
        has("credentialName"),
        has_list("credentialNames"),
        has_list("tlsCertificates"),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources > 1 {
        c.err(
            path,
            "only one of credentialName, credentialNames, serverCertificate/privateKey, \
             tlsCertificates should be specified",
        );
    }
    let terminating = matches!(mode, "SIMPLE" | "MUTUAL" | "OPTIONAL_MUTUAL");
    if terminating && (has("credentialName") || has_list("credentialNames")) {
        // Certificates come from the credential (SDS); nothing else is required.
        return;
    }
    if terminating {
        let prefix = if mode == "SIMPLE" {
            "SIMPLE TLS"
        } else {
            "MUTUAL TLS"
        };
        if mode != "SIMPLE" && !has("caCertificates") {
            c.err(
                &format!("{path}.caCertificates"),
                format!("{prefix} requires a client CA bundle"),
            );
        }
        let certs = list(tls, "tlsCertificates");
        let pairs: Vec<(String, &Value)> = if certs.is_empty() {
            vec![(path.to_string(), tls)]
        } else {
            certs
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("{path}.tlsCertificates[{i}]"), t))
                .collect()
        };
        for (p, cert) in pairs {
            if text(cert, "serverCertificate").is_empty() {
                c.err(&p, format!("{prefix} requires a server certificate"));
            }
            if text(cert, "privateKey").is_empty() {
                c.err(&p, format!("{prefix} requires a private key"));
            }
        }
    }
    if has("caCrl") {
        if has("credentialName") {
            c.err(
                &format!("{path}.caCrl"),
                "CRL is not supported with credentialName",
            );
        }
        if mode == "SIMPLE" {
            c.err(
                &format!("{path}.caCrl"),
                "CRL is not supported with SIMPLE TLS",
            );
        }
    }
}

/// Gateway server hosts and Sidecar egress hosts: `[ns/]dnsName`.
fn check_ns_slash_host(c: &mut Ctx, path: &str, host: &str, is_gateway: bool) {
    let Some((ns, dns)) = host.split_once('/') else {
        if is_gateway {
            check_host_part(c, path, host, true);
        } else {
            c.err(
                path,
                format!("host {host:?} must be of form namespace/dnsName"),
            );
        }
        return;
    };
    if ns.is_empty() || dns.is_empty() {
        c.err(
            path,
            "config namespace and dnsName in host entry cannot be empty",
        );
    }
    let ns_ok = matches!(ns, "*" | ".") || (!is_gateway && ns == "~") || is_dns_label(ns);
    if !ns_ok {
        c.err(
            path,
            format!("invalid namespace value {ns:?} in host {host:?}"),
        );
    }
    check_host_part(c, path, dns, is_gateway);
}

fn check_host_part(c: &mut Ctx, path: &str, host: &str, is_gateway: bool) {
    if host != "*" && !host.contains('.') {
        c.err(
            path,
            format!("short names (non FQDN) are not allowed: {host:?}"),
        );
    }
    if let Err(e) = validate_wildcard_domain(host) {
        // Gateways also accept an IP address as host.
        if !(is_gateway && is_ip(host)) {
            c.err(path, e);
        }
    }
    c.result(path, check_partial_wildcard(host));
}

// ---------------------------------------------------------------------------------------------
// VirtualService

/// Istio `host.Name.Matches`: the two (possibly wildcard) hosts share at least one name.
fn hosts_match(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Istio `host.Name.SubsetOf`: every name `a` covers is covered by `b`.
fn host_subset_of(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb),
        (Some(_), None) => false,
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

fn virtual_service(c: &mut Ctx, spec: &Value) {
    let hosts = str_items(spec, "hosts");
    let gateways = str_items(spec, "gateways");
    let delegate = hosts.is_empty();
    if delegate {
        for (k, what) in [
            ("gateways", "gateways"),
            ("tls", "tls route"),
            ("tcp", "tcp route"),
        ] {
            if !list(spec, k).is_empty() {
                c.err(
                    &format!("spec.{k}"),
                    format!("delegate virtual service (no hosts) must have no {what} specified"),
                );
            }
        }
    }
    check_gateway_names(c, "spec.gateways", &gateways);
    let applies_to_gateway = !gateways.is_empty() && !gateways.contains(&"mesh");
    let applies_to_mesh = !applies_to_gateway;
    let sni_vs = list(spec, "tls").iter().any(|t| {
        list(t, "match")
            .iter()
            .any(|m| !list(m, "sniHosts").is_empty())
    });

    let mut all_valid = true;
    for (i, h) in hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        // Gateway-bound TLS VSs may use Istio's auto-generated `outbound_.<port>_...` SNI names.
        let generated_sni = applies_to_gateway
            && sni_vs
            && h.split_once('.').is_some_and(|(first, rest)| {
                first == "outbound_" && rest.starts_with(|ch: char| ('0'..='8').contains(&ch))
            });
        match validate_wildcard_domain(h) {
            Err(_) if generated_sni || is_ip(h) => {}
            Err(e) => {
                c.err(&path, e);
                all_valid = false;
            }
            Ok(()) if applies_to_mesh && *h == "*" => {
                c.err(
                    &path,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_valid = false;
            }
            Ok(()) => {}
        }
    }
    if all_valid {
        for i in 0..hosts.len() {
            for j in i + 1..hosts.len() {
                if hosts_match(hosts[i], hosts[j]) {
                    c.err(
                        &format!("spec.hosts[{j}]"),
                        format!(
                            "duplicate hosts in virtual service: {} & {}",
                            hosts[i], hosts[j]
                        ),
                    );
                }
            }
        }
    }

    let http = list(spec, "http");
    let tcp = list(spec, "tcp");
    let tls = list(spec, "tls");
    if http.is_empty() && tcp.is_empty() && tls.is_empty() {
        c.err(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    for (i, r) in http.iter().enumerate() {
        http_route(c, &format!("spec.http[{i}]"), r, delegate);
    }
    for (i, r) in tls.iter().enumerate() {
        let path = format!("spec.tls[{i}]");
        if !r.is_object() {
            c.err(&path, "tls route may not be null");
            continue;
        }
        let matches = list(r, "match");
        if matches.is_empty() {
            c.err(
                &format!("{path}.match"),
                "TLS route must have at least one match condition",
            );
        }
        for (j, m) in matches.iter().enumerate() {
            let mpath = format!("{path}.match[{j}]");
            if !m.is_object() {
                c.err(&mpath, "TLS match may not be null");
                continue;
            }
            let snis = str_items(m, "sniHosts");
            if snis.is_empty() {
                c.err(
                    &format!("{mpath}.sniHosts"),
                    "TLS match must have at least one SNI host",
                );
            }
            for (k, sni) in snis.iter().enumerate() {
                sni_host(c, &format!("{mpath}.sniHosts[{k}]"), sni, &hosts);
            }
            l4_match(c, &mpath, m);
        }
        if list(r, "route").is_empty() {
            c.err(&format!("{path}.route"), "TLS route is required");
        }
        route_destinations(c, &path, r);
    }
    for (i, r) in tcp.iter().enumerate() {
        let path = format!("spec.tcp[{i}]");
        if !r.is_object() {
            c.err(&path, "tcp route may not be null");
            continue;
        }
        for (j, m) in list(r, "match").iter().enumerate() {
            let mpath = format!("{path}.match[{j}]");
            if m.is_object() {
                l4_match(c, &mpath, m);
            } else {
                c.err(&mpath, "tcp match may not be nil");
            }
        }
        if list(r, "route").is_empty() {
            c.err(&format!("{path}.route"), "TCP route is required");
        }
        route_destinations(c, &path, r);
    }
    check_export_to(c, spec, false, false);
}

/// `gateways` entries: `mesh`, `<name>` (the VS's namespace) or `<ns>/<name>`, DNS-1123 labels.
/// Generator policy: istiod only warns about the legacy `<name>.<ns>` form; we never emit it.
fn check_gateway_names(c: &mut Ctx, path: &str, names: &[&str]) {
    for (i, g) in names.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match g.split_once('/') {
            None => {
                if !is_dns_label(g) {
                    c.err(
                        &p,
                        format!(
                            "gateway {g:?} must be mesh, <name> or <namespace>/<name> with \
                             DNS-1123 labels"
                        ),
                    );
                }
            }
            Some((ns, name)) => {
                if ns.is_empty() || name.is_empty() {
                    c.err(&p, "config namespace and gateway name cannot be empty");
                }
                if !is_dns_label(ns) {
                    c.err(&p, format!("invalid value for namespace: {ns:?}"));
                }
                if !is_dns_label(name) {
                    c.err(&p, format!("invalid value for gateway name: {name:?}"));
                }
            }
        }
    }
}

fn sni_host(c: &mut Ctx, path: &str, sni: &str, vs_hosts: &[&str]) {
    if let Err(e) = validate_wildcard_domain(sni) {
        // An IP address is only a warning (against the SNI spec).
        if !is_ip(sni) {
            c.err(path, e);
        }
        return;
    }
    if !vs_hosts.iter().any(|h| host_subset_of(sni, h)) {
        c.err(
            path,
            format!(
                "SNI host {sni:?} is not a compatible subset of any of the virtual service \
                 hosts: [{}]",
                vs_hosts.join(", ")
            ),
        );
    }
}

/// TLS and TCP match attributes.
fn l4_match(c: &mut Ctx, path: &str, m: &Value) {
    for (i, s) in list(m, "destinationSubnets").iter().enumerate() {
        c.result(
            &format!("{path}.destinationSubnets[{i}]"),
            validate_ip_subnet(s.as_str().unwrap_or("")),
        );
    }
    if int(m, "port") != 0 {
        check_port(c, &format!("{path}.port"), int(m, "port"));
    }
    check_labels(
        c,
        &format!("{path}.sourceLabels"),
        &entries(m, "sourceLabels"),
    );
    check_gateway_names(c, &format!("{path}.gateways"), &str_items(m, "gateways"));
}

fn http_route(c: &mut Ctx, path: &str, r: &Value, delegate_vs: bool) {
    if !r.is_object() {
        c.err(path, "http route may not be null");
        return;
    }
    let has_route = !list(r, "route").is_empty();
    let redirect = field(r, "redirect");
    let direct = field(r, "directResponse");
    if present(r, "delegate") && !delegate_vs {
        // A root route hands the request to the delegate VS and must not route itself.
        if redirect.is_some() {
            c.err(path, "root HTTP route must not specify redirect");
        }
        if present(r, "route") {
            c.err(path, "root HTTP route must not specify route");
        }
    } else {
        if delegate_vs && present(r, "delegate") {
            c.err(path, "delegate HTTP route cannot contain delegate");
        }
        let fault = present(r, "fault");
        let rewrite = present(r, "rewrite");
        if redirect.is_some() {
            if has_route {
                c.err(path, "HTTP route cannot contain both route and redirect");
            }
            if fault {
                c.err(path, "HTTP route cannot contain both fault and redirect");
            }
            if rewrite {
                c.err(
                    path,
                    "HTTP route rule cannot contain both rewrite and redirect",
                );
            }
            if direct.is_some() {
                c.err(
                    path,
                    "HTTP route rule cannot contain both direct_response and redirect",
                );
            }
        } else if direct.is_some() {
            if has_route {
                c.err(
                    path,
                    "HTTP route cannot contain both route and direct_response",
                );
            }
            if fault {
                c.err(
                    path,
                    "HTTP route cannot contain both fault and direct_response",
                );
            }
            if rewrite {
                c.err(
                    path,
                    "HTTP route rule cannot contain both rewrite and direct_response",
                );
            }
        } else if !has_route {
            c.err(path, "HTTP route, redirect or direct_response is required");
        }
    }
    if present(r, "mirror") && !list(r, "mirrors").is_empty() {
        c.err(path, "HTTP route cannot contain both mirror and mirrors");
    }

    for (i, m) in list(r, "match").iter().enumerate() {
        let mpath = format!("{path}.match[{i}]");
        if !m.is_object() {
            continue;
        }
        if int(m, "port") != 0 {
            check_port(c, &format!("{mpath}.port"), int(m, "port"));
        }
        check_labels(
            c,
            &format!("{mpath}.sourceLabels"),
            &entries(m, "sourceLabels"),
        );
        check_gateway_names(c, &format!("{mpath}.gateways"), &str_items(m, "gateways"));
        let source_ns = text(m, "sourceNamespace");
        if !source_ns.is_empty() && !is_dns_label(source_ns) {
            c.err(
                &format!("{mpath}.sourceNamespace"),
                format!("sourceNamespace match {source_ns} is invalid"),
            );
        }
    }

    if let Some(mirror) = field(r, "mirror") {
        destination(c, &format!("{path}.mirror"), mirror);
    }
    for (i, m) in list(r, "mirrors").iter().enumerate() {
        let mpath = format!("{path}.mirrors[{i}]");
        match field(m, "destination") {
            None => c.err(&mpath, "destination is required for mirrors"),
            Some(d) => destination(c, &format!("{mpath}.destination"), d),
        }
        if let Some(pct) = m
            .get("percentage")
            .and_then(|p| p.get("value"))
            .and_then(Value::as_f64)
            && !(0.0..=100.0).contains(&pct)
        {
            c.err(
                &format!("{mpath}.percentage"),
                format!("mirror percentage must be in 0..100 (it has {pct})"),
            );
        }
    }
    if let Some(rd) = redirect {
        let rpath = format!("{path}.redirect");
        let any = ["uri", "authority", "scheme"]
            .iter()
            .any(|k| !text(rd, k).is_empty())
            || present(rd, "port")
            || present(rd, "derivePort");
        if !any {
            c.err(
                &rpath,
                "redirect must specify URI, authority, scheme, or port",
            );
        }
        let code = int(rd, "redirectCode");
        if code != 0 && !(300..=399).contains(&code) {
            c.err(
                &format!("{rpath}.redirectCode"),
                format!("{code} is not a valid redirect code, must be 3xx"),
            );
        }
        let scheme = text(rd, "scheme");
        if !matches!(scheme, "" | "http" | "https") {
            c.err(
                &format!("{rpath}.scheme"),
                "invalid redirect scheme, must be \"http\" or \"https\"",
            );
        }
        if int(rd, "port") > 0 {
            check_port(c, &format!("{rpath}.port"), int(rd, "port"));
        }
    }
    if let Some(d) = direct {
        let status = int(d, "status");
        if !(200..=600).contains(&status) {
            c.err(
                &format!("{path}.directResponse.status"),
                format!("HTTP status {status} is not in range 200-599"),
            );
        }
    }
    if let Some(retries) = field(r, "retries") {
        let attempts = int(retries, "attempts");
        if attempts < 0 {
            c.err(
                &format!("{path}.retries.attempts"),
                "attempts cannot be negative",
            );
        }
        if attempts == 0
            && (present(retries, "perTryTimeout")
                || !text(retries, "retryOn").is_empty()
                || present(retries, "retryRemoteLocalities"))
        {
            c.err(
                &format!("{path}.retries"),
                "http retry policy configured when attempts are set to 0 (disabled)",
            );
        }
    }
    if let Some(rw) = field(r, "rewrite") {
        let uri = !text(rw, "uri").is_empty();
        let regex = field(rw, "uriRegexRewrite");
        if uri && regex.is_some() {
            c.err(
                &format!("{path}.rewrite"),
                "rewrite may only contain one of URI or UriRegexRewrite",
            );
        }
        if !uri && regex.is_none() && text(rw, "authority").is_empty() {
            c.err(
                &format!("{path}.rewrite"),
                "rewrite must specify at least one of URI, UriRegexRewrite, or authority",
            );
        }
        if let Some(rx) = regex
            && (text(rx, "match").is_empty() || text(rx, "rewrite").is_empty())
        {
            c.err(
                &format!("{path}.rewrite.uriRegexRewrite"),
                "UriRegexRewrite requires both Rewrite and Match fields to be specified",
            );
        }
    }
    route_destinations(c, path, r);
}

/// `route[]` of http/tls/tcp routes: each needs a valid destination; weights 0..100
/// (generator policy for the upper bound) and not all zero when there are several.
fn route_destinations(c: &mut Ctx, path: &str, r: &Value) {
    let routes = list(r, "route");
    let mut total: i128 = 0;
    for (i, rd) in routes.iter().enumerate() {
        let rpath = format!("{path}.route[{i}]");
        if !rd.is_object() {
            c.err(&rpath, "weight may not be nil");
            continue;
        }
        match field(rd, "destination") {
            None => c.err(&format!("{rpath}.destination"), "destination is required"),
            Some(d) => destination(c, &format!("{rpath}.destination"), d),
        }
        let weight = int(rd, "weight");
        if !(0..=100).contains(&weight) {
            c.err(
                &format!("{rpath}.weight"),
                format!("weight {weight} is not in range 0..100"),
            );
        }
        total += weight;
    }
    if routes.len() > 1 && total == 0 {
        c.err(&format!("{path}.route"), "total destination weight = 0");
    }
}

fn destination(c: &mut Ctx, path: &str, d: &Value) {
    let host = text(d, "host");
    if host == "*" {
        c.err(&format!("{path}.host"), "invalid destination host *");
    } else {
        c.result(&format!("{path}.host"), validate_wildcard_domain(host));
    }
    if present(d, "subset") {
        let subset = text(d, "subset");
        c.result(&format!("{path}.subset"), check_subset_name(subset));
    }
    if let Some(port) = field(d, "port") {
        check_port(c, &format!("{path}.port.number"), int(port, "number"));
    }
}

fn check_subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("subset name cannot be empty".to_string())
    } else if !is_dns_label(name) {
        Err(format!(
            "subset name is invalid: {name} (must be a DNS-1123 label)"
        ))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// DestinationRule

fn destination_rule(c: &mut Ctx, spec: &Value) {
    c.result("spec.host", validate_wildcard_domain(text(spec, "host")));
    if let Some(tp) = field(spec, "trafficPolicy") {
        traffic_policy(c, "spec.trafficPolicy", tp);
    }
    let mut names = HashSet::new();
    for (i, s) in list(spec, "subsets").iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if !s.is_object() {
            c.err(&path, "subset may not be null");
            continue;
        }
        let name = text(s, "name");
        if !names.insert(name) {
            c.err(
                &format!("{path}.name"),
                format!("duplicate subset names: {name}"),
            );
        }
        c.result(&format!("{path}.name"), check_subset_name(name));
        check_labels(c, &format!("{path}.labels"), &entries(s, "labels"));
        if let Some(tp) = field(s, "trafficPolicy") {
            traffic_policy(c, &format!("{path}.trafficPolicy"), tp);
        }
    }
    let selector = field(spec, "workloadSelector");
    if let Some(sel) = selector {
        check_selector_labels(
            c,
            "spec.workloadSelector.matchLabels",
            &entries(sel, "matchLabels"),
        );
    }
    check_export_to(c, spec, false, selector.is_some());
}

fn traffic_policy(c: &mut Ctx, path: &str, tp: &Value) {
    let set = |k: &str| match field(tp, k) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
        None => false,
    };
    let any = [
        "outlierDetection",
        "connectionPool",
        "loadBalancer",
        "tls",
        "portLevelSettings",
        "tunnel",
        "proxyProtocol",
    ]
    .iter()
    .any(|k| set(k));
    if !any {
        c.err(path, "traffic policy must have at least one field");
        return;
    }
    if set("tunnel") && set("proxyProtocol") {
        c.err(path, "tunnel and proxyProtocol must not be set together");
        return;
    }
    if let Some(cp) = field(tp, "connectionPool") {
        connection_pool(c, &format!("{path}.connectionPool"), cp);
    }
    if let Some(tls) = field(tp, "tls") {
        client_tls(c, &format!("{path}.tls"), tls);
    }
    for (i, pls) in list(tp, "portLevelSettings").iter().enumerate() {
        let ppath = format!("{path}.portLevelSettings[{i}]");
        if !pls.is_object() {
            c.err(&ppath, "traffic policy may not be null");
            continue;
        }
        match field(pls, "port") {
            None => c.err(
                &format!("{ppath}.port"),
                "portTrafficPolicy must have valid port",
            ),
            // Generator policy (EGRESS.md §4 "ports 1–65535 everywhere"); istiod only needs it set.
            Some(port) => check_port(c, &format!("{ppath}.port.number"), int(port, "number")),
        }
        let any = ["outlierDetection", "connectionPool", "loadBalancer", "tls"]
            .iter()
            .any(|k| present(pls, k));
        if !any {
            c.err(&ppath, "port traffic policy must have at least one field");
            continue;
        }
        if let Some(cp) = field(pls, "connectionPool") {
            connection_pool(c, &format!("{ppath}.connectionPool"), cp);
        }
        if let Some(tls) = field(pls, "tls") {
            client_tls(c, &format!("{ppath}.tls"), tls);
        }
    }
}

fn connection_pool(c: &mut Ctx, path: &str, cp: &Value) {
    if !present(cp, "http") && !present(cp, "tcp") {
        c.err(path, "connection pool must have at least one field");
    }
}

/// ClientTLSSettings of DestinationRule traffic policies.
fn client_tls(c: &mut Ctx, path: &str, tls: &Value) {
    let mode = text(tls, "mode");
    let has = |k: &str| !text(tls, k).is_empty();
    let sans = !list(tls, "subjectAltNames").is_empty();
    if boolean(tls, "insecureSkipVerify") {
        if mode == "SIMPLE" && (has("caCertificates") || has("credentialName") || sans) {
            c.err(
                path,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when \
                 InsecureSkipVerify is set true",
            );
        }
        if mode == "MUTUAL" && (has("caCertificates") || sans) {
            c.err(
                path,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    if matches!(mode, "SIMPLE" | "MUTUAL") && has("credentialName") {
        if has("clientCertificate") || has("caCertificates") || has("privateKey") || has("caCrl") {
            c.err(
                path,
                "cannot specify client certificates or CA certificate or CA CRL if credentialName is set",
            );
        }
        return;
    }
    if mode == "MUTUAL" {
        if !has("clientCertificate") {
            c.err(
                &format!("{path}.clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if !has("privateKey") {
            c.err(
                &format!("{path}.privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AuthorizationPolicy

const SOURCE_LISTS: &[&str] = &[
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "ipBlocks",
    "notIpBlocks",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
];

const OPERATION_LISTS: &[&str] = &[
    "hosts",
    "notHosts",
    "ports",
    "notPorts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
];

fn authorization_policy(c: &mut Ctx, spec: &Value) {
    let set = [
        present(spec, "selector"),
        present(spec, "targetRef"),
        !list(spec, "targetRefs").is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set > 1 {
        c.err(
            "spec",
            "only one of selector, targetRef or targetRefs can be set",
        );
    }
    if let Some(sel) = field(spec, "selector") {
        check_selector_labels(c, "spec.selector.matchLabels", &entries(sel, "matchLabels"));
    }
    if let Some(t) = field(spec, "targetRef") {
        target_ref(c, "spec.targetRef", t);
    }
    for (i, t) in list(spec, "targetRefs").iter().enumerate() {
        target_ref(c, &format!("spec.targetRefs[{i}]"), t);
    }

    let action = field(spec, "action")
        .and_then(Value::as_str)
        .unwrap_or("ALLOW");
    if !matches!(action, "ALLOW" | "DENY" | "AUDIT" | "CUSTOM") {
        c.err(
            "spec.action",
            format!("unsupported action {action:?} (ALLOW, DENY, AUDIT or CUSTOM)"),
        );
    }
    let rules_present = present(spec, "rules");
    if action == "CUSTOM" {
        if !rules_present {
            c.err(
                "spec.rules",
                "CUSTOM action without `rules` is meaningless as it will never be triggered, \
                 add an empty rule `{}` if you want it be triggered for every request",
            );
        } else if text(spec.get("provider").unwrap_or(&Value::Null), "name").is_empty() {
            c.err("spec.provider.name", "`provider.name` must not be empty");
        }
        for (i, rule) in list(spec, "rules").iter().enumerate() {
            for (j, from) in list(rule, "from").iter().enumerate() {
                let src = from.get("source").unwrap_or(&Value::Null);
                for k in [
                    "namespaces",
                    "notNamespaces",
                    "principals",
                    "notPrincipals",
                    "requestPrincipals",
                    "notRequestPrincipals",
                ] {
                    if !list(src, k).is_empty() {
                        c.err(
                            &format!("spec.rules[{i}].from[{j}].source.{k}"),
                            format!("{k} is currently not supported with CUSTOM action"),
                        );
                    }
                }
            }
        }
    }
    if present(spec, "provider") && action != "CUSTOM" {
        c.err(
            "spec.provider",
            format!("`provider` must not be with non CUSTOM action, found {action}"),
        );
    }
    if action == "DENY" && !rules_present {
        c.err(
            "spec.rules",
            "DENY action without `rules` is meaningless as it will never be triggered, add an \
             empty rule `{}` if you want it be triggered for every request",
        );
    }

    for (i, rule) in list(spec, "rules").iter().enumerate() {
        let rpath = format!("spec.rules[{i}]");
        if !rule.is_object() {
            c.err(&rpath, "`rule` must not be nil");
            continue;
        }
        if present(rule, "from") && list(rule, "from").is_empty() {
            c.err(&format!("{rpath}.from"), "`from` must not be empty");
        }
        for (j, from) in list(rule, "from").iter().enumerate() {
            let fpath = format!("{rpath}.from[{j}]");
            let Some(src) = field(from, "source") else {
                c.err(&format!("{fpath}.source"), "`from.source` must not be nil");
                continue;
            };
            let spath = format!("{fpath}.source");
            if SOURCE_LISTS.iter().all(|k| list(src, k).is_empty()) {
                c.err(&spath, "`from.source` must not be empty");
            }
            check_no_empty_values(c, &spath, src, SOURCE_LISTS);
            for k in [
                "ipBlocks",
                "notIpBlocks",
                "remoteIpBlocks",
                "notRemoteIpBlocks",
            ] {
                for (n, ip) in list(src, k).iter().enumerate() {
                    let ip = ip.as_str().unwrap_or("");
                    if !ip.is_empty() {
                        c.result(&format!("{spath}.{k}[{n}]"), validate_ip_subnet(ip));
                    }
                }
            }
            for k in ["principals", "notPrincipals"] {
                for (n, p) in list(src, k).iter().enumerate() {
                    let p = p.as_str().unwrap_or("");
                    if !p.is_empty() {
                        c.result(&format!("{spath}.{k}[{n}]"), check_principal(p));
                    }
                }
            }
        }
        if present(rule, "to") && list(rule, "to").is_empty() {
            c.err(&format!("{rpath}.to"), "`to` must not be empty");
        }
        for (j, to) in list(rule, "to").iter().enumerate() {
            let tpath = format!("{rpath}.to[{j}]");
            let Some(op) = field(to, "operation") else {
                c.err(
                    &format!("{tpath}.operation"),
                    "`to.operation` must not be nil",
                );
                continue;
            };
            let opath = format!("{tpath}.operation");
            if OPERATION_LISTS.iter().all(|k| list(op, k).is_empty()) {
                c.err(&opath, "`to.operation` must not be empty");
            }
            check_no_empty_values(c, &opath, op, OPERATION_LISTS);
            for k in ["ports", "notPorts"] {
                for (n, p) in list(op, k).iter().enumerate() {
                    c.result(
                        &format!("{opath}.{k}[{n}]"),
                        check_port_string(p.as_str().unwrap_or("")),
                    );
                }
            }
        }
        for (j, cond) in list(rule, "when").iter().enumerate() {
            let wpath = format!("{rpath}.when[{j}]");
            let key = text(cond, "key");
            if key.is_empty() {
                c.err(&format!("{wpath}.key"), "`key` must not be empty");
                continue;
            }
            let values = str_items(cond, "values");
            let not_values = str_items(cond, "notValues");
            if values.is_empty() && not_values.is_empty() {
                c.err(
                    &wpath,
                    format!("at least one of `values` or `notValues` must be set for key {key}"),
                );
                continue;
            }
            for (what, vals) in [("values", &values), ("notValues", &not_values)] {
                if let Err(e) = check_condition(key, vals) {
                    c.err(
                        &format!("{wpath}.{what}"),
                        format!("invalid value for key {key}: {e}"),
                    );
                }
            }
        }
    }
}

/// `security.CheckEmptyValues`: no `""` in any source/operation list.
fn check_no_empty_values(c: &mut Ctx, path: &str, v: &Value, keys: &[&str]) {
    for k in keys {
        for (n, item) in list(v, k).iter().enumerate() {
            if item.as_str().is_none_or(str::is_empty) {
                c.err(
                    &format!("{path}.{k}[{n}]"),
                    format!("empty value not allowed in {k}"),
                );
            }
        }
    }
}

/// Authorization ports are decimal strings 0..65535.
fn check_port_string(p: &str) -> Result<(), String> {
    match p.parse::<u32>() {
        Ok(n) if n <= 65535 && !p.starts_with('+') => Ok(()),
        _ => Err(format!("invalid port: {p:?}")),
    }
}

/// Generator policy, not istiod (which never validates principals and lets a malformed one
/// silently never match): `<trust-domain>/ns/<namespace>/sa/<service-account>`, no `spiffe://`
/// (Istio adds it), or a prefix/suffix/presence wildcard with `*` only at the start or end.
fn check_principal(p: &str) -> Result<(), String> {
    if p.starts_with("spiffe://") {
        return Err(format!(
            "principal {p:?} must not start with spiffe:// (Istio prepends it; this value never \
             matches)"
        ));
    }
    if p.starts_with('*') || p.ends_with('*') {
        let inner = p.strip_prefix('*').unwrap_or(p);
        let inner = inner.strip_suffix('*').unwrap_or(inner);
        if inner.contains('*') {
            return Err(format!(
                "principal {p:?}: `*` is only supported at the start or the end"
            ));
        }
        return Ok(());
    }
    if p.contains('*') {
        return Err(format!(
            "principal {p:?}: `*` is only supported at the start or the end"
        ));
    }
    let parts: Vec<&str> = p.split('/').collect();
    let well_formed = parts.len() == 5
        && parts[1] == "ns"
        && parts[3] == "sa"
        && check_trust_domain(parts[0])
        && is_dns_label(parts[2])
        && is_dns1123_subdomain(parts[4]);
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "principal {p:?} is not of the form <trust-domain>/ns/<namespace>/sa/<service-account>"
        ))
    }
}

/// Dot-separated DNS labels, a trailing dot allowed (`cluster.local`).
fn check_trust_domain(td: &str) -> bool {
    let td = td.strip_suffix('.').unwrap_or(td);
    !td.is_empty() && td.split('.').all(is_dns_label)
}

/// `security.ValidateAttribute`: the condition key must be a known attribute, and IP/port keys
/// need well-formed values.
fn check_condition(key: &str, values: &[&str]) -> Result<(), String> {
    let map_key = |prefix: &str| -> Result<(), String> {
        let inner = key
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('['))
            .and_then(|r| r.strip_suffix(']'));
        match inner {
            Some(name) if !name.is_empty() => Ok(()),
            _ => Err(format!("bad key ({key}): should have format a[b]")),
        }
    };
    match key {
        "source.ip" | "remote.ip" | "destination.ip" => {
            values.iter().try_for_each(|v| validate_ip_subnet(v))
        }
        "destination.port" => values.iter().try_for_each(|v| check_port_string(v)),
        "source.namespace"
        | "source.principal"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(()),
        _ if key.starts_with("request.headers") => map_key("request.headers"),
        _ if key.starts_with("request.auth.claims") => map_key("request.auth.claims"),
        _ if key.starts_with("experimental.envoy.filters.") => Ok(()),
        _ => Err(format!("unknown attribute: {key}")),
    }
}

fn target_ref(c: &mut Ctx, path: &str, t: &Value) {
    if text(t, "name").is_empty() {
        c.err(&format!("{path}.name"), "targetRef name must be set");
    }
    if !text(t, "namespace").is_empty() {
        c.err(
            &format!("{path}.namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
    let group = match text(t, "group") {
        "" => "core",
        g => g,
    };
    let kind = text(t, "kind");
    let allowed = matches!(
        (group, kind),
        ("core", "Service")
            | ("networking.istio.io", "ServiceEntry")
            | ("gateway.networking.k8s.io", "Gateway" | "GatewayClass")
    );
    if !allowed {
        c.err(
            path,
            format!(
                "targetRef must be to a Service, ServiceEntry or Gateway but was {}/{kind}",
                text(t, "group")
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PeerAuthentication

fn peer_authentication(c: &mut Ctx, spec: &Value) {
    let selector = field(spec, "selector");
    let labels = selector
        .map(|s| entries(s, "matchLabels"))
        .unwrap_or_default();
    let plm: BTreeMap<&str, &Value> = entries(spec, "portLevelMtls").into_iter().collect();
    if labels.is_empty() && !plm.is_empty() {
        c.err(
            "spec.portLevelMtls",
            "mesh/namespace peer authentication cannot have port level mTLS",
        );
    }
    if present(spec, "portLevelMtls") && plm.is_empty() {
        c.err(
            "spec.portLevelMtls",
            "port level mTLS, if defined, must have at least one element",
        );
    }
    for (port, mtls) in &plm {
        let path = format!("spec.portLevelMtls[{port}]");
        match port.parse::<i64>() {
            Ok(p) if (1..=65535).contains(&p) => {}
            _ => c.err(&path, "port must be in range 1..65535"),
        }
        check_mtls_mode(c, &format!("{path}.mode"), mtls);
    }
    if let Some(mtls) = field(spec, "mtls") {
        check_mtls_mode(c, "spec.mtls.mode", mtls);
    }
    check_selector_labels(c, "spec.selector.matchLabels", &labels);
}

fn check_mtls_mode(c: &mut Ctx, path: &str, mtls: &Value) {
    let mode = text(mtls, "mode");
    if !matches!(mode, "" | "UNSET" | "DISABLE" | "PERMISSIVE" | "STRICT") {
        c.err(
            path,
            format!("unsupported mTLS mode {mode:?} (UNSET, DISABLE, PERMISSIVE or STRICT)"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sidecar (the REGISTRY_ONLY part of the egress setup)

fn sidecar(c: &mut Ctx, spec: &Value) {
    if let Some(sel) = field(spec, "workloadSelector") {
        check_selector_labels(c, "spec.workloadSelector.labels", &entries(sel, "labels"));
    }
    let egress = list(spec, "egress");
    let ingress = list(spec, "ingress");
    if egress.is_empty()
        && ingress.is_empty()
        && !present(spec, "outboundTrafficPolicy")
        && !present(spec, "inboundConnectionPool")
    {
        c.err("spec", "sidecar: empty configuration provided");
        return;
    }
    let mut ports = HashSet::new();
    for (i, l) in ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        let Some(port) = field(l, "port") else {
            c.err(
                &format!("{path}.port"),
                "sidecar: port is required for ingress listeners",
            );
            continue;
        };
        sidecar_port(c, &format!("{path}.port"), port, text(l, "bind"));
        if !ports.insert(int(port, "number")) {
            c.err(
                &format!("{path}.port.number"),
                "sidecar: ports on IP bound listeners must be unique",
            );
        }
    }
    let mut ports = HashSet::new();
    let mut catch_all_seen = false;
    for (i, l) in egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        match field(l, "port") {
            None => {
                if catch_all_seen {
                    c.err(
                        &path,
                        "sidecar: egress can have only one listener with empty port",
                    );
                    continue;
                }
                if i == egress.len() - 1 {
                    catch_all_seen = true;
                } else {
                    c.err(
                        &path,
                        "sidecar: the egress listener with empty port should be the last listener",
                    );
                }
            }
            Some(port) => {
                let bind = text(l, "bind");
                sidecar_port(c, &format!("{path}.port"), port, bind);
                let number = int(port, "number");
                if number != 0 && !ports.insert(number) {
                    c.err(
                        &format!("{path}.port.number"),
                        "sidecar: ports on IP bound listeners must be unique",
                    );
                }
            }
        }
        let hosts = str_items(l, "hosts");
        if hosts.is_empty() {
            c.err(
                &format!("{path}.hosts"),
                "sidecar: egress listener must contain at least one host",
            );
        }
        for (j, h) in hosts.iter().enumerate() {
            check_ns_slash_host(c, &format!("{path}.hosts[{j}]"), h, false);
        }
    }
    if let Some(otp) = field(spec, "outboundTrafficPolicy")
        && let Some(proxy) = field(otp, "egressProxy")
    {
        if text(otp, "mode") != "ALLOW_ANY" {
            c.err(
                "spec.outboundTrafficPolicy.egressProxy",
                "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
            );
        } else {
            c.result(
                "spec.outboundTrafficPolicy.egressProxy.host",
                validate_fqdn(text(proxy, "host")),
            );
            match field(proxy, "port") {
                None => c.err(
                    "spec.outboundTrafficPolicy.egressProxy.port",
                    "sidecar: egress_proxy port must be non-nil",
                ),
                Some(p) => check_port(
                    c,
                    "spec.outboundTrafficPolicy.egressProxy.port.number",
                    int(p, "number"),
                ),
            }
        }
    }
}

fn sidecar_port(c: &mut Ctx, path: &str, port: &Value, bind: &str) {
    let name = text(port, "name");
    if !name.is_empty() && !is_dns_label(name) {
        c.err(
            &format!("{path}.name"),
            format!("invalid port name: {name:?}"),
        );
    }
    if int(port, "targetPort") > 0 {
        c.err(
            &format!("{path}.targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
    check_protocol_or_empty(c, &format!("{path}.protocol"), text(port, "protocol"));
    let number = int(port, "number");
    if number == 0 && bind.starts_with("unix://") {
        check_unix_address(c, path, bind.trim_start_matches("unix://"));
    } else {
        check_port(c, &format!("{path}.number"), number);
        if !bind.is_empty() && !is_ip(bind) {
            c.err(path, format!("bind {bind} is not a valid IP"));
        }
    }
}
