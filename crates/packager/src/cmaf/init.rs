//! Initialization segment of one track (RFC 8216bis §3.1.2; ISO/IEC 14496-12 §8.2–8.8;
//! CMAF header). Box tree:
//!
//! ```text
//! ftyp  major iso6, compatible iso6 cmfc mp41 (+ avc1)
//! moov
//!   mvhd                    timescale 1000, duration 0, next_track_ID 2
//!   trak
//!     tkhd                  track 1, enabled|in_movie, duration 0, width/height (video)
//!     mdia
//!       mdhd                timescale = track timescale, duration 0, language und
//!       hdlr                vide | soun
//!       minf
//!         vmhd | smhd
//!         dinf/dref/url     self-contained
//!         stbl              stsd (avc1+avcC | mp4a+esds | Opus+dOps), empty stts stsc stsz stco
//!   mvex
//!     trex                  track 1, default sample description 1
//! ```

use super::writer::{write_box, write_full_box};
use crate::segmenter::AudioClock;
use bytes::{BufMut, Bytes, BytesMut};
use ferrocast_media::aac::AacConfig;
use ferrocast_media::avc::AvcConfig;
use ferrocast_media::opus::{OpusConfig, OPUS_TIMESCALE};
use ferrocast_media::time::VIDEO_TIMESCALE;
use ferrocast_media::TrackKind;

/// The configuration of an audio track: AAC (RTMP) or Opus (WebRTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioConfig {
    /// AAC.
    Aac(AacConfig),
    /// Opus.
    Opus(OpusConfig),
}

impl From<AudioConfig> for TrackConfig {
    fn from(a: AudioConfig) -> Self {
        match a {
            AudioConfig::Aac(c) => TrackConfig::Aac(c),
            AudioConfig::Opus(c) => TrackConfig::Opus(c),
        }
    }
}

/// The configuration of one track, as needed for its init segment and codec strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackConfig {
    /// H.264 video.
    Avc(AvcConfig),
    /// AAC audio.
    Aac(AacConfig),
    /// Opus audio (48 kHz timescale).
    Opus(OpusConfig),
}

impl TrackConfig {
    /// Video or audio.
    pub fn kind(&self) -> TrackKind {
        match self {
            TrackConfig::Avc(_) => TrackKind::Video,
            TrackConfig::Aac(_) | TrackConfig::Opus(_) => TrackKind::Audio,
        }
    }

    /// Ticks per second of the track.
    pub fn timescale(&self) -> u32 {
        match self {
            TrackConfig::Avc(_) => VIDEO_TIMESCALE,
            TrackConfig::Aac(a) => a.sample_rate,
            TrackConfig::Opus(_) => OPUS_TIMESCALE,
        }
    }

    /// The clock an audio track's frames follow (None for video).
    pub fn audio_clock(&self) -> Option<AudioClock> {
        match self {
            TrackConfig::Avc(_) => None,
            TrackConfig::Aac(a) => Some(AudioClock {
                timescale: a.sample_rate,
                frame: 1024,
            }),
            TrackConfig::Opus(_) => Some(AudioClock {
                timescale: OPUS_TIMESCALE,
                frame: 960,
            }),
        }
    }

    /// RFC 6381 codec string.
    pub fn codec_string(&self) -> String {
        match self {
            TrackConfig::Avc(c) => c.codec_string(),
            TrackConfig::Aac(c) => c.codec_string(),
            TrackConfig::Opus(c) => c.codec_string(),
        }
    }
}

/// Track ID used in every init segment and fragment (one track per rendition).
pub const TRACK_ID: u32 = 1;

/// Builds the init segment of a single-track rendition.
pub fn init_segment(track: &TrackConfig) -> Bytes {
    let mut b = BytesMut::with_capacity(1024);
    write_box(&mut b, b"ftyp", |b| {
        b.put_slice(b"iso6");
        b.put_u32(0);
        b.put_slice(b"iso6");
        b.put_slice(b"cmfc");
        b.put_slice(b"mp41");
        if let TrackConfig::Avc(_) = track {
            b.put_slice(b"avc1");
        }
    });
    write_box(&mut b, b"moov", |b| {
        write_full_box(b, b"mvhd", 0, 0, |b| {
            b.put_u32(0); // creation_time
            b.put_u32(0); // modification_time
            b.put_u32(1000); // timescale
            b.put_u32(0); // duration
            b.put_u32(0x0001_0000); // rate 1.0
            b.put_u16(0x0100); // volume 1.0
            b.put_bytes(0, 10); // reserved
            put_matrix(b);
            b.put_bytes(0, 24); // pre_defined
            b.put_u32(TRACK_ID + 1); // next_track_ID
        });
        write_box(b, b"trak", |b| write_trak(b, track));
        write_box(b, b"mvex", |b| {
            write_full_box(b, b"trex", 0, 0, |b| {
                b.put_u32(TRACK_ID);
                b.put_u32(1); // default_sample_description_index
                b.put_u32(0); // default_sample_duration
                b.put_u32(0); // default_sample_size
                b.put_u32(0); // default_sample_flags
            });
        });
    });
    b.freeze()
}

