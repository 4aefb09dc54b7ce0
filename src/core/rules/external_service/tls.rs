//! E10–E12, E24, E25, E27: TLS originated toward the external service (`clientsideTls`). E13, the
//! TLS default for HTTPS/TLS ports, lives in defaults.rs; the rules see its result.

use crate::api::{Text, external_service::ClientsideTls, list, text};
use crate::core::findings::Report;

use super::{Ctx, PortView};

const MODES: [&str; 4] = ["SIMPLE", "DISABLE", "MUTUAL", "ISTIO_MUTUAL"];

/// The defaulted `clientsideTls` of a port with its mode (`SIMPLE` when omitted).
pub(super) fn tls_of<'a>(p: &PortView<'a>) -> Option<(&'a ClientsideTls, &'a str)> {
    p.defaulted
        .clientside_tls
        .as_ref()
        .map(|t| (t, t.mode.as_deref().unwrap_or("SIMPLE")))
}

/// Modes in which the proxy originates TLS with a server certificate check.
pub(super) fn originates_tls(mode: &str) -> bool {
    matches!(mode, "SIMPLE" | "MUTUAL")
}

fn set(v: &Option<Text>) -> bool {
    !text(v).is_empty()
}

/// E10: the mode is known; MUTUAL needs a client certificate and key, or `credentialName`.
pub(super) fn e10(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        let Some((t, mode)) = tls_of(&p) else {
            continue;
        };
        if !MODES.contains(&mode) {
            let hint = match mode.to_ascii_uppercase().as_str() {
                "DISABLED" => " (did you mean DISABLE?)".to_string(),
                upper if MODES.contains(&upper) => format!(" (modes are upper case: {upper})"),
                _ => String::new(),
            };
            report.error(
                "E10",
                p.field("clientsideTls.mode"),
                format!(
                    "clientsideTls mode {mode:?} is not one of {}{hint}",
                    MODES.join(", ")
                ),
            );
            continue;
        }
        if mode != "MUTUAL" || set(&t.credential_name) {
            continue;
        }
        let missing: Vec<&str> = [
            ("clientCertificate", &t.client_certificate),
            ("privateKey", &t.private_key),
        ]
        .into_iter()
        .filter(|(_, v)| !set(v))
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            report.error(
                "E10",
                p.field("clientsideTls"),
                format!(
                    "mode MUTUAL needs clientCertificate and privateKey, or credentialName; \
                     missing: {}",
                    missing.join(", ")
                ),
            );
        }
    }
}

/// E11: ISTIO_MUTUAL uses the mesh's own certificates; no certificate field may be set.
pub(super) fn e11(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        let Some((t, "ISTIO_MUTUAL")) = tls_of(&p) else {
            continue;
        };
        let fields = [
            ("clientCertificate", &t.client_certificate),
            ("privateKey", &t.private_key),
            ("caCertificates", &t.ca_certificates),
            ("credentialName", &t.credential_name),
        ];
        for (field, value) in fields {
            if set(value) {
                report.error(
                    "E11",
                    p.field(&format!("clientsideTls.{field}")),
                    format!(
                        "{field} must be empty with mode ISTIO_MUTUAL: the mesh's own workload \
                         certificates are used"
                    ),
                );
            }
        }
    }
}

/// E12: `credentialName` (a secret read through SDS) excludes the file-based `clientCertificate`
/// and `privateKey`; istiod also rejects it next to `caCertificates` when TLS is originated
/// (SIMPLE/MUTUAL), so that is reported here too. ISTIO_MUTUAL is E11's business.
pub(super) fn e12(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        let Some((t, mode)) = tls_of(&p) else {
            continue;
        };
        if mode == "ISTIO_MUTUAL" || !set(&t.credential_name) {
            continue;
        }
        let mut clashing = Vec::new();
        if set(&t.client_certificate) {
            clashing.push("clientCertificate");
        }
        if set(&t.private_key) {
            clashing.push("privateKey");
        }
        if originates_tls(mode) && set(&t.ca_certificates) {
            clashing.push("caCertificates");
        }
        if clashing.is_empty() {
            continue;
        }
        report.error(
            "E12",
            p.field("clientsideTls.credentialName"),
            format!(
                "credentialName cannot be combined with {}: the secret {:?} already provides the \
                 certificates; use either the secret or the file paths",
                clashing.join(", "),
                text(&t.credential_name)
            ),
        );
    }
}

