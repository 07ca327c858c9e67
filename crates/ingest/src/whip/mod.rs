//! WebRTC ingest over WHIP (RFC 9725).
//!
//! - [`sdp`]: what an offer must contain (sans-IO).
//! - [`rtp`]: reorder buffer and H.264 depacketizer (sans-IO).
//! - [`convert`]: RTP to media units: timestamps, A/V alignment, track set (sans-IO).
//! - [`peer`]: the `webrtc` crate's peer connection for one session.
//! - [`server`]: sessions: publish, answer, feed the stream, end.

pub mod convert;
pub mod peer;
pub mod rtp;
pub mod sdp;
pub mod server;
