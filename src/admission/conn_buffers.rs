//! What one connection may hold in buffers, set explicitly on hyper (HTTP/1.1 and HTTP/2) rather
//! than left to defaults that change between releases, and the worst-case memory of the server.
//!
//! Why: `--max-inflight-bytes` bounds the reviews, not the connections. With hyper's defaults
//! an HTTP/2 connection could hold a 1 MiB receive window, 200 concurrent streams of 16 KiB
//! headers and 400 KiB of unsent answer each; an HTTP/1.1 one a 400 KiB read buffer. Here:
//!
//! | per connection | bytes at most |
//! |---|---|
//! | TLS (rustls' own limits, not configurable through axum-server): handshake reassembly 64 KiB, received plaintext 16 KiB + one record, sendable TLS 64 KiB + one record, connection state | `TLS_BYTES` 192 KiB |
//! | HTTP/1.1: read buffer (headers, body chunks not yet taken) and write buffer, each `H1_MAX_BUF`, plus one answer chunk | 2 × 32 KiB + 16 KiB |
//! | HTTP/2: receive window (DATA not yet taken) `H2_CONN_WINDOW`, one frame `H2_MAX_FRAME`, HPACK table `H2_HEADER_TABLE`, and per stream (at most `H2_MAX_STREAMS`) its headers `H2_MAX_HEADER_LIST`, unsent answer `H2_MAX_SEND_BUF` and one answer chunk | 64 + 16 + 4 + 8 × (16 + 16 + 16) = 468 KiB |
//!
//! so `PER_CONNECTION_BYTES` = 192 KiB + 468 KiB, rounded up to 768 KiB for the task, the
//! request structs and the allocator's slack. Answers larger than one chunk are held by the
//! review's reservation in `--max-inflight-bytes` until sent (`answer_body`).
//!
//! **Worst-case RSS** is `--max-inflight-bytes`, plus `--max-connections` times
//! `PER_CONNECTION_BYTES`, plus the catalog (the objects in the cluster) and the process at
//! rest. With the defaults: 166 MB, plus 1024 × 768 KiB (768 MiB), plus the catalog and the
//! process at rest (44 MB for the debug build with the example catalog, measured by the test
//! below). Kernel socket buffers are not the process's RSS. `tests/admission_rss.rs` drives the
//! worst case it can and reads VmHWM: 211 KB per HTTP/2 connection and 50 KB per HTTP/1.1 one
//! held at their limits (1.33 MB per HTTP/2 connection with hyper's defaults).

use std::time::Duration;

use hyper_util::server::conn::auto::Builder;

/// HTTP/1.1 read and write buffer: request headers must fit (431 past it; the apiserver's are
/// well under 1 KiB), body chunks pass through it to the handler.
pub const H1_MAX_BUF: usize = 32 << 10;
/// HTTP/2 connection and stream receive windows: DATA the peer may send that we have not
/// taken. The RFC's initial 65,535 bytes: a 3 MiB review over loopback takes 48 round trips
/// of window updates, microseconds each.
pub const H2_CONN_WINDOW: u32 = 64 << 10;
pub const H2_STREAM_WINDOW: u32 = 64 << 10;
/// The RFC's smallest maximum frame; larger frames are a protocol error.
pub const H2_MAX_FRAME: u32 = 16 << 10;
/// Decoded headers of one request (RFC 9113 counts 32 bytes per field on top of name and value).
pub const H2_MAX_HEADER_LIST: u32 = 16 << 10;
/// HPACK table: h2's default, which hyper-util's builder does not expose.
pub const H2_HEADER_TABLE: u32 = 4 << 10;
/// Concurrent requests on one HTTP/2 connection. A client that wants more opens another
/// connection (Go's HTTP/2 transport, the apiserver's, does so by default).
pub const H2_MAX_STREAMS: u32 = 8;
/// Answer bytes hyper queues per stream beyond what the peer's window lets out.
pub const H2_MAX_SEND_BUF: usize = 16 << 10;
/// CVE-2023-44487 ("rapid reset"): streams the peer opens and resets before we accept them;
/// past this many at once the connection gets GOAWAY (ENHANCE_YOUR_CALM). h2's default, set
/// here so that a dependency update cannot silently change it.
pub const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams we reset because the peer erred or opened more than `H2_MAX_STREAMS` (RUSTSEC-2024-0003,
/// "MadeYouReset"), over the connection's life; past this it gets GOAWAY. hyper's default, set
/// here for the same reason: lower would cut off a long-lived client (Go's transport) that
/// now and then opens a stream before it has read our SETTINGS, and retries it.
pub const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Answers are handed to hyper in chunks of this size, so that its write buffer never holds
/// more than one beyond its bound (a whole multi-megabyte answer would be copied into it).
pub const ANSWER_CHUNK: usize = 16 << 10;

/// rustls' buffers of one connection at most (see the table above).
pub const TLS_BYTES: usize = 192 << 10;

/// HTTP/2's share of one connection at most (the larger of the two protocols).
pub const H2_BYTES: usize = H2_CONN_WINDOW as usize
    + H2_MAX_FRAME as usize
    + H2_HEADER_TABLE as usize
    + H2_MAX_STREAMS as usize * (H2_MAX_HEADER_LIST as usize + H2_MAX_SEND_BUF + ANSWER_CHUNK);

/// HTTP/1.1's share of one connection at most.
pub const H1_BYTES: usize = 2 * H1_MAX_BUF + ANSWER_CHUNK;

/// What one connection may hold, with room for the task, request structs and allocator slack.
pub const PER_CONNECTION_BYTES: usize = 768 << 10;

const _: () = assert!(TLS_BYTES + H2_BYTES <= PER_CONNECTION_BYTES);
const _: () = assert!(TLS_BYTES + H1_BYTES <= PER_CONNECTION_BYTES);

/// The bound on the server's RSS besides the catalog and the process at rest.
pub fn worst_case_bytes(max_inflight_bytes: usize, max_connections: usize) -> usize {
    max_inflight_bytes.saturating_add(max_connections.saturating_mul(PER_CONNECTION_BYTES))
}

/// Set every buffer bound above on a connection builder, the HTTP/1.1 wait for a next request
/// and HTTP/2 keep-alive (without pings, a vanished HTTP/2 peer would hold its connection slot).
///
/// hyper (1.12) has one timer for an HTTP/1.1 connection between requests: it starts when the
/// connection is ready for a request and stops when that request's headers are read, so it
/// bounds the idle wait and the next headers together. It gets `h1_next_request_timeout`
/// (`ServeConfig::idle_timeout`): a shorter header timeout here would also close idle
/// connections before the apiserver does. The first request of a connection has its own, short
/// bound (axum-server's first_request_timeout, `ServeConfig::header_read_timeout`).
pub fn configure<E>(
    b: &mut Builder<E>,
    h1_next_request_timeout: Duration,
    h2_keepalive_interval: Duration,
    h2_keepalive_timeout: Duration,
) {
    b.http1()
        .header_read_timeout(h1_next_request_timeout)
        .max_buf_size(H1_MAX_BUF);
    b.http2()
        .keep_alive_interval(h2_keepalive_interval)
        .keep_alive_timeout(h2_keepalive_timeout)
        .initial_connection_window_size(H2_CONN_WINDOW)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .max_frame_size(H2_MAX_FRAME)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS);
}
