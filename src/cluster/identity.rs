//! The webhook's identity on the local control plane: the ServiceAccount of
//! `manifests/base/rbac.yaml` with exactly that file's ClusterRole, Lease Role and bindings, and a
//! token from the TokenRequest API, as a pod would have. The webhook never uses the admin
//! kubeconfig, so every end-to-end test also shows that the committed RBAC is sufficient.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::controlplane::ControlPlane;

use super::dev::DevError;
use super::live::MESH_NAMESPACE;
use super::webhook::{NAME, RBAC_MANIFEST, RBAC_MANIFEST_PATH};

/// How long the token is valid: longer than any test run or `make dev` session of a day (the
/// webhook does not renew it, unlike a kubelet-projected token).
pub const TOKEN_DURATION: &str = "24h";

/// The webhook's ServiceAccount, as the apiserver names it in `userInfo.username`.
pub fn service_account_user(namespace: &str) -> String {
    format!("system:serviceaccount:{namespace}:{NAME}")
}

/// The identity the webhook runs under.
#[derive(Clone, Debug)]
pub struct WebhookIdentity {
    /// `system:serviceaccount:<namespace>:egress-webhook`.
    pub name: String,
    /// The ServiceAccount's namespace (the webhook's own namespace).
    pub namespace: String,
    /// A kubeconfig that authenticates with the ServiceAccount's token (private file).
    pub kubeconfig: PathBuf,
}

/// The documents of the RBAC manifest with every namespace (of the namespaced objects and of
/// ServiceAccount subjects) set to `namespace`, but Istio's (the mesh config Role stays in
/// istio-system), preceded by those two Namespaces: the local control plane stands in for a
/// cluster with Istio installed.
pub fn rbac_objects(namespace: &str) -> Result<Vec<Value>, String> {
    let docs = serde_saphyr::from_multiple::<Value>(RBAC_MANIFEST)
        .map_err(|e| format!("{RBAC_MANIFEST_PATH}: {e}"))?;
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MESH_NAMESPACE}}),
    ];
    for mut doc in docs {
        if doc["metadata"]
            .get("namespace")
            .is_some_and(|ns| ns != MESH_NAMESPACE)
        {
            doc["metadata"]["namespace"] = json!(namespace);
        }
        if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
            for s in subjects {
                if s["kind"] == "ServiceAccount" {
                    s["namespace"] = json!(namespace);
                }
            }
        }
        out.push(doc);
    }
    Ok(out)
}

/// Applies the RBAC manifest in `namespace`, requests a token for its ServiceAccount and writes
/// a kubeconfig with it under the run directory's `users/`.
pub fn create(cp: &ControlPlane, namespace: &str) -> Result<WebhookIdentity, DevError> {
    let items = rbac_objects(namespace).map_err(DevError::Setup)?;
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    kubectl_ok(
        cp,
        &["apply", "-f", "-"],
        &list.to_string(),
        "applying the RBAC",
    )?;
    let token = kubectl_ok(
        cp,
        &[
            "create",
            "token",
            NAME,
            "-n",
            namespace,
            &format!("--duration={TOKEN_DURATION}"),
        ],
        "",
        "requesting a ServiceAccount token",
    )?;
    let token = token.trim();
    if token.is_empty() {
        return Err(DevError::Setup(
            "kubectl create token printed no token".into(),
        ));
    }
    let dir = cp.run_dir().join("users");
    std::fs::create_dir_all(&dir).map_err(|source| DevError::Io {
        context: format!("creating {}", dir.display()),
        source,
    })?;
    // The bench scripts find it by the suffix `egress-webhook.kubeconfig`.
    let kubeconfig = dir.join(format!("sa-{namespace}-{NAME}.kubeconfig"));
    let user = service_account_user(namespace);
    let text = render_kubeconfig(cp.server_url(), cp.ca_path(), &user, token);
    write_private(&kubeconfig, &text)?;
    Ok(WebhookIdentity {
        name: user,
        namespace: namespace.to_string(),
        kubeconfig,
    })
}

fn kubectl_ok(
    cp: &ControlPlane,
    args: &[&str],
    stdin: &str,
    what: &str,
) -> Result<String, DevError> {
    let out = cp.kubectl_with_stdin(args, stdin)?;
    if !out.status.success() {
        return Err(DevError::Setup(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A kubeconfig with a bearer token (JSON is YAML; quoting is then never a question).
fn render_kubeconfig(server: &str, ca: &Path, user: &str, token: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "egress-cp", "cluster": {
            "server": server,
            "certificate-authority": ca.display().to_string(),
        }}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "egress-cp", "context": {"cluster": "egress-cp", "user": user}}],
        "current-context": "egress-cp",
    })
    .to_string()
}

/// Writes `text` to a new file only its owner can read (it holds a credential).
fn write_private(path: &Path, text: &str) -> Result<(), DevError> {
    let io = |source| DevError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_objects_move_to_the_given_namespace() {
        let objs = rbac_objects("dev-ns").unwrap();
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Role",
                "RoleBinding"
            ]
        );
        for o in &objs[2..] {
            if let Some(ns) = o["metadata"].get("namespace") {
                let mesh = o["metadata"]["name"] == "egress-webhook-mesh-config";
                assert_eq!(
                    ns,
                    if mesh { "istio-system" } else { "dev-ns" },
                    "{}",
                    o["kind"]
                );
            }
            for s in o["subjects"].as_array().into_iter().flatten() {
                assert_eq!(s["namespace"], "dev-ns", "{}", o["kind"]);
            }
        }
        assert_eq!(
            service_account_user("dev-ns"),
            "system:serviceaccount:dev-ns:egress-webhook"
        );
        // The in-cluster default of `serve --writer-identity` is the same name.
        assert_eq!(
            service_account_user(crate::cluster::webhook::DEFAULT_NAMESPACE),
            crate::companions::IN_CLUSTER_IDENTITY
        );
    }
}
