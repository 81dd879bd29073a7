//! Reason codes (MQTT 5.0 §2.4) and the MQTT 3.x CONNACK return codes they map to.

use alloc::string::String;
use core::fmt;

macro_rules! reason_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        /// An MQTT 5.0 reason code (§2.4). MQTT 3.1.1 SUBACK return codes are the same
        /// values; its CONNACK return codes map to and from these (see [`ReasonCode::to_v3_connack`]).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum ReasonCode {
            $($(#[$doc])* $name = $value,)*
        }

        impl ReasonCode {
            /// The reason code with this value, if there is one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some(ReasonCode::$name),)*
                    _ => None,
                }
            }

            /// The name the specification gives this code.
            pub const fn description(self) -> &'static str {
                match self {
                    $(ReasonCode::$name => $text,)*
                }
            }
        }
    };
}

reason_codes! {
    /// Success; also Normal disconnection and Granted QoS 0.
    #[default]
    Success = 0x00, "Success";
    /// Granted QoS 1 (SUBACK).
    GrantedQos1 = 0x01, "Granted QoS 1";
    /// Granted QoS 2 (SUBACK).
    GrantedQos2 = 0x02, "Granted QoS 2";
    /// Disconnect with Will Message (DISCONNECT from a client).
    DisconnectWithWillMessage = 0x04, "Disconnect with Will Message";
    /// No matching subscribers (PUBACK, PUBREC).
    NoMatchingSubscribers = 0x10, "No matching subscribers";
    /// No subscription existed (UNSUBACK).
    NoSubscriptionExisted = 0x11, "No subscription existed";
    /// Continue authentication (AUTH).
    ContinueAuthentication = 0x18, "Continue authentication";
    /// Re-authenticate (AUTH).
    ReAuthenticate = 0x19, "Re-authenticate";
    /// Unspecified error.
    UnspecifiedError = 0x80, "Unspecified error";
    /// Malformed Packet.
    MalformedPacket = 0x81, "Malformed Packet";
    /// Protocol Error.
    ProtocolError = 0x82, "Protocol Error";
    /// Implementation specific error.
    ImplementationSpecificError = 0x83, "Implementation specific error";
    /// Unsupported Protocol Version (CONNACK).
    UnsupportedProtocolVersion = 0x84, "Unsupported Protocol Version";
    /// Client Identifier not valid (CONNACK).
    ClientIdentifierNotValid = 0x85, "Client Identifier not valid";
    /// Bad User Name or Password (CONNACK).
    BadUserNameOrPassword = 0x86, "Bad User Name or Password";
    /// Not authorized.
    NotAuthorized = 0x87, "Not authorized";
    /// Server unavailable (CONNACK).
    ServerUnavailable = 0x88, "Server unavailable";
    /// Server busy.
    ServerBusy = 0x89, "Server busy";
    /// Banned (CONNACK).
    Banned = 0x8A, "Banned";
    /// Server shutting down (DISCONNECT).
    ServerShuttingDown = 0x8B, "Server shutting down";
    /// Bad authentication method.
    BadAuthenticationMethod = 0x8C, "Bad authentication method";
    /// Keep Alive timeout (DISCONNECT).
    KeepAliveTimeout = 0x8D, "Keep Alive timeout";
    /// Session taken over (DISCONNECT).
    SessionTakenOver = 0x8E, "Session taken over";
    /// Topic Filter invalid.
    TopicFilterInvalid = 0x8F, "Topic Filter invalid";
    /// Topic Name invalid.
    TopicNameInvalid = 0x90, "Topic Name invalid";
    /// Packet Identifier in use.
    PacketIdentifierInUse = 0x91, "Packet Identifier in use";
    /// Packet Identifier not found.
    PacketIdentifierNotFound = 0x92, "Packet Identifier not found";
    /// Receive Maximum exceeded (DISCONNECT).
    ReceiveMaximumExceeded = 0x93, "Receive Maximum exceeded";
    /// Topic Alias invalid (DISCONNECT).
    TopicAliasInvalid = 0x94, "Topic Alias invalid";
    /// Packet too large.
    PacketTooLarge = 0x95, "Packet too large";
    /// Message rate too high (DISCONNECT).
    MessageRateTooHigh = 0x96, "Message rate too high";
    /// Quota exceeded.
    QuotaExceeded = 0x97, "Quota exceeded";
    /// Administrative action (DISCONNECT).
    AdministrativeAction = 0x98, "Administrative action";
    /// Payload format invalid.
    PayloadFormatInvalid = 0x99, "Payload format invalid";
    /// Retain not supported.
    RetainNotSupported = 0x9A, "Retain not supported";
    /// QoS not supported.
    QosNotSupported = 0x9B, "QoS not supported";
    /// Use another server.
    UseAnotherServer = 0x9C, "Use another server";
    /// Server moved.
    ServerMoved = 0x9D, "Server moved";
    /// Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E, "Shared Subscriptions not supported";
    /// Connection rate exceeded.
    ConnectionRateExceeded = 0x9F, "Connection rate exceeded";
    /// Maximum connect time (DISCONNECT).
    MaximumConnectTime = 0xA0, "Maximum connect time";
    /// Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1, "Subscription Identifiers not supported";
    /// Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2, "Wildcard Subscriptions not supported";
}

impl ReasonCode {
    /// 0x00 in a DISCONNECT.
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode::Success;
    /// 0x00 in a SUBACK.
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode::Success;

    /// Whether this code reports a failure (0x80 and above, §2.4).
    pub const fn is_error(self) -> bool {
        self as u8 >= 0x80
    }

