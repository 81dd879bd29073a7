//! The options objects of the JS API, read by hand (`Reflect.get`), and turned into
//! midge-codec types. Every field is optional; the names are MQTT.js's where MQTT.js has one.
//! A wrong option is a readable error naming it, never a silently ignored field.

use alloc::{borrow::ToOwned, string::String, vec::Vec};
use core::num::{NonZeroU16, NonZeroU32};

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
use crate::text::{cat, decimal, list, written};

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
        let base = f64::from(self.initial_delay_ms) * f64::from(1u32 << attempt.min(30));
        let base = base.min(f64::from(self.max_delay_ms));
        let spread = 1.0 + self.jitter * (2.0 * random - 1.0);
        (base * spread).max(0.0) as u64
    }
}

/// What an option's value must be; each kind has one reader and one wording of its error.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A string.
    Text,
    /// `true` or `false`.
    Flag,
    /// Any number.
    Number,
    /// A whole number from the first to the second.
    Whole(u32, u32),
    /// 0, 1 or 2.
    Qos,
    /// A payload (see [`payload`]).
    Payload,
    /// An MQTT UTF-8 string.
    Utf8,
    /// A topic name.
    Topic,
    /// An options object with these fields.
    Object(&'static [Field]),
    /// User properties: `{ name: value }` or `{ name: [value, ...] }`, as MQTT.js has them.
    Pairs,
    /// Anything, checked by the caller.
    Any,
}

