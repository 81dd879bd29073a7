//! The codec's error texts, in one place, written without `core::fmt`: the `Display` impls of
//! [`ErrorKind`] and [`ReasonCode`] call these, and a caller that never reaches a `Display`
//! impl, such as the browser client, leaves the formatting machinery out of its `.wasm`.
//! `write_text` on the error types is `Display` without the spec reference.

use crate::error::{DecodeError, EncodeError, ErrorKind};
use crate::reason::ReasonCode;
use crate::string::StringError;
use crate::topic::TopicError;
use alloc::string::String;

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut String, n: u64) {
    let mut power = 1;
    while n / power >= 10 {
        power *= 10;
    }
    while power > 0 {
        out.push(char::from(b'0' + (n / power % 10) as u8));
        power /= 10;
    }
}

/// Appends the low `width` digits of `n` in base `radix` (2 or 16; upper case), zero-padded.
pub fn push_digits(out: &mut String, n: u64, radix: u32, width: u32) {
    let bits = radix.trailing_zeros();
    let mut shown = width;
    while shown * bits < 64 && n >> (shown * bits) != 0 {
        shown += 1;
    }
    for i in (0..shown).rev() {
        let digit = (n >> (i * bits)) as u32 % radix;
        out.push(
            char::from_digit(digit, radix)
                .unwrap_or('?')
                .to_ascii_uppercase(),
        );
    }
}

impl TopicError {
    /// What is wrong, as `Display` says it.
    pub const fn text(self) -> &'static str {
        match self {
            TopicError::Empty => "it is empty",
            TopicError::TooLong => "it is longer than 65,535 bytes",
            TopicError::NullCharacter => "it contains U+0000",
            TopicError::WildcardInName => "a topic name contains a wildcard",
            TopicError::MisplacedMultiLevelWildcard => "'#' is not the whole last level",
            TopicError::MisplacedSingleLevelWildcard => "'+' is not a whole level",
            TopicError::InvalidShareName => {
                "the share name of a shared subscription is empty or contains a wildcard"
            }
            TopicError::SharedWithoutFilter => {
                "a shared subscription has no topic filter after its share name"
            }
        }
    }
}

impl StringError {
    /// Appends what is wrong, as `Display` says it.
    pub fn write_text(self, out: &mut String) {
        match self {
            StringError::TooLong(len) => {
                out.push_str("string is ");
                push_decimal(out, len as u64);
                out.push_str(" bytes long, more than the 65,535 MQTT allows");
            }
            StringError::NullCharacter => out.push_str("string contains the null character U+0000"),
        }
    }
}

impl ReasonCode {
    /// Appends the code's name and value, as `Display` does: `Not authorized (0x87)`.
    pub fn write_text(self, out: &mut String) {
        out.push_str(self.description());
        out.push_str(" (0x");
        push_digits(out, u64::from(self as u8), 16, 2);
        out.push(')');
    }
}

