//! MQTT 5.0 properties (§2.2.2): one struct per packet, holding exactly the properties that
//! packet may carry, so a property in the wrong packet cannot even be built.
//!
//! Decoding rejects unknown identifiers, properties the packet may not carry, duplicates
//! (all but User Property and, in PUBLISH, Subscription Identifier) and out-of-range values.
//! MQTT 3.x packets have no properties: these structs are then empty and not encoded.

use alloc::{boxed::Box, vec::Vec};
use core::fmt;
use core::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ErrorKind;
use crate::packet::QoS;
use crate::string::ByteStr;
use crate::topic::TopicName;
use crate::wire::{self, Reader};

macro_rules! property_ids {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        /// A property identifier (§2.2.2.2).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[allow(missing_docs)]
        pub enum PropertyId {
            $($name = $value,)*
        }

        impl PropertyId {
            /// The identifier with this value, if MQTT 5.0 defines one.
            pub const fn from_u32(value: u32) -> Option<Self> {
                match value {
                    $($value => Some(PropertyId::$name),)*
                    _ => None,
                }
            }

            /// The name the specification gives this property.
            pub const fn name(self) -> &'static str {
                match self {
                    $(PropertyId::$name => $text,)*
                }
            }
        }
    };
}

property_ids! {
    PayloadFormatIndicator = 0x01, "Payload Format Indicator";
    MessageExpiryInterval = 0x02, "Message Expiry Interval";
    ContentType = 0x03, "Content Type";
    ResponseTopic = 0x08, "Response Topic";
    CorrelationData = 0x09, "Correlation Data";
    SubscriptionIdentifier = 0x0B, "Subscription Identifier";
    SessionExpiryInterval = 0x11, "Session Expiry Interval";
    AssignedClientIdentifier = 0x12, "Assigned Client Identifier";
    ServerKeepAlive = 0x13, "Server Keep Alive";
    AuthenticationMethod = 0x15, "Authentication Method";
    AuthenticationData = 0x16, "Authentication Data";
    RequestProblemInformation = 0x17, "Request Problem Information";
    WillDelayInterval = 0x18, "Will Delay Interval";
    RequestResponseInformation = 0x19, "Request Response Information";
    ResponseInformation = 0x1A, "Response Information";
    ServerReference = 0x1C, "Server Reference";
    ReasonString = 0x1F, "Reason String";
    ReceiveMaximum = 0x21, "Receive Maximum";
    TopicAliasMaximum = 0x22, "Topic Alias Maximum";
    TopicAlias = 0x23, "Topic Alias";
    MaximumQos = 0x24, "Maximum QoS";
    RetainAvailable = 0x25, "Retain Available";
    UserProperty = 0x26, "User Property";
    MaximumPacketSize = 0x27, "Maximum Packet Size";
    WildcardSubscriptionAvailable = 0x28, "Wildcard Subscription Available";
    SubscriptionIdentifierAvailable = 0x29, "Subscription Identifier Available";
    SharedSubscriptionAvailable = 0x2A, "Shared Subscription Available";
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A User Property (0x26): a name and value pair, which may repeat, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserProperty {
    /// The name.
    pub name: ByteStr,
    /// The value.
    pub value: ByteStr,
}

/// A Subscription Identifier (0x0B): 1 to 268,435,455.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The identifier, if `value` is in 1..=268,435,455.
    pub const fn new(value: u32) -> Option<Self> {
        match NonZeroU32::new(value) {
            Some(id) if value <= wire::VARINT_MAX => Some(SubscriptionId(id)),
            _ => None,
        }
    }

    /// The value.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

/// A property value's wire format (§2.2.2.2, the Data Type column).
pub(crate) trait Value: Sized {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, ErrorKind>;
    fn len(&self) -> usize;
    fn write(&self, dst: &mut BytesMut);
}

/// Byte properties whose only values are 0 and 1.
impl Value for bool {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, ErrorKind> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ErrorKind::InvalidPropertyValue(id)),
        }
    }
    fn len(&self) -> usize {
        1
    }
    fn write(&self, dst: &mut BytesMut) {
        dst.put_u8(u8::from(*self));
    }
}

