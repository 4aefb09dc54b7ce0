//! Status and events on the real control plane, through kubectl as a user reads them: the
//! approval of the running example, `kubectl wait` on it, a refused companion write shown as
//! `FAILED` with an event and cleared when the cause goes, a hand-deleted companion repaired with
//! a `Repaired` event, and nothing sent while idle.

mod e2e;
mod support;

use std::time::{Duration, Instant};

use e2e::{apply, eventually, kubectl, repo, shared};
use egress_webhook::cluster::dev::DevCluster;
use serde_json::Value;

fn metric_sum(dev: &DevCluster, name: &str) -> f64 {
    e2e::metric_sum(
        &dev.webhook_metrics_text().expect("in-process webhook"),
        name,
    )
}

/// Status writes and events sent (suppressed ones are not requests).
fn status_writes(dev: &DevCluster) -> f64 {
    metric_sum(dev, "egress_webhook_status_writes_total")
}

fn events_sent(dev: &DevCluster) -> f64 {
    let text = dev.webhook_metrics_text().expect("in-process webhook");
    text.lines()
        .filter(|l| {
            l.starts_with("egress_webhook_events_total{")
                && (l.contains("outcome=\"sent\"") || l.contains("outcome=\"failed\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn running_example(dev: &DevCluster) {
    kubectl(
        dev,
        &["apply", "-f", repo("manifests/examples").to_str().unwrap()],
    )
    .expect_ok("the running example");
}

/// `kind/namespace/name` as JSON.
fn get(dev: &DevCluster, kind: &str, ns: &str, name: &str) -> Value {
    kubectl(dev, &["get", kind, "-n", ns, name, "-o", "json"])
        .expect_ok("get")
        .json()
}

fn approval(o: &Value) -> &str {
    o["status"]["common"]["State"]["approval"]
        .as_str()
        .unwrap_or("")
}

fn message(o: &Value) -> &str {
    o["status"]["common"]["State"]["message"]
        .as_str()
        .unwrap_or("")
}

/// The status has seen the current generation.
fn current(o: &Value) -> bool {
    o["status"]["common"]["State"]["observedGeneration"] == o["metadata"]["generation"]
}

/// The events.k8s.io Events about `name` in `ns` with `reason`: their notes.
fn events(dev: &DevCluster, ns: &str, name: &str, reason: &str) -> Vec<String> {
    let list = kubectl(
        dev,
        &["get", "events.events.k8s.io", "-n", ns, "-o", "json"],
    )
    .expect_ok("events")
    .json();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
        .inspect(|e| assert_eq!(e["reportingController"], "egress-webhook", "{e}"))
        .map(|e| e["note"].as_str().unwrap_or("").to_string())
        .collect()
}

const EXAMPLE: [(&str, &str, &str, &[&str]); 3] = [
    ("externalservice", "global", "httpbin.org", &["E25"]),
    ("virtualgateway", "istio-egress", "egress-vg", &[]),
    (
        "accesspolicy",
        "istio-egress",
        "egress-access-policy",
        &["A6"],
    ),
];

#[test]
fn the_running_example_shows_its_approval_and_follows_an_edit() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    running_example(&dev);
    for (kind, ns, name, rules) in EXAMPLE {
        let mut last = Value::Null;
        let ok = eventually(Duration::from_secs(20), || {
            last = get(&dev, kind, ns, name);
            current(&last) && !approval(&last).is_empty()
        });
        assert!(
            ok,
            "{kind} {ns}/{name} has no current status: {}",
            last["status"]
        );
        let want = if rules.is_empty() {
            "ACCEPTED"
        } else {
            "WARNING"
        };
        assert_eq!(
            approval(&last),
            want,
            "{kind} {ns}/{name}: {}",
            last["status"]
        );
        for rule in rules {
            assert!(message(&last).contains(rule), "{rule}: {}", message(&last));
        }
        let ready = last["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "True", "{}", last["status"]);
    }
    // The per-kind counts.
    let es = get(&dev, "externalservice", "global", "httpbin.org");
    assert_eq!(
        es["status"]["numSelectedVirtualGateways"], 1,
        "{}",
        es["status"]
    );
    let vg = get(&dev, "virtualgateway", "istio-egress", "egress-vg");
    assert_eq!(vg["status"]["externalServicesCount"], 1, "{}", vg["status"]);
    // The STATUS column of `kubectl get`. (`ap` is also Istio's short name for
    // AuthorizationPolicy, and kubectl takes Istio's: the category `solo-io` lists the three.)
    let table = kubectl(&dev, &["get", "solo-io", "-A"])
        .expect_ok("get")
        .stdout;
    for (_, _, name, rules) in EXAMPLE {
        let want = if rules.is_empty() {
            "ACCEPTED"
        } else {
            "WARNING"
        };
        let row = table
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|n| n.ends_with(&format!("/{name}")))
            })
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
        assert!(row.contains(want), "{row}");
    }
    // An edit of the ExternalService (the VirtualGateway's generation is in the README block):
    // observedGeneration follows within 2 s.
    let generation = es["metadata"]["generation"].as_i64().unwrap();
    let t = Instant::now();
    kubectl(
        &dev,
        &[
            "patch",
            "externalservice",
            "-n",
            "global",
            "httpbin.org",
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/spec/subjectAltNames","value":["httpbin.org"]}]"#,
        ],
    )
    .expect_ok("edit the ExternalService");
    let mut last = Value::Null;
    let followed = eventually(Duration::from_secs(2), || {
        last = get(&dev, "externalservice", "global", "httpbin.org");
        last["metadata"]["generation"].as_i64() > Some(generation) && current(&last)
    });
    eprintln!("edit to observedGeneration: {:?}", t.elapsed());
    assert!(
        followed,
        "observedGeneration not updated within 2 s: {last}"
    );
    // Back as it was (for the other tests and the README block).
    kubectl(
        &dev,
        &[
            "patch",
            "externalservice",
            "-n",
            "global",
            "httpbin.org",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/spec/subjectAltNames"}]"#,
        ],
    )
    .expect_ok("undo the edit");
    assert!(eventually(Duration::from_secs(5), || current(&get(
        &dev,
        "externalservice",
        "global",
        "httpbin.org"
    ))));
}

/// An ExternalService without findings whose companions include a DestinationRule.
const CLEAN_ES: &str = "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {name: refused.example.com, namespace: status-fail}\nspec:\n  hosts: [refused.example.com]\n  ports:\n    - {name: https, number: 443, protocol: HTTPS, clientsideTls: {caCertificates: /etc/ssl/certs/ca-certificates.crt}}\n";

fn destination_rules(dev: &DevCluster, parent: &str) -> Vec<String> {
    kubectl(
        dev,
        &[
            "get",
            "destinationrules",
            "-A",
            "-l",
            &format!("gloo.solo.io/parent_name={parent}"),
            "-o",
            "name",
        ],
    )
    .stdout
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn kubectl_wait_returns_for_an_accepted_object_and_a_refused_write_is_failed_until_fixed() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let name = "refused.example.com";
    kubectl(&dev, &["create", "namespace", "status-fail"]).expect_ok("namespace");
    apply(&dev, CLEAN_ES, &[]).expect_ok("the ExternalService");
    // What CI does: wait on the approval, or on the condition.
    for cond in [
        "jsonpath={.status.common.State.approval}=ACCEPTED",
        "condition=Ready",
    ] {
        kubectl(
            &dev,
            &[
                "wait",
                "externalservice",
                "-n",
                "status-fail",
                name,
                &format!("--for={cond}"),
                "--timeout=30s",
            ],
        )
        .expect_ok(cond);
    }
    assert_eq!(destination_rules(&dev, name).len(), 1);
    // The DestinationRule is refused from now on; a hand deletion makes the controller write
    // it again, and that write is refused. (The policy loads asynchronously: until it refuses,
    // the repair succeeds and the deletion is repeated.)
    apply(&dev, &support::deny_destinationrules_policy(name), &[]).expect_ok("policy");
    let mut es = Value::Null;
    let failed = (0..20).any(|_| {
        for dr in destination_rules(&dev, name) {
            kubectl(
                &dev,
                &["delete", "-n", "status-fail", &dr, "--ignore-not-found"],
            );
        }
        eventually(Duration::from_secs(4), || {
            es = get(&dev, "externalservice", "status-fail", name);
            approval(&es) == "FAILED"
        })
    });
    assert!(failed, "never FAILED: {}", es["status"]);
    assert!(
        message(&es).contains("DestinationRule status-fail/")
            && message(&es).contains("refused by policy"),
        "{}",
        message(&es)
    );
    let ready = es["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ready["status"], "False", "{}", es["status"]);
    let mut refused = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            refused = events(&dev, "status-fail", name, "WriteRefused");
            !refused.is_empty()
        }),
        "no WriteRefused event"
    );
    assert!(refused[0].contains("refused by policy"), "{refused:?}");
    // `kubectl describe` shows it (it finds events by the object's uid).
    let described = kubectl(
        &dev,
        &["describe", "externalservice", "-n", "status-fail", name],
    )
    .expect_ok("describe")
    .stdout;
    assert!(described.contains("WriteRefused"), "{described}");
    // The cause goes: the retry (with backoff) writes it, and the status is ACCEPTED again.
    kubectl(
        &dev,
        &[
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            "deny-labelled-destinationrules",
        ],
    )
    .expect_ok("remove the policy");
    assert!(
        eventually(Duration::from_secs(90), || {
            es = get(&dev, "externalservice", "status-fail", name);
            approval(&es) == "ACCEPTED"
        }),
        "not ACCEPTED again: {}",
        es["status"]
    );
    assert_eq!(destination_rules(&dev, name).len(), 1);
    kubectl(
        &dev,
        &["delete", "namespace", "status-fail", "--wait=false"],
    )
    .expect_ok("cleanup");
}

