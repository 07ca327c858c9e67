//! FLV audio and video tag bodies, as carried in RTMP audio (type 8) and video (type 9)
//! messages (FLV spec v10.1 Annex E.4.2/E.4.3; Enhanced RTMP v2 "ExVideoTagHeader" and
//! "ExAudioTagHeader"), and a reader of whole FLV files.
//!
//! Parsing never copies payloads: NAL unit data and AAC frames are `Bytes::slice`s of the
//! message body.

use crate::error::need;
use crate::MediaError;
use bytes::Bytes;

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// AVC sequence header: the AVCDecoderConfigurationRecord.
    AvcSequenceHeader(Bytes),
    /// One coded picture: length-prefixed NAL units.
    AvcFrame {
        /// FLV frame type 1 (keyframe). Not a guarantee of IDR; the packager checks NAL types.
        keyframe: bool,
        /// Composition time offset in milliseconds (PTS − DTS).
        cts_ms: i32,
        /// Length-prefixed NAL units (a slice of the message).
        data: Bytes,
    },
    /// AVC end of sequence.
    EndOfSequence,
    /// A command frame or Enhanced RTMP metadata: informative, ignored.
    Ignored,
}

/// A parsed audio tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// AAC sequence header: the AudioSpecificConfig.
    AacSequenceHeader(Bytes),
    /// One raw AAC frame.
    AacFrame(Bytes),
}

const FOURCC_AVC1: [u8; 4] = *b"avc1";

/// Parses a video message body (legacy or Enhanced RTMP header).
pub fn parse_video(body: &Bytes) -> Result<VideoTag, MediaError> {
    const WHAT: &str = "FLV video tag";
    need(WHAT, body, 1)?;
    let b0 = body[0];
    if b0 & 0x80 != 0 {
        return parse_ex_video(body);
    }
    let frame_type = b0 >> 4;
    let codec_id = b0 & 0x0f;
    if frame_type == 5 {
        // video info / command frame
        return Ok(VideoTag::Ignored);
    }
    if codec_id != 7 {
        return Err(MediaError::Unsupported {
            what: "video codec",
            detail: format!("FLV CodecID {codec_id} (only 7 = AVC/H.264 is supported)"),
        });
    }
    need(WHAT, body, 5)?;
    let cts = read_si24(&body[2..5]);
    match body[1] {
        0 => Ok(VideoTag::AvcSequenceHeader(body.slice(5..))),
        1 => Ok(VideoTag::AvcFrame {
            keyframe: frame_type == 1,
            cts_ms: cts,
            data: body.slice(5..),
        }),
        2 => Ok(VideoTag::EndOfSequence),
        t => Err(MediaError::Invalid {
            what: WHAT,
            field: "AVCPacketType",
            value: u64::from(t),
        }),
    }
}

fn parse_ex_video(body: &Bytes) -> Result<VideoTag, MediaError> {
    const WHAT: &str = "Enhanced RTMP video tag";
    need(WHAT, body, 5)?;
    let frame_type = (body[0] >> 4) & 0x07;
    let packet_type = body[0] & 0x0f;
    let fourcc = [body[1], body[2], body[3], body[4]];
    if frame_type == 5 || packet_type == 4 {
        return Ok(VideoTag::Ignored); // command frame / metadata (colorInfo)
    }
    if packet_type == 6 || packet_type == 7 {
        return Err(MediaError::Unsupported {
            what: "Enhanced RTMP video packet type",
            detail: format!("{packet_type} (multitrack/ModEx)"),
        });
    }
    if fourcc != FOURCC_AVC1 {
        return Err(MediaError::Unsupported {
            what: "video codec",
            detail: format!("FourCC {:?}", String::from_utf8_lossy(&fourcc)),
        });
    }
    match packet_type {
        0 => Ok(VideoTag::AvcSequenceHeader(body.slice(5..))),
        1 => {
            need(WHAT, body, 8)?;
            Ok(VideoTag::AvcFrame {
                keyframe: frame_type == 1,
                cts_ms: read_si24(&body[5..8]),
                data: body.slice(8..),
            })
        }
        3 => Ok(VideoTag::AvcFrame {
            keyframe: frame_type == 1,
            cts_ms: 0,
            data: body.slice(5..),
        }),
        2 => Ok(VideoTag::EndOfSequence),
        t => Err(MediaError::Unsupported {
            what: "Enhanced RTMP video packet type",
            detail: t.to_string(),
        }),
    }
}

/// Parses an audio message body.
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, MediaError> {
    const WHAT: &str = "FLV audio tag";
    need(WHAT, body, 1)?;
    let sound_format = body[0] >> 4;
    if sound_format == 9 {
        return Err(MediaError::Unsupported {
            what: "audio codec",
            detail: "Enhanced RTMP audio (ExAudioTagHeader) is not supported yet".into(),
        });
    }
    if sound_format != 10 {
        return Err(MediaError::Unsupported {
            what: "audio codec",
            detail: format!("FLV SoundFormat {sound_format} (only 10 = AAC is supported)"),
        });
    }
    need(WHAT, body, 2)?;
    match body[1] {
        0 => Ok(AudioTag::AacSequenceHeader(body.slice(2..))),
        1 => Ok(AudioTag::AacFrame(body.slice(2..))),
        t => Err(MediaError::Invalid {
            what: WHAT,
            field: "AACPacketType",
            value: u64::from(t),
        }),
    }
}

