//! Bad input over real TLS: each gets a clear answer (or a closed connection below HTTP), no
//! panic, and the same server answers the next valid review.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::server::{
    Answer, Http, TestServer, as_stored, assert_clean, client_with, es_raw, http1_post, raw_review,
    read_http1_response, review, tls_connect, uid, valid_review, wait_for,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const BOTH: [Http; 2] = [Http::H1, Http::H2];

async fn post_raw(srv: &TestServer, http: Http, endpoint: &str, body: Vec<u8>) -> Answer {
    let a = support::server::post(
        srv.client(http),
        &srv.url(&format!("/{endpoint}?timeout=10s")),
        body,
    )
    .await
    .unwrap_or_else(|e| panic!("POST over {http:?}: {e:?}"));
    assert_eq!(a.version, http.version());
    a
}

/// A 4xx that is an AdmissionReview: `allowed: false`, a message, the same code inside.
fn assert_rejected(a: &Answer, status: u16, needle: &str) {
    assert_rejected_as(a, status, needle, "");
}

fn assert_rejected_as(a: &Answer, status: u16, needle: &str, what: &str) {
    assert_clean(&a.text);
    assert_eq!(a.status, status, "{what}: {}", a.text);
    let r = a.response();
    assert_eq!(r["allowed"], false, "{what}: {}", a.text);
    assert_eq!(r["status"]["code"], status, "{what}: {}", a.text);
    let msg = a.message();
    assert!(!msg.is_empty(), "{what}: no message: {}", a.text);
    assert!(
        msg.contains(needle),
        "{what}: message lacks {needle:?}: {msg}"
    );
}

/// The server still answers a valid review on both endpoints.
async fn assert_serving(srv: &TestServer, http: Http) {
    for endpoint in ["mutate", "validate"] {
        let (id, r) = valid_review("after");
        let a = srv.review(http, endpoint, &r).await;
        a.assert_answers(&id);
        assert!(a.allowed(), "{}", a.text);
    }
}

/// `assert_serving` on new connections: a client arriving while a slow one is being cut off.
/// (Before `idle_timeout` was its own setting, hyper's header timeout also closed kept-alive
/// HTTP/1.1 connections idle for that long, and CI saw "peer closed connection" when the client
/// reused a pooled connection at the moment the server closed it: the race that
/// tests/admission_idle_connections.rs keeps away from the apiserver.)
async fn assert_serving_fresh(srv: &TestServer, ca: &str, http: Http) {
    let fresh = client_with(&[ca], http, true);
    for endpoint in ["mutate", "validate"] {
        let (id, r) = valid_review("after");
        let a = support::server::post(
            &fresh,
            &srv.url(&format!("/{endpoint}?timeout=10s")),
            serde_json::to_vec(&r).unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("POST /{endpoint} over {http:?} on a new connection: {e:?}"));
        a.assert_answers(&id);
        assert!(a.allowed(), "{}", a.text);
    }
}

fn without(mut v: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(if parent.is_empty() { "" } else { parent })
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove(key);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_reviews_get_400_with_a_review() {
    let srv = TestServer::start().await;
    let (_, valid) = valid_review("base");
    let mut v1beta1 = valid.clone();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut wrong_kind = valid.clone();
    wrong_kind["kind"] = json!("ConfigMap");
    let mut empty_uid = valid.clone();
    empty_uid["request"]["uid"] = json!("");
    let mut request_not_object = valid.clone();
    request_not_object["request"] = json!("CREATE please");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"this is not { json".to_vec(), "not JSON"),
        ("empty body", Vec::new(), "not JSON"),
        (
            "truncated JSON",
            serde_json::to_vec(&valid).unwrap()[..100].to_vec(),
            "not JSON",
        ),
        (
            "a JSON array",
            b"[1, 2, 3]".to_vec(),
            "not an AdmissionReview",
        ),
        (
            "a JSON string",
            b"\"AdmissionReview\"".to_vec(),
            "not an AdmissionReview",
        ),
        (
            "another object",
            br#"{"hello": "world"}"#.to_vec(),
            "AdmissionReview",
        ),
        (
            "request of the wrong type",
            serde_json::to_vec(&request_not_object).unwrap(),
            "not an AdmissionReview",
        ),
        (
            "wrong kind",
            serde_json::to_vec(&wrong_kind).unwrap(),
            "ConfigMap",
        ),
        (
            "v1beta1",
            serde_json::to_vec(&v1beta1).unwrap(),
            "admission.k8s.io/v1",
        ),
        (
            "no request",
            serde_json::to_vec(&without(valid.clone(), "/request")).unwrap(),
            "no request",
        ),
        (
            "no uid",
            serde_json::to_vec(&without(valid.clone(), "/request/uid")).unwrap(),
            "no uid",
        ),
        (
            "empty uid",
            serde_json::to_vec(&empty_uid).unwrap(),
            "no uid",
        ),
    ];
    for http in BOTH {
        for endpoint in ["mutate", "validate"] {
            for (what, body, needle) in &cases {
                let a = post_raw(&srv, http, endpoint, body.clone()).await;
                assert_rejected_as(&a, 400, needle, what);
                assert_serving(&srv, http).await;
            }
        }
    }
    srv.stop().await;
}

