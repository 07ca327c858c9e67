//! A minimal ISO BMFF box writer: `write_box` reserves the 32-bit size, runs the body closure
//! and patches the size in, so the call tree mirrors the box tree.

use bytes::{BufMut, BytesMut};

/// Writes a box with the given FourCC; the body is written by `body`.
pub fn write_box(buf: &mut BytesMut, fourcc: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_slice(fourcc);
    body(buf);
    patch_size(buf, start);
}

/// Writes a full box (version + 24-bit flags, 14496-12 §4.2).
pub fn write_full_box(
    buf: &mut BytesMut,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    write_box(buf, fourcc, |b| {
        b.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(b);
    });
}

fn patch_size(buf: &mut BytesMut, start: usize) {
    let size = u32::try_from(buf.len() - start).unwrap_or(u32::MAX);
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sizes_are_patched() {
        let mut b = BytesMut::new();
        write_box(&mut b, b"moof", |b| {
            write_full_box(b, b"mfhd", 0, 0, |b| b.put_u32(7));
        });
        assert_eq!(
            &b[..],
            &[
                0, 0, 0, 24, b'm', b'o', b'o', b'f', 0, 0, 0, 16, b'm', b'f', b'h', b'd', 0, 0, 0,
                0, 0, 0, 0, 7
            ]
        );
    }
}
