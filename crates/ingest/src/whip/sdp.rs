//! What a WHIP offer must contain before a peer connection is built for it (sans-IO): a
//! session description (RFC 8866) of at most [`MAX_OFFER`] bytes with at most one audio and one
//! video section (RFC 9725 §4.2), audio offering Opus at 48 kHz and video offering H.264 in
//! packetization mode 1. Anything else gets its clear refusal here; the WebRTC stack then
//! negotiates the details.

use thiserror::Error;

/// The largest offer accepted (browsers send 3–8 KB).
pub const MAX_OFFER: usize = 64 * 1024;

/// What the offer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// An H.264 (packetization mode 1) video section.
    pub video: bool,
    /// An Opus audio section.
    pub audio: bool,
}

/// Why an offer is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SdpError {
    /// Larger than [`MAX_OFFER`].
    #[error("offer larger than {MAX_OFFER} bytes")]
    TooLarge,
    /// Not a session description.
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
    /// No audio or video to publish.
    #[error("the offer has no audio or video section")]
    NoMedia,
    /// More than one section of a kind, or a data channel.
    #[error("the offer has {0}: WHIP takes one audio and one video track")]
    Unsupported(&'static str),
    /// A section without a codec this server takes.
    #[error("no supported {0} codec offered (this server takes {1})")]
    Codec(&'static str, &'static str),
}

#[derive(Default)]
struct Section {
    kind: Option<&'static str>,
    disabled: bool,
    /// Payload types with a usable codec so far.
    ok: Vec<u8>,
    /// H.264 payload types (waiting for their fmtp).
    h264: Vec<u8>,
    /// H.264 payload types whose fmtp says packetization-mode=1.
    mode1: Vec<u8>,
}

impl Section {
    fn usable(&self) -> bool {
        match self.kind {
            Some("video") => self.h264.iter().any(|pt| self.mode1.contains(pt)),
            _ => !self.ok.is_empty(),
        }
    }
}

