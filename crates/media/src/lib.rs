//! Shared media vocabulary for ferrocast.
//!
//! Every other crate speaks in these terms:
//! - [`time`]: the one definition of media time (timescales, rescaling, RTMP timestamp wrap).
//! - [`unit::MediaUnit`]: one access unit (video frame or audio frame) whose payload is a
//!   `Bytes` allocated once at ingest and never copied again.
//! - [`avc`], [`aac`]: codec configuration records (ISO/IEC 14496-15 §5.3.3, 14496-3 §1.6.2.1)
//!   and the facts derived from them (codec strings, resolution, sample rate).
//! - [`opus`]: Opus as WebRTC carries it: the `dOps` box and packet durations.
//! - [`flv`]: FLV audio/video tag bodies as carried in RTMP messages, legacy and Enhanced RTMP
//!   headers, plus a reader of whole FLV files (test fixtures, load generators).
//!
//! All parsers are sans-IO: they take bytes and return values or a [`MediaError`]; none panics
//! on malformed input.
#![warn(missing_docs)]

pub mod aac;
pub mod avc;
mod bits;
pub mod error;
pub mod flv;
pub mod opus;
pub mod time;
pub mod unit;

pub use error::MediaError;
pub use unit::{MediaUnit, TrackKind};
