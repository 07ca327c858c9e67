//! The objects a stream publishes: parts and segments of one rendition. A part is a fragment
//! header plus the samples' `Bytes` (shared with ingest: never copied); a segment is its parts.

use bytes::Bytes;
use std::sync::Arc;

/// One LL-HLS part (one CMAF chunk: `moof` + `mdat`).
#[derive(Debug)]
pub struct Part {
    /// Media sequence number of the parent segment.
    pub msn: u64,
    /// Index within the parent segment.
    pub index: u32,
    /// Duration in the rendition timescale.
    pub duration: i64,
    /// Starts with a sync sample.
    pub independent: bool,
    /// No media (EXT-X-PART GAP=YES); requests for it get 404.
    pub gap: bool,
    /// `moof` + `mdat` header.
    pub header: Bytes,
    /// Sample payloads in `mdat` order.
    pub samples: Vec<Bytes>,
    /// Total size in bytes (header + samples).
    pub size: usize,
    /// Wall-clock time it became servable, microseconds since the Unix epoch (0 for GAP parts).
    /// Not part of the object's bytes; served as a response header for delivery-delay probes.
    pub published_us: i64,
}

impl Part {
    /// The chunks of the part's body, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        std::iter::once(&self.header).chain(self.samples.iter())
    }
}

/// A complete segment.
#[derive(Debug)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    /// Duration in the rendition timescale.
    pub duration: i64,
    /// EXT-X-PROGRAM-DATE-TIME of the first sample, milliseconds since the Unix epoch.
    pub pdt_ms: i64,
    /// Preceded by EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// Which init segment (generation) applies.
    pub init_gen: u32,
    /// Its parts.
    pub parts: Vec<Arc<Part>>,
}

impl Segment {
    /// Every part is a GAP part (EXT-X-GAP on the segment).
    pub fn is_gap(&self) -> bool {
        self.parts.iter().all(|p| p.gap)
    }

    /// Total size in bytes.
    pub fn size(&self) -> usize {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// The chunks of the segment's body: its parts' chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter().flat_map(|p| p.chunks())
    }
}

/// The in-progress segment: parts published so far.
#[derive(Debug, Clone)]
pub struct OpenSegment {
    /// Media sequence number.
    pub msn: u64,
    /// PDT of its first sample (ms since the Unix epoch).
    pub pdt_ms: i64,
    /// Preceded by EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// Init generation.
    pub init_gen: u32,
    /// Parts so far.
    pub parts: Vec<Arc<Part>>,
}
