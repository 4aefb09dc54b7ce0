//! E1–E4: what the ExternalService is (host names or IP addresses).

use crate::api::list;
use crate::core::findings::Report;
use crate::core::rules::syntax::{is_external_host, is_fqdn, is_ip_or_cidr};
use crate::core::snapshot::key;

use super::Ctx;

/// E1: exactly one of `hosts` / `addresses` is non-empty.
pub(super) fn e1(c: &Ctx<'_>, report: &mut Report) {
    let hosts = list(&c.written.spec.hosts);
    let addresses = list(&c.written.spec.addresses);
    match (hosts.is_empty(), addresses.is_empty()) {
        (true, true) => report.error(
            "E1",
            "spec",
            "neither `hosts` nor `addresses` is set: exactly one of them must list the external \
             service's host names or IP addresses",
        ),
        (false, false) => report.error(
            "E1",
            "spec.addresses",
            "`hosts` and `addresses` are mutually exclusive: declare the external service by host \
             names or by IP addresses, not both",
        ),
        _ => {}
    }
}

/// E2: each host is an FQDN or `*.` + FQDN; `*` alone is not allowed.
pub(super) fn e2(c: &Ctx<'_>, report: &mut Report) {
    for (i, host) in list(&c.written.spec.hosts).iter().enumerate() {
        if is_external_host(host) {
            continue;
        }
        report.error("E2", format!("spec.hosts[{i}]"), bad_host_message(host));
    }
}

/// Says what is wrong with a host that is not an FQDN or a wildcard-prefixed FQDN.
fn bad_host_message(host: &str) -> String {
    if host.is_empty() {
        "host is empty: give a fully-qualified domain name such as `api.example.com`".to_string()
    } else if host == "*" {
        "host `*` (every host) is not allowed: name the domain, e.g. `*.example.com`".to_string()
    } else if is_ip_or_cidr(host) {
        format!("host {host:?} is an IP address: list IP addresses and CIDRs under `addresses`")
    } else if !host.is_ascii() {
        format!(
            "host {host:?} holds characters other than ASCII letters, digits, `-` and `.`: write \
             an internationalized domain name in its ASCII (IDNA, `xn--`) form"
        )
    } else if host.contains('*') {
        format!(
            "host {host:?}: a wildcard is allowed only as the whole first label followed by a \
             fully-qualified domain name, e.g. `*.example.com`"
        )
    } else {
        format!(
            "host {host:?} is not a fully-qualified domain name (at least two dot-separated \
             DNS-1123 labels of letters, digits and `-`, e.g. `api.example.com`)"
        )
    }
}

/// E3: each address is an IPv4/IPv6 address or a CIDR.
pub(super) fn e3(c: &Ctx<'_>, report: &mut Report) {
    for (i, address) in list(&c.written.spec.addresses).iter().enumerate() {
        if is_ip_or_cidr(address) {
            continue;
        }
        let hint = if is_fqdn(address) {
            ": list host names under `hosts`"
        } else {
            " (e.g. `192.0.2.10`, `10.0.0.0/8` or `2001:db8::/32`)"
        };
        report.error(
            "E3",
            format!("spec.addresses[{i}]"),
            format!("address {address:?} is not an IPv4/IPv6 address or CIDR{hint}"),
        );
    }
}

/// E4 (DESIGN §9): addresses are unique among the ExternalServices of the namespace (the
/// workspace approximated by the namespace; another namespace may reuse an address).
pub(super) fn e4(c: &Ctx<'_>, report: &mut Report) {
    let own = key(c.namespace(), c.name());
    for (i, address) in list(&c.defaulted.spec.addresses).iter().enumerate() {
        // E3 already rejects a malformed address; a clash on it would only add noise.
        if !is_ip_or_cidr(address) {
            continue;
        }
        let others = c
            .snap
            .external_services_with_address(c.namespace(), address, &own);
        if others.is_empty() {
            continue;
        }
        let names: Vec<String> = others
            .iter()
            .map(|(ns, name)| format!("ExternalService {ns}/{name}"))
            .collect();
        report.error(
            "E4",
            format!("spec.addresses[{i}]"),
            format!(
                "address {address} is already declared by {}: addresses must be unique among the \
                 ExternalServices of namespace {}",
                names.join(", "),
                c.namespace()
            ),
        );
    }
}