/// A review we can read whose object is not its kind's schema: HTTP 200 (the apiserver shows a
/// webhook's message only from a 200), allowed false, code 422, the field path in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_not_matching_its_schema_is_denied_with_422() {
    let srv = TestServer::start().await;
    let mut bad = as_stored(es_raw(), "bad-uid");
    bad["spec"]["ports"][0]["number"] = json!("abc");
    for http in BOTH {
        for endpoint in ["mutate", "validate"] {
            for op in ["CREATE", "UPDATE"] {
                let good_old = as_stored(es_raw(), "bad-uid");
                let old = (op == "UPDATE").then_some(&good_old);
                let id = uid("schema");
                let a = srv
                    .review(http, endpoint, &review(&id, op, Some(&bad), old))
                    .await;
                a.assert_answers(&id);
                assert!(!a.allowed(), "{}", a.text);
                assert_eq!(a.response()["status"]["code"], 422, "{}", a.text);
                let msg = a.message();
                assert!(msg.contains("spec.ports[0].number"), "{msg}");
                assert!(msg.contains("httpbin.org"), "names the object: {msg}");
                assert!(a.patch().is_none());
                assert_serving(&srv, http).await;
            }
        }
    }
    srv.stop().await;
}

/// The request names one kind and carries another object: denied (422), not validated under
/// the wrong kind's rules, nor waved through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_of_another_kind_than_the_request_is_denied() {
    let srv = TestServer::start().await;
    let vg = as_stored(support::server::vg_raw(), "vg-uid");
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "namespace": "global"}, "spec": {}});
    for object in [&vg, &service] {
        for endpoint in ["mutate", "validate"] {
            let id = uid("mismatch");
            let mut r = review(&id, "CREATE", Some(object), None);
            r["request"]["kind"] = json!({"group": "networking.gloo.solo.io", "version": "v2", "kind": "ExternalService"});
            let a = srv.review(Http::H1, endpoint, &r).await;
            a.assert_answers(&id);
            assert!(!a.allowed(), "{}", a.text);
            assert_eq!(a.response()["status"]["code"], 422, "{}", a.text);
            assert!(a.message().contains("ExternalService"), "{}", a.text);
        }
    }
    assert_serving(&srv, Http::H1).await;
    srv.stop().await;
}

/// serde_json's recursion limit answers 400; no stack overflow (which would abort the process,
/// and the next review would find no server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_ten_thousand_levels_deep_is_400() {
    let srv = TestServer::start().await;
    let depth = 10_000;
    let bare = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    // The same depth inside a review's object, where a typed decoder would meet it.
    let (_, valid) = valid_review("deep");
    let text = serde_json::to_string(&valid).unwrap();
    let inside = text
        .replacen(
            "\"spec\":{",
            &format!(
                "\"spec\":{{\"deep\":{}{},",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
            1,
        )
        .into_bytes();
    assert!(inside.len() > 2 * depth);
    let objects = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes();
    for http in BOTH {
        for endpoint in ["mutate", "validate"] {
            for body in [&bare, &inside, &objects] {
                let a = post_raw(&srv, http, endpoint, body.clone()).await;
                // One typed parse of the body (no generic `Value` first): a nesting the review
                // type does not expect is refused where it starts, deeper ones at serde_json's
                // recursion limit; neither recurses past it.
                let msg = a.message();
                let needle = if msg.contains("recursion limit") {
                    "recursion limit"
                } else {
                    "the body is not"
                };
                assert_rejected(&a, 400, needle);
                assert_serving(&srv, http).await;
            }
        }
    }
    srv.stop().await;
}

