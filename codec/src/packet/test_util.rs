//! Helpers for the byte-vector tests beside each packet.

use bytes::{Bytes, BytesMut};

use crate::{DecodeError, Decoder, EncodeError, Packet, ProtocolVersion};

/// Decodes exactly one packet from `bytes`, which must hold nothing else.
pub(crate) fn decode_one(bytes: &[u8], version: ProtocolVersion) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let mut decoder = Decoder::new(version);
    let packet = decoder.decode(&mut buf).unwrap().expect("a whole packet");
    assert!(buf.is_empty(), "bytes left over: {buf:x?}");
    packet
}

/// The error decoding `bytes` gives.
pub(crate) fn decode_err(bytes: &[u8], version: ProtocolVersion) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    Decoder::new(version)
        .decode(&mut buf)
        .expect_err("an error")
}

/// Encodes `packet`, checking `encoded_len` agrees.
pub(crate) fn encode(packet: &Packet, version: ProtocolVersion) -> Bytes {
    let mut buf = BytesMut::new();
    packet.encode(version, &mut buf).unwrap();
    assert_eq!(
        buf.len(),
        packet.encoded_len(version),
        "encoded_len of {packet:?}"
    );
    buf.freeze()
}

/// The error encoding `packet` gives.
pub(crate) fn encode_err(packet: &Packet, version: ProtocolVersion) -> EncodeError {
    let mut buf = BytesMut::new();
    let err = packet.encode(version, &mut buf).expect_err("an error");
    assert!(buf.is_empty(), "an encode error writes nothing");
    err
}

/// `packet` encodes to exactly `bytes`, and `bytes` decode to exactly `packet`.
pub(crate) fn assert_round_trip(packet: &Packet, bytes: &[u8], version: ProtocolVersion) {
    assert_eq!(&encode(packet, version)[..], bytes, "encoding {packet:?}");
    assert_eq!(&decode_one(bytes, version), packet, "decoding {bytes:x?}");
}

/// `packet` survives an encode and a decode unchanged; with the feature `small`, which checks
/// the properties the client ignores and keeps none of them, it decodes to `emptied`.
pub(crate) fn round_trip_ignored(packet: &Packet, emptied: &Packet, version: ProtocolVersion) {
    let bytes = encode(packet, version);
    let expected = if cfg!(feature = "small") {
        emptied
    } else {
        packet
    };
    assert_eq!(&decode_one(&bytes, version), expected);
}

/// `packet` survives an encode and a decode unchanged.
pub(crate) fn round_trip(packet: &Packet, version: ProtocolVersion) {
    let bytes = encode(packet, version);
    assert_eq!(&decode_one(&bytes, version), packet);
}
