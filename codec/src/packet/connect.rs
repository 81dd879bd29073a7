//! CONNECT (§3.1): the first packet a client sends, which also fixes the protocol version.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Body, PacketType, ProtocolVersion, QoS};
use crate::error::{DecodeError, ErrorKind};
use crate::properties::{ConnectProperties, PropertySet, WillProperties};
use crate::string::ByteStr;
use crate::topic::TopicName;
use crate::wire::{self, Reader};

const USERNAME: u8 = 0x80;
const PASSWORD: u8 = 0x40;
const WILL_RETAIN: u8 = 0x20;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_FLAG: u8 = 0x04;
const CLEAN_START: u8 = 0x02;
const RESERVED: u8 = 0x01;

/// A CONNECT packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The protocol version the client speaks; a CONNECT is always encoded in its own version.
    pub protocol_version: ProtocolVersion,
    /// Clean Session (3.x) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// The client identifier; empty asks the server to assign one.
    pub client_id: ByteStr,
    /// The will message.
    pub will: Option<Will>,
    /// The user name.
    pub username: Option<ByteStr>,
    /// The password (binary data).
    pub password: Option<Bytes>,
    /// MQTT 5.0 properties.
    pub properties: ConnectProperties,
}

/// The will message of a CONNECT (§3.1.2.5), published if the connection ends abnormally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    /// The topic to publish to.
    pub topic: TopicName,
    /// The payload.
    pub payload: Bytes,
    /// The QoS to publish at.
    pub qos: QoS,
    /// Whether to publish it retained.
    pub retain: bool,
    /// MQTT 5.0 will properties.
    pub properties: WillProperties,
}

