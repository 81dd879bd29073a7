//! One row per rule of the specifications that a decoder must enforce: the exact bytes, the
//! error kind, the conformance statement it cites and the reason code the peer gets.
//!
//! Byte-vector tests beside each packet cover more cases; this table is the index.

// Test code: strategies and helpers outside #[test] functions may unwrap and index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::BytesMut;
use midge_codec::{
    Decoder, ErrorKind, PacketType, PropertyId, ProtocolVersion, ReasonCode, TopicError,
};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

struct Case {
    what: &'static str,
    version: ProtocolVersion,
    bytes: Vec<u8>,
    kind: ErrorKind,
    spec: Option<&'static str>,
    reason: ReasonCode,
}

/// A packet of `first` byte with `body` as its variable header and payload.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut bytes = vec![first, body.len() as u8];
    bytes.extend_from_slice(body);
    bytes
}

/// A v5 PUBLISH to topic "t", QoS 0, with these properties.
fn v5_publish_with(properties: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, b't', properties.len() as u8];
    body.extend_from_slice(properties);
    packet(0x30, &body)
}

/// A v5 CONNECT for client "c" with these CONNECT properties.
fn v5_connect_with(properties: &[u8]) -> Vec<u8> {
    let mut body = vec![
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        5,
        0x02,
        0,
        10,
        properties.len() as u8,
    ];
    body.extend_from_slice(properties);
    body.extend_from_slice(&[0, 1, b'c']);
    packet(0x10, &body)
}

