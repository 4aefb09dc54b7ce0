//! No blocking on the async workers (issue 13, item 4): while the most expensive legal reviews
//! (3 MiB UPDATEs of about 6,300 long hosts each, the largest object etcd stores, twice) are in
//! flight one after another on several connections, small reviews and `/readyz` keep being
//! answered, correctly, on a runtime with a single async worker (so a review parsed on the
//! worker would hold up everything else until it is done). No timing is asserted here: the
//! latency of small reviews beside large ones is measured by `bench/blocking.py` (make bench).

mod support;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};
use std::time::Duration;

use serde_json::{Value, json};
use support::bystander::Bystander;
use support::reliability;
use support::server::{Http, TestServer, as_stored, client_with, es_raw, review, uid};

/// Generous: a hang fails the test instead of stalling `make test`.
const HANG: Duration = Duration::from_secs(240);

/// The largest legal ExternalService: about 1.5 MiB of hosts, 249 characters each (four labels
/// of up to 63), within the 10,000 JSON values a review may hold.
fn largest_es() -> Value {
    let mut obj = as_stored(es_raw(), "largest");
    let long_host = |i: usize| {
        format!(
            "h{i:06}{}.{}.{}.{}.example.org",
            "x".repeat(56),
            "y".repeat(63),
            "z".repeat(63),
            "w".repeat(45)
        )
    };
    let mut hosts = vec![json!("httpbin.org")];
    hosts.extend((0..((3 << 19) - 4096) / 252).map(|i| json!(long_host(i))));
    obj["spec"]["hosts"] = Value::Array(hosts);
    obj
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn small_reviews_and_readyz_are_answered_while_3_mib_reviews_are_decided() {
    let srv = TestServer::start().await;
    let ca = srv.pki.bundle.ca_cert.clone();
    let obj = largest_es();
    let body = serde_json::to_vec(&review("x", "UPDATE", Some(&obj), Some(&obj))).unwrap();
    assert!(body.len() > 3_000_000, "{}", body.len());

    let stop = Arc::new(AtomicBool::new(false));
    // Three connections, each sending large reviews back to back. Three of them at once may
    // not fit in the default --max-inflight-bytes: those get 429 (the apiserver retries), which
    // is counted, not failed.
    let large_answered = Arc::new(AtomicUsize::new(0));
    let large_refused = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for n in 0..3 {
        let client = client_with(&[&ca], Http::H1, false);
        let (stop, answered, refused, obj, url) = (
            stop.clone(),
            large_answered.clone(),
            large_refused.clone(),
            obj.clone(),
            srv.url("/validate?timeout=10s"),
        );
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let id = uid(&format!("large-{n}"));
                let r = review(&id, "UPDATE", Some(&obj), Some(&obj));
                let a = support::server::post(&client, &url, serde_json::to_vec(&r).unwrap())
                    .await
                    .expect("a large review is answered");
                if a.status == 429 {
                    assert!(a.text.contains("--max-inflight-bytes"), "{}", a.text);
                    refused.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                a.assert_answers(&id);
                assert!(a.allowed(), "{}", &a.text[..a.text.len().min(500)]);
                answered.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let bystander = Bystander::start(
        srv.addr(),
        vec![
            client_with(&[&ca], Http::H1, false),
            client_with(&[&ca], Http::H2, false),
        ],
        &["validate", "mutate"],
        Duration::from_millis(2),
    );
    let mut readyz = 0;
    tokio::time::timeout(HANG, async {
        // Until each sender has had a dozen large reviews answered.
        while large_answered.load(Ordering::SeqCst) < 36 {
            let (status, text) = srv.get("/readyz").await;
            assert_eq!(status, 200, "/readyz beside large reviews: {text}");
            readyz += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("36 large reviews answered within 240 s");
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        tokio::time::timeout(HANG, s)
            .await
            .expect("large senders stop")
            .unwrap();
    }
    let small = bystander.finish("beside 3 MiB reviews").await;
    assert!(readyz > 0);
    reliability::record(
        "admission_no_blocking::small_reviews_and_readyz_are_answered_while_3_mib_reviews_are_decided",
        "small reviews beside 3 MiB reviews",
        json!({"large_reviews": large_answered.load(Ordering::SeqCst),
               "large_refused_429": large_refused.load(Ordering::SeqCst), "large_body_bytes": body.len(),
               "small_reviews": small, "small_failed": 0, "readyz_answered": readyz}),
    );
    srv.stop().await;
}
