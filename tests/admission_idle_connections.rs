//! A kept-alive HTTP/1.1 connection between reviews. The apiserver keeps an idle connection to a
//! webhook for 90 s and then closes it; a server that closes it sooner races the apiserver's
//! next review on it (the review fails with EOF, and under `failurePolicy: Fail` so does the
//! user's write). So the wait for a next request is bounded by `idle_timeout` (120 s by default,
//! `src/cli/serve.rs` tests the defaults), not by the short header timeout that bounds a new
//! connection's first request.

mod support;

use std::time::{Duration, Instant};

use support::server::{TestServer, raw_review, tls_connect, valid_review};
use tokio::io::AsyncReadExt;

/// The time until the server closes `s` (EOF or a TLS error), reading nothing else.
async fn closed_after<S: tokio::io::AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Duration {
    let from = Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(limit, s.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("the connection is still open after {limit:?}"));
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "read something instead: {read:?}"
    );
    from.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_waits_the_idle_timeout_not_the_header_timeout() {
    let srv = TestServer::start_with(support::seed(), |c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(4);
    })
    .await;
    let ca = srv.pki.bundle.ca_cert.clone();
    let (_, valid) = valid_review("idle");
    let body = serde_json::to_vec(&valid).unwrap();

    let mut kept = tls_connect(srv.addr(), &[&ca], &[b"http/1.1"])
        .await
        .unwrap();
    let (status, text) = raw_review(&mut kept, &body, false).await.unwrap();
    assert_eq!(status, 200, "{text}");
    // Idle for two and a half header timeouts: the same connection answers the next review.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, text) = raw_review(&mut kept, &body, false)
        .await
        .expect("a connection idle 2.5 s, past the 1 s header timeout, still answers");
    assert_eq!(status, 200, "{text}");
    // Not held for ever either: closed at the idle timeout.
    let idle = closed_after(&mut kept, Duration::from_secs(30)).await;
    assert!(
        idle >= Duration::from_millis(3800) && idle < Duration::from_secs(10),
        "closed after {idle:?} idle; the idle timeout is 4 s"
    );

    // A new connection that sends nothing is still cut at the header timeout.
    let mut quiet = tls_connect(srv.addr(), &[&ca], &[b"http/1.1"])
        .await
        .unwrap();
    let quiet_for = closed_after(&mut quiet, Duration::from_secs(30)).await;
    assert!(
        quiet_for >= Duration::from_millis(800) && quiet_for < Duration::from_secs(4),
        "a silent new connection closed after {quiet_for:?}; the header timeout is 1 s"
    );
    srv.stop().await;
}
