//! Errors of the media parsers.

/// A media parsing error. Every variant says which structure was malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The input ended before the structure was complete.
    #[error("{what}: truncated (need {need} bytes, have {have})")]
    Truncated {
        /// The structure being parsed.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A field had a value the spec does not allow.
    #[error("{what}: invalid {field} ({value})")]
    Invalid {
        /// The structure being parsed.
        what: &'static str,
        /// The offending field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A codec or packet type we do not handle.
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// What kind of thing is unsupported (codec, packet type).
        what: &'static str,
        /// Human-readable detail (codec id, FourCC).
        detail: String,
    },
}

pub(crate) fn need(what: &'static str, data: &[u8], n: usize) -> Result<(), MediaError> {
    if data.len() < n {
        Err(MediaError::Truncated {
            what,
            need: n,
            have: data.len(),
        })
    } else {
        Ok(())
    }
}
