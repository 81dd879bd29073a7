//! UNSUBSCRIBE (§3.10): topic filters to remove.

use alloc::vec::Vec;
use bytes::{BufMut, BytesMut};

use super::{Body, PacketId, PacketType, ProtocolVersion, read_packet_id};
use crate::error::ErrorKind;
use crate::properties::{PropertySet, UnsubscribeProperties};
use crate::topic::TopicFilter;
use crate::wire::{self, Reader};

/// An UNSUBSCRIBE packet. Fixed header flags 0010.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The packet identifier the UNSUBACK will echo.
    pub packet_id: PacketId,
    /// The filters, exactly as they were subscribed; at least one.
    pub filters: Vec<TopicFilter>,
    /// MQTT 5.0 properties.
    pub properties: UnsubscribeProperties,
}

impl Body for Unsubscribe {
    const TYPE: PacketType = PacketType::Unsubscribe;

    fn decode(_: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, ErrorKind> {
        let packet_id = read_packet_id(r)?;
        let properties = if version.is_v5() {
            UnsubscribeProperties::decode(r)?
        } else {
            Default::default()
        };
        let mut filters = Vec::new();
        while r.has_remaining() {
            filters.push(r.topic_filter()?);
        }
        if filters.is_empty() {
            return Err(ErrorKind::NoUnsubscriptions);
        }
        Ok(Unsubscribe {
            packet_id,
            filters,
            properties,
        })
    }

    #[inline]
    fn validate(&self, _: ProtocolVersion) -> Result<(), ErrorKind> {
        if self.filters.is_empty() {
            return Err(ErrorKind::NoUnsubscriptions);
        }
        Ok(())
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn remaining_length(&self, version: ProtocolVersion) -> usize {
        let filters: usize = self
            .filters
            .iter()
            .map(|f| wire::binary_len(f.as_str().len()))
            .sum();
        let properties = if version.is_v5() {
            self.properties.encoded_len()
        } else {
            0
        };
        2 + properties + filters
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write(&self, version: ProtocolVersion, dst: &mut BytesMut) {
        dst.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(dst);
        }
        for filter in &self.filters {
            wire::put_binary(dst, filter.as_str().as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_util::*;
    use crate::properties::UserProperty;
    use crate::{ByteStr, Packet, ReasonCode};

    #[test]
    fn unsubscribe_in_both_versions() {
        let mut packet = Unsubscribe {
            packet_id: PacketId::new(2).unwrap(),
            filters: vec![
                TopicFilter::try_from("a/+").unwrap(),
                TopicFilter::try_from("$share/g/b").unwrap(),
            ],
            properties: Default::default(),
        };
        let mut bytes = vec![0xa2, 0x13, 0, 2, 0, 3, b'a', b'/', b'+', 0, 10];
        bytes.extend_from_slice(b"$share/g/b");
        assert_round_trip(
            &Packet::from(packet.clone()),
            &bytes,
            ProtocolVersion::V3_1_1,
        );
        packet.properties.user_properties = vec![UserProperty {
            name: ByteStr::from_static("a"),
            value: ByteStr::from_static(""),
        }];
        round_trip(&Packet::from(packet), ProtocolVersion::V5);
    }

    #[test]
    fn malformed_unsubscribes() {
        let err = decode_err(&[0xa2, 2, 0, 1], ProtocolVersion::V3_1_1);
        assert_eq!(
            (err.kind(), err.spec_ref()),
            (ErrorKind::NoUnsubscriptions, Some("MQTT-3.10.3-2"))
        );
        assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
        let err = decode_err(&[0xa0, 5, 0, 1, 0, 1, b'a'], ProtocolVersion::V3_1_1);
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidFlags {
                packet: PacketType::Unsubscribe,
                flags: 0
            }
        );
        let err = decode_err(&[0xa2, 6, 0, 1, 0, 2, b'#', b'a'], ProtocolVersion::V3_1_1);
        assert!(matches!(err.kind(), ErrorKind::InvalidTopicFilter(_)));
    }
}
