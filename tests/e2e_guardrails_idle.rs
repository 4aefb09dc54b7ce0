//! The guardrail audit and lockdown on an idle cluster (issue 14, DESIGN §6 "idle = zero
//! writes"), with the webhook as its own process (`egress-webhook serve`) and the apiserver's
//! audit log counting every request the webhook's user sends:
//! - idle: with an audit-mode guardrail that has a violator, its Report and PolicyReport, and a
//!   lockdown namespace with its NetworkPolicy, several audit intervals send no request but the
//!   Lease's and watches;
//! - drift: a NetworkPolicy deleted or edited by hand is put back (timed), a Report and a status
//!   edited by hand are put right; a namespace being deleted is left alone;
//! - restart: a restarted replica rewrites nothing;
//! - two replicas: only the leader writes; after a takeover (the leader stopped, then another
//!   killed) the new leader rewrites nothing, and still writes a violation that changes
//!   afterwards.
//!
//! Each test has its own cluster (restarting the webhook would break any test sharing one); they
//! run one at a time.

mod e2e;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e::{apply, eventually, kubectl, repo, repo_text, skip_cluster_tests};
use egress_webhook::cluster::dev::{DevCluster, DevOptions, WebhookMode, http_get_text};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

/// The dev cluster's audit interval (DevOptions' default).
const INTERVAL: Duration = Duration::from_secs(2);
const GUARDRAIL: &str = "idle-audit";
const VIOLATING_NS: &str = "idle-team";
const LOCKED_NS: &str = "idle-locked";
const GATEWAY_NS: &str = "idle-gw";
const DOOMED_NS: &str = "idle-doomed";
const WRITES: &str = "egress_webhook_guardrail_writes_total";
const LAST_AUDIT: &str = "egress_webhook_guardrail_last_audit_timestamp_seconds";
const LEADER: &str = "egress_webhook_controller_leader";
const NP_APPLIES: &str =
    "egress_webhook_guardrail_writes_total{kind=\"NetworkPolicy\",op=\"apply\"}";

fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = http_get_text(addr, "/metrics").unwrap_or_else(|e| panic!("metrics of {addr}: {e}"));
    e2e::metric_sum(&text, name)
}

fn start() -> DevCluster {
    let mut opts = DevOptions {
        webhook: WebhookMode::Process(PathBuf::from(env!("CARGO_BIN_EXE_egress-webhook"))),
        ..DevOptions::default()
    };
    opts.control_plane.audit_log = true;
    assert_eq!(opts.audit_interval, INTERVAL);
    DevCluster::start(opts).unwrap_or_else(|e| panic!("{e}"))
}

/// One request of the webhook's user, from the apiserver's audit log.
#[derive(Debug, Clone)]
struct Request {
    verb: String,
    resource: String,
    namespace: String,
    name: String,
    subresource: String,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}{}{} {}/{}",
            self.verb,
            self.resource,
            if self.subresource.is_empty() { "" } else { "/" },
            self.subresource,
            self.namespace,
            self.name
        )
    }
}

/// Reads the webhook user's requests from the audit log, from a byte offset on.
struct AuditLog {
    path: PathBuf,
    user: String,
}

impl AuditLog {
    fn of(dev: &DevCluster) -> AuditLog {
        AuditLog {
            path: dev.cp().audit_log().expect("audit log on").to_path_buf(),
            user: dev.webhook_user().name.clone(),
        }
    }