#[test]
fn a_hand_deleted_virtualservice_is_repaired_with_an_event_naming_it() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    running_example(&dev);
    let list_vs = || {
        kubectl(
            &dev,
            &[
                "get",
                "virtualservices",
                "-A",
                "-l",
                "gloo.solo.io/parent_name=httpbin.org",
                "-o",
                "jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name}{\"\\n\"}{end}",
            ],
        )
        .stdout
    };
    let mut vs = String::new();
    assert!(eventually(Duration::from_secs(20), || {
        vs = list_vs();
        !vs.trim().is_empty()
    }));
    let (ns, name) = vs.lines().next().unwrap().split_once(' ').unwrap();
    let (ns, name) = (ns.to_string(), name.to_string());
    kubectl(&dev, &["delete", "virtualservice", "-n", &ns, &name]).expect_ok("hand deletion");
    assert!(
        eventually(Duration::from_secs(20), || list_vs().contains(&name)),
        "not repaired"
    );
    let mut repaired = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            repaired = events(&dev, "global", "httpbin.org", "Repaired");
            repaired
                .iter()
                .any(|n| n.contains(&format!("VirtualService {ns}/{name}")))
        }),
        "no Repaired event naming VirtualService {ns}/{name}: {repaired:?}"
    );
    let described = kubectl(
        &dev,
        &["describe", "externalservice", "-n", "global", "httpbin.org"],
    )
    .expect_ok("describe")
    .stdout;
    assert!(described.contains("Repaired"), "{described}");
}

