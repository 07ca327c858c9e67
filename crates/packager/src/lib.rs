//! The ferrocast packager: turns media units into CMAF parts and segments and LL-HLS
//! playlists, and keeps them in a store that HTTP delivery reads from.
//!
//! Layers, bottom up (all but [`store`] are pure and synchronous):
//! - [`cmaf`]: init segments and fragment headers (box writer).
//! - [`epoch`]: the PROGRAM-DATE-TIME epoch and how origins agree on it.
//! - [`segmenter`]: where parts and segments begin and end (a function of timestamps).
//! - [`playlist`]: LL-HLS media and multivariant playlist rendering (text, once per change).
//! - [`blocking`]: the blocking playlist reload decision table (RFC 8216bis §6.2.5.2).
//! - [`stream`]: one stream's state: segmenter output → parts, segments, playlists.
//! - [`store`]: all live streams, with watch channels for blocking requests.
//!
//! No network dependency: tokio is used only for `sync::watch`.
#![warn(missing_docs)]

pub mod blocking;
pub mod cmaf;
pub mod epoch;
pub mod gzip;
pub mod metrics;
pub mod model;
pub mod playlist;
pub mod segmenter;
pub mod store;
pub mod stream;
