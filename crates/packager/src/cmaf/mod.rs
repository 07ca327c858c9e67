//! CMAF / fragmented MP4 writing (ISO/IEC 14496-12, ISO/IEC 23000-19, RFC 8216bis §3.1.2).
//!
//! - [`writer`]: a back-patching box writer shared by init and fragment code.
//! - [`init`]: the initialization segment of one track (`ftyp` + `moov`).
//! - [`fragment`]: the `moof` + `mdat` header of one CMAF chunk (= one LL-HLS part). Sample
//!   payloads are never written into it: a part is its header followed by the samples' `Bytes`.

pub mod fragment;
pub mod init;
pub mod writer;

pub use fragment::{fragment_header, FragmentSample};
pub use init::{init_segment, AudioConfig, TrackConfig};
