//! The options objects of the JS API, read with serde-wasm-bindgen, and turned into
//! midge-codec types. Every field is optional; the names are MQTT.js's where MQTT.js has one.
//! A wrong option is a readable error naming it, never a silently ignored field.

use std::collections::BTreeMap;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use midge_codec::properties::{PublishProperties, SubscribeProperties, WillProperties};
use midge_codec::{
    ByteStr, ProtocolVersion, QoS, RetainHandling, SubscriptionId, SubscriptionOptions, TopicName,
    UserProperty, Will,
};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::session::Options;

/// `connect(url, options)`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConnectOptions {
    client_id: Option<String>,
    protocol_version: Option<u8>,
    clean: Option<bool>,
    keepalive: Option<u16>,
    username: Option<String>,
    password: Option<Payload>,
    will: Option<WillOptions>,
    reconnect: Option<ReconnectSetting>,
    properties: Option<ConnectPropertiesOptions>,
    /// Milliseconds to wait for CONNACK and PINGRESP (MQTT.js: `connectTimeout`).
    connect_timeout: Option<u32>,
    /// How many messages may wait while offline.
    queue_limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WillOptions {
    topic: String,
    payload: Option<Payload>,
    qos: Option<u8>,
    retain: Option<bool>,
    properties: Option<MessageProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectPropertiesOptions {
    session_expiry_interval: Option<u32>,
    receive_maximum: Option<u16>,
    maximum_packet_size: Option<u32>,
    topic_alias_maximum: Option<u16>,
    request_response_information: Option<bool>,
    request_problem_information: Option<bool>,
    user_properties: Option<UserProperties>,
}

/// `reconnect: { initialDelayMs, maxDelayMs, jitter }`, or `false`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Backoff {
    pub(crate) initial_delay_ms: u32,
    pub(crate) max_delay_ms: u32,
    pub(crate) jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_delay_ms: 1000,
            max_delay_ms: 30_000,
            jitter: 0.25,
        }
    }
}

