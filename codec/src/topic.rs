//! Topic names and topic filters (§4.7), validated once when built, and matching.
//!
//! A [`TopicName`] is where a message is published: no wildcards. A [`TopicFilter`] is what a
//! subscription asks for: `+` stands for one whole level, `#` for any number of levels at the
//! end, and `$share/{group}/{filter}` makes a shared subscription (§4.8.2).

use alloc::string::String;
use core::fmt;

use bytes::Bytes;

use crate::error::ErrorKind;
use crate::packet::ProtocolVersion;
use crate::string::{ByteStr, MAX_STRING_LEN};

const SHARE_PREFIX: &str = "$share/";

/// Why a string is not a valid topic name or filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Empty: topic names and filters are at least one character long.
    #[error("it is empty")]
    Empty,
    /// Longer than 65,535 bytes.
    #[error("it is longer than 65,535 bytes")]
    TooLong,
    /// Contains U+0000.
    #[error("it contains U+0000")]
    NullCharacter,
    /// A topic name contains `+` or `#`.
    #[error("a topic name contains a wildcard")]
    WildcardInName,
    /// `#` is not alone in the last level.
    #[error("'#' is not the whole last level")]
    MisplacedMultiLevelWildcard,
    /// `+` is not alone in its level.
    #[error("'+' is not a whole level")]
    MisplacedSingleLevelWildcard,
    /// The share name of `$share/{group}/{filter}` is empty or contains `+` or `#`.
    #[error("the share name of a shared subscription is empty or contains a wildcard")]
    InvalidShareName,
    /// `$share/{group}` has no filter after the group.
    #[error("a shared subscription has no topic filter after its share name")]
    SharedWithoutFilter,
}

impl TopicError {
    pub(crate) fn spec_ref(self, version: ProtocolVersion) -> Option<&'static str> {
        let v5 = version == ProtocolVersion::V5;
        match self {
            TopicError::Empty => Some("MQTT-4.7.3-1"),
            TopicError::TooLong => Some("MQTT-4.7.3-3"),
            TopicError::NullCharacter => Some("MQTT-4.7.3-2"),
            TopicError::WildcardInName => Some("MQTT-3.3.2-2"),
            TopicError::MisplacedMultiLevelWildcard => {
                Some(if v5 { "MQTT-4.7.1-1" } else { "MQTT-4.7.1-2" })
            }
            TopicError::MisplacedSingleLevelWildcard => {
                Some(if v5 { "MQTT-4.7.1-2" } else { "MQTT-4.7.1-3" })
            }
            TopicError::InvalidShareName | TopicError::SharedWithoutFilter => {
                v5.then_some("MQTT-4.8.2-2")
            }
        }
    }
}

fn check_string(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_STRING_LEN {
        return Err(TopicError::TooLong);
    }
    Ok(())
}

/// A topic name: where a PUBLISH goes. Non-empty, no `+` or `#`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(ByteStr);

