//! HTTP delivery of LL-HLS for ferrocast.
//!
//! - [`route`]: URL → object (sans-IO, fuzzable).
//! - [`body`]: a response body that writes shared `Bytes` chunks (zero copy, vectored).
//! - [`origin`]: the request handler of the origin role, reading the packager's store,
//!   including blocking playlist reloads and preload-hinted part requests.
//! - [`server`]: hyper HTTP/1.1 + HTTP/2 (h2c prior knowledge) listener.
#![warn(missing_docs)]

pub mod body;
pub mod metrics;
pub mod origin;
pub mod route;
pub mod server;