impl Backoff {
    /// The wait before reconnection attempt `attempt` (0 for the first), given `random` in
    /// [0, 1): doubling from the initial delay up to the maximum, then spread by ±jitter.
    pub(crate) fn delay(&self, attempt: u32, random: f64) -> u64 {
        let base = f64::from(self.initial_delay_ms) * 2f64.powi(attempt.min(30) as i32);
        let base = base.min(f64::from(self.max_delay_ms));
        let spread = 1.0 + self.jitter * (2.0 * random - 1.0);
        (base * spread).max(0.0) as u64
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ReconnectSetting {
    Enabled(bool),
    Backoff(BackoffOptions),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BackoffOptions {
    initial_delay_ms: Option<u32>,
    max_delay_ms: Option<u32>,
    jitter: Option<f64>,
}

/// `publish(topic, payload, options)`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PublishOptions {
    pub(crate) qos: Option<u8>,
    pub(crate) retain: Option<bool>,
    pub(crate) properties: Option<MessageProperties>,
}

/// The 5.0 properties a publisher may set (§3.3.2.3), also those of a will.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MessageProperties {
    payload_format_indicator: Option<bool>,
    message_expiry_interval: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<Payload>,
    user_properties: Option<UserProperties>,
    /// Only in a will.
    will_delay_interval: Option<u32>,
}

/// `subscribe(filters, options)`, and the per-filter options of the object form.
#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SubscribeOptions {
    qos: Option<u8>,
    /// No local (5.0).
    nl: Option<bool>,
    /// Retain as published (5.0).
    rap: Option<bool>,
    /// Retain handling, 0 to 2 (5.0).
    rh: Option<u8>,
    properties: Option<SubscribePropertiesOptions>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubscribePropertiesOptions {
    subscription_identifier: Option<u32>,
    user_properties: Option<UserProperties>,
}

/// A payload: a string (sent as UTF-8) or a `Uint8Array`.
#[derive(Clone, Default)]
pub(crate) struct Payload(pub(crate) Bytes);

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PayloadVisitor;
        impl Visitor<'_> for PayloadVisitor {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a Uint8Array")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Payload, E> {
                Ok(Payload(Bytes::copy_from_slice(v.as_bytes())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Payload, E> {
                Ok(Payload(Bytes::from(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                Ok(Payload(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
                Ok(Payload(Bytes::from(v)))
            }
        }
        deserializer.deserialize_any(PayloadVisitor)
    }
}

/// User properties as MQTT.js has them: `{ name: value }` or `{ name: [value, ...] }`.
#[derive(Deserialize, Serialize, Default, Clone)]
#[serde(transparent)]
pub(crate) struct UserProperties(BTreeMap<String, OneOrMany>);

#[derive(Deserialize, Serialize, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl UserProperties {
    fn into_pairs(self) -> Result<Vec<UserProperty>, String> {
        let mut pairs = Vec::new();
        for (name, values) in self.0 {
            let values = match values {
                OneOrMany::One(value) => vec![value],
                OneOrMany::Many(values) => values,
            };
            for value in values {
                pairs.push(UserProperty {
                    name: byte_str(&name, "a user property name")?,
                    value: byte_str(&value, "a user property value")?,
                });
            }
        }
        Ok(pairs)
    }

    /// The JS form of decoded user properties; a repeated name becomes an array.
    pub(crate) fn from_pairs(pairs: &[UserProperty]) -> UserProperties {
        let mut map: BTreeMap<String, OneOrMany> = BTreeMap::new();
        for pair in pairs {
            let value = pair.value.as_str().to_owned();
            match map.remove(pair.name.as_str()) {
                None => map.insert(pair.name.as_str().to_owned(), OneOrMany::One(value)),
                Some(OneOrMany::One(first)) => map.insert(
                    pair.name.as_str().to_owned(),
                    OneOrMany::Many(vec![first, value]),
                ),
                Some(OneOrMany::Many(mut all)) => {
                    all.push(value);
                    map.insert(pair.name.as_str().to_owned(), OneOrMany::Many(all))
                }
            };
        }
        UserProperties(map)
    }
}

fn byte_str(s: &str, what: &str) -> Result<ByteStr, String> {
    ByteStr::try_from(s).map_err(|e| format!("{what} {s:?} is not valid: {e}"))
}

pub(crate) fn qos(value: Option<u8>) -> Result<QoS, String> {
    match value.unwrap_or(0) {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        2 => Ok(QoS::ExactlyOnce),
        n => Err(format!("qos must be 0, 1 or 2, not {n}")),
    }
}

pub(crate) fn topic_name(topic: &str) -> Result<TopicName, String> {
    TopicName::try_from(topic).map_err(|e| format!("\"{topic}\" is not a valid topic name: {e}"))
}

/// What `connect` needs beyond the session's options.
pub(crate) struct Connection {
    pub(crate) session: Options,
    pub(crate) reconnect: Option<Backoff>,
}

impl ConnectOptions {
    /// Checks and converts the options.
    pub(crate) fn into_connection(self) -> Result<Connection, String> {
        let mut options = Options::new(self.client_id.unwrap_or_default());
        options.version = match self.protocol_version.unwrap_or(5) {
            4 => ProtocolVersion::V3_1_1,
            5 => ProtocolVersion::V5,
            n => {
                return Err(format!(
                    "protocolVersion must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0), not {n}"
                ));
            }
        };
        if options.client_id.is_empty() && !options.version.is_v5() {
            // 3.1.1 servers need not accept an empty client id with a persistent session;
            // make one up, as MQTT.js does.
            options.client_id = format!("midge-{:08x}", (js_random() * f64::from(u32::MAX)) as u32);
        }
        if let Some(clean) = self.clean {
            options.clean_start = clean;
        }
        if let Some(keepalive) = self.keepalive {
            options.keep_alive = keepalive;
        }
        options.username = self.username;
        options.password = self.password.map(|p| p.0);
        if let Some(ms) = self.connect_timeout {
            options.response_timeout_ms = u64::from(ms.max(1));
        }
        if let Some(limit) = self.queue_limit {
            options.max_offline_queue = limit as usize;
        }
        if let Some(will) = self.will {
            options.will = Some(will.into_will()?);
        }
        if let Some(p) = self.properties {
            let props = &mut options.properties;
            props.session_expiry_interval = p.session_expiry_interval;
            props.receive_maximum = nonzero16(p.receive_maximum, "receiveMaximum")?;
            props.maximum_packet_size = match p.maximum_packet_size {
                None => None,
                Some(n) => {
                    Some(NonZeroU32::new(n).ok_or("properties.maximumPacketSize must not be 0")?)
                }
            };
            props.topic_alias_maximum = p.topic_alias_maximum;
            props.request_response_information = p.request_response_information;
            props.request_problem_information = p.request_problem_information;
            props.user_properties = p.user_properties.unwrap_or_default().into_pairs()?;
        }
        let reconnect = match self.reconnect {
            None | Some(ReconnectSetting::Enabled(true)) => Some(Backoff::default()),
            Some(ReconnectSetting::Enabled(false)) => None,
            Some(ReconnectSetting::Backoff(b)) => {
                let default = Backoff::default();
                let backoff = Backoff {
                    initial_delay_ms: b.initial_delay_ms.unwrap_or(default.initial_delay_ms),
                    max_delay_ms: b.max_delay_ms.unwrap_or(default.max_delay_ms),
                    jitter: b.jitter.unwrap_or(default.jitter),
                };
                if !(0.0..=1.0).contains(&backoff.jitter) {
                    return Err(format!(
                        "reconnect.jitter must be between 0 and 1, not {}",
                        backoff.jitter
                    ));
                }
                Some(backoff)
            }
        };
        Ok(Connection {
            session: options,
            reconnect,
        })
    }
}

impl WillOptions {
    fn into_will(self) -> Result<Will, String> {
        let topic = topic_name(&self.topic).map_err(|e| format!("will: {e}"))?;
        let mut properties = WillProperties::default();
        if let Some(p) = self.properties {
            properties.will_delay_interval = p.will_delay_interval;
            let message = p.into_publish_properties()?;
            properties.payload_format_indicator = message.payload_format_indicator;
            properties.message_expiry_interval = message.message_expiry_interval;
            properties.content_type = message.content_type;
            properties.response_topic = message.response_topic;
            properties.correlation_data = message.correlation_data;
            properties.user_properties = message.user_properties;
        }
        Ok(Will {
            topic,
            payload: self.payload.unwrap_or_default().0,
            qos: qos(self.qos).map_err(|e| format!("will: {e}"))?,
            retain: self.retain.unwrap_or(false),
            properties,
        })
    }
}

impl MessageProperties {
    pub(crate) fn into_publish_properties(self) -> Result<PublishProperties, String> {
        Ok(PublishProperties {
            payload_format_indicator: self.payload_format_indicator,
            message_expiry_interval: self.message_expiry_interval,
            content_type: match self.content_type {
                Some(t) => Some(byte_str(&t, "contentType")?),
                None => None,
            },
            response_topic: match self.response_topic {
                Some(t) => Some(topic_name(&t).map_err(|e| format!("responseTopic: {e}"))?),
                None => None,
            },
            correlation_data: self.correlation_data.map(|d| d.0),
            user_properties: self.user_properties.unwrap_or_default().into_pairs()?,
            ..Default::default()
        })
    }
}

impl SubscribeOptions {
    /// The options byte of one subscription; `over` (per-filter options) wins over `self`.
    pub(crate) fn subscription_options(
        &self,
        over: &SubscribeOptions,
    ) -> Result<SubscriptionOptions, String> {
        let retain_handling = match over.rh.or(self.rh).unwrap_or(0) {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            n => return Err(format!("rh (retain handling) must be 0, 1 or 2, not {n}")),
        };
        Ok(SubscriptionOptions {
            qos: qos(over.qos.or(self.qos))?,
            no_local: over.nl.or(self.nl).unwrap_or(false),
            retain_as_published: over.rap.or(self.rap).unwrap_or(false),
            retain_handling,
        })
    }

    /// The SUBSCRIBE's 5.0 properties.
    pub(crate) fn properties(&self) -> Result<SubscribeProperties, String> {
        let Some(p) = self.properties.clone() else {
            return Ok(SubscribeProperties::default());
        };
        let subscription_identifier = match p.subscription_identifier {
            None => None,
            Some(id) => Some(SubscriptionId::new(id).ok_or_else(|| {
                format!("subscriptionIdentifier must be 1 to 268435455, not {id}")
            })?),
        };
        Ok(SubscribeProperties {
            subscription_identifier,
            user_properties: p.user_properties.unwrap_or_default().into_pairs()?,
        })
    }
}

fn nonzero16(value: Option<u16>, name: &str) -> Result<Option<NonZeroU16>, String> {
    match value {
        None => Ok(None),
        Some(n) => NonZeroU16::new(n)
            .map(Some)
            .ok_or_else(|| format!("properties.{name} must not be 0")),
    }
}

fn js_random() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Math::random()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_spreads_by_the_jitter() {
        let b = Backoff {
            initial_delay_ms: 500,
            max_delay_ms: 30_000,
            jitter: 0.25,
        };
        assert_eq!(b.delay(0, 0.5), 500);
        assert_eq!(b.delay(1, 0.5), 1000);
        assert_eq!(b.delay(3, 0.5), 4000);
        assert_eq!(b.delay(10, 0.5), 30_000);
        assert_eq!(b.delay(u32::MAX, 0.5), 30_000);
        assert_eq!(b.delay(0, 0.0), 375);
        assert_eq!(b.delay(0, 1.0), 625);
    }
}