impl TopicName {
    /// A topic name from a static string.
    ///
    /// # Panics
    /// If `s` is not a valid topic name (a programming error in a literal).
    #[allow(clippy::panic, clippy::indexing_slicing)]
    pub const fn from_static(s: &'static str) -> Self {
        let b = s.as_bytes();
        if b.is_empty() {
            panic!("topic names are not empty");
        }
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'+' || b[i] == b'#' {
                panic!("topic names contain no wildcard");
            }
            i += 1;
        }
        TopicName(ByteStr::from_static(s))
    }

    /// The empty topic name, which a v5 PUBLISH carries when a Topic Alias stands for its topic.
    pub fn empty_for_alias() -> Self {
        TopicName(ByteStr::default())
    }

    fn check(s: &str) -> Result<(), TopicError> {
        check_string(s)?;
        if s.bytes().any(|b| b == b'+' || b == b'#') {
            return Err(TopicError::WildcardInName);
        }
        Ok(())
    }

    /// Checks a topic name received in a packet. An empty name is accepted here: whether it
    /// is allowed depends on the Topic Alias, which the PUBLISH decoder checks.
    pub(crate) fn from_wire(bytes: Bytes) -> Result<Self, ErrorKind> {
        crate::string::check_wire(&bytes, true)?;
        Ok(TopicName(ByteStr::from_checked(bytes)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name as shared bytes.
    pub fn as_byte_str(&self) -> &ByteStr {
        &self.0
    }

    /// Whether this is the empty name of an aliased PUBLISH.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the name starts with `$` (a server topic such as `$SYS/...`, §4.7.2).
    pub fn is_dollar(&self) -> bool {
        self.0.starts_with('$')
    }

    /// The levels of the name, split at `/`.
    pub fn levels(&self) -> core::str::Split<'_, char> {
        self.as_str().split('/')
    }
}

impl TryFrom<&str> for TopicName {
    type Error = TopicError;

    fn try_from(s: &str) -> Result<Self, TopicError> {
        Self::check(s)?;
        ByteStr::try_from(s)
            .map(TopicName)
            .map_err(|_| TopicError::NullCharacter)
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicError;

    fn try_from(s: String) -> Result<Self, TopicError> {
        Self::check(&s)?;
        ByteStr::try_from(s)
            .map(TopicName)
            .map_err(|_| TopicError::NullCharacter)
    }
}

impl TryFrom<ByteStr> for TopicName {
    type Error = TopicError;

    fn try_from(s: ByteStr) -> Result<Self, TopicError> {
        Self::check(&s)?;
        Ok(TopicName(s))
    }
}

/// A topic filter: what a subscription matches. Plain, or shared (`$share/{group}/{filter}`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter {
    raw: ByteStr,
    /// For a shared subscription, where the filter starts in `raw` (after `$share/{group}/`).
    filter_start: u16,
}

impl TopicFilter {
    /// Validates `s` and records where a shared subscription's filter starts.
    fn parse(s: &str) -> Result<u16, TopicError> {
        check_string(s)?;
        let Some(rest) = s.strip_prefix(SHARE_PREFIX) else {
            check_filter(s)?;
            return Ok(0);
        };
        let (group, filter) = split_once_at_slash(rest).ok_or(TopicError::SharedWithoutFilter)?;
        if group.is_empty() || has_wildcard(group) {
            return Err(TopicError::InvalidShareName);
        }
        if filter.is_empty() {
            return Err(TopicError::SharedWithoutFilter);
        }
        check_filter(filter)?;
        // At most 65,535 bytes long, so the offset fits.
        u16::try_from(s.len() - filter.len()).map_err(|_| TopicError::TooLong)
    }

    /// Checks a filter received in a packet. `has_wildcard` is what the string check found,
    /// so a plain filter (the common case) is not scanned again.
    pub(crate) fn from_wire(s: ByteStr, has_wildcard: bool) -> Result<Self, ErrorKind> {
        let plain = !has_wildcard && !s.starts_with(SHARE_PREFIX);
        let filter_start = if plain && !s.is_empty() {
            0
        } else {
            Self::parse(&s).map_err(ErrorKind::InvalidTopicFilter)?
        };
        Ok(TopicFilter {
            raw: s,
            filter_start,
        })
    }

    /// The whole filter as sent, including any `$share/{group}/` prefix.
    pub fn as_str(&self) -> &str {
        self.raw.as_str()
    }

    /// The whole filter as shared bytes.
    pub fn as_byte_str(&self) -> &ByteStr {
        &self.raw
    }

    /// The filter that topics are matched against: without any `$share/{group}/` prefix.
    pub fn filter(&self) -> &str {
        self.as_str()
            .get(usize::from(self.filter_start)..)
            .unwrap_or_default()
    }

    /// The share name of a shared subscription.
    pub fn share_group(&self) -> Option<&str> {
        if self.filter_start == 0 {
            return None;
        }
        let end = usize::from(self.filter_start) - 1;
        self.as_str().get(SHARE_PREFIX.len()..end)
    }

    /// Whether this is a shared subscription.
    pub fn is_shared(&self) -> bool {
        self.filter_start != 0
    }

    /// Whether the filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        has_wildcard(self.filter())
    }

    /// Whether a message published to `topic` matches this filter (§4.7), ignoring any share.
    pub fn matches(&self, topic: &TopicName) -> bool {
        matches(self.filter(), topic.as_str())
    }
}

