//! The options objects of the JS API, and the filters of `subscribe` and `unsubscribe`:
//! read and checked in JS (`options.js`, beside this file: walking a JS object is JS's own
//! work, and smaller there than in the `.wasm`), handed over in slots, and turned into
//! midge-codec types here. What the codec checks (topic names and filters, MQTT UTF-8
//! strings) it checks here, in the order the options were read. Every field is optional;
//! the names are MQTT.js's where MQTT.js has one. A wrong option is a readable error naming
//! it, never a silently ignored field.

use alloc::{string::String, vec::Vec};
use core::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use js_sys::{Array, Uint8Array};
use midge_codec::properties::{PublishProperties, SubscribeProperties, WillProperties};
use midge_codec::{
    ByteStr, ProtocolVersion, QoS, RetainHandling, SubscriptionId, SubscriptionOptions, TopicError,
    TopicFilter, TopicName, UserProperty, Will,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

use crate::session::Options;
use crate::text::{cat, written};

#[wasm_bindgen(module = "/src/options.js")]
extern "C" {
    #[wasm_bindgen(js_name = readConnect)]
    fn read_connect(options: JsValue, slots: &Array, checks: &Array) -> JsValue;
    #[wasm_bindgen(js_name = readPublish)]
    fn read_publish(payload: &JsValue, options: JsValue, slots: &Array, checks: &Array) -> JsValue;
    #[wasm_bindgen(js_name = readSubscribe)]
    fn read_subscribe(
        filters: &JsValue,
        options: JsValue,
        slots: &Array,
        checks: &Array,
    ) -> JsValue;
    #[wasm_bindgen(js_name = readFilters)]
    fn read_filters(filters: &JsValue, slots: &Array, checks: &Array) -> JsValue;
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
        let base = f64::from(self.initial_delay_ms) * f64::from(1u32 << attempt.min(30));
        let base = base.min(f64::from(self.max_delay_ms));
        let spread = 1.0 + self.jitter * (2.0 * random - 1.0);
        (base * spread).max(0.0) as u64
    }
}

/// What a reader of `options.js` wrote: the values in its slots, by number (see there for
/// the layouts), and the strings for the codec to check.
struct Slots {
    slots: Array,
    checks: Array,
}

impl Slots {
    fn new() -> Slots {
        Slots {
            slots: Array::new(),
            checks: Array::new(),
        }
    }

