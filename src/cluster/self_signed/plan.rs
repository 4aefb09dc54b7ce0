//! The decisions of the self-signed mode, as pure functions of the Secret's content, the time
//! and the policy: whether anything is due, and the next content.
//!
//! A leaf is re-issued when less than `renew_before` of it remains (default: a third of its
//! lifetime), or when its hosts are not the ones wanted. A CA rotation takes three steps, each
//! one poll of one replica, so that the apiserver always trusts what every replica serves:
//! 1. `AddCa`: a new CA becomes the signing CA; `ca.crt` (and with it every caBundle) holds the
//!    new and the old CA; the leaf, still signed by the old CA, is kept.
//! 2. `grace` later (every replica has patched the caBundle from the Secret by then, and the
//!    apiserver reads configuration changes within a second): `IssueLeaf` from the new CA.
//! 3. `grace` later (every replica has written and reloaded the new leaf): `DropOldCas`.
//!
//! `grace` must cover one Secret poll plus one certificate-file poll of every replica; serve
//! uses three times `--cert-poll-interval`.

use std::time::Duration;

use super::stored::{Cert, Stored};
use crate::certs::{self, CertsError};

/// What the self-signed mode wants from its certificates.
#[derive(Clone, Debug)]
pub struct Policy {
    /// DNS names and IPs of the leaf.
    pub hosts: Vec<String>,
    pub leaf_validity: Duration,
    pub ca_validity: Duration,
    /// Renew when less than this remains; `None`: a third of the certificate's lifetime.
    pub renew_before: Option<Duration>,
    /// Wait between the steps of a CA rotation.
    pub grace: Duration,
}

impl Policy {
    /// A renew-before that is not shorter than the validity, or the CA would be renewed at
    /// every poll: checked once at start-up.
    pub fn check(&self) -> Result<(), String> {
        if let Some(r) = self.renew_before {
            for (flag, validity) in [
                ("--self-signed-validity", self.leaf_validity),
                ("--self-signed-ca-validity", self.ca_validity),
            ] {
                if r >= validity {
                    return Err(format!(
                        "--cert-renew-before ({r:?}) must be shorter than {flag} ({validity:?})"
                    ));
                }
            }
        }
        if self.hosts.is_empty() {
            return Err("the serving certificate needs at least one host".into());
        }
        Ok(())
    }
}

/// The next change of the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing is due (or a CA rotation waits out its grace period).
    Keep,
    /// A new leaf from the signing CA; the reason, for the log.
    IssueLeaf(String),
    /// A new signing CA, the old one still trusted; the reason, for the log.
    AddCa(String),
    /// Forget every CA but the signing one (the leaf of every replica is signed by it).
    DropOldCas,
}

/// Whether a certificate valid from `c.not_before` to `c.not_after` is due at `now` (Unix s).
pub fn due(c: &Cert, now: i64, renew_before: Option<Duration>) -> bool {
    let threshold = renew_before.map_or((c.not_after - c.not_before) / 3, |d| {
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
    });
    c.not_after - now <= threshold
}

/// The next step for `stored` at `now`.
pub fn plan(stored: &Stored, now: i64, policy: &Policy) -> Step {
    let grace = i64::try_from(policy.grace.as_secs()).unwrap_or(i64::MAX);
    // Unknown change time (a Secret written by an older version or by hand): wait one grace.
    let settled = stored
        .changed_at
        .is_none_or(|t| now >= t.saturating_add(grace));
    let signing = &stored.cas[0];
    if stored.cas.len() == 1 && due(signing, now, policy.renew_before) {
        return Step::AddCa(format!(
            "the CA expires at {} (Unix time)",
            signing.not_after
        ));
    }
    if stored.leaf_signer != 0 {
        // Step 2 of a CA rotation: only once every caBundle holds the new CA.
        return if settled {
            Step::IssueLeaf("the leaf is signed by the previous CA".into())
        } else {
            Step::Keep
        };
    }
    if due(&stored.leaf, now, policy.renew_before) {
        return Step::IssueLeaf(format!(
            "the serving certificate expires at {} (Unix time)",
            stored.leaf.not_after
        ));
    }
    let mut have = stored.leaf_hosts.clone();
    let mut want = policy.hosts.clone();
    have.sort();
    want.sort();
    if have != want {
        return Step::IssueLeaf(format!("its hosts {have:?} are not the wanted {want:?}"));
    }
    if stored.cas.len() > 1 && settled {
        return Step::DropOldCas;
    }
    Step::Keep
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// Parse what `certs` issued (it cannot fail on its own output).
fn cert_of(pem: &str) -> Result<Cert, CertsError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|d: rustls::pki_types::CertificateDer<'static>| d.to_vec())
        .map_err(|e| CertsError::Rcgen(rcgen::Error::PemError(e.to_string())))?;
    let (_, x) = X509Certificate::from_der(&der)
        .map_err(|_| CertsError::Rcgen(rcgen::Error::CouldNotParseCertificate))?;
    Ok(Cert {
        pem: pem.to_string(),
        not_before: x.validity().not_before.timestamp(),
        not_after: x.validity().not_after.timestamp(),
        der,
    })
}

