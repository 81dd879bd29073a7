//! Fuzz target `decode`: arbitrary bytes through [`Decoder`], and every packet it accepts
//! back through [`Packet::encode`].
//!
//! Input layout:
//!
//! | byte | meaning                                                                 |
//! |------|-------------------------------------------------------------------------|
//! | 0    | configuration: bits 0-1 the version (0: 3.1, 1: 3.1.1, 2 and 3: 5.0);   |
//! |      | bit 7 set: a maximum packet size of `((byte >> 2) & 0x1f) * 8` bytes,   |
//! |      | clear: no limit but MQTT's own ([`MAX_PACKET_SIZE`])                     |
//! | 1    | where to split the stream in two: at `len * byte / 255`                 |
//! | 2..  | the byte stream the decoder sees                                         |
//!
//! Checks, for every packet decoded from the whole stream (with the version the decoder was
//! on when it decoded it, since a CONNECT switches the decoder to its own version):
//!
//! - (a) `encoded_len(version)` is the number of bytes `encode(version)` writes;
//! - (b) `encode(version)` succeeds: a decoded packet must be encodable in its own version;
//! - (c) decoding those bytes again gives an equal packet, and nothing is left over;
//! - (d) the stream fed in two chunks gives the same packets, the same final result (need
//!   more bytes, or the same error) and the same unconsumed bytes.
//!
//! Also: `Ok(None)` leaves the buffer untouched; an error leaves it untouched or consumes
//! exactly the failing packet (see `check_buffer_after_error`); and encoding each decoded
//! packet in every version either succeeds with `encoded_len` bytes or fails without writing
//! anything (and never panics).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use midge_codec::{DecodeError, Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion};

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

#[derive(Clone, Copy, Debug)]
struct Config {
    version: ProtocolVersion,
    max_packet_size: u32,
}

impl Config {
    fn from_byte(b: u8) -> Self {
        let version = match b & 0b11 {
            0 => ProtocolVersion::V3_1,
            1 => ProtocolVersion::V3_1_1,
            _ => ProtocolVersion::V5,
        };
        let max_packet_size = if b & 0x80 != 0 {
            u32::from((b >> 2) & 0x1f) * 8
        } else {
            MAX_PACKET_SIZE
        };
        Config {
            version,
            max_packet_size,
        }
    }

    fn decoder(self) -> Decoder {
        Decoder::new(self.version).with_max_packet_size(self.max_packet_size)
    }
}

/// Everything one pass of the decoder over the stream produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Each packet, with the version the decoder was on when it decoded it.
    packets: Vec<(ProtocolVersion, Packet)>,
    /// `Ok(())`: the decoder wants more bytes; `Err`: it gave up.
    end: Result<(), DecodeError>,
    /// The bytes not consumed: what was left in the buffer plus any chunk not yet fed.
    leftover: Vec<u8>,
}

/// Feeds `chunks` to a fresh decoder one after the other, decoding until it wants more bytes.
fn decode_chunks(config: Config, chunks: &[&[u8]]) -> Outcome {
    let mut decoder = config.decoder();
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    // Everything fed so far, and how much of it the decoded packets took: what the buffer
    // should hold is `fed[consumed..]` (kept this way rather than cloning the buffer before
    // every call).
    let mut fed = Vec::new();
    let mut consumed = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        buf.extend_from_slice(chunk);
        fed.extend_from_slice(chunk);
        loop {
            let version = decoder.version();
            let before = fed.get(consumed..).unwrap_or_default();
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    assert!(buf.len() < before.len(), "a packet consumed nothing");
                    consumed = fed.len() - buf.len();
                    packets.push((version, packet));
                }
                Ok(None) => {
                    assert_eq!(&buf[..], before, "Ok(None) changed the buffer");
                    assert_eq!(decoder.version(), version, "Ok(None) changed the version");
                    break;
                }
                Err(err) => {
                    check_buffer_after_error(before, &buf, &err);
                    let mut leftover = buf.to_vec();
                    for rest in chunks.get(i + 1..).unwrap_or_default() {
                        leftover.extend_from_slice(rest);
                    }
                    return Outcome {
                        packets,
                        end: Err(err),
                        leftover,
                    };
                }
            }
        }
    }
    Outcome {
        packets,
        end: Ok(()),
        leftover: buf.to_vec(),
    }
}