    /// After a reader ran, stopping at `error`: the codec's checks of what it read, in
    /// order, and then that error; so the first error reading the options front to back.
    /// (Once, not once per reader.)
    #[inline(never)]
    fn check(&self, error: JsValue) -> Result<(), String> {
        let checks = &self.checks;
        let mut i = 0;
        while i < checks.length() {
            let what = string(checks, i + 1);
            let text = string(checks, i + 2);
            // The checks as `options.js` numbers them: TOPIC, UTF8, TOPIC_FILTER.
            match checks.get(i).as_f64() {
                Some(0.0) => {
                    topic_name(&text).map_err(|e| cat(&[&what, ": ", &e]))?;
                }
                Some(1.0) => {
                    byte_str(&text, &what)?;
                }
                _ => {
                    TopicFilter::try_from(text.as_str()).map_err(|e| not_a_filter(&text, e))?;
                }
            }
            i += 3;
        }
        match error.as_string() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn text(&self, i: u32) -> Option<String> {
        self.slots.get(i).as_string()
    }

    fn flag(&self, i: u32) -> Option<bool> {
        self.slots.get(i).as_bool()
    }

    fn whole(&self, i: u32) -> Option<u32> {
        self.slots.get(i).as_f64().map(|n| n as u32)
    }

    fn qos(&self, i: u32) -> QoS {
        match self.whole(i) {
            None | Some(0) => QoS::AtMostOnce,
            Some(1) => QoS::AtLeastOnce,
            Some(_) => QoS::ExactlyOnce,
        }
    }

    /// A payload, which `options.js` hands over as a `Uint8Array`.
    fn bytes(&self, i: u32) -> Option<Bytes> {
        let value = self.slots.get(i);
        (!value.is_undefined()).then(|| Bytes::from(value.unchecked_into::<Uint8Array>().to_vec()))
    }

    /// A topic name, checked already.
    fn topic(&self, i: u32) -> Option<TopicName> {
        TopicName::try_from(self.text(i)?.as_str()).ok()
    }

    /// An MQTT UTF-8 string, checked already.
    fn utf8(&self, i: u32) -> Option<ByteStr> {
        ByteStr::try_from(self.text(i)?.as_str()).ok()
    }

    /// User properties, checked already: names and values one after the other.
    fn pairs(&self, i: u32) -> Vec<UserProperty> {
        let mut pairs = Vec::new();
        if let Some(array) = self.slots.get(i).dyn_ref::<Array>() {
            let mut at = 0;
            while at < array.length() {
                let name = ByteStr::try_from(string(array, at).as_str());
                let value = ByteStr::try_from(string(array, at + 1).as_str());
                if let (Ok(name), Ok(value)) = (name, value) {
                    pairs.push(UserProperty { name, value });
                }
                at += 2;
            }
        }
        pairs
    }

    /// A message's properties, from slot `at` (a will's after its delay).
    fn message(&self, at: u32) -> PublishProperties {
        PublishProperties {
            payload_format_indicator: self.flag(at),
            message_expiry_interval: self.whole(at + 1),
            content_type: self.utf8(at + 2),
            response_topic: self.topic(at + 3),
            correlation_data: self.bytes(at + 4),
            user_properties: self.pairs(at + 5),
            ..Default::default()
        }
    }
}

/// The string at `i` of `array`.
fn string(array: &Array, i: u32) -> String {
    array.get(i).as_string().unwrap_or_default()
}

fn byte_str(s: &str, what: &str) -> Result<ByteStr, String> {
    ByteStr::try_from(s).map_err(|e| {
        let why = written(|out| e.write_text(out));
        cat(&[what, ": \"", s, "\" is not valid: ", &why])
    })
}

pub(crate) fn topic_name(topic: &str) -> Result<TopicName, String> {
    TopicName::try_from(topic)
        .map_err(|e| cat(&["\"", topic, "\" is not a valid topic name: ", e.text()]))
}

/// `"a/#/b" is not a valid topic filter: '#' is not the whole last level`.
pub(crate) fn not_a_filter(name: &str, e: TopicError) -> String {
    cat(&["\"", name, "\" is not a valid topic filter: ", e.text()])
}

/// What `connect` needs beyond the session's options.
pub(crate) struct Connection {
    pub(crate) session: Options,
    pub(crate) reconnect: Option<Backoff>,
}

/// Reads `connect(url, options)`.
pub(crate) fn connection(value: JsValue) -> Result<Connection, String> {
    let o = Slots::new();
    o.check(read_connect(value, &o.slots, &o.checks))?;
    let mut options = Options::new(o.text(1).unwrap_or_default());
    if o.whole(2) == Some(4) {
        options.version = ProtocolVersion::V3_1_1;
    }
    if let Some(clean) = o.flag(3) {
        options.clean_start = clean;
    }
    if let Some(keepalive) = o.whole(4) {
        options.keep_alive = keepalive as u16;
    }
    options.username = o.text(5);
    options.password = o.bytes(6);
    if let Some(topic) = o.topic(8) {
        let message = o.message(14);
        options.will = Some(Will {
            topic,
            payload: o.bytes(9).unwrap_or_default(),
            qos: o.qos(10),
            retain: o.flag(11).unwrap_or(false),
            properties: WillProperties {
                will_delay_interval: o.whole(13),
                payload_format_indicator: message.payload_format_indicator,
                message_expiry_interval: message.message_expiry_interval,
                content_type: message.content_type,
                response_topic: message.response_topic,
                correlation_data: message.correlation_data,
                user_properties: message.user_properties,
            },
        });
    }
    let props = &mut options.properties;
    props.session_expiry_interval = o.whole(22);
    props.receive_maximum = o.whole(23).and_then(|n| NonZeroU16::new(n as u16));
    props.maximum_packet_size = o.whole(24).and_then(NonZeroU32::new);
    props.topic_alias_maximum = o.whole(25).map(|n| n as u16);
    props.request_response_information = o.flag(26);
    props.request_problem_information = o.flag(27);
    props.user_properties = o.pairs(28);
    if let Some(ms) = o.whole(29) {
        options.response_timeout_ms = u64::from(ms);
    }
    if let Some(limit) = o.whole(30) {
        options.max_offline_queue = limit as usize;
    }
    options.auto_assign_topic_alias = o.flag(31).unwrap_or(false);
    let default = Backoff::default();
    let reconnect = (o.flag(20) != Some(false)).then(|| Backoff {
        initial_delay_ms: o.whole(33).unwrap_or(default.initial_delay_ms),
        max_delay_ms: o.whole(34).unwrap_or(default.max_delay_ms),
        jitter: o.slots.get(35).as_f64().unwrap_or(default.jitter),
    });
    Ok(Connection {
        session: options,
        reconnect,
    })
}

/// What `publish(topic, payload, options)` sets besides the topic.
pub(crate) struct PublishSettings {
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) properties: PublishProperties,
}

