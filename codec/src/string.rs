//! [`ByteStr`]: an MQTT UTF-8 Encoded String (§1.5.4) that shares the packet's buffer.

use alloc::string::String;
use core::borrow::Borrow;
use core::fmt;
use core::ops::Deref;

use bytes::Bytes;

use crate::error::ErrorKind;

/// The most bytes a UTF-8 Encoded String or Binary Data field can hold.
pub const MAX_STRING_LEN: usize = 65_535;

/// An immutable, cheaply cloned string that is valid as an MQTT UTF-8 Encoded String:
/// well-formed UTF-8 (so no surrogates), no U+0000, at most 65,535 bytes.
///
/// Decoded strings are slices of the packet's buffer, never fresh allocations.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteStr(Bytes);

/// Why a string is not a valid MQTT UTF-8 Encoded String.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StringError {
    /// Longer than 65,535 bytes.
    #[error("string is {0} bytes long, more than the 65,535 MQTT allows")]
    TooLong(usize),
    /// Contains U+0000, which MQTT forbids in strings.
    #[error("string contains the null character U+0000")]
    NullCharacter,
}

impl ByteStr {
    /// A string from a static, checked once here.
    ///
    /// # Panics
    /// If `s` is not a valid MQTT string (a programming error in a literal).
    #[allow(clippy::panic, clippy::indexing_slicing)]
    pub const fn from_static(s: &'static str) -> Self {
        if s.len() > MAX_STRING_LEN {
            panic!("MQTT strings are at most 65,535 bytes");
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == 0 {
                panic!("MQTT strings must not contain U+0000");
            }
            i += 1;
        }
        ByteStr(Bytes::from_static(bytes))
    }

    /// A string from raw bytes received on the wire.
    pub(crate) fn from_wire(bytes: Bytes) -> Result<Self, ErrorKind> {
        check_wire(&bytes, false)?;
        Ok(ByteStr(bytes))
    }

    /// Wraps bytes that [`check_wire`] accepted.
    pub(crate) fn from_checked(bytes: Bytes) -> Self {
        ByteStr(bytes)
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // Every constructor checked the bytes are UTF-8; re-checking on every access would
        // cost a scan, so this is the one place that relies on it.
        #[allow(unsafe_code)]
        // SAFETY: `ByteStr` is only built from `&str`, `String`, or bytes that passed
        // `core::str::from_utf8` (see `check_wire`), and is immutable.
        unsafe {
            core::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The underlying shared bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The underlying shared bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    fn check(s: &str) -> Result<(), StringError> {
        if s.len() > MAX_STRING_LEN {
            return Err(StringError::TooLong(s.len()));
        }
        if has_nul(s.as_bytes()) {
            return Err(StringError::NullCharacter);
        }
        Ok(())
    }
}

/// Checks received string bytes: well-formed UTF-8 [MQTT-1.5.4-1], no U+0000
/// [MQTT-1.5.4-2] and, for a topic name, no wildcard. Topics are checked on every PUBLISH, so
/// this is two vectorised scans: ASCII (the common case, then valid UTF-8 as it is), and one
/// search for the first NUL, `+` or `#`.
///
/// Returns whether the bytes contain `+` or `#`, which a topic filter then checks the
/// placement of.
pub(crate) fn check_wire(bytes: &[u8], topic_name: bool) -> Result<bool, ErrorKind> {
    if !is_utf8(bytes) {
        return Err(ErrorKind::InvalidUtf8);
    }
    let Some(first) = find_nul_or_wildcard(bytes) else {
        return Ok(false);
    };
    let rest = bytes.get(first..).unwrap_or_default();
    if has_nul(rest) {
        return Err(ErrorKind::NullCharacter);
    }
    if topic_name {
        return Err(ErrorKind::InvalidTopicName(
            crate::TopicError::WildcardInName,
        ));
    }
    Ok(true)
}

/// Whether the bytes are UTF-8: an ASCII scan first (the common case), then the full
/// check; with the feature `small` (the browser client) the full check alone, which has an
/// ASCII fast path of its own, so that only one of the two is in the `.wasm`.
#[cfg(not(feature = "small"))]
#[inline(always)]
fn is_utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || core::str::from_utf8(bytes).is_ok()
}

#[cfg(feature = "small")]
fn is_utf8(bytes: &[u8]) -> bool {
    core::str::from_utf8(bytes).is_ok()
}

/// The first NUL, `+` or `#`: memchr's vectorised search, or with the feature `small` (the
/// browser client) a plain loop, a kilobyte less code.
#[cfg(not(feature = "small"))]
fn find_nul_or_wildcard(bytes: &[u8]) -> Option<usize> {
    memchr::memchr3(0, b'+', b'#', bytes)
}

#[cfg(feature = "small")]
fn find_nul_or_wildcard(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| matches!(b, 0 | b'+' | b'#'))
}

