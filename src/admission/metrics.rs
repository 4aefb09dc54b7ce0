//! Prometheus metrics of the admission server (text exposition format on `/metrics`).

use super::tls::Reload;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub kind: String,
    pub operation: String,
    pub endpoint: String,
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub rule: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
    /// create, update or delete
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// repair (a companion put back or removed by the reconciler), orphan, conflict, error
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub companion_writes: Family<WriteLabels, Counter>,
    pub reconcile: Family<ReconcileLabels, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<EndpointLabels, Histogram>,
    pub in_flight: Gauge,
    pub findings: Family<FindingLabels, Counter>,
    pub cert_expiry: Gauge,
    pub cert_reloads: Family<ResultLabels, Counter>,
    pub catalog_objects: Family<KindLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("egress_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission reviews by kind, operation, endpoint and verdict",
            requests.clone(),
        );
        // Buckets from 100 µs to 5 s: a review should sit in the lowest ones.
        let duration = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0,
            ])
        });
        registry.register(
            "admission_duration_seconds",
            "Time to answer one review",
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "admission_in_flight",
            "Reviews being answered now",
            in_flight.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "findings",
            "Findings reported in admission, by rule id and severity",
            findings.clone(),
        );
        let cert_expiry = Gauge::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate (Unix time)",
            cert_expiry.clone(),
        );
        // A failed reload leaves the old certificate serving until it expires: alert on it.
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "certificate_reloads",
            "Changes of the certificate files seen, by result (loaded, failed)",
            cert_reloads.clone(),
        );
        let catalog_objects = Family::<KindLabels, Gauge>::default();
        registry.register(
            "catalog_objects",
            "Objects in the catalog by kind",
            catalog_objects.clone(),
        );
        let companion_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "companion_writes",
            "Companion Istio objects written or deleted, by kind and operation",
            companion_writes.clone(),
        );
        let reconcile = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconcile_events",
            "Reconciler outcomes: repairs (drift put right), orphans removed, apply conflicts, errors",
            reconcile.clone(),
        );
        Metrics {
            registry,
            companion_writes,
            reconcile,
            requests,
            duration,
            in_flight,
            findings,
            cert_expiry,
            cert_reloads,
            catalog_objects,
        }
    }

    /// Record a poll of the certificate files that found a change.
    pub fn cert_reloaded(&self, event: Reload) {
        let result = match event {
            Reload::Loaded { not_after } => {
                if let Some(t) = not_after {
                    self.cert_expiry.set(t);
                }
                "loaded"
            }
            Reload::Failed => "failed",
        };
        self.cert_reloads
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// Count what one companion sync wrote, by kind and operation.
    pub fn record_sync(&self, report: &crate::companions::SyncReport) {
        for (op, list) in [
            ("create", &report.created),
            ("update", &report.updated),
            ("delete", &report.deleted),
        ] {
            for id in list {
                let kind = id.split(' ').next().unwrap_or("").to_string();
                self.companion_writes
                    .get_or_create(&WriteLabels {
                        kind,
                        op: op.into(),
                    })
                    .inc();
            }
        }
    }

    /// Text exposition (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
