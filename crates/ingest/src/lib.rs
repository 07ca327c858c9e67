//! RTMP ingest for ferrocast.
//!
//! - [`rtmp::session`]: the RTMP protocol session (handshake, chunk stream, AMF0 commands)
//!   behind our own [`rtmp::session::RtmpSession`] trait; today implemented with `rml_rtmp`.
//! - [`to_unit`]: FLV tag bodies → [`ferrocast_media::MediaUnit`]s plus track configurations
//!   (sans-IO).
//! - [`rtmp::server`]: the thin tokio layer: accept, read, feed, write, publish into the
//!   packager's store.
#![warn(missing_docs)]

pub mod metrics;
pub mod rtmp;
pub mod to_unit;
