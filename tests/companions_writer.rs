//! The controller's writer against a real kube-apiserver with the real Istio CRDs: the plan
//! computed against the observed (watched) companions, server-side apply with strict validation,
//! prune, conflicts with objects we do not manage, rollback when the apiserver (here a real
//! ValidatingAdmissionPolicy) refuses one write, and the resourceVersion preconditions that keep
//! a stale write (or rollback) from overwriting someone else's.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use egress_webhook::cluster::{identity, webhook::DEFAULT_NAMESPACE};
use egress_webhook::controller::{
    observed::Observed,
    plan::{Step, plan},
    writer::{Report, WriteError, Writer},
};
use egress_webhook::controlplane::{ControlPlane, Options as CpOptions};
use egress_webhook::core::{
    Object, Options, Snapshot,
    defaults::default_object,
    expand::{ParentRef, expand, expand_parents},
    object::GlooKind,
};
use egress_webhook::istio::IstioObject;
use kube::config::{KubeConfigOptions, Kubeconfig};

fn skip() -> bool {
    std::env::var("EGRESS_SKIP_CLUSTER_TESTS").is_ok_and(|v| v == "1")
}

/// A client authenticated as the webhook's ServiceAccount with the RBAC of manifests/base, as
/// in a cluster: the writer and its watches need nothing more.
async fn client(cp: &ControlPlane) -> kube::Client {
    let user = identity::create(cp, DEFAULT_NAMESPACE).expect("the webhook's ServiceAccount");
    let kc = Kubeconfig::read_from(&user.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn snapshot(objects: Vec<Object>, opts: &Options) -> Snapshot {
    Snapshot::new(objects.into_iter().map(|o| default_object(o, opts)), opts)
}

fn all_parents(objects: &[Object]) -> BTreeSet<ParentRef> {
    objects
        .iter()
        .filter_map(|o| {
            o.gloo_kind()
                .map(|k| ParentRef::new(k, o.namespace(), o.name()))
        })
        .collect()
}

/// Make the companions of `parents` exactly `desired`, as admission does: plan against the
/// watched companions, send, and roll back on failure. Waits for the watches to show the result.
async fn sync(
    writer: &Writer,
    observed: &Observed,
    desired: &[IstioObject],
    parents: &BTreeSet<ParentRef>,
    deadline: Duration,
) -> Result<Report, WriteError> {
    let current =
        |o: &Observed| -> Vec<_> { parents.iter().flat_map(|p| o.of_parent(p)).collect() };
    let steps = plan(desired, &current(observed));
    let mut undo = Vec::new();
    let result = writer
        .run(
            &steps,
            Some(tokio::time::Instant::now() + deadline),
            &mut undo,
        )
        .await;
    if result.is_err() {
        writer.rollback(undo, Duration::from_secs(2)).await;
    }
    // The watches catch up (what the next plan is computed from).
    let want: &[IstioObject] = if result.is_ok() { desired } else { &[] };
    for _ in 0..100 {
        let left = plan(want, &current(observed));
        if result.is_ok() && left.is_empty() || result.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    result
}

fn names(cp: &ControlPlane, kind: &str) -> Vec<String> {
    let out = cp
        .kubectl_ok(&[
            "get",
            kind,
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=egress-webhook",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}",
        ])
        .unwrap();
    let mut v: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
async fn writes_prunes_refuses_conflicts_and_rolls_back() {
    if skip() {
        eprintln!("SKIPPED: EGRESS_SKIP_CLUSTER_TESTS=1");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cp = tokio::task::spawn_blocking(|| ControlPlane::start(CpOptions::default()))
        .await
        .unwrap()
        .expect("control plane starts (build it with hack/controlplane/build.sh)");
    cp.install_crds(&[support::repo_path("manifests/istio/crds-1.24.6.yaml")])
        .unwrap();
    for ns in ["istio-egress", "global", "bookinfo"] {
        cp.kubectl_ok(&["create", "namespace", ns]).unwrap();
    }
    let client = client(&cp).await;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let (observed, _watches) = Observed::start(client.clone(), tx);
    while !observed.is_synced() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = std::sync::Arc::new(egress_webhook::metrics::Metrics::new());
    let writer = Writer::new(client, metrics.clone(), observed.clone());
    let opts = Options::default();
    let deadline = Duration::from_secs(8);

    // 1. The running example: every companion written, each passing strict validation.
    let seed = support::seed();
    let snap = snapshot(seed.clone(), &opts);
    let desired = expand(&snap, &opts);
    let parents = all_parents(&seed);
    let report = sync(&writer, &observed, &desired, &parents, deadline)
        .await
        .expect("sync of the running example");
    assert_eq!(report.created.len(), desired.len());
    assert_eq!(
        names(&cp, "virtualservices"),
        ["istio-egress/externalservice-httpbin-org-global-httpbin-org"]
    );
    assert_eq!(
        names(&cp, "authorizationpolicies"),
        ["istio-egress/accesspolicy-egress-access-policy-istio-egressgateway"]
    );

    // 2. Idempotent: the same set again creates and deletes nothing.
    let again = sync(&writer, &observed, &desired, &parents, deadline)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    // 3. Without the AccessPolicy its policy goes and the ExternalService's open rule comes.
    let without_ap: Vec<Object> = seed
        .iter()
        .filter(|o| o.kind_name() != "AccessPolicy")
        .cloned()
        .collect();
    let snap2 = snapshot(without_ap, &opts);
    let desired2 = expand_parents(&snap2, &opts, &parents);
    let r = sync(&writer, &observed, &desired2, &parents, deadline)
        .await
        .unwrap();
    assert_eq!(
        r.deleted,
        ["AuthorizationPolicy istio-egress/accesspolicy-egress-access-policy-istio-egressgateway"]
    );
    assert_eq!(
        names(&cp, "authorizationpolicies"),
        ["istio-egress/externalservice-httpbin-org-global-istio-egressgateway-open"]
    );

    // 4. An object with a desired name that we do not manage: a conflict naming it, and nothing
    //    of this sync is left behind.
    let other = support::objects(
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {name: api.github.com, namespace: global}\nspec:\n  hosts: [api.github.com]\n  ports:\n    - {name: https, number: 443, protocol: HTTPS}\n",
    );
    cp.kubectl_with_stdin(
        &["apply", "-f", "-"],
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: externalservice-api-github-com-global-api-github-com-tls, namespace: global}\nspec: {host: api.github.com}\n",
    )
    .unwrap();
    let snap3 = snapshot(other.clone(), &opts);
    let p3: BTreeSet<ParentRef> = [ParentRef::new(
        GlooKind::ExternalService,
        "global",
        "api.github.com",
    )]
    .into();
    let err = sync(
        &writer,
        &observed,
        &expand_parents(&snap3, &opts, &p3),
        &p3,
        deadline,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, WriteError::Conflict(_)), "{err}");
    assert!(
        err.to_string().contains(
            "DestinationRule global/externalservice-api-github-com-global-api-github-com-tls"
        ),
        "{err}"
    );
    assert!(
        !names(&cp, "serviceentries")
            .iter()
            .any(|n| n.contains("api-github-com")),
        "rolled back"
    );
    let dr = cp
        .kubectl_ok(&[
            "get",
            "destinationrule",
            "-n",
            "global",
            "externalservice-api-github-com-global-api-github-com-tls",
            "-o",
            "jsonpath={.spec.host}",
        ])
        .unwrap();
    assert_eq!(dr, "api.github.com", "the unmanaged object is untouched");

    // 5. A real admission check refuses one write (the DestinationRule): the ServiceEntry written
    //    before it in the same sync is rolled back, and the error names the companion and the reason.
    cp.kubectl_with_stdin(
        &["apply", "-f", "-"],
        &support::deny_destinationrules_policy("deny-me.example.com"),
    )
    .unwrap();
    let denied = support::objects(
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {name: deny-me.example.com, namespace: global}\nspec:\n  hosts: [deny-me.example.com]\n  ports:\n    - {name: https, number: 443, protocol: HTTPS}\n",
    );
    let snap4 = snapshot(denied, &opts);
    let p4: BTreeSet<ParentRef> = [ParentRef::new(
        GlooKind::ExternalService,
        "global",
        "deny-me.example.com",
    )]
    .into();
    let want = expand_parents(&snap4, &opts, &p4);
    assert!(
        want.iter().any(|o| o.kind == "ServiceEntry")
            && want.iter().any(|o| o.kind == "DestinationRule")
    );
    // The policy takes a moment to be loaded by the apiserver: retry until it refuses.
    let mut refused = None;
    for _ in 0..50 {
        match sync(&writer, &observed, &want, &p4, deadline).await {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(_) => {
                // Not enforced yet: remove what was written and try again.
                sync(&writer, &observed, &[], &p4, deadline).await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let e = refused.expect("the ValidatingAdmissionPolicy refused the DestinationRule");
    let msg = e.to_string();
    assert!(
        msg.contains("DestinationRule global/") && msg.contains("refused by policy"),
        "{msg}"
    );
    assert!(
        !names(&cp, "serviceentries")
            .iter()
            .any(|n| n.contains("deny-me")),
        "the ServiceEntry was rolled back"
    );
    assert!(
        !names(&cp, "destinationrules")
            .iter()
            .any(|n| n.contains("deny-me"))
    );
    // 6. Optimistic concurrency: someone else (here kubectl, in the webhook another admission
    //    that shares the VirtualGateway) changes the Gateway after our watch saw it. A write
    //    planned against the version we saw is refused as stale instead of overwriting theirs;
    //    so is a delete, and a rollback of our write; planned again against the live object, it goes through.
    let vg = ParentRef::new(GlooKind::VirtualGateway, "istio-egress", "egress-vg");
    let gateway = "virtualgateway-egress-vg-istio-egress";
    let seen = observed
        .of_parent(&vg)
        .into_iter()
        .find(|(kind, _)| kind == "Gateway")
        .expect("the running example's Gateway is watched")
        .1;
    cp.kubectl_ok(&[
        "patch",
        "gateway",
        "-n",
        "istio-egress",
        gateway,
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/servers/0/hosts/-","value":"theirs.example.com"}]"#,
    ])
    .unwrap();
    let hosts = || {
        cp.kubectl_ok(&[
            "get",
            "gateway",
            "-n",
            "istio-egress",
            gateway,
            "-o",
            "jsonpath={.spec.servers[*].hosts}",
        ])
        .unwrap()
    };
    assert!(hosts().contains("theirs.example.com"), "{}", hosts());
    let mut ours = expand_parents(&snap, &opts, &[vg.clone()].into());
    assert_eq!(ours.len(), 1, "{ours:?}");
    let key = egress_webhook::controller::plan::CompanionKey::of_desired(&ours[0]);
    if let egress_webhook::istio::Spec::Gateway(g) = &mut ours[0].spec {
        g.servers[0].hosts.push("ours.example.com".into());
    }
    let update = [Step::Update(ours[0].clone(), seen.clone())];
    let mut undo = Vec::new();
    let err = writer
        .run(
            &update,
            Some(tokio::time::Instant::now() + deadline),
            &mut undo,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Stale(_)), "{err}");
    let after = hosts();
    assert!(
        after.contains("theirs.example.com") && !after.contains("ours.example.com"),
        "the stale write must not land: {after}"
    );
    let delete = [Step::Delete(key.clone(), seen.clone())];
    let err = writer
        .run(
            &delete,
            Some(tokio::time::Instant::now() + deadline),
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Stale(_)), "{err}");
    assert!(hosts().contains("theirs.example.com"), "not deleted");
    // Planned again against the live object: the write lands.
    let live = std::sync::Arc::new(writer.live(&key, None).await.unwrap().expect("stored"));
    let steps = plan(&ours, &[("Gateway".to_string(), live)]);
    assert_eq!(steps.len(), 1, "{steps:?}");
    let mut undo = Vec::new();
    writer
        .run(
            &steps,
            Some(tokio::time::Instant::now() + deadline),
            &mut undo,
        )
        .await
        .expect("planned against the stored version");
    assert!(hosts().contains("ours.example.com"), "{}", hosts());
    // Someone writes after us: our rollback leaves their write alone.
    cp.kubectl_ok(&[
        "patch",
        "gateway",
        "-n",
        "istio-egress",
        gateway,
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/servers/0/hosts/-","value":"later.example.com"}]"#,
    ])
    .unwrap();
    writer.rollback(undo, Duration::from_secs(2)).await;
    let after = hosts();
    assert!(
        after.contains("later.example.com") && after.contains("ours.example.com"),
        "a rollback must not take back a later write of someone else: {after}"
    );

    // An update pinned to a version of an object deleted since: the apiserver's apply creates
    // it again (the version is no precondition for a create), with our content, which is what
    // the plan wanted: nobody's write is overwritten.
    let before_delete =
        std::sync::Arc::new(writer.live(&key, None).await.unwrap().expect("stored"));
    cp.kubectl_ok(&["delete", "gateway", "-n", "istio-egress", gateway])
        .unwrap();
    writer
        .run(
            &[Step::Update(ours[0].clone(), before_delete)],
            Some(tokio::time::Instant::now() + deadline),
            &mut Vec::new(),
        )
        .await
        .expect("created again");
    assert!(hosts().contains("ours.example.com"), "{}", hosts());

    // Every request was counted: nothing was sent that is not in the metric.
    let text = metrics.render();
    assert!(
        text.contains("egress_webhook_companion_writes_total{kind=\"ServiceEntry\",op=\"create\"}"),
        "{text}"
    );
    drop(cp);
}
