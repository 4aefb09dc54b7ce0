//! Rules for VirtualGateway (API.md §7 V1–V21, decisions in DESIGN §9).
//!
//! One function per rule id, grouped by the part of the object they read:
//! `listeners` (V1–V10, V17, V18), `tls` (V11–V16), `workloads` (V19, V20) and `lifecycle`
//! (V21, the only rule that looks at the operation). V8 is a default (`defaults.rs`).
//!
//! Presence conventions, the same in every rule: a field the rule *requires* must be non-empty
//! (`secretName: ""` satisfies nobody); a field the rule *forbids* is reported as soon as it is
//! present (that is what the CRD's CEL `has()` and the proto `oneof`s reject).

mod lifecycle;
mod listeners;
mod tls;
mod workloads;

use crate::api::{VirtualGateway, text, virtual_gateway::Listener};
use crate::core::rules::syntax::is_port;
use crate::core::{Operation, Options, findings::Report, object::Object, snapshot::Snapshot};

pub fn validate(
    written: &VirtualGateway,
    defaulted: &VirtualGateway,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
    report: &mut Report,
) {
    match op {
        // A deletion cannot be wrong in itself; only its effect on the ExternalServices matters.
        Operation::Delete => {
            lifecycle::v21_delete(written, snap, report);
            return;
        }
        Operation::Update(Object::VirtualGateway(old)) => {
            lifecycle::v21_update(old, defaulted, snap, report);
        }
        Operation::Update(_) | Operation::Create => {}
    }
    listeners::validate(written, defaulted, report);
    tls::validate(written, report);
    workloads::validate(defaulted, snap, opts, report);
}

/// The VirtualGateway's namespace, as the snapshot keys it.
fn namespace(vg: &VirtualGateway) -> &str {
    vg.metadata.namespace.as_deref().unwrap_or("default")
}

fn name(vg: &VirtualGateway) -> &str {
    vg.metadata.name.as_deref().unwrap_or("")
}

fn listener_path(i: usize) -> String {
    format!("spec.listeners[{i}]")
}

/// A listener's port as rules compare it: the number, else the name. Listeners on the same
/// port share it (V9, V10); it selects a port of the gateway Service (V20).
#[derive(PartialEq, Eq, Hash)]
enum PortKey<'a> {
    Number(u32),
    Name(&'a str),
}

impl std::fmt::Display for PortKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortKey::Number(n) => write!(f, "port {n}"),
            PortKey::Name(n) => write!(f, "port `{n}`"),
        }
    }
}

/// None for a port that V2 rejects: it cannot be compared.
fn port_key(l: &Listener) -> Option<PortKey<'_>> {
    let port = l.port.as_ref()?;
    match (port.number, text(&port.name)) {
        (Some(n), _) if is_port(n) => Some(PortKey::Number(n)),
        (None, name) if !name.is_empty() => Some(PortKey::Name(name)),
        _ => None,
    }
}