impl ErrorKind {
    /// Appends the broken rule, as `Display` says it.
    pub fn write_text(self, out: &mut String) {
        use ErrorKind::*;
        let (before, number, after): (&str, Option<u64>, &str) = match self {
            ReservedPacketType(t) => ("packet type ", Some(t.into()), " is reserved"),
            PacketNotInVersion(p) => (p.name(), None, " does not exist in this protocol version"),
            InvalidFlags { packet, flags } => {
                out.push_str(packet.name());
                out.push_str(" has fixed header flags ");
                push_digits(out, flags.into(), 2, 4);
                (", which are reserved", None, "")
            }
            MalformedRemainingLength => ("remaining length is longer than 4 bytes", None, ""),
            MalformedVarInt => ("variable byte integer is longer than 4 bytes", None, ""),
            PacketTooLarge { size, maximum } => {
                out.push_str("packet of ");
                push_decimal(out, size as u64);
                (
                    " bytes exceeds the maximum packet size of ",
                    Some(maximum.into()),
                    "",
                )
            }
            Truncated => ("packet ends in the middle of a field", None, ""),
            TrailingBytes(p) => (p.name(), None, " has bytes after its last field"),
            InvalidUtf8 => ("string is not well-formed UTF-8", None, ""),
            NullCharacter => ("string contains U+0000", None, ""),
            InvalidTopicName(e) => ("invalid topic name: ", None, e.text()),
            InvalidTopicFilter(e) => ("invalid topic filter: ", None, e.text()),
            EmptyTopicName => (
                "PUBLISH has an empty topic name and no topic alias",
                None,
                "",
            ),
            ZeroPacketId => ("packet identifier is 0", None, ""),
            PacketIdMismatch => (
                "a PUBLISH carries a packet identifier exactly when its QoS is 1 or 2",
                None,
                "",
            ),
            DupWithQos0 => ("QoS 0 PUBLISH has the DUP flag set", None, ""),
            InvalidPublishQos => ("PUBLISH has QoS 3", None, ""),
            InvalidProtocolName => ("CONNECT protocol name is not MQTT (or MQIsdp)", None, ""),
            UnsupportedProtocolVersion(level) => (
                "CONNECT protocol level ",
                Some(level.into()),
                " is not 3, 4 or 5",
            ),
            ConnectReservedFlag => ("CONNECT reserved flag is set", None, ""),
            WillQosWithoutWill => ("Will QoS is not 0 but the Will Flag is not set", None, ""),
            WillRetainWithoutWill => ("Will Retain is set but the Will Flag is not", None, ""),
            InvalidWillQos => ("Will QoS is 3", None, ""),
            PasswordWithoutUsername => ("password flag set without user name flag", None, ""),
            ConnAckReservedFlags => ("CONNACK acknowledge flags has reserved bits set", None, ""),
            SessionPresentOnFailure => (
                "CONNACK refuses the connection but sets Session Present",
                None,
                "",
            ),
            InvalidConnectReturnCode(c) => {
                ("CONNACK return code ", Some(c.into()), " is not 0 to 5")
            }
            NoSubscriptions => ("SUBSCRIBE contains no topic filter", None, ""),
            NoUnsubscriptions => ("UNSUBSCRIBE contains no topic filter", None, ""),
            SubscriptionOptionsReserved => ("subscription options reserved bits set", None, ""),
            InvalidSubscriptionQos => ("subscription requests QoS 3", None, ""),
            InvalidRetainHandling => ("subscription Retain Handling is 3", None, ""),
            NoLocalOnSharedSubscription => ("No Local set on a shared subscription", None, ""),
            InvalidReasonCode { packet, code } => {
                out.push_str(packet.name());
                out.push_str(" may not carry reason code 0x");
                push_digits(out, code.into(), 16, 2);
                ("", None, "")
            }
            NoReasonCodes(p) => (p.name(), None, " contains no reason code"),
            UnknownProperty(id) => {
                out.push_str("unknown property identifier 0x");
                push_digits(out, id.into(), 16, 2);
                ("", None, "")
            }
            PropertyNotAllowed { packet, property } => {
                out.push_str(property.name());
                (" is not allowed in ", None, packet)
            }
            DuplicateProperty(p) => (p.name(), None, " appears more than once"),
            InvalidPropertyValue(p) => (p.name(), None, " has a value the spec does not allow"),
            TopicAliasZero => ("Topic Alias is 0", None, ""),
            ClientOnlyPacket(p) => ("a server does not send ", None, p.name()),
        };
        out.push_str(before);
        if let Some(n) = number {
            push_decimal(out, n);
        }
        out.push_str(after);
    }
}

macro_rules! error_text {
    ($name:ident) => {
        impl $name {
            /// Appends the broken rule and its reason code, as `Display` does but without the
            /// spec reference: `packet identifier is 0 (Malformed Packet (0x81))`.
            pub fn write_text(&self, out: &mut String) {
                self.kind().write_text(out);
                out.push_str(" (");
                self.reason_code().write_text(out);
                out.push(')');
            }
        }
    };
}