/// An option: its name and the kind of its value.
pub(crate) type Field = (&'static str, Kind);

/// An option's value, read and checked.
enum Value {
    Text(String),
    Flag(bool),
    Number(f64),
    Payload(Bytes),
    Utf8(ByteStr),
    Topic(TopicName),
    Object(Fields),
    Pairs(Vec<UserProperty>),
    Any(JsValue),
}

/// An options object, read by one table-driven reader: every key must be one of the table's
/// (a misspelt option is an error, not silently ignored), and every value of its kind.
/// Errors name the option by its path, like `will.qos`. The values are then taken by name.
pub(crate) struct Fields {
    table: &'static [Field],
    values: Vec<Option<Value>>,
}

impl Fields {
    /// `value` as an options object with the fields `table`; `None` for `undefined` or `null`.
    pub(crate) fn read(
        value: JsValue,
        path: &str,
        table: &'static [Field],
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
            if !table.iter().any(|(known, _)| *known == key) {
                let mut known = Vec::with_capacity(table.len());
                for (name, _) in table {
                    known.push(*name);
                }
                return Err(cat(&[
                    "unknown option ",
                    &name(path, &key),
                    "; the options here are ",
                    &list(&known),
                ]));
            }
        }
        let mut values = Vec::with_capacity(table.len());
        for &(key, kind) in table {
            let found = js_sys::Reflect::get(&value, &JsValue::from_str(key))
                .ok()
                .filter(|v| !v.is_undefined() && !v.is_null());
            values.push(match found {
                None => None,
                Some(v) => Some(read_value(v, &name(path, key), kind)?),
            });
        }
        Ok(Some(Fields { table, values }))
    }

    fn value(&self, key: &str) -> Option<&Value> {
        let i = self.table.iter().position(|(known, _)| *known == key)?;
        self.values.get(i)?.as_ref()
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        let i = self.table.iter().position(|(known, _)| *known == key)?;
        self.values.get_mut(i)?.take()
    }

    /// Whether the option is given (neither `undefined` nor `null`).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.value(key).is_some()
    }

    pub(crate) fn text(&mut self, key: &str) -> Option<String> {
        match self.take(key) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn flag(&self, key: &str) -> Option<bool> {
        match self.value(key) {
            Some(Value::Flag(b)) => Some(*b),
            _ => None,
        }
    }

    fn number(&self, key: &str) -> Option<f64> {
        match self.value(key) {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    /// A [`Kind::Whole`] or [`Kind::Qos`] option.
    pub(crate) fn whole(&self, key: &str) -> Option<u32> {
        self.number(key).map(|n| n as u32)
    }

    pub(crate) fn qos(&self, key: &str) -> QoS {
        match self.whole(key) {
            None | Some(0) => QoS::AtMostOnce,
            Some(1) => QoS::AtLeastOnce,
            Some(_) => QoS::ExactlyOnce,
        }
    }

    fn payload(&mut self, key: &str) -> Option<Bytes> {
        match self.take(key) {
            Some(Value::Payload(b)) => Some(b),
            _ => None,
        }
    }

    fn utf8(&mut self, key: &str) -> Option<ByteStr> {
        match self.take(key) {
            Some(Value::Utf8(s)) => Some(s),
            _ => None,
        }
    }

    fn topic(&mut self, key: &str) -> Option<TopicName> {
        match self.take(key) {
            Some(Value::Topic(t)) => Some(t),
            _ => None,
        }
    }

    fn object(&mut self, key: &str) -> Option<Fields> {
        match self.take(key) {
            Some(Value::Object(o)) => Some(o),
            _ => None,
        }
    }

    fn pairs(&mut self, key: &str) -> Vec<UserProperty> {
        match self.take(key) {
            Some(Value::Pairs(p)) => p,
            _ => Vec::new(),
        }
    }

    fn any(&mut self, key: &str) -> Option<JsValue> {
        match self.take(key) {
            Some(Value::Any(v)) => Some(v),
            _ => None,
        }
    }
}

/// The one reader of option values: `v` (neither `undefined` nor `null`) as `kind`, or why
/// not, starting with the option's name `what`.
fn read_value(v: JsValue, what: &str, kind: Kind) -> Result<Value, String> {
    let wrong = |why: &str| cat(&[what, why]);
    let text = |v: &JsValue| v.as_string().ok_or_else(|| wrong(" must be a string"));
    Ok(match kind {
        Kind::Text => Value::Text(text(&v)?),
        Kind::Flag => Value::Flag(v.as_bool().ok_or_else(|| wrong(" must be true or false"))?),
        Kind::Number => Value::Number(v.as_f64().ok_or_else(|| wrong(" must be a number"))?),
        Kind::Whole(min, max) => {
            let n = v.as_f64().ok_or_else(|| wrong(" must be a number"))?;
            // Whole: what survives a round trip through an integer (`fract` is not in `core`).
            if n != n as u64 as f64 || n < f64::from(min) || n > f64::from(max) {
                return Err(cat(&[
                    what,
                    " must be a whole number from ",
                    &decimal(min.into()),
                    " to ",
                    &decimal(max.into()),
                ]));
            }
            Value::Number(n)
        }
        Kind::Qos => match v.as_f64() {
            Some(n) if n == 0.0 || n == 1.0 || n == 2.0 => Value::Number(n),
            _ => return Err(wrong(" must be 0, 1 or 2")),
        },
        Kind::Payload => Value::Payload(payload(&v).map_err(|e| cat(&[what, ": ", &e]))?),
        Kind::Utf8 => Value::Utf8(byte_str(&text(&v)?, what)?),
        Kind::Topic => {
            let topic = text(&v)?;
            Value::Topic(topic_name(&topic).map_err(|e| cat(&[what, ": ", &e]))?)
        }
        Kind::Object(table) => match Fields::read(v, what, table)? {
            Some(fields) => Value::Object(fields),
            None => return Err(wrong(" must be an object")),
        },
        Kind::Pairs => Value::Pairs(user_properties(&v, what)?),
        Kind::Any => Value::Any(v),
    })
}

/// `{ name: value }` or `{ name: [value, ...] }`, as MQTT.js has them.
fn user_properties(map: &JsValue, what: &str) -> Result<Vec<UserProperty>, String> {
    if !map.is_object() {
        return Err(cat(&[what, " must be an object of strings"]));
    }
    let mut pairs = Vec::new();
    for entry in Object::entries(map.unchecked_ref()).iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        let name = entry.get_unchecked(0).as_string().unwrap_or_default();
        let value = entry.get_unchecked(1);
        let mut values = Vec::new();
        match value.dyn_ref::<js_sys::Array>() {
            Some(array) => {
                for value in array.iter() {
                    values.push(value);
                }
            }
            None => values.push(value),
        }
        for value in values {
            let value = value.as_string().ok_or_else(|| {
                cat(&[what, ".", &name, " must be a string or an array of strings"])
            })?;
            pairs.push(UserProperty {
                name: byte_str(&name, what)?,
                value: byte_str(&value, what)?,
            });
        }
    }
    Ok(pairs)
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

const ANY_U32: Kind = Kind::Whole(0, u32::MAX);
const ANY_U16: Kind = Kind::Whole(0, u16::MAX as u32);

const CONNECT: &[Field] = &[
    ("clientId", Kind::Text),
    ("protocolVersion", Kind::Whole(0, 255)),
    ("clean", Kind::Flag),
    ("keepalive", ANY_U16),
    ("username", Kind::Text),
    ("password", Kind::Payload),
    ("will", Kind::Object(WILL)),
    ("reconnect", Kind::Any),
    ("properties", Kind::Object(CONNECT_PROPERTIES)),
    ("connectTimeout", Kind::Whole(1, u32::MAX)),
    ("queueLimit", ANY_U32),
];
const WILL: &[Field] = &[
    ("topic", Kind::Topic),
    ("payload", Kind::Payload),
    ("qos", Kind::Qos),
    ("retain", Kind::Flag),
    ("properties", Kind::Object(WILL_PROPERTIES)),
];
const CONNECT_PROPERTIES: &[Field] = &[
    ("sessionExpiryInterval", ANY_U32),
    ("receiveMaximum", Kind::Whole(1, u16::MAX as u32)),
    ("maximumPacketSize", Kind::Whole(1, u32::MAX)),
    ("topicAliasMaximum", ANY_U16),
    ("requestResponseInformation", Kind::Flag),
    ("requestProblemInformation", Kind::Flag),
    ("userProperties", Kind::Pairs),
];
const BACKOFF: &[Field] = &[
    ("initialDelayMs", ANY_U32),
    ("maxDelayMs", ANY_U32),
    ("jitter", Kind::Number),
];
const PUBLISH: &[Field] = &[
    ("qos", Kind::Qos),
    ("retain", Kind::Flag),
    ("properties", Kind::Object(MESSAGE_PROPERTIES)),
];
const WILL_PROPERTIES: &[Field] = &[
    ("willDelayInterval", ANY_U32),
    ("payloadFormatIndicator", Kind::Flag),
    ("messageExpiryInterval", ANY_U32),
    ("contentType", Kind::Utf8),
    ("responseTopic", Kind::Topic),
    ("correlationData", Kind::Payload),
    ("userProperties", Kind::Pairs),
];
/// A will's properties but the delay: those of a message.
const MESSAGE_PROPERTIES: &[Field] = WILL_PROPERTIES.split_at(1).1;
pub(crate) const SUBSCRIBE: &[Field] = &[
    ("qos", Kind::Qos),
    ("nl", Kind::Flag),
    ("rap", Kind::Flag),
    ("rh", Kind::Whole(0, 2)),
    ("properties", Kind::Object(SUBSCRIBE_PROPERTIES)),
];
const SUBSCRIBE_PROPERTIES: &[Field] = &[
    ("subscriptionIdentifier", Kind::Whole(1, 268_435_455)),
    ("userProperties", Kind::Pairs),
];

/// Reads `connect(url, options)`.
pub(crate) fn connection(value: JsValue) -> Result<Connection, String> {
    let Some(mut o) = Fields::read(value, "", CONNECT)? else {
        return Ok(Connection {
            session: Options::new(""),
            reconnect: Some(Backoff::default()),
        });
    };
    let mut options = Options::new(o.text("clientId").unwrap_or_default());
    options.version = match o.whole("protocolVersion") {
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
    if let Some(clean) = o.flag("clean") {
        options.clean_start = clean;
    }
    if let Some(keepalive) = o.whole("keepalive") {
        options.keep_alive = keepalive as u16;
    }
    options.username = o.text("username");
    options.password = o.payload("password");
    if let Some(ms) = o.whole("connectTimeout") {
        options.response_timeout_ms = u64::from(ms);
    }
    if let Some(limit) = o.whole("queueLimit") {
        options.max_offline_queue = limit as usize;
    }
    if let Some(mut will) = o.object("will") {
        options.will = Some(read_will(&mut will)?);
    }
    if let Some(mut p) = o.object("properties") {
        let props = &mut options.properties;
        props.session_expiry_interval = p.whole("sessionExpiryInterval");
        props.receive_maximum = p
            .whole("receiveMaximum")
            .and_then(|n| NonZeroU16::new(n as u16));
        props.maximum_packet_size = p.whole("maximumPacketSize").and_then(NonZeroU32::new);
        props.topic_alias_maximum = p.whole("topicAliasMaximum").map(|n| n as u16);
        props.request_response_information = p.flag("requestResponseInformation");
        props.request_problem_information = p.flag("requestProblemInformation");
        props.user_properties = p.pairs("userProperties");
    }
    let reconnect = match o.any("reconnect") {
        None => Some(Backoff::default()),
        Some(v) if v.as_bool() == Some(true) => Some(Backoff::default()),
        Some(v) if v.as_bool() == Some(false) => None,
        Some(v) => {
            let b = Fields::read(v, "reconnect", BACKOFF)?
                .ok_or("reconnect must be an object or false")?;
            let default = Backoff::default();
            let backoff = Backoff {
                initial_delay_ms: b
                    .whole("initialDelayMs")
                    .unwrap_or(default.initial_delay_ms),
                max_delay_ms: b.whole("maxDelayMs").unwrap_or(default.max_delay_ms),
                jitter: b.number("jitter").unwrap_or(default.jitter),
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

fn read_will(w: &mut Fields) -> Result<Will, String> {
    let topic = w.topic("topic").ok_or("will.topic is missing")?;
    let mut properties = WillProperties::default();
    if let Some(mut p) = w.object("properties") {
        properties.will_delay_interval = p.whole("willDelayInterval");
        let message = message_properties(&mut p);
        properties.payload_format_indicator = message.payload_format_indicator;
        properties.message_expiry_interval = message.message_expiry_interval;
        properties.content_type = message.content_type;
        properties.response_topic = message.response_topic;
        properties.correlation_data = message.correlation_data;
        properties.user_properties = message.user_properties;
    }
    Ok(Will {
        topic,
        payload: w.payload("payload").unwrap_or_default(),
        qos: w.qos("qos"),
        retain: w.flag("retain").unwrap_or(false),
        properties,
    })
}

fn message_properties(p: &mut Fields) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: p.flag("payloadFormatIndicator"),
        message_expiry_interval: p.whole("messageExpiryInterval"),
        content_type: p.utf8("contentType"),
        response_topic: p.topic("responseTopic"),
        correlation_data: p.payload("correlationData"),
        user_properties: p.pairs("userProperties"),
        ..Default::default()
    }
}

/// What `publish(topic, payload, options)` sets besides topic and payload.
pub(crate) struct PublishSettings {
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) properties: Option<PublishProperties>,
}

pub(crate) fn publish_options(value: JsValue) -> Result<PublishSettings, String> {
    let Some(mut o) = Fields::read(value, "", PUBLISH)? else {
        return Ok(PublishSettings {
            qos: QoS::AtMostOnce,
            retain: false,
            properties: None,
        });
    };
    Ok(PublishSettings {
        qos: o.qos("qos"),
        retain: o.flag("retain").unwrap_or(false),
        properties: o
            .object("properties")
            .map(|mut p| message_properties(&mut p)),
    })
}

/// The options byte of one subscription: `own` (the per-filter options of the object form)
/// wins over `common` (the second argument).
pub(crate) fn subscription_options(
    common: Option<&Fields>,
    own: Option<&Fields>,
) -> SubscriptionOptions {
    let pick = |key: &str| own.filter(|o| o.has(key)).or(common);
    let retain_handling = match pick("rh").and_then(|o| o.whole("rh")) {
        None | Some(0) => RetainHandling::SendAtSubscribe,
        Some(1) => RetainHandling::SendAtSubscribeIfNew,
        Some(_) => RetainHandling::DoNotSend,
    };
    let flag = |key: &str| pick(key).and_then(|o| o.flag(key)).unwrap_or(false);
    SubscriptionOptions {
        qos: pick("qos").map_or(QoS::AtMostOnce, |o| o.qos("qos")),
        no_local: flag("nl"),
        retain_as_published: flag("rap"),
        retain_handling,
    }
}

/// The SUBSCRIBE's 5.0 properties, from the common options.
pub(crate) fn subscribe_properties(common: Option<&mut Fields>) -> SubscribeProperties {
    let Some(mut p) = common.and_then(|c| c.object("properties")) else {
        return SubscribeProperties::default();
    };
    SubscribeProperties {
        subscription_identifier: p
            .whole("subscriptionIdentifier")
            .and_then(SubscriptionId::new),
        user_properties: p.pairs("userProperties"),
    }
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