#[test]
fn sixty_seconds_idle_send_no_status_write_and_no_event() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    running_example(&dev);
    for (kind, ns, name, _) in EXAMPLE {
        assert!(
            eventually(Duration::from_secs(20), || current(&get(
                &dev, kind, ns, name
            ))),
            "{kind} {ns}/{name}"
        );
    }
    // Whatever else is in flight settles first: other tests' namespaces going away (their
    // content going is real work)...
    assert!(
        eventually(Duration::from_secs(90), || {
            !kubectl(
                &dev,
                &[
                    "get",
                    "namespaces",
                    "-o",
                    "jsonpath={.items[*].status.phase}",
                ],
            )
            .stdout
            .contains("Terminating")
        }),
        "namespaces still terminating"
    );
    let counters = || {
        (
            status_writes(&dev),
            events_sent(&dev),
            metric_sum(&dev, "egress_webhook_companion_writes_total"),
        )
    };
    assert!(
        eventually(Duration::from_secs(120), || {
            let before = counters();
            std::thread::sleep(Duration::from_secs(3));
            before == counters()
        }),
        "the controller never went idle"
    );
    let before = counters();
    // The counters are the right ones: this cluster's objects were given a status, and their
    // creation was announced.
    assert!(before.0 > 0.0, "no status write counted: {before:?}");
    assert!(before.1 > 0.0, "no event counted: {before:?}");
    std::thread::sleep(Duration::from_secs(60));
    let after = counters();
    eprintln!(
        "60 s idle: status writes, events, companion writes before {before:?} after {after:?}"
    );
    assert_eq!(before, after, "requests while idle");
}