/// Checks wildcard placement in one pass over the bytes: `+` must be a whole level
/// [MQTT-4.7.1-2], `#` a whole level and the last one [MQTT-4.7.1-1].
fn check_filter(s: &str) -> Result<(), TopicError> {
    let bytes = s.as_bytes();
    let at = |i: Option<usize>| i.and_then(|i| bytes.get(i)).copied();
    for (i, &b) in bytes.iter().enumerate() {
        let starts_level = matches!(at(i.checked_sub(1)), None | Some(b'/'));
        let after = at(i.checked_add(1));
        match b {
            b'+' if !starts_level || !matches!(after, None | Some(b'/')) => {
                return Err(TopicError::MisplacedSingleLevelWildcard);
            }
            b'#' if !starts_level || after.is_some() => {
                return Err(TopicError::MisplacedMultiLevelWildcard);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the plain filter `filter` (no `$share/` prefix) matches the topic name `topic`.
///
/// Walks both level by level without allocating. A filter starting with a wildcard does not
/// match a topic starting with `$` [MQTT-4.7.2-1]; `a/#` matches `a` itself (§4.7.1.2).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && matches!(filter.as_bytes().first(), Some(b'+' | b'#')) {
        return false;
    }
    let mut filter_levels = levels(filter);
    let mut topic_levels = levels(topic);
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

// The searches for `/`, `+` and `#` below: `str`'s (memchr for a single character), or with
// the feature `small` (the browser client) plain loops over the bytes, which leave core's
// searchers out of the `.wasm`. The same results: in UTF-8 those bytes are only ever those
// characters.

/// The levels of a topic name or filter, as bytes.
#[cfg(not(feature = "small"))]
fn levels(s: &str) -> impl Iterator<Item = &[u8]> {
    s.split('/').map(str::as_bytes)
}

#[cfg(feature = "small")]
fn levels(s: &str) -> impl Iterator<Item = &[u8]> {
    s.as_bytes().split(|&b| b == b'/')
}

/// `s` split at its first `/`, which is in neither part.
#[cfg(not(feature = "small"))]
fn split_once_at_slash(s: &str) -> Option<(&str, &str)> {
    s.split_once('/')
}

#[cfg(feature = "small")]
fn split_once_at_slash(s: &str) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == b'/')?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

/// Whether `s` has a `+` or `#`.
#[cfg(not(feature = "small"))]
fn has_wildcard(s: &str) -> bool {
    s.contains(['+', '#'])
}

#[cfg(feature = "small")]
fn has_wildcard(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'+' | b'#'))
}

impl TryFrom<&str> for TopicFilter {
    type Error = TopicError;

    fn try_from(s: &str) -> Result<Self, TopicError> {
        let filter_start = Self::parse(s)?;
        let raw = ByteStr::try_from(s).map_err(|_| TopicError::NullCharacter)?;
        Ok(TopicFilter { raw, filter_start })
    }
}

impl TryFrom<String> for TopicFilter {
    type Error = TopicError;

    fn try_from(s: String) -> Result<Self, TopicError> {
        let filter_start = Self::parse(&s)?;
        let raw = ByteStr::try_from(s).map_err(|_| TopicError::NullCharacter)?;
        Ok(TopicFilter { raw, filter_start })
    }
}

impl From<TopicName> for TopicFilter {
    /// A topic name is a filter that matches exactly itself.
    fn from(name: TopicName) -> Self {
        // A name has no wildcards; one starting "$share/" is still a plain filter only if it
        // also parses as one, so re-parse rather than assume.
        let filter_start = Self::parse(name.as_str()).unwrap_or(0);
        TopicFilter {
            raw: name.0,
            filter_start,
        }
    }
}

