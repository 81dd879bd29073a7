//! The client in a real browser (headless Chromium, `wasm-pack test --headless --chrome`)
//! against a live broker: run through `tests/e2e/test_wasm_browser.py`, which starts `midge`
//! or Debian's `mosquitto` on free ports and passes its WebSocket URL at compile time in
//! `MIDGE_TEST_WS_URL`, and the URL of a small control server that stops and starts the broker
//! in `MIDGE_TEST_CONTROL_URL`.
//!
//! Every wait is bounded: a test that hangs fails with what it was waiting for.

#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::cell::RefCell;
use std::rc::Rc;

use crate::{MqttClient, connect};
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &JsValue, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = fetch)]
    fn fetch(url: &str) -> Promise;
}

fn broker_url() -> &'static str {
    match option_env!("MIDGE_TEST_WS_URL") {
        Some(url) => url,
        None => panic!("MIDGE_TEST_WS_URL is not set: run through tests/e2e/test_wasm_browser.py"),
    }
}

/// A name no other test (or run) uses, for client ids and topics.
fn unique(name: &str) -> String {
    format!("{name}-{}", (js_sys::Math::random() * 1e9) as u64)
}

fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (key, value) in fields {
        Reflect::set(&o, &(*key).into(), value).unwrap();
    }
    o.into()
}

fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap()
}

async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        set_timeout(resolve.as_ref(), ms);
    });
    JsFuture::from(promise).await.unwrap();
}

/// Awaits `promise`, failing the test if it neither resolves nor rejects within 10 s.
async fn settle(promise: Promise, what: &str) -> Result<JsValue, JsValue> {
    let timeout = Promise::new(&mut |_, reject| {
        let reject = reject.bind1(&JsValue::NULL, &format!("timed out: {what}").into());
        set_timeout(reject.as_ref(), 10_000);
    });
    let race = Promise::race(&Array::of2(&promise, &timeout));
    let result = JsFuture::from(race).await;
    if let Err(e) = &result
        && let Some(text) = e.as_string().filter(|s| s.starts_with("timed out"))
    {
        panic!("{text}");
    }
    result
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        sleep(10).await;
    }
    panic!("timed out waiting for {what}");
}

fn error_message(error: &JsValue) -> String {
    get(error, "message").as_string().unwrap_or_default()
}

async fn client(version: u8, id: &str, extra: &[(&str, JsValue)]) -> MqttClient {
    let mut fields = vec![
        ("clientId", JsValue::from(id)),
        ("protocolVersion", JsValue::from(version)),
    ];
    fields.extend(extra.iter().cloned());
    let value = settle(connect(broker_url().to_owned(), object(&fields)), "connect")
        .await
        .unwrap_or_else(|e| panic!("connect failed: {}", error_message(&e)));
    MqttClient::try_from_js_value(value).unwrap()
}

/// One received message: topic, payload and the packet object.
type Received = (String, Vec<u8>, JsValue);

/// What a client received.
#[derive(Clone, Default)]
struct Inbox(Rc<RefCell<Vec<Received>>>);

impl Inbox {
    fn attach(client: &MqttClient) -> Inbox {
        let inbox = Inbox::default();
        let sink = inbox.clone();
        let handler = Closure::<dyn FnMut(String, Uint8Array, JsValue)>::new(
            move |topic: String, payload: Uint8Array, packet: JsValue| {
                sink.0.borrow_mut().push((topic, payload.to_vec(), packet));
            },
        );
        // The test outlives the client; the closure is handed to JS for good.
        client
            .on("message", handler.into_js_value().unchecked_into())
            .unwrap();
        inbox
    }

