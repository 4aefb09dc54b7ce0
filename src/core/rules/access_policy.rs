//! Rules for AccessPolicy (API.md §7, A1–A16; A2 and the default half of A10 live in
//! `defaults.rs`).
//!
//! `destinations` holds the rules about `applyToDestinations` (A1, A3, A14, A15), `authz` the
//! rules about each authorization entry (A7–A11, A13, A16); the policy-wide rules are here.

mod authz;
mod destinations;

use crate::api::{AccessPolicy, Labels, ObjectSelector, list, text};
use crate::core::{Operation, Options, findings::Report, snapshot::Snapshot};

pub fn validate(
    written: &AccessPolicy,
    defaulted: &AccessPolicy,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
    report: &mut Report,
) {
    // Deleting an AccessPolicy only narrows nothing any more; there is nothing to check.
    if matches!(op, Operation::Delete) {
        return;
    }
    destinations::validate(defaulted, snap, opts, report);
    a4(defaulted, report);
    a5(defaulted, report);
    a6(defaulted, report);
    authz::validate(written, defaulted, snap, opts, report);
    a12(defaulted, report);
}

/// A4: with `applyToWorkloads` set, Gloo ignores `applyToDestinations` entirely.
fn a4(ap: &AccessPolicy, report: &mut Report) {
    if !list(&ap.spec.apply_to_workloads).is_empty()
        && !list(&ap.spec.apply_to_destinations).is_empty()
    {
        report.warning(
            "A4",
            "spec.applyToDestinations",
            "applyToDestinations is ignored because applyToWorkloads is set: the policy applies \
             only to the selected workloads; remove one of the two",
        );
    }
}

/// A5: no `applyTo*` at all means every port of every destination in the workspace.
fn a5(ap: &AccessPolicy, report: &mut Report) {
    if list(&ap.spec.apply_to_workloads).is_empty()
        && list(&ap.spec.apply_to_destinations).is_empty()
    {
        report.warning(
            "A5",
            "spec",
            "neither applyToWorkloads nor applyToDestinations is set: the policy applies to all \
             ports of every destination in the workspace",
        );
    }
}

/// A6 (DESIGN §9): `authz` is deprecated, and ignored altogether once `authzList` is set.
/// One finding: when both are set the message says both facts.
fn a6(ap: &AccessPolicy, report: &mut Report) {
    let Some(config) = &ap.spec.config else {
        return;
    };
    if config.authz.is_none() {
        return;
    }
    // proto3: an empty `authzList: []` is the same as an absent one, so `authz` still applies.
    let message = if list(&config.authz_list).is_empty() {
        "`authz` is deprecated: move this entry into `authzList`"
    } else {
        "`authz` is deprecated and is ignored because `authzList` is set: its rules are not \
         enforced; move them into `authzList`"
    };
    report.warning("A6", "spec.config.authz", message);
}

/// A12: `authn.tlsMode` is one of the PeerAuthentication modes; empty is the zero value DISABLE.
fn a12(ap: &AccessPolicy, report: &mut Report) {
    const MODES: [&str; 3] = ["DISABLE", "PERMISSIVE", "STRICT"];
    let Some(authn) = ap.spec.config.as_ref().and_then(|c| c.authn.as_ref()) else {
        return;
    };
    let mode = text(&authn.tls_mode);
    if mode.is_empty() || MODES.contains(&mode) {
        return;
    }
    report.error(
        "A12",
        "spec.config.authn.tlsMode",
        format!(
            "unknown tlsMode {mode:?}: must be one of DISABLE, PERMISSIVE, STRICT{}",
            case_hint(mode, &MODES)
        ),
    );
}

/// "; did you mean X (values are case-sensitive)?" when `value` differs from a known value
/// only by case, else "".
fn case_hint(value: &str, known: &[&str]) -> String {
    let upper = value.to_ascii_uppercase();
    known
        .iter()
        .find(|k| **k == upper)
        .map(|k| format!("; did you mean {k} (values are case-sensitive)?"))
        .unwrap_or_default()
}

/// `a=b,c=d` for messages.
/// A selector for another cluster cannot be checked from here: the warning that says so, under
/// `rule`. Returns true when it was reported (the caller then checks nothing more).
fn other_cluster(
    rule: &'static str,
    path: &str,
    what: &str,
    sel: &ObjectSelector,
    opts: &Options,
    report: &mut Report,
) -> bool {
    let cluster = text(&sel.cluster);
    if crate::core::selectors::is_local_cluster(cluster, &opts.cluster_name) {
        return false;
    }
    report.warning(
        rule,
        path,
        format!(
            "selects {what} in cluster {cluster}, which cannot be checked from cluster {}",
            opts.cluster_name
        ),
    );
    true
}

fn labels_text(labels: Option<&Labels>) -> String {
    labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// "no <kind> named x with labels a=b exists in namespace ns" (or "in any namespace") for a
/// selector that picks nothing. Names and namespaces together read `ns/name`.
fn nothing_selected(kind: &str, sel: &ObjectSelector) -> String {
    let (ns, name) = (text(&sel.namespace), text(&sel.name));
    let labels = labels_text(sel.labels.as_ref());
    let mut what = String::new();
    if !name.is_empty() {
        what.push_str(&format!(" named {name}"));
    }
    if !labels.is_empty() {
        what.push_str(&format!(" with labels {labels}"));
    }
    let place = match ns {
        "" => "in any namespace".to_string(),
        ns => format!("in namespace {ns}"),
    };
    format!("no {kind}{what} exists {place}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_selections_are_described() {
        let sel = |ns: &str, name: &str, labels: &[(&str, &str)]| ObjectSelector {
            namespace: (!ns.is_empty()).then(|| ns.into()),
            name: (!name.is_empty()).then(|| name.into()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        };
        assert_eq!(
            nothing_selected("ExternalService", &sel("", "x", &[])),
            "no ExternalService named x exists in any namespace"
        );
        assert_eq!(
            nothing_selected("ServiceAccount", &sel("ns", "", &[("a", "b"), ("c", "d")])),
            "no ServiceAccount with labels a=b,c=d exists in namespace ns"
        );
        assert_eq!(
            nothing_selected("ExternalService", &sel("", "", &[])),
            "no ExternalService exists in any namespace"
        );
    }

    #[test]
    fn case_hints() {
        assert_eq!(
            case_hint("strict", &["STRICT"]),
            "; did you mean STRICT (values are case-sensitive)?"
        );
        assert_eq!(case_hint("STRIKT", &["STRICT"]), "");
    }
}