/// Maximum QoS (0x24) is the only QoS-valued property, and may only be 0 or 1.
impl Value for QoS {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, ErrorKind> {
        match r.u8()? {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            _ => Err(ErrorKind::InvalidPropertyValue(id)),
        }
    }
    fn len(&self) -> usize {
        1
    }
    fn write(&self, dst: &mut BytesMut) {
        dst.put_u8(*self as u8);
    }
}

impl Value for u16 {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, ErrorKind> {
        r.u16()
    }
    fn len(&self) -> usize {
        2
    }
    fn write(&self, dst: &mut BytesMut) {
        dst.put_u16(*self);
    }
}

impl Value for NonZeroU16 {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, ErrorKind> {
        NonZeroU16::new(r.u16()?).ok_or(match id {
            PropertyId::TopicAlias => ErrorKind::TopicAliasZero,
            _ => ErrorKind::InvalidPropertyValue(id),
        })
    }
    fn len(&self) -> usize {
        2
    }
    fn write(&self, dst: &mut BytesMut) {
        dst.put_u16(self.get());
    }
}

impl Value for u32 {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, ErrorKind> {
        r.u32()
    }
    fn len(&self) -> usize {
        4
    }
    fn write(&self, dst: &mut BytesMut) {
        dst.put_u32(*self);
    }
}

impl Value for NonZeroU32 {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, ErrorKind> {
        NonZeroU32::new(r.u32()?).ok_or(ErrorKind::InvalidPropertyValue(id))
    }
    fn len(&self) -> usize {
        4
    }
    fn write(&self, dst: &mut BytesMut) {
        dst.put_u32(self.get());
    }
}

impl Value for SubscriptionId {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, ErrorKind> {
        SubscriptionId::new(r.varint()?).ok_or(ErrorKind::InvalidPropertyValue(id))
    }
    fn len(&self) -> usize {
        wire::varint_len(self.get() as usize)
    }
    fn write(&self, dst: &mut BytesMut) {
        wire::put_varint(dst, self.get() as usize);
    }
}

impl Value for ByteStr {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, ErrorKind> {
        r.string()
    }
    fn len(&self) -> usize {
        wire::binary_len(self.as_bytes().len())
    }
    fn write(&self, dst: &mut BytesMut) {
        wire::put_binary(dst, self.as_bytes());
    }
}

impl Value for TopicName {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, ErrorKind> {
        r.topic_name()
    }
    fn len(&self) -> usize {
        wire::binary_len(self.as_str().len())
    }
    fn write(&self, dst: &mut BytesMut) {
        wire::put_binary(dst, self.as_str().as_bytes());
    }
}

/// Binary Data properties (Correlation Data, Authentication Data).
impl Value for Bytes {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, ErrorKind> {
        r.binary()
    }
    fn len(&self) -> usize {
        wire::binary_len(Bytes::len(self))
    }
    fn write(&self, dst: &mut BytesMut) {
        wire::put_binary(dst, self);
    }
}

impl Value for UserProperty {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, ErrorKind> {
        Ok(UserProperty {
            name: r.string()?,
            value: r.string()?,
        })
    }
    fn len(&self) -> usize {
        Value::len(&self.name) + Value::len(&self.value)
    }
    fn write(&self, dst: &mut BytesMut) {
        Value::write(&self.name, dst);
        Value::write(&self.value, dst);
    }
}

/// Where a decoded property goes: an `Option` takes one, a `Vec` any number.
pub(crate) trait Slot {
    /// The slot holding nothing.
    const EMPTY: Self;
    fn fill(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), ErrorKind>;
    fn len(&self) -> usize;
    fn write(&self, id: PropertyId, dst: &mut BytesMut);
}

impl<T: Value> Slot for Option<T> {
    const EMPTY: Self = None;
    #[cfg(not(feature = "small"))]
    fn fill(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), ErrorKind> {
        if self.is_some() {
            return Err(ErrorKind::DuplicateProperty(id));
        }
        *self = Some(T::read(r, id)?);
        Ok(())
    }
    /// The same, the value read and stored in one step whose result is then passed on.
    #[cfg(feature = "small")]
    #[inline(never)]
    fn fill(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), ErrorKind> {
        if self.is_some() {
            return Err(ErrorKind::DuplicateProperty(id));
        }
        T::read(r, id).map(|v| *self = Some(v))
    }
    #[cfg_attr(feature = "small", inline(never))]
    fn len(&self) -> usize {
        self.as_ref().map_or(0, |v| 1 + v.len())
    }
    #[cfg_attr(feature = "small", inline(never))]
    fn write(&self, id: PropertyId, dst: &mut BytesMut) {
        if let Some(v) = self {
            dst.put_u8(id as u8);
            v.write(dst);
        }
    }
}

