//! Keeping the caBundle of every webhook in our two configurations equal to the Secret's CAs.
//!
//! One JSON patch per configuration, touching only `clientConfig.caBundle` of the webhooks that
//! differ, each guarded by a `test` of the webhook's name at that index, so a configuration
//! reordered in between makes the patch fail (and the next poll retries) instead of writing the
//! wrong entry. Needs `get` and `patch` on both kinds, for the one name.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// What one pass found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Webhooks whose caBundle was changed.
    pub patched: Vec<String>,
    /// Configurations that do not exist (yet): retried at the next poll.
    pub missing: Vec<&'static str>,
}

#[derive(Debug, thiserror::Error)]
#[error("{kind} {name}: {action}: {source}")]
pub struct BundleError {
    pub kind: &'static str,
    pub name: String,
    pub action: &'static str,
    #[source]
    pub source: kube::Error,
}

/// The JSON patch that sets `bundle` on each webhook (name, current caBundle) that lacks it.
pub fn patch_ops(webhooks: &[(String, Option<Vec<u8>>)], bundle: &[u8]) -> Vec<serde_json::Value> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
    webhooks
        .iter()
        .enumerate()
        .filter(|(_, (_, current))| current.as_deref() != Some(bundle))
        .flat_map(|(i, (name, _))| {
            [
                json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": name}),
                json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded}),
            ]
        })
        .collect()
}

/// Set the caBundle of every webhook of the Mutating- and ValidatingWebhookConfiguration `name`.
pub async fn ensure(
    client: &kube::Client,
    name: &str,
    bundle: &[u8],
) -> Result<Outcome, BundleError> {
    let mut out = Outcome::default();
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let hooks = mutating.get_opt(name).await.map_err(|source| BundleError {
        kind: "MutatingWebhookConfiguration",
        name: name.to_string(),
        action: "reading",
        source,
    })?;
    match hooks {
        None => out.missing.push("MutatingWebhookConfiguration"),
        Some(c) => {
            let list: Vec<_> = c
                .webhooks
                .unwrap_or_default()
                .into_iter()
                .map(|w| (w.name, w.client_config.ca_bundle.map(|b| b.0)))
                .collect();
            patch(
                &mutating,
                "MutatingWebhookConfiguration",
                name,
                &list,
                bundle,
                &mut out,
            )
            .await?;
        }
    }
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let hooks = validating
        .get_opt(name)
        .await
        .map_err(|source| BundleError {
            kind: "ValidatingWebhookConfiguration",
            name: name.to_string(),
            action: "reading",
            source,
        })?;
    match hooks {
        None => out.missing.push("ValidatingWebhookConfiguration"),
        Some(c) => {
            let list: Vec<_> = c
                .webhooks
                .unwrap_or_default()
                .into_iter()
                .map(|w| (w.name, w.client_config.ca_bundle.map(|b| b.0)))
                .collect();
            patch(
                &validating,
                "ValidatingWebhookConfiguration",
                name,
                &list,
                bundle,
                &mut out,
            )
            .await?;
        }
    }
    Ok(out)
}

async fn patch<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
    webhooks: &[(String, Option<Vec<u8>>)],
    bundle: &[u8],
    out: &mut Outcome,
) -> Result<(), BundleError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let ops = patch_ops(webhooks, bundle);
    if ops.is_empty() {
        return Ok(());
    }
    let err = |source| BundleError {
        kind,
        name: name.to_string(),
        action: "patching caBundle",
        source,
    };
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| err(kube::Error::SerdeError(e)))?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(err)?;
    out.patched.extend(
        webhooks
            .iter()
            .filter(|(_, current)| current.as_deref() != Some(bundle))
            .map(|(n, _)| n.clone()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_webhooks_that_differ_are_patched_each_guarded_by_its_name() {
        let hooks = vec![
            ("validate".to_string(), Some(b"NEW".to_vec())),
            ("guard".to_string(), Some(b"OLD".to_vec())),
            ("other".to_string(), None),
        ];
        let ops = patch_ops(&hooks, b"NEW");
        assert_eq!(
            ops,
            vec![
                json!({"op": "test", "path": "/webhooks/1/name", "value": "guard"}),
                json!({"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": "TkVX"}),
                json!({"op": "test", "path": "/webhooks/2/name", "value": "other"}),
                json!({"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": "TkVX"}),
            ]
        );
        assert!(patch_ops(&hooks[..1], b"NEW").is_empty());
    }
}
