//! The real `serve` process: startup, SIGTERM during a burst of reviews (graceful shutdown),
//! SIGINT, exit codes.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use support::server::{
    Http, ServeProcess, TestServer, client_with, http1_post, post, read_http1, read_http1_response,
    tls_connect, valid_review, wait_for,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const DELAY: Duration = Duration::from_secs(1);

/// What became of one request of the burst.
#[derive(Debug)]
enum Fate {
    Answered,
    /// No connection: refused, or reset before the TLS handshake completed. When, and why.
    NoConnection(Instant, String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_answers_everything_and_exits_zero() {
    support::server::init_crypto();
    let mut serve = ServeProcess::spawn(&["--shutdown-delay", "1s", "--shutdown-grace", "10s"]);
    let ca = serve.pki.bundle.ca_cert.clone();
    let addr = serve.addr;
    wait_for("/readyz is 200", Duration::from_secs(30), || async {
        serve.readyz().await.ok() == Some(200)
    })
    .await;

    // A review in flight across the whole shutdown: headers and half the body now, the rest
    // once the server has stopped accepting connections.
    let (straddle_uid, straddle) = valid_review("straddle");
    let straddle = http1_post(
        "/validate?timeout=10s",
        &serde_json::to_vec(&straddle).unwrap(),
        false,
    );
    let half = straddle.len() / 2;
    let mut in_flight = tls_connect(addr, &[&ca], &[b"http/1.1"]).await.unwrap();
    in_flight.write_all(&straddle[..half]).await.unwrap();
    in_flight.flush().await.unwrap();

    // The burst: 8 kept-alive connections (4 HTTP/1.1, 4 HTTP/2) × 25 reviews.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut burst = Vec::new();
    for i in 0..8 {
        let http = if i < 4 { Http::H1 } else { Http::H2 };
        let client = client_with(&[&ca], http, false);
        let url = serve.url(if i % 2 == 0 {
            "/validate?timeout=10s"
        } else {
            "/mutate?timeout=10s"
        });
        let answered = answered.clone();
        burst.push(tokio::spawn(async move {
            let mut fates = Vec::new();
            for _ in 0..25 {
                let (id, r) = valid_review("burst");
                match post(&client, &url, serde_json::to_vec(&r).unwrap()).await {
                    Ok(a) => {
                        // A complete answer: 200 and a parseable review for this uid.
                        a.assert_answers(&id);
                        assert!(a.allowed(), "{}", a.text);
                        assert_eq!(a.version, http.version());
                        answered.fetch_add(1, Ordering::SeqCst);
                        fates.push(Fate::Answered);
                    }
                    Err(e) if e.is_connect() => {
                        fates.push(Fate::NoConnection(Instant::now(), format!("{e:?}")))
                    }
                    Err(e) => panic!("a request that had a connection failed: {e:?}"),
                }
            }
            fates
        }));
    }

    // SIGTERM in the middle of the burst.
    let a2 = answered.clone();
    wait_for(
        "a third of the burst answered",
        Duration::from_secs(30),
        || {
            let n = a2.load(Ordering::SeqCst);
            async move { n >= 60 }
        },
    )
    .await;
    serve.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let at_signal = answered.load(Ordering::SeqCst);

    // /readyz turns false at once, on a new connection: connections are still accepted.
    wait_for("/readyz is 503", Duration::from_secs(5), || async {
        serve.readyz().await.ok() == Some(503)
    })
    .await;
    assert!(
        signalled.elapsed() < DELAY,
        "/readyz turned 503 only {:?} after SIGTERM",
        signalled.elapsed()
    );
    // And a new connection during the delay still gets its review answered (endpoints may
    // not have dropped us yet: that is what the delay is for).
    let late = client_with(&[&ca], Http::H1, true);
    let (id, r) = valid_review("during-delay");
    let a = post(
        &late,
        &serve.url("/validate?timeout=10s"),
        serde_json::to_vec(&r).unwrap(),
    )
    .await
    .expect("a new connection during the delay is served");
    a.assert_answers(&id);
    assert!(
        signalled.elapsed() < DELAY,
        "the check above ran after the delay"
    );

    // After the delay, new connections are refused.
    wait_for(
        "new connections refused",
        Duration::from_secs(10),
        || async { TcpStream::connect(addr).await.is_err() },
    )
    .await;
    let refused_after = signalled.elapsed();
    assert!(
        refused_after >= DELAY - Duration::from_millis(100),
        "connections refused {refused_after:?} after SIGTERM, before the 1 s delay"
    );

    // The review in flight completes.
    in_flight.write_all(&straddle[half..]).await.unwrap();
    in_flight.flush().await.unwrap();
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(10), read_http1_response(&mut in_flight))
            .await
            .expect("the in-flight review is answered")
            .expect("a complete answer");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["response"]["uid"], straddle_uid.as_str());
    assert_eq!(v["response"]["allowed"], true);
    drop(in_flight);