    fn end(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The requests of the webhook's user logged after `from` (one per request: the event of
    /// its completion, or of its start for a watch still open).
    fn since(&self, from: u64) -> Vec<Request> {
        let text = std::fs::read(&self.path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).to_string();
        let mut by_id: BTreeMap<String, Request> = BTreeMap::new();
        let mut saw_any = false;
        for line in text.lines() {
            let Ok(e) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            saw_any = true;
            if e["user"]["username"].as_str() != Some(&self.user) {
                continue;
            }
            let o = &e["objectRef"];
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            by_id.insert(
                s(&e["auditID"]),
                Request {
                    verb: s(&e["verb"]),
                    resource: s(&o["resource"]),
                    namespace: s(&o["namespace"]),
                    name: s(&o["name"]),
                    subresource: s(&o["subresource"]),
                },
            );
        }
        // The apiserver logs its own and the test's requests too: an empty window is no
        // evidence that the log works.
        assert!(
            saw_any || text.is_empty(),
            "audit log {} does not parse",
            self.path.display()
        );
        by_id.into_values().collect()
    }
}

/// Requests other than the Lease's (leader election renews it every few seconds by design) and
/// watches (long-running; kube-runtime reopens one when the apiserver ends it).
fn besides_lease_and_watches(reqs: &[Request]) -> Vec<String> {
    reqs.iter()
        .filter(|r| r.resource != "leases" && r.verb != "watch")
        .map(|r| r.to_string())
        .collect()
}

fn counts(reqs: &[Request]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in reqs {
        let kind = if r.resource == "leases" {
            format!("{} leases", r.verb)
        } else {
            r.verb.clone()
        };
        *out.entry(kind).or_default() += 1;
    }
    out
}

/// `kind/namespace/name@resourceVersion` of what the audit and lockdown write: a write that
/// changes anything changes its resourceVersion.
fn written_objects(dev: &DevCluster) -> Vec<String> {
    let mut out = Vec::new();
    for (what, ns) in [
        ("egressguardrail", None),
        ("reports.v1alpha1.openreports.io", Some(VIOLATING_NS)),
        ("policyreports.v1alpha2.wgpolicyk8s.io", Some(VIOLATING_NS)),
        ("networkpolicy", Some(LOCKED_NS)),
    ] {
        let mut args = vec!["get", what, "-o", "json"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let list = kubectl(dev, &args).expect_ok("list").json();
        for o in list["items"].as_array().into_iter().flatten() {
            out.push(format!(
                "{what}/{}/{}@{}",
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or(""),
                o["metadata"]["resourceVersion"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

fn get_json(dev: &DevCluster, args: &[&str]) -> Option<Value> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend(["-o", "json"]);
    let r = kubectl(dev, &a);
    r.ok.then(|| r.json())
}

fn status(dev: &DevCluster) -> Value {
    get_json(dev, &["egressguardrail", GUARDRAIL]).expect("guardrail")["status"].clone()
}

fn report(dev: &DevCluster) -> Option<Value> {
    get_json(
        dev,
        &[
            "reports.v1alpha1.openreports.io",
            "egress-webhook-guardrails",
            "-n",
            VIOLATING_NS,
        ],
    )
}

fn policy(dev: &DevCluster) -> Option<Value> {
    get_json(
        dev,
        &["networkpolicy", "egress-webhook-lockdown", "-n", LOCKED_NS],
    )
}

fn violator(name: &str) -> String {
    format!(
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: {name}, namespace: {VIOLATING_NS}}}\nspec:\n  hosts: [{name}]\n  ports: [{{name: https, number: 443, protocol: HTTPS}}]\n"
    )
}

/// The Report CRDs, a gateway, an audit guardrail with one violator, a lockdown namespace; back
/// when status, Report and NetworkPolicy are there.
fn populate(dev: &DevCluster) {
    dev.cp()
        .install_crds(&[
            repo("manifests/openreports/reports-crd-v0.2.1.yaml"),
            repo("manifests/openreports/policyreports-crd-wgpolicyk8s-v1alpha2.yaml"),
        ])
        .expect("install the Report and PolicyReport CRDs");
    let namespace = |name: &str, labels: &str| {
        apply(
            dev,
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n"),
            &[],
        )
        .expect_ok("namespace");
    };
    namespace(GATEWAY_NS, "");
    apply(
        dev,
        &repo_text("manifests/examples/10-egress-gateway-service.yaml").replace(
            "namespace: istio-egress",
            &format!("namespace: {GATEWAY_NS}"),
        ),
        &[],
    )
    .expect_ok("gateway Service");
    apply(
        dev,
        &repo_text("manifests/examples/30-virtualgateway.yaml").replace(
            "namespace: istio-egress",
            &format!("namespace: {GATEWAY_NS}"),
        ),
        &[],
    )
    .expect_ok("VirtualGateway");
    namespace(VIOLATING_NS, "e2e-guardrail: idle");
    apply(dev, &violator("httpbin.org"), &[]).expect_ok("violator");
    apply(
        dev,
        &format!("apiVersion: policy.egress-webhook.dev/v1alpha1\nkind: EgressGuardrail\nmetadata: {{name: {GUARDRAIL}}}\nspec:\n  namespaceSelector: {{matchLabels: {{e2e-guardrail: idle}}}}\n  allowedHosts: [\"*.example.com\"]\n  enforcementAction: audit\n"),
        &[],
    )
    .expect_ok("guardrail");
    namespace(LOCKED_NS, "egress-webhook.dev/lockdown: \"true\"");
    assert!(
        eventually(Duration::from_secs(20), || {
            status(dev)["totalViolations"] == 1
                && report(dev).is_some_and(|r| r["summary"]["fail"] == 1)
                && policy(dev)
                    .is_some_and(|p| p["spec"]["egress"].as_array().map(Vec::len) == Some(3))
        }),
        "status {}, report {:?}, policy {:?}",
        status(dev),
        report(dev),
        policy(dev)
    );
}

/// Waits until the written objects stand still for three audit intervals; returns them.
fn settled(dev: &DevCluster) -> Vec<String> {
    let mut before = written_objects(dev);
    assert!(
        eventually(Duration::from_secs(30), || {
            std::thread::sleep(INTERVAL * 3);
            let now = written_objects(dev);
            let same = now == before;
            before = now;
            same
        }),
        "the guardrail objects never stood still"
    );
    assert_eq!(before.len(), 4, "{before:?}");
    before
}

/// Over `passes` audit intervals: the requests the webhook's user sent, and how many audit
/// passes the process at `metrics` ran meanwhile (from its liveness gauge).
fn window(dev: &DevCluster, metrics: SocketAddr, passes: u32) -> (Vec<Request>, f64) {
    let log = AuditLog::of(dev);
    let from = log.end();
    let audit0 = metric(metrics, LAST_AUDIT);
    std::thread::sleep(INTERVAL * passes);
    let audited = metric(metrics, LAST_AUDIT) - audit0;
    (log.since(from), audited)
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn idle_sends_nothing_drift_is_repaired_and_a_restart_rewrites_nothing() {
    if skip_cluster_tests() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut dev = start();
    let metrics = dev.webhook_metrics_addr().expect("process mode");
    populate(&dev);
    let objects = settled(&dev);
    let writes = metric(metrics, WRITES);
    // The counter is the right one: status, Report, PolicyReport and NetworkPolicy were written.
    assert!(writes >= 4.0, "{writes} guardrail writes counted");

    // Idle.
    let (reqs, audited) = window(&dev, metrics, 6);
    let others = besides_lease_and_watches(&reqs);
    eprintln!(
        "idle for {:?} ({audited} s of audit passes): webhook requests {:?}",
        INTERVAL * 6,
        counts(&reqs)
    );
    assert!(audited >= 4.0, "the audit ran only {audited} s of 12");
    assert!(
        others.is_empty(),
        "requests on an idle cluster: {others:#?}"
    );
    assert_eq!(
        metric(metrics, WRITES),
        writes,
        "guardrail writes while idle"
    );
    assert_eq!(
        written_objects(&dev),
        objects,
        "objects rewritten while idle"
    );

    // Drift: a NetworkPolicy deleted by hand comes back, one edited by hand is put back.
    let np = policy(&dev).expect("policy");
    kubectl(
        &dev,
        &[
            "delete",
            "networkpolicy",
            "egress-webhook-lockdown",
            "-n",
            LOCKED_NS,
        ],
    )
    .expect_ok("delete by hand");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || policy(&dev).is_some()),
        "a hand-deleted lockdown NetworkPolicy was not put back"
    );
    eprintln!("hand-deleted NetworkPolicy back after {:?}", t.elapsed());
    assert_eq!(policy(&dev).unwrap()["spec"], np["spec"]);
    kubectl(
        &dev,
        &[
            "patch",
            "networkpolicy",
            "egress-webhook-lockdown",
            "-n",
            LOCKED_NS,
            "--type=json",
            "-p",
            r#"[{"op": "remove", "path": "/spec/egress/2"}]"#,
        ],
    )
    .expect_ok("edit by hand");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || policy(&dev)
            .is_some_and(|p| p["spec"] == np["spec"])),
        "a hand-edited lockdown NetworkPolicy was not put back: {:?}",
        policy(&dev)
    );
    eprintln!("hand-edited NetworkPolicy put back after {:?}", t.elapsed());
    // A Report and a status edited by hand are put right at a following pass.
    kubectl(
        &dev,
        &[
            "patch",
            "reports.v1alpha1.openreports.io",
            "egress-webhook-guardrails",
            "-n",
            VIOLATING_NS,
            "--type=merge",
            "-p",
            r#"{"summary": {"fail": 7}}"#,
        ],
    )
    .expect_ok("edit the Report by hand");
    kubectl(
        &dev,
        &[
            "patch",
            "egressguardrail",
            GUARDRAIL,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status": {"totalViolations": 7}}"#,
        ],
    )
    .expect_ok("edit the status by hand");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(20), || {
            status(&dev)["totalViolations"] == 1
                && report(&dev).is_some_and(|r| r["summary"]["fail"] == 1)
        }),
        "status {} / report {:?} not put right",
        status(&dev),
        report(&dev)
    );
    eprintln!(
        "hand-edited Report and status put right after {:?}",
        t.elapsed()
    );