/// After an error, as [`Decoder`] documents: the buffer is as it was if the fixed header was
/// at fault, and without exactly the failing packet if its body was. (Finding F1 in
/// README.md: the documentation used to promise the buffer untouched in every case.)
fn check_buffer_after_error(before: &[u8], after: &[u8], err: &DecodeError) {
    if before.len() == after.len() {
        assert_eq!(after, before, "an error changed the buffer: {err}");
        return;
    }
    let consumed = before.len() - after.len();
    assert_eq!(
        Some(consumed),
        frame_len(before),
        "an error consumed {consumed} bytes, not one whole packet: {err}"
    );
    assert_eq!(
        before.get(consumed..),
        Some(after),
        "an error changed the buffer: {err}"
    );
}

/// The size of the packet at the front of `buf` from its fixed header, if it is complete.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut remaining = 0;
    for (i, &byte) in buf.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(2 + i + remaining).filter(|&size| size <= buf.len());
        }
    }
    None
}

/// (a), (b), (c) for one packet decoded while the decoder was on `version`.
fn check_round_trip(version: ProtocolVersion, packet: &Packet) {
    let mut wire = BytesMut::new();
    if let Err(err) = packet.encode(version, &mut wire) {
        panic!("a packet decoded in {version} does not encode in {version}: {err}\n{packet:#?}");
    }
    assert_eq!(
        packet.encoded_len(version),
        wire.len(),
        "encoded_len disagrees with encode in {version} for {packet:#?}\nencoded: {:02x?}",
        &wire[..]
    );
    let encoded = wire.clone();
    let mut decoder = Decoder::new(version);
    match decoder.decode(&mut wire) {
        Ok(Some(again)) => assert_eq!(
            &again,
            packet,
            "decode(encode(packet)) differs in {version}; encoded: {:02x?}",
            &encoded[..]
        ),
        other => panic!(
            "the encoding of a packet decoded in {version} does not decode: {other:?}\n\
             packet: {packet:#?}\nencoded: {:02x?}",
            &encoded[..]
        ),
    }
    assert!(
        wire.is_empty(),
        "bytes left over after decoding the encoding of {packet:#?}: {:02x?}",
        &wire[..]
    );
}

/// Encoding in any version never panics; success writes `encoded_len` bytes after what the
/// buffer held, failure writes nothing.
fn check_other_versions(packet: &Packet) {
    for version in VERSIONS {
        let mut wire = BytesMut::from(&b"xy"[..]);
        match packet.encode(version, &mut wire) {
            Ok(()) => assert_eq!(
                packet.encoded_len(version),
                wire.len() - 2,
                "encoded_len disagrees with encode in {version} for {packet:#?}"
            ),
            Err(err) => assert_eq!(
                &wire[..],
                b"xy",
                "encode in {version} failed ({err}) but wrote bytes for {packet:#?}"
            ),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [config, split, stream @ ..] = data else {
        return;
    };
    let config = Config::from_byte(*config);

    let whole = decode_chunks(config, &[stream]);
    for (version, packet) in &whole.packets {
        check_round_trip(*version, packet);
        check_other_versions(packet);
    }

    // (d): the same stream in two chunks.
    let at = stream.len() * usize::from(*split) / 255;
    let (first, second) = stream.split_at(at);
    let split = decode_chunks(config, &[first, second]);
    assert_eq!(
        whole, split,
        "splitting the stream at {at} changed the outcome"
    );
});