pub(crate) fn publish_options(
    payload: &JsValue,
    options: JsValue,
) -> Result<PublishSettings, String> {
    let o = Slots::new();
    o.check(read_publish(payload, options, &o.slots, &o.checks))?;
    Ok(PublishSettings {
        payload: o.bytes(0).unwrap_or_default(),
        qos: o.qos(2),
        retain: o.flag(3).unwrap_or(false),
        properties: o.message(5),
    })
}

/// `subscribe(filters, options)`: the subscriptions, each filter's options byte from its
/// own options (the object form) or else the common ones (the second argument), and the
/// SUBSCRIBE's 5.0 properties from the common options.
pub(crate) fn subscriptions(
    filters: &JsValue,
    options: JsValue,
) -> Result<(Vec<midge_codec::Subscription>, SubscribeProperties), String> {
    let o = Slots::new();
    o.check(read_subscribe(filters, options, &o.slots, &o.checks))?;
    let mut list = Vec::new();
    let mut at = 8;
    while at < o.slots.length() {
        if let Some(filter) = o
            .text(at)
            .and_then(|f| TopicFilter::try_from(f.as_str()).ok())
        {
            let retain_handling = match o.whole(at + 5) {
                None | Some(0) => RetainHandling::SendAtSubscribe,
                Some(1) => RetainHandling::SendAtSubscribeIfNew,
                Some(_) => RetainHandling::DoNotSend,
            };
            let options = SubscriptionOptions {
                qos: o.qos(at + 2),
                no_local: o.flag(at + 3).unwrap_or(false),
                retain_as_published: o.flag(at + 4).unwrap_or(false),
                retain_handling,
            };
            list.push(midge_codec::Subscription { filter, options });
        }
        at += 9;
    }
    let properties = SubscribeProperties {
        subscription_identifier: o.whole(6).and_then(SubscriptionId::new),
        user_properties: o.pairs(7),
    };
    Ok((list, properties))
}

/// `unsubscribe(filters)`: a filter or an array of them.
pub(crate) fn filter_list(filters: &JsValue) -> Result<Vec<TopicFilter>, String> {
    let o = Slots::new();
    o.check(read_filters(filters, &o.slots, &o.checks))?;
    let mut list = Vec::new();
    for i in 0..o.slots.length() {
        if let Some(filter) = o
            .text(i)
            .and_then(|f| TopicFilter::try_from(f.as_str()).ok())
        {
            list.push(filter);
        }
    }
    Ok(list)
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
