//! The media unit: one access unit on its way from ingest to the packager.

use bytes::Bytes;

/// Which elementary stream a unit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackKind {
    /// Video (H.264 today), timescale [`crate::time::VIDEO_TIMESCALE`].
    Video,
    /// Audio (AAC today), timescale = sample rate.
    Audio,
}

impl TrackKind {
    /// Lower-case name used in URLs, labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
        }
    }
}

/// One access unit. `data` is the sample payload as it goes into `mdat` (length-prefixed NAL
/// units for H.264, a raw AAC frame for audio); it is allocated once at ingest and only ever
/// shared afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUnit {
    /// The track this unit belongs to.
    pub track: TrackKind,
    /// Decode time in the track's timescale.
    pub dts: i64,
    /// Composition offset (PTS − DTS) in the track's timescale; may be negative.
    pub cts: i32,
    /// True for sync samples (IDR pictures; every audio frame).
    pub keyframe: bool,
    /// The sample payload.
    pub data: Bytes,
}
