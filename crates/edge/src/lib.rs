//! HTTP delivery of LL-HLS for ferrocast.
//!
//! - [`route`]: URL → object (sans-IO, fuzzable).
//! - [`body`]: a response body that writes shared `Bytes` chunks (zero copy, vectored).
//! - [`reply`]: the request as handlers see it and plain responses.
//! - [`origin`]: the origin role's handler, reading the packager's store, including blocking
//!   playlist reloads and preload-hinted part requests.
//! - [`cache`]: the edge role's handler: cache, request coalescing.
//! - [`upstream`]: edge → origin requests: selection, health, retry.
//! - [`service`]: the router every listener shares (CORS, Alt-Svc, metrics).
//! - [`server`]: hyper HTTP/1.1 + HTTP/2 listener, cleartext (h2c prior knowledge) or TLS.
//! - [`h3`]: the HTTP/3 listener (quinn + h3).
//! - [`tls`]: certificates (PEM files or generated self-signed).
//! - [`viewers`]: viewers per stream (clients reloading its playlists).
#![warn(missing_docs)]

pub mod body;
pub mod cache;
pub mod h3;
pub mod idle;
pub mod ingest;
#[cfg(target_os = "linux")]
pub mod memfile;
pub mod metrics;
pub mod origin;
pub mod reply;
pub mod route;
pub mod server;
pub mod service;
pub mod tls;
pub mod upstream;
pub mod viewers;
