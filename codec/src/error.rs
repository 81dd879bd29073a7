//! Errors. [`DecodeError`] is what a peer did wrong; [`EncodeError`] is what the caller asked
//! for that cannot be sent. Both carry an [`ErrorKind`] that names the rule of the
//! specification that was broken and the reason code the peer must be sent.

use alloc::string::String;
use core::fmt;

use crate::packet::{PacketType, ProtocolVersion};
use crate::properties::PropertyId;
use crate::reason::ReasonCode;
use crate::topic::TopicError;

/// One broken rule of MQTT 3.1, 3.1.1 or 5.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The packet type is reserved (0, or 15 before MQTT 5.0).
    ReservedPacketType(u8),
    /// The packet type does not exist in the protocol version in use (AUTH before 5.0).
    PacketNotInVersion(PacketType),
    /// The fixed header flags of this packet type are not the ones the spec fixes.
    InvalidFlags {
        /// The packet.
        packet: PacketType,
        /// The four flag bits that were received.
        flags: u8,
    },
    /// The remaining length has a fifth byte.
    MalformedRemainingLength,
    /// A variable byte integer inside the packet has a fifth byte.
    MalformedVarInt,
    /// The packet is larger than the maximum packet size.
    PacketTooLarge {
        /// The whole packet's size in bytes.
        size: usize,
        /// The limit in force.
        maximum: u32,
    },
    /// The packet ends before a field it must contain.
    Truncated,
    /// Bytes follow the last field of the packet.
    TrailingBytes(PacketType),
    /// A UTF-8 Encoded String is not well-formed UTF-8 (or encodes a surrogate).
    InvalidUtf8,
    /// A UTF-8 Encoded String contains U+0000.
    NullCharacter,
    /// A topic name is not valid.
    InvalidTopicName(TopicError),
    /// A topic filter is not valid.
    InvalidTopicFilter(TopicError),
    /// A PUBLISH has an empty topic name and no topic alias.
    EmptyTopicName,
    /// A packet identifier is 0.
    ZeroPacketId,
    /// A QoS 0 PUBLISH carries a packet identifier, or a QoS 1/2 one lacks it (encoding only).
    PacketIdMismatch,
    /// A QoS 0 PUBLISH has the DUP flag set.
    DupWithQos0,
    /// A PUBLISH has both QoS bits set.
    InvalidPublishQos,
    /// The CONNECT protocol name is neither "MQTT" nor "MQIsdp" for its level.
    InvalidProtocolName,
    /// The CONNECT protocol level is not 3, 4 or 5.
    UnsupportedProtocolVersion(u8),
    /// The reserved bit 0 of the CONNECT flags is set.
    ConnectReservedFlag,
    /// Will QoS is not 0 while the Will Flag is not set.
    WillQosWithoutWill,
    /// Will Retain is set while the Will Flag is not.
    WillRetainWithoutWill,
    /// The Will QoS is 3.
    InvalidWillQos,
    /// MQTT 3.1 / 3.1.1: the password flag is set without the user name flag.
    PasswordWithoutUsername,
    /// The reserved bits of the CONNACK acknowledge flags are set.
    ConnAckReservedFlags,
    /// A CONNACK refusing the connection says a session is present.
    SessionPresentOnFailure,
    /// An MQTT 3.x CONNACK return code above 5.
    InvalidConnectReturnCode(u8),
    /// A SUBSCRIBE with no topic filter.
    NoSubscriptions,
    /// An UNSUBSCRIBE with no topic filter.
    NoUnsubscriptions,
    /// Reserved bits of the subscription options are set.
    SubscriptionOptionsReserved,
    /// A subscription requests QoS 3.
    InvalidSubscriptionQos,
    /// A subscription's Retain Handling is 3.
    InvalidRetainHandling,
    /// No Local is set on a shared subscription.
    NoLocalOnSharedSubscription,
    /// A reason code that this packet may not carry.
    InvalidReasonCode {
        /// The packet.
        packet: PacketType,
        /// The code that was received.
        code: u8,
    },
    /// A SUBACK (or MQTT 5 UNSUBACK) without any reason code.
    NoReasonCodes(PacketType),
    /// A property identifier that MQTT 5.0 does not define.
    UnknownProperty(u32),
    /// A property that this packet may not carry.
    PropertyNotAllowed {
        /// The packet, or "Will" for the will properties in a CONNECT.
        packet: &'static str,
        /// The property.
        property: PropertyId,
    },
    /// A property other than User Property (and Subscription Identifier in PUBLISH) twice.
    DuplicateProperty(PropertyId),
    /// A property value outside the range the spec allows (for example Receive Maximum 0).
    InvalidPropertyValue(PropertyId),
    /// A Topic Alias of 0.
    TopicAliasZero,
    /// A packet only clients send (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ) came from a
    /// server ([`crate::Decoder::decode_from_server`]).
    ClientOnlyPacket(PacketType),
}

