//! The options objects of the JS API, read by hand (`Reflect.get`), and turned into
//! midge-codec types. Every field is optional; the names are MQTT.js's where MQTT.js has one.
//! A wrong option is a readable error naming it, never a silently ignored field.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use js_sys::{ArrayBuffer, Object, Uint8Array};
use midge_codec::properties::{PublishProperties, SubscribeProperties, WillProperties};
use midge_codec::text::push_digits;
use midge_codec::{
    ByteStr, ProtocolVersion, QoS, RetainHandling, SubscriptionId, SubscriptionOptions, TopicName,
    UserProperty, Will,
};
use wasm_bindgen::{JsCast, JsValue};

use crate::session::Options;
use crate::text::{cat, decimal, written};

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

/// An options object being read: every key must be a known one (a misspelt option is an
/// error, not silently ignored), and every value of the right type. Errors name the option
/// by its path, like `will.qos`.
pub(crate) struct Fields {
    object: JsValue,
    path: String,
}

impl Fields {
    /// `value` as an options object with the keys `known`; `None` for `undefined` or `null`.
    pub(crate) fn read(
        value: JsValue,
        path: &str,
        known: &[&str],
    ) -> Result<Option<Fields>, String> {
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        if !value.is_object() || js_sys::Array::is_array(&value) {
            return Err(cat(&[&name(path, "options"), " must be an object"]));
        }
        // Object.entries, not Object.keys: one JS import fewer (the client needs entries).
        for entry in Object::entries(value.unchecked_ref::<Object>()).iter() {
            let key = entry.unchecked_into::<js_sys::Array>().get_unchecked(0);
            let key = key.as_string().unwrap_or_default();
            if !known.contains(&key.as_str()) {
                return Err(cat(&[
                    "unknown option ",
                    &name(path, &key),
                    "; the options here are ",
                    &known.join(", "),
                ]));
            }
        }
        Ok(Some(Fields {
            object: value,
            path: path.to_owned(),
        }))
    }

    fn name(&self, key: &str) -> String {
        name(&self.path, key)
    }

    /// `will.qos must be 0, 1 or 2`: the option's name, then `why`.
    fn wrong(&self, key: &str, why: &str) -> String {
        cat(&[&self.name(key), why])
    }

    /// The value of `key`, unless it is `undefined` or `null`.
    pub(crate) fn get(&self, key: &str) -> Option<JsValue> {
        js_sys::Reflect::get(&self.object, &JsValue::from_str(key))
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, String> {
        self.get(key)
            .map(|v| {
                v.as_string()
                    .ok_or_else(|| self.wrong(key, " must be a string"))
            })
            .transpose()
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        self.get(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.wrong(key, " must be true or false"))
            })
            .transpose()
    }

    fn number(&self, key: &str) -> Result<Option<f64>, String> {
        self.get(key)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| self.wrong(key, " must be a number"))
            })
            .transpose()
    }

    /// A whole number from `min` to `max`.
    pub(crate) fn integer(&self, key: &str, min: u32, max: u32) -> Result<Option<u32>, String> {
        match self.number(key)? {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && n >= f64::from(min) && n <= f64::from(max) => {
                Ok(Some(n as u32))
            }
            Some(_) => Err(cat(&[
                &self.name(key),
                " must be a whole number from ",
                &decimal(min.into()),
                " to ",
                &decimal(max.into()),
            ])),
        }
    }

    pub(crate) fn qos(&self, key: &str) -> Result<QoS, String> {
        Ok(
            match self
                .integer(key, 0, 2)
                .map_err(|_| self.wrong(key, " must be 0, 1 or 2"))?
            {
                None | Some(0) => QoS::AtMostOnce,
                Some(1) => QoS::AtLeastOnce,
                Some(_) => QoS::ExactlyOnce,
            },
        )
    }

    fn payload(&self, key: &str) -> Result<Option<Bytes>, String> {
        self.get(key)
            .map(|v| payload(&v).map_err(|e| self.wrong(key, &cat(&[": ", &e]))))
            .transpose()
    }

    fn object(&self, key: &str, known: &[&str]) -> Result<Option<Fields>, String> {
        Fields::read(
            self.get(key).unwrap_or(JsValue::UNDEFINED),
            &self.name(key),
            known,
        )
    }

    fn byte_str(&self, key: &str) -> Result<Option<ByteStr>, String> {
        self.string(key)?
            .map(|s| byte_str(&s, &self.name(key)))
            .transpose()
    }

    /// `{ name: value }` or `{ name: [value, ...] }`, as MQTT.js has them.
    fn user_properties(&self, key: &str) -> Result<Vec<UserProperty>, String> {
        let Some(map) = self.get(key) else {
            return Ok(Vec::new());
        };
        let what = self.name(key);
        if !map.is_object() {
            return Err(cat(&[&what, " must be an object of strings"]));
        }
        let mut pairs = Vec::new();
        for entry in Object::entries(map.unchecked_ref()).iter() {
            let entry: js_sys::Array = entry.unchecked_into();
            let name = entry.get_unchecked(0).as_string().unwrap_or_default();
            let value = entry.get_unchecked(1);
            let values: Vec<JsValue> = match value.dyn_ref::<js_sys::Array>() {
                Some(array) => array.iter().collect(),
                None => vec![value],
            };
            for value in values {
                let value = value.as_string().ok_or_else(|| {
                    cat(&[
                        &what,
                        ".",
                        &name,
                        " must be a string or an array of strings",
                    ])
                })?;
                pairs.push(UserProperty {
                    name: byte_str(&name, &what)?,
                    value: byte_str(&value, &what)?,
                });
            }
        }
        Ok(pairs)
    }
}

