//! The admission server: HTTPS `/mutate` and `/validate` for the three Gloo kinds.
//!
//! `review` decodes a review, calls the pure core and encodes the answer; `handlers` adds
//! metrics, tracing and the per-review deadline; `server` adds TLS (with hot reload), limits and
//! graceful shutdown; `client_auth` decides who may call. The core never sees HTTP.

pub mod answer_body;
pub mod bounded;
pub mod budget;
pub mod client_auth;
pub mod conn_buffers;
pub mod guardrail;
pub mod handlers;
pub mod labels;
pub mod limits;
pub mod names;
pub mod review;
pub mod server;
pub mod shape;
pub mod tls;

pub use server::{Running, ServeConfig, start};
