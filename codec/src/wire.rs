//! Reading and writing the data representations of MQTT §1.5: two-byte and four-byte
//! integers, variable byte integers, UTF-8 strings and binary data.
//!
//! [`Reader`] is a bounds-checked cursor over one packet's bytes; it never panics and
//! hands out zero-copy [`Bytes`] slices of the packet.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ErrorKind;
use crate::string::ByteStr;

/// The largest value a variable byte integer can hold (four bytes of seven bits).
pub const VARINT_MAX: u32 = 268_435_455;

/// A cursor over `buf[pos..end]`.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub(crate) fn has_remaining(&self) -> bool {
        self.pos < self.end
    }

    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, ErrorKind> {
        if self.remaining() < n {
            return Err(ErrorKind::Truncated);
        }
        let start = self.pos;
        self.pos += n;
        Ok(start..self.pos)
    }

    /// A reader over the next `n` bytes, which this reader skips.
    pub(crate) fn sub(&mut self, n: usize) -> Result<Reader<'a>, ErrorKind> {
        let range = self.take(n)?;
        Ok(Reader {
            buf: self.buf,
            pos: range.start,
            end: range.end,
        })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ErrorKind> {
        let range = self.take(N)?;
        self.buf
            .get(range)
            .and_then(|b| b.try_into().ok())
            .ok_or(ErrorKind::Truncated)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ErrorKind> {
        self.array().map(u8::from_be_bytes)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ErrorKind> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ErrorKind> {
        self.array().map(u32::from_be_bytes)
    }

    /// A variable byte integer (§1.5.5): at most four bytes.
    pub(crate) fn varint(&mut self) -> Result<u32, ErrorKind> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ErrorKind::MalformedVarInt)
    }

    /// The next `n` bytes as a zero-copy slice of the packet.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, ErrorKind> {
        let range = self.take(n)?;
        Ok(self.buf.slice(range))
    }

    /// Binary Data (§1.5.6): a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, ErrorKind> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    /// A UTF-8 Encoded String (§1.5.4), validated.
    pub(crate) fn string(&mut self) -> Result<ByteStr, ErrorKind> {
        ByteStr::from_wire(self.binary()?)
    }

    /// Everything left, as a zero-copy slice.
    pub(crate) fn rest(&mut self) -> Bytes {
        let range = self.pos..self.end;
        self.pos = self.end;
        self.buf.slice(range)
    }
}

/// The number of bytes `value` takes as a variable byte integer.
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value` (at most [`VARINT_MAX`], which callers check) as a variable byte integer.
pub(crate) fn put_varint(dst: &mut BytesMut, value: usize) {
    let mut value = value;
    loop {
        // Truncation is the point: the low seven bits go out first.
        #[allow(clippy::cast_possible_truncation)]
        let mut byte = (value & 0x7f) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        dst.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// Writes Binary Data: a two-byte length (callers guarantee at most 65,535 bytes), then the bytes.
pub(crate) fn put_binary(dst: &mut BytesMut, data: &[u8]) {
    #[allow(clippy::cast_possible_truncation)]
    dst.put_u16(data.len() as u16);
    dst.put_slice(data);
}

/// The encoded length of Binary Data or a UTF-8 string of `n` bytes.
pub(crate) fn binary_len(n: usize) -> usize {
    2 + n
}
