//! The Catalog's EgressGuardrails and namespace labels (issue 14): a piece of their own, so
//! that the objects' paths (admission overlay, companions) stay as they were. Guardrails and
//! namespaces have no companions, so changing them announces no parent; the audit reads them
//! from the snapshot.

use std::collections::BTreeMap;

use crate::core::guardrails::Guardrails;

use super::{Catalog, REFRESH_TIMEOUT};

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

/// A namespace's labels, as [`super::Refresher::namespace_labels`] returns them.
pub type NamespaceLabels = BTreeMap<String, String>;