impl ErrorKind {
    /// The reason code to send the peer (in a CONNACK or DISCONNECT on MQTT 5.0; MQTT 3.x
    /// closes the connection, or maps it with [`ReasonCode::to_v3_connack`] in a CONNACK).
    pub const fn reason_code(self) -> ReasonCode {
        use ErrorKind::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            InvalidProtocolName | UnsupportedProtocolVersion(_) => {
                ReasonCode::UnsupportedProtocolVersion
            }
            InvalidTopicName(_) => ReasonCode::TopicNameInvalid,
            InvalidTopicFilter(_) => ReasonCode::TopicFilterInvalid,
            TopicAliasZero => ReasonCode::TopicAliasInvalid,
            PacketNotInVersion(_)
            | ClientOnlyPacket(_)
            | EmptyTopicName
            | InvalidSubscriptionQos
            | PasswordWithoutUsername
            | SessionPresentOnFailure
            | NoSubscriptions
            | NoUnsubscriptions
            | NoLocalOnSharedSubscription
            | DuplicateProperty(_)
            | InvalidPropertyValue(_)
            | InvalidRetainHandling
            | InvalidReasonCode { .. } => ReasonCode::ProtocolError,
            ReservedPacketType(_)
            | InvalidFlags { .. }
            | MalformedRemainingLength
            | MalformedVarInt
            | Truncated
            | TrailingBytes(_)
            | InvalidUtf8
            | NullCharacter
            | ZeroPacketId
            | PacketIdMismatch
            | DupWithQos0
            | InvalidPublishQos
            | ConnectReservedFlag
            | WillQosWithoutWill
            | WillRetainWithoutWill
            | InvalidWillQos
            | ConnAckReservedFlags
            | InvalidConnectReturnCode(_)
            | SubscriptionOptionsReserved
            | NoReasonCodes(_)
            | UnknownProperty(_)
            | PropertyNotAllowed { .. } => ReasonCode::MalformedPacket,
        }
    }

    /// The conformance statement this breaks, in the numbering of `version`'s specification,
    /// where that specification numbers the rule.
    pub fn spec_ref(self, version: ProtocolVersion) -> Option<&'static str> {
        use ErrorKind::*;
        let v5 = version == ProtocolVersion::V5;
        let pick = |v3: &'static str, v5_ref: &'static str| Some(if v5 { v5_ref } else { v3 });
        match self {
            InvalidFlags { .. } => pick("MQTT-2.2.2-2", "MQTT-2.1.3-1"),
            InvalidUtf8 => pick("MQTT-1.5.3-1", "MQTT-1.5.4-1"),
            NullCharacter => pick("MQTT-1.5.3-2", "MQTT-1.5.4-2"),
            InvalidTopicName(e) | InvalidTopicFilter(e) => e.spec_ref(version),
            EmptyTopicName => Some("MQTT-4.7.3-1"),
            ZeroPacketId => pick("MQTT-2.3.1-1", "MQTT-2.2.1-3"),
            PacketIdMismatch => pick("MQTT-2.3.1-5", "MQTT-2.2.1-2"),
            DupWithQos0 => Some("MQTT-3.3.1-2"),
            InvalidPublishQos => Some("MQTT-3.3.1-4"),
            InvalidProtocolName => Some("MQTT-3.1.2-1"),
            UnsupportedProtocolVersion(_) => Some("MQTT-3.1.2-2"),
            ConnectReservedFlag => Some("MQTT-3.1.2-3"),
            WillQosWithoutWill => pick("MQTT-3.1.2-13", "MQTT-3.1.2-11"),
            WillRetainWithoutWill => pick("MQTT-3.1.2-15", "MQTT-3.1.2-13"),
            InvalidWillQos => pick("MQTT-3.1.2-14", "MQTT-3.1.2-12"),
            PasswordWithoutUsername => Some("MQTT-3.1.2-22"),
            ConnAckReservedFlags => v5.then_some("MQTT-3.2.2-1"),
            InvalidConnectReturnCode(_) => v5.then_some("MQTT-3.2.2-8"),
            InvalidSubscriptionQos => (!v5).then_some("MQTT-3.8.3-4"),
            InvalidReasonCode { packet, .. } => packet.reason_code_rule(),
            SessionPresentOnFailure => pick("MQTT-3.2.2-4", "MQTT-3.2.2-6"),
            NoSubscriptions => pick("MQTT-3.8.3-3", "MQTT-3.8.3-2"),
            NoUnsubscriptions => Some("MQTT-3.10.3-2"),
            SubscriptionOptionsReserved => pick("MQTT-3.8.3-4", "MQTT-3.8.3-5"),
            NoLocalOnSharedSubscription => Some("MQTT-3.8.3-4"),
            TopicAliasZero => Some("MQTT-3.3.2-8"),
            ReservedPacketType(_)
            | PacketNotInVersion(_)
            | ClientOnlyPacket(_)
            | MalformedRemainingLength
            | MalformedVarInt
            | PacketTooLarge { .. }
            | Truncated
            | TrailingBytes(_)
            | InvalidRetainHandling
            | NoReasonCodes(_)
            | UnknownProperty(_)
            | PropertyNotAllowed { .. }
            | DuplicateProperty(_)
            | InvalidPropertyValue(_) => None,
        }
    }
}