/// README's blocks `status-get-output` and `status-describe-output` are what kubectl prints for
/// the running example. A live cluster's output differs in AGE, in times and in column widths
/// (other objects widen them), so both sides are compared with whitespace collapsed, the AGE
/// column dropped, times and event ages masked, and only the running example's rows kept.
/// `EGRESS_UPDATE_README=1` writes the live output into README.md instead.
#[test]
fn readme_shows_what_kubectl_prints_for_the_running_example() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    running_example(&dev);
    for (kind, ns, name, _) in EXAMPLE {
        assert!(
            eventually(Duration::from_secs(20), || current(&get(
                &dev, kind, ns, name
            ))),
            "{kind} {ns}/{name}"
        );
    }
    let example_ns = ["global", "istio-egress"];
    let get_cmd = "kubectl get solo-io -A";
    let table = kubectl(&dev, &["get", "solo-io", "-A"])
        .expect_ok("get")
        .stdout;
    let table: String = table
        .lines()
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            first.is_empty() || first == "NAMESPACE" || example_ns.contains(&first)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let describe_cmd = "kubectl describe vg -n istio-egress egress-vg";
    let described = kubectl(&dev, &["describe", "vg", "-n", "istio-egress", "egress-vg"])
        .expect_ok("describe")
        .stdout;
    let from = described.find("Status:").expect("a Status section");
    let described = described[from..].to_string();
    let get_block = format!("```\n$ {get_cmd}\n{table}```");
    let describe_block = format!("```\n$ {describe_cmd}\n...\n{described}```");
    let path = repo("README.md");
    let mut readme = std::fs::read_to_string(&path).unwrap();
    if std::env::var("EGRESS_UPDATE_README").is_ok_and(|v| v == "1") {
        for (name, text) in [
            ("status-get-output", &get_block),
            ("status-describe-output", &describe_block),
        ] {
            let (from, to) = block_range(&readme, name);
            readme.replace_range(from..to, text);
        }
        std::fs::write(&path, &readme).unwrap();
        return;
    }
    for (name, live) in [
        ("status-get-output", &get_block),
        ("status-describe-output", &describe_block),
    ] {
        let (from, to) = block_range(&readme, name);
        assert_eq!(
            normalized(&readme[from..to]),
            normalized(live),
            "README block {name} is not what kubectl prints now (EGRESS_UPDATE_README=1 cargo test --test e2e_status readme):\n{live}"
        );
    }
}

/// Where the text of the README block `name` starts and ends.
fn block_range(readme: &str, name: &str) -> (usize, usize) {
    let start = format!("<!-- {name} -->\n");
    let from = readme
        .find(&start)
        .unwrap_or_else(|| panic!("README has no {name} block"))
        + start.len();
    let to = from
        + readme[from..]
            .find(&format!("\n<!-- /{name} -->"))
            .expect("block end");
    (from, to)
}

