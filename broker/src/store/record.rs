//! The bytes of the store's values. Each starts with a format byte; numbers are
//! big-endian; a message's PUBLISH is kept as the codec encodes it for MQTT 5.0 (QoS 0, no
//! packet identifier; its real QoS is beside it), so the codec stays the only one that
//! knows the packet's layout.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use midge_codec::{
    Decoder, Packet, ProtocolVersion, Publish, QoS, RetainHandling, SubscriptionId,
    SubscriptionOptions, TopicFilter,
};

use crate::router::Subscription;
use crate::session::{Message, Outgoing};

const FORMAT: u8 = 1;

/// A store that cannot be opened, read or written, with the file and what is wrong.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_secs() -> u64 {
    unix_millis(SystemTime::now()) / 1000
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A message's expiry as wall-clock milliseconds (0: never), which outlive the process.
fn expiry_millis(expires: Option<Instant>) -> u64 {
    expires.map_or(0, |at| {
        let left = at.saturating_duration_since(Instant::now());
        unix_millis(SystemTime::now() + left).max(1)
    })
}

fn expiry_instant(millis: u64) -> Option<Instant> {
    (millis != 0).then(|| {
        let now = unix_millis(SystemTime::now());
        Instant::now() + Duration::from_millis(millis.saturating_sub(now))
    })
}

fn options_byte(o: SubscriptionOptions) -> u8 {
    o.qos as u8
        | u8::from(o.no_local) << 2
        | u8::from(o.retain_as_published) << 3
        | (o.retain_handling as u8) << 4
}

fn options_from(byte: u8) -> Result<SubscriptionOptions, String> {
    Ok(SubscriptionOptions {
        qos: qos(byte & 0b11)?,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling: match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err("bad retain handling".into()),
        },
    })
}

fn qos(byte: u8) -> Result<QoS, String> {
    QoS::from_u8(byte).ok_or_else(|| format!("bad QoS {byte}"))
}

/// A session: format, expiry interval, disconnect time (0: connected), then each
/// subscription as filter length, filter, options byte, subscription identifier (0: none).
pub(crate) fn session<'a>(
    expiry_interval: u32,
    disconnected_at: Option<u64>,
    subscriptions: impl Iterator<Item = (&'a TopicFilter, &'a Subscription)>,
) -> Vec<u8> {
    let mut out = vec![FORMAT];
    out.extend(expiry_interval.to_be_bytes());
    out.extend(disconnected_at.unwrap_or(0).to_be_bytes());
    for (filter, subscription) in subscriptions {
        let filter = filter.as_str().as_bytes();
        // A filter is at most 65,535 bytes: it came in a SUBSCRIBE.
        out.extend(
            u16::try_from(filter.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend(filter);
        out.push(options_byte(subscription.options));
        out.extend(subscription.id.map_or(0, SubscriptionId::get).to_be_bytes());
    }
    out
}

/// A session read back: expiry interval, disconnect time, subscriptions.
pub(crate) type SessionRecord = (u32, Option<u64>, Vec<(TopicFilter, Subscription)>);

pub(crate) fn read_session(bytes: &[u8]) -> Result<SessionRecord, String> {
    let mut r = Reader::new(bytes)?;
    let expiry = r.u32()?;
    let disconnected_at = Some(r.u64()?).filter(|&t| t != 0);
    let mut subscriptions = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.u16()?);
        let filter = std::str::from_utf8(r.take(len)?).map_err(|e| e.to_string())?;
        let filter = TopicFilter::try_from(filter).map_err(|e| e.to_string())?;
        let options = options_from(r.u8()?)?;
        let id = SubscriptionId::new(r.u32()?);
        subscriptions.push((filter, Subscription { options, id }));
    }
    Ok((expiry, disconnected_at, subscriptions))
}

/// A message for one session: format, QoS and RETAIN it goes out with, the published QoS,
/// expiry (wall-clock ms, 0: never), subscription identifier count and identifiers, then
/// the PUBLISH.
pub(crate) fn message(outgoing: &Outgoing) -> Vec<u8> {
    let message = &outgoing.message;
    let mut out = vec![
        FORMAT,
        outgoing.qos as u8,
        u8::from(outgoing.retain),
        message.publish.qos as u8,
    ];
    out.extend(expiry_millis(message.expires).to_be_bytes());
    let ids = &outgoing.subscription_ids;
    out.extend(u32::try_from(ids.len()).unwrap_or(0).to_be_bytes());
    for id in ids {
        out.extend(id.get().to_be_bytes());
    }
    encode_publish(&message.publish, &mut out);
    out
}

pub(crate) fn read_message(bytes: &[u8], key: u64) -> Result<Outgoing, String> {
    let mut r = Reader::new(bytes)?;
    let out_qos = qos(r.u8()?)?;
    let retain = r.u8()? != 0;
    let published_qos = qos(r.u8()?)?;
    let expires = expiry_instant(r.u64()?);
    let count = r.u32()?;
    let mut subscription_ids = Vec::new();
    for _ in 0..count {
        subscription_ids.push(SubscriptionId::new(r.u32()?).ok_or("bad subscription id")?);
    }
    let publish = decode_publish(r.rest(), published_qos)?;
    Ok(Outgoing {
        message: Arc::new(Message { publish, expires }),
        qos: out_qos,
        retain,
        subscription_ids,
        key: Some(key),
    })
}

