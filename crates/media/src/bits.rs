//! A bit reader for H.264 RBSP (exp-Golomb codes, ITU-T H.264 §9.1).

use crate::MediaError;

/// Reads bits MSB-first from an RBSP (emulation-prevention bytes already removed).
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    fn eof(&self) -> MediaError {
        MediaError::Truncated {
            what: self.what,
            need: self.pos / 8 + 1,
            have: self.data.len(),
        }
    }

    pub(crate) fn bit(&mut self) -> Result<u32, MediaError> {
        let byte = *self.data.get(self.pos / 8).ok_or_else(|| self.eof())?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, MediaError> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), MediaError> {
        if self.pos + n > self.data.len() * 8 {
            return Err(self.eof());
        }
        self.pos += n;
        Ok(())
    }

    /// ue(v): unsigned exp-Golomb.
    pub(crate) fn ue(&mut self) -> Result<u32, MediaError> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(MediaError::Invalid {
                    what: self.what,
                    field: "exp-golomb prefix",
                    value: u64::from(zeros),
                });
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// se(v): signed exp-Golomb.
    pub(crate) fn se(&mut self) -> Result<i32, MediaError> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

/// Removes emulation-prevention bytes (0x00 0x00 0x03 → 0x00 0x00), H.264 §7.4.1.
pub(crate) fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 → ue: 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "t");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert_eq!(r.ue().unwrap(), 4);
        assert!(r.ue().is_err());
        let data = [0b0100_1100]; // se: +1, -1
        let mut r = BitReader::new(&data, "t");
        assert_eq!(r.se().unwrap(), 1);
        assert_eq!(r.se().unwrap(), -1);
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