    // A namespace being deleted (held Terminating by a finalizer on a ConfigMap): its policy
    // goes with its content, and lockdown does not create it again there.
    apply(
        &dev,
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {DOOMED_NS}, labels: {{egress-webhook.dev/lockdown: \"true\"}}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: hold, namespace: {DOOMED_NS}, finalizers: [egress-webhook.test/hold]}}\n"),
        &[],
    )
    .expect_ok("doomed namespace");
    let doomed_policy = || {
        kubectl(
            &dev,
            &["get", "networkpolicy", "-n", DOOMED_NS, "-o", "name"],
        )
        .stdout
        .contains("egress-webhook-lockdown")
    };
    assert!(
        eventually(Duration::from_secs(20), doomed_policy),
        "no lockdown NetworkPolicy in {DOOMED_NS}"
    );
    let log = AuditLog::of(&dev);
    let from = log.end();
    let applies = metric(metrics, NP_APPLIES);
    kubectl(&dev, &["delete", "namespace", DOOMED_NS, "--wait=false"])
        .expect_ok("delete the namespace");
    assert!(
        eventually(Duration::from_secs(30), || !doomed_policy()),
        "the namespace controller did not delete the policy"
    );
    std::thread::sleep(INTERVAL * 3);
    let phase = kubectl(
        &dev,
        &[
            "get",
            "namespace",
            DOOMED_NS,
            "-o",
            "jsonpath={.status.phase}",
        ],
    )
    .expect_ok("the namespace")
    .stdout;
    assert_eq!(phase, "Terminating", "held by the ConfigMap's finalizer");
    let into_doomed: Vec<String> = log
        .since(from)
        .iter()
        .filter(|r| r.namespace == DOOMED_NS && r.verb != "watch")
        .map(|r| r.to_string())
        .collect();
    assert!(
        into_doomed.is_empty(),
        "requests into a terminating namespace: {into_doomed:#?}"
    );
    assert_eq!(
        metric(metrics, NP_APPLIES),
        applies,
        "lockdown applied into a terminating namespace"
    );
    kubectl(
        &dev,
        &[
            "patch",
            "configmap",
            "hold",
            "-n",
            DOOMED_NS,
            "--type=merge",
            "-p",
            r#"{"metadata": {"finalizers": null}}"#,
        ],
    )
    .expect_ok("release the namespace");

    // Restart: nothing rewritten.
    let objects = settled(&dev);
    let log = AuditLog::of(&dev);
    let from = log.end();
    dev.restart_webhook(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        eventually(Duration::from_secs(20), || metric(metrics, LEADER) == 1.0),
        "the restarted webhook did not lead"
    );
    let audit0 = metric(metrics, LAST_AUDIT);
    std::thread::sleep(INTERVAL * 4);
    let audited = metric(metrics, LAST_AUDIT) - audit0;
    let reqs = log.since(from);
    let writes_sent: Vec<String> = reqs
        .iter()
        .filter(|r| r.resource != "leases")
        .filter(|r| ["create", "update", "patch", "delete"].contains(&r.verb.as_str()))
        .map(|r| r.to_string())
        .collect();
    eprintln!(
        "restart: webhook requests from its start to {:?} after it led: {:?}",
        INTERVAL * 4,
        counts(&reqs)
    );
    assert!(audited >= 2.0, "the restarted webhook audited {audited} s");
    assert_eq!(
        metric(metrics, WRITES),
        0.0,
        "guardrail writes after a restart"
    );
    assert!(
        writes_sent.is_empty(),
        "writes after a restart: {writes_sent:#?}"
    );
    assert_eq!(
        written_objects(&dev),
        objects,
        "objects rewritten by a restart"
    );
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn only_the_leader_writes_and_a_new_leader_rewrites_nothing_identical() {
    if skip_cluster_tests() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut dev = start();
    let first = dev.webhook_metrics_addr().expect("process mode");
    populate(&dev);
    let replica = dev.start_replica(&[]).unwrap_or_else(|e| panic!("{e}"));
    let second = replica.metrics_addr;
    assert_eq!(metric(first, LEADER), 1.0, "the first leads");
    assert_eq!(metric(second, LEADER), 0.0, "the second does not");
    settled(&dev);
    // The follower audits (its gauge moves) but writes nothing, also when a violation changes.
    let first_writes = metric(first, WRITES);
    apply(&dev, &violator("second.org"), &[]).expect_ok("second violator");
    assert!(
        eventually(Duration::from_secs(20), || status(&dev)["totalViolations"]
            == 2
            && report(&dev).is_some_and(|r| r["summary"]["fail"] == 2)),
        "status {}",
        status(&dev)
    );
    let objects = settled(&dev);
    assert!(
        metric(first, WRITES) >= first_writes + 3.0,
        "the leader wrote status, Report and PolicyReport"
    );
    let (_, audited) = window(&dev, second, 2);
    assert!(audited > 0.0, "the follower does not audit");
    assert_eq!(metric(second, WRITES), 0.0, "the follower wrote");

    // Takeover: the apiserver calls the second from now on; the first stops.
    dev.register(replica.addr).unwrap_or_else(|e| panic!("{e}"));
    let log = AuditLog::of(&dev);
    let from = log.end();
    dev.stop_webhook().unwrap_or_else(|e| panic!("{e}"));
    let stopped = Instant::now();
    assert!(
        eventually(Duration::from_secs(15), || metric(second, LEADER) == 1.0),
        "the second did not take over within 15 s"
    );
    eprintln!(
        "the second led {:?} after the first stopped",
        stopped.elapsed()
    );
    let audit0 = metric(second, LAST_AUDIT);
    std::thread::sleep(INTERVAL * 4);
    assert!(
        metric(second, LAST_AUDIT) - audit0 >= 2.0,
        "the new leader did not audit"
    );
    let reqs = log.since(from);
    eprintln!(
        "takeover: webhook requests from the stop to {:?} after: {:?}",
        INTERVAL * 4,
        counts(&reqs)
    );
    assert_eq!(
        metric(second, WRITES),
        0.0,
        "the new leader rewrote identical results; its log: {}",
        replica.log().display()
    );
    assert_eq!(
        written_objects(&dev),
        objects,
        "objects rewritten by the takeover"
    );

    // A violation fixed after the takeover: the new leader writes it.
    kubectl(
        &dev,
        &[
            "delete",
            "externalservice",
            "second.org",
            "-n",
            VIOLATING_NS,
        ],
    )
    .expect_ok("fix a violation");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(20), || status(&dev)["totalViolations"]
            == 1
            && report(&dev).is_some_and(|r| r["summary"]["fail"] == 1)),
        "status {} after the fix",
        status(&dev)
    );
    eprintln!("the new leader wrote the fix after {:?}", t.elapsed());
    assert!(
        metric(second, WRITES) >= 3.0,
        "status, Report and PolicyReport by the new leader"
    );

