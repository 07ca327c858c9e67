//! The header of one CMAF chunk (= one LL-HLS part): `moof` + the `mdat` box header
//! (ISO/IEC 14496-12 §8.8; RFC 8216bis §3.1.2 requires `tfdt` and movie-fragment-relative
//! addressing). Box tree:
//!
//! ```text
//! moof
//!   mfhd   sequence_number
//!   traf
//!     tfhd   flags 0x020000 default-base-is-moof (never base-data-offset)
//!     tfdt   version 1, baseMediaDecodeTime = DTS of the first sample
//!     trun   version 1 (signed composition offsets), flags data-offset | duration | size
//!            | flags | composition-offset (video only)
//! mdat   header only: size = 8 + Σ sample sizes; the payloads follow as separate `Bytes`
//! ```

use super::init::TRACK_ID;
use super::writer::{write_box, write_full_box};
use bytes::{BufMut, Bytes, BytesMut};

/// Sample flags of a sync sample: sample_depends_on = 2 (does not depend on others).
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: depends_on = 1, sample_is_non_sync_sample = 1.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// What the fragment header needs to know about one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentSample {
    /// Duration in the track timescale.
    pub duration: u32,
    /// Payload size in bytes.
    pub size: u32,
    /// Composition offset (PTS − DTS).
    pub cts: i32,
    /// Sync sample (IDR / audio frame).
    pub sync: bool,
}

/// Builds `moof` + `mdat` header for the samples. `with_cts` adds composition offsets (video).
pub fn fragment_header(
    sequence_number: u32,
    base_dts: u64,
    samples: &[FragmentSample],
    with_cts: bool,
) -> Bytes {
    let per_sample = if with_cts { 16 } else { 12 };
    let mut b = BytesMut::with_capacity(112 + samples.len() * per_sample);
    let mut data_offset_pos = 0usize;
    write_box(&mut b, b"moof", |b| {
        write_full_box(b, b"mfhd", 0, 0, |b| b.put_u32(sequence_number));
        write_box(b, b"traf", |b| {
            write_full_box(b, b"tfhd", 0, 0x02_0000, |b| b.put_u32(TRACK_ID));
            write_full_box(b, b"tfdt", 1, 0, |b| b.put_u64(base_dts));
            let flags =
                0x000001 | 0x000100 | 0x000200 | 0x000400 | if with_cts { 0x000800 } else { 0 };
            write_full_box(b, b"trun", 1, flags, |b| {
                b.put_u32(samples.len() as u32);
                data_offset_pos = b.len();
                b.put_i32(0); // data_offset, patched below
                for s in samples {
                    b.put_u32(s.duration);
                    b.put_u32(s.size);
                    b.put_u32(if s.sync {
                        SYNC_SAMPLE_FLAGS
                    } else {
                        NON_SYNC_SAMPLE_FLAGS
                    });
                    if with_cts {
                        b.put_i32(s.cts);
                    }
                }
            });
        });
    });
    let moof_len = b.len();
    // data_offset: from the start of moof to the first payload byte (after the mdat header).
    let data_offset = i32::try_from(moof_len + 8).unwrap_or(i32::MAX);
    b[data_offset_pos..data_offset_pos + 4].copy_from_slice(&data_offset.to_be_bytes());
    let payload: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
    b.put_u32(u32::try_from(8 + payload).unwrap_or(u32::MAX));
    b.put_slice(b"mdat");
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let s = [
            FragmentSample {
                duration: 3000,
                size: 10,
                cts: 6000,
                sync: true,
            },
            FragmentSample {
                duration: 3000,
                size: 5,
                cts: -3000,
                sync: false,
            },
        ];
        let h = fragment_header(7, 90_000, &s, true);
        let moof_len = u32::from_be_bytes(h[0..4].try_into().unwrap()) as usize;
        assert_eq!(&h[4..8], b"moof");
        assert_eq!(h.len(), moof_len + 8);
        assert_eq!(&h[moof_len + 4..], b"mdat");
        assert_eq!(
            u32::from_be_bytes(h[moof_len..moof_len + 4].try_into().unwrap()),
            8 + 15
        );
        // mfhd sequence number
        assert_eq!(u32::from_be_bytes(h[20..24].try_into().unwrap()), 7);
    }
}
