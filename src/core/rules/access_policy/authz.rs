//! Rules about authorization entries: `config.authz` and every `config.authzList[i]`
//! (A7–A11, A13, A16). Both are checked even when `authz` is ignored (A6 says so): a mistake in
//! it is still a mistake the user will meet once they move it into `authzList`.

use crate::api::{
    AccessPolicy, IdentitySelector, ObjectSelector,
    access_policy::{AccessPolicyConfig, Authorization},
    list, text,
};
use crate::core::{Options, findings::Report, rules::syntax::is_ip_or_cidr, snapshot::Snapshot};

use super::{labels_text, nothing_selected, other_cluster};

pub(super) fn validate(
    written: &AccessPolicy,
    defaulted: &AccessPolicy,
    snap: &Snapshot,
    opts: &Options,
    report: &mut Report,
) {
    let destinations_semantics = list(&defaulted.spec.apply_to_workloads).is_empty();
    // Defaults only upper-case methods, so both objects have the same entries in the same order.
    let written_entries = entries(written.spec.config.as_ref());
    let defaulted_entries = entries(defaulted.spec.config.as_ref());
    for ((path, entry), (_, as_written)) in defaulted_entries.iter().zip(&written_entries) {
        a7(path, entry, destinations_semantics, report);
        a8(path, entry, report);
        a9(path, entry, report);
        a10(path, as_written, report);
        a11(path, entry, report);
        for (k, client) in list(&entry.allowed_clients).iter().enumerate() {
            let client_path = format!("{path}.allowedClients[{k}]");
            a13(&client_path, client, snap, opts, report);
            a16(&client_path, client, report);
        }
    }
}

/// `(path, entry)` for `authz` and each `authzList` item.
fn entries(config: Option<&AccessPolicyConfig>) -> Vec<(String, &Authorization)> {
    let Some(config) = config else {
        return Vec::new();
    };
    let single = config
        .authz
        .as_deref()
        .map(|a| ("spec.config.authz".to_string(), a));
    let listed = list(&config.authz_list)
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("spec.config.authzList[{i}]"), a));
    single.into_iter().chain(listed).collect()
}

/// No requirement at all (`dryRun` alone is not a requirement).
fn is_empty_entry(a: &Authorization) -> bool {
    list(&a.allowed_clients).is_empty()
        && list(&a.allowed_paths).is_empty()
        && list(&a.allowed_methods).is_empty()
        && list(&a.allowed_ip_blocks).is_empty()
        && list(&a.allowed_remote_ip_blocks).is_empty()
        && a.match_
            .as_ref()
            .and_then(|m| m.request.as_ref())
            .and_then(|r| r.headers.as_ref())
            .is_none_or(|h| h.is_empty())
}

/// A7: `{}` means "allow nothing" in Gloo's field doc (applyToWorkloads only) but "all sources"
/// in Gloo's examples with applyToDestinations. We say which reading we apply here.
fn a7(path: &str, entry: &Authorization, destinations_semantics: bool, report: &mut Report) {
    if !is_empty_entry(entry) {
        return;
    }
    let here = if destinations_semantics {
        "this policy applies to destinations, so this entry allows every source"
    } else {
        "this policy uses applyToWorkloads, so this entry allows nothing"
    };
    report.warning(
        "A7",
        path,
        format!(
            "an empty authorization entry is ambiguous: Gloo documents it as \"allow nothing\" \
             for applyToWorkloads, while Gloo examples use it with applyToDestinations to allow \
             all sources; egress-webhook treats it as allow all sources for applyToDestinations \
             and allow nothing for applyToWorkloads: {here}; list allowedClients explicitly \
             (a single empty selector `[{{}}]` allows every client)"
        ),
    );
}

/// A8: source IP blocks are IPs or CIDRs.
fn a8(path: &str, entry: &Authorization, report: &mut Report) {
    let fields = [
        ("allowedIpBlocks", &entry.allowed_ip_blocks),
        ("allowedRemoteIpBlocks", &entry.allowed_remote_ip_blocks),
    ];
    for (field, blocks) in fields {
        for (j, block) in list(blocks).iter().enumerate() {
            if !is_ip_or_cidr(block) {
                report.error(
                    "A8",
                    format!("{path}.{field}[{j}]"),
                    format!("{block:?} is not an IP address or CIDR (e.g. 10.0.0.1, 10.0.0.0/8)"),
                );
            }
        }
    }
}

/// A9: Istio path matching is exact, prefix (`/x*`), suffix (`*x`) or presence (`*`).
fn a9(path: &str, entry: &Authorization, report: &mut Report) {
    for (j, p) in list(&entry.allowed_paths).iter().enumerate() {
        if let Some(problem) = path_problem(p) {
            report.error(
                "A9",
                format!("{path}.allowedPaths[{j}]"),
                format!("path {p:?}: {problem}"),
            );
        }
    }
}

fn path_problem(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        return Some("a path must not be empty");
    }
    if p == "*" {
        return None;
    }
    let stars = p.matches('*').count();
    let (first, last) = (p.starts_with('*'), p.ends_with('*'));
    if stars == 2 && first && last {
        return Some(
            "Istio matches a prefix (`/x*`) or a suffix (`*x`), not both: `*` at both ends is \
             not supported",
        );
    }
    if stars > 1 || (stars == 1 && !first && !last) {
        return Some(
            "`*` is allowed only once, as the first character (suffix match), the last \
             character (prefix match), or alone",
        );
    }
    if !p.starts_with('/') && !first {
        return Some("a path must start with `/` (or `*` for a suffix match)");
    }
    None
}