impl Connect {
    /// A CONNECT with the given version and client identifier, clean start, a 60 s keep alive
    /// and nothing else.
    pub fn new(protocol_version: ProtocolVersion, client_id: ByteStr) -> Self {
        Connect {
            protocol_version,
            clean_start: true,
            keep_alive: 60,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    #[inline]
    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        if let Some(will) = &self.will {
            flags |= WILL_FLAG | ((will.qos as u8) << WILL_QOS_SHIFT);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.clean_start {
            flags |= CLEAN_START;
        }
        flags
    }
}

/// Reads the protocol name and level, which decide the rules for the rest of the packet.
fn read_version(r: &mut Reader) -> Result<ProtocolVersion, DecodeError> {
    // Until the level is known, errors are reported in 3.1.1 terms: a client of any version
    // understands a 3.1.1 CONNACK refusing its protocol version (§3.1.2.2).
    let v311 = |kind| DecodeError::new(kind, ProtocolVersion::V3_1_1);
    let name = r.string().map_err(v311)?;
    let level = r.u8().map_err(v311)?;
    if name != "MQTT" && name != "MQIsdp" {
        return Err(v311(ErrorKind::InvalidProtocolName));
    }
    match ProtocolVersion::from_level(level) {
        Some(version) if version.protocol_name() == name.as_str() => Ok(version),
        _ => Err(v311(ErrorKind::UnsupportedProtocolVersion(level))),
    }
}

/// Decodes a CONNECT by the rules of the version it announces.
pub(super) fn decode_packet(r: &mut Reader) -> Result<Connect, DecodeError> {
    let version = read_version(r)?;
    let connect = decode_after_version(version, r).map_err(|k| DecodeError::new(k, version))?;
    if r.has_remaining() {
        return Err(DecodeError::new(
            ErrorKind::TrailingBytes(PacketType::Connect),
            version,
        ));
    }
    Ok(connect)
}

fn decode_after_version(version: ProtocolVersion, r: &mut Reader) -> Result<Connect, ErrorKind> {
    let flags = r.u8()?;
    if flags & RESERVED != 0 {
        return Err(ErrorKind::ConnectReservedFlag);
    }
    let will_qos = (flags >> WILL_QOS_SHIFT) & 0b11;
    let has_will = flags & WILL_FLAG != 0;
    if !has_will && will_qos != 0 {
        return Err(ErrorKind::WillQosWithoutWill);
    }
    if !has_will && flags & WILL_RETAIN != 0 {
        return Err(ErrorKind::WillRetainWithoutWill);
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(ErrorKind::InvalidWillQos)?;
    if !version.is_v5() && flags & PASSWORD != 0 && flags & USERNAME == 0 {
        return Err(ErrorKind::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties = if version.is_v5() {
        ConnectProperties::decode(r)?
    } else {
        Default::default()
    };
    let client_id = r.string()?;
    let will = if has_will {
        let properties = if version.is_v5() {
            WillProperties::decode(r)?
        } else {
            Default::default()
        };
        let topic = r.topic_name()?;
        if topic.is_empty() {
            return Err(ErrorKind::InvalidTopicName(crate::TopicError::Empty));
        }
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: flags & WILL_RETAIN != 0,
            properties,
        })
    } else {
        None
    };
    let username = if flags & USERNAME != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let password = if flags & PASSWORD != 0 {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol_version: version,
        clean_start: flags & CLEAN_START != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

impl Body for Connect {
    const TYPE: PacketType = PacketType::Connect;

    fn decode(_: u8, r: &mut Reader, _: ProtocolVersion) -> Result<Self, ErrorKind> {
        decode_packet(r).map_err(|e| e.kind())
    }

    #[inline]
    fn validate(&self, _: ProtocolVersion) -> Result<(), ErrorKind> {
        let v5 = self.protocol_version.is_v5();
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(ErrorKind::PasswordWithoutUsername);
        }
        if self
            .password
            .as_ref()
            .is_some_and(|p| p.len() > crate::MAX_STRING_LEN)
        {
            return Err(ErrorKind::Truncated);
        }
        if let Some(will) = &self.will {
            if will.topic.is_empty() {
                return Err(ErrorKind::InvalidTopicName(crate::TopicError::Empty));
            }
            if will.payload.len() > crate::MAX_STRING_LEN {
                return Err(ErrorKind::Truncated);
            }
        }
        Ok(())
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn remaining_length(&self, _: ProtocolVersion) -> usize {
        let version = self.protocol_version;
        let v5 = version.is_v5();
        let mut len = wire::binary_len(version.protocol_name().len()) + 1 + 1 + 2;
        if v5 {
            len += self.properties.encoded_len();
        }
        len += wire::binary_len(self.client_id.len());
        if let Some(will) = &self.will {
            if v5 {
                len += will.properties.encoded_len();
            }
            len +=
                wire::binary_len(will.topic.as_str().len()) + wire::binary_len(will.payload.len());
        }
        len += self
            .username
            .as_ref()
            .map_or(0, |u| wire::binary_len(u.len()));
        len + self
            .password
            .as_ref()
            .map_or(0, |p| wire::binary_len(p.len()))
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write(&self, _: ProtocolVersion, dst: &mut BytesMut) {
        let version = self.protocol_version;
        wire::put_binary(dst, version.protocol_name().as_bytes());
        dst.put_u8(version.level());
        dst.put_u8(self.flags());
        dst.put_u16(self.keep_alive);
        if version.is_v5() {
            self.properties.encode(dst);
        }
        wire::put_binary(dst, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            if version.is_v5() {
                will.properties.encode(dst);
            }
            wire::put_binary(dst, will.topic.as_str().as_bytes());
            wire::put_binary(dst, &will.payload);
        }
        if let Some(username) = &self.username {
            wire::put_binary(dst, username.as_bytes());
        }
        if let Some(password) = &self.password {
            wire::put_binary(dst, password);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_util::*;
    use crate::{Packet, ReasonCode};

    /// A 3.1.1 CONNECT with every field: client id, will, user name and password.
    const V311_FULL: &[u8] = &[
        0x10, 0x21, // CONNECT, remaining length 33
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // protocol name, level 4
        0xce, // flags: user, password, will QoS 1, will, clean session
        0x00, 0x3c, // keep alive 60
        0x00, 0x03, b'c', b'i', b'd', // client id
        0x00, 0x01, b'w', // will topic
        0x00, 0x03, b'b', b'y', b'e', // will payload
        0x00, 0x04, b'u', b's', b'e', b'r', // user name
        0x00, 0x02, b'p', b'w', // password
    ];

    #[test]
    fn v311_full_connect() {
        let Packet::Connect(c) = decode_one(V311_FULL, ProtocolVersion::V5) else {
            panic!()
        };
        assert_eq!(c.protocol_version, ProtocolVersion::V3_1_1);
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 60);
        assert_eq!(c.client_id, "cid");
        let will = c.will.as_ref().unwrap();
        assert_eq!((will.topic.as_str(), &will.payload[..]), ("w", &b"bye"[..]));
        assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, false));
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
        assert_round_trip(&Packet::Connect(c), V311_FULL, ProtocolVersion::V3_1_1);
    }

    #[test]
    fn v31_connect_uses_mqisdp() {
        let bytes = [
            0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x0a,
            0x00, 0x03, b'a', b'b', b'c',
        ];
        let Packet::Connect(c) = decode_one(&bytes, ProtocolVersion::V5) else {
            panic!()
        };
        assert_eq!(c.protocol_version, ProtocolVersion::V3_1);
        assert_eq!(c.keep_alive, 10);
        assert_round_trip(&Packet::Connect(c), &bytes, ProtocolVersion::V3_1);
    }

    #[test]
    fn v5_connect_with_properties() {
        let mut c = Connect::new(ProtocolVersion::V5, ByteStr::from_static("dash-1"));
        c.keep_alive = 30;
        c.properties.session_expiry_interval = Some(3600);
        c.properties.receive_maximum = std::num::NonZeroU16::new(10);
        let expected = [
            0x10, 0x1b, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x1e, 0x08, 0x11,
            0x00, 0x00, 0x0e, 0x10, 0x21, 0x00, 0x0a, 0x00, 0x06, b'd', b'a', b's', b'h', b'-',
            b'1',
        ];
        assert_round_trip(&Packet::from(c), &expected, ProtocolVersion::V5);
    }

    #[test]
    fn unsupported_level_is_reported_in_311_terms() {
        let bytes = [
            0x10, 0x0a, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, 0x02, 0x00, 0x0a,
        ];
        let err = decode_err(&bytes, ProtocolVersion::V5);
        assert_eq!(err.kind(), ErrorKind::UnsupportedProtocolVersion(6));
        assert_eq!(err.version(), ProtocolVersion::V3_1_1);
        assert_eq!(err.reason_code(), ReasonCode::UnsupportedProtocolVersion);
        assert_eq!(err.reason_code().to_v3_connack(), 1);
        assert_eq!(err.spec_ref(), Some("MQTT-3.1.2-2"));
    }

    #[test]
    fn malformed_connects() {
        let base = |name: &[u8], level: u8, flags: u8| {
            let mut b = vec![0x10, 0];
            b.extend_from_slice(&(name.len() as u16).to_be_bytes());
            b.extend_from_slice(name);
            b.extend_from_slice(&[level, flags, 0, 10, 0, 1, b'c']);
            b[1] = (b.len() - 2) as u8;
            b
        };
        let cases: &[(Vec<u8>, ErrorKind, &str)] = &[
            (
                base(b"MQTX", 4, 2),
                ErrorKind::InvalidProtocolName,
                "MQTT-3.1.2-1",
            ),
            (
                base(b"MQIsdp", 4, 2),
                ErrorKind::UnsupportedProtocolVersion(4),
                "MQTT-3.1.2-2",
            ),
            (
                base(b"MQTT", 4, 3),
                ErrorKind::ConnectReservedFlag,
                "MQTT-3.1.2-3",
            ),
            (
                base(b"MQTT", 4, 0x0a),
                ErrorKind::WillQosWithoutWill,
                "MQTT-3.1.2-13",
            ),
            (
                base(b"MQTT", 4, 0x22),
                ErrorKind::WillRetainWithoutWill,
                "MQTT-3.1.2-15",
            ),
            (
                base(b"MQTT", 4, 0x1e),
                ErrorKind::InvalidWillQos,
                "MQTT-3.1.2-14",
            ),
            (
                base(b"MQTT", 4, 0x42),
                ErrorKind::PasswordWithoutUsername,
                "MQTT-3.1.2-22",
            ),
        ];
        for (bytes, kind, spec) in cases {
            let err = decode_err(bytes, ProtocolVersion::V5);
            assert_eq!(err.kind(), *kind, "{bytes:x?}");
            assert_eq!(err.spec_ref(), Some(*spec));
        }
        // 5.0 numbers the will rules differently and allows a password without a user name.
        let err = decode_err(&base(b"MQTT", 5, 0x1e), ProtocolVersion::V5);
        assert_eq!(
            (err.kind(), err.spec_ref()),
            (ErrorKind::InvalidWillQos, Some("MQTT-3.1.2-12"))
        );
        assert_eq!(err.reason_code(), ReasonCode::MalformedPacket);
    }

    #[test]
    fn v5_password_without_username_is_allowed() {
        let mut c = Connect::new(ProtocolVersion::V5, ByteStr::from_static("c"));
        c.password = Some(Bytes::from_static(b"token"));
        round_trip(&Packet::from(c.clone()), ProtocolVersion::V5);
        c.protocol_version = ProtocolVersion::V3_1_1;
        let err = encode_err(&Packet::from(c), ProtocolVersion::V3_1_1);
        assert_eq!(err.kind(), ErrorKind::PasswordWithoutUsername);
    }
}