    // A leader killed (SIGKILL: no Lease released, taken over when it runs out) by a third
    // replica: the same, nothing identical rewritten, a change after the takeover written.
    let objects = settled(&dev);
    let third = dev.start_replica(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(metric(third.metrics_addr, LEADER), 0.0, "the third follows");
    dev.register(third.addr).unwrap_or_else(|e| panic!("{e}"));
    drop(replica);
    let killed = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || metric(
            third.metrics_addr,
            LEADER
        ) == 1.0),
        "the third did not take over within 30 s of the kill"
    );
    eprintln!(
        "the third led {:?} after the leader was killed",
        killed.elapsed()
    );
    std::thread::sleep(INTERVAL * 4);
    assert_eq!(
        metric(third.metrics_addr, WRITES),
        0.0,
        "the leader after a kill rewrote identical results; its log: {}",
        third.log().display()
    );
    assert_eq!(
        written_objects(&dev),
        objects,
        "objects rewritten after the kill"
    );
    apply(&dev, &violator("third.org"), &[]).expect_ok("a new violator");
    assert!(
        eventually(Duration::from_secs(20), || status(&dev)["totalViolations"]
            == 2
            && report(&dev).is_some_and(|r| r["summary"]["fail"] == 2)),
        "status {} after a new violator",
        status(&dev)
    );
    assert!(metric(third.metrics_addr, WRITES) >= 3.0);
}