    fn payloads(&self) -> Vec<String> {
        self.0
            .borrow()
            .iter()
            .map(|(_, p, _)| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    async fn wait_for(&self, payload: &str) {
        wait_until(&format!("message {payload:?}"), || {
            self.payloads().iter().any(|p| p == payload)
        })
        .await;
    }
}

/// Counts how often `event` fires.
fn count(client: &MqttClient, event: &str) -> Rc<RefCell<u32>> {
    let counter = Rc::new(RefCell::new(0));
    let c = counter.clone();
    let handler = Closure::<dyn FnMut()>::new(move || *c.borrow_mut() += 1);
    client
        .on(event, handler.into_js_value().unchecked_into())
        .unwrap();
    counter
}

async fn subscribe(client: &MqttClient, filter: &str, qos: u8) -> JsValue {
    let options = object(&[("qos", qos.into())]);
    settle(client.subscribe(filter.into(), options), "subscribe")
        .await
        .unwrap_or_else(|e| panic!("subscribe failed: {}", error_message(&e)))
}

async fn publish(client: &MqttClient, topic: &str, payload: JsValue, qos: u8) {
    let options = object(&[("qos", qos.into())]);
    settle(client.publish(topic.into(), payload, options), "publish")
        .await
        .unwrap_or_else(|e| panic!("publish failed: {}", error_message(&e)));
}

async fn end(client: &MqttClient) {
    settle(client.end(None), "end").await.unwrap();
}

// ----- the core flow: connect, subscribe, publish at each QoS, receive, unsubscribe, end --

async fn core_flow(version: u8) {
    let base = unique(&format!("midge-test/v{version}"));
    let sub = client(version, &unique("sub"), &[]).await;
    let publisher = client(version, &unique("pub"), &[]).await;
    assert!(sub.connected());
    assert_eq!(sub.protocol_version(), version);
    let inbox = Inbox::attach(&sub);

    let granted = subscribe(&sub, &format!("{base}/data/+"), 2).await;
    let first = Array::from(&granted).get(0);
    assert_eq!(
        get(&first, "topic").as_string().unwrap(),
        format!("{base}/data/+")
    );
    assert_eq!(get(&first, "qos").as_f64(), Some(2.0));
    subscribe(&sub, &format!("{base}/marker"), 1).await;

    for qos in 0..=2u8 {
        publish(
            &publisher,
            &format!("{base}/data/q{qos}"),
            format!("m{qos}").into(),
            qos,
        )
        .await;
    }
    for qos in 0..=2u8 {
        inbox.wait_for(&format!("m{qos}")).await;
    }
    for (topic, _, packet) in inbox.0.borrow().iter() {
        let qos = topic.chars().last().unwrap().to_digit(10).unwrap();
        assert_eq!(get(packet, "qos").as_f64(), Some(f64::from(qos)), "{topic}");
        assert_eq!(
            get(packet, "topic").as_string().as_deref(),
            Some(topic.as_str())
        );
    }

    // Binary payloads arrive byte for byte.
    let bytes: Vec<u8> = (0..=255).collect();
    let array = Uint8Array::from(bytes.as_slice());
    publish(&publisher, &format!("{base}/data/bin"), array.into(), 1).await;
    wait_until("the binary message", || {
        inbox
            .0
            .borrow()
            .iter()
            .any(|(t, p, _)| t.ends_with("/bin") && *p == bytes)
    })
    .await;

    // After unsubscribing, nothing more arrives on the filter; the marker, published after,
    // proves the broker had the message by then.
    settle(
        sub.unsubscribe(format!("{base}/data/+").into()),
        "unsubscribe",
    )
    .await
    .unwrap();
    publish(&publisher, &format!("{base}/data/late"), "late".into(), 1).await;
    publish(&publisher, &format!("{base}/marker"), "marker".into(), 1).await;
    inbox.wait_for("marker").await;
    assert!(!inbox.payloads().contains(&"late".to_owned()));

    end(&sub).await;
    end(&publisher).await;
    assert!(!sub.connected());
    let after = settle(
        sub.publish("x".into(), "y".into(), JsValue::UNDEFINED),
        "publish after end",
    )
    .await;
    assert!(error_message(&after.unwrap_err()).contains("ended"));
}

#[wasm_bindgen_test]
async fn core_flow_v5() {
    core_flow(5).await;
}

#[wasm_bindgen_test]
async fn core_flow_v311() {
    core_flow(4).await;
}

// ----- will ----------------------------------------------------------------------------

async fn will_on_abnormal_close(version: u8) {
    let topic = unique(&format!("midge-test/v{version}/will"));
    let watcher = client(version, &unique("watcher"), &[]).await;
    let inbox = Inbox::attach(&watcher);
    subscribe(&watcher, &topic, 1).await;
    let will = object(&[
        ("topic", topic.as_str().into()),
        ("payload", "gone".into()),
        ("qos", 1.into()),
    ]);
    let victim = client(version, &unique("victim"), &[("will", will)]).await;
    // A clean end never publishes the will; a forced one drops the connection without
    // DISCONNECT, as a closed tab does.
    settle(victim.end(Some(true)), "forced end").await.unwrap();
    inbox.wait_for("gone").await;
    end(&watcher).await;
}

#[wasm_bindgen_test]
async fn will_on_abnormal_close_v5() {
    will_on_abnormal_close(5).await;
}

#[wasm_bindgen_test]
async fn will_on_abnormal_close_v311() {
    will_on_abnormal_close(4).await;
}

// ----- reconnect ------------------------------------------------------------------------

async fn control(action: &str) {
    let Some(base) = option_env!("MIDGE_TEST_CONTROL_URL") else {
        panic!("MIDGE_TEST_CONTROL_URL is not set: run through tests/e2e/test_wasm_browser.py")
    };
    let response = settle(fetch(&format!("{base}/{action}")), action)
        .await
        .unwrap();
    assert_eq!(
        get(&response, "status").as_f64(),
        Some(200.0),
        "control {action}"
    );
}

/// The broker goes away and comes back (losing its in-memory sessions): the client reconnects
/// by itself, subscribes again, and what was published while offline goes out.
async fn reconnect_after_restart(version: u8) {
    let topic = unique(&format!("midge-test/v{version}/again"));
    let backoff = object(&[
        ("initialDelayMs", 100.into()),
        ("maxDelayMs", 500.into()),
        ("jitter", 0.1.into()),
    ]);
    let c = client(version, &unique("phoenix"), &[("reconnect", backoff)]).await;
    let inbox = Inbox::attach(&c);
    let offline = count(&c, "offline");
    let reconnects = count(&c, "reconnect");
    let connects = count(&c, "connect");
    subscribe(&c, &topic, 1).await;

    control("stop").await;
    wait_until("the offline event", || *offline.borrow() == 1).await;
    assert!(!c.connected());
    // Queued while offline: resolves once it is through after reconnecting.
    let queued = c.publish(topic.clone(), "queued".into(), object(&[("qos", 1.into())]));
    sleep(300).await;
    assert!(c.reconnecting(), "trying again while the broker is down");
    control("start").await;
    settle(queued, "the queued publish").await.unwrap();
    wait_until("connect after the restart", || *connects.borrow() == 1).await;
    assert!(*reconnects.borrow() >= 1);
    // The resubscription came before the queued message, so it comes back to us.
    inbox.wait_for("queued").await;
    publish(&c, &topic, "after".into(), 1).await;
    inbox.wait_for("after").await;
    end(&c).await;
}

#[wasm_bindgen_test]
async fn reconnect_after_restart_v5() {
    reconnect_after_restart(5).await;
}

#[wasm_bindgen_test]
async fn reconnect_after_restart_v311() {
    reconnect_after_restart(4).await;
}

/// Waiting out a long backoff, the client tries at once when the browser says it is online
/// again (the `online` event).
#[wasm_bindgen_test]
async fn back_online_reconnects_without_waiting_out_the_backoff() {
    let backoff = object(&[
        ("initialDelayMs", 60_000.into()),
        ("maxDelayMs", 60_000.into()),
        ("jitter", 0.into()),
    ]);
    let c = client(5, &unique("online"), &[("reconnect", backoff)]).await;
    let connects = count(&c, "connect");
    control("stop").await;
    wait_until("the client to wait for its next attempt", || {
        c.reconnect_in().is_some_and(|ms| ms > 30_000.0)
    })
    .await;
    control("start").await;
    let online = web_sys::Event::new("online").unwrap();
    let global: web_sys::EventTarget = js_sys::global().unchecked_into();
    global.dispatch_event(&online).unwrap();
    wait_until("connect after the online event", || *connects.borrow() == 1).await;
    assert!(c.connected());
    end(&c).await;
}

// ----- refusals ---------------------------------------------------------------------------

/// The harness gives both brokers an ACL that allows `midge-test/#` only: the refusals reject
/// with the reason code (5.0 has one for a refused publish; 3.1.1 does not, so it resolves).
async fn refusals_reject_with_the_reason_code(version: u8) {
    let c = client(version, &unique("refused"), &[]).await;
    let qos1 = || object(&[("qos", 1.into())]);
    let subscribed = settle(c.subscribe("denied/x".into(), qos1()), "a denied subscribe").await;
    if option_env!("MIDGE_TEST_BROKER") == Some("mosquitto") {
        // Mosquitto 2.0 grants the SUBSCRIBE and checks read access on each message instead.
        subscribed.unwrap();
    } else {
        let e = subscribed.unwrap_err();
        let not_authorized = if version == 5 { 0x87 } else { 0x80 };
        assert_eq!(
            get(&e, "reasonCode").as_f64(),
            Some(f64::from(not_authorized))
        );
        let message = error_message(&e);
        assert!(
            message.contains("subscribe to denied/x refused by the broker"),
            "{message}"
        );
    }
    let published = settle(
        c.publish("denied/x".into(), "no".into(), qos1()),
        "a denied publish",
    )
    .await;
    if version == 5 {
        let e = published.unwrap_err();
        assert_eq!(get(&e, "reasonCode").as_f64(), Some(f64::from(0x87)));
        assert!(error_message(&e).contains("refused by the broker"));
    } else {
        published.unwrap();
    }
    end(&c).await;
}

#[wasm_bindgen_test]
async fn refusals_reject_with_the_reason_code_v5() {
    refusals_reject_with_the_reason_code(5).await;
}

#[wasm_bindgen_test]
async fn refusals_reject_with_the_reason_code_v311() {
    refusals_reject_with_the_reason_code(4).await;
}

// ----- messages() ------------------------------------------------------------------------

#[wasm_bindgen_test]
async fn messages_iterates_over_a_filter() {
    let base = unique("midge-test/iter");
    let c = client(5, &unique("iter"), &[]).await;
    let iterator = c
        .messages(format!("{base}/+/temp"), JsValue::UNDEFINED)
        .unwrap();
    let next: Function = get(&iterator, "next").unchecked_into();
    // The iterator subscribed by itself; publish once its SUBSCRIBE is surely through.
    let publisher = client(5, &unique("iter-pub"), &[]).await;
    sleep(200).await;
    for room in ["kitchen", "hall"] {
        publish(&publisher, &format!("{base}/{room}/temp"), room.into(), 1).await;
    }
    publish(&publisher, &format!("{base}/hall/humidity"), "no".into(), 1).await;
    for room in ["kitchen", "hall"] {
        let step = settle(next.call0(&iterator).unwrap().unchecked_into(), "next")
            .await
            .unwrap();
        assert_eq!(get(&step, "done").as_bool(), Some(false));
        let message = get(&step, "value");
        assert_eq!(
            get(&message, "topic").as_string().unwrap(),
            format!("{base}/{room}/temp")
        );
        let payload: Uint8Array = get(&message, "payload").unchecked_into();
        assert_eq!(payload.to_vec(), room.as_bytes());
    }
    let stop: Function = get(&iterator, "return").unchecked_into();
    settle(stop.call0(&iterator).unwrap().unchecked_into(), "return")
        .await
        .unwrap();
    let step = settle(
        next.call0(&iterator).unwrap().unchecked_into(),
        "next after return",
    )
    .await
    .unwrap();
    assert_eq!(get(&step, "done").as_bool(), Some(true));
    end(&c).await;
    end(&publisher).await;
}

// ----- topic aliases from the client -------------------------------------------------------

#[wasm_bindgen_test]
async fn publishes_through_topic_aliases_arrive_with_their_topics() {
    let base = unique("midge-test/alias");
    let sub = client(5, &unique("alias-sub"), &[]).await;
    let inbox = Inbox::attach(&sub);
    subscribe(&sub, &format!("{base}/#"), 2).await;
    let publisher = client(
        5,
        &unique("alias-pub"),
        &[("autoAssignTopicAlias", true.into())],
    )
    .await;
    // The first of each topic sets its alias up; the rest go as the alias alone.
    let sent = [("a", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 0), ("a", 1)];
    for (i, (topic, qos)) in sent.iter().enumerate() {
        let topic = format!("{base}/{topic}");
        publish(&publisher, &topic, format!("m{i}").into(), *qos).await;
    }
    wait_until("all six messages", || inbox.payloads().len() >= sent.len()).await;
    let mut received: Vec<(String, String)> = inbox
        .0
        .borrow()
        .iter()
        .map(|(t, p, _)| (t.clone(), String::from_utf8_lossy(p).into_owned()))
        .collect();
    let expected: Vec<(String, String)> = sent
        .iter()
        .enumerate()
        .map(|(i, (topic, _))| (format!("{base}/{topic}"), format!("m{i}")))
        .collect();
    // In the order sent, but the test does not rely on the broker's order across QoS levels.
    received.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(received, expected);
    end(&sub).await;
    end(&publisher).await;
}

// ----- errors are readable Errors ----------------------------------------------------------

#[wasm_bindgen_test]
async fn bad_input_rejects_with_readable_errors() {
    let bad = settle(
        connect(
            broker_url().to_owned(),
            object(&[("protocolVersion", 7.into())]),
        ),
        "connect with a bad option",
    )
    .await
    .unwrap_err();
    assert!(
        error_message(&bad).contains("protocolVersion"),
        "{}",
        error_message(&bad)
    );

    let c = client(5, &unique("errors"), &[]).await;
    let e = settle(
        c.publish("a/+/b".into(), "x".into(), JsValue::UNDEFINED),
        "publish",
    )
    .await;
    let message = error_message(&e.unwrap_err());
    assert!(message.contains("not a valid topic name"), "{message}");
    let e = settle(c.subscribe("a/#/b".into(), JsValue::UNDEFINED), "subscribe").await;
    let message = error_message(&e.unwrap_err());
    assert!(message.contains("not a valid topic filter"), "{message}");
    let e = settle(
        c.publish("a".into(), "x".into(), object(&[("qos", 3.into())])),
        "publish qos 3",
    )
    .await;
    let message = error_message(&e.unwrap_err());
    assert!(message.contains("qos must be 0, 1 or 2"), "{message}");
    let e = c.on("mesage", Function::new_no_args("")).unwrap_err();
    assert!(error_message(&e).contains("unknown event"));
    end(&c).await;
}

#[wasm_bindgen_test]
async fn a_broker_that_is_not_there_rejects_connect() {
    // A port the harness found free (bound, then released).
    let port = option_env!("MIDGE_TEST_CLOSED_PORT").unwrap_or("1");
    let url = format!("ws://127.0.0.1:{port}/mqtt");
    let options = object(&[("reconnect", false.into())]);
    let e = settle(connect(url.clone(), options), "connect to nothing")
        .await
        .unwrap_err();
    let message = error_message(&e);
    assert!(
        message.contains(&format!("cannot connect to {url}")),
        "{message}"
    );
}
