//! gzip (RFC 1952) of small text bodies with a per-thread, reused deflate state: creating a
//! fresh compressor per playlist zeroes a few hundred KiB each time, which dominated the CPU
//! profile of many streams.

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::cell::RefCell;

thread_local! {
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
}

/// gzips `data`.
pub fn gzip(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    // header: magic, CM=deflate, no flags, no mtime, XFL=0, OS=unknown
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    DEFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset();
        let start_in = d.total_in();
        loop {
            let consumed = (d.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(data.len() / 2 + 64);
            }
            match d.compress_vec(&data[consumed..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    });
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn round_trips_and_reuses_state() {
        for text in [
            "",
            "#EXTM3U\n",
            &"#EXT-X-PART:DURATION=0.20000\n".repeat(500),
        ] {
            for _ in 0..2 {
                let z = gzip(text.as_bytes());
                let mut s = String::new();
                flate2::read::GzDecoder::new(&z[..])
                    .read_to_string(&mut s)
                    .unwrap();
                assert_eq!(s, text);
            }
        }
    }
}