fn put_matrix(b: &mut BytesMut) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        b.put_u32(v);
    }
}

fn write_trak(b: &mut BytesMut, track: &TrackConfig) {
    let (width, height) = match track {
        TrackConfig::Avc(c) => (c.info.width, c.info.height),
        TrackConfig::Aac(_) | TrackConfig::Opus(_) => (0, 0),
    };
    write_full_box(b, b"tkhd", 0, 0x3, |b| {
        b.put_u32(0); // creation_time
        b.put_u32(0); // modification_time
        b.put_u32(TRACK_ID);
        b.put_u32(0); // reserved
        b.put_u32(0); // duration
        b.put_bytes(0, 8); // reserved
        b.put_u16(0); // layer
        b.put_u16(0); // alternate_group
        b.put_u16(if track.kind() == TrackKind::Audio {
            0x0100
        } else {
            0
        });
        b.put_u16(0); // reserved
        put_matrix(b);
        b.put_u32(width << 16);
        b.put_u32(height << 16);
    });
    write_box(b, b"mdia", |b| {
        write_full_box(b, b"mdhd", 0, 0, |b| {
            b.put_u32(0);
            b.put_u32(0);
            b.put_u32(track.timescale());
            b.put_u32(0); // duration
            b.put_u16(0x55c4); // language "und"
            b.put_u16(0);
        });
        let (handler, name): (&[u8; 4], &[u8]) = match track.kind() {
            TrackKind::Video => (b"vide", b"ferrocast video\0"),
            TrackKind::Audio => (b"soun", b"ferrocast audio\0"),
        };
        write_full_box(b, b"hdlr", 0, 0, |b| {
            b.put_u32(0); // pre_defined
            b.put_slice(handler);
            b.put_bytes(0, 12);
            b.put_slice(name);
        });
        write_box(b, b"minf", |b| {
            match track.kind() {
                TrackKind::Video => write_full_box(b, b"vmhd", 0, 1, |b| b.put_bytes(0, 8)),
                TrackKind::Audio => write_full_box(b, b"smhd", 0, 0, |b| b.put_u32(0)),
            }
            write_box(b, b"dinf", |b| {
                write_full_box(b, b"dref", 0, 0, |b| {
                    b.put_u32(1);
                    write_full_box(b, b"url ", 0, 1, |_| {});
                });
            });
            write_box(b, b"stbl", |b| {
                write_full_box(b, b"stsd", 0, 0, |b| {
                    b.put_u32(1);
                    match track {
                        TrackConfig::Avc(c) => write_avc1(b, c),
                        TrackConfig::Aac(c) => write_mp4a(b, c),
                        TrackConfig::Opus(c) => write_opus(b, c),
                    }
                });
                write_full_box(b, b"stts", 0, 0, |b| b.put_u32(0));
                write_full_box(b, b"stsc", 0, 0, |b| b.put_u32(0));
                write_full_box(b, b"stsz", 0, 0, |b| {
                    b.put_u32(0);
                    b.put_u32(0);
                });
                write_full_box(b, b"stco", 0, 0, |b| b.put_u32(0));
            });
        });
    });
}

/// `avc1` VisualSampleEntry (14496-12 §12.1.3) with `avcC` (14496-15 §5.4.2.1).
fn write_avc1(b: &mut BytesMut, c: &AvcConfig) {
    write_box(b, b"avc1", |b| {
        b.put_bytes(0, 6); // reserved
        b.put_u16(1); // data_reference_index
        b.put_bytes(0, 16); // pre_defined + reserved
        b.put_u16(c.info.width as u16);
        b.put_u16(c.info.height as u16);
        b.put_u32(0x0048_0000); // horizresolution 72 dpi
        b.put_u32(0x0048_0000); // vertresolution
        b.put_u32(0); // reserved
        b.put_u16(1); // frame_count
        b.put_bytes(0, 32); // compressorname
        b.put_u16(0x0018); // depth
        b.put_i16(-1); // pre_defined
        write_box(b, b"avcC", |b| b.put_slice(&c.record));
    });
}

/// The fields every AudioSampleEntry starts with (14496-12 §12.2.3).
fn put_audio_entry(b: &mut BytesMut, channels: u8, sample_rate: u32) {
    b.put_bytes(0, 6);
    b.put_u16(1); // data_reference_index
    b.put_bytes(0, 8); // reserved
    b.put_u16(u16::from(channels));
    b.put_u16(16); // samplesize
    b.put_u32(0); // pre_defined + reserved
    b.put_u32(sample_rate.min(0xffff) << 16);
}

