//! The global cap on review bytes in flight (`--max-inflight-bytes`), over real TLS: a review
//! that does not fit in what other reviews hold is answered 429 with `Retry-After` and an
//! AdmissionReview saying why (counted as `verdict="overloaded"`), small reviews that fit are
//! still answered, and the bytes return to the budget once the holder is answered.

mod support;

use std::time::Duration;

use egress_webhook::admission::budget::{decide_cost, parse_cost};
use serde_json::{Value, json};
use support::server::{Http, TestServer, http1_post, read_http1, tls_connect, valid_review};
use tokio::io::AsyncWriteExt;

const BIG: usize = 60_000;

/// What a review of `len` bytes (a padded seed review: ~30 values) reserves once decoded.
fn cost(len: usize) -> usize {
    len + parse_cost(len) + decide_cost(200)
}

/// A valid review padded with trailing spaces (still valid JSON) to exactly `len` bytes.
fn padded_review(tag: &str, len: usize) -> (String, Vec<u8>) {
    let (uid, review) = valid_review(tag);
    let mut body = serde_json::to_vec(&review).unwrap();
    assert!(body.len() < len);
    body.resize(len, b' ');
    (uid, body)
}

async fn metric(srv: &TestServer, series: &str) -> f64 {
    let (_, text) = srv.get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_past_the_inflight_cap_gets_429_and_the_bytes_come_back() {
    let (_, small) = valid_review("size");
    let small_len = serde_json::to_vec(&small).unwrap().len();
    // Room for A whole and a small review beside it, not for another body as large as the rest.
    let cap = cost(BIG) + cost(small_len);
    let srv = TestServer::start_with(support::seed(), |c| {
        c.max_inflight_bytes = Some(cap);
        c.max_body_bytes = 64 << 20;
    })
    .await;
    // A holds BIG bytes: it said so in Content-Length and sends only part of its body.
    let (uid_a, body_a) = padded_review("held", BIG);
    let request = http1_post("/validate?timeout=10s", &body_a, true);
    let split = request.len() - 100;
    let mut a = tls_connect(srv.addr(), &[&srv.pki.bundle.ca_cert], &[b"http/1.1"])
        .await
        .unwrap();
    a.write_all(&request[..split]).await.unwrap();
    a.flush().await.unwrap();
    let gauge = "egress_webhook_admission_inflight_bytes";
    let mut seen = 0.0;
    for _ in 0..200 {
        seen = metric(&srv, gauge).await;
        if seen >= BIG as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, BIG as f64, "A's bytes are reserved");

    // B says it is larger than what is left: refused at once, with a review and Retry-After.
    let (_, body_b) = padded_review("refused", cap - BIG + 1);
    let b = srv
        .h1
        .post(srv.url("/validate?timeout=10s"))
        .header("content-type", "application/json")
        .body(body_b.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(b.status().as_u16(), 429);
    assert_eq!(b.headers()["retry-after"], "1");
    let answer: Value = b.json().await.unwrap();
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 429);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("--max-inflight-bytes {cap}")),
        "{answer}"
    );

    // A small review fits beside A: the cap refuses what does not fit, not everything.
    let (uid_c, small) = valid_review("small");
    srv.review(Http::H2, "validate", &small)
        .await
        .assert_answers(&uid_c);

    // A finishes and is answered; its bytes return, and another review as large as A fits.
    a.write_all(&request[split..]).await.unwrap();
    let (status, _, text) = read_http1(&mut a).await.unwrap();
    assert_eq!(status, 200, "{text}");
    let answer_a: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer_a["response"]["uid"], json!(uid_a));
    assert_eq!(metric(&srv, gauge).await, 0.0);
    let (uid_b, body_b) = padded_review("retried", BIG);
    let b = support::server::post(&srv.h1, &srv.url("/validate?timeout=10s"), body_b)
        .await
        .unwrap();
    b.assert_answers(&uid_b);

    let overloaded = "egress_webhook_admission_requests_total{kind=\"other\",operation=\"other\",endpoint=\"validate\",verdict=\"overloaded\"}";
    assert_eq!(metric(&srv, overloaded).await, 1.0);
    srv.stop().await;
}
