//! AUTH (§3.15, 5.0 only): a step of extended authentication.

use bytes::{BufMut, BytesMut};

use super::{Body, PacketType, ProtocolVersion, check_reason_code, read_reason_code};
use crate::error::ErrorKind;
use crate::properties::{AuthProperties, PropertySet};
use crate::reason::{ReasonCode, allowed};
use crate::wire::Reader;

/// An AUTH packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// The authentication method and data travel here.
    pub properties: AuthProperties,
}

impl Body for Auth {
    const TYPE: PacketType = PacketType::Auth;

    fn decode(_: u8, r: &mut Reader, _: ProtocolVersion) -> Result<Self, ErrorKind> {
        // Only remaining length 0 may omit the reason code and properties (§3.15.2.1).
        if !r.has_remaining() {
            return Ok(Auth::default());
        }
        let reason_code = read_reason_code(r, Self::TYPE, allowed::AUTH)?;
        // With `small`, checked and left empty: the client ignores them.
        #[cfg(feature = "small")]
        {
            crate::properties::check_ignored(r, "AUTH", crate::properties::AUTH_IGNORED)?;
            Ok(Auth {
                reason_code,
                properties: AuthProperties::EMPTY,
            })
        }
        #[cfg(not(feature = "small"))]
        Ok(Auth {
            reason_code,
            properties: AuthProperties::decode(r)?,
        })
    }

    #[inline]
    fn validate(&self, _: ProtocolVersion) -> Result<(), ErrorKind> {
        check_reason_code(self.reason_code, Self::TYPE, allowed::AUTH)
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn remaining_length(&self, _: ProtocolVersion) -> usize {
        if self.reason_code == ReasonCode::Success && self.properties.is_empty() {
            0
        } else {
            1 + self.properties.encoded_len()
        }
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write(&self, version: ProtocolVersion, dst: &mut BytesMut) {
        if self.remaining_length(version) > 0 {
            dst.put_u8(self.reason_code as u8);
            self.properties.encode(dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::packet::test_util::*;
    use crate::{ByteStr, Packet};

    #[test]
    fn auth_round_trips() {
        let v5 = ProtocolVersion::V5;
        assert_round_trip(&Packet::from(Auth::default()), &[0xf0, 0], v5);
        let mut auth = Auth {
            reason_code: ReasonCode::ContinueAuthentication,
            ..Default::default()
        };
        let emptied = Packet::from(auth.clone());
        auth.properties.authentication_method = Some(ByteStr::from_static("SCRAM"));
        auth.properties.authentication_data = Some(Bytes::from_static(b"\x00\x01"));
        let bytes = [
            0xf0, 0x0f, 0x18, 0x0d, 0x15, 0, 5, b'S', b'C', b'R', b'A', b'M', 0x16, 0, 2, 0, 1,
        ];
        assert_eq!(&encode(&Packet::from(auth.clone()), v5)[..], bytes);
        round_trip_ignored(&Packet::from(auth), &emptied, v5);
    }

    #[test]
    fn auth_is_5_0_only() {
        let err = decode_err(&[0xf0, 0], ProtocolVersion::V3_1_1);
        assert_eq!(err.kind(), ErrorKind::ReservedPacketType(15));
        let err = encode_err(&Packet::from(Auth::default()), ProtocolVersion::V3_1_1);
        assert_eq!(err.kind(), ErrorKind::PacketNotInVersion(PacketType::Auth));
        assert_eq!(
            decode_err(&[0x00, 0], ProtocolVersion::V5).kind(),
            ErrorKind::ReservedPacketType(0)
        );
        // A reason code with no property length is not one of AUTH's forms.
        assert_eq!(
            decode_err(&[0xf0, 1, 0x18], ProtocolVersion::V5).kind(),
            ErrorKind::Truncated
        );
        assert_eq!(
            decode_err(&[0xf0, 2, 0x87, 0], ProtocolVersion::V5).kind(),
            ErrorKind::InvalidReasonCode {
                packet: PacketType::Auth,
                code: 0x87
            }
        );
    }
}