/// `mp4a` AudioSampleEntry with `esds` (ISO/IEC 14496-14 §5.6, 14496-1 §7.2.6.5).
fn write_mp4a(b: &mut BytesMut, c: &AacConfig) {
    write_box(b, b"mp4a", |b| {
        put_audio_entry(b, c.channels, c.sample_rate);
        write_full_box(b, b"esds", 0, 0, |b| {
            let asc = &c.asc[..];
            let dsi_len = asc.len();
            let dcd_len = 13 + 2 + dsi_len;
            let es_len = 3 + 2 + dcd_len + 3;
            b.put_u8(0x03); // ES_DescrTag
            put_descr_len(b, es_len);
            b.put_u16(1); // ES_ID
            b.put_u8(0); // flags
            b.put_u8(0x04); // DecoderConfigDescrTag
            put_descr_len(b, dcd_len);
            b.put_u8(0x40); // objectTypeIndication: Audio ISO/IEC 14496-3
            b.put_u8(0x15); // streamType audio (5) << 2 | upStream 0 | reserved 1
            b.put_bytes(0, 3); // bufferSizeDB
            b.put_u32(0); // maxBitrate
            b.put_u32(0); // avgBitrate
            b.put_u8(0x05); // DecSpecificInfoTag
            put_descr_len(b, dsi_len);
            b.put_slice(asc);
            b.put_u8(0x06); // SLConfigDescrTag
            put_descr_len(b, 1);
            b.put_u8(0x02);
        });
    });
}

/// `Opus` AudioSampleEntry with `dOps` (Encapsulation of Opus in ISOBMFF §4.3).
fn write_opus(b: &mut BytesMut, c: &OpusConfig) {
    write_box(b, b"Opus", |b| {
        put_audio_entry(b, c.channels, OPUS_TIMESCALE);
        write_box(b, b"dOps", |b| b.put_slice(&c.dops()));
    });
}

/// Descriptor lengths as 1-byte values when they fit (all of ours do: an ASC is a few bytes),
/// else the 4-byte expandable form (14496-1 §8.3.3).
fn put_descr_len(b: &mut BytesMut, len: usize) {
    if len < 0x80 {
        b.put_u8(len as u8);
    } else {
        let len = len as u32;
        b.put_u8(0x80 | ((len >> 21) & 0x7f) as u8);
        b.put_u8(0x80 | ((len >> 14) & 0x7f) as u8);
        b.put_u8(0x80 | ((len >> 7) & 0x7f) as u8);
        b.put_u8((len & 0x7f) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload of the first box of type `name` found by walking `path` (box types whose
    /// children are read, with the bytes to skip before the children of each).
    fn find<'a>(mut data: &'a [u8], path: &[(&[u8; 4], usize)]) -> Option<&'a [u8]> {
        for (name, skip) in path {
            let mut found = None;
            while data.len() >= 8 {
                let size = u32::from_be_bytes(data[..4].try_into().ok()?) as usize;
                let body = data.get(8..size)?;
                if &data[4..8] == *name {
                    found = Some(body.get(*skip..)?);
                    break;
                }
                data = &data[size..];
            }
            data = found?;
        }
        Some(data)
    }

    #[test]
    fn opus_init_segment() {
        let c = OpusConfig::webrtc(2).unwrap();
        let t = TrackConfig::Opus(c.clone());
        assert_eq!(
            (t.kind(), t.timescale(), t.codec_string().as_str()),
            (TrackKind::Audio, 48_000, "opus")
        );
        let init = init_segment(&t);
        let path = [
            (b"moov", 0),
            (b"trak", 0),
            (b"mdia", 0),
            (b"minf", 0),
            (b"stbl", 0),
            (b"stsd", 8), // full box header + entry count
        ];
        let stsd = find(&init, &path).expect("stsd");
        // the Opus sample entry: channels, sample size, 48 kHz, then dOps
        let entry = find(stsd, &[(b"Opus", 0)]).expect("Opus sample entry");
        assert_eq!(&entry[16..18], &[0, 2]);
        assert_eq!(&entry[18..20], &[0, 16]);
        assert_eq!(&entry[24..28], &(48_000u32 << 16).to_be_bytes());
        let dops = find(&entry[28..], &[(b"dOps", 0)]).expect("dOps");
        assert_eq!(dops, &c.dops()[..]);
        // the media timescale is 48 kHz (mdhd version 0: 12 bytes in)
        let mdhd = find(
            &init,
            &[(b"moov", 0), (b"trak", 0), (b"mdia", 0), (b"mdhd", 0)],
        )
        .expect("mdhd");
        assert_eq!(&mdhd[12..16], &48_000u32.to_be_bytes());
        // a sound handler
        let hdlr = find(
            &init,
            &[(b"moov", 0), (b"trak", 0), (b"mdia", 0), (b"hdlr", 0)],
        )
        .expect("hdlr");
        assert_eq!(&hdlr[8..12], b"soun");
    }
}
