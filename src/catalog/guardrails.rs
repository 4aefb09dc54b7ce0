//! The Catalog's EgressGuardrails and namespace labels (issue 14): a piece of their own, so
//! that the objects' paths (admission overlay, companions) stay as they were. Guardrails and
//! namespaces have no companions, so changing them announces no parent; the audit reads them
//! from the snapshot.

use std::collections::BTreeMap;

use crate::api::{EgressGuardrail, list, text};
use crate::core::{Snapshot, guardrails::Guardrails};

use super::{Catalog, REFRESH_TIMEOUT, Reference};

impl Catalog {
    /// Change the guardrails or namespace labels (what the watches say).
    pub fn update_guardrails<T>(&self, f: impl FnOnce(&mut Guardrails) -> T) -> T {
        // Under the writers' lock, like every change of the published snapshot.
        let _writing = self.writing();
        let mut snap = self.draft();
        let out = f(snap.guardrails_mut());
        self.publish(snap);
        out
    }

    /// Before a review in `namespace`: when a guardrail exists and the namespace's labels are
    /// not in the cache yet (a namespace created a moment ago), read them once from the
    /// apiserver, so that a guardrail is not skipped because a watch event is late. Without a
    /// refresher (a static catalog), or when the lookup fails, the cache decides. True when
    /// labels were added (decide again).
    pub async fn ensure_namespace(&self, namespace: &str) -> bool {
        let Some(refresher) = &self.refresher else {
            return false;
        };
        let unknown =
            self.read(|s| !s.guardrails().is_empty() && !s.guardrails().knows_namespace(namespace));
        if !unknown || namespace.is_empty() {
            return false;
        }
        let lookup = refresher.namespace_labels(namespace);
        match tokio::time::timeout(REFRESH_TIMEOUT, lookup).await {
            Ok(Ok(Some(labels))) => {
                tracing::info!(
                    namespace,
                    "namespace not in the cache: read its labels from the apiserver"
                );
                self.update_guardrails(|g| {
                    if !g.knows_namespace(namespace) {
                        g.set_namespace(namespace, labels);
                    }
                });
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                tracing::warn!(namespace, error = %e, "namespace lookup failed; the cache decides");
                false
            }
            Err(_) => {
                tracing::warn!(namespace, "namespace lookup timed out; the cache decides");
                false
            }
        }
    }
}

impl Catalog {
    /// G7's live lookup: fetch the VirtualGateways that `g`'s `allowedGateways` name and the
    /// cache lacks, once, and insert what exists (like [`Catalog::refresh_for`] for E22). True
    /// when something was inserted (validate again).
    pub async fn refresh_for_guardrail(&self, g: &EgressGuardrail) -> bool {
        let Some(refresher) = &self.refresher else {
            return false;
        };
        let refs = self.read(|snap| missing_gateways(g, snap));
        self.look_up(refresher.as_ref(), refs).await
    }
}

/// The VirtualGateways `g`'s `allowedGateways` name (both name and namespace given: an entry
/// missing either is G7's error whatever the apiserver holds) that `snap` does not have.
pub fn missing_gateways(g: &EgressGuardrail, snap: &Snapshot) -> Vec<Reference> {
    let mut out: Vec<Reference> = list(&g.spec.allowed_gateways)
        .iter()
        .map(|gw| (text(&gw.namespace), text(&gw.name)))
        .filter(|(ns, name)| {
            !ns.is_empty() && !name.is_empty() && snap.virtual_gateway(ns, name).is_none()
        })
        .map(|(ns, name)| Reference::VirtualGateway {
            namespace: ns.to_string(),
            name: name.to_string(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A namespace's labels, as [`super::Refresher::namespace_labels`] returns them.
pub type NamespaceLabels = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::future::BoxFuture;

    use super::*;
    use crate::catalog::Refresher;
    use crate::core::{Object, Options};

    fn guardrail(gateways: serde_json::Value) -> EgressGuardrail {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "policy.egress-webhook.dev/v1alpha1", "kind": "EgressGuardrail",
            "metadata": {"name": "g"}, "spec": {"allowedGateways": gateways}
        }))
        .unwrap()
    }

    fn vg(ns: &str, name: &str) -> Object {
        Object::from_json(&serde_json::json!({
            "apiVersion": "networking.gloo.solo.io/v2", "kind": "VirtualGateway",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"listeners": [{"port": {"number": 80}}]}
        }))
        .unwrap()
    }

    /// The apiserver's answer: what exists among the references asked for.
    struct Holds(Vec<Object>);
    impl Refresher for Holds {
        fn fetch<'a>(
            &'a self,
            refs: &'a [Reference],
        ) -> BoxFuture<'a, Result<Vec<Object>, String>> {
            Box::pin(async move {
                Ok(self
                    .0
                    .iter()
                    .filter(|o| {
                        refs.contains(&Reference::VirtualGateway {
                            namespace: o.namespace().to_string(),
                            name: o.name().to_string(),
                        })
                    })
                    .cloned()
                    .collect())
            })
        }
    }

    #[test]
    fn missing_gateways_are_the_complete_references_the_snapshot_lacks() {
        let opts = Options::default();
        let g = guardrail(serde_json::json!([
            {"name": "cached", "namespace": "gw"},
            {"name": "new", "namespace": "gw"},
            {"name": "new", "namespace": "gw"},
            {"name": "no-namespace"},
        ]));
        let catalog = Catalog::from_objects(vec![vg("gw", "cached")], &opts);
        assert_eq!(
            catalog.read(|s| missing_gateways(&g, s)),
            [Reference::VirtualGateway {
                namespace: "gw".into(),
                name: "new".into()
            }]
        );
    }

    #[tokio::test]
    async fn a_gateway_the_cache_lacks_is_looked_up_and_inserted() {
        let opts = Options::default();
        let g = guardrail(serde_json::json!([{"name": "new", "namespace": "gw"}]));
        assert!(
            !Catalog::new(&opts).refresh_for_guardrail(&g).await,
            "no refresher, no lookup"
        );
        let live = Catalog::new(&opts).with_refresher(Arc::new(Holds(vec![vg("gw", "new")])));
        assert!(live.refresh_for_guardrail(&g).await);
        assert!(live.read(|s| s.virtual_gateway("gw", "new").is_some()));
        let absent = Catalog::new(&opts).with_refresher(Arc::new(Holds(Vec::new())));
        assert!(
            !absent.refresh_for_guardrail(&g).await,
            "not in the apiserver either"
        );
    }
}