/// Whitespace collapsed; a table's last column (AGE) dropped; RFC 3339 times and the Age of
/// event lines masked.
fn normalized(text: &str) -> Vec<String> {
    let time =
        |w: &str| w.len() >= 20 && w.as_bytes()[4] == b'-' && w.contains('T') && w.ends_with('Z');
    let mut out = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let mut words: Vec<String> = line
            .split_whitespace()
            .map(|w| {
                if time(w) {
                    "<time>".into()
                } else {
                    w.to_string()
                }
            })
            .collect();
        if words.first().is_some_and(|w| w == "NAMESPACE") {
            in_table = true;
        }
        if words.is_empty() {
            in_table = false;
        }
        if in_table {
            words.pop();
        }
        // `Normal  CompanionsCreated  5m  egress-webhook  ...`
        if words.len() > 2 && (words[0] == "Normal" || words[0] == "Warning") {
            words[2] = "<age>".into();
        }
        out.push(words.join(" "));
    }
    out
}

fn events_with_outcome(dev: &DevCluster, outcome: &str) -> f64 {
    let text = dev.webhook_metrics_text().expect("in-process webhook");
    text.lines()
        .filter(|l| {
            l.starts_with("egress_webhook_events_total{")
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Churn: the companions of 20 parents deleted by hand three times over are repaired every time,
/// but each parent gets one `Repaired` event a minute, not one per repair.
#[test]
fn repeated_repairs_send_one_event_per_parent_not_a_storm() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    const N: usize = 20;
    let ns = "status-churn";
    kubectl(&dev, &["create", "namespace", ns]).expect_ok("namespace");
    let docs: Vec<String> = (0..N)
        .map(|i| format!("apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: churn-{i}, namespace: {ns}}}\nspec:\n  hosts: [churn-{i}.example.com]\n  ports:\n    - {{name: http, number: 80, protocol: HTTP}}\n"))
        .collect();
    apply(&dev, &docs.join("---\n"), &[]).expect_ok("the ExternalServices");
    let entries = || {
        kubectl(
            &dev,
            &[
                "get",
                "serviceentries",
                "-n",
                ns,
                "-l",
                "app.kubernetes.io/managed-by=egress-webhook",
                "-o",
                "name",
            ],
        )
        .stdout
        .lines()
        .count()
    };
    let accepted = || {
        kubectl(
            &dev,
            &[
                "get",
                "externalservices",
                "-n",
                ns,
                "-o",
                "jsonpath={.items[*].status.common.State.approval}",
            ],
        )
        .stdout
        .matches("ACCEPTED")
        .count()
    };
    assert!(eventually(Duration::from_secs(30), || accepted() == N));
    let (sent0, suppressed0) = (
        events_with_outcome(&dev, "sent"),
        events_with_outcome(&dev, "suppressed"),
    );
    for round in 0..3 {
        kubectl(
            &dev,
            &[
                "delete",
                "serviceentries",
                "-n",
                ns,
                "-l",
                "app.kubernetes.io/managed-by=egress-webhook",
            ],
        )
        .expect_ok("hand deletion");
        assert!(
            eventually(Duration::from_secs(30), || entries() == N),
            "round {round}: not repaired"
        );
    }
    // The last round's events are sent by their own tasks: let them land.
    std::thread::sleep(Duration::from_secs(2));
    let sent = events_with_outcome(&dev, "sent") - sent0;
    let suppressed = events_with_outcome(&dev, "suppressed") - suppressed0;
    eprintln!("3 rounds of {N} repairs: {sent} events sent, {suppressed} suppressed");
    assert!(sent <= N as f64, "{sent} events for {N} parents");
    assert!(suppressed >= N as f64, "{suppressed} suppressed");
    let repaired = kubectl(
        &dev,
        &["get", "events.events.k8s.io", "-n", ns, "-o", "json"],
    )
    .expect_ok("events")
    .json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "Repaired")
        .count();
    assert!(repaired <= N, "{repaired} Repaired events stored");
    kubectl(&dev, &["delete", "namespace", ns, "--wait=false"]).expect_ok("cleanup");
}