fn name(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        cat(&[path, ".", key])
    }
}

fn byte_str(s: &str, what: &str) -> Result<ByteStr, String> {
    ByteStr::try_from(s).map_err(|e| {
        let why = written(|out| e.write_text(out));
        cat(&[what, ": \"", s, "\" is not valid: ", &why])
    })
}

/// A payload: a string (sent as UTF-8), a `Uint8Array`, an `ArrayBuffer`, or nothing (empty).
pub(crate) fn payload(value: &JsValue) -> Result<Bytes, String> {
    if value.is_undefined() || value.is_null() {
        Ok(Bytes::new())
    } else if let Some(text) = value.as_string() {
        Ok(Bytes::from(text))
    } else if let Some(array) = value.dyn_ref::<Uint8Array>() {
        Ok(Bytes::from(array.to_vec()))
    } else if let Some(buffer) = value.dyn_ref::<ArrayBuffer>() {
        Ok(Bytes::from(Uint8Array::new(buffer).to_vec()))
    } else {
        Err("a payload must be a string, a Uint8Array or an ArrayBuffer".to_owned())
    }
}

pub(crate) fn topic_name(topic: &str) -> Result<TopicName, String> {
    TopicName::try_from(topic)
        .map_err(|e| cat(&["\"", topic, "\" is not a valid topic name: ", e.text()]))
}

/// What `connect` needs beyond the session's options.
pub(crate) struct Connection {
    pub(crate) session: Options,
    pub(crate) reconnect: Option<Backoff>,
}

const CONNECT: &[&str] = &[
    "clientId",
    "protocolVersion",
    "clean",
    "keepalive",
    "username",
    "password",
    "will",
    "reconnect",
    "properties",
    "connectTimeout",
    "queueLimit",
];
const WILL: &[&str] = &["topic", "payload", "qos", "retain", "properties"];
const CONNECT_PROPERTIES: &[&str] = &[
    "sessionExpiryInterval",
    "receiveMaximum",
    "maximumPacketSize",
    "topicAliasMaximum",
    "requestResponseInformation",
    "requestProblemInformation",
    "userProperties",
];
const BACKOFF: &[&str] = &["initialDelayMs", "maxDelayMs", "jitter"];
const PUBLISH: &[&str] = &["qos", "retain", "properties"];
const WILL_PROPERTIES: &[&str] = &[
    "willDelayInterval",
    "payloadFormatIndicator",
    "messageExpiryInterval",
    "contentType",
    "responseTopic",
    "correlationData",
    "userProperties",
];
/// A will's properties but the delay: those of a message.
const MESSAGE_PROPERTIES: &[&str] = WILL_PROPERTIES.split_at(1).1;
pub(crate) const SUBSCRIBE: &[&str] = &["qos", "nl", "rap", "rh", "properties"];
const SUBSCRIBE_PROPERTIES: &[&str] = &["subscriptionIdentifier", "userProperties"];

