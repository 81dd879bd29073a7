//! Reading and writing the data representations of MQTT §1.5: two-byte and four-byte
//! integers, variable byte integers, UTF-8 strings and binary data.
//!
//! [`Reader`] is a bounds-checked cursor over one packet's bytes; it never panics and
//! hands out zero-copy [`Bytes`] slices of the packet.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::ErrorKind;
use crate::string::ByteStr;

/// The largest value a variable byte integer can hold (four bytes of seven bits).
pub const VARINT_MAX: u32 = 268_435_455;

/// A cursor over `buf[pos..end]`, owning the packet's bytes so that the last field (a
/// PUBLISH payload) can be handed out without touching the reference count.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
    end: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        let end = buf.len();
        Reader { buf, pos: 0, end }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub(crate) fn has_remaining(&self) -> bool {
        self.pos < self.end
    }

    fn take(&mut self, n: usize) -> Result<core::ops::Range<usize>, ErrorKind> {
        if self.remaining() < n {
            return Err(ErrorKind::Truncated);
        }
        let start = self.pos;
        self.pos += n;
        Ok(start..self.pos)
    }

    /// Runs `read` on the next `n` bytes only (a length-prefixed group such as the
    /// properties), then skips past them: reading beyond them is [`ErrorKind::Truncated`].
    pub(crate) fn limited<T>(
        &mut self,
        n: usize,
        read: impl FnOnce(&mut Reader) -> Result<T, ErrorKind>,
    ) -> Result<T, ErrorKind> {
        if self.remaining() < n {
            return Err(ErrorKind::Truncated);
        }
        let outer_end = self.end;
        self.end = self.pos + n;
        let result = read(self);
        self.pos = self.end;
        self.end = outer_end;
        result
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

    /// A topic filter: a UTF-8 Encoded String with valid wildcards and share syntax.
    pub(crate) fn topic_filter(&mut self) -> Result<crate::TopicFilter, ErrorKind> {
        let bytes = self.binary()?;
        let has_wildcard = crate::string::check_wire(&bytes, false)?;
        crate::TopicFilter::from_wire(ByteStr::from_checked(bytes), has_wildcard)
    }

    /// A topic name: a UTF-8 Encoded String without wildcards (possibly empty).
    pub(crate) fn topic_name(&mut self) -> Result<crate::TopicName, ErrorKind> {
        crate::TopicName::from_wire(self.binary()?)
    }

    /// Everything left: the packet's own bytes, advanced past what was read.
    pub(crate) fn rest(&mut self) -> Bytes {
        let mut rest = core::mem::take(&mut self.buf);
        rest.truncate(self.end);
        rest.advance(self.pos);
        self.pos = 0;
        self.end = 0;
        rest
    }
}

/// The number of bytes `value` takes as a variable byte integer.
#[inline]
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value` (at most [`VARINT_MAX`], which callers check) as a variable byte integer.
#[inline]
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
#[inline]
pub(crate) fn put_binary(dst: &mut BytesMut, data: &[u8]) {
    #[allow(clippy::cast_possible_truncation)]
    dst.put_u16(data.len() as u16);
    dst.put_slice(data);
}

/// The encoded length of Binary Data or a UTF-8 string of `n` bytes.
#[inline]
pub(crate) fn binary_len(n: usize) -> usize {
    2 + n
}
