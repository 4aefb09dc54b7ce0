//! Throw-away PKI of one control plane: a CA, the apiserver serving cert, client certs and the
//! service-account signing key, all generated in memory with rcgen (ECDSA P-256, which
//! kube-apiserver, kubectl and etcd's clients all accept).
//!
//! A second CA signs only the client certificate the apiserver presents to admission webhooks
//! (see `ControlPlane::webhook_client_ca_path`): a webhook that trusts it trusts the apiserver
//! and nobody else, while a webhook that trusted the cluster CA would also accept every user's
//! certificate.
//!
//! One CA both serves (`--tls-cert-file` chain) and authenticates clients (`--client-ca-file`),
//! so a single `ca.crt` is all a client needs to trust and to be trusted.

use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

// The key is secret-ish even in a test PKI; keep it out of debug output and test logs.
impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The signing CA, kept in memory for as long as the control plane runs so that more users can
/// be minted later.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    pub fn generate() -> Result<Self, rcgen::Error> {
        Self::generate_named("egress-webhook local control plane CA")
    }

    /// A CA with the given common name.
    pub fn generate_named(common_name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        set_validity(&mut params);
        let key = KeyPair::generate()?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            issuer: CertifiedIssuer::self_signed(params, key)?,
            key_pem,
        })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Serving cert for kube-apiserver. The in-cluster names are there so that a client that
    /// reaches the apiserver as `kubernetes.default.svc` (the webhook's own client config, for
    /// instance) verifies it the same way as against a real cluster.
    pub fn apiserver_cert(&self) -> Result<CertAndKey, rcgen::Error> {
        let sans = [
            "127.0.0.1",
            "10.0.0.1", // first IP of --service-cluster-ip-range: the `kubernetes` Service
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ];
        let mut params = CertificateParams::new(sans.map(String::from).to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// Client cert for Kubernetes' x509 authenticator: the user name is the CN and the group is
    /// the O. rcgen keeps one value per attribute type, so at most one group fits; the caller
    /// checks that.
    pub fn client_cert(&self, user: &str, group: Option<&str>) -> Result<CertAndKey, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user);
        if let Some(g) = group {
            params.distinguished_name.push(DnType::OrganizationName, g);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<CertAndKey, rcgen::Error> {
        set_validity(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The service-account token signing key pair: PKCS#8 private key for
/// `--service-account-signing-key-file` and the controller manager, SPKI public key for
/// `--service-account-key-file`.
pub fn service_account_key() -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// Valid from yesterday (tolerates a little clock skew between processes and the date
/// rounding) for 30 days: far longer than any test or dev session, yet not the rcgen default of
/// the year 4096.
fn set_validity(params: &mut CertificateParams) {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs() / 86_400) as i64)
        .unwrap_or(0);
    let (y, m, d) = civil_date(days - 1);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil_date(days + 30);
    params.not_after = rcgen::date_time_ymd(y, m, d);
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01. Written out here
/// because rcgen only takes calendar dates and the `time` crate is not a direct dependency.
fn civil_date(days_since_epoch: i64) -> (i32, u8, u8) {
    // Count from 0000-03-01 so that the leap day is the last day of the (shifted) year.
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // 0..=146096
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year as i32, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_date_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(11_017), (2000, 3, 1));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(20_454), (2026, 1, 1));
    }

    #[test]
    fn civil_date_is_continuous() {
        // Every day follows the previous one: same month and day+1, or the 1st of the next month.
        let mut prev = civil_date(-800_000);
        for d in -799_999..800_000 {
            let cur = civil_date(d);
            let next_day = cur == (prev.0, prev.1, prev.2 + 1);
            let next_month = cur.2 == 1
                && ((cur.0 == prev.0 && cur.1 == prev.1 + 1)
                    || (cur.0 == prev.0 + 1 && cur.1 == 1 && prev.1 == 12));
            assert!(next_day || next_month, "{prev:?} -> {cur:?}");
            prev = cur;
        }
    }

    #[test]
    fn pki_produces_pem() {
        let ca = Ca::generate().unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.key_pem().contains("PRIVATE KEY"));
        let server = ca.apiserver_cert().unwrap();
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let client = ca.client_cert("admin", Some("system:masters")).unwrap();
        assert!(client.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{client:?}").contains("PRIVATE KEY"));
        let (private, public) = service_account_key().unwrap();
        assert!(private.contains("BEGIN PRIVATE KEY"));
        assert!(public.contains("BEGIN PUBLIC KEY"));
    }
}