/// Checks an offer body.
pub fn check_offer(body: &[u8]) -> Result<Offer, SdpError> {
    if body.len() > MAX_OFFER {
        return Err(SdpError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8"))?;
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.next() != Some("v=0") {
        return Err(SdpError::Malformed("it does not start with v=0"));
    }
    let mut sections: Vec<Section> = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .filter(|(k, _)| k.len() == 1)
            .ok_or(SdpError::Malformed("a line is not <type>=<value>"))?;
        match key {
            "m" => {
                let mut f = value.split(' ');
                let kind = match f.next() {
                    Some("audio") => "audio",
                    Some("video") => "video",
                    Some("application") => return Err(SdpError::Unsupported("a data channel")),
                    _ => return Err(SdpError::Unsupported("a media section of another kind")),
                };
                let port = f.next().ok_or(SdpError::Malformed("m= without a port"))?;
                sections.push(Section {
                    kind: Some(kind),
                    disabled: port == "0",
                    ..Section::default()
                });
            }
            "a" => {
                let Some(s) = sections.last_mut() else {
                    continue; // session-level attribute
                };
                if let Some(v) = value.strip_prefix("rtpmap:") {
                    let (pt, codec) = v
                        .split_once(' ')
                        .ok_or(SdpError::Malformed("rtpmap without an encoding"))?;
                    let pt: u8 = pt
                        .parse()
                        .map_err(|_| SdpError::Malformed("rtpmap payload type"))?;
                    let codec = codec.to_ascii_lowercase();
                    match s.kind {
                        Some("audio") if codec.starts_with("opus/48000") => s.ok.push(pt),
                        Some("video") if codec == "h264/90000" => s.h264.push(pt),
                        _ => {}
                    }
                } else if let Some(v) = value.strip_prefix("fmtp:") {
                    let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
                    let Ok(pt) = pt.parse::<u8>() else {
                        return Err(SdpError::Malformed("fmtp payload type"));
                    };
                    let mode1 = params
                        .split(';')
                        .any(|p| p.trim().eq_ignore_ascii_case("packetization-mode=1"));
                    if mode1 {
                        s.mode1.push(pt);
                    }
                }
            }
            _ => {}
        }
        if sections.len() > 8 {
            return Err(SdpError::Unsupported("more than two media sections"));
        }
    }
    let mut offer = Offer {
        video: false,
        audio: false,
    };
    for s in sections.iter().filter(|s| !s.disabled) {
        let (seen, codec, wanted) = match s.kind {
            Some("video") => (&mut offer.video, "video", "H.264 with packetization-mode=1"),
            _ => (&mut offer.audio, "audio", "Opus at 48 kHz"),
        };
        if *seen {
            return Err(SdpError::Unsupported(if codec == "video" {
                "two video sections"
            } else {
                "two audio sections"
            }));
        }
        if !s.usable() {
            return Err(SdpError::Codec(codec, wanted));
        }
        *seen = true;
    }
    if !offer.video && !offer.audio {
        return Err(SdpError::NoMedia);
    }
    Ok(offer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a browser's offer (trimmed).
    pub(crate) const BROWSER_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102 103\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n";

    #[test]
    fn a_browser_offer_passes() {
        let o = check_offer(BROWSER_OFFER.as_bytes()).unwrap();
        assert_eq!(
            o,
            Offer {
                video: true,
                audio: true
            }
        );
        // audio only, LF line ends
        let audio_only = BROWSER_OFFER
            .split("m=video")
            .next()
            .unwrap()
            .replace("\r\n", "\n");
        assert_eq!(
            check_offer(audio_only.as_bytes()).unwrap(),
            Offer {
                video: false,
                audio: true
            }
        );
    }

    #[test]
    fn refusals_say_why() {
        let no_mode1 = BROWSER_OFFER.replace("packetization-mode=1", "packetization-mode=0");
        assert_eq!(
            check_offer(no_mode1.as_bytes()),
            Err(SdpError::Codec("video", "H.264 with packetization-mode=1"))
        );
        let vp8_only = BROWSER_OFFER.replace("H264", "VP9");
        assert!(matches!(
            check_offer(vp8_only.as_bytes()),
            Err(SdpError::Codec("video", _))
        ));
        let no_opus = BROWSER_OFFER.replace("opus/48000/2", "PCMU/8000");
        assert!(matches!(
            check_offer(no_opus.as_bytes()),
            Err(SdpError::Codec("audio", _))
        ));
        let two_video = format!(
            "{BROWSER_OFFER}{}",
            &BROWSER_OFFER[BROWSER_OFFER.find("m=video").unwrap()..]
        );
        assert_eq!(
            check_offer(two_video.as_bytes()),
            Err(SdpError::Unsupported("two video sections"))
        );
        let data = format!("{BROWSER_OFFER}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
        assert_eq!(
            check_offer(data.as_bytes()),
            Err(SdpError::Unsupported("a data channel"))
        );
        assert_eq!(check_offer(b"v=0\r\ns=-\r\n"), Err(SdpError::NoMedia));
        assert!(matches!(check_offer(b"hello"), Err(SdpError::Malformed(_))));
        assert!(matches!(
            check_offer(b"v=0\r\nm\r\n"),
            Err(SdpError::Malformed(_))
        ));
        assert!(matches!(
            check_offer(&[b'v', b'=', b'0', b'\n', 0xff]),
            Err(SdpError::Malformed(_))
        ));
        assert_eq!(
            check_offer(&vec![b'a'; MAX_OFFER + 1]),
            Err(SdpError::TooLarge)
        );
        // a disabled section does not count
        let disabled = BROWSER_OFFER
            .replace("m=video 9", "m=video 0")
            .replace("H264", "VP9");
        assert_eq!(
            check_offer(disabled.as_bytes()).unwrap(),
            Offer {
                video: false,
                audio: true
            }
        );
    }
}