/// A retained message: format, published QoS, expiry (wall-clock ms), the PUBLISH.
pub(crate) fn retained(message: &Message) -> Vec<u8> {
    let mut out = vec![FORMAT, message.publish.qos as u8];
    out.extend(expiry_millis(message.expires).to_be_bytes());
    encode_publish(&message.publish, &mut out);
    out
}

pub(crate) fn read_retained(bytes: &[u8]) -> Result<Arc<Message>, String> {
    let mut r = Reader::new(bytes)?;
    let published_qos = qos(r.u8()?)?;
    let expires = expiry_instant(r.u64()?);
    let publish = decode_publish(r.rest(), published_qos)?;
    Ok(Arc::new(Message { publish, expires }))
}

fn encode_publish(publish: &Publish, out: &mut Vec<u8>) {
    let bare = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: publish.retain,
        topic: publish.topic.clone(),
        packet_id: None,
        payload: publish.payload.clone(),
        properties: publish.properties.clone(),
    };
    let mut buf = BytesMut::with_capacity(bare.encoded_len(ProtocolVersion::V5));
    // A QoS 0 PUBLISH without a packet identifier always encodes.
    let _ = bare.encode(ProtocolVersion::V5, &mut buf);
    out.extend_from_slice(&buf);
}

fn decode_publish(bytes: &[u8], qos: QoS) -> Result<Publish, String> {
    let mut buf = BytesMut::from(bytes);
    let mut decoder = Decoder::new(ProtocolVersion::V5).with_max_packet_size(u32::MAX);
    match decoder.decode(&mut buf) {
        Ok(Some(Packet::Publish(mut publish))) if buf.is_empty() => {
            publish.qos = qos;
            Ok(publish)
        }
        Ok(_) => Err("not one whole PUBLISH".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Reads a record after checking its format byte.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        match r.u8()? {
            FORMAT => Ok(r),
            other => Err(format!("unknown record format {other}")),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("record cut short".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_be_bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| "record cut short".into())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use midge_codec::TopicName;

    use super::*;

    #[test]
    fn sessions_read_back_as_written() {
        let filters = [
            TopicFilter::try_from("a/+/c").unwrap(),
            TopicFilter::try_from("$share/g/x/#").unwrap(),
        ];
        let subscriptions = [
            Subscription {
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
                id: SubscriptionId::new(268_435_455),
            },
            Subscription {
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
                id: None,
            },
        ];
        let bytes = session(3600, Some(42), filters.iter().zip(&subscriptions));
        let (expiry, at, read) = read_session(&bytes).unwrap();
        assert_eq!((expiry, at), (3600, Some(42)));
        assert_eq!(read.len(), 2);
        for ((f, s), (rf, rs)) in filters.iter().zip(&subscriptions).zip(&read) {
            assert_eq!(f, rf);
            assert_eq!(s.options, rs.options);
            assert_eq!(s.id, rs.id);
        }
        let (_, at, none) = read_session(&session(1, None, std::iter::empty())).unwrap();
        assert!(at.is_none() && none.is_empty());
    }

    #[test]
    fn messages_keep_qos_flags_properties_and_expiry() {
        let mut publish = Publish::new(TopicName::from_static("t/1"), Bytes::from_static(b"hi"));
        publish.qos = QoS::ExactlyOnce;
        publish.packet_id = midge_codec::PacketId::new(7);
        publish.retain = true;
        publish.properties_mut().message_expiry_interval = Some(60);
        publish.properties_mut().content_type = Some("text/plain".try_into().unwrap());
        let outgoing = Outgoing {
            message: Message::new(publish),
            qos: QoS::AtLeastOnce,
            retain: true,
            subscription_ids: vec![SubscriptionId::new(5).unwrap()],
            key: None,
        };
        let read = read_message(&message(&outgoing), 9).unwrap();
        assert_eq!(read.key, Some(9));
        assert_eq!((read.qos, read.retain), (QoS::AtLeastOnce, true));
        assert_eq!(read.subscription_ids, outgoing.subscription_ids);
        let p = &read.message.publish;
        assert_eq!(
            (p.qos, p.topic.as_str(), &p.payload[..]),
            (QoS::ExactlyOnce, "t/1", &b"hi"[..])
        );
        assert_eq!(p.properties().content_type.as_deref(), Some("text/plain"));
        let left = read.message.remaining_secs(Instant::now()).unwrap();
        assert!((59..=60).contains(&left), "{left}");

        let kept = read_retained(&retained(&outgoing.message)).unwrap();
        assert_eq!(kept.publish.payload, outgoing.message.publish.payload);
        assert!(kept.expires.is_some());
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let outgoing = Outgoing {
            message: Message::new(Publish::new(TopicName::from_static("t"), vec![1, 2, 3])),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            key: None,
        };
        let bytes = message(&outgoing);
        for n in 0..bytes.len() {
            assert!(read_message(&bytes[..n], 1).is_err(), "cut at {n}");
        }
        assert!(read_message(&[2], 1).unwrap_err().contains("format"));
        assert!(read_session(&[1, 0, 0]).is_err());
    }
}
