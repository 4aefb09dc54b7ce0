//! Lockdown NetworkPolicies in the cluster (issue 14 item 6; the policy itself is
//! `core::lockdown`): after each audit tick the leader applies the desired policy of every
//! namespace labelled `egress-webhook.dev/lockdown: "true"` when it differs from what it last
//! wrote, and deletes ours where the label went. Ours are found by label and name once, so a
//! namespace unlabelled while the webhook was down is cleaned up too. Every
//! [`REAPPLY_PASSES`] ticks each policy is applied again (server-side apply of unchanged content
//! changes nothing), which puts back one edited or deleted by hand.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::Value;

use crate::companions::FIELD_MANAGER;
use crate::core::expand::metadata::{MANAGED_BY, MANAGER};
use crate::core::lockdown::POLICY_NAME;

/// Ticks between two applies of an unchanged policy (drift repair without a watch).
pub const REAPPLY_PASSES: u32 = 10;

#[derive(Default)]
pub struct Lockdown {
    /// Namespace → the policy last applied there (`Null`: one of ours of unknown content).
    written: BTreeMap<String, Value>,
    listed: bool,
    passes: u32,
}

impl Lockdown {
    pub async fn sync(&mut self, client: &Client, want: BTreeMap<String, Value>) {
        self.passes = self.passes.wrapping_add(1);
        if self.passes.is_multiple_of(REAPPLY_PASSES) {
            // Forget what was applied: every wanted policy is applied again below.
            for v in self.written.values_mut() {
                *v = Value::Null;
            }
        }
        if !self.listed {
            let all: Api<NetworkPolicy> = Api::all(client.clone());
            let ours = ListParams::default()
                .labels(&format!("{MANAGED_BY}={MANAGER}"))
                .fields(&format!("metadata.name={POLICY_NAME}"));
            match all.list_metadata(&ours).await {
                Ok(list) => {
                    for np in list.items {
                        if let Some(ns) = np.metadata.namespace {
                            self.written.entry(ns).or_insert(Value::Null);
                        }
                    }
                    self.listed = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing our lockdown NetworkPolicies failed");
                    return;
                }
            }
        }
        let stale: Vec<String> = self
            .written
            .keys()
            .filter(|ns| !want.contains_key(*ns))
            .cloned()
            .collect();
        for ns in stale {
            let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
            match api.delete(POLICY_NAME, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(namespace = %ns, "lockdown label gone: NetworkPolicy deleted");
                    self.written.remove(&ns);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.written.remove(&ns);
                }
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %e, "deleting the lockdown NetworkPolicy failed")
                }
            }
        }
        for (ns, np) in want {
            if self.written.get(&ns) == Some(&np) {
                continue;
            }
            let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch(POLICY_NAME, &params, &Patch::Apply(&np)).await {
                Ok(_) => {
                    tracing::info!(namespace = %ns, "lockdown NetworkPolicy applied");
                    self.written.insert(ns, np);
                }
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %e, "applying the lockdown NetworkPolicy failed")
                }
            }
        }
    }
}
