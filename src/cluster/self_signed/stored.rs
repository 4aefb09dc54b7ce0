//! The content of the self-signed Secret, parsed and checked (pure: bytes in, values out).
//!
//! Keys (type `kubernetes.io/tls`): `tls.crt`/`tls.key` the serving pair; `ca.crt` every CA the
//! apiserver must trust now, the signing CA first (two during a CA rotation); `ca.key` the key
//! of the signing CA, so that any replica, now or after a restart, can issue the next leaf from
//! the same CA. The annotation [`CHANGED_AT`] says when we last changed the Secret: the steps of a
//! CA rotation wait a grace period after it (see `plan`).

use std::collections::BTreeMap;

use rustls::pki_types::{CertificateDer, pem::PemObject};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
/// Unix seconds of our last change of the Secret.
pub const CHANGED_AT: &str = "egress-webhook.io/self-signed-changed-at";
/// The label that makes a Secret ours: only a Secret carrying it is ever rewritten.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "egress-webhook";

/// One certificate: its PEM and what the decisions need from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cert {
    pub pem: String,
    pub der: Vec<u8>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// A Secret's content that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Signing CA first.
    pub cas: Vec<Cert>,
    pub ca_key: String,
    pub leaf: Cert,
    pub leaf_key: String,
    /// The leaf's DNS names and IPs, as text.
    pub leaf_hosts: Vec<String>,
    /// Index in `cas` of the CA whose signature on the leaf verifies.
    pub leaf_signer: usize,
    /// [`CHANGED_AT`], when present and a number.
    pub changed_at: Option<i64>,
}

/// Why the data cannot be used: the Secret key (field) and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("data[{field}]: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

fn text<'a>(
    data: &'a BTreeMap<String, Vec<u8>>,
    field: &'static str,
) -> Result<&'a str, FieldError> {
    let bytes = data.get(field).ok_or_else(|| bad(field, "missing"))?;
    std::str::from_utf8(bytes).map_err(|_| bad(field, "not UTF-8 text (expected PEM)"))
}

fn certs(pem: &str, field: &'static str) -> Result<Vec<Cert>, FieldError> {
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(field, format!("not PEM: {e}")))?;
    if ders.is_empty() {
        return Err(bad(field, "no PEM certificate"));
    }
    ders.into_iter()
        .map(|der| {
            let (_, x) = X509Certificate::from_der(der.as_ref())
                .map_err(|e| bad(field, format!("not an X.509 certificate: {e}")))?;
            let pem = pem_of(der.as_ref());
            Ok(Cert {
                pem,
                not_before: x.validity().not_before.timestamp(),
                not_after: x.validity().not_after.timestamp(),
                der: der.to_vec(),
            })
        })
        .collect()
}

/// PEM text of one DER certificate (64-column base64).
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The raw public key of a PEM private key.
fn public_key_of(key_pem: &str, field: &'static str) -> Result<Vec<u8>, FieldError> {
    let key = rcgen::KeyPair::from_pem(key_pem)
        .map_err(|e| bad(field, format!("not a PEM private key: {e}")))?;
    Ok(key.public_key_raw().to_vec())
}

fn parsed(der: &[u8]) -> X509Certificate<'_> {
    // Only called on DER that `certs` parsed already.
    X509Certificate::from_der(der)
        .map(|(_, x)| x)
        .expect("parsed before")
}

/// Parse and check the Secret's data: every key present and PEM, each key matching its
/// certificate, the leaf signed by one of the CAs.
pub fn parse(
    data: &BTreeMap<String, Vec<u8>>,
    annotations: &BTreeMap<String, String>,
) -> Result<Stored, FieldError> {
    // Field by field, so the error names the first unusable one.
    let leaf = certs(text(data, TLS_CRT)?, TLS_CRT)?.remove(0);
    let leaf_key = text(data, TLS_KEY)?.to_string();
    let cas = certs(text(data, CA_CRT)?, CA_CRT)?;
    let ca_key = text(data, CA_KEY)?.to_string();
    let leaf_x = parsed(&leaf.der);
    if public_key_of(&leaf_key, TLS_KEY)? != leaf_x.public_key().subject_public_key.data.as_ref() {
        return Err(bad(TLS_KEY, "does not match the certificate in tls.crt"));
    }
    let ca_x = parsed(&cas[0].der);
    if public_key_of(&ca_key, CA_KEY)? != ca_x.public_key().subject_public_key.data.as_ref() {
        return Err(bad(
            CA_KEY,
            "does not match the first certificate in ca.crt",
        ));
    }
    let leaf_signer = cas
        .iter()
        .position(|ca| {
            leaf_x
                .verify_signature(Some(parsed(&ca.der).public_key()))
                .is_ok()
        })
        .ok_or_else(|| bad(TLS_CRT, "not signed by any CA in ca.crt"))?;
    Ok(Stored {
        leaf_hosts: hosts_of(&leaf_x),
        leaf_signer,
        changed_at: annotations.get(CHANGED_AT).and_then(|v| v.parse().ok()),
        cas,
        ca_key,
        leaf,
        leaf_key,
    })
}

fn hosts_of(x: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = x.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The Secret's data for `stored` (the inverse of [`parse`]).
pub fn data_of(stored: &Stored) -> BTreeMap<String, Vec<u8>> {
    [
        (TLS_CRT, stored.leaf.pem.clone()),
        (TLS_KEY, stored.leaf_key.clone()),
        (CA_CRT, ca_bundle(stored)),
        (CA_KEY, stored.ca_key.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_bytes()))
    .collect()
}

/// What the webhooks' caBundle must hold: every CA of the Secret, signing CA first. During a CA
/// rotation that is the new and the old CA, so the apiserver trusts whichever leaf a replica
/// serves at that moment.
pub fn ca_bundle(stored: &Stored) -> String {
    stored.cas.iter().map(|c| c.pem.as_str()).collect()
}