/// A leaf for the policy's hosts from the signing CA of `cas`, never outliving that CA.
fn leaf(
    cas: &[Cert],
    ca_key: &str,
    now: i64,
    policy: &Policy,
) -> Result<(Cert, String), CertsError> {
    // A minute back: a peer whose clock is slightly behind must not see a future notBefore.
    let not_before = now - 60;
    let not_after = (now + seconds(policy.leaf_validity)).min(cas[0].not_after);
    let pair = certs::issue_leaf(
        &cas[0].pem,
        ca_key,
        &policy.hosts,
        at(not_before),
        at(not_after),
    )?;
    Ok((cert_of(&pair.cert)?, pair.key))
}

fn new_ca(now: i64, policy: &Policy) -> Result<(Cert, String), CertsError> {
    // The time in the name tells a rotated CA from its predecessor in a caBundle.
    let pair = certs::issue_ca(
        &format!("egress-webhook self-signed CA {now}"),
        at(now - 60),
        at(now + seconds(policy.ca_validity)),
    )?;
    Ok((cert_of(&pair.cert)?, pair.key))
}

/// A Secret content from nothing: a new CA and a leaf signed by it.
pub fn fresh(now: i64, policy: &Policy) -> Result<Stored, CertsError> {
    let (ca, ca_key) = new_ca(now, policy)?;
    let cas = vec![ca];
    let (leaf, leaf_key) = leaf(&cas, &ca_key, now, policy)?;
    Ok(Stored {
        cas,
        ca_key,
        leaf,
        leaf_key,
        leaf_hosts: policy.hosts.clone(),
        leaf_signer: 0,
        changed_at: Some(now),
    })
}

