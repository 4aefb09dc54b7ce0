//! A CA and a serving certificate for the webhook (rcgen, ECDSA P-256), and writing them to disk.
//! The apiserver verifies the webhook against `ca.crt` (the caBundle); the server serves
//! `tls.crt`/`tls.key`. Hosts: localhost, 127.0.0.1 and the in-cluster Service names.
//!
//! A module of its own, not part of `cli`, because more than `egress-webhook certs` needs these
//! certificates: the dev cluster and the server tests generate them too.
//!
//! Not the same thing as `controlplane::pki`: that is the throw-away PKI of a local control plane
//! (apiserver serving and client certificates, kept in memory so more users can be minted),
//! while this is the webhook's own CA and serving certificate, with a validity the caller picks.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CertsError {
    #[error("generating certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The PEM texts of a CA and a leaf signed by it.
pub struct Bundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

pub fn default_hosts(namespace: &str) -> Vec<String> {
    let svc = "egress-webhook";
    vec![
        "localhost".into(),
        "127.0.0.1".into(),
        svc.into(),
        format!("{svc}.{namespace}"),
        format!("{svc}.{namespace}.svc"),
        format!("{svc}.{namespace}.svc.cluster.local"),
    ]
}

/// A fresh CA and a serving certificate for `hosts` (IPs become IP SANs, the rest DNS SANs).
pub fn generate(hosts: &[String], days: u32) -> Result<Bundle, CertsError> {
    let now = time_now();
    let until = now + days_duration(days);
    let ca = issue_ca("egress-webhook local CA", now, until)?;
    let leaf = issue_leaf(&ca.cert, &ca.key, hosts, now, until)?;
    Ok(Bundle {
        ca_cert: ca.cert,
        ca_key: ca.key,
        cert: leaf.cert,
        key: leaf.key,
    })
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// A self-signed CA named `common_name`, valid from `not_before` to `not_after`.
pub fn issue_ca(
    common_name: &str,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> Result<Pair, CertsError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name.push(DnType::CommonName, common_name);
    ca.not_before = not_before;
    ca.not_after = not_after;
    let key = KeyPair::generate()?;
    let key_pem = key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(ca, key)?;
    Ok(Pair {
        cert: issuer.pem(),
        key: key_pem,
    })
}

/// A serving certificate for `hosts` (IPs become IP SANs, the rest DNS SANs), signed by the CA
/// `ca_cert`/`ca_key` (PEM); a fresh key.
pub fn issue_leaf(
    ca_cert: &str,
    ca_key: &str,
    hosts: &[String],
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> Result<Pair, CertsError> {
    let issuer = Issuer::from_ca_cert_pem(ca_cert, KeyPair::from_pem(ca_key)?)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    for h in hosts {
        leaf.subject_alt_names
            .push(match h.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(h.clone().try_into()?),
            });
    }
    leaf.distinguished_name
        .push(DnType::CommonName, "egress-webhook");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok(Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

pub fn time_now() -> time::OffsetDateTime {
    // A minute back: a peer whose clock is slightly behind must not see a future notBefore.
    time::OffsetDateTime::now_utc() - std::time::Duration::from_secs(60)
}

fn days_duration(days: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(days) * 86_400)
}

/// Write the bundle as ca.crt, ca.key, tls.crt, tls.key (keys readable by the owner only).
pub fn write(dir: &Path, b: &Bundle) -> Result<(), CertsError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| CertsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, text, private) in [
        ("ca.crt", &b.ca_cert, false),
        ("ca.key", &b.ca_key, true),
        ("tls.crt", &b.cert, false),
        ("tls.key", &b.key, true),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(io(&path))?;
        }
    }
    Ok(())
}
