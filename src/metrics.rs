//! Prometheus metrics of the process (text exposition format on `/metrics`): the admission
//! server's and the companion controller's. A module of its own so that both record into one
//! registry without importing each other.
//!
//! Label values are never taken from a request body: every label is one of a fixed set (kinds we
//! write, operations, verdicts, rule ids of the catalogue).

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// ExternalService, VirtualGateway, AccessPolicy or other (`admission::labels`).
    pub kind: &'static str,
    /// CREATE, UPDATE, DELETE, CONNECT or other.
    pub operation: &'static str,
    pub endpoint: &'static str,
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub rule: &'static str,
    pub severity: &'static str,
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
pub struct ParentKindLabels {
    /// ExternalService, VirtualGateway or AccessPolicy
    pub parent_kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    /// get or list
    pub verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// repair (a companion someone else changed or deleted, put back), orphan (companions of a
    /// parent that does not exist, removed), sync (companions following a change of their
    /// inputs), conflict, error
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// mtls, network or none
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// untrusted (chain or validity) or name (not an allowed name)
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusWriteLabels {
    /// ExternalService, VirtualGateway or AccessPolicy
    pub parent_kind: String,
    /// ok or error
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// CompanionsCreated, CompanionsUpdated, Repaired, WriteRefused, OrphanRemoved
    pub reason: String,
    /// sent, suppressed (rate limit) or failed
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct GuardrailLabels {
    /// An EgressGuardrail's name: a cluster-scoped object a platform team creates, so the set
    /// is as small as the number of guardrails (never a value from a review).
    pub guardrail: String,
    /// deny, warn or audit
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuardrailWriteLabels {
    /// EgressGuardrail/status, Report, PolicyReport or NetworkPolicy (lockdown)
    pub kind: &'static str,
    /// apply (server-side apply) or delete
    pub op: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Violations the last guardrail audit found, per guardrail and its action.
    pub guardrail_violations: Family<GuardrailLabels, Gauge>,
    /// Unix time of this replica's last guardrail audit pass (every replica audits its own
    /// catalog): the audit's liveness, now that an unchanged status is not written again.
    pub guardrail_last_audit: Gauge,
    /// Writes of the guardrail audit and lockdown (leader only): zero when idle.
    pub guardrail_writes: Family<GuardrailWriteLabels, Counter>,
    pub companion_writes: Family<WriteLabels, Counter>,
    pub reconcile: Family<ReconcileLabels, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<EndpointLabels, Histogram>,
    pub in_flight: Gauge,
    /// Review bytes reserved under `--max-inflight-bytes` (set when /metrics is read).
    pub inflight_bytes: Gauge,
    pub findings: Family<FindingLabels, Counter>,
    pub cert_expiry: Gauge,
    pub cert_reloads: Family<ResultLabels, Counter>,
    pub catalog_objects: Family<KindLabels, Gauge>,
    /// Parents waiting in the controller's queue (scheduled, not running).
    pub queue_depth: Gauge,
    pub reconcile_duration: Family<ParentKindLabels, Histogram>,
    /// Unix time at which every parent had been compared since the last full resync began.
    pub last_resync: Gauge,
    /// 1 while this replica holds the controller Lease.
    pub leader: Gauge,
    /// Reads the controller sends to the apiserver (its watches excluded): zero when idle.
    pub controller_reads: Family<VerbLabels, Counter>,
    /// 1 for the admission port's client-authentication mode, 0 for the others.
    pub client_auth: Family<ModeLabels, Gauge>,
    /// The mesh's outbound traffic policy the webhook sees (M1): 1 for the mode in force.
    pub mesh_outbound_policy: Family<ModeLabels, Gauge>,
    pub client_certs_rejected: Family<ReasonLabels, Counter>,
    /// 1 while the catalog's watch of a kind is connected, 0 while it fails.
    pub watch_connected: Family<KindLabels, Gauge>,
    /// Status subresource writes of parents: zero when idle.
    pub status_writes: Family<StatusWriteLabels, Counter>,
    /// Events on parents, by reason and outcome: zero when idle.
    pub events: Family<EventLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
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
        let inflight_bytes = Gauge::default();
        registry.register(
            "admission_inflight_bytes",
            "Review bytes held by reviews being answered (capped by --max-inflight-bytes)",
            inflight_bytes.clone(),
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
            "Reconciles that wrote, by outcome: repair (drift put right), orphan, sync (inputs changed); and conflicts, errors",
            reconcile.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "controller_queue_depth",
            "Parents waiting for a reconcile",
            queue_depth.clone(),
        );
        let reconcile_duration =
            Family::<ParentKindLabels, Histogram>::new_with_constructor(|| {
                Histogram::new([
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
            });
        registry.register(
            "reconcile_duration_seconds",
            "Time to reconcile the companions of one parent (compare, and write what differs)",
            reconcile_duration.clone(),
        );
        let last_resync = Gauge::default();
        registry.register(
            "controller_last_complete_resync_timestamp_seconds",
            "When every parent had last been compared with its companions (Unix time)",
            last_resync.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "controller_leader",
            "1 while this replica holds the controller Lease and reconciles",
            leader.clone(),
        );
        let controller_reads = Family::<VerbLabels, Counter>::default();
        registry.register(
            "controller_reads",
            "Requests the controller sent to read from the apiserver (watches excluded), by verb",
            controller_reads.clone(),
        );
        let client_auth = Family::<ModeLabels, Gauge>::default();
        registry.register(
            "client_auth",
            "How the admission port knows its caller is the apiserver: 1 for the mode in force (mtls, network, none)",
            client_auth.clone(),
        );
        let mesh_outbound_policy = Family::<ModeLabels, Gauge>::default();
        registry.register(
            "mesh_outbound_policy",
            "The mesh's outbound traffic policy from the istio ConfigMaps in istio-system: 1 for the mode in force (ALLOW_ANY, REGISTRY_ONLY); absent while not known",
            mesh_outbound_policy.clone(),
        );
        let client_certs_rejected = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "client_certificates_rejected",
            "Client certificates refused in the TLS handshake, by reason (untrusted, name)",
            client_certs_rejected.clone(),
        );
        let watch_connected = Family::<KindLabels, Gauge>::default();
        registry.register(
            "watch_connected",
            "1 while the catalog's watch of a kind is connected to the apiserver; 0 while it fails and reviews are answered from the cache",
            watch_connected.clone(),
        );
        let status_writes = Family::<StatusWriteLabels, Counter>::default();
        registry.register(
            "status_writes",
            "Status writes of ExternalServices, VirtualGateways and AccessPolicies, by kind and outcome",
            status_writes.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Kubernetes Events on parents, by reason and outcome (sent, suppressed by the rate limit, failed)",
            events.clone(),
        );
        let guardrail_violations = Family::<GuardrailLabels, Gauge>::default();
        registry.register(
            "guardrail_violations",
            "Objects' violations of each EgressGuardrail found by the last audit pass, by guardrail and enforcement action",
            guardrail_violations.clone(),
        );
        let guardrail_last_audit = Gauge::default();
        registry.register(
            "guardrail_last_audit_timestamp_seconds",
            "When this replica's guardrail audit last completed a pass (Unix time); a status is written only when its results change",
            guardrail_last_audit.clone(),
        );
        let guardrail_writes = Family::<GuardrailWriteLabels, Counter>::default();
        registry.register(
            "guardrail_writes",
            "Requests that write guardrail results and lockdown NetworkPolicies (EgressGuardrail/status, Report, PolicyReport, NetworkPolicy), by kind and operation (apply, delete); zero while nothing changes",
            guardrail_writes.clone(),
        );
        Metrics {
            registry,
            guardrail_violations,
            guardrail_last_audit,
            guardrail_writes,
            watch_connected,
            status_writes,
            events,
            client_auth,
            mesh_outbound_policy,
            client_certs_rejected,
            queue_depth,
            reconcile_duration,
            last_resync,
            leader,
            controller_reads,
            companion_writes,
            reconcile,
            requests,
            duration,
            in_flight,
            inflight_bytes,
            findings,
            cert_expiry,
            cert_reloads,
            catalog_objects,
        }
    }

    /// Record a poll of the certificate files that found a change: `Some(not_after)` when the
    /// new files loaded (`not_after` when it could be read), `None` when they did not.
    pub fn cert_reloaded(&self, loaded: Option<Option<i64>>) {
        let result = match loaded {
            Some(not_after) => {
                if let Some(t) = not_after {
                    self.cert_expiry.set(t);
                }
                "loaded"
            }
            None => "failed",
        };
        self.cert_reloads
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// The admission port's client-authentication mode: 1 for `mode`, 0 for the other `modes`.
    pub fn set_client_auth(&self, mode: &str, modes: &[&str]) {
        for &m in modes {
            self.client_auth
                .get_or_create(&ModeLabels {
                    mode: m.to_string(),
                })
                .set(i64::from(m == mode));
        }
    }

    /// The mesh's outbound traffic policy: 1 for `mode`, 0 for the other.
    pub fn set_mesh_outbound_policy(&self, mode: crate::core::mesh_config::OutboundMode) {
        use crate::core::mesh_config::OutboundMode;
        for m in [OutboundMode::AllowAny, OutboundMode::RegistryOnly] {
            self.mesh_outbound_policy
                .get_or_create(&ModeLabels {
                    mode: m.as_str().to_string(),
                })
                .set(i64::from(m == mode));
        }
    }

    /// Count one client certificate refused (`reason`: untrusted, name).
    pub fn client_certificate_rejected(&self, reason: &'static str) {
        self.client_certs_rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Count one companion request sent to the apiserver (`op`: create, update, delete).
    pub fn companion_write(&self, kind: &str, op: &'static str) {
        self.companion_writes
            .get_or_create(&WriteLabels {
                kind: kind.to_string(),
                op: op.to_string(),
            })
            .inc();
    }

    /// Count one request of the guardrail audit or lockdown sent to the apiserver, whatever its
    /// outcome (`op`: apply, delete): what an idle cluster must never see.
    pub fn guardrail_write(&self, kind: &'static str, op: &'static str) {
        self.guardrail_writes
            .get_or_create(&GuardrailWriteLabels { kind, op })
            .inc();
    }

    /// Count one reconcile outcome.
    pub fn reconcile_outcome(&self, outcome: &'static str) {
        self.reconcile
            .get_or_create(&ReconcileLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Count one read the controller sent (`verb`: get, list).
    pub fn controller_read(&self, verb: &'static str) {
        self.controller_reads
            .get_or_create(&VerbLabels {
                verb: verb.to_string(),
            })
            .inc();
    }

    /// Count one status write (`outcome`: ok, error).
    pub fn status_write(&self, parent_kind: &str, outcome: &'static str) {
        self.status_writes
            .get_or_create(&StatusWriteLabels {
                parent_kind: parent_kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Count one event (`outcome`: sent, suppressed, failed).
    pub fn event(&self, reason: &str, outcome: &'static str) {
        self.events
            .get_or_create(&EventLabels {
                reason: reason.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Text exposition (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
