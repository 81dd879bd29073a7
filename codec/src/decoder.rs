//! The incremental decoder: bytes in, whole packets out, however the bytes were split.

use bytes::{Buf, BytesMut};

use crate::error::{DecodeError, ErrorKind};
use crate::packet::{self, Packet, ProtocolVersion};
use crate::wire::VARINT_MAX;

/// The largest packet MQTT can express: a 5-byte fixed header and the largest remaining length.
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + VARINT_MAX;

/// Decodes packets from a growing buffer.
///
/// Drive it by appending received bytes to a `BytesMut` and calling [`Decoder::decode`]
/// until it returns `Ok(None)` ("need more bytes"). Each packet is split off the front of
/// the buffer; its payload and strings share that memory instead of being copied.
///
/// The first byte and the remaining length are checked as soon as they arrive, and the
/// packet size against [`Decoder::max_packet_size`] before anything more is waited for, so a
/// hostile peer can neither make the caller buffer an oversize packet nor keep a non-MQTT
/// stream open. After an error the connection must be closed. The buffer is then as it
/// was if the fixed header was at fault (the first byte, the remaining length, the size),
/// and without the failing packet if its body was.
///
/// ```
/// use bytes::BytesMut;
/// use midge_codec::{Decoder, Packet, ProtocolVersion};
///
/// let mut decoder = Decoder::new(ProtocolVersion::V3_1_1);
/// let mut buf = BytesMut::from(&[0xc0, 0x00, 0xd0][..]); // PINGREQ, then half a PINGRESP
/// assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Packet::PingReq));
/// assert_eq!(decoder.decode(&mut buf).unwrap(), None);
/// buf.extend_from_slice(&[0x00]);
/// assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Packet::PingResp));
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    version: ProtocolVersion,
    max_packet_size: u32,
}

impl Decoder {
    /// A decoder for `version` that accepts packets of any size MQTT allows.
    ///
    /// A server that does not know the version yet can pass any: the CONNECT announces its
    /// own, and the decoder adopts it (see [`Decoder::decode`]).
    pub fn new(version: ProtocolVersion) -> Self {
        Decoder {
            version,
            max_packet_size: MAX_PACKET_SIZE,
        }
    }

    /// Limits the size of a whole packet, fixed header included (the MQTT 5.0 Maximum Packet
    /// Size, which this side announces to its peer).
    pub fn with_max_packet_size(mut self, max: u32) -> Self {
        self.max_packet_size = max;
        self
    }