impl<T: Value> Slot for Vec<T> {
    const EMPTY: Self = Vec::new();
    #[cfg(not(feature = "small"))]
    fn fill(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), ErrorKind> {
        self.push(T::read(r, id)?);
        Ok(())
    }
    /// The same, as the `Option`'s.
    #[cfg(feature = "small")]
    #[inline(never)]
    fn fill(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), ErrorKind> {
        T::read(r, id).map(|v| self.push(v))
    }
    #[cfg_attr(feature = "small", inline(never))]
    fn len(&self) -> usize {
        self.iter().map(|v| 1 + v.len()).sum()
    }
    #[cfg_attr(feature = "small", inline(never))]
    fn write(&self, id: PropertyId, dst: &mut BytesMut) {
        for v in self {
            dst.put_u8(id as u8);
            v.write(dst);
        }
    }
}

/// The operations the packets need from every property set.
pub(crate) trait PropertySet: Default {
    /// Reads properties until `r` is exhausted (it is limited to the Property Length).
    fn read_properties(&mut self, r: &mut Reader) -> Result<(), ErrorKind>;

    /// Reads the Property Length and the properties it covers into `self`, which is empty.
    /// Filling in place spares moving the struct, which matters on the PUBLISH path.
    fn decode_into(&mut self, r: &mut Reader) -> Result<(), ErrorKind> {
        let len = r.varint()? as usize;
        if len == 0 {
            return Ok(());
        }
        r.limited(len, |r| self.read_properties(r))
    }

    /// Reads the Property Length and the properties it covers, boxed, or `None` if there are
    /// none: for packets that are moved and queued often and rarely carry properties.
    fn decode_boxed(r: &mut Reader) -> Result<Option<Box<Self>>, ErrorKind> {
        let len = r.varint()? as usize;
        if len == 0 {
            return Ok(None);
        }
        let mut set = Box::<Self>::default();
        r.limited(len, |r| set.read_properties(r))?;
        Ok(Some(set))
    }

    /// Reads the Property Length and the properties it covers.
    fn decode(r: &mut Reader) -> Result<Self, ErrorKind> {
        let mut set = Self::default();
        set.decode_into(r)?;
        Ok(set)
    }
    /// The length of the properties, without the Property Length in front.
    fn properties_len(&self) -> usize;
    /// Writes the properties, without the Property Length in front.
    fn write_properties(&self, dst: &mut BytesMut);

    /// The encoded length including the Property Length in front.
    fn encoded_len(&self) -> usize {
        let len = self.properties_len();
        wire::varint_len(len) + len
    }

    /// Writes the Property Length and the properties.
    fn encode(&self, dst: &mut BytesMut) {
        wire::put_varint(dst, self.properties_len());
        self.write_properties(dst);
    }
}

/// With the feature `small` (the browser client): checks the Property Length and the
/// properties it covers as a set whose fields are `allowed` would read them (`packet` names
/// it in errors: the same errors, in the same order), keeping no value. For the sets the
/// client ignores, which it leaves empty: [`ACK_IGNORED`], [`DISCONNECT_IGNORED`] and
/// [`AUTH_IGNORED`]. Each `allowed` property not read below as a Four Byte Integer, Binary
/// Data or a pair is a UTF-8 Encoded String.
#[cfg(feature = "small")]
pub(crate) fn check_ignored(
    r: &mut Reader,
    packet: &'static str,
    allowed: &[PropertyId],
) -> Result<(), ErrorKind> {
    let len = r.varint()? as usize;
    r.limited(len, |r| {
        // One bit per identifier seen (all are below 64).
        let mut seen = 0u64;
        while r.has_remaining() {
            let raw = r.varint()?;
            let id = PropertyId::from_u32(raw).ok_or(ErrorKind::UnknownProperty(raw))?;
            if !allowed.contains(&id) {
                return Err(ErrorKind::PropertyNotAllowed {
                    packet,
                    property: id,
                });
            }
            let bit = 1u64 << (id as u8);
            if id != PropertyId::UserProperty && seen & bit != 0 {
                return Err(ErrorKind::DuplicateProperty(id));
            }
            seen |= bit;
            // The value: a Four Byte Integer, Binary Data, or UTF-8 Encoded Strings (a
            // User Property is a pair of them), each read and dropped.
            let strings = match id {
                PropertyId::SessionExpiryInterval => r.u32().map(|_| 0),
                PropertyId::AuthenticationData => r.binary().map(|_| 0),
                PropertyId::UserProperty => Ok(2),
                _ => Ok(1),
            }?;
            for _ in 0..strings {
                r.string()?;
            }
        }
        Ok(())
    })
}

