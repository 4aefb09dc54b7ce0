//! The stated worst-case memory, measured (issue 13, item 3): `serve` runs as a child process
//! with the default limits; the test fills `--max-inflight-bytes` with review bodies that never
//! finish, fills every other connection slot with connections holding as much as a client can
//! make them hold (HTTP/1.1 headers that never end, HTTP/2 streams with near-limit headers
//! waiting for their bodies), and reads the server's peak RSS (VmHWM). It must stay under
//! `conn_buffers::worst_case_bytes` + the process at rest (which includes the catalog), and
//! each connection must have cost less than `PER_CONNECTION_BYTES`.

mod support;

use std::time::{Duration, Instant};

use egress_webhook::admission::{
    budget::default_max_inflight_bytes,
    conn_buffers::{H1_MAX_BUF, H2_MAX_STREAMS, PER_CONNECTION_BYTES, worst_case_bytes},
};
use serde_json::json;
use support::reliability;
use support::server::{Http, ServeProcess, client_with, post, tls_connect, valid_review};
use tokio::io::AsyncWriteExt;

const MAX_BODY: usize = 7 << 20;
const MAX_CONNECTIONS: usize = 1024;
const H2_STREAMS_OFFERED: u32 = 4 * H2_MAX_STREAMS;

/// A `/proc/PID/status` figure in bytes (`VmRSS`, `VmHWM`).
fn proc_status(pid: i32, key: &str) -> usize {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb: usize = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text}"));
    kb * 1024
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[ty, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK integer with an n-bit prefix (RFC 7541 §5.1), first byte's high bits in `high`.
fn hpack_int(out: &mut Vec<u8>, high: u8, prefix: u8, mut n: usize) {
    let max = (1usize << prefix) - 1;
    if n < max {
        out.push(high | n as u8);
        return;
    }
    out.push(high | max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// `POST /validate` with `content-length: 7000000` and one `x-pad` header of `pad` bytes:
/// a request whose handler waits for a body that does not come.
fn padded_post_headers(pad: usize) -> Vec<u8> {
    let mut h = vec![0x83, 0x87, 0x04, 9];
    h.extend_from_slice(b"/validate");
    h.extend_from_slice(&[0x01, 9]);
    h.extend_from_slice(b"localhost");
    // content-length (static index 28), literal without indexing.
    hpack_int(&mut h, 0x00, 4, 28);
    hpack_int(&mut h, 0x00, 7, 7);
    h.extend_from_slice(b"7000000");
    // x-pad: literal without indexing, new name.
    h.push(0x00);
    hpack_int(&mut h, 0x00, 7, 5);
    h.extend_from_slice(b"x-pad");
    hpack_int(&mut h, 0x00, 7, pad);
    h.extend(std::iter::repeat_n(b'a', pad));
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_rss_stays_under_the_stated_worst_case() {
    let mut srv = ServeProcess::spawn(&[
        "--max-connections",
        &MAX_CONNECTIONS.to_string(),
        // Held for the whole test: the timeouts that shed slow clients would end it early.
        "--header-timeout",
        "120s",
        "--review-timeout",
        "120s",
    ]);
    let pid = srv.pid();
    let ca = srv.pki.bundle.ca_cert.clone();
    let budget = default_max_inflight_bytes(MAX_BODY);
    // The process at rest, catalog loaded, after a few reviews.
    let warm = client_with(&[&ca], Http::H2, false);
    for _ in 0..20 {
        let (id, r) = valid_review("warm");
        post(
            &warm,
            &srv.url("/validate?timeout=10s"),
            serde_json::to_vec(&r).unwrap(),
        )
        .await
        .unwrap()
        .assert_answers(&id);
    }
    let at_rest = proc_status(pid, "VmRSS");

    let (bodies, held_body_bytes, conns) =
        tokio::time::timeout(Duration::from_secs(300), attack(srv.addr, &ca, budget))
            .await
            .expect("the attack is set up within 300 s");
    let (held_bodies, h1_held, h2_held) = (bodies.len(), conns.0.len(), conns.1.len());
    // Meanwhile a valid review on the kept-alive connection gets a clean refusal the apiserver
    // retries (the budget is full), not a hang or a reset.
    let (_, r) = valid_review("during");
    let a = post(
        &warm,
        &srv.url("/validate?timeout=10s"),
        serde_json::to_vec(&r).unwrap(),
    )
    .await
    .expect("an answer during the attack");
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.response()["status"]["code"], 429, "{}", a.text);
    // Let the server take in what was sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = proc_status(pid, "VmHWM");
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "the server died: {}",
        srv.log_text()
    );
    let connections = held_bodies + h1_held + h2_held;
    let bound = at_rest + worst_case_bytes(budget, MAX_CONNECTIONS);
    let per_connection = peak.saturating_sub(at_rest + held_body_bytes) / connections;
    eprintln!(
        "at rest {at_rest} B; peak {peak} B; bound {bound} B; {held_bodies} bodies holding \
         {held_body_bytes} B; {h1_held} HTTP/1.1 + {h2_held} HTTP/2 connections; \
         {per_connection} B per connection (bound {PER_CONNECTION_BYTES})"
    );
    assert!(
        peak <= bound,
        "peak RSS {peak} B over the stated bound {bound} B"
    );
    assert!(
        per_connection <= PER_CONNECTION_BYTES,
        "{per_connection} B per connection, over PER_CONNECTION_BYTES {PER_CONNECTION_BYTES}"
    );

    // Once the attackers go, valid reviews are answered again.
    drop((bodies, conns));
    let fresh = client_with(&[&ca], Http::H1, true);
    let started = Instant::now();
    let url = srv.url("/validate?timeout=10s");
    support::server::wait_for(
        "a valid review answered after the attack",
        Duration::from_secs(60),
        || {
            let (id, r) = valid_review("after");
            let (fresh, url) = (fresh.clone(), url.clone());
            async move {
                let body = serde_json::to_vec(&r).unwrap();
                matches!(post(&fresh, &url, body).await,
                    Ok(a) if a.status == 200
                        && a.json.as_ref().is_some_and(|j| j["response"]["uid"] == id))
            }
        },
    )
    .await;
    reliability::record(
        "admission_rss::peak_rss_stays_under_the_stated_worst_case",
        "worst-case memory: --max-inflight-bytes filled, every connection slot held",
        json!({"held_bodies": held_bodies, "held_body_bytes": held_body_bytes,
               "http1_connections": h1_held, "http2_connections": h2_held,
               "http2_streams_offered": h2_held * H2_STREAMS_OFFERED as usize,
               "valid_review_during_attack": "429 Retry-After (budget full)",
               "rss_at_rest_bytes": at_rest, "vmhwm_bytes": peak,
               "stated_bound_bytes": bound, "per_connection_bytes": per_connection,
               "per_connection_bound_bytes": PER_CONNECTION_BYTES,
               "answered_again_after_seconds": started.elapsed().as_secs_f64()}),
    );
    srv.signal(libc::SIGTERM);
    assert!(srv.wait_exit(Duration::from_secs(60)).await.success());
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Fill the budget with bodies that never finish, then every other slot (but three) with
/// connections holding what they can: (bodies held, their bytes, (HTTP/1.1, HTTP/2)).
async fn attack(
    addr: std::net::SocketAddr,
    ca: &str,
    budget: usize,
) -> (Vec<Tls>, usize, (Vec<Tls>, Vec<Tls>)) {
    // 1. Bodies that say MAX_BODY bytes and stop 1 KiB short: as many as the budget holds
    //    (each reserves what it declared, and no other review is in flight).
    let mut bodies = Vec::new();
    let mut held_bytes = 0;
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..budget / MAX_BODY {
        let mut s = tls_connect(addr, &[ca], &[b"http/1.1"]).await.unwrap();
        let head = format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {MAX_BODY}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut sent = 0;
        while sent < MAX_BODY - 1024 {
            let n = chunk.len().min(MAX_BODY - 1024 - sent);
            s.write_all(&chunk[..n]).await.unwrap();
            sent += n;
        }
        s.flush().await.unwrap();
        held_bytes += sent;
        bodies.push(s);
    }
    assert!(!bodies.is_empty());
    let reserved = bodies.len() * MAX_BODY;
    support::server::wait_for("the bodies are reserved", Duration::from_secs(60), || {
        let c = client_with(&[ca], Http::H1, true);
        let url = support::server::url(addr, "/metrics");
        async move {
            let Ok(r) = c.get(url).send().await else {
                return false;
            };
            let text = r.text().await.unwrap_or_default();
            text.lines()
                .any(|l| l == format!("egress_webhook_admission_inflight_bytes {reserved}"))
        }
    })
    .await;
    // 2. The other slots, but three (the warm client's, the metrics probe's while it closes,
    //    and one for the review after).
    let slots = MAX_CONNECTIONS - bodies.len() - 3;
    let mut h1 = Vec::new();
    let mut h2 = Vec::new();
    // HTTP/1.1: headers that fill the read buffer and never end.
    let mut h1_head = b"POST /validate HTTP/1.1\r\nHost: localhost\r\nX-Pad: ".to_vec();
    h1_head.extend(std::iter::repeat_n(b'a', H1_MAX_BUF - h1_head.len() - 64));
    // HTTP/2: requests with headers near the limit, waiting for their bodies, on four times as
    //    many streams as a connection may have (those past it must be refused, not held).
    let mut h2_out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2_out.extend(frame(0x4, 0, 0, &[]));
    h2_out.extend(frame(0x4, 0x1, 0, &[]));
    let hpack = padded_post_headers(14 << 10);
    for i in 0..H2_STREAMS_OFFERED {
        h2_out.extend(frame(0x1, 0x4, 2 * i + 1, &hpack));
    }
    for batch in (0..slots).collect::<Vec<_>>().chunks(64) {
        let opened = batch.iter().map(|i| {
            let h2 = i % 2 == 1;
            let payload = if h2 { h2_out.clone() } else { h1_head.clone() };
            async move {
                let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
                let mut s = tls_connect(addr, &[ca], &[alpn]).await.unwrap();
                s.write_all(&payload).await.unwrap();
                s.flush().await.unwrap();
                (h2, s)
            }
        });
        for (is_h2, s) in futures::future::join_all(opened).await {
            if is_h2 { h2.push(s) } else { h1.push(s) }
        }
    }
    (bodies, held_bytes, (h1, h2))
}
