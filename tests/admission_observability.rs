//! /metrics after known reviews (exact counts), the plain-HTTP metrics listener, and the JSON
//! log line of each review from the real binary.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::server::{
    Http, ServeProcess, TestServer, ap_raw, as_stored, client, es_raw, http1_post, post,
    read_http1_response, review, tls_connect, uid, valid_review, wait_for,
};
use tokio::io::AsyncWriteExt;

/// The value of the sample line `name{labels} value` (labels in the server's order).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn requests(kind: &str, op: &str, endpoint: &str, verdict: &str) -> String {
    format!(
        "egress_webhook_admission_requests_total{{kind=\"{kind}\",operation=\"{op}\",endpoint=\"{endpoint}\",verdict=\"{verdict}\"}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_reviews_by_kind_operation_endpoint_and_verdict() {
    let srv = TestServer::start_with(support::seed(), |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let es = as_stored(es_raw(), "es-uid");
    let ap = as_stored(ap_raw(), "ap-uid");
    let mut bad = es.clone();
    bad["spec"]["ports"][0]["number"] = json!("abc");
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "bookinfo"}, "spec": {}});
    // 3 × ES validate (E25 each), 2 × ES mutate (patched), 1 × AP validate (A6),
    // 1 × ES UPDATE validate, 1 denied, 1 ignored, 1 unreadable.
    for _ in 0..3 {
        let a = srv
            .review(
                Http::H1,
                "validate",
                &review(&uid("m"), "CREATE", Some(&es), None),
            )
            .await;
        assert!(a.allowed());
    }
    for _ in 0..2 {
        let a = srv
            .review(
                Http::H2,
                "mutate",
                &review(&uid("m"), "CREATE", Some(&es), None),
            )
            .await;
        assert!(a.patch().is_some());
    }
    srv.review(
        Http::H2,
        "validate",
        &review(&uid("m"), "CREATE", Some(&ap), None),
    )
    .await;
    srv.review(
        Http::H1,
        "validate",
        &review(&uid("m"), "UPDATE", Some(&es), Some(&es)),
    )
    .await;
    let a = srv
        .review(
            Http::H1,
            "validate",
            &review(&uid("m"), "CREATE", Some(&bad), None),
        )
        .await;
    assert!(!a.allowed());
    srv.review(
        Http::H1,
        "mutate",
        &review(&uid("m"), "CREATE", Some(&deployment), None),
    )
    .await;
    // A client naming its own kind and operation mints no new series.
    let mut minted = review(&uid("m"), "CREATE", Some(&deployment), None);
    minted["request"]["kind"]["kind"] = json!("MintedKind7");
    minted["request"]["operation"] = json!("MINTED_OP");
    srv.review(Http::H1, "validate", &minted).await;
    let a = post(&srv.h1, &srv.url("/validate?timeout=10s"), b"nope".to_vec())
        .await
        .unwrap();
    assert_eq!(a.status, 400);

    let (status, m) = srv.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(!m.contains("Minted") && !m.contains("MINTED"), "{m}");
    let expect = [
        (
            requests("ExternalService", "CREATE", "validate", "allowed"),
            3.0,
        ),
        (
            requests("ExternalService", "CREATE", "mutate", "patched"),
            2.0,
        ),
        (
            requests("AccessPolicy", "CREATE", "validate", "allowed"),
            1.0,
        ),
        (
            requests("ExternalService", "UPDATE", "validate", "allowed"),
            1.0,
        ),
        (
            requests("ExternalService", "CREATE", "validate", "denied"),
            1.0,
        ),
        // Label values from a fixed set, whatever the body says (`admission::labels`).
        (requests("other", "CREATE", "mutate", "ignored"), 1.0),
        (requests("other", "other", "validate", "invalid"), 1.0),
        (requests("other", "other", "validate", "ignored"), 1.0),
        (
            "egress_webhook_findings_total{rule=\"E25\",severity=\"warning\"}".to_string(),
            4.0,
        ),
        (
            "egress_webhook_findings_total{rule=\"A6\",severity=\"warning\"}".to_string(),
            1.0,
        ),
        ("egress_webhook_admission_in_flight".to_string(), 0.0),
        (
            "egress_webhook_admission_duration_seconds_count{endpoint=\"validate\"}".to_string(),
            8.0,
        ),
        (
            "egress_webhook_admission_duration_seconds_count{endpoint=\"mutate\"}".to_string(),
            3.0,
        ),
        (
            "egress_webhook_catalog_objects{kind=\"ExternalService\"}".to_string(),
            1.0,
        ),
        (
            "egress_webhook_catalog_objects{kind=\"VirtualGateway\"}".to_string(),
            1.0,
        ),
        (
            "egress_webhook_catalog_objects{kind=\"AccessPolicy\"}".to_string(),
            1.0,
        ),
        (
            "egress_webhook_catalog_objects{kind=\"ServiceAccount\"}".to_string(),
            3.0,
        ),
        (
            "egress_webhook_catalog_objects{kind=\"Service\"}".to_string(),
            1.0,
        ),
    ];
    for (series, value) in &expect {
        assert_eq!(sample(&m, series), Some(*value), "{series}\n{m}");
    }
    assert!(
        m.contains(
            "egress_webhook_admission_duration_seconds_bucket{le=\"0.001\",endpoint=\"validate\"}"
        ) || m.contains(
            "egress_webhook_admission_duration_seconds_bucket{endpoint=\"validate\",le=\"0.001\"}"
        ),
        "{m}"
    );
    let expiry = sample(&m, "egress_webhook_certificate_expiry_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now + 364.0 * 86400.0 && expiry < now + 366.0 * 86400.0);
    assert!(m.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");

    // The plain-HTTP listener serves the same probes and metrics (not the reviews).
    let maddr = srv.running.metrics_addr.expect("metrics listener");
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = plain
        .get(format!("http://{maddr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            &requests("ExternalService", "CREATE", "validate", "allowed")
        ),
        Some(3.0)
    );
    for (path, code) in [("/healthz", 200), ("/readyz", 200)] {
        let r = plain
            .get(format!("http://{maddr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code, "{path}");
    }
    let r = plain
        .post(format!("http://{maddr}/validate"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "reviews only over TLS");
    srv.stop().await;
}

/// The in-flight gauge counts a review whose body is still arriving, and drops back after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_counts_reviews_being_answered() {
    let srv = TestServer::start().await;
    let ca = srv.pki.bundle.ca_cert.clone();
    let (id, r) = valid_review("inflight");
    let req = http1_post(
        "/validate?timeout=10s",
        &serde_json::to_vec(&r).unwrap(),
        false,
    );
    let half = req.len() / 2;
    let mut tls = tls_connect(srv.addr(), &[&ca], &[b"http/1.1"])
        .await
        .unwrap();
    tls.write_all(&req[..half]).await.unwrap();
    tls.flush().await.unwrap();
    let gauge = "egress_webhook_admission_in_flight";
    wait_for("in_flight is 1", Duration::from_secs(10), || async {
        sample(&srv.get("/metrics").await.1, gauge) == Some(1.0)
    })
    .await;
    tls.write_all(&req[half..]).await.unwrap();
    let (status, body) = read_http1_response(&mut tls).await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(&id));
    assert_eq!(sample(&srv.get("/metrics").await.1, gauge), Some(0.0));
    srv.stop().await;
}

/// With `--log-format json` and the admission's debug lines on, each review is one JSON line
/// carrying uid, kind, object, operation, verdict and duration: admitted ones at DEBUG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_review_logs_one_json_line() {
    support::server::init_crypto();
    let serve = ServeProcess::spawn_filtered(
        "json",
        "info,egress_webhook::admission=debug",
        &["--shutdown-delay", "0s"],
    );
    let c = client(&serve.pki.bundle.ca_cert, Http::H2);
    let es = as_stored(es_raw(), "es-uid");
    let cases = [
        ("validate", "CREATE", "allowed"),
        ("mutate", "CREATE", "patched"),
        ("validate", "UPDATE", "allowed"),
    ];
    let mut uids = Vec::new();
    for (endpoint, op, verdict) in cases {
        let id = uid("log");
        let old = (op == "UPDATE").then_some(&es);
        let a = post(
            &c,
            &serve.url(&format!("/{endpoint}?timeout=10s")),
            serde_json::to_vec(&review(&id, op, Some(&es), old)).unwrap(),
        )
        .await
        .unwrap();
        a.assert_answers(&id);
        uids.push((id, endpoint, op, verdict));
    }
    for (id, endpoint, op, verdict) in &uids {
        let for_uid = |lines: &[Value]| -> Vec<Value> {
            lines
                .iter()
                .filter(|l| l["span"]["uid"] == id.as_str())
                .cloned()
                .collect()
        };
        wait_for("the review's log line", Duration::from_secs(10), || {
            let n = for_uid(&serve.log_lines()).len();
            async move { n >= 1 }
        })
        .await;
        let lines = for_uid(&serve.log_lines());
        assert_eq!(lines.len(), 1, "one line per review: {lines:?}");
        let span = &lines[0]["span"];
        assert_eq!(span["kind"], "ExternalService", "{span}");
        assert_eq!(span["object"], "global/httpbin.org", "{span}");
        assert_eq!(span["operation"], *op, "{span}");
        assert_eq!(span["endpoint"], *endpoint, "{span}");
        assert_eq!(span["verdict"], *verdict, "{span}");
        assert!(span["duration_us"].is_u64(), "{span}");
        assert_eq!(lines[0]["level"], "DEBUG");
    }
    // Every line is JSON (nothing else on stderr).
    let text = serve.log_text();
    for l in text.lines() {
        assert!(serde_json::from_str::<Value>(l).is_ok(), "not JSON: {l}");
    }
}

/// At the default `info`, admitted reviews write no line (the counters count them) and a
/// denied one writes one INFO line naming the object and the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_only_denials_are_logged() {
    support::server::init_crypto();
    let serve = ServeProcess::spawn(&["--shutdown-delay", "0s"]);
    let c = client(&serve.pki.bundle.ca_cert, Http::H1);
    let (allowed_id, r) = valid_review("quiet");
    post(
        &c,
        &serve.url("/validate?timeout=10s"),
        serde_json::to_vec(&r).unwrap(),
    )
    .await
    .unwrap()
    .assert_answers(&allowed_id);
    let denied_id = uid("loud");
    let mut bad = as_stored(es_raw(), &denied_id);
    bad["spec"]["ports"][0]["number"] = json!("abc");
    let a = post(
        &c,
        &serve.url("/validate?timeout=10s"),
        serde_json::to_vec(&review(&denied_id, "CREATE", Some(&bad), None)).unwrap(),
    )
    .await
    .unwrap();
    a.assert_answers(&denied_id);
    assert!(!a.allowed());
    // Lines are written in order: once the denial's line is there, the allowed review's would be.
    wait_for("the denial's log line", Duration::from_secs(10), || {
        let found = serve.log_text().contains(&denied_id);
        async move { found }
    })
    .await;
    let lines = serve.log_lines();
    let denied: Vec<_> = lines
        .iter()
        .filter(|l| l["span"]["uid"] == denied_id.as_str())
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["level"], "INFO");
    assert_eq!(denied[0]["span"]["verdict"], "denied");
    assert!(
        !serve.log_text().contains(&allowed_id),
        "an admitted review was logged at info: {}",
        serve.log_text()
    );
}

/// Text logs written to a file (a pipe, a collector) carry no colour escape codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_to_a_file_are_plain() {
    support::server::init_crypto();
    let serve = ServeProcess::spawn_filtered(
        "text",
        "info,egress_webhook::admission=debug",
        &["--shutdown-delay", "0s"],
    );
    let c = client(&serve.pki.bundle.ca_cert, Http::H1);
    let (id, r) = valid_review("text");
    let a = post(
        &c,
        &serve.url("/validate?timeout=10s"),
        serde_json::to_vec(&r).unwrap(),
    )
    .await
    .unwrap();
    a.assert_answers(&id);
    wait_for("the review's log line", Duration::from_secs(10), || {
        let found = serve.log_text().contains(&id);
        async move { found }
    })
    .await;
    let log = serve.log_text();
    assert!(!log.contains('\x1b'), "escape codes in a log file: {log:?}");
    let line = log.lines().find(|l| l.contains(&id)).unwrap();
    for field in [
        "kind=ExternalService",
        "object=global/httpbin.org",
        "operation=CREATE",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
}