macro_rules! topic_fmt {
    ($ty:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

topic_fmt!(TopicName);
topic_fmt!(TopicFilter);

/// Builds a `Bytes`-backed name without re-validating, for tests and the from-static path.
impl From<TopicName> for Bytes {
    fn from(name: TopicName) -> Bytes {
        name.0.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TopicName {
        TopicName::try_from(s).unwrap()
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).unwrap()
    }

    #[test]
    fn names_reject_wildcards_and_emptiness() {
        assert_eq!(
            TopicName::try_from("a/+/b"),
            Err(TopicError::WildcardInName)
        );
        assert_eq!(TopicName::try_from("a/#"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::try_from(""), Err(TopicError::Empty));
        assert_eq!(TopicName::try_from("a\0"), Err(TopicError::NullCharacter));
        assert_eq!(
            TopicName::try_from("x".repeat(65_536)),
            Err(TopicError::TooLong)
        );
        // Spaces, empty levels and a leading slash are all legal (§4.7.3).
        for ok in [
            "/",
            "a//b",
            " ",
            "/finance",
            "$SYS/broker/uptime",
            "sport/tennis/player1",
        ] {
            assert_eq!(name(ok).as_str(), ok);
        }
    }

    #[test]
    fn filters_follow_wildcard_rules() {
        for ok in ["#", "+", "+/+", "/+", "a/#", "a/+/b", "+/tennis/#", "a//b"] {
            assert!(TopicFilter::try_from(ok).is_ok(), "{ok}");
        }
        for (bad, err) in [
            ("a/#/b", TopicError::MisplacedMultiLevelWildcard),
            ("a#", TopicError::MisplacedMultiLevelWildcard),
            ("sport/tennis#", TopicError::MisplacedMultiLevelWildcard),
            ("a+", TopicError::MisplacedSingleLevelWildcard),
            ("sport+", TopicError::MisplacedSingleLevelWildcard),
            ("", TopicError::Empty),
        ] {
            assert_eq!(TopicFilter::try_from(bad), Err(err), "{bad}");
        }
    }

    #[test]
    fn shared_subscriptions_parse() {
        let f = filter("$share/consumers/sport/+/score");
        assert!(f.is_shared());
        assert_eq!(f.share_group(), Some("consumers"));
        assert_eq!(f.filter(), "sport/+/score");
        assert!(f.matches(&name("sport/tennis/score")));
        assert_eq!(filter("$share/g/#").filter(), "#");

        assert_eq!(
            TopicFilter::try_from("$share/g"),
            Err(TopicError::SharedWithoutFilter)
        );
        assert_eq!(
            TopicFilter::try_from("$share/g/"),
            Err(TopicError::SharedWithoutFilter)
        );
        assert_eq!(
            TopicFilter::try_from("$share//a"),
            Err(TopicError::InvalidShareName)
        );
        assert_eq!(
            TopicFilter::try_from("$share/g+/a"),
            Err(TopicError::InvalidShareName)
        );
        assert_eq!(
            TopicFilter::try_from("$share/g/a#"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );

        let plain = filter("$sharex/a");
        assert!(!plain.is_shared());
        assert_eq!(plain.share_group(), None);
        assert_eq!(plain.filter(), "$sharex/a");
    }

    #[test]
    fn matching_follows_section_4_7() {
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("#", "anything/at/all", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("a/b", "a/b", true),
            ("a/b", "a/B", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            // [MQTT-4.7.2-1]: no leading wildcard matches a `$` topic.
            ("#", "$SYS/broker/uptime", false),
            ("+/broker/uptime", "$SYS/broker/uptime", false),
            ("$SYS/#", "$SYS/broker/uptime", true),
            ("$SYS/+/uptime", "$SYS/broker/uptime", true),
        ];
        for (f, t, expected) in cases {
            assert_eq!(filter(f).matches(&name(t)), expected, "{f} vs {t}");
        }
        assert!(!filter("$share/g/#").matches(&name("$SYS/x")));
    }
}