/// A review `size` bytes long or more: the seed ExternalService with a large annotation.
fn big_review(size: usize) -> (String, Value) {
    let id = uid("big");
    let mut obj = as_stored(es_raw(), &id);
    obj["metadata"]["annotations"]["example.com/blob"] = json!("x".repeat(size));
    let r = review(&id, "CREATE", Some(&obj), None);
    (id, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_gets_413() {
    let srv = TestServer::start_with(support::seed(), |c| c.max_body_bytes = 3 << 20).await;
    let (_, r) = big_review(4 << 20);
    let body = serde_json::to_vec(&r).unwrap();
    assert!(body.len() > 4 << 20);
    for http in BOTH {
        for endpoint in ["mutate", "validate"] {
            let a = post_raw(&srv, http, endpoint, body.clone()).await;
            assert_rejected(&a, 413, "larger than 3145728 bytes");
            assert_serving(&srv, http).await;
        }
    }
    // Far past the cap (more than twice it) the server stops reading and closes: an HTTP/2
    // client still gets its 413 (the stream is reset, the connection lives), an HTTP/1.1 one
    // may see its write fail instead. Either way the server serves on.
    let huge = vec![b' '; 16 << 20];
    let a = post_raw(&srv, Http::H2, "validate", huge.clone()).await;
    assert_rejected(&a, 413, "larger than");
    let h1 = support::server::post(&srv.h1, &srv.url("/validate?timeout=10s"), huge).await;
    if let Ok(a) = h1 {
        assert_rejected(&a, 413, "larger than");
    }
    for http in BOTH {
        assert_serving(&srv, http).await;
    }
    // Just under the cap is still answered.
    let (id, r) = big_review((3 << 20) - 64 * 1024);
    let a = srv.review(Http::H2, "validate", &r).await;
    a.assert_answers(&id);
    srv.stop().await;
}

/// Limits never turn a valid review into an error: with the default cap, a 4 MiB review (more
/// than the apiserver's 3 MiB object limit) is answered as any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_four_mib_review_is_answered_with_the_default_cap() {
    let srv = TestServer::start().await;
    let (_, r) = big_review(4 << 20);
    for http in BOTH {
        for endpoint in ["mutate", "validate"] {
            let mut r = r.clone();
            let id = uid("big");
            r["request"]["uid"] = json!(id);
            let a = srv.review(http, endpoint, &r).await;
            a.assert_answers(&id);
            assert!(a.allowed(), "{}", &a.text[..a.text.len().min(500)]);
            if endpoint == "mutate" {
                assert!(a.patch().is_some(), "the big object is defaulted too");
            }
        }
    }
    // An UPDATE carries the object twice: 2 × 3 MiB is what the apiserver can send at most.
    let (_, big) = big_review(3 << 20);
    let obj = big["request"]["object"].clone();
    let id = uid("big-update");
    let a = srv
        .review(
            Http::H1,
            "validate",
            &review(&id, "UPDATE", Some(&obj), Some(&obj)),
        )
        .await;
    a.assert_answers(&id);
    assert!(a.allowed());
    srv.stop().await;
}

/// A client that sends its headers one byte a second is cut off: on a fresh connection by the
/// header timeout, on a kept-alive one by the idle timeout (hyper's one timer for the wait and
/// the next headers), while other clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let srv = TestServer::start_with(support::seed(), |c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(3);
    })
    .await;
    let ca = srv.pki.bundle.ca_cert.clone();
    let addr = srv.addr();
    let (_, valid) = valid_review("slow");
    let valid_body = serde_json::to_vec(&valid).unwrap();

    for keep_alive_first in [false, true] {
        let mut tls = tls_connect(addr, &[&ca], &[b"http/1.1"]).await.unwrap();
        if keep_alive_first {
            let (status, _) = raw_review(&mut tls, &valid_body, false).await.unwrap();
            assert_eq!(status, 200);
        }
        let request = http1_post("/validate?timeout=10s", &valid_body, false);
        let started = Instant::now();
        let slow = tokio::spawn(async move {
            // One byte a second: the headers alone would take minutes.
            for b in request.iter().take(60) {
                if tls.write_all(&[*b]).await.is_err() || tls.flush().await.is_err() {
                    return started.elapsed();
                }
                let mut buf = [0u8; 512];
                // Either the next second passes, or the server closes (EOF or error) or answers.
                match tokio::time::timeout(Duration::from_secs(1), tls.read(&mut buf)).await {
                    Err(_) => {}
                    Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                    Ok(Ok(n)) => {
                        let text = String::from_utf8_lossy(&buf[..n]).to_string();
                        assert!(
                            !text.starts_with("HTTP/1.1 200"),
                            "slow request served: {text}"
                        );
                        assert_clean(&text);
                    }
                }
            }
            panic!("the slow client was not cut off within 60 s");
        });
        // Meanwhile, others are served (on fresh connections, see `assert_serving_fresh`).
        for http in BOTH {
            assert_serving_fresh(&srv, &ca, http).await;
        }
        let cut_after = slow.await.unwrap();
        // Cut by the timeout, not by something else going wrong sooner.
        let timeout = if keep_alive_first { 3 } else { 1 };
        assert!(
            cut_after >= Duration::from_millis(timeout * 1000 - 100)
                && cut_after < Duration::from_secs(timeout + 4),
            "cut off after {cut_after:?}, timeout is {timeout} s (keep-alive first: {keep_alive_first})"
        );
    }
    assert_serving_fresh(&srv, &ca, Http::H1).await;
    srv.stop().await;
}