    let mut fates = Vec::new();
    for t in burst {
        fates.extend(t.await.expect("no request of the burst failed"));
    }
    let done = fates.iter().filter(|f| matches!(f, Fate::Answered)).count();
    let refused: Vec<_> = fates
        .iter()
        .filter_map(|f| match f {
            Fate::NoConnection(at, e) => Some((*at, e)),
            Fate::Answered => None,
        })
        .collect();
    assert_eq!(done + refused.len(), 200);
    assert!(
        done > at_signal,
        "no review was answered after the signal: the burst did not straddle it"
    );
    // On a quiet machine the burst ends within the delay and every request is answered. On a
    // busy one it runs past the delay: HTTP/1.1 requests then find new connections refused
    // (their answers during the delay said `Connection: close`), which is a clean failure
    // the client can retry elsewhere; but no connection is refused during the delay.
    for (at, e) in &refused {
        assert!(
            at.duration_since(signalled) >= DELAY - Duration::from_millis(100),
            "refused {:?} after SIGTERM, within the delay: {e}",
            at.duration_since(signalled)
        );
    }
    let status = serve.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    let log = serve.log_text();
    assert!(log.contains("shutdown complete"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// SIGINT (Ctrl-C) shuts down the same way; with nothing in flight the exit follows the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_zero_after_the_delay() {
    support::server::init_crypto();
    let mut serve = ServeProcess::spawn(&["--shutdown-delay", "300ms"]);
    wait_for("/readyz is 200", Duration::from_secs(30), || async {
        serve.readyz().await.ok() == Some(200)
    })
    .await;
    let started = Instant::now();
    serve.signal(libc::SIGINT);
    let status = serve.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(serve.log_text().contains("SIGINT received"));
}

/// A server that cannot start says why and exits non-zero: a missing certificate, a busy port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_exit_non_zero_with_the_reason() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .args([
            "serve",
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
            "--listen",
            "127.0.0.1:0",
            "--objects",
        ])
        .arg(support::repo_path("manifests/examples"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/tls.crt"), "{err}");

    support::server::init_crypto();
    let serve = ServeProcess::spawn(&[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .arg("serve")
        .arg("--tls-cert")
        .arg(&serve.pki.files.cert)
        .arg("--tls-key")
        .arg(&serve.pki.files.key)
        .args(["--listen", &serve.addr.to_string(), "--objects"])
        .arg(support::repo_path("manifests/examples"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&serve.addr.to_string()), "{err}");
}

/// During the shutdown delay an HTTP/1.1 answer says `Connection: close` and the server closes
/// the connection after it, so the client's next request dials again (through the Service: to
/// a replica that stays) instead of reusing a connection that is closed under it when the
/// delay ends. HTTP/2 is answered as usual (its graceful shutdown is a GOAWAY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_delay_http1_connections_are_closed_after_each_answer() {
    let mut srv = TestServer::start_with(support::seed(), |c| {
        c.shutdown_delay = Duration::from_secs(30);
    })
    .await;
    let ca = srv.pki.bundle.ca_cert.clone();
    let (_, r) = valid_review("keepalive");
    let body = serde_json::to_vec(&r).unwrap();
    let mut kept = tls_connect(srv.addr(), &[&ca], &[b"http/1.1"])
        .await
        .unwrap();
    kept.write_all(&http1_post("/validate?timeout=10s", &body, false))
        .await
        .unwrap();
    let (status, head, _) = read_http1(&mut kept).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    // Warm an HTTP/2 connection too.
    let a = srv.review(Http::H2, "validate", &r).await;
    assert_eq!(a.status, 200);

    srv.running.shutdown();
    let st = srv.running.state.clone();
    wait_for("shutdown begins", Duration::from_secs(5), || {
        let st = st.clone();
        async move { st.shutting_down.load(Ordering::SeqCst) }
    })
    .await;

    // The kept-alive HTTP/1.1 connection: answered, told to close, closed.
    kept.write_all(&http1_post("/validate?timeout=10s", &body, false))
        .await
        .unwrap();
    let (status, head, body_text) = read_http1(&mut kept).await.unwrap();
    assert_eq!(status, 200, "{body_text}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), kept.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open after Connection: close"
    );
    // Probes too (a load balancer's health checks should not pin connections either).
    let (status, _) = srv.get("/readyz").await;
    assert_eq!(status, 503);
    // HTTP/2 on its existing connection: answered as usual during the delay.
    let a = srv.review(Http::H2, "validate", &r).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // The 30 s delay is not waited out: the runtime ends with the test.
}