/// With `small`: the fields of [`AckProperties`], for [`check_ignored`].
#[cfg(feature = "small")]
pub(crate) const ACK_IGNORED: &[PropertyId] = &[PropertyId::ReasonString, PropertyId::UserProperty];

/// With `small`: an acknowledgement's properties, checked if `present` (for the two
/// decoders of acknowledgements; inlined, as out of line it is 11 B larger gzipped).
#[cfg(feature = "small")]
impl AckProperties {
    #[inline(always)]
    pub(crate) fn check_ignored(r: &mut Reader, present: bool) -> Result<(), ErrorKind> {
        match present {
            true => check_ignored(r, "acknowledgement", ACK_IGNORED),
            false => Ok(()),
        }
    }
}

/// With `small`: the fields of [`DisconnectProperties`], for [`check_ignored`].
#[cfg(feature = "small")]
pub(crate) const DISCONNECT_IGNORED: &[PropertyId] = &[
    PropertyId::SessionExpiryInterval,
    PropertyId::ReasonString,
    PropertyId::UserProperty,
    PropertyId::ServerReference,
];

/// With `small`: the fields of [`AuthProperties`], for [`check_ignored`].
#[cfg(feature = "small")]
pub(crate) const AUTH_IGNORED: &[PropertyId] = &[
    PropertyId::AuthenticationMethod,
    PropertyId::AuthenticationData,
    PropertyId::ReasonString,
    PropertyId::UserProperty,
];

