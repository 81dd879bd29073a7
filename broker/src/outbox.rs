//! What a connection has encoded and not yet written: packets as bytes, except that a large
//! PUBLISH payload stays the `Bytes` it arrived in and goes out by a vectored write, not
//! copied into the connection's buffer first.

use bytes::{Bytes, BytesMut};
use midge_codec::{EncodeError, Packet, ProtocolVersion, Publish};

/// Payloads at least this large are written from their own buffer; smaller ones are
/// copied, which costs less than the extra piece of the vectored write.
const SHARED_PAYLOAD_MIN: usize = 1024;

/// The bytes a connection is to send, in order: `chunks`, then `tail`.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Encoded packets and shared payloads, cut off `tail` when a payload came between;
    /// empty (and unallocated) while only small messages are sent.
    chunks: Vec<Bytes>,
    /// The bytes in `chunks`.
    chunked: usize,
    /// Where packets are encoded.
    tail: BytesMut,
}

/// What an [`Outbox`] held, for one write: `chunks`, then `last`.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    pub(crate) chunks: Vec<Bytes>,
    pub(crate) last: Bytes,
    len: usize,
}

impl Outgoing {
    /// The number of bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The pieces for a vectored write.
    pub(crate) fn io_slices(&self) -> Vec<std::io::IoSlice<'_>> {
        self.pieces().map(std::io::IoSlice::new).collect()
    }

    /// The pieces in order, the empty ones left out.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks
            .iter()
            .chain(std::iter::once(&self.last))
            .map(|b| &b[..])
            .filter(|b| !b.is_empty())
    }
}

impl Outbox {
    /// The number of bytes to send.
    pub(crate) fn len(&self) -> usize {
        self.chunked + self.tail.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.tail.is_empty()
    }

    /// Appends a packet, or nothing when it cannot be encoded.
    pub(crate) fn packet(
        &mut self,
        packet: &Packet,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        packet.encode(version, &mut self.tail)
    }

    /// Appends a PUBLISH, sharing its payload when that is large, or nothing when it
    /// cannot be encoded.
    pub(crate) fn publish(
        &mut self,
        publish: &Publish,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        if publish.payload.len() < SHARED_PAYLOAD_MIN {
            return publish.encode(version, &mut self.tail);
        }
        publish.encode_head(version, &mut self.tail)?;
        self.chunked += self.tail.len() + publish.payload.len();
        self.chunks.push(self.tail.split().freeze());
        self.chunks.push(publish.payload.clone());
        Ok(())
    }

    /// Everything to send, in order, for one (vectored) write; the outbox is empty
    /// afterwards.
    pub(crate) fn take(&mut self) -> Outgoing {
        let len = self.len();
        self.chunked = 0;
        let last = if self.tail.is_empty() {
            Bytes::new()
        } else {
            self.tail.split().freeze()
        };
        Outgoing {
            chunks: std::mem::take(&mut self.chunks),
            last,
            len,
        }
    }

    /// Drops everything not yet sent.
    pub(crate) fn clear(&mut self) {
        self.take();
    }
}

#[cfg(test)]
mod tests {
    use midge_codec::{PubAck, TopicName};

    use super::*;

    fn publish(payload_len: usize) -> Publish {
        Publish::new(TopicName::from_static("a/b"), vec![7; payload_len])
    }

    #[test]
    fn sends_the_same_bytes_in_order_and_shares_only_large_payloads() {
        let v5 = ProtocolVersion::V5;
        let (small, large) = (publish(10), publish(SHARED_PAYLOAD_MIN));
        let ack = PubAck::new(std::num::NonZeroU16::new(3).unwrap());
        let mut outbox = Outbox::default();
        let mut expected = BytesMut::new();
        outbox.publish(&small, v5).unwrap();
        outbox.publish(&large, v5).unwrap();
        outbox.packet(&Packet::from(ack.clone()), v5).unwrap();
        outbox.publish(&large, v5).unwrap();
        for p in [&small, &large] {
            p.encode(v5, &mut expected).unwrap();
        }
        ack.encode(v5, &mut expected).unwrap();
        large.encode(v5, &mut expected).unwrap();

        assert_eq!(outbox.len(), expected.len());
        let outgoing = outbox.take();
        assert!(outbox.is_empty());
        assert_eq!(outgoing.len(), expected.len());
        assert_eq!(outgoing.pieces().collect::<Vec<_>>().concat(), expected);
        // The large payloads are the publishes' own buffers, not copies of them.
        let shared = outgoing
            .pieces()
            .filter(|c| c.as_ptr() == large.payload.as_ptr())
            .count();
        assert_eq!(shared, 2);
        assert_eq!(outbox.take().pieces().count(), 0);
    }

    #[test]
    fn small_messages_need_no_list_of_pieces() {
        let mut outbox = Outbox::default();
        outbox.publish(&publish(10), ProtocolVersion::V5).unwrap();
        let outgoing = outbox.take();
        assert_eq!(outgoing.chunks.capacity(), 0);
        assert_eq!(outgoing.pieces().count(), 1);
    }

    #[test]
    fn clear_drops_everything() {
        let mut outbox = Outbox::default();
        outbox
            .publish(&publish(SHARED_PAYLOAD_MIN * 2), ProtocolVersion::V3_1_1)
            .unwrap();
        outbox
            .publish(&publish(1), ProtocolVersion::V3_1_1)
            .unwrap();
        assert!(!outbox.is_empty());
        outbox.clear();
        assert!(outbox.is_empty());
        assert_eq!(outbox.len(), 0);
    }
}
