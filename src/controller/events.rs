//! Kubernetes Events (`events.k8s.io/v1`, reporting controller `egress-webhook`) on parents:
//! what the controller did to their companions, so that `kubectl describe` tells the owner.
//!
//! Sent with kube-runtime's [`Recorder`], which aggregates an event repeated within minutes into
//! one object with a `series` (a PATCH instead of a new Event). It has no rate limit, and every
//! repeat is still one request; client-go's spam filter has no kube-rs counterpart. So the two
//! limits below are ours, so that churn never turns into an event storm:
//! - per parent and reason, at most one event per [`PER_PARENT_INTERVAL`] (a parent whose write
//!   keeps failing shows one `WriteRefused` a minute, not one per retry);
//! - in all, a token bucket of [`BURST`] events refilled at [`PER_SECOND`] (a re-list that
//!   repairs a thousand parents sends a few dozen events, and counts the rest).
//!
//! Events are sent from a task of their own: a reconcile (and the admission waiting on its
//! lock) never waits for one. Every event is counted in `egress_webhook_events_total{reason,
//! outcome=sent|suppressed|failed}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::core::expand::ParentRef;
use crate::metrics::Metrics;

/// One event of a reason per parent in this long.
pub const PER_PARENT_INTERVAL: Duration = Duration::from_secs(60);
/// Events at once before the rate applies.
pub const BURST: f64 = 25.0;
/// Events per second, sustained.
pub const PER_SECOND: f64 = 2.0;
/// `note` is limited to 1 kB by the API.
const NOTE_LIMIT: usize = 1000;

/// What happened, as an event reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Companions written for a new parent.
    CompanionsCreated,
    /// Companions changed to follow a change of the parent or of what it selects.
    CompanionsUpdated,
    /// A companion someone else deleted or changed was put back.
    Repaired,
    /// The apiserver refused a companion write (Warning).
    WriteRefused,
    /// Companions of a parent that no longer exists were deleted.
    OrphanRemoved,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::CompanionsCreated => "CompanionsCreated",
            Reason::CompanionsUpdated => "CompanionsUpdated",
            Reason::Repaired => "Repaired",
            Reason::WriteRefused => "WriteRefused",
            Reason::OrphanRemoved => "OrphanRemoved",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Reason::CompanionsCreated => "Create",
            Reason::CompanionsUpdated | Reason::Repaired | Reason::WriteRefused => "Update",
            Reason::OrphanRemoved => "Delete",
        }
    }

    fn type_(self) -> EventType {
        match self {
            Reason::WriteRefused => EventType::Warning,
            _ => EventType::Normal,
        }
    }
}

struct Limits {
    last: HashMap<(ParentRef, Reason), Instant>,
    tokens: f64,
    refilled: Instant,
}

impl Limits {
    /// May an event of `reason` on `p` go now? (Takes a token when it may.)
    fn allow(&mut self, p: &ParentRef, reason: Reason, now: Instant) -> bool {
        let key = (p.clone(), reason);
        if self
            .last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < PER_PARENT_INTERVAL)
        {
            return false;
        }
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * PER_SECOND).min(BURST);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        // Entries older than the interval decide nothing any more.
        if self.last.len() > 10_000 {
            self.last
                .retain(|_, t| now.duration_since(*t) < PER_PARENT_INTERVAL);
        }
        self.last.insert(key, now);
        true
    }
}

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    metrics: Arc<Metrics>,
    limits: Arc<Mutex<Limits>>,
}

impl Events {
    /// `instance`: this replica (its leader-election identity).
    pub fn new(client: Client, instance: Option<String>, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: crate::companions::FIELD_MANAGER.to_string(),
            instance,
        };
        Events {
            recorder: Recorder::new(client, reporter),
            metrics,
            limits: Arc::new(Mutex::new(Limits {
                last: HashMap::new(),
                tokens: BURST,
                refilled: Instant::now(),
            })),
        }
    }

    /// Publish `reason` on parent `p` (its `uid` when known: `kubectl describe` matches by it),
    /// unless a limit holds it back.
    pub fn publish(&self, p: &ParentRef, uid: Option<String>, reason: Reason, note: String) {
        let allowed =
            self.limits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(p, reason, Instant::now());
        if !allowed {
            self.metrics.event(reason.as_str(), "suppressed");
            return;
        }
        let reference = ObjectReference {
            api_version: Some(format!("{}/{}", p.kind.group(), crate::api::VERSION)),
            kind: Some(p.kind.as_str().to_string()),
            namespace: Some(p.namespace.clone()),
            name: Some(p.name.clone()),
            uid,
            ..Default::default()
        };
        let event = Event {
            type_: reason.type_(),
            reason: reason.as_str().to_string(),
            note: Some(cut(note)),
            action: reason.action().to_string(),
            secondary: None,
        };
        let (recorder, metrics) = (self.recorder.clone(), self.metrics.clone());
        tokio::spawn(async move {
            match recorder.publish(&event, &reference).await {
                Ok(()) => metrics.event(reason.as_str(), "sent"),
                Err(e) => {
                    metrics.event(reason.as_str(), "failed");
                    tracing::warn!(error = %e, reason = reason.as_str(), object = ?reference.name, "publishing an event failed");
                }
            }
        });
    }
}

fn cut(mut s: String) -> String {
    if s.len() > NOTE_LIMIT {
        let mut end = NOTE_LIMIT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::object::GlooKind;

    #[test]
    fn one_event_per_parent_and_reason_a_minute_and_a_bounded_rate_in_all() {
        let t0 = Instant::now();
        let mut l = Limits {
            last: HashMap::new(),
            tokens: BURST,
            refilled: t0,
        };
        let a = ParentRef::new(GlooKind::ExternalService, "ns", "a");
        assert!(l.allow(&a, Reason::WriteRefused, t0));
        assert!(!l.allow(&a, Reason::WriteRefused, t0 + Duration::from_secs(59)));
        assert!(l.allow(&a, Reason::Repaired, t0 + Duration::from_secs(1)));
        assert!(l.allow(&a, Reason::WriteRefused, t0 + Duration::from_secs(61)));
        // A storm over many parents at one instant: the burst, then nothing.
        let t1 = t0 + Duration::from_secs(120);
        let sent = (0..1000)
            .filter(|i| {
                let p = ParentRef::new(GlooKind::AccessPolicy, "ns", &format!("p{i}"));
                l.allow(&p, Reason::Repaired, t1)
            })
            .count();
        assert_eq!(sent, BURST as usize);
        // Ten seconds later, the rate's worth.
        let later = (0..1000)
            .filter(|i| {
                let p = ParentRef::new(GlooKind::AccessPolicy, "other", &format!("p{i}"));
                l.allow(&p, Reason::Repaired, t1 + Duration::from_secs(10))
            })
            .count();
        assert_eq!(later, (10.0 * PER_SECOND) as usize);
    }
}