/// The content after `step` (`None` for [`Step::Keep`]).
pub fn apply(
    stored: &Stored,
    step: &Step,
    now: i64,
    policy: &Policy,
) -> Result<Option<Stored>, CertsError> {
    let mut next = stored.clone();
    match step {
        Step::Keep => return Ok(None),
        Step::IssueLeaf(_) => {
            let (l, k) = leaf(&next.cas, &next.ca_key, now, policy)?;
            next.leaf = l;
            next.leaf_key = k;
            next.leaf_hosts = policy.hosts.clone();
            next.leaf_signer = 0;
        }
        Step::AddCa(_) => {
            let (ca, key) = new_ca(now, policy)?;
            next.cas.insert(0, ca);
            next.ca_key = key;
            next.leaf_signer += 1;
        }
        Step::DropOldCas => next.cas.truncate(1),
    }
    next.changed_at = Some(now);
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::self_signed::stored::{self, CA_CRT, CA_KEY, TLS_CRT, TLS_KEY};

    const DAY: i64 = 86_400;
    const T0: i64 = 1_800_000_000;

    fn policy() -> Policy {
        Policy {
            hosts: vec![
                "egress-webhook.egress-webhook.svc".into(),
                "127.0.0.1".into(),
            ],
            leaf_validity: Duration::from_secs(30 * DAY as u64),
            ca_validity: Duration::from_secs(300 * DAY as u64),
            renew_before: None,
            grace: Duration::from_secs(30),
        }
    }

    /// The content as another replica reads it back from the Secret.
    fn reread(s: &Stored) -> Stored {
        let annotations = [(
            stored::CHANGED_AT.to_string(),
            s.changed_at.unwrap().to_string(),
        )]
        .into();
        stored::parse(&stored::data_of(s), &annotations).expect("our own content parses")
    }

    #[test]
    fn a_fresh_leaf_is_kept_until_a_third_of_its_lifetime_remains() {
        let p = policy();
        let s = reread(&fresh(T0, &p).unwrap());
        assert_eq!(s.leaf_signer, 0);
        assert_eq!(plan(&s, T0, &p), Step::Keep);
        // Lifetime 30 days and a minute (notBefore is a minute back): due with 10 days left.
        assert_eq!(plan(&s, T0 + 19 * DAY, &p), Step::Keep);
        assert!(matches!(
            plan(&s, T0 + 20 * DAY + 61, &p),
            Step::IssueLeaf(_)
        ));
        let renewed = reread(
            &apply(&s, &plan(&s, T0 + 21 * DAY, &p), T0 + 21 * DAY, &p)
                .unwrap()
                .unwrap(),
        );
        assert!(renewed.leaf.not_after > s.leaf.not_after);
        assert_eq!(renewed.cas, s.cas, "a leaf renewal keeps the CA");
        assert_ne!(renewed.leaf_key, s.leaf_key, "with a new key");
        assert_eq!(plan(&renewed, T0 + 21 * DAY, &p), Step::Keep);
    }

    #[test]
    fn an_explicit_renew_before_wins_over_the_third() {
        let p = Policy {
            renew_before: Some(Duration::from_secs(60)),
            ..policy()
        };
        let s = fresh(T0, &p).unwrap();
        let expiry = s.leaf.not_after;
        assert_eq!(plan(&s, expiry - 61, &p), Step::Keep);
        assert!(matches!(plan(&s, expiry - 60, &p), Step::IssueLeaf(_)));
        assert!(
            matches!(plan(&s, expiry + 5, &p), Step::IssueLeaf(_)),
            "expired"
        );
    }

    #[test]
    fn a_leaf_for_other_hosts_is_reissued() {
        let p = policy();
        let s = reread(&fresh(T0, &p).unwrap());
        let moved = Policy {
            hosts: vec!["other.egress-webhook.svc".into()],
            ..policy()
        };
        assert!(matches!(plan(&s, T0, &moved), Step::IssueLeaf(_)));
    }

    #[test]
    fn a_ca_rotation_keeps_every_served_leaf_trusted() {
        let p = policy();
        let s0 = reread(&fresh(T0, &p).unwrap());
        // CA lifetime 300 days: due with 100 days left.
        let t1 = T0 + 201 * DAY;
        let step = plan(&s0, t1, &p);
        assert!(matches!(step, Step::AddCa(_)), "{step:?}");
        let s1 = reread(&apply(&s0, &step, t1, &p).unwrap().unwrap());
        assert_eq!(s1.cas.len(), 2);
        assert_eq!(s1.cas[1], s0.cas[0], "the old CA is still trusted");
        assert_eq!(s1.leaf, s0.leaf, "the old leaf still serves");
        assert_eq!(s1.leaf_signer, 1);
        assert!(stored::ca_bundle(&s1).starts_with(&s1.cas[0].pem));
        // Until every caBundle holds the new CA, nothing more.
        assert_eq!(plan(&s1, t1 + 29, &p), Step::Keep);
        let t2 = t1 + 30;
        let step = plan(&s1, t2, &p);
        assert!(matches!(step, Step::IssueLeaf(_)), "{step:?}");
        let s2 = reread(&apply(&s1, &step, t2, &p).unwrap().unwrap());
        assert_eq!(s2.leaf_signer, 0, "the new leaf is signed by the new CA");
        assert_eq!(
            s2.cas.len(),
            2,
            "both CAs until every replica serves the new leaf"
        );
        assert_eq!(plan(&s2, t2 + 29, &p), Step::Keep);
        let t3 = t2 + 30;
        assert_eq!(plan(&s2, t3, &p), Step::DropOldCas);
        let s3 = reread(&apply(&s2, &Step::DropOldCas, t3, &p).unwrap().unwrap());
        assert_eq!(s3.cas, s2.cas[..1]);
        assert_eq!(plan(&s3, t3 + DAY, &p), Step::Keep);
    }

    #[test]
    fn a_leaf_never_outlives_its_ca() {
        let p = Policy {
            ca_validity: Duration::from_secs(10 * DAY as u64),
            renew_before: Some(Duration::from_secs(DAY as u64)),
            ..policy()
        };
        let s = fresh(T0, &p).unwrap();
        assert_eq!(s.leaf.not_after, s.cas[0].not_after);
    }

    #[test]
    fn renew_before_must_be_shorter_than_each_validity() {
        let p = Policy {
            renew_before: Some(Duration::from_secs(31 * DAY as u64)),
            ..policy()
        };
        let e = p.check().unwrap_err();
        assert!(e.contains("--self-signed-validity"), "{e}");
        assert!(policy().check().is_ok());
    }

    #[test]
    fn unusable_data_names_the_field() {
        let p = policy();
        let good = stored::data_of(&fresh(T0, &p).unwrap());
        let other = stored::data_of(&fresh(T0, &p).unwrap());
        let none = Default::default();
        let with = |k: &str, v: Vec<u8>| {
            let mut d = good.clone();
            d.insert(k.to_string(), v);
            d
        };
        let field = |d| stored::parse(&d, &none).unwrap_err();
        assert_eq!(field(with(TLS_CRT, b"garbage".to_vec())).field, TLS_CRT);
        assert_eq!(field(with(TLS_KEY, other[TLS_KEY].clone())).field, TLS_KEY);
        assert_eq!(field(with(CA_KEY, other[CA_KEY].clone())).field, CA_KEY);
        // A leaf and key that match each other but come from another CA.
        let foreign = with(TLS_CRT, other[TLS_CRT].clone());
        let foreign = {
            let mut d = foreign;
            d.insert(TLS_KEY.into(), other[TLS_KEY].clone());
            d
        };
        let e = field(foreign);
        assert_eq!(
            (e.field, e.message.as_str()),
            (TLS_CRT, "not signed by any CA in ca.crt")
        );
        let mut missing = good.clone();
        missing.remove(CA_CRT);
        assert_eq!(field(missing).to_string(), "data[ca.crt]: missing");
    }
}
