//! AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1): the body of the RTMP/FLV AAC sequence
//! header and the DecoderSpecificInfo inside `esds`.

use crate::error::need;
use crate::MediaError;
use bytes::Bytes;

/// Samples per AAC frame (AAC-LC and the core of HE-AAC).
pub const SAMPLES_PER_FRAME: u32 = 1024;

const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// A parsed AudioSpecificConfig. `asc` keeps the original bytes, written verbatim into `esds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// The AudioSpecificConfig as received.
    pub asc: Bytes,
    /// audioObjectType (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS).
    pub object_type: u8,
    /// Sampling frequency of the core coder in Hz; the track timescale.
    pub sample_rate: u32,
    /// channelConfiguration (1 = mono, 2 = stereo, …).
    pub channels: u8,
}

impl AacConfig {
    /// Parses an AudioSpecificConfig.
    pub fn parse(asc: Bytes) -> Result<Self, MediaError> {
        const WHAT: &str = "AudioSpecificConfig";
        need(WHAT, &asc, 2)?;
        let mut bits = u64::from_be_bytes({
            let mut b = [0u8; 8];
            let n = asc.len().min(8);
            b[..n].copy_from_slice(&asc[..n]);
            b
        });
        let mut take = |n: u32| {
            let v = (bits >> (64 - n)) as u32;
            bits <<= n;
            v
        };
        let mut object_type = take(5);
        if object_type == 31 {
            object_type = 32 + take(6);
        }
        let freq_index = take(4);
        let sample_rate = if freq_index == 15 {
            need(WHAT, &asc, 5)?;
            take(24)
        } else {
            *SAMPLE_RATES
                .get(freq_index as usize)
                .ok_or(MediaError::Invalid {
                    what: WHAT,
                    field: "samplingFrequencyIndex",
                    value: u64::from(freq_index),
                })?
        };
        let channels = take(4);
        if object_type == 0 || sample_rate == 0 || sample_rate > 192_000 {
            return Err(MediaError::Invalid {
                what: WHAT,
                field: "audioObjectType/samplingFrequency",
                value: u64::from(object_type),
            });
        }
        if channels == 0 || channels > 7 {
            return Err(MediaError::Unsupported {
                what: "AAC channel configuration",
                detail: channels.to_string(),
            });
        }
        Ok(AacConfig {
            asc,
            object_type: object_type as u8,
            sample_rate,
            channels: channels as u8,
        })
    }

    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_48k_stereo() {
        let c = AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 48_000, 2));
        assert_eq!(c.codec_string(), "mp4a.40.2");
        let c = AacConfig::parse(Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 44_100, 2));
    }

    #[test]
    fn rejects_bad() {
        assert!(AacConfig::parse(Bytes::from_static(&[0x11])).is_err());
        assert!(AacConfig::parse(Bytes::from_static(&[0x17, 0x90])).is_err()); // index 14
        assert!(AacConfig::parse(Bytes::from_static(&[0x11, 0x80])).is_err()); // 0 channels
        assert!(AacConfig::parse(Bytes::from_static(&[0x17, 0x80])).is_err()); // explicit, short
    }
}
