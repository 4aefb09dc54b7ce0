//! Only the apiserver may trigger writes: on the real control plane, whose kube-apiserver
//! presents a client certificate to webhooks (`--admission-control-config-file`), the webhook
//! requires it (`--client-ca`, `--client-allowed-names`). A forged review sent straight to
//! `/validate` or `/mutate` is refused in the TLS handshake, without a client certificate, with
//! a user's certificate of the cluster CA and with a certificate of the right CA but the wrong
//! name, and no Istio object appears; the same object through `kubectl apply` is admitted and
//! gets its companions. A client holding the apiserver's certificate is answered (the control
//! that shows the refusals are about the certificate, nothing else).

mod e2e;

use std::time::Duration;

use e2e::direct::{client, post};
use e2e::{apply, eventually, kubectl, metric_sum, shared};
use egress_webhook::controlplane::WEBHOOK_CLIENT_NAME;
use serde_json::{Value, json};

const NS: &str = "client-auth";
const HOST: &str = "evil.example.com";

fn external_service() -> Value {
    json!({
        "apiVersion": "networking.gloo.solo.io/v2",
        "kind": "ExternalService",
        "metadata": {"name": "evil", "namespace": NS},
        "spec": {
            "hosts": [HOST],
            "ports": [{"name": "https", "number": 443, "protocol": "HTTPS"}]
        }
    })
}

/// The review of the attack: a CREATE, not a dry run.
fn forged_review(uid: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "networking.gloo.solo.io", "version": "v2", "kind": "ExternalService"},
            "resource": {"group": "networking.gloo.solo.io", "version": "v2", "resource": "externalservices"},
            "name": "evil",
            "namespace": NS,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:default:attacker"},
            "object": external_service(),
            "dryRun": false
        }
    })
}

fn istio_objects_for_host(dev: &egress_webhook::cluster::dev::DevCluster) -> String {
    let out = kubectl(
        dev,
        &[
            "get",
            "serviceentries,destinationrules,gateways,virtualservices,authorizationpolicies",
            "-A",
            "-o",
            "json",
        ],
    )
    .expect_ok("list Istio objects");
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.to_string().contains(HOST))
        .map(|o| {
            format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn only_the_apiserver_certificate_gets_a_review_answered() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    apply(
        &dev,
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"),
        &[],
    )
    .expect_ok("namespace");
    let base = dev.webhook_url();
    let ca = dev.webhook_ca_pem().to_string();
    // A user of the cluster: its certificate is signed by the cluster CA, not the webhook-client CA.
    let user = dev.cp().mint_user("client-auth-user", &[]).unwrap();
    let impostor = dev
        .cp()
        .webhook_client_cert("kube-apiserver-impostor")
        .unwrap();
    let apiserver = dev.cp().webhook_client_cert(WEBHOOK_CLIENT_NAME).unwrap();
    let before = dev.webhook_metrics_text().expect("in-process metrics");
    let rejected = |text: &str, reason: &str| {
        metric_sum(
            text,
            &format!("egress_webhook_client_certificates_rejected_total{{reason=\"{reason}\"}}"),
        )
    };

    let refused: Vec<(&str, reqwest::Client)> = vec![
        ("no client certificate", client(&ca, None)),
        (
            "a cluster user's certificate",
            client(&ca, Some((&user.cert_path, &user.key_path))),
        ),
        (
            "the webhook-client CA, another name",
            client(&ca, Some((&impostor.0, &impostor.1))),
        ),
    ];
    dev.block_on(async {
        for (what, c) in &refused {
            for endpoint in ["/validate", "/mutate"] {
                let r = post(c, &format!("{base}{endpoint}"), &forged_review("forged")).await;
                let err = r.expect_err(&format!("{what} on {endpoint}: answered"));
                // Refused in the handshake: a TLS alert or a closed connection, never an HTTP
                // answer (reqwest reports the rustls alert as the error's source).
                assert!(
                    !err.starts_with("HTTP "),
                    "{what} on {endpoint}: got an HTTP answer: {err}"
                );
            }
        }
        // The apiserver's certificate is answered: a dry run, so that it writes nothing.
        let mut review = forged_review("apiserver");
        review["request"]["dryRun"] = json!(true);
        let answer = post(
            &client(&ca, Some((&apiserver.0, &apiserver.1))),
            &format!("{base}/validate"),
            &review,
        )
        .await
        .expect("the apiserver's certificate is answered");
        assert_eq!(answer["response"]["uid"], "apiserver", "{answer}");
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
    });
    let after = dev.webhook_metrics_text().unwrap();
    // Each certificate refused once per endpoint (the no-certificate case never reaches a verifier).
    assert_eq!(
        rejected(&after, "untrusted") - rejected(&before, "untrusted"),
        2.0
    );
    assert_eq!(rejected(&after, "name") - rejected(&before, "name"), 2.0);
    assert!(
        after.contains("egress_webhook_client_auth{mode=\"mtls\"} 1\n"),
        "{after}"
    );
    assert!(
        after.contains("egress_webhook_client_auth{mode=\"none\"} 0\n"),
        "{after}"
    );

    // Nothing was written: the forged CREATE never reached the handler. (Had it, the companions
    // would be created within the review, before its answer; a few seconds cover any lag of
    // the list.)
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(istio_objects_for_host(&dev), "");

    // The same object through the apiserver is admitted and gets its companions.
    let yaml = serde_json::to_string(&external_service()).unwrap();
    apply(&dev, &yaml, &[]).expect_ok("kubectl apply of the same ExternalService");
    let mut found = String::new();
    let written = eventually(Duration::from_secs(30), || {
        found = istio_objects_for_host(&dev);
        found.contains("ServiceEntry") && found.contains("DestinationRule")
    });
    assert!(
        written,
        "companions of the applied ExternalService: {found:?}"
    );
    kubectl(&dev, &["delete", "namespace", NS, "--wait=false"]).expect_ok("cleanup");
}