error_text!(DecodeError);
error_text!(EncodeError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{PacketType, ProtocolVersion};
    use crate::properties::PropertyId;

    fn text(write: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        write(&mut out);
        out
    }

    #[test]
    fn texts_with_numbers_in_them() {
        use ErrorKind::*;
        let cases = [
            (ReservedPacketType(15), "packet type 15 is reserved"),
            (
                InvalidFlags {
                    packet: PacketType::PubRel,
                    flags: 3,
                },
                "PUBREL has fixed header flags 0011, which are reserved",
            ),
            (
                PacketTooLarge {
                    size: 300_000,
                    maximum: 65_536,
                },
                "packet of 300000 bytes exceeds the maximum packet size of 65536",
            ),
            (
                UnsupportedProtocolVersion(6),
                "CONNECT protocol level 6 is not 3, 4 or 5",
            ),
            (UnknownProperty(0x7F), "unknown property identifier 0x7F"),
            (
                InvalidTopicName(TopicError::WildcardInName),
                "invalid topic name: a topic name contains a wildcard",
            ),
        ];
        for (kind, expected) in cases {
            assert_eq!(kind.to_string(), expected);
        }
        let e = DecodeError::new(InvalidPublishQos, ProtocolVersion::V5);
        assert_eq!(
            e.to_string(),
            "[MQTT-3.3.1-4] PUBLISH has QoS 3 (Malformed Packet (0x81))"
        );
        assert_eq!(
            text(|o| e.write_text(o)),
            "PUBLISH has QoS 3 (Malformed Packet (0x81))"
        );
    }

    #[test]
    fn numbers() {
        for n in [0, 7, 10, 65_535, u64::MAX] {
            assert_eq!(text(|o| push_decimal(o, n)), n.to_string());
        }
        for n in [0u64, 0x0A, 0x87, 0xFF, 0x1FF] {
            assert_eq!(text(|o| push_digits(o, n, 16, 2)), format!("{n:02X}"));
            assert_eq!(text(|o| push_digits(o, n, 2, 4)), format!("{n:04b}"));
        }
    }

    #[test]
    fn texts_are_display_without_the_spec_reference() {
        let topic = [
            TopicError::Empty,
            TopicError::TooLong,
            TopicError::NullCharacter,
            TopicError::WildcardInName,
            TopicError::MisplacedMultiLevelWildcard,
            TopicError::MisplacedSingleLevelWildcard,
            TopicError::InvalidShareName,
            TopicError::SharedWithoutFilter,
        ];
        for e in topic {
            assert_eq!(e.text(), e.to_string());
        }
        for e in [StringError::TooLong(70_000), StringError::NullCharacter] {
            assert_eq!(text(|o| e.write_text(o)), e.to_string());
        }
        assert_eq!(
            text(|o| ReasonCode::NotAuthorized.write_text(o)),
            "Not authorized (0x87)"
        );
        use ErrorKind::*;
        let p = PacketType::PubRel;
        let id = PropertyId::TopicAlias;
        let mut kinds = vec![
            ReservedPacketType(15),
            PacketNotInVersion(PacketType::Auth),
            InvalidFlags {
                packet: p,
                flags: 3,
            },
            MalformedRemainingLength,
            MalformedVarInt,
            PacketTooLarge {
                size: 300_000,
                maximum: 65_536,
            },
            Truncated,
            TrailingBytes(p),
            InvalidUtf8,
            NullCharacter,
            EmptyTopicName,
            ZeroPacketId,
            PacketIdMismatch,
            DupWithQos0,
            InvalidPublishQos,
            InvalidProtocolName,
            UnsupportedProtocolVersion(6),
            ConnectReservedFlag,
            WillQosWithoutWill,
            WillRetainWithoutWill,
            InvalidWillQos,
            PasswordWithoutUsername,
            ConnAckReservedFlags,
            SessionPresentOnFailure,
            InvalidConnectReturnCode(9),
            NoSubscriptions,
            NoUnsubscriptions,
            SubscriptionOptionsReserved,
            InvalidSubscriptionQos,
            InvalidRetainHandling,
            NoLocalOnSharedSubscription,
            InvalidReasonCode {
                packet: p,
                code: 0x8F,
            },
            NoReasonCodes(PacketType::SubAck),
            UnknownProperty(0x7F),
            PropertyNotAllowed {
                packet: "Will",
                property: id,
            },
            DuplicateProperty(id),
            InvalidPropertyValue(id),
            TopicAliasZero,
            ClientOnlyPacket(PacketType::Subscribe),
        ];
        kinds.extend(
            topic
                .iter()
                .flat_map(|&e| [InvalidTopicName(e), InvalidTopicFilter(e)]),
        );
        for kind in kinds {
            assert!(!text(|o| kind.write_text(o)).is_empty());
            for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
                let e = DecodeError::new(kind, version);
                let display = e.to_string();
                let display = match e.spec_ref() {
                    Some(spec) => display.replacen(&format!("[{spec}] "), "", 1),
                    None => display,
                };
                assert_eq!(text(|o| e.write_text(o)), display);
                let e = EncodeError::new(kind, version);
                assert!(e.to_string().ends_with(&text(|o| e.write_text(o))));
            }
        }
    }
}
