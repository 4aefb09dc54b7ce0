//! E5–E8: the ports (E9, the targetPort default, lives in defaults.rs).

use std::collections::HashMap;

use crate::api::{list, text};
use crate::core::findings::Report;
use crate::core::rules::syntax::is_port;

use super::Ctx;

/// The protocols an ExternalService port may declare (the proto's "MUST be one of").
pub(super) const PROTOCOLS: [&str; 7] = ["HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"];

/// Is this (defaulted, so upper-cased) protocol one of [`PROTOCOLS`]?
pub(super) fn is_known_protocol(protocol: &str) -> bool {
    PROTOCOLS.contains(&protocol)
}

/// E5: `ports` is non-empty and every `number` is 1..65535 (0 is out of range, DESIGN §9).
pub(super) fn e5(c: &Ctx<'_>, report: &mut Report) {
    if list(&c.written.spec.ports).is_empty() {
        report.error(
            "E5",
            "spec.ports",
            "no ports: an ExternalService needs at least one port (number and protocol)",
        );
        return;
    }
    for p in c.ports() {
        let message = match p.defaulted.number {
            None => "port number is missing: give a number in 1..65535".to_string(),
            Some(n) if !is_port(n) => format!("port number {n} is out of range 1..65535"),
            Some(_) => continue,
        };
        report.error("E5", p.field("number"), message);
    }
}

/// E6 (DESIGN §9): the protocol, compared upper-cased (the defaulted form), is known. An absent
/// or empty protocol is left to Istio's protocol sniffing, as on a ServiceEntry port.
pub(super) fn e6(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        let protocol = text(&p.defaulted.protocol);
        if protocol.is_empty() || is_known_protocol(protocol) {
            continue;
        }
        let as_written = p.written.map_or(protocol, |w| text(&w.protocol));
        report.error(
            "E6",
            p.field("protocol"),
            format!(
                "protocol {as_written:?} is not one of {}",
                PROTOCOLS.join(", ")
            ),
        );
    }
}

/// E7: port numbers and port names are unique within the ExternalService (Istio rejects a
/// ServiceEntry with duplicate port numbers or names).
pub(super) fn e7(c: &Ctx<'_>, report: &mut Report) {
    let mut numbers: HashMap<u32, usize> = HashMap::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for p in c.ports() {
        // A missing number is E5's finding, not a duplicate.
        if let Some(n) = p.defaulted.number.filter(|n| *n != 0) {
            match numbers.get(&n) {
                Some(first) => report.error(
                    "E7",
                    p.field("number"),
                    format!(
                        "port number {n} is already used by spec.ports[{first}]: port numbers \
                         must be unique"
                    ),
                ),
                None => {
                    numbers.insert(n, p.index);
                }
            }
        }
        let name = text(&p.defaulted.name);
        if name.is_empty() {
            continue;
        }
        match names.get(name) {
            Some(first) => report.error(
                "E7",
                p.field("name"),
                format!(
                    "port name {name:?} is already used by spec.ports[{first}]: port names must \
                     be unique"
                ),
            ),
            None => {
                names.insert(name, p.index);
            }
        }
    }
}

/// E8: an explicit `targetPort` is a number xor a name; the number is 1..65535; a name needs
/// ExternalEndpoints (a non-empty `spec.selector`), since it names a port on them.
pub(super) fn e8(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        // The object as written: the default (E9) only ever copies `number`, which E5 checks.
        let Some(target) = p.written.and_then(|w| w.target_port.as_ref()) else {
            continue;
        };
        let name = text(&target.name);
        if target.number.is_some() && !name.is_empty() {
            report.error(
                "E8",
                p.field("targetPort"),
                format!(
                    "targetPort sets both number {} and name {name:?}: give exactly one",
                    target.number.unwrap_or_default()
                ),
            );
        }
        if let Some(n) = target.number.filter(|n| !is_port(*n)) {
            report.error(
                "E8",
                p.field("targetPort.number"),
                format!("targetPort number {n} is out of range 1..65535"),
            );
        }
        if !name.is_empty() && !c.selects_endpoints() {
            report.error(
                "E8",
                p.field("targetPort.name"),
                format!(
                    "targetPort name {name:?} names a port of the backing ExternalEndpoints, but \
                     spec.selector is empty so no ExternalEndpoints are selected: use a targetPort \
                     number"
                ),
            );
        }
    }
}