/// Headers in time, then a body that never completes: the review deadline answers 408 with a
/// review, and the connection is not held for longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_gets_408() {
    let srv = TestServer::start_with(support::seed(), |c| {
        c.review_timeout = Duration::from_secs(1);
    })
    .await;
    let ca = srv.pki.bundle.ca_cert.clone();
    let mut tls = tls_connect(srv.addr(), &[&ca], &[b"http/1.1"])
        .await
        .unwrap();
    let (_, valid) = valid_review("stall");
    let full = http1_post(
        "/validate?timeout=10s",
        &serde_json::to_vec(&valid).unwrap(),
        false,
    );
    let cut = full.len() - 100;
    let started = Instant::now();
    tls.write_all(&full[..cut]).await.unwrap();
    tls.flush().await.unwrap();
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(10), read_http1_response(&mut tls))
            .await
            .expect("an answer before the apiserver gives up")
            .expect("a complete answer");
    assert_eq!(status, 408, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 408);
    assert_clean(&body);
    // Counted, not lost: the metrics show the timeout.
    let (_, m) = srv.get("/metrics").await;
    assert!(
        m.lines().any(
            |l| l.starts_with("egress_webhook_admission_requests_total{")
                && l.contains("endpoint=\"validate\",verdict=\"timeout\"} 1")
        ),
        "{m}"
    );
    assert_serving(&srv, Http::H2).await;
    srv.stop().await;
}

/// Plain bytes where a TLS ClientHello belongs: the connection is closed, the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_client_hello_is_closed() {
    let srv = TestServer::start().await;
    let garbage: [&[u8]; 3] = [
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}",
        &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        &[0u8; 4096],
    ];
    for g in garbage {
        let mut tcp = TcpStream::connect(srv.addr()).await.unwrap();
        tcp.write_all(g).await.unwrap();
        let mut got = Vec::new();
        // The server answers (at most a TLS alert) and closes: read reaches EOF or a reset.
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 1024];
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "connection still open after garbage");
        assert!(
            !String::from_utf8_lossy(&got).contains("HTTP/1.1"),
            "{got:?}"
        );
        for http in BOTH {
            assert_serving(&srv, http).await;
        }
    }
    srv.stop().await;
}

