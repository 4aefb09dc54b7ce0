//! The real local control plane (etcd + kube-apiserver + kube-controller-manager + kubectl, built
//! by hack/controlplane/build.sh) with the project's CRDs, the real Istio CRDs and the running
//! example, before any webhook exists: objects are simply stored.
//!
//! Missing binaries are a failure, not a skip, with the message saying how to build them. The
//! only way to skip is `EGRESS_SKIP_CLUSTER_TESTS=1`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egress_webhook::controlplane::{ControlPlane, Error, Options};
use serde_json::Value;

fn skip_cluster_tests() -> bool {
    let skip = std::env::var("EGRESS_SKIP_CLUSTER_TESTS").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("SKIPPED: EGRESS_SKIP_CLUSTER_TESTS=1, so no control plane is started");
    }
    skip
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Polls `f` every 100 ms until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("kubectl printed invalid JSON ({e}): {s}"))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Listening TCP sockets of `pid` as (local address hex, port hex), read from /proc: the inodes
/// behind its socket fds, matched against the LISTEN (0A) rows of its network namespace.
fn listening_sockets(pid: u32) -> Vec<String> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                out.push(cols[1].to_string());
            }
        }
    }
    out
}

/// 127.0.0.1 (also as a v4-mapped v6 address) or ::1, in /proc/net's hex notation.
fn is_loopback(local: &str) -> bool {
    let addr = local.split(':').next().unwrap_or_default();
    addr == "0100007F"
        || addr == "0000000000000000FFFF00000100007F"
        || addr == "00000000000000000000000001000000"
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn real_control_plane_stores_the_running_example_and_collects_garbage() {
    if skip_cluster_tests() {
        return;
    }
    let test_start = Instant::now();
    let cp = ControlPlane::start(Options::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "control plane at {} ready in {:.2?} (run dir {})",
        cp.server_url(),
        cp.startup_time(),
        cp.run_dir().display()
    );
    let pids = cp.pids();
    let names: Vec<&str> = pids.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["etcd", "kube-apiserver", "kube-controller-manager"]);

    // Everything listens on loopback only (kube-controller-manager listens nowhere).
    for (name, pid) in &pids {
        let socks = listening_sockets(*pid);
        assert!(
            socks.iter().all(|s| is_loopback(s)),
            "{name} listens beyond loopback: {socks:?}"
        );
        let min = match *name {
            "etcd" => 2, // client and peer
            "kube-apiserver" => 1,
            _ => 0,
        };
        assert!(
            socks.len() >= min,
            "{name} should listen on {min}+ sockets: {socks:?}"
        );
    }

    // The version stamped by build.sh, on both ends.
    let version = json(&cp.kubectl_ok(&["version", "-o", "json"]).unwrap());
    assert_eq!(
        version["clientVersion"]["gitVersion"], "v1.34.4",
        "{version}"
    );
    assert_eq!(
        version["serverVersion"]["gitVersion"], "v1.34.4",
        "{version}"
    );

    // CRDs: ours and the real Istio ones, all Established.
    let crd_start = Instant::now();
    cp.install_crds(&[
        repo("manifests/crds/gloo-egress-crds.yaml"),
        repo("manifests/istio/crds-1.24.6.yaml"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "CRDs installed and Established in {:.2?}",
        crd_start.elapsed()
    );
    let crds = cp.kubectl_ok(&["get", "crd", "-o", "name"]).unwrap();
    for crd in [
        "externalservices.networking.gloo.solo.io",
        "virtualgateways.networking.gloo.solo.io",
        "accesspolicies.security.policy.gloo.solo.io",
        "virtualservices.networking.istio.io",
        "serviceentries.networking.istio.io",
        "authorizationpolicies.security.istio.io",
    ] {
        assert!(
            crds.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{crd}\n"
            )),
            "{crd}: {crds}"
        );
    }

    // The running example: no webhook yet, so everything is stored as written.
    let examples = repo("manifests/examples");
    let created = cp
        .kubectl_ok(&["create", "-f", &examples.display().to_string()])
        .unwrap();
    for obj in [
        "namespace/istio-egress created",
        "service/istio-egressgateway created",
        "virtualgateway.networking.gloo.solo.io/egress-vg created",
        "externalservice.networking.gloo.solo.io/httpbin.org created",
        "accesspolicy.security.policy.gloo.solo.io/egress-access-policy created",
    ] {
        assert!(created.contains(obj), "{obj} missing from:\n{created}");
    }
    let es = json(
        &cp.kubectl_ok(&[
            "get",
            "externalservice",
            "httpbin.org",
            "-n",
            "global",
            "-o",
            "json",
        ])
        .unwrap(),
    );
    assert_eq!(
        es["spec"]["hosts"],
        serde_json::json!(["httpbin.org"]),
        "{es}"
    );
    let port = &es["spec"]["ports"][0];
    assert_eq!(port["number"], 443, "{es}");
    assert_eq!(port["protocol"], "HTTPS", "{es}");
    assert_eq!(port["egressGatewayRoutes"]["portMatch"], 80, "{es}");
    assert_eq!(
        port["egressGatewayRoutes"]["virtualGatewayRefs"][0]["name"], "egress-vg",
        "{es}"
    );
    // Nothing was generated: no webhook, no controller of ours.
    let ses = cp
        .kubectl_ok(&["get", "serviceentries", "-A", "-o", "name"])
        .unwrap();
    assert_eq!(ses.trim(), "", "no ServiceEntry should exist yet");
    // The service-account controller gave the new namespaces their `default` ServiceAccount.
    assert!(
        eventually(Duration::from_secs(30), || cp
            .kubectl(&["get", "serviceaccount", "default", "-n", "bookinfo"])
            .is_ok_and(|o| o.status.success())),
        "no default ServiceAccount in bookinfo"
    );

    // The Istio schemas are real: a valid VirtualService is accepted, an unknown field is
    // rejected by strict field validation.
    let vs = |extra: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: httpbin{}\n  \
             namespace: bookinfo\nspec:\n  hosts: [httpbin.org]\n  http:\n  - route:\n    - destination:\n        \
             host: httpbin.org\n{extra}",
            if extra.is_empty() { "" } else { "-bad" }
        )
    };
    let ok = cp
        .kubectl_with_stdin(&["create", "--validate=strict", "-f", "-"], &vs(""))
        .unwrap();
    assert!(
        ok.status.success(),
        "valid VirtualService rejected: {}",
        stderr(&ok)
    );
    let bad = cp
        .kubectl_with_stdin(
            &["create", "--validate=strict", "-f", "-"],
            &vs("  bogusField: 1\n"),
        )
        .unwrap();
    assert!(!bad.status.success(), "unknown field accepted");
    assert!(
        stderr(&bad).contains("unknown field \"spec.bogusField\""),
        "{}",
        stderr(&bad)
    );
    let gone = cp
        .kubectl(&["get", "virtualservice", "httpbin-bad", "-n", "bookinfo"])
        .unwrap();
    assert!(
        !gone.status.success(),
        "the rejected VirtualService was stored"
    );

    // Garbage collection by kube-controller-manager: a dependent ConfigMap goes with its owner.
    cp.kubectl_ok(&[
        "create",
        "configmap",
        "owner",
        "-n",
        "bookinfo",
        "--from-literal=k=v",
    ])
    .unwrap();
    let uid = cp
        .kubectl_ok(&[
            "get",
            "configmap",
            "owner",
            "-n",
            "bookinfo",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .unwrap();
    assert!(!uid.is_empty());
    let dependent = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dependent\n  namespace: bookinfo\n  ownerReferences:\n  \
         - apiVersion: v1\n    kind: ConfigMap\n    name: owner\n    uid: {uid}\ndata:\n  k: \"v\"\n"
    );
    let out = cp
        .kubectl_with_stdin(&["create", "-f", "-"], &dependent)
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let gc_start = Instant::now();
    cp.kubectl_ok(&[
        "delete",
        "configmap",
        "owner",
        "-n",
        "bookinfo",
        "--wait=false",
    ])
    .unwrap();
    let collected = eventually(Duration::from_secs(30), || {
        cp.kubectl(&[
            "get",
            "configmap",
            "dependent",
            "-n",
            "bookinfo",
            "--ignore-not-found",
            "-o",
            "name",
        ])
        .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
    });
    assert!(
        collected,
        "dependent ConfigMap not garbage-collected within 30 s"
    );
    eprintln!(
        "dependent collected {:.2?} after the owner's delete",
        gc_start.elapsed()
    );

    // Another identity signed by the same CA: authenticated as itself and subject to RBAC.
    let user = cp
        .mint_user("egress-webhook", &["egress:webhooks"])
        .unwrap();
    let as_user = |args: &[&str]| {
        cp.kubectl_command_for(&user.kubeconfig)
            .args(args)
            .output()
            .unwrap()
    };
    let whoami = as_user(&["auth", "whoami", "-o", "json"]);
    assert!(whoami.status.success(), "{}", stderr(&whoami));
    let review = json(&String::from_utf8_lossy(&whoami.stdout));
    assert_eq!(
        review["status"]["userInfo"]["username"], "egress-webhook",
        "{review}"
    );
    let groups = review["status"]["userInfo"]["groups"].to_string();
    assert!(
        groups.contains("egress:webhooks") && groups.contains("system:authenticated"),
        "{groups}"
    );
    let denied = as_user(&["get", "configmaps", "-n", "bookinfo"]);
    assert!(
        !denied.status.success() && stderr(&denied).contains("Forbidden"),
        "{}",
        stderr(&denied)
    );
    cp.kubectl_ok(&[
        "create",
        "role",
        "cm-reader",
        "-n",
        "bookinfo",
        "--verb=get,list",
        "--resource=configmaps",
    ])
    .unwrap();
    cp.kubectl_ok(&[
        "create",
        "rolebinding",
        "cm-reader",
        "-n",
        "bookinfo",
        "--role=cm-reader",
        "--group=egress:webhooks",
    ])
    .unwrap();
    // RBAC changes reach the authorizer through an informer: poll, don't assume.
    assert!(
        eventually(Duration::from_secs(10), || as_user(&[
            "get",
            "configmaps",
            "-n",
            "bookinfo"
        ])
        .status
        .success()),
        "RoleBinding did not take effect"
    );
    assert!(matches!(cp.mint_user("", &[]), Err(Error::InvalidUser(_))));

    // stop() leaves no process and no run directory.
    let run_dir = cp.run_dir().to_path_buf();
    let stop_start = Instant::now();
    cp.stop().unwrap();
    eprintln!("stopped in {:.2?}", stop_start.elapsed());
    for (name, pid) in &pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{name} (pid {pid}) still exists after stop()"
        );
    }
    // EGRESS_CP_KEEP_RUN_DIR=1 keeps it on purpose, for reading the logs.
    if !Options::default().keep_run_dir {
        assert!(!run_dir.exists(), "{} left behind", run_dir.display());
    }
    eprintln!("whole test took {:.2?}", test_start.elapsed());
}

#[test]
fn missing_binaries_fail_and_say_how_to_build_them() {
    let empty = std::env::temp_dir().join(format!("egress-cp-empty-{}", std::process::id()));
    let opts = Options {
        bin_dir: Some(empty),
        ..Options::default()
    };
    let err = ControlPlane::start(opts).expect_err("started without binaries");
    assert!(matches!(err, Error::BinariesMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("hack/controlplane/build.sh"),
        "{err}"
    );
}