/// E24: `subjectAltNames` are checked against the server certificate, so they mean nothing when
/// no port uses TLS (no `clientsideTls`, or mode DISABLE, after defaults).
pub(super) fn e24(c: &Ctx<'_>, report: &mut Report) {
    if list(&c.defaulted.spec.subject_alt_names).is_empty() {
        return;
    }
    let any_tls = c
        .ports()
        .any(|p| tls_of(&p).is_some_and(|(_, mode)| mode != "DISABLE"));
    if !any_tls {
        report.warning(
            "E24",
            "spec.subjectAltNames",
            "subjectAltNames has no effect: no port uses TLS (set clientsideTls, or use protocol \
             HTTPS or TLS, on the ports that should verify the server certificate)",
        );
    }
}

/// E25 (DESIGN §5): TLS origination (SIMPLE or MUTUAL, explicit or defaulted) with neither
/// `caCertificates` nor `credentialName` does not verify the server against a CA of the
/// user's choosing; `istioctl analyze` flags the generated DestinationRule with IST0129. With
/// `insecureSkipVerify: true` the user turned verification off on purpose, but the generated
/// DestinationRule carries the same analyzer flag, so it is still reported, saying so.
pub(super) fn e25(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        let Some((t, mode)) = tls_of(&p) else {
            continue;
        };
        if !originates_tls(mode) || set(&t.ca_certificates) || set(&t.credential_name) {
            continue;
        }
        let message = if t.insecure_skip_verify == Some(true) {
            format!(
                "TLS origination (mode {mode}) with insecureSkipVerify: true and no \
                 caCertificates or credentialName: the external server's certificate is \
                 explicitly not verified (Istio IST0129 on the generated DestinationRule)"
            )
        } else {
            format!(
                "TLS origination (mode {mode}) without caCertificates or credentialName: the \
                 external server's certificate is not verified against a CA you choose (Istio \
                 IST0129 on the generated DestinationRule); set caCertificates or credentialName"
            )
        };
        report.warning("E25", p.field("clientsideTls"), message);
    }
}

/// E27: `insecureSkipVerify: true` turns off the server certificate check that `caCertificates`
/// (SIMPLE, MUTUAL) and `credentialName` (SIMPLE: the secret then only holds the CA) configure.
/// istiod refuses a DestinationRule with both ("cannot specify CaCertificates or CredentialName
/// or SubjectAltNames when InsecureSkipVerify is set true"), so the companion could never be
/// written; the user has to say which one is meant. ISTIO_MUTUAL is E11's business.
pub(super) fn e27(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        let Some((t, mode)) = tls_of(&p) else {
            continue;
        };
        if t.insecure_skip_verify != Some(true) || !originates_tls(mode) {
            continue;
        }
        let mut clashing = Vec::new();
        if set(&t.ca_certificates) {
            clashing.push("caCertificates");
        }
        if mode == "SIMPLE" && set(&t.credential_name) {
            clashing.push("credentialName");
        }
        if clashing.is_empty() {
            continue;
        }
        report.error(
            "E27",
            p.field("clientsideTls.insecureSkipVerify"),
            format!(
                "insecureSkipVerify: true cannot be combined with {} (mode {mode}): it turns off \
                 the server certificate check they configure, and Istio refuses the \
                 DestinationRule; remove insecureSkipVerify to verify the server, or {} to skip \
                 verification",
                clashing.join(", "),
                clashing.join(" and ")
            ),
        );
    }
}