    /// The current packet size limit.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// The protocol version whose rules apply.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Changes the protocol version, e.g. once a client knows what the server accepted.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// Splits the next whole packet off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed; `buf` is then untouched. A decoded CONNECT
    /// switches the decoder to the protocol version it announces.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        self.next::<false>(buf)
    }

    /// [`Decoder::decode`] for a client: CONNECT, SUBSCRIBE, UNSUBSCRIBE and PINGREQ, which a
    /// server never sends, are a protocol error ([`ErrorKind::ClientOnlyPacket`]), and their
    /// decoders stay out of a binary that only uses this.
    pub fn decode_from_server(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Packet>, DecodeError> {
        self.next::<true>(buf)
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    #[cfg_attr(feature = "small", inline(never))]
    fn next<const FROM_SERVER: bool>(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Packet>, DecodeError> {
        let err = |kind| DecodeError::new(kind, self.version);
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        packet::check_first_byte(first, self.version).map_err(err)?;
        let Some((remaining, header_len)) = remaining_length(buf).map_err(err)? else {
            return Ok(None);
        };
        let size = header_len + remaining;
        if size > self.max_packet_size as usize {
            return Err(err(ErrorKind::PacketTooLarge {
                size,
                maximum: self.max_packet_size,
            }));
        }
        if buf.len() < size {
            return Ok(None);
        }
        let mut body = buf.split_to(size).freeze();
        body.advance(header_len);
        packet::decode::<FROM_SERVER>(first, body, &mut self.version)
    }
}

/// Parses the remaining length after the first byte: `Ok(Some((value, fixed header length)))`,
/// or `Ok(None)` when its bytes have not all arrived.
fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, ErrorKind> {
    let mut value = 0;
    for (i, &byte) in buf.iter().skip(1).take(4).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, 2 + i)));
        }
    }
    if buf.len() >= 5 {
        Err(ErrorKind::MalformedRemainingLength)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_util::*;
    use crate::{PacketType, ReasonCode};

    #[test]
    fn remaining_length_boundaries() {
        // The examples of §1.5.5 / §2.2.3.
        let cases: &[(&[u8], usize)] = &[
            (&[0x00], 0),
            (&[0x7f], 127),
            (&[0x80, 0x01], 128),
            (&[0xff, 0x7f], 16_383),
            (&[0x80, 0x80, 0x01], 16_384),
            (&[0xff, 0xff, 0x7f], 2_097_151),
            (&[0x80, 0x80, 0x80, 0x01], 2_097_152),
            (&[0xff, 0xff, 0xff, 0x7f], 268_435_455),
        ];
        for (bytes, value) in cases {
            let mut buf = vec![0x30];
            buf.extend_from_slice(bytes);
            assert_eq!(remaining_length(&buf), Ok(Some((*value, 1 + bytes.len()))));
            assert_eq!(remaining_length(&buf[..buf.len() - 1]), Ok(None));
        }
    }

    #[test]
    fn five_byte_remaining_length_is_malformed() {
        let err = decode_err(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f], ProtocolVersion::V5);
        assert_eq!(
            (err.kind(), err.reason_code()),
            (
                ErrorKind::MalformedRemainingLength,
                ReasonCode::MalformedPacket
            )
        );
        // Detected as soon as the fifth byte arrives, before any body.
        let err = decode_err(&[0x30, 0x80, 0x80, 0x80, 0x80], ProtocolVersion::V5);
        assert_eq!(err.kind(), ErrorKind::MalformedRemainingLength);
    }

    #[test]
    fn a_client_refuses_what_only_clients_send() {
        let client_only: [(&[u8], PacketType); 4] = [
            (
                &[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0],
                PacketType::Connect,
            ),
            (&[0x82, 0x06, 0, 1, 0, 1, b'a', 0], PacketType::Subscribe),
            (&[0xa2, 0x05, 0, 1, 0, 1, b'a'], PacketType::Unsubscribe),
            (&[0xc0, 0x00], PacketType::PingReq),
        ];
        for (bytes, packet_type) in client_only {
            // A server's decoder takes them ...
            let mut buf = BytesMut::from(bytes);
            assert!(
                Decoder::new(ProtocolVersion::V3_1_1)
                    .decode(&mut buf)
                    .unwrap()
                    .is_some()
            );
            // ... a client's refuses them, as a protocol error.
            let mut buf = BytesMut::from(bytes);
            let err = Decoder::new(ProtocolVersion::V3_1_1)
                .decode_from_server(&mut buf)
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ClientOnlyPacket(packet_type));
            assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
        }
        // What servers send still decodes.
        let mut buf = BytesMut::from(&[0x40, 0x02, 0x00, 0x01, 0xd0, 0x00][..]);
        let mut decoder = Decoder::new(ProtocolVersion::V3_1_1);
        assert!(decoder.decode_from_server(&mut buf).unwrap().is_some());
        assert_eq!(
            decoder.decode_from_server(&mut buf).unwrap(),
            Some(Packet::PingResp)
        );
    }

    #[test]
    fn oversize_packet_is_rejected_before_its_body_arrives() {
        let mut decoder = Decoder::new(ProtocolVersion::V5).with_max_packet_size(100);
        // A PUBLISH announcing 1,000 bytes: only its fixed header has arrived.
        let mut buf = BytesMut::from(&[0x30, 0xe8, 0x07][..]);
        let err = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::PacketTooLarge {
                size: 1003,
                maximum: 100
            }
        );
        assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
        // Exactly at the limit is fine.
        let mut decoder = Decoder::new(ProtocolVersion::V5).with_max_packet_size(4);
        let mut buf = BytesMut::from(&[0x40, 0x02, 0x00, 0x01][..]);
        assert!(decoder.decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn non_mqtt_streams_fail_at_the_first_byte() {
        // "GET / HTTP/1.1": 'G' is 0x47, a PUBACK with flags 0111.
        let err = decode_err(b"G", ProtocolVersion::V3_1_1);
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidFlags {
                packet: PacketType::PubAck,
                flags: 7
            }
        );
        // A TLS ClientHello starts 0x16: a CONNECT with flags 0110.
        assert!(matches!(
            decode_err(&[0x16], ProtocolVersion::V5).kind(),
            ErrorKind::InvalidFlags { .. }
        ));
    }

    #[test]
    fn partial_input_is_not_an_error_and_leaves_the_buffer() {
        let bytes = [0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'];
        let mut decoder = Decoder::new(ProtocolVersion::V3_1_1);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(decoder.decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(&buf[..], &bytes[..cut]);
        }
    }

    #[test]
    fn connect_switches_the_version() {
        let connect = [
            0x10, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 10, 0, 0, 1, b'c',
        ];
        let mut buf = BytesMut::from(&connect[..]);
        // A v5 PUBACK with a reason code follows: only valid once the decoder is on 5.0.
        buf.extend_from_slice(&[0x40, 3, 0, 1, 0x10]);
        let mut decoder = Decoder::new(ProtocolVersion::V3_1_1);
        assert!(matches!(
            decoder.decode(&mut buf),
            Ok(Some(crate::Packet::Connect(_)))
        ));
        assert_eq!(decoder.version(), ProtocolVersion::V5);
        assert!(matches!(
            decoder.decode(&mut buf),
            Ok(Some(crate::Packet::PubAck(_)))
        ));
    }
}
