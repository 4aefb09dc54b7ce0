//! Listener TLS rules: V11–V16.

use crate::api::virtual_gateway::{ListenerTls, TlsFiles, TlsParameters};
use crate::api::{Text, VirtualGateway, list, text};
use crate::core::findings::Report;

use super::listener_path;

/// V16: the cipher suites Gloo accepts (virtual_gateway.proto, `Parameters.cipher_suites`).
const CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// The ProtocolVersion enum in order, so that the index compares versions.
const TLS_VERSIONS: &[&str] = &["TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"];

pub(super) fn validate(vg: &VirtualGateway, report: &mut Report) {
    for (i, l) in list(&vg.spec.listeners).iter().enumerate() {
        let Some(tls) = &l.tls else {
            continue;
        };
        let path = format!("{}.tls", listener_path(i));
        v11(tls, &path, report);
        v12(tls, &path, report);
        v13(tls, &path, report);
        v14(tls, &path, report);
        v15(tls, &path, report);
        if let Some(params) = &tls.parameters {
            v16(params, &format!("{path}.parameters"), report);
        }
    }
}

/// A `files.*` field: its JSON name and how to read it.
type FileField = (&'static str, fn(&TlsFiles) -> &Option<Text>);

const SERVER_CERT: FileField = ("serverCert", |f| &f.server_cert);
const PRIVATE_KEY: FileField = ("privateKey", |f| &f.private_key);
const CA_CERTS: FileField = ("caCerts", |f| &f.ca_certs);

/// A required file counts only with a non-empty path.
fn has_file(tls: &ListenerTls, (_, get): FileField) -> bool {
    tls.files.as_ref().is_some_and(|f| !text(get(f)).is_empty())
}

fn has_secret(tls: &ListenerTls) -> bool {
    !text(&tls.secret_name).is_empty()
}

/// JSON names of the required `files.*` fields that are missing, as `files.x, files.y`.
fn missing_files(tls: &ListenerTls, required: &[FileField]) -> Option<String> {
    let missing: Vec<String> = required
        .iter()
        .filter(|field| !has_file(tls, **field))
        .map(|(name, _)| format!("files.{name}"))
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

fn v11(tls: &ListenerTls, path: &str, report: &mut Report) {
    if text(&tls.mode) != "SIMPLE" || has_secret(tls) {
        return;
    }
    if let Some(missing) = missing_files(tls, &[SERVER_CERT, PRIVATE_KEY]) {
        report.error(
            "V11",
            path,
            format!(
                "tls.mode SIMPLE needs secretName or both files.serverCert and files.privateKey; missing: {missing}"
            ),
        );
    }
}

fn v12(tls: &ListenerTls, path: &str, report: &mut Report) {
    let mode = text(&tls.mode);
    if !(mode == "MUTUAL" || mode == "OPTIONAL_MUTUAL") || has_secret(tls) {
        return;
    }
    if let Some(missing) = missing_files(tls, &[SERVER_CERT, PRIVATE_KEY, CA_CERTS]) {
        report.error(
            "V12",
            path,
            format!(
                "tls.mode {mode} needs secretName or all of files.serverCert, files.privateKey and files.caCerts; missing: {missing}"
            ),
        );
    }
}

/// ISTIO_MUTUAL uses the gateway's mesh certificate; any certificate source is forbidden.
fn v13(tls: &ListenerTls, path: &str, report: &mut Report) {
    if text(&tls.mode) != "ISTIO_MUTUAL" {
        return;
    }
    if tls.secret_name.is_some() {
        report.error(
            "V13",
            format!("{path}.secretName"),
            "tls.mode ISTIO_MUTUAL uses the gateway's Istio certificate: remove secretName",
        );
    }
    if tls.files.is_some() {
        report.error(
            "V13",
            format!("{path}.files"),
            "tls.mode ISTIO_MUTUAL uses the gateway's Istio certificate: remove files",
        );
    }
}

fn v14(tls: &ListenerTls, path: &str, report: &mut Report) {
    // Under ISTIO_MUTUAL, V13 already asks to remove both.
    if text(&tls.mode) == "ISTIO_MUTUAL" {
        return;
    }
    if tls.secret_name.is_some() && tls.files.is_some() {
        report.error(
            "V14",
            path,
            "secretName and files are mutually exclusive: take the certificates from a Secret or from files on the gateway, not both",
        );
    }
}

fn v15(tls: &ListenerTls, path: &str, report: &mut Report) {
    if list(&tls.verify_subject_alt_name).is_empty() {
        return;
    }
    if !has_file(tls, CA_CERTS) {
        report.error(
            "V15",
            format!("{path}.verifySubjectAltName"),
            "verifySubjectAltName needs files.caCerts: client certificates cannot be checked against the names without a CA",
        );
    }
}

/// Position of a version in the enum, or None when unset (TLS_AUTO, the zero value) or
/// unknown.
fn version_rank(v: &str) -> Option<usize> {
    TLS_VERSIONS.iter().position(|x| *x == v).filter(|&r| r > 0)
}

fn v16(params: &TlsParameters, path: &str, report: &mut Report) {
    let min = text(&params.minimum_protocol_version);
    let max = text(&params.maximum_protocol_version);
    let mut versions_known = true;
    for (field, v) in [
        ("minimumProtocolVersion", min),
        ("maximumProtocolVersion", max),
    ] {
        if !v.is_empty() && !TLS_VERSIONS.contains(&v) {
            versions_known = false;
            report.error(
                "V16",
                format!("{path}.{field}"),
                format!(
                    "{field} `{v}` is not one of {} (case-sensitive)",
                    TLS_VERSIONS.join(", ")
                ),
            );
        }
    }
    let ciphers = list(&params.cipher_suites);
    if (min == "TLSv1_0" || min == "TLSv1_1") && ciphers.is_empty() {
        report.error(
            "V16",
            format!("{path}.cipherSuites"),
            format!(
                "minimumProtocolVersion {min} needs cipherSuites: the default ciphers do not support TLS versions below 1.2"
            ),
        );
    }
    if versions_known
        && let (Some(lo), Some(hi)) = (version_rank(min), version_rank(max))
        && lo > hi
    {
        report.error(
            "V16",
            format!("{path}.maximumProtocolVersion"),
            format!(
                "maximumProtocolVersion {max} is below minimumProtocolVersion {min}: no TLS version is left"
            ),
        );
    }
    if min == "TLSv1_3" && !ciphers.is_empty() {
        report.warning(
            "V16",
            format!("{path}.cipherSuites"),
            "cipherSuites are ignored when minimumProtocolVersion is TLSv1_3 (TLS 1.3 ciphers are not configurable)",
        );
    }
    for (k, c) in ciphers.iter().enumerate() {
        if !CIPHER_SUITES.contains(&c.as_str()) {
            report.warning(
                "V16",
                format!("{path}.cipherSuites[{k}]"),
                format!(
                    "cipher suite `{c}` is not supported and Gloo ignores it; supported: {}",
                    CIPHER_SUITES.join(", ")
                ),
            );
        }
    }
}