/// Reads `connect(url, options)`.
pub(crate) fn connection(value: JsValue) -> Result<Connection, String> {
    let o = Fields::read(value, "", CONNECT)?;
    let Some(o) = o else {
        return Ok(Connection {
            session: Options::new(""),
            reconnect: Some(Backoff::default()),
        });
    };
    let mut options = Options::new(o.string("clientId")?.unwrap_or_default());
    options.version = match o.integer("protocolVersion", 0, 255)? {
        None | Some(5) => ProtocolVersion::V5,
        Some(4) => ProtocolVersion::V3_1_1,
        Some(_) => {
            return Err("protocolVersion must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0)".to_owned());
        }
    };
    if options.client_id.is_empty() && !options.version.is_v5() {
        // 3.1.1 servers need not accept an empty client id; make one up, as MQTT.js does.
        let id = (js_random() * f64::from(u32::MAX)) as u32;
        options.client_id = written(|out| {
            out.push_str("midge-");
            push_digits(out, id.into(), 16, 8);
            out.make_ascii_lowercase();
        });
    }
    if let Some(clean) = o.bool("clean")? {
        options.clean_start = clean;
    }
    if let Some(keepalive) = o.integer("keepalive", 0, u32::from(u16::MAX))? {
        options.keep_alive = keepalive as u16;
    }
    options.username = o.string("username")?;
    options.password = o.payload("password")?;
    if let Some(ms) = o.integer("connectTimeout", 1, u32::MAX)? {
        options.response_timeout_ms = u64::from(ms);
    }
    if let Some(limit) = o.integer("queueLimit", 0, u32::MAX)? {
        options.max_offline_queue = limit as usize;
    }
    if let Some(will) = o.object("will", WILL)? {
        options.will = Some(read_will(&will)?);
    }
    if let Some(p) = o.object("properties", CONNECT_PROPERTIES)? {
        let props = &mut options.properties;
        props.session_expiry_interval = p.integer("sessionExpiryInterval", 0, u32::MAX)?;
        props.receive_maximum = p
            .integer("receiveMaximum", 1, u32::from(u16::MAX))?
            .and_then(|n| NonZeroU16::new(n as u16));
        props.maximum_packet_size = p
            .integer("maximumPacketSize", 1, u32::MAX)?
            .and_then(NonZeroU32::new);
        props.topic_alias_maximum = p
            .integer("topicAliasMaximum", 0, u32::from(u16::MAX))?
            .map(|n| n as u16);
        props.request_response_information = p.bool("requestResponseInformation")?;
        props.request_problem_information = p.bool("requestProblemInformation")?;
        props.user_properties = p.user_properties("userProperties")?;
    }
    let reconnect = match o.get("reconnect") {
        None => Some(Backoff::default()),
        Some(v) if v.as_bool() == Some(true) => Some(Backoff::default()),
        Some(v) if v.as_bool() == Some(false) => None,
        Some(v) => {
            let b = Fields::read(v, "reconnect", BACKOFF)?
                .ok_or("reconnect must be an object or false")?;
            let default = Backoff::default();
            let backoff = Backoff {
                initial_delay_ms: b
                    .integer("initialDelayMs", 0, u32::MAX)?
                    .unwrap_or(default.initial_delay_ms),
                max_delay_ms: b
                    .integer("maxDelayMs", 0, u32::MAX)?
                    .unwrap_or(default.max_delay_ms),
                jitter: b.number("jitter")?.unwrap_or(default.jitter),
            };
            if !(0.0..=1.0).contains(&backoff.jitter) {
                return Err("reconnect.jitter must be from 0 to 1".to_owned());
            }
            Some(backoff)
        }
    };
    Ok(Connection {
        session: options,
        reconnect,
    })
}

