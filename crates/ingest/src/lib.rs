//! RTMP and WHIP ingest for ferrocast.
//!
//! - [`rtmp::session`]: the RTMP protocol session (handshake, chunk stream, AMF0 commands)
//!   behind our own [`rtmp::session::RtmpSession`] trait; today implemented with `rml_rtmp`.
//! - [`to_unit`]: FLV tag bodies → [`ferrocast_media::MediaUnit`]s plus track configurations
//!   (sans-IO).
//! - [`relay`]: pushes published streams on to other origins over RTMP (redundant pairs).
//! - [`rtmp::server`]: the thin tokio layer: accept, read, feed, write, publish into the
//!   packager's store.
//! - [`whip`]: WebRTC ingest over WHIP: offer checks, RTP depacketizing and timing (sans-IO),
//!   and sessions on the `webrtc` crate.
#![warn(missing_docs)]

pub mod bitrate;
pub mod metrics;
pub mod relay;
pub mod rtmp;
pub mod to_unit;
pub mod whip;