/// Past `max_connections` a connection is closed before the handshake; the ones inside keep
/// working, and a slot freed is usable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused() {
    let srv = TestServer::start_with(support::seed(), |c| c.max_connections = 2).await;
    let ca = srv.pki.bundle.ca_cert.clone();
    let addr = srv.addr();
    let mut a = tls_connect(addr, &[&ca], &[b"http/1.1"]).await.unwrap();
    let mut b = tls_connect(addr, &[&ca], &[b"http/1.1"]).await.unwrap();
    let (_, valid) = valid_review("cap");
    let body = serde_json::to_vec(&valid).unwrap();
    assert_eq!(raw_review(&mut a, &body, false).await.unwrap().0, 200);
    assert_eq!(raw_review(&mut b, &body, false).await.unwrap().0, 200);

    let third = tokio::time::timeout(
        Duration::from_secs(10),
        tls_connect(addr, &[&ca], &[b"http/1.1"]),
    )
    .await
    .expect("refused promptly, not left hanging");
    assert!(
        third.is_err(),
        "a third connection was accepted past the cap of 2"
    );

    // The two inside still work.
    assert_eq!(raw_review(&mut a, &body, false).await.unwrap().0, 200);
    assert_eq!(raw_review(&mut b, &body, false).await.unwrap().0, 200);

    // Closing one frees its slot (the permit goes when the connection task ends).
    drop(a);
    wait_for("a freed slot is usable", Duration::from_secs(10), || {
        let ca = ca.clone();
        let body = body.clone();
        async move {
            match tls_connect(addr, &[&ca], &[b"http/1.1"]).await {
                Ok(mut c) => matches!(raw_review(&mut c, &body, true).await, Ok((200, _))),
                Err(_) => false,
            }
        }
    })
    .await;
    assert_eq!(raw_review(&mut b, &body, true).await.unwrap().0, 200);
    srv.stop().await;
}

/// Other paths and methods get plain 404/405, not a crash; probes answer on the TLS port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_and_methods() {
    let srv = TestServer::start().await;
    for http in BOTH {
        let c = srv.client(http);
        let r = c.get(srv.url("/mutate")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 405);
        let r = c.post(srv.url("/nope")).body("{}").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
        assert_clean(&r.text().await.unwrap());
        let r = c.get(srv.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = c.get(srv.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_serving(&srv, http).await;
    }
    srv.stop().await;
}

/// An HTTP/2 client that goes silent after a request (a dead peer, a partition) does not hold
/// its connection slot for ever: the server pings idle HTTP/2 connections and closes those that
/// do not answer. (HTTP/1.1 needs no ping: an idle kept-alive connection is closed by the header
/// read timeout.) Without this, dead peers would use up `max_connections` one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http2_peer_is_closed() {
    let srv = TestServer::start_with(support::seed(), |c| {
        c.h2_keepalive_interval = Duration::from_millis(500);
        c.h2_keepalive_timeout = Duration::from_millis(500);
    })
    .await;
    let ca = srv.pki.bundle.ca_cert.clone();
    let mut tls = tls_connect(srv.addr(), &[&ca], &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // By hand: the preface, empty SETTINGS, SETTINGS ACK for the server's, one GET /healthz.
    let frame = |ty: u8, flags: u8, stream: u32, payload: &[u8]| {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[ty, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    // HPACK: :method GET, :scheme https (static indexes), then :path and :authority as
    // literals with an indexed name (0x04 and 0x01).
    let mut hpack = vec![0x82, 0x87, 0x04, 8];
    hpack.extend_from_slice(b"/healthz");
    hpack.extend_from_slice(&[0x01, 9]);
    hpack.extend_from_slice(b"localhost");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x4, 0x1, 0, &[]));
    out.extend(frame(0x1, 0x5, 1, &hpack));
    tls.write_all(&out).await.unwrap();
    tls.flush().await.unwrap();
    // Now silent: read (so that a close is seen) but answer nothing, not even PINGs.
    let started = Instant::now();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the silent HTTP/2 connection is still open after 15 s"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed after {:?}, before a ping could go unanswered",
        started.elapsed()
    );
    // The request itself was answered (a HEADERS frame, type 0x1, on stream 1) before that.
    assert!(
        got.windows(5)
            .any(|w| w == [0x1, 0x4, 0, 0, 0] || w == [0x1, 0x5, 0, 0, 0]),
        "no response HEADERS frame: {got:?}"
    );
    assert_serving(&srv, Http::H2).await;
    srv.stop().await;
}