/// Whether there is a NUL: `contains` (memchr's search), or with `small` a plain loop.
#[cfg(not(feature = "small"))]
fn has_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
}

#[cfg(feature = "small")]
#[allow(clippy::manual_contains)] // `contains` is the memchr search this avoids
fn has_nul(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == 0)
}

impl TryFrom<&str> for ByteStr {
    type Error = StringError;

    fn try_from(s: &str) -> Result<Self, StringError> {
        Self::check(s)?;
        Ok(ByteStr(Bytes::copy_from_slice(s.as_bytes())))
    }
}

impl TryFrom<String> for ByteStr {
    type Error = StringError;

    fn try_from(s: String) -> Result<Self, StringError> {
        Self::check(&s)?;
        Ok(ByteStr(Bytes::from(s)))
    }
}

impl Deref for ByteStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ByteStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What `check_wire` must say, written the obvious way.
    fn reference(bytes: &[u8], topic_name: bool) -> Result<bool, ErrorKind> {
        if std::str::from_utf8(bytes).is_err() {
            return Err(ErrorKind::InvalidUtf8);
        }
        if bytes.contains(&0) {
            return Err(ErrorKind::NullCharacter);
        }
        let wildcard = bytes.iter().any(|&b| b == b'+' || b == b'#');
        if topic_name && wildcard {
            return Err(ErrorKind::InvalidTopicName(
                crate::TopicError::WildcardInName,
            ));
        }
        Ok(wildcard)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        #[test]
        fn word_at_a_time_check_agrees_with_the_reference(
            bytes in prop::collection::vec(prop_oneof![
                8 => b'a'..=b'z',
                1 => Just(0u8),
                1 => Just(b'+'),
                1 => Just(b'#'),
                1 => any::<u8>(),
            ], 0..40),
            topic_name: bool,
        ) {
            prop_assert_eq!(check_wire(&bytes, topic_name), reference(&bytes, topic_name));
        }
    }

    #[test]
    fn rejects_null_and_overlong() {
        assert_eq!(ByteStr::try_from("a\0b"), Err(StringError::NullCharacter));
        let long = "x".repeat(MAX_STRING_LEN + 1);
        assert_eq!(
            ByteStr::try_from(long.as_str()),
            Err(StringError::TooLong(65_536))
        );
        assert!(ByteStr::try_from("x".repeat(MAX_STRING_LEN)).is_ok());
    }

    #[test]
    fn wire_rejects_ill_formed_utf8_and_surrogates() {
        // 0xED 0xA0 0x80 is U+D800, a surrogate, which well-formed UTF-8 excludes.
        for bad in [&b"\xff"[..], b"\xed\xa0\x80", b"\xc3"] {
            assert_eq!(
                ByteStr::from_wire(Bytes::from_static(bad)),
                Err(ErrorKind::InvalidUtf8)
            );
        }
        assert_eq!(
            ByteStr::from_wire(Bytes::from_static(b"a\0")),
            Err(ErrorKind::NullCharacter)
        );
        assert_eq!(
            ByteStr::from_wire(Bytes::from_static("é✓".as_bytes())).unwrap(),
            "é✓"
        );
    }
}
