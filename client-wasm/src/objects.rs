//! Decoded packets as the plain JS objects MQTT.js users know (`packet.qos`,
//! `packet.properties.userProperties`, ...).

use js_sys::{Array, Object, Reflect, Uint8Array};
use midge_codec::properties::PublishProperties;
use midge_codec::{ConnAck, Publish};
use wasm_bindgen::{JsCast, JsValue};

/// Sets `key` on `object`; setting a property on a plain object cannot fail.
pub(crate) fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    set_value(object, key, value.into());
}

/// [`set`] once, not once per value type.
#[inline(never)]
fn set_value(object: &Object, key: &str, value: JsValue) {
    let _ = Reflect::set(object, &JsValue::from_str(key), &value);
}

fn set_some<T: Into<JsValue>>(object: &Object, key: &str, value: Option<T>) {
    if let Some(value) = value {
        set(object, key, value);
    }
}

pub(crate) fn bytes(data: &[u8]) -> Uint8Array {
    Uint8Array::from(data)
}

/// `{ name: value }`, or `{ name: [value, ...] }` for a name that repeats, as MQTT.js has them.
fn user_properties(object: &Object, pairs: &[midge_codec::UserProperty]) {
    if pairs.is_empty() {
        return;
    }
    let map = Object::new();
    for pair in pairs {
        let name = JsValue::from_str(pair.name.as_str());
        let value = JsValue::from_str(pair.value.as_str());
        let value = match Reflect::get(&map, &name) {
            Ok(first) if first.is_string() => {
                let both = Array::new();
                both.push(&first);
                both.push(&value);
                both.into()
            }
            Ok(all) if Array::is_array(&all) => {
                all.unchecked_ref::<Array>().push(&value);
                all
            }
            _ => value,
        };
        let _ = Reflect::set(&map, &name, &value);
    }
    set(object, "userProperties", map);
}

/// `{ payloadFormatIndicator, messageExpiryInterval, contentType, responseTopic,
/// correlationData, userProperties, subscriptionIdentifier }`, only what is present.
fn publish_properties(p: &PublishProperties) -> Object {
    let o = Object::new();
    set_some(&o, "payloadFormatIndicator", p.payload_format_indicator);
    set_some(&o, "messageExpiryInterval", p.message_expiry_interval);
    set_some(
        &o,
        "contentType",
        p.content_type.as_ref().map(|t| t.as_str()),
    );
    set_some(
        &o,
        "responseTopic",
        p.response_topic.as_ref().map(|t| t.as_str()),
    );
    set_some(
        &o,
        "correlationData",
        p.correlation_data.as_deref().map(bytes),
    );
    user_properties(&o, &p.user_properties);
    match p.subscription_identifiers.as_slice() {
        [] => {}
        [one] => set(&o, "subscriptionIdentifier", one.get()),
        many => {
            let ids = js_sys::Array::new();
            for id in many {
                ids.push(&JsValue::from(id.get()));
            }
            set(&o, "subscriptionIdentifier", ids);
        }
    }
    o
}

/// The `packet` argument of the `message` event.
pub(crate) fn publish_packet(publish: &Publish, payload: &Uint8Array) -> Object {
    let o = Object::new();
    set(&o, "cmd", "publish");
    set(&o, "topic", publish.topic.as_str());
    set(&o, "payload", payload.clone());
    set(&o, "qos", publish.qos as u8);
    set(&o, "retain", publish.retain);
    set(&o, "dup", publish.dup);
    set_some(&o, "messageId", publish.packet_id.map(|id| id.get()));
    set(
        &o,
        "properties",
        publish
            .properties
            .as_deref()
            .map_or_else(Object::new, publish_properties),
    );
    o
}

/// What `for await (const msg of client.messages(filter))` yields.
pub(crate) fn message(publish: &Publish) -> JsValue {
    let payload = bytes(&publish.payload);
    let o = publish_packet(publish, &payload);
    o.into()
}

/// The `connect` event's argument.
pub(crate) fn connack_packet(ack: &ConnAck) -> Object {
    let o = Object::new();
    set(&o, "cmd", "connack");
    set(&o, "sessionPresent", ack.session_present);
    set(&o, "reasonCode", u8::from(ack.reason_code));
    let p = &ack.properties;
    let props = Object::new();
    set_some(&props, "sessionExpiryInterval", p.session_expiry_interval);
    set_some(&props, "receiveMaximum", p.receive_maximum.map(|r| r.get()));
    set_some(&props, "maximumQoS", p.maximum_qos.map(|q| q as u8));
    set_some(&props, "retainAvailable", p.retain_available);
    set_some(
        &props,
        "maximumPacketSize",
        p.maximum_packet_size.map(|m| m.get()),
    );
    set_some(
        &props,
        "assignedClientIdentifier",
        p.assigned_client_identifier.as_ref().map(|c| c.as_str()),
    );
    set_some(&props, "topicAliasMaximum", p.topic_alias_maximum);
    set_some(
        &props,
        "reasonString",
        p.reason_string.as_ref().map(|r| r.as_str()),
    );
    user_properties(&props, &p.user_properties);
    set_some(
        &props,
        "wildcardSubscriptionAvailable",
        p.wildcard_subscription_available,
    );
    set_some(
        &props,
        "subscriptionIdentifiersAvailable",
        p.subscription_identifier_available,
    );
    set_some(
        &props,
        "sharedSubscriptionAvailable",
        p.shared_subscription_available,
    );
    set_some(&props, "serverKeepAlive", p.server_keep_alive);
    set_some(
        &props,
        "responseInformation",
        p.response_information.as_ref().map(|r| r.as_str()),
    );
    set_some(
        &props,
        "serverReference",
        p.server_reference.as_ref().map(|r| r.as_str()),
    );
    set(&o, "properties", props);
    o
}