fn cases() -> Vec<Case> {
    use ErrorKind::*;
    use ReasonCode::{MalformedPacket as MP, ProtocolError as PE};
    let case = |what, version, bytes, kind, spec, reason| Case {
        what,
        version,
        bytes,
        kind,
        spec,
        reason,
    };
    vec![
        case(
            "packet type 0",
            V5,
            vec![0x00, 0],
            ReservedPacketType(0),
            None,
            MP,
        ),
        case(
            "packet type 15 before 5.0",
            V3,
            vec![0xf0, 0],
            ReservedPacketType(15),
            None,
            MP,
        ),
        case(
            "reserved flags (3.1.1)",
            V3,
            vec![0xc1, 0],
            InvalidFlags {
                packet: PacketType::PingReq,
                flags: 1,
            },
            Some("MQTT-2.2.2-2"),
            MP,
        ),
        case(
            "reserved flags (5.0)",
            V5,
            vec![0xc1, 0],
            InvalidFlags {
                packet: PacketType::PingReq,
                flags: 1,
            },
            Some("MQTT-2.1.3-1"),
            MP,
        ),
        case(
            "PUBREL flags not 0010",
            V5,
            packet(0x60, &[0, 1]),
            InvalidFlags {
                packet: PacketType::PubRel,
                flags: 0,
            },
            Some("MQTT-2.1.3-1"),
            MP,
        ),
        case(
            "remaining length over 4 bytes",
            V3,
            vec![0x30, 0x80, 0x80, 0x80, 0x80, 0x01],
            MalformedRemainingLength,
            None,
            MP,
        ),
        case(
            "PINGREQ with a body",
            V3,
            packet(0xc0, &[0]),
            TrailingBytes(PacketType::PingReq),
            None,
            MP,
        ),
        case(
            "PUBLISH QoS 3",
            V3,
            packet(0x36, &[0, 1, b't', 0, 1]),
            InvalidPublishQos,
            Some("MQTT-3.3.1-4"),
            MP,
        ),
        case(
            "DUP on QoS 0",
            V3,
            packet(0x38, &[0, 1, b't']),
            DupWithQos0,
            Some("MQTT-3.3.1-2"),
            MP,
        ),
        case(
            "packet id 0 (3.1.1)",
            V3,
            packet(0x32, &[0, 1, b't', 0, 0]),
            ZeroPacketId,
            Some("MQTT-2.3.1-1"),
            MP,
        ),
        case(
            "packet id 0 (5.0)",
            V5,
            packet(0x40, &[0, 0]),
            ZeroPacketId,
            Some("MQTT-2.2.1-3"),
            MP,
        ),
        case(
            "truncated string",
            V3,
            packet(0x30, &[0, 9, b't']),
            Truncated,
            None,
            MP,
        ),
        case(
            "invalid UTF-8 (3.1.1)",
            V3,
            packet(0x30, &[0, 2, 0xc3, 0x28]),
            InvalidUtf8,
            Some("MQTT-1.5.3-1"),
            MP,
        ),
        case(
            "UTF-16 surrogate (5.0)",
            V5,
            packet(0x30, &[0, 3, 0xed, 0xb0, 0x80, 0]),
            InvalidUtf8,
            Some("MQTT-1.5.4-1"),
            MP,
        ),
        case(
            "U+0000 in a string",
            V5,
            packet(0x30, &[0, 2, b'a', 0, 0]),
            NullCharacter,
            Some("MQTT-1.5.4-2"),
            MP,
        ),
        case(
            "wildcard in a topic name",
            V3,
            packet(0x30, &[0, 3, b'a', b'/', b'+']),
            InvalidTopicName(TopicError::WildcardInName),
            Some("MQTT-3.3.2-2"),
            ReasonCode::TopicNameInvalid,
        ),
        case(
            "empty topic name (3.1.1)",
            V3,
            packet(0x30, &[0, 0]),
            EmptyTopicName,
            Some("MQTT-4.7.3-1"),
            PE,
        ),
        case(
            "empty topic without alias (5.0)",
            V5,
            packet(0x30, &[0, 0, 0]),
            EmptyTopicName,
            Some("MQTT-4.7.3-1"),
            PE,
        ),
        case(
            "topic alias 0",
            V5,
            v5_publish_with(&[0x23, 0, 0]),
            TopicAliasZero,
            Some("MQTT-3.3.2-8"),
            ReasonCode::TopicAliasInvalid,
        ),
        case(
            "empty SUBSCRIBE (3.1.1)",
            V3,
            packet(0x82, &[0, 1]),
            NoSubscriptions,
            Some("MQTT-3.8.3-3"),
            PE,
        ),
        case(
            "empty SUBSCRIBE (5.0)",
            V5,
            packet(0x82, &[0, 1, 0]),
            NoSubscriptions,
            Some("MQTT-3.8.3-2"),
            PE,
        ),
        case(
            "empty UNSUBSCRIBE",
            V3,
            packet(0xa2, &[0, 1]),
            NoUnsubscriptions,
            Some("MQTT-3.10.3-2"),
            PE,
        ),
        case(
            "subscription options reserved bits (3.1.1)",
            V3,
            packet(0x82, &[0, 1, 0, 1, b'a', 0x80]),
            SubscriptionOptionsReserved,
            Some("MQTT-3.8.3-4"),
            MP,
        ),
        case(
            "subscription options reserved bits (5.0)",
            V5,
            packet(0x82, &[0, 1, 0, 0, 1, b'a', 0x80]),
            SubscriptionOptionsReserved,
            Some("MQTT-3.8.3-5"),
            MP,
        ),
        case(
            "subscription QoS 3",
            V5,
            packet(0x82, &[0, 1, 0, 0, 1, b'a', 3]),
            InvalidSubscriptionQos,
            None,
            PE,
        ),
        case(
            "retain handling 3",
            V5,
            packet(0x82, &[0, 1, 0, 0, 1, b'a', 0x30]),
            InvalidRetainHandling,
            None,
            PE,
        ),
        case(
            "'#' not last",
            V5,
            packet(0x82, &[0, 1, 0, 0, 3, b'#', b'/', b'a', 0]),
            InvalidTopicFilter(TopicError::MisplacedMultiLevelWildcard),
            Some("MQTT-4.7.1-1"),
            ReasonCode::TopicFilterInvalid,
        ),
        case(
            "'+' not a whole level",
            V3,
            packet(0x82, &[0, 1, 0, 2, b'a', b'+', 0]),
            InvalidTopicFilter(TopicError::MisplacedSingleLevelWildcard),
            Some("MQTT-4.7.1-3"),
            ReasonCode::TopicFilterInvalid,
        ),
        case(
            "empty share name",
            V5,
            packet(
                0x82,
                &[
                    0, 1, 0, 0, 9, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'/', b'a', 0,
                ],
            ),
            InvalidTopicFilter(TopicError::InvalidShareName),
            Some("MQTT-4.8.2-2"),
            ReasonCode::TopicFilterInvalid,
        ),
        case(
            "No Local on a shared subscription",
            V5,
            packet(
                0x82,
                &[
                    0, 1, 0, 0, 10, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b'a', 4,
                ],
            ),
            NoLocalOnSharedSubscription,
            Some("MQTT-3.8.3-4"),
            PE,
        ),
        case(
            "protocol name",
            V5,
            packet(
                0x10,
                &[0, 4, b'M', b'Q', b'T', b'X', 4, 2, 0, 0, 0, 1, b'c'],
            ),
            InvalidProtocolName,
            Some("MQTT-3.1.2-1"),
            ReasonCode::UnsupportedProtocolVersion,
        ),
        case(
            "protocol level",
            V5,
            packet(
                0x10,
                &[0, 4, b'M', b'Q', b'T', b'T', 9, 2, 0, 0, 0, 1, b'c'],
            ),
            UnsupportedProtocolVersion(9),
            Some("MQTT-3.1.2-2"),
            ReasonCode::UnsupportedProtocolVersion,
        ),
        case(
            "CONNECT reserved flag",
            V5,
            packet(
                0x10,
                &[0, 4, b'M', b'Q', b'T', b'T', 4, 3, 0, 0, 0, 1, b'c'],
            ),
            ConnectReservedFlag,
            Some("MQTT-3.1.2-3"),
            MP,
        ),
        case(
            "will QoS 3",
            V5,
            packet(
                0x10,
                &[0, 4, b'M', b'Q', b'T', b'T', 4, 0x1e, 0, 0, 0, 1, b'c'],
            ),
            InvalidWillQos,
            Some("MQTT-3.1.2-14"),
            MP,
        ),
        case(
            "password without user name (3.1.1)",
            V5,
            packet(
                0x10,
                &[
                    0, 4, b'M', b'Q', b'T', b'T', 4, 0x42, 0, 0, 0, 1, b'c', 0, 0,
                ],
            ),
            PasswordWithoutUsername,
            Some("MQTT-3.1.2-22"),
            PE,
        ),
        case(
            "CONNACK session present on refusal",
            V3,
            packet(0x20, &[1, 5]),
            SessionPresentOnFailure,
            Some("MQTT-3.2.2-4"),
            PE,
        ),
        case(
            "reason code not allowed in PUBACK",
            V5,
            packet(0x40, &[0, 1, 0x92]),
            InvalidReasonCode {
                packet: PacketType::PubAck,
                code: 0x92,
            },
            Some("MQTT-3.4.2-1"),
            PE,
        ),
        case(
            "unknown property",
            V5,
            v5_publish_with(&[0x05, 0]),
            UnknownProperty(5),
            None,
            MP,
        ),
        case(
            "property in the wrong packet",
            V5,
            v5_publish_with(&[0x11, 0, 0, 0, 1]),
            PropertyNotAllowed {
                packet: "PUBLISH",
                property: PropertyId::SessionExpiryInterval,
            },
            None,
            MP,
        ),
        case(
            "will property in the wrong place",
            V5,
            packet(
                0x10,
                &[
                    0, 4, b'M', b'Q', b'T', b'T', 5, 0x06, 0, 0, 0, 0, 1, b'c', 3, 0x23, 0, 1, 0,
                    1, b'w', 0, 0,
                ],
            ),
            PropertyNotAllowed {
                packet: "Will Properties",
                property: PropertyId::TopicAlias,
            },
            None,
            MP,
        ),
        case(
            "duplicate property",
            V5,
            v5_publish_with(&[0x03, 0, 1, b'a', 0x03, 0, 1, b'b']),
            DuplicateProperty(PropertyId::ContentType),
            None,
            PE,
        ),
        case(
            "payload format indicator 2",
            V5,
            v5_publish_with(&[0x01, 2]),
            InvalidPropertyValue(PropertyId::PayloadFormatIndicator),
            None,
            PE,
        ),
        case(
            "receive maximum 0",
            V5,
            v5_connect_with(&[0x21, 0, 0]),
            InvalidPropertyValue(PropertyId::ReceiveMaximum),
            None,
            PE,
        ),
        case(
            "maximum packet size 0",
            V5,
            v5_connect_with(&[0x27, 0, 0, 0, 0]),
            InvalidPropertyValue(PropertyId::MaximumPacketSize),
            None,
            PE,
        ),
        case(
            "request problem information 2",
            V5,
            v5_connect_with(&[0x17, 2]),
            InvalidPropertyValue(PropertyId::RequestProblemInformation),
            None,
            PE,
        ),
        case(
            "subscription identifier 0",
            V5,
            packet(0x82, &[0, 1, 2, 0x0b, 0, 0, 1, b'a', 0]),
            InvalidPropertyValue(PropertyId::SubscriptionIdentifier),
            None,
            PE,
        ),
        case(
            "response topic with a wildcard",
            V5,
            v5_publish_with(&[0x08, 0, 1, b'#']),
            InvalidTopicName(TopicError::WildcardInName),
            Some("MQTT-3.3.2-2"),
            ReasonCode::TopicNameInvalid,
        ),
        case(
            "property length past the packet",
            V5,
            packet(0x30, &[0, 1, b't', 5, 0x23]),
            Truncated,
            None,
            MP,
        ),
        case(
            "property identifier over 4 bytes",
            V5,
            v5_publish_with(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            MalformedVarInt,
            None,
            MP,
        ),
        case(
            "user property value not UTF-8",
            V5,
            v5_publish_with(&[0x26, 0, 1, b'k', 0, 1, 0xff]),
            InvalidUtf8,
            Some("MQTT-1.5.4-1"),
            MP,
        ),
    ]
}

#[test]
fn every_rule_is_enforced_with_its_reason_code() {
    let mut failures = Vec::new();
    for c in cases() {
        let mut buf = BytesMut::from(&c.bytes[..]);
        let result = Decoder::new(c.version).decode(&mut buf);
        match result {
            Err(err)
                if (err.kind(), err.spec_ref(), err.reason_code())
                    == (c.kind, c.spec, c.reason) =>
            {
                // The message names the statement, so a log line is enough to look it up.
                if let Some(spec) = c.spec {
                    assert!(err.to_string().starts_with(&format!("[{spec}] ")), "{err}");
                }
            }
            other => failures.push(format!(
                "{}: {:x?} gave {:?}",
                c.what,
                c.bytes,
                other.map_err(|e| (e.kind(), e.spec_ref(), e.reason_code()))
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} rules not enforced as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