macro_rules! property_set {
    (
        $(#[$doc:meta])*
        $name:ident in $packet:literal {
            $($(#[$fdoc:meta])* $field:ident: $ty:ty = $id:ident,)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl $name {
            /// No property set: what [`Default::default`] gives, usable in `const`s and statics.
            pub const EMPTY: Self = $name { $($field: Slot::EMPTY,)* };

            /// Whether no property is set.
            pub fn is_empty(&self) -> bool {
                PropertySet::properties_len(self) == 0
            }
        }

        impl PropertySet for $name {
            #[cfg(not(feature = "small"))]
            fn read_properties(&mut self, r: &mut Reader) -> Result<(), ErrorKind> {
                while r.has_remaining() {
                    let raw = r.varint()?;
                    let id = PropertyId::from_u32(raw).ok_or(ErrorKind::UnknownProperty(raw))?;
                    match id {
                        $(PropertyId::$id => Slot::fill(&mut self.$field, id, r)?,)*
                        #[allow(unreachable_patterns)]
                        property => {
                            return Err(ErrorKind::PropertyNotAllowed { packet: $packet, property })
                        }
                    }
                }
                Ok(())
            }

            /// The same reader, the error of every field's `fill` passed on in one place
            /// rather than one per field.
            #[cfg(feature = "small")]
            #[inline(never)]
            fn read_properties(&mut self, r: &mut Reader) -> Result<(), ErrorKind> {
                while r.has_remaining() {
                    let raw = r.varint()?;
                    let id = PropertyId::from_u32(raw).ok_or(ErrorKind::UnknownProperty(raw))?;
                    let filled = match id {
                        $(PropertyId::$id => Slot::fill(&mut self.$field, id, r),)*
                        #[allow(unreachable_patterns)]
                        property => Err(ErrorKind::PropertyNotAllowed { packet: $packet, property }),
                    };
                    filled?;
                }
                Ok(())
            }

            #[cfg_attr(not(feature = "small"), inline(always))]
            fn properties_len(&self) -> usize {
                0 $(+ Slot::len(&self.$field))*
            }

            #[cfg_attr(not(feature = "small"), inline(always))]
            fn write_properties(&self, dst: &mut BytesMut) {
                $(Slot::write(&self.$field, PropertyId::$id, dst);)*
            }
        }
    };
}

property_set! {
    /// CONNECT properties (§3.1.2.11).
    ConnectProperties in "CONNECT" {
        /// Seconds the session outlives the connection (0: ends with it; `u32::MAX`: never).
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// How many QoS 1/2 PUBLISH the client processes at once (default 65,535).
        receive_maximum: Option<NonZeroU16> = ReceiveMaximum,
        /// The largest packet the client accepts.
        maximum_packet_size: Option<NonZeroU32> = MaximumPacketSize,
        /// The highest topic alias the client accepts (default 0: none).
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        /// Whether the server may send Response Information in the CONNACK.
        request_response_information: Option<bool> = RequestResponseInformation,
        /// Whether the server may send Reason Strings and User Properties on failures.
        request_problem_information: Option<bool> = RequestProblemInformation,
        /// User properties.
        user_properties: Vec<UserProperty> = UserProperty,
        /// The extended authentication method.
        authentication_method: Option<ByteStr> = AuthenticationMethod,
        /// The extended authentication data.
        authentication_data: Option<Bytes> = AuthenticationData,
    }
}

property_set! {
    /// Will properties, in the CONNECT payload (§3.1.3.2).
    WillProperties in "Will Properties" {
        /// Seconds the server waits before publishing the will.
        will_delay_interval: Option<u32> = WillDelayInterval,
        /// Whether the payload is UTF-8 (true) or unspecified bytes.
        payload_format_indicator: Option<bool> = PayloadFormatIndicator,
        /// Lifetime of the will message in seconds.
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        /// The content type of the payload.
        content_type: Option<ByteStr> = ContentType,
        /// Topic name for a response.
        response_topic: Option<TopicName> = ResponseTopic,
        /// Correlation data for a response.
        correlation_data: Option<Bytes> = CorrelationData,
        /// User properties.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

property_set! {
    /// CONNACK properties (§3.2.2.3).
    ConnAckProperties in "CONNACK" {
        /// The session expiry interval the server uses, if not the client's.
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// How many QoS 1/2 PUBLISH the server processes at once (default 65,535).
        receive_maximum: Option<NonZeroU16> = ReceiveMaximum,
        /// The highest QoS the server supports (default 2).
        maximum_qos: Option<QoS> = MaximumQos,
        /// Whether the server supports retained messages (default true).
        retain_available: Option<bool> = RetainAvailable,
        /// The largest packet the server accepts.
        maximum_packet_size: Option<NonZeroU32> = MaximumPacketSize,
        /// The client identifier the server assigned to a client that sent an empty one.
        assigned_client_identifier: Option<ByteStr> = AssignedClientIdentifier,
        /// The highest topic alias the server accepts (default 0: none).
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        /// A human-readable diagnostic.
        reason_string: Option<ByteStr> = ReasonString,
        /// User properties.
        user_properties: Vec<UserProperty> = UserProperty,
        /// Whether the server supports wildcard subscriptions (default true).
        wildcard_subscription_available: Option<bool> = WildcardSubscriptionAvailable,
        /// Whether the server supports subscription identifiers (default true).
        subscription_identifier_available: Option<bool> = SubscriptionIdentifierAvailable,
        /// Whether the server supports shared subscriptions (default true).
        shared_subscription_available: Option<bool> = SharedSubscriptionAvailable,
        /// The keep alive the client must use instead of its own.
        server_keep_alive: Option<u16> = ServerKeepAlive,
        /// The basis for a response topic.
        response_information: Option<ByteStr> = ResponseInformation,
        /// Another server the client should use.
        server_reference: Option<ByteStr> = ServerReference,
        /// The extended authentication method.
        authentication_method: Option<ByteStr> = AuthenticationMethod,
        /// The extended authentication data.
        authentication_data: Option<Bytes> = AuthenticationData,
    }
}

property_set! {
    /// PUBLISH properties (§3.3.2.3).
    PublishProperties in "PUBLISH" {
        /// Whether the payload is UTF-8 (true) or unspecified bytes.
        payload_format_indicator: Option<bool> = PayloadFormatIndicator,
        /// Lifetime of the message in seconds.
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        /// An alias standing for the topic name on this connection.
        topic_alias: Option<NonZeroU16> = TopicAlias,
        /// Topic name for a response.
        response_topic: Option<TopicName> = ResponseTopic,
        /// Correlation data for a response.
        correlation_data: Option<Bytes> = CorrelationData,
        /// User properties.
        user_properties: Vec<UserProperty> = UserProperty,
        /// The identifiers of the subscriptions this message matched (server to client).
        subscription_identifiers: Vec<SubscriptionId> = SubscriptionIdentifier,
        /// The content type of the payload.
        content_type: Option<ByteStr> = ContentType,
    }
}

property_set! {
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK properties (§3.4.2.2 and the
    /// sections after it): a reason string and user properties.
    AckProperties in "acknowledgement" {
        /// A human-readable diagnostic.
        reason_string: Option<ByteStr> = ReasonString,
        /// User properties.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

property_set! {
    /// SUBSCRIBE properties (§3.8.2.1).
    SubscribeProperties in "SUBSCRIBE" {
        /// The identifier to tag matching messages with.
        subscription_identifier: Option<SubscriptionId> = SubscriptionIdentifier,
        /// User properties.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

property_set! {
    /// UNSUBSCRIBE properties (§3.10.2.1).
    UnsubscribeProperties in "UNSUBSCRIBE" {
        /// User properties.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

property_set! {
    /// DISCONNECT properties (§3.14.2.2).
    DisconnectProperties in "DISCONNECT" {
        /// A new session expiry interval (client to server only).
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// A human-readable diagnostic.
        reason_string: Option<ByteStr> = ReasonString,
        /// User properties.
        user_properties: Vec<UserProperty> = UserProperty,
        /// Another server the client should use.
        server_reference: Option<ByteStr> = ServerReference,
    }
}

property_set! {
    /// AUTH properties (§3.15.2.2).
    AuthProperties in "AUTH" {
        /// The extended authentication method.
        authentication_method: Option<ByteStr> = AuthenticationMethod,
        /// The extended authentication data.
        authentication_data: Option<Bytes> = AuthenticationData,
        /// A human-readable diagnostic.
        reason_string: Option<ByteStr> = ReasonString,
        /// User properties.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

/// With `small`: [`check_ignored`] accepts and refuses what the sets' own readers do.
#[cfg(all(test, feature = "small"))]
mod ignored_tests {
    use super::*;

    fn check(bytes: &[u8], packet: &'static str, allowed: &[PropertyId]) -> Result<(), ErrorKind> {
        check_ignored(
            &mut Reader::new(Bytes::copy_from_slice(bytes)),
            packet,
            allowed,
        )
    }

    fn read<P: PropertySet>(bytes: &[u8]) -> Result<(), ErrorKind> {
        P::decode(&mut Reader::new(Bytes::copy_from_slice(bytes))).map(drop)
    }

    #[test]
    fn the_same_results_as_the_sets_readers() {
        let samples: &[&[u8]] = &[
            &[0],
            &[5, 0x1f, 0, 2, b'n', b'o'],
            &[10, 0x1f, 0, 2, b'n', b'o', 0x1f, 0, 2, b'n', b'o'],
            &[10, 0x26, 0, 1, b'a', 0, 0, 0x26, 0, 0, 0, 0],
            &[2, 0x7f, 0],
            &[3, 0x23, 0, 1],
            &[4, 0x1f, 0, 9, b'n'],
            &[4, 0x1f, 0, 1, 0xff],
            &[6, 0x1f, 0, 1, b'n'],
            &[5, 0x11, 0, 0, 0, 1],
            &[10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2],
            &[4, 0x1c, 0, 1, b's'],
            &[3, 0x16, 0, 0, 0x15, 0, 1, b'm'],
            &[6, 0x16, 0, 1, 0xff, 0x15, 0, 0],
            &[7, 0x16, 0, 0, 0x16, 0, 1, 0],
            &[1, 0x80],
        ];
        for &bytes in samples {
            let ack = check(bytes, "acknowledgement", ACK_IGNORED);
            assert_eq!(ack, read::<AckProperties>(bytes), "{bytes:x?}");
            let disconnect = check(bytes, "DISCONNECT", DISCONNECT_IGNORED);
            assert_eq!(
                disconnect,
                read::<DisconnectProperties>(bytes),
                "{bytes:x?}"
            );
            let auth = check(bytes, "AUTH", AUTH_IGNORED);
            assert_eq!(auth, read::<AuthProperties>(bytes), "{bytes:x?}");
        }
    }
}