fn read_si24(b: &[u8]) -> i32 {
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    (v << 8) >> 8
}

/// Kind of a tag in an FLV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlvTagKind {
    /// Audio (type 8).
    Audio,
    /// Video (type 9).
    Video,
    /// Script data (type 18), e.g. onMetaData.
    Script,
}

/// One tag of an FLV file: what an RTMP publisher sends as one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvFileTag {
    /// Tag type.
    pub kind: FlvTagKind,
    /// Timestamp in milliseconds (24 bits + 8 extended bits).
    pub timestamp: u32,
    /// The tag body (a slice of the file).
    pub body: Bytes,
}

/// Reads all tags of an FLV file held in memory (FLV spec v10.1 Annex E.2–E.4).
pub fn read_file(file: &Bytes) -> Result<Vec<FlvFileTag>, MediaError> {
    const WHAT: &str = "FLV file";
    need(WHAT, file, 9)?;
    if &file[0..3] != b"FLV" {
        return Err(MediaError::Invalid {
            what: WHAT,
            field: "signature",
            value: 0,
        });
    }
    let header_len = u32::from_be_bytes([file[5], file[6], file[7], file[8]]) as usize;
    let mut pos = header_len + 4; // + PreviousTagSize0
    let mut tags = Vec::new();
    while pos + 11 <= file.len() {
        let t = file[pos];
        let size = (usize::from(file[pos + 1]) << 16)
            | (usize::from(file[pos + 2]) << 8)
            | usize::from(file[pos + 3]);
        let ts = (u32::from(file[pos + 7]) << 24)
            | (u32::from(file[pos + 4]) << 16)
            | (u32::from(file[pos + 5]) << 8)
            | u32::from(file[pos + 6]);
        let start = pos + 11;
        need(WHAT, file, start + size)?;
        let kind = match t & 0x1f {
            8 => Some(FlvTagKind::Audio),
            9 => Some(FlvTagKind::Video),
            18 => Some(FlvTagKind::Script),
            _ => None,
        };
        if let Some(kind) = kind {
            tags.push(FlvFileTag {
                kind,
                timestamp: ts,
                body: file.slice(start..start + size),
            });
        }
        pos = start + size + 4;
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc() {
        let body = Bytes::from_static(&[0x17, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x65]);
        assert_eq!(
            parse_video(&body).unwrap(),
            VideoTag::AvcFrame {
                keyframe: true,
                cts_ms: -2,
                data: body.slice(5..)
            }
        );
        let body = Bytes::from_static(&[0x27, 1, 0, 0, 67, 0, 0, 0, 1, 0x41]);
        match parse_video(&body).unwrap() {
            VideoTag::AvcFrame {
                keyframe, cts_ms, ..
            } => assert_eq!((keyframe, cts_ms), (false, 67)),
            other => panic!("{other:?}"),
        }
        let body = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            parse_video(&body).unwrap(),
            VideoTag::AvcSequenceHeader(body.slice(5..))
        );
    }

    #[test]
    fn enhanced_avc_and_unsupported() {
        let mut v = vec![0x90 | 3];
        v.extend_from_slice(b"avc1");
        v.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        let body = Bytes::from(v);
        assert!(matches!(
            parse_video(&body).unwrap(),
            VideoTag::AvcFrame {
                keyframe: true,
                cts_ms: 0,
                ..
            }
        ));
        let mut v = vec![0x90];
        v.extend_from_slice(b"hvc1");
        assert!(matches!(
            parse_video(&Bytes::from(v)),
            Err(MediaError::Unsupported { .. })
        ));
        assert!(parse_video(&Bytes::from_static(&[0x12, 0])).is_err()); // Sorenson
        assert!(parse_video(&Bytes::from_static(&[0x17, 9, 0, 0, 0])).is_err());
    }

    #[test]
    fn audio() {
        let body = Bytes::from_static(&[0xaf, 0, 0x11, 0x90]);
        assert_eq!(
            parse_audio(&body).unwrap(),
            AudioTag::AacSequenceHeader(body.slice(2..))
        );
        let body = Bytes::from_static(&[0xaf, 1, 0x21]);
        assert_eq!(
            parse_audio(&body).unwrap(),
            AudioTag::AacFrame(body.slice(2..))
        );
        assert!(parse_audio(&Bytes::from_static(&[0x2f, 1])).is_err()); // MP3
        assert!(parse_audio(&Bytes::from_static(&[0xaf])).is_err());
    }

    #[test]
    fn truncated_never_panics() {
        let body = Bytes::from_static(&[0x17, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x65]);
        for i in 0..body.len() {
            let _ = parse_video(&body.slice(..i));
        }
    }
}
