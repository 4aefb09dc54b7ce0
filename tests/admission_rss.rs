//! The stated worst-case memory, measured (issue 13, item 3): `serve` runs as a child process
//! with the default limits; the test fills `--max-inflight-bytes` with review bodies that never
//! finish, then every other connection slot with connections holding as much as a client can
//! make them hold: HTTP/1.1 headers just under the read buffer that never end, then HTTP/2
//! connections offering eight times the allowed streams, each with near-limit headers and
//! waiting for its body. It reads the server's RSS after each phase and its peak (VmHWM): an
//! HTTP/1.1 connection must cost at most `TLS_BYTES + H1_BYTES`, an HTTP/2 one `TLS_BYTES +
//! H2_BYTES` (both under `PER_CONNECTION_BYTES`), and the peak must stay under
//! `conn_buffers::worst_case_bytes` + the process at rest (which includes the catalog).

mod support;

use std::time::{Duration, Instant};

use egress_webhook::admission::{
    budget::default_max_inflight_bytes,
    conn_buffers::{H1_BYTES, H1_MAX_BUF, H2_BYTES, H2_MAX_STREAMS, TLS_BYTES, worst_case_bytes},
};
use serde_json::json;
use support::reliability;
use support::server::{Http, ServeProcess, client_with, post, tls_connect, valid_review};
use tokio::io::AsyncWriteExt;

const MAX_BODY: usize = 7 << 20;
const MAX_CONNECTIONS: usize = 1024;
const H2_STREAMS_OFFERED: u32 = 8 * H2_MAX_STREAMS;

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

/// RSS once it stops moving (the server has taken in what was sent): two reads 500 ms apart
/// within 1%, or the last read after 20 s.
async fn settled_rss(pid: i32) -> usize {
    let mut last = proc_status(pid, "VmRSS");
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = proc_status(pid, "VmRSS");
        if now.abs_diff(last) * 100 <= last {
            return now;
        }
        last = now;
    }
    last
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
    let url = srv.url("/validate?timeout=10s");
    for _ in 0..20 {
        let (id, r) = valid_review("warm");
        let a = post(&warm, &url, serde_json::to_vec(&r).unwrap()).await;
        a.unwrap().assert_answers(&id);
    }
    // Headers past the HTTP/1.1 buffer are refused (431), not buffered.
    let mut s = tls_connect(srv.addr, &[&ca], &[b"http/1.1"]).await.unwrap();
    let mut big = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2 * H1_MAX_BUF));
    big.extend_from_slice(b"\r\n\r\n");
    let _ = s.write_all(&big).await;
    let (status, _) = support::server::read_http1_response(&mut s).await.unwrap();
    assert_eq!(status, 431, "headers of {} bytes", big.len());
    drop(s);
    let at_rest = settled_rss(pid).await;

    let phases = tokio::time::timeout(Duration::from_secs(300), attack(srv.addr, &ca, budget, pid))
        .await
        .expect("the attack is set up within 300 s");
    let Attack {
        bodies,
        body_bytes,
        h1,
        h2,
        rss_bodies,
        rss_h1,
        rss_h2,
    } = phases;
    // Meanwhile a valid review on the kept-alive connection is answered: the bodies hold all
    // the budget but what is less than one more (a few MB of 166 MB), and a small review fits.
    let (id, r) = valid_review("during");
    let a = post(&warm, &url, serde_json::to_vec(&r).unwrap())
        .await
        .expect("an answer during the attack");
    a.assert_answers(&id);
    assert!(a.allowed(), "{}", a.text);
    let peak = proc_status(pid, "VmHWM");
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "the server died: {}",
        srv.log_text()
    );
    let connections = bodies.len() + h1.len() + h2.len();
    let bound = at_rest + worst_case_bytes(budget, MAX_CONNECTIONS);
    let per_h1 = rss_h1.saturating_sub(rss_bodies) / h1.len();
    let per_h2 = rss_h2.saturating_sub(rss_h1) / h2.len();
    eprintln!(
        "at rest {at_rest} B; {} bodies holding {body_bytes} B: RSS {rss_bodies} B; {} HTTP/1.1 \
         connections: {per_h1} B each; {} HTTP/2 connections: {per_h2} B each; peak {peak} B, \
         bound {bound} B",
        bodies.len(),
        h1.len(),
        h2.len()
    );
    assert!(
        peak <= bound,
        "peak RSS {peak} B over the stated bound {bound} B"
    );
    assert!(
        per_h1 <= TLS_BYTES + H1_BYTES,
        "an HTTP/1.1 connection held {per_h1} B, over TLS_BYTES + H1_BYTES"
    );
    assert!(
        per_h2 <= TLS_BYTES + H2_BYTES,
        "an HTTP/2 connection held {per_h2} B, over TLS_BYTES + H2_BYTES"
    );

    // Once the attackers go, valid reviews are answered again.
    let counts = (bodies.len(), h1.len(), h2.len());
    drop((bodies, h1, h2));
    let fresh = client_with(&[&ca], Http::H1, true);
    let started = Instant::now();
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
        json!({"held_bodies": counts.0, "held_body_bytes": body_bytes,
               "http1_connections": counts.1, "http2_connections": counts.2,
               "http2_streams_offered": counts.2 * H2_STREAMS_OFFERED as usize,
               "connections": connections,
               "valid_review_during_attack": "answered",
               "rss_at_rest_bytes": at_rest, "rss_with_bodies_bytes": rss_bodies,
               "http1_bytes_per_connection": per_h1, "http2_bytes_per_connection": per_h2,
               "vmhwm_bytes": peak, "stated_bound_bytes": bound,
               "answered_again_after_seconds": started.elapsed().as_secs_f64()}),
    );
    srv.signal(libc::SIGTERM);
    assert!(srv.wait_exit(Duration::from_secs(60)).await.success());
}
type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// What the attack holds, and the server's RSS after each phase.
struct Attack {
    bodies: Vec<Tls>,
    body_bytes: usize,
    h1: Vec<Tls>,
    h2: Vec<Tls>,
    rss_bodies: usize,
    rss_h1: usize,
    rss_h2: usize,
}