    /// The MQTT 3.1 / 3.1.1 CONNACK return code (§3.2.2.3 of 3.1.1) closest to this reason.
    pub const fn to_v3_connack(self) -> u8 {
        match self {
            ReasonCode::Success => 0,
            ReasonCode::UnsupportedProtocolVersion => 1,
            ReasonCode::ClientIdentifierNotValid => 2,
            ReasonCode::BadUserNameOrPassword | ReasonCode::BadAuthenticationMethod => 4,
            ReasonCode::NotAuthorized | ReasonCode::Banned => 5,
            _ => 3,
        }
    }

    /// The reason code for an MQTT 3.1 / 3.1.1 CONNACK return code (0 to 5).
    pub const fn from_v3_connack(code: u8) -> Option<Self> {
        Some(match code {
            0 => ReasonCode::Success,
            1 => ReasonCode::UnsupportedProtocolVersion,
            2 => ReasonCode::ClientIdentifierNotValid,
            3 => ReasonCode::ServerUnavailable,
            4 => ReasonCode::BadUserNameOrPassword,
            5 => ReasonCode::NotAuthorized,
            _ => return None,
        })
    }
}

impl From<ReasonCode> for u8 {
    fn from(code: ReasonCode) -> u8 {
        code as u8
    }
}

impl fmt::Display for ReasonCode {
    /// As `crate::text` writes it: `Not authorized (0x87)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.write_text(&mut text);
        f.write_str(&text)
    }
}

/// The reason codes each MQTT 5.0 packet may carry (§3.x, the Reason Code tables).
pub(crate) mod allowed {
    use super::ReasonCode::{self, *};

    pub(crate) const CONNACK: &[ReasonCode] = &[
        Success,
        UnspecifiedError,
        MalformedPacket,
        ProtocolError,
        ImplementationSpecificError,
        UnsupportedProtocolVersion,
        ClientIdentifierNotValid,
        BadUserNameOrPassword,
        NotAuthorized,
        ServerUnavailable,
        ServerBusy,
        Banned,
        BadAuthenticationMethod,
        TopicNameInvalid,
        PacketTooLarge,
        QuotaExceeded,
        PayloadFormatInvalid,
        RetainNotSupported,
        QosNotSupported,
        UseAnotherServer,
        ServerMoved,
        ConnectionRateExceeded,
    ];
    pub(crate) const PUBACK: &[ReasonCode] = &[
        Success,
        NoMatchingSubscribers,
        UnspecifiedError,
        ImplementationSpecificError,
        NotAuthorized,
        TopicNameInvalid,
        PacketIdentifierInUse,
        QuotaExceeded,
        PayloadFormatInvalid,
    ];
    /// PUBREC has the same list as PUBACK.
    pub(crate) const PUBREC: &[ReasonCode] = PUBACK;
    pub(crate) const PUBREL: &[ReasonCode] = &[Success, PacketIdentifierNotFound];
    /// PUBCOMP has the same list as PUBREL.
    pub(crate) const PUBCOMP: &[ReasonCode] = PUBREL;
    pub(crate) const SUBACK: &[ReasonCode] = &[
        Success,
        GrantedQos1,
        GrantedQos2,
        UnspecifiedError,
        ImplementationSpecificError,
        NotAuthorized,
        TopicFilterInvalid,
        PacketIdentifierInUse,
        QuotaExceeded,
        SharedSubscriptionsNotSupported,
        SubscriptionIdentifiersNotSupported,
        WildcardSubscriptionsNotSupported,
    ];
    pub(crate) const UNSUBACK: &[ReasonCode] = &[
        Success,
        NoSubscriptionExisted,
        UnspecifiedError,
        ImplementationSpecificError,
        NotAuthorized,
        TopicFilterInvalid,
        PacketIdentifierInUse,
    ];
    pub(crate) const DISCONNECT: &[ReasonCode] = &[
        Success,
        DisconnectWithWillMessage,
        UnspecifiedError,
        MalformedPacket,
        ProtocolError,
        ImplementationSpecificError,
        NotAuthorized,
        ServerBusy,
        ServerShuttingDown,
        KeepAliveTimeout,
        SessionTakenOver,
        TopicFilterInvalid,
        TopicNameInvalid,
        ReceiveMaximumExceeded,
        TopicAliasInvalid,
        PacketTooLarge,
        MessageRateTooHigh,
        QuotaExceeded,
        AdministrativeAction,
        PayloadFormatInvalid,
        RetainNotSupported,
        QosNotSupported,
        UseAnotherServer,
        ServerMoved,
        SharedSubscriptionsNotSupported,
        ConnectionRateExceeded,
        MaximumConnectTime,
        SubscriptionIdentifiersNotSupported,
        WildcardSubscriptionsNotSupported,
    ];
    pub(crate) const AUTH: &[ReasonCode] = &[Success, ContinueAuthentication, ReAuthenticate];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        let mut known = 0;
        for value in 0..=255u8 {
            if let Some(code) = ReasonCode::from_u8(value) {
                assert_eq!(u8::from(code), value);
                known += 1;
            }
        }
        // §2.4 lists 43 distinct values.
        assert_eq!(known, 43);
    }

    #[test]
    fn v3_connack_codes_round_trip() {
        for code in 0..=5 {
            let reason = ReasonCode::from_v3_connack(code).unwrap();
            assert_eq!(reason.to_v3_connack(), code);
        }
        assert_eq!(ReasonCode::from_v3_connack(6), None);
        assert_eq!(ReasonCode::Banned.to_v3_connack(), 5);
    }
}