impl fmt::Display for ErrorKind {
    /// The texts live in one place, `crate::text`, which also writes them without
    /// `core::fmt` for the browser client.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.write_text(&mut text);
        f.write_str(&text)
    }
}

/// The bytes received from a peer break a rule of the protocol.
///
/// The connection must be closed; on MQTT 5.0 after sending [`DecodeError::reason_code`]
/// in a DISCONNECT (or a CONNACK, if the CONNECT was the culprit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    kind: ErrorKind,
    version: ProtocolVersion,
}

/// A packet that cannot be sent as it is in the protocol version in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeError {
    kind: ErrorKind,
    version: ProtocolVersion,
}

macro_rules! error_wrapper {
    ($name:ident) => {
        impl $name {
            pub(crate) const fn new(kind: ErrorKind, version: ProtocolVersion) -> Self {
                $name { kind, version }
            }

            /// Which rule was broken.
            pub const fn kind(&self) -> ErrorKind {
                self.kind
            }

            /// The protocol version whose rules applied.
            pub const fn version(&self) -> ProtocolVersion {
                self.version
            }

            /// The reason code that reports this error to the peer.
            pub const fn reason_code(&self) -> ReasonCode {
                self.kind.reason_code()
            }

            /// The conformance statement broken, e.g. `"MQTT-3.3.1-4"`, where one is numbered.
            pub fn spec_ref(&self) -> Option<&'static str> {
                self.kind.spec_ref(self.version)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if let Some(spec) = self.spec_ref() {
                    write!(f, "[{spec}] ")?;
                }
                write!(f, "{} ({})", self.kind, self.reason_code())
            }
        }

        impl core::error::Error for $name {}
    };
}

error_wrapper!(DecodeError);
error_wrapper!(EncodeError);
