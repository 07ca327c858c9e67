//! Opus (RFC 6716) as WebRTC delivers it (RFC 7587): one Opus packet per RTP packet, a 48 kHz
//! clock whatever the encoder's internal rate, no OpusHead in band. What the packager needs:
//! the `dOps` box of the Opus-in-ISOBMFF mapping (its §4.3.2), synthesized from the channel
//! count, and each packet's duration, read from its TOC byte (RFC 6716 §3.1).

use crate::MediaError;
use bytes::{BufMut, Bytes, BytesMut};

/// Opus timestamps are always in 48 kHz ticks (RFC 7587 §4.1), the track's timescale.
pub const OPUS_TIMESCALE: u32 = 48_000;

/// The longest packet RFC 6716 allows: 120 ms.
const MAX_PACKET_TICKS: u32 = 120 * 48;

/// The decoder configuration of an Opus track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusConfig {
    /// Output channels (1 or 2: mapping family 0).
    pub channels: u8,
    /// Samples (at 48 kHz) to drop from the start of the decoded stream. WebRTC carries no
    /// OpusHead: 0 keeps every track timestamp as the sender stamped it.
    pub pre_skip: u16,
    /// The sender's input sample rate, informative only (48 kHz for WebRTC).
    pub input_sample_rate: u32,
}

impl OpusConfig {
    /// The configuration of a WebRTC Opus stream with `channels` channels (SDP `opus/48000/2`
    /// and the `stereo` parameter say how many).
    pub fn webrtc(channels: u8) -> Result<Self, MediaError> {
        if !(1..=2).contains(&channels) {
            return Err(MediaError::Invalid {
                what: "Opus",
                field: "channel count",
                value: u64::from(channels),
            });
        }
        Ok(Self {
            channels,
            pre_skip: 0,
            input_sample_rate: OPUS_TIMESCALE,
        })
    }

    /// RFC 6381 codec string, as HLS `CODECS` lists it.
    pub fn codec_string(&self) -> String {
        "opus".to_string()
    }

    /// The body of the `dOps` box (OpusSpecificBox, big-endian unlike OpusHead): version 0,
    /// channels, pre-skip, input rate, gain 0, channel mapping family 0.
    pub fn dops(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(11);
        b.put_u8(0); // Version
        b.put_u8(self.channels); // OutputChannelCount
        b.put_u16(self.pre_skip); // PreSkip
        b.put_u32(self.input_sample_rate); // InputSampleRate
        b.put_i16(0); // OutputGain
        b.put_u8(0); // ChannelMappingFamily: mono or stereo, no mapping table
        b.freeze()
    }
}

/// The duration of one Opus packet in 48 kHz ticks, from its TOC byte and, for code 3
/// packets, its frame count byte (RFC 6716 §3.1, §3.2.5). Refuses an empty packet, a code 3
/// packet without its count byte or with no frames, and packets longer than 120 ms.
pub fn packet_duration(packet: &[u8]) -> Result<u32, MediaError> {
    let toc = *packet.first().ok_or(MediaError::Truncated {
        what: "Opus packet",
        need: 1,
        have: 0,
    })?;
    let config = toc >> 3;
    // frame size in 48 kHz ticks, by configuration number (RFC 6716 Table 2)
    let frame: u32 = match config {
        // SILK-only: 10, 20, 40, 60 ms
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = *packet.get(1).ok_or(MediaError::Truncated {
                what: "Opus packet",
                need: 2,
                have: 1,
            })?;
            u32::from(count & 0x3f)
        }
    };
    let ticks = frame * frames;
    if frames == 0 || ticks > MAX_PACKET_TICKS {
        return Err(MediaError::Invalid {
            what: "Opus packet",
            field: "duration (ticks at 48 kHz)",
            value: u64::from(ticks),
        });
    }
    Ok(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_the_toc() {
        // what browsers send: CELT or hybrid 20 ms frames, one per packet
        assert_eq!(packet_duration(&[(31 << 3), 0xaa]), Ok(960)); // CELT FB 20 ms
        assert_eq!(packet_duration(&[(13 << 3)]), Ok(960)); // hybrid FB 20 ms
        assert_eq!(packet_duration(&[(16 << 3)]), Ok(120)); // CELT 2.5 ms
        assert_eq!(packet_duration(&[(3 << 3)]), Ok(2880)); // SILK NB 60 ms
        assert_eq!(packet_duration(&[(1 << 3) | 1]), Ok(1920)); // 2 × 20 ms, equal sizes
        assert_eq!(packet_duration(&[(1 << 3) | 2, 5]), Ok(1920)); // 2 × 20 ms, sizes differ
        assert_eq!(packet_duration(&[(31 << 3) | 3, 0x83]), Ok(2880)); // 3 × 20 ms, VBR flag
        assert_eq!(packet_duration(&[(3 << 3) | 3, 2]), Ok(5760)); // 2 × 60 ms = 120 ms
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert!(matches!(
            packet_duration(&[]),
            Err(MediaError::Truncated { .. })
        ));
        assert!(matches!(
            packet_duration(&[(31 << 3) | 3]),
            Err(MediaError::Truncated { .. })
        ));
        // no frames; 3 × 60 ms = 180 ms > 120 ms
        assert!(packet_duration(&[(31 << 3) | 3, 0]).is_err());
        assert!(packet_duration(&[(3 << 3) | 3, 3]).is_err());
        // every byte value as a TOC, with every count byte: never a panic
        for toc in 0..=255u8 {
            for count in 0..=255u8 {
                let _ = packet_duration(&[toc, count]);
            }
        }
    }

    #[test]
    fn dops_layout() {
        let c = OpusConfig::webrtc(2).unwrap();
        assert_eq!(&c.dops()[..], &[0, 2, 0, 0, 0, 0, 0xbb, 0x80, 0, 0, 0]);
        assert_eq!(c.codec_string(), "opus");
        assert!(OpusConfig::webrtc(0).is_err());
        assert!(OpusConfig::webrtc(3).is_err());
    }
}
