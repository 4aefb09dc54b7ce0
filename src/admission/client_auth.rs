//! Who may call the admission port. The webhook writes companion Istio objects with its own
//! rights when a review is admitted, so a review must come from the apiserver: anyone else who
//! can reach the port could otherwise make it write (an ALLOW AuthorizationPolicy, say).
//!
//! Three modes, reported by the gauge `egress_webhook_client_auth{mode}`:
//! * `mtls`: every connection must present a client certificate that chains to `--client-ca`
//!   and, with `--client-allowed-names`, carries one of those names (subject CN or a DNS/URI
//!   SAN). Checked in the TLS handshake, before a byte of HTTP is read.
//! * `network`: the operator says a NetworkPolicy admits only the apiserver to the port
//!   (`--ingress-restricted`); nothing is checked here.
//! * `none`: neither; the server says so at start-up, once, naming the risk.

use std::{path::PathBuf, sync::Arc};

use rustls::{
    DistinguishedName, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    pki_types::{CertificateDer, UnixTime},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};

use super::tls::TlsError;

/// The CA and names a client certificate is checked against.
#[derive(Clone, Debug)]
pub struct ClientCa {
    /// PEM file with one or more CA certificates (several during a CA rotation).
    pub ca_file: PathBuf,
    /// Accepted subject common names and SANs; empty: any certificate the CA signed.
    pub allowed_names: Vec<String>,
}

/// How the admission port knows its caller.
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    Mtls(ClientCa),
    Network,
    #[default]
    None,
}

impl ClientAuth {
    pub const MODES: [&'static str; 3] = ["mtls", "network", "none"];

    pub fn mode(&self) -> &'static str {
        match self {
            ClientAuth::Mtls(_) => "mtls",
            ClientAuth::Network => "network",
            ClientAuth::None => "none",
        }
    }

    pub fn client_ca(&self) -> Option<&ClientCa> {
        match self {
            ClientAuth::Mtls(ca) => Some(ca),
            _ => None,
        }
    }
}

/// Told of every certificate refused after its chain or names were checked, with the reason
/// (`untrusted` or `name`). A connection without any certificate is refused by rustls before a
/// verifier is asked.
pub type OnReject = Arc<dyn Fn(&'static str) + Send + Sync>;

/// The verifier for `ca` whose CA certificates are `ca_pem` (read by the caller, which also
/// watches the file for changes).
pub fn verifier(
    ca: &ClientCa,
    ca_pem: &[u8],
    on_reject: Option<OnReject>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let path = ca.ca_file.display().to_string();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| TlsError::Pem {
            path: path.clone(),
            message: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.clone(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate { path });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Pem {
            path,
            message: format!("client CA: {e}"),
        })?;
    Ok(Arc::new(NamedClientVerifier {
        inner,
        allowed: ca.allowed_names.clone(),
        on_reject,
    }))
}

/// webpki's chain check, then the names: rustls checks a client certificate's chain but has no
/// notion of which of the CA's clients may connect, and a cluster CA signs every user's
/// certificate, not only the apiserver's.
struct NamedClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
    on_reject: Option<OnReject>,
}

impl std::fmt::Debug for NamedClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedClientVerifier")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl NamedClientVerifier {
    fn reject(&self, reason: &'static str, error: rustls::Error) -> rustls::Error {
        if let Some(f) = &self.on_reject {
            f(reason);
        }
        error
    }
}

impl ClientCertVerifier for NamedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| self.reject("untrusted", e))?;
        if self.allowed.is_empty() {
            return Ok(ClientCertVerified::assertion());
        }
        let names = certificate_names(end_entity);
        if names.iter().any(|n| self.allowed.contains(n)) {
            Ok(ClientCertVerified::assertion())
        } else {
            tracing::debug!(presented = ?names, "client certificate names not allowed");
            Err(self.reject(
                "name",
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Subject common names, DNS and URI SANs of a certificate (empty if it does not parse; its
/// chain was verified before, so that does not happen in practice).
fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, x)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = x
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(s) | GeneralName::URI(s) => names.push(s.to_string()),
                _ => {}
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn names_are_the_common_name_and_the_sans() {
        let names = certificate_names(&cert_with("kube-apiserver", &["apiserver.local"]));
        assert_eq!(names, ["kube-apiserver", "apiserver.local"]);
    }

    #[test]
    fn an_empty_or_bad_ca_file_is_an_error_naming_it() {
        let ca = ClientCa {
            ca_file: "/etc/ca.pem".into(),
            allowed_names: vec![],
        };
        let e = verifier(&ca, b"", None).unwrap_err().to_string();
        assert!(
            e.contains("/etc/ca.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = verifier(
            &ca,
            b"-----BEGIN CERTIFICATE-----\nzz\n-----END CERTIFICATE-----\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/ca.pem"), "{e}");
    }

    #[test]
    fn modes_are_named() {
        assert_eq!(ClientAuth::None.mode(), "none");
        assert_eq!(ClientAuth::Network.mode(), "network");
        let ca = ClientCa {
            ca_file: "x".into(),
            allowed_names: vec![],
        };
        assert_eq!(ClientAuth::Mtls(ca).mode(), "mtls");
    }
}