/// Fill the budget with bodies that never finish, then every other slot but three (the warm
/// client's, the metrics probe's while it closes, the review after) with connections holding
/// what they can: first HTTP/1.1, then HTTP/2, reading the RSS after each phase.
async fn attack(addr: std::net::SocketAddr, ca: &str, budget: usize, pid: i32) -> Attack {
    // 1. Bodies that say MAX_BODY bytes and stop 1 KiB short: as many as the budget holds
    //    (each reserves what it declared, and no other review is in flight).
    let mut bodies = Vec::new();
    let mut body_bytes = 0;
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
        body_bytes += sent;
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
    let rss_bodies = settled_rss(pid).await;
    let slots = MAX_CONNECTIONS - bodies.len() - 3;
    // 2. HTTP/1.1: headers that fill the read buffer and never end.
    let mut h1_head = b"POST /validate HTTP/1.1\r\nHost: localhost\r\nX-Pad: ".to_vec();
    h1_head.extend(std::iter::repeat_n(b'a', H1_MAX_BUF - h1_head.len() - 64));
    let h1 = open_all(addr, ca, slots / 2, b"http/1.1", &h1_head).await;
    let rss_h1 = settled_rss(pid).await;
    // 3. HTTP/2: requests with headers near the limit, waiting for their bodies, on eight times
    //    as many streams as a connection may have (those past it must be refused, not held).
    let mut h2_out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2_out.extend(frame(0x4, 0, 0, &[]));
    h2_out.extend(frame(0x4, 0x1, 0, &[]));
    let hpack = padded_post_headers(14 << 10);
    for i in 0..H2_STREAMS_OFFERED {
        h2_out.extend(frame(0x1, 0x4, 2 * i + 1, &hpack));
    }
    let h2 = open_all(addr, ca, slots - slots / 2, b"h2", &h2_out).await;
    let rss_h2 = settled_rss(pid).await;
    Attack {
        bodies,
        body_bytes,
        h1,
        h2,
        rss_bodies,
        rss_h1,
        rss_h2,
    }
}

/// `n` TLS connections offering `alpn`, each having written `payload`, 64 at a time.
async fn open_all(
    addr: std::net::SocketAddr,
    ca: &str,
    n: usize,
    alpn: &[u8],
    payload: &[u8],
) -> Vec<Tls> {
    let mut out = Vec::new();
    for batch in (0..n).collect::<Vec<_>>().chunks(64) {
        let opened = batch.iter().map(|_| async {
            let mut s = tls_connect(addr, &[ca], &[alpn]).await.unwrap();
            s.write_all(payload).await.unwrap();
            s.flush().await.unwrap();
            s
        });
        out.extend(futures::future::join_all(opened).await);
    }
    out
}
