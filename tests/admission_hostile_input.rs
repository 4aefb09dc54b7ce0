//! Hostile review bodies over real TLS (issue 13, item 2), each answered cleanly while valid
//! reviews sent alongside are answered correctly: the largest legal review (3 MiB), 100,000
//! ports in one ExternalService, and names and hosts with control characters, NUL, bidi
//! overrides and non-ASCII letters. (4 MiB bodies, deep nesting, slow headers, stalled bodies
//! and TLS garbage are in admission_bad_input.rs.)

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::bystander::Bystander;
use support::reliability;
use support::server::{
    Http, ServeProcess, TestServer, as_stored, assert_clean, client_with, es_raw, post, review, uid,
};

const BOTH: [Http; 2] = [Http::H1, Http::H2];
/// Generous: a hang fails the test instead of stalling `make test`.
const HANG: Duration = Duration::from_secs(180);

/// Valid reviews alongside, alternating protocol and endpoint.
fn bystander(addr: std::net::SocketAddr, ca: &str) -> Bystander {
    let clients = vec![
        client_with(&[ca], Http::H1, false),
        client_with(&[ca], Http::H2, false),
    ];
    Bystander::start(
        addr,
        clients,
        &["mutate", "validate"],
        Duration::from_millis(5),
    )
}

fn create(obj: &Value, tag: &str) -> (String, Value) {
    let id = uid(tag);
    let mut obj = obj.clone();
    obj["metadata"]["uid"] = json!(id);
    (id.clone(), review(&id, "CREATE", Some(&obj), None))
}

/// The largest review the apiserver can send for a create: a 3 MiB object (its request body
/// limit). Answered, defaulted, on both protocols and endpoints, while small reviews go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_three_mib_review_is_answered() {
    let srv = TestServer::start().await;
    let bystander = bystander(srv.addr(), &srv.pki.bundle.ca_cert);
    let mut obj = as_stored(es_raw(), "three-mib");
    // The object alone is 3 MiB: an annotation fills what the rest leaves.
    let rest = serde_json::to_vec(&obj).unwrap().len();
    obj["metadata"]["annotations"]["example.com/blob"] = json!("x".repeat((3 << 20) - rest - 40));
    let object_len = serde_json::to_vec(&obj).unwrap().len();
    assert!(
        object_len <= 3 << 20 && object_len > (3 << 20) - 100,
        "{object_len}"
    );
    let mut body_len = 0;
    let mut answered = 0;
    tokio::time::timeout(HANG, async {
        for http in BOTH {
            for endpoint in ["mutate", "validate"] {
                let (id, r) = create(&obj, "three-mib");
                body_len = serde_json::to_vec(&r).unwrap().len();
                let a = srv.review(http, endpoint, &r).await;
                a.assert_answers(&id);
                assert!(a.allowed(), "{}", &a.text[..a.text.len().min(500)]);
                if endpoint == "mutate" {
                    let patched = support::server::apply(&obj, a.patch().as_ref());
                    assert_eq!(patched["spec"], support::server::core_default(&obj)["spec"]);
                }
                answered += 1;
            }
        }
    })
    .await
    .expect("3 MiB reviews answered within 180 s");
    let sent = bystander.finish("beside 3 MiB reviews").await;
    reliability::record(
        "admission_hostile_input::a_valid_three_mib_review_is_answered",
        "3 MiB review",
        json!({"sent": answered, "body_bytes": body_len, "answered": answered,
               "valid_reviews_beside": sent, "valid_reviews_failed": 0}),
    );
    srv.stop().await;
}

/// One ExternalService with 100,000 ports (5 MB of JSON, under the 7 MiB body cap): denied
/// with a message that says why and what to do, before anything is typed or defaulted; no
/// panic, no hang, and the valid reviews sent meanwhile are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_thousand_ports_are_denied_clearly() {
    let srv = TestServer::start().await;
    let bystander = bystander(srv.addr(), &srv.pki.bundle.ca_cert);
    let mut full = as_stored(es_raw(), "ports");
    full["spec"]["ports"] = (0..100_000u32)
        .map(|i| json!({"number": 1024 + i % 60_000, "name": format!("p{i}"), "protocol": "HTTP"}))
        .collect();
    // The cheapest spelling of as many ports: `{}` each.
    let mut empty = as_stored(es_raw(), "ports");
    empty["spec"]["ports"] = json!(vec![json!({}); 100_000]);
    let mut largest = 0;
    let mut sent = 0;
    let started = Instant::now();
    tokio::time::timeout(HANG, async {
        for obj in [&full, &empty] {
            for http in BOTH {
                for endpoint in ["mutate", "validate"] {
                    let (id, r) = create(obj, "ports");
                    largest = largest.max(serde_json::to_vec(&r).unwrap().len());
                    let a = srv.review(http, endpoint, &r).await;
                    sent += 1;
                    a.assert_answers(&id);
                    assert!(!a.allowed(), "{}", &a.text[..a.text.len().min(500)]);
                    assert_eq!(a.response()["status"]["code"], 422);
                    let msg = a.message();
                    assert!(
                        msg.contains("ExternalService")
                            && msg.contains("more than 10000 JSON values")
                            && msg.contains("split it into smaller objects"),
                        "{msg}"
                    );
                    assert!(a.patch().is_none(), "nothing is defaulted");
                }
            }
        }
    })
    .await
    .expect("100,000 ports answered within 180 s");
    let elapsed = started.elapsed();
    assert!(largest > 4 << 20, "{largest}");
    let beside = bystander.finish("beside 100,000 ports").await;
    reliability::record(
        "admission_hostile_input::one_hundred_thousand_ports_are_denied_clearly",
        "100,000 ports in one ExternalService",
        json!({"sent": sent, "largest_body_bytes": largest, "denied_422": sent,
               "seconds_for_all_debug_build_with_client_encoding": elapsed.as_secs_f64(),
               "valid_reviews_beside": beside, "valid_reviews_failed": 0}),
    );
    srv.stop().await;
}

