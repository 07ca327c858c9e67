//! Requests with a body that go to the ingest rather than to the playback router (WHIP:
//! `POST /live/{stream}/whip` and its session resource). The HTTP listeners read the body
//! (at most [`MAX_BODY`] bytes) and hand the request over; the ingest answers it.

use crate::body::ChunkBody;
use bytes::Bytes;
use http::{HeaderMap, Method, Response};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// The largest request body read for the ingest (a WHIP offer is a few KB).
pub const MAX_BODY: usize = 64 * 1024;

/// One request for the ingest.
#[derive(Debug)]
pub struct BodyRequest<'a> {
    /// Method.
    pub method: &'a Method,
    /// Path.
    pub path: &'a str,
    /// Query string (may be empty).
    pub query: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// The body, or `None` when it was larger than [`MAX_BODY`].
    pub body: Option<Bytes>,
    /// The client.
    pub peer: SocketAddr,
}

/// A future answering a [`BodyRequest`].
pub type BodyFuture<'a> = Pin<Box<dyn Future<Output = Response<ChunkBody>> + Send + 'a>>;

/// The ingest's HTTP routes.
pub trait BodyRoutes: Send + Sync + std::fmt::Debug + 'static {
    /// Whether the path is one of these routes (any method).
    fn wants(&self, path: &str) -> bool;
    /// Answers a request for one of these routes.
    fn handle<'a>(&'a self, req: BodyRequest<'a>) -> BodyFuture<'a>;
}