fn read_will(w: &Fields) -> Result<Will, String> {
    let topic = w.string("topic")?.ok_or("will.topic is missing")?;
    let topic = topic_name(&topic).map_err(|e| cat(&["will.topic: ", &e]))?;
    let mut properties = WillProperties::default();
    if let Some(p) = w.object("properties", WILL_PROPERTIES)? {
        properties.will_delay_interval = p.integer("willDelayInterval", 0, u32::MAX)?;
        let message = message_properties(&p)?;
        properties.payload_format_indicator = message.payload_format_indicator;
        properties.message_expiry_interval = message.message_expiry_interval;
        properties.content_type = message.content_type;
        properties.response_topic = message.response_topic;
        properties.correlation_data = message.correlation_data;
        properties.user_properties = message.user_properties;
    }
    Ok(Will {
        topic,
        payload: w.payload("payload")?.unwrap_or_default(),
        qos: w.qos("qos")?,
        retain: w.bool("retain")?.unwrap_or(false),
        properties,
    })
}

fn message_properties(p: &Fields) -> Result<PublishProperties, String> {
    Ok(PublishProperties {
        payload_format_indicator: p.bool("payloadFormatIndicator")?,
        message_expiry_interval: p.integer("messageExpiryInterval", 0, u32::MAX)?,
        content_type: p.byte_str("contentType")?,
        response_topic: p
            .string("responseTopic")?
            .map(|t| topic_name(&t).map_err(|e| p.wrong("responseTopic", &cat(&[": ", &e]))))
            .transpose()?,
        correlation_data: p.payload("correlationData")?,
        user_properties: p.user_properties("userProperties")?,
        ..Default::default()
    })
}

/// What `publish(topic, payload, options)` sets besides topic and payload.
pub(crate) struct PublishSettings {
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) properties: Option<PublishProperties>,
}

pub(crate) fn publish_options(value: JsValue) -> Result<PublishSettings, String> {
    let Some(o) = Fields::read(value, "", PUBLISH)? else {
        return Ok(PublishSettings {
            qos: QoS::AtMostOnce,
            retain: false,
            properties: None,
        });
    };
    Ok(PublishSettings {
        qos: o.qos("qos")?,
        retain: o.bool("retain")?.unwrap_or(false),
        properties: o
            .object("properties", MESSAGE_PROPERTIES)?
            .map(|p| message_properties(&p))
            .transpose()?,
    })
}

/// The options byte of one subscription: `own` (the per-filter options of the object form)
/// wins over `common` (the second argument).
pub(crate) fn subscription_options(
    common: Option<&Fields>,
    own: Option<&Fields>,
) -> Result<SubscriptionOptions, String> {
    let pick = |key: &str| {
        own.and_then(|o| o.get(key))
            .is_some()
            .then_some(own)
            .flatten()
            .or(common)
    };
    let qos = match pick("qos") {
        Some(o) => o.qos("qos")?,
        None => QoS::AtMostOnce,
    };
    let flag = |key: &str| -> Result<bool, String> {
        Ok(match pick(key) {
            Some(o) => o.bool(key)?.unwrap_or(false),
            None => false,
        })
    };
    let retain_handling = match pick("rh")
        .map(|o| o.integer("rh", 0, 2))
        .transpose()?
        .flatten()
    {
        None | Some(0) => RetainHandling::SendAtSubscribe,
        Some(1) => RetainHandling::SendAtSubscribeIfNew,
        Some(_) => RetainHandling::DoNotSend,
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: flag("nl")?,
        retain_as_published: flag("rap")?,
        retain_handling,
    })
}

/// The SUBSCRIBE's 5.0 properties, from the common options.
pub(crate) fn subscribe_properties(common: Option<&Fields>) -> Result<SubscribeProperties, String> {
    let Some(p) = common
        .map(|c| c.object("properties", SUBSCRIBE_PROPERTIES))
        .transpose()?
        .flatten()
    else {
        return Ok(SubscribeProperties::default());
    };
    Ok(SubscribeProperties {
        subscription_identifier: p
            .integer("subscriptionIdentifier", 1, 268_435_455)?
            .and_then(SubscriptionId::new),
        user_properties: p.user_properties("userProperties")?,
    })
}

fn js_random() -> f64 {
    js_sys::Math::random()
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