/// Values no name or host may hold, and the escaped form an answer must show instead.
const HOSTILE: &[(&str, &str, &str)] = &[
    ("an ANSI escape", "red\u{1b}[31m.example.com", "\\u{1b}"),
    ("a NUL", "nul\u{0}.example.com", "\\0"),
    ("a newline", "line\nbreak.example.com", "\\n"),
    ("a bidi override", "\u{202e}gro.nibptth", "\\u{202e}"),
    (
        "a zero-width space",
        "zero\u{200b}width.example.com",
        "\\u{200b}",
    ),
    ("non-ASCII letters", "bücher.example.com", "bücher"),
];

/// Every string in a JSON answer (keys too) is printable text: no control, format or bidi
/// character survives into what kubectl prints or a log stores.
fn assert_printable(v: &Value, what: &str) {
    // Control characters are unprintable too; newlines separate the lines of a denial.
    let bad = |s: &str| {
        s.chars()
            .any(|c| c != '\n' && egress_webhook::core::text::is_unprintable(c))
    };
    match v {
        Value::String(s) => assert!(!bad(s), "{what}: unprintable text in the answer: {s:?}"),
        Value::Array(a) => a.iter().for_each(|x| assert_printable(x, what)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            assert!(!bad(k), "{what}: unprintable key {k:?}");
            assert_printable(x, what);
        }),
        _ => {}
    }
}

/// Names and hosts with control characters, NUL, newlines, bidi overrides, invisible and
/// non-ASCII characters: denied (422) with the field path and the value escaped, in the answer
/// and in the log, and nothing of them reaches either raw. The real binary, logging text (the
/// format a terminal shows), over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_hosts_are_denied_escaped() {
    let srv = ServeProcess::spawn_logging("text", &[]);
    let ca = srv.pki.bundle.ca_cert.clone();
    let bystander = bystander(srv.addr, &ca);
    let clients = [
        client_with(&[&ca], Http::H1, false),
        client_with(&[&ca], Http::H2, false),
    ];
    let mut sent = 0;
    for (what, value, escaped) in HOSTILE {
        let named = {
            let mut o = as_stored(es_raw(), "hostile");
            o["metadata"]["name"] = json!(value);
            o
        };
        let in_namespace = {
            let mut o = as_stored(es_raw(), "hostile");
            o["metadata"]["namespace"] = json!(value.replace('.', "-"));
            o
        };
        let hosted = {
            let mut o = as_stored(es_raw(), "hostile");
            o["spec"]["hosts"] = json!([value]);
            o
        };
        let cases = [
            (&named, "metadata.name", ["mutate", "validate"].as_slice()),
            (&in_namespace, "metadata.namespace", &["mutate", "validate"]),
            // Hosts are checked by the validating webhook; /mutate only defaults.
            (&hosted, "spec.hosts[0]", &["validate"]),
        ];
        for (obj, path, endpoints) in cases {
            for (i, c) in clients.iter().enumerate() {
                for endpoint in endpoints {
                    let (id, r) = create(obj, "hostile");
                    let url = srv.url(&format!("/{endpoint}?timeout=10s"));
                    let a = post(c, &url, serde_json::to_vec(&r).unwrap())
                        .await
                        .unwrap_or_else(|e| panic!("{what} at {path}: {e:?}"));
                    sent += 1;
                    let ctx = format!("{what} at {path}, /{endpoint}, {:?}", BOTH[i]);
                    a.assert_answers(&id);
                    assert!(!a.allowed(), "{ctx}: {}", a.text);
                    assert_eq!(a.response()["status"]["code"], 422, "{ctx}: {}", a.text);
                    let msg = a.message();
                    assert!(msg.contains(path), "{ctx}: no field path: {msg}");
                    assert!(msg.contains(escaped), "{ctx}: value not shown: {msg}");
                    assert_printable(a.json(), &ctx);
                    assert_clean(&a.text);
                }
            }
        }
        // /mutate on a bad host: allowed and defaulted, its answer printable too.
        let (id, r) = create(&hosted, "hostile");
        let a = post(
            &clients[0],
            &srv.url("/mutate?timeout=10s"),
            serde_json::to_vec(&r).unwrap(),
        )
        .await
        .unwrap();
        sent += 1;
        a.assert_answers(&id);
        assert_printable(a.json(), what);
    }
    let beside = bystander.finish("beside hostile names").await;
    // The log (text format, as a terminal shows it) holds none of them raw either.
    let log = srv.log_text();
    for line in log.lines() {
        assert!(
            !line
                .chars()
                .any(|c| c != '\t' && egress_webhook::core::text::is_unprintable(c)),
            "log line with unprintable characters: {line:?}"
        );
    }
    let denied_lines = log.lines().filter(|l| l.contains("\\u{202e}")).count();
    assert!(denied_lines > 0, "the reviews are logged, escaped: {log}");
    reliability::record(
        "admission_hostile_input::hostile_names_and_hosts_are_denied_escaped",
        "names and hosts with control characters, NUL, bidi overrides, non-ASCII",
        json!({"sent": sent, "values": HOSTILE.len(), "unescaped_in_answers_or_log": 0,
               "valid_reviews_beside": beside, "valid_reviews_failed": 0}),
    );
}