/// A10 (the rule half; upper-casing is the default): each method is a non-empty HTTP token.
/// Checked as written so the message quotes what the user typed.
fn a10(path: &str, entry: &Authorization, report: &mut Report) {
    for (j, m) in list(&entry.allowed_methods).iter().enumerate() {
        if !is_token(m) {
            let problem = if m.is_empty() {
                "a method must not be empty".to_string()
            } else {
                format!("method {m:?} is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)")
            };
            report.error("A10", format!("{path}.allowedMethods[{j}]"), problem);
        }
    }
}

/// RFC 7230 `token`: one or more tchar.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A11: a header condition has `values` or `notValues`; header names are HTTP tokens and
/// values are non-empty (they become an AuthorizationPolicy `when`, which rejects both).
fn a11(path: &str, entry: &Authorization, report: &mut Report) {
    let Some(headers) = entry
        .match_
        .as_ref()
        .and_then(|m| m.request.as_ref())
        .and_then(|r| r.headers.as_ref())
    else {
        return;
    };
    for (name, hv) in headers {
        let header_path = format!("{path}.match.request.headers[{name}]");
        if !is_token(name) {
            report.error(
                "A11",
                &header_path,
                format!("header name {name:?} is not a valid HTTP header name"),
            );
        }
        if list(&hv.values).is_empty() && list(&hv.not_values).is_empty() {
            report.error(
                "A11",
                &header_path,
                format!("header {name:?} needs at least one of values or notValues"),
            );
        }
        for (field, values) in [("values", &hv.values), ("notValues", &hv.not_values)] {
            for (j, v) in list(values).iter().enumerate() {
                if v.is_empty() {
                    report.error(
                        "A11",
                        format!("{header_path}.{field}[{j}]"),
                        format!("header {name:?} has an empty value; use `*` to match any value"),
                    );
                }
            }
        }
    }
}

/// A13 (DESIGN §9): a ServiceAccount selector that matches no ServiceAccount gets no principal
/// in the generated AuthorizationPolicy until one exists. A warning, never an error: the
/// ServiceAccount may be created later (the reconciler follows it).
fn a13(
    client_path: &str,
    client: &IdentitySelector,
    snap: &Snapshot,
    opts: &Options,
    report: &mut Report,
) {
    let Some(sel) = &client.service_account_selector else {
        return;
    };
    let path = format!("{client_path}.serviceAccountSelector");
    if other_cluster("A13", &path, "ServiceAccounts", sel, opts, report) {
        return;
    }
    if !snap.service_accounts_selected(sel).is_empty() {
        return;
    }
    report.warning("A13", path, no_service_account_message(sel, snap));
}

fn no_service_account_message(sel: &ObjectSelector, snap: &Snapshot) -> String {
    const CONSEQUENCE: &str = "no principal is generated for it until one exists";
    let (ns, name) = (text(&sel.namespace), text(&sel.name));
    let labels = labels_text(sel.labels.as_ref());
    if !ns.is_empty() && !name.is_empty() {
        return match snap.service_account(ns, name) {
            Some(_) => format!(
                "ServiceAccount {ns}/{name} exists but does not have the labels {labels}: \
                 {CONSEQUENCE}"
            ),
            // A name + namespace selector keeps its principal (the IdentitySelector contract for
            // accounts created later), so the consequence differs from the other cases.
            None if labels.is_empty() => format!(
                "ServiceAccount {ns}/{name} does not exist (yet): its principal is allowed already and \
                 takes effect when the ServiceAccount is created"
            ),
            None => format!("ServiceAccount {ns}/{name} does not exist: {CONSEQUENCE}"),
        };
    }
    format!("{}: {CONSEQUENCE}", nothing_selected("ServiceAccount", sel))
}

/// A16: request principals are `iss/sub` of a JWT, or Istio's `*`, `*suffix`, `prefix*`.
fn a16(client_path: &str, client: &IdentitySelector, report: &mut Report) {
    let Some(m) = &client.request_identity_matcher else {
        return;
    };
    let fields = [
        ("requestPrincipals", &m.request_principals),
        ("notRequestPrincipals", &m.not_request_principals),
    ];
    for (field, principals) in fields {
        for (j, p) in list(principals).iter().enumerate() {
            if !is_request_principal(p) {
                report.warning(
                    "A16",
                    format!("{client_path}.requestIdentityMatcher.{field}[{j}]"),
                    format!(
                        "request principal {p:?} is not of the form iss/sub (the JWT issuer and \
                         subject), `*`, `*suffix` or `prefix*`: it never matches a request"
                    ),
                );
            }
        }
    }
}

fn is_request_principal(p: &str) -> bool {
    if p == "*" {
        return true;
    }
    match p.matches('*').count() {
        0 => p.contains('/') && !p.starts_with('/') && !p.ends_with('/'),
        1 => p.len() > 1 && (p.starts_with('*') || p.ends_with('*')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in [
            "/",
            "/books",
            "/books*",
            "*books/",
            "*",
            "/pkg.Svc/Method",
            "/*",
        ] {
            assert_eq!(path_problem(ok), None, "{ok}");
        }
        for bad in ["", "books", "/a*b", "*a*", "**", "/a**", "books*"] {
            assert!(path_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn tokens() {
        assert!(is_token("GET"));
        assert!(is_token("M-SEARCH"));
        assert!(!is_token(""));
        assert!(!is_token("GE T"));
        assert!(!is_token("GET/"));
    }

    #[test]
    fn request_principals() {
        for ok in [
            "*",
            "iss/sub",
            "https://accounts.example.com/1234",
            "https://accounts.example.com/*",
            "*@example.com",
        ] {
            assert!(is_request_principal(ok), "{ok}");
        }
        for bad in ["", "sub", "/sub", "iss/", "a*b/c", "*a*", "**"] {
            assert!(!is_request_principal(bad), "{bad}");
        }
    }
}
