//! The JavaScript API: `connect(url, options)` and the `MqttClient` it resolves to.
//!
//! The shell around [`Session`]: it owns the WebSocket, the timers and the Promises, feeds
//! the session what happens, and turns what the session reports into events and settled
//! Promises. All state is in one `Inner` behind `Rc<RefCell<_>>`; the socket's and timers'
//! callbacks hold only a `Weak` to it. The client keeps itself alive (`Inner::alive`) until it
//! ends, and then nothing holds it but the application's `MqttClient`.
//!
//! Re-entrancy: a listener may call back into the client (publish from a `message` handler,
//! say). So JS is never called while `Inner` is borrowed: [`drive`] collects the calls to
//! make as [`Effects`] under the borrow and makes them after releasing it.

use alloc::rc::{Rc, Weak};
use alloc::{borrow::ToOwned, boxed::Box, string::String, vec, vec::Vec};
use core::cell::RefCell;

use js_sys::{Array, Function, Object, Promise};
use midge_codec::{ProtocolVersion, Publish, ReasonCode, TopicFilter};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

use crate::error;
use crate::objects;
use crate::options::{
    Backoff, connection, filter_list, not_a_filter, publish_options, subscriptions, topic_name,
};
use crate::session::{Closed, Event, Session, Token};
use crate::socket::{Callback, Socket, SocketEvent};
use crate::text::{cat, decimal, list, reason};
use crate::timer::{Timer, now};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str, error: &JsValue);
    // The global object's own `addEventListener`: in a page or a worker; elsewhere (node)
    // it is missing, and the call fails.
    #[wasm_bindgen(catch, js_namespace = globalThis, js_name = addEventListener)]
    fn add_global_listener(event: &str, listener: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch, js_namespace = globalThis, js_name = removeEventListener)]
    fn remove_global_listener(event: &str, listener: &JsValue) -> Result<(), JsValue>;
}

#[wasm_bindgen(inline_js = "
export function asyncIterable(stream) {
  let live = true;
  const finished = () => Promise.resolve({ value: undefined, done: true });
  const stop = () => {
    if (live) { live = false; stream.stop(); stream.free(); }
    return finished();
  };
  return {
    next: () => live ? stream.next().then((r) => { if (r.done) stop(); return r; }) : finished(),
    return: stop,
    [Symbol.asyncIterator]() { return this; },
  };
}
export function deferred() {
  let settle;
  const promise = new Promise((resolve, reject) => { settle = [resolve, reject]; });
  return [promise, ...settle];
}
")]
extern "C" {
    #[wasm_bindgen(js_name = asyncIterable)]
    fn async_iterable(stream: MessageStream) -> JsValue;
    /// `[promise, resolve, reject]`: made in JS, as a Rust executor closure for
    /// `new Promise` costs more glue than this.
    fn deferred() -> Array;
}

type Shared = Rc<RefCell<Inner>>;

/// JS calls to make once `Inner` is no longer borrowed: a function and its arguments.
/// (The arguments as a JS array, made once however many listeners an event has.)
type Effects = Vec<(Function, Array)>;

/// `values` as a JS array.
fn arguments(values: &[JsValue]) -> Array {
    let array = Array::new();
    for value in values {
        array.push(value);
    }
    array
}

/// The resolve and reject functions of a Promise we made.
struct Deferred {
    resolve: Function,
    reject: Function,
}

impl Deferred {
    fn new() -> (Promise, Deferred) {
        let parts = deferred();
        let deferred = Deferred {
            resolve: parts.get_unchecked(1).unchecked_into(),
            reject: parts.get_unchecked(2).unchecked_into(),
        };
        (parts.get_unchecked(0).unchecked_into(), deferred)
    }

    fn resolve(self, fx: &mut Effects, value: JsValue) {
        fx.push((self.resolve, arguments(&[value])));
    }

    fn reject(self, fx: &mut Effects, error: JsValue) {
        fx.push((self.reject, arguments(&[error])));
    }
}

/// A command waiting for the broker.
enum Call {
    Publish {
        deferred: Deferred,
        topic: String,
    },
    Subscribe {
        deferred: Deferred,
        filters: Vec<String>,
    },
    Unsubscribe {
        deferred: Deferred,
        filters: Vec<String>,
    },
}

impl Call {
    fn reject(self, fx: &mut Effects, error: JsValue) {
        match self {
            Call::Publish { deferred, .. }
            | Call::Subscribe { deferred, .. }
            | Call::Unsubscribe { deferred, .. } => deferred.reject(fx, error),
        }
    }
}

const EVENTS: [&str; 8] = [
    "connect",
    "reconnect",
    "offline",
    "close",
    "error",
    "message",
    "disconnect",
    "end",
];

struct Listener {
    event: &'static str,
    handler: Function,
    once: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// A connection is being made (the first, or a reconnection).
    Connecting,
    Connected,
    /// Waiting to reconnect, at this time.
    Waiting(u64),
    Ended,
}

/// An `addEventListener` on the global object, removed on drop.
struct GlobalListener {
    event: &'static str,
    callback: Callback,
}

impl GlobalListener {
    fn new(event: &'static str, mut callback: impl FnMut() + 'static) -> Option<GlobalListener> {
        let callback = Callback::new(move |_: JsValue| callback());
        add_global_listener(event, callback.as_ref()).ok()?;
        Some(GlobalListener { event, callback })
    }
}

impl Drop for GlobalListener {
    fn drop(&mut self) {
        let _ = remove_global_listener(self.event, self.callback.as_ref());
    }
}

/// The state of one `messages(filter)` iterator.
struct StreamState {
    filter: TopicFilter,
    /// Messages not yet taken, oldest first, at most [`STREAM_BUFFER`]. Vecs, not VecDeques:
    /// taking from the front moves at most 4 KB here, and each VecDeque type cost about
    /// 0.15 KB gzipped in the `.wasm`.
    buffered: Vec<JsValue>,
    /// `next()` calls waiting for a message, first first (rarely more than one).
    waiting: Vec<Deferred>,
    done: bool,
}

/// How many messages a `messages()` iterator holds for a consumer that is behind; older ones
/// are dropped beyond this.
const STREAM_BUFFER: usize = 1024;

struct Inner {
    url: String,
    session: Session,
    version: ProtocolVersion,
    queue_limit: usize,
    backoff: Option<Backoff>,
    /// Reconnection attempts since the last successful connection.
    attempt: u32,
    state: State,
    socket: Option<Socket>,
    /// Whether the current socket has opened (and the session was started on it).
    started: bool,
    /// The session's timer and the deadline it was armed for.
    timer: Option<(u64, Timer)>,
    retry: Option<Timer>,
    online: Option<GlobalListener>,
    /// `connect()`'s Promise, until the first CONNACK.
    first: Option<Deferred>,
    /// Commands the session has not answered yet, by token: a plain `Vec` in the order they
    /// were made, searched from the oldest (mostly the first answered) to take one out.
    calls: Vec<(Token, Call)>,
    listeners: Vec<Listener>,
    streams: Vec<Rc<RefCell<StreamState>>>,
    /// Filters the application subscribed to itself (not only through `messages()`), each
    /// once: a plain `Vec`, searched from end to end (no map type of its own).
    explicit: Vec<String>,
    ending: Vec<Deferred>,
    /// The last close code and reason of the WebSocket, for error messages.
    last_close: Option<(u16, String)>,
    weak: Weak<RefCell<Inner>>,
    /// The client itself, until it ends: like a MQTT.js client, a live client is not garbage
    /// even when the application holds no reference to it (its socket and timers still call
    /// back). `finish` lets go.
    alive: Option<Shared>,
}

/// Connects to an MQTT broker over WebSocket; resolves to the client once the broker has
/// accepted the connection, rejects if the first connection fails.
#[wasm_bindgen(unchecked_return_type = "Promise<MqttClient>")]
pub fn connect(
    url: String,
    #[wasm_bindgen(unchecked_optional_param_type = "ConnectOptions")] options: JsValue,
) -> Promise {
    let (promise, deferred) = Deferred::new();
    let parsed = connection(options).map_err(|e| cat(&["connect options: ", &e]));
    let connection = match parsed {
        Ok(connection) => connection,
        Err(why) => {
            let mut fx = Effects::new();
            deferred.reject(&mut fx, error::error(&why));
            run(fx);
            return promise;
        }
    };
    let shared = Rc::new_cyclic(|weak| {
        RefCell::new(Inner {
            url,
            version: connection.session.version,
            queue_limit: connection.session.max_offline_queue,
            session: Session::new(connection.session),
            backoff: connection.reconnect,
            attempt: 0,
            state: State::Connecting,
            socket: None,
            started: false,
            timer: None,
            retry: None,
            online: None,
            first: Some(deferred),
            calls: Vec::new(),
            listeners: Vec::new(),
            streams: Vec::new(),
            explicit: Vec::new(),
            ending: Vec::new(),
            last_close: None,
            weak: weak.clone(),
            alive: None,
        })
    });
    shared.borrow_mut().alive = Some(shared.clone());
    let mut fx = Effects::new();
    shared.borrow_mut().open(&mut fx);
    run(fx);
    promise
}

/// Feeds the session's output to the socket, turns its events into JS calls, and makes them.
fn drive(shared: &Shared) {
    let fx = shared.borrow_mut().pump(shared);
    run(fx);
}

fn run(fx: Effects) {
    for (function, args) in fx {
        if let Err(e) = function.apply(&JsValue::UNDEFINED, &args) {
            console_error("midge-mqtt: an event listener threw", &e);
        }
    }
}

fn on_socket(weak: &Weak<RefCell<Inner>>, event: SocketEvent) {
    let Some(shared) = weak.upgrade() else {
        return;
    };
    let mut fx = Effects::new();
    {
        let mut inner = shared.borrow_mut();
        match event {
            SocketEvent::Open => {
                inner.started = true;
                inner.session.start(now());
            }
            SocketEvent::Data(bytes) => inner.session.handle_bytes(now(), &bytes),
            SocketEvent::Closed { code, reason } => {
                inner.last_close = Some((code, reason));
                if inner.started {
                    inner.session.transport_closed();
                } else {
                    // Never opened: the session never started, so it reports nothing.
                    inner.closed(Closed::TransportClosed, &mut fx);
                }
            }
        }
    }
    run(fx);
    drive(&shared);
}

fn on_timer(weak: &Weak<RefCell<Inner>>) {
    let Some(shared) = weak.upgrade() else {
        return;
    };
    {
        let mut inner = shared.borrow_mut();
        inner.timer = None;
        inner.session.handle_timeout(now());
    }
    drive(&shared);
}

/// The backoff wait is over, or the browser came back online while waiting.
fn on_retry(weak: &Weak<RefCell<Inner>>) {
    let Some(shared) = weak.upgrade() else {
        return;
    };
    let mut fx = Effects::new();
    {
        let mut inner = shared.borrow_mut();
        if !matches!(inner.state, State::Waiting(_)) {
            return;
        }
        inner.retry = None;
        inner.state = State::Connecting;
        inner.emit(&mut fx, "reconnect", &[]);
        inner.open(&mut fx);
    }
    run(fx);
}

impl Inner {
    /// Whether the application subscribed to `filter` itself or a `messages()` loop reads it.
    fn wanted(&self, filter: &str) -> bool {
        self.explicit.iter().any(|f| f == filter)
            || self
                .streams
                .iter()
                .any(|s| s.borrow().filter.as_str() == filter)
    }

    /// The command the session answered with `token`, taken out of those waiting.
    fn take_call(&mut self, token: Token) -> Option<Call> {
        let i = self.calls.iter().position(|(t, _)| *t == token)?;
        Some(self.calls.remove(i).1)
    }

    /// Opens a WebSocket; a URL the browser rejects outright counts as a failed attempt.
    fn open(&mut self, fx: &mut Effects) {
        let weak = self.weak.clone();
        self.started = false;
        self.last_close = None;
        match Socket::open(&self.url, move |event| on_socket(&weak, event)) {
            Ok(socket) => self.socket = Some(socket),
            Err(e) => {
                let why = js_message(&e);
                if let Some(first) = self.first.take() {
                    let message = cat(&["cannot connect to ", &self.url, ": ", &why]);
                    first.reject(fx, error::error(&message));
                    self.finish(fx, "the first connection failed");
                } else {
                    self.emit(fx, "error", &[error::error(&why)]);
                    self.wait_to_reconnect(fx);
                }
            }
        }
    }

    fn pump(&mut self, shared: &Shared) -> Effects {
        let mut fx = Effects::new();
        loop {
            while let Some(bytes) = self.session.poll_transmit() {
                if let Some(socket) = &self.socket {
                    socket.send(&bytes);
                }
            }
            let Some(event) = self.session.poll_event() else {
                break;
            };
            self.on_event(shared, event, &mut fx);
        }
        self.arm_timer();
        fx
    }

    fn arm_timer(&mut self) {
        let Some(deadline) = self.session.poll_timeout() else {
            self.timer = None;
            return;
        };
        // A timer that fires early is harmless (the session checks the time); one that
        // fires late is not. So only an earlier deadline re-arms it.
        if matches!(self.timer, Some((armed, _)) if armed <= deadline) {
            return;
        }
        let weak = self.weak.clone();
        let delay = deadline.saturating_sub(now());
        self.timer = Some((deadline, Timer::after(delay, move || on_timer(&weak))));
    }

    fn on_event(&mut self, shared: &Shared, event: Event, fx: &mut Effects) {
        match event {
            Event::Connected { connack, .. } => {
                self.state = State::Connected;
                self.attempt = 0;
                if let Some(first) = self.first.take() {
                    let client = MqttClient {
                        shared: shared.clone(),
                    };
                    first.resolve(fx, client.into());
                }
                self.emit(fx, "connect", &[objects::connack_packet(&connack).into()]);
            }
            Event::Message(publish) => self.deliver(&publish, fx),
            Event::Published { token, result } => {
                if let Some(Call::Publish { deferred, topic }) = self.take_call(token) {
                    match result {
                        Ok(()) => deferred.resolve(fx, JsValue::UNDEFINED),
                        Err(failure) => deferred.reject(
                            fx,
                            error::publish_failed(&topic, &failure, self.queue_limit),
                        ),
                    }
                }
            }
            Event::Subscribed {
                token,
                reason_codes,
            } => {
                if let Some(Call::Subscribe { deferred, filters }) = self.take_call(token) {
                    settle_subscribe(deferred, &filters, &reason_codes, fx);
                }
            }
            Event::Unsubscribed {
                token,
                reason_codes,
            } => {
                if let Some(Call::Unsubscribe { deferred, filters }) = self.take_call(token) {
                    match reason_codes.iter().find(|c| c.is_error()) {
                        Some(code) if reason_codes.iter().all(|c| c.is_error()) => {
                            let message = cat(&[
                                "unsubscribe from ",
                                &list(&filters),
                                " refused by the broker: ",
                                &reason(*code),
                            ]);
                            deferred.reject(fx, error::refused(&message, *code));
                        }
                        _ => deferred.resolve(fx, JsValue::UNDEFINED),
                    }
                }
            }
            Event::Closed(why) => self.closed(why, fx),
        }
    }

    fn deliver(&mut self, publish: &Publish, fx: &mut Effects) {
        let payload = objects::bytes(&publish.payload);
        let packet = objects::publish_packet(publish, &payload);
        for stream in &self.streams {
            let mut stream = stream.borrow_mut();
            if !stream.filter.matches(&publish.topic) {
                continue;
            }
            let message = objects::message(publish);
            match (!stream.waiting.is_empty()).then(|| stream.waiting.remove(0)) {
                Some(waiter) => waiter.resolve(fx, iteration(message, false)),
                None => {
                    if stream.buffered.len() >= STREAM_BUFFER {
                        stream.buffered.remove(0);
                    }
                    stream.buffered.push(message);
                }
            }
        }
        let topic = JsValue::from_str(publish.topic.as_str());
        self.emit(fx, "message", &[topic, payload.into(), packet.into()]);
    }

    /// A connection ended (or never opened): reconnect, or end for good.
    fn closed(&mut self, why: Closed, fx: &mut Effects) {
        self.socket = None;
        self.started = false;
        self.timer = None;
        let error = error::closed(&self.url, &why);
        if let Some(first) = self.first.take() {
            let error = error.unwrap_or_else(|| {
                error::error(&cat(&[
                    "cannot connect to ",
                    &self.url,
                    ": ",
                    &self.close_text(),
                ]))
            });
            first.reject(fx, error);
            self.finish(fx, "the first connection failed");
            return;
        }
        let was_connected = self.state == State::Connected;
        if let Closed::ByServer(code) = why {
            let packet = Object::new();
            objects::set(&packet, "cmd", "disconnect");
            objects::set(&packet, "reasonCode", u8::from(code));
            self.emit(fx, "disconnect", &[packet.into()]);
        }
        if let Some(error) = &error {
            self.emit(fx, "error", core::slice::from_ref(error));
        }
        self.emit(fx, "close", &[]);
        match why {
            _ if !self.ending.is_empty() => self.finish(fx, "the client was ended"),
            Closed::Requested => self.finish(fx, "the client was ended"),
            // Like MQTT.js: a refused CONNECT (bad credentials, say) is not retried.
            Closed::Refused(_) => self.finish(fx, "the broker refused the connection"),
            _ => {
                if was_connected {
                    self.emit(fx, "offline", &[]);
                }
                self.wait_to_reconnect(fx);
            }
        }
    }

    fn close_text(&self) -> String {
        let Some((code, why)) = &self.last_close else {
            return "the WebSocket closed".to_owned();
        };
        let code = decimal(u64::from(*code));
        if why.is_empty() {
            return cat(&["the WebSocket closed with code ", &code]);
        }
        cat(&["the WebSocket closed with code ", &code, " (", why, ")"])
    }

    fn wait_to_reconnect(&mut self, fx: &mut Effects) {
        let Some(backoff) = self.backoff else {
            self.finish(fx, "the connection was lost and reconnect is off");
            return;
        };
        let delay = backoff.delay(self.attempt, js_sys::Math::random());
        self.attempt = self.attempt.saturating_add(1);
        self.state = State::Waiting(now() + delay);
        let weak = self.weak.clone();
        self.retry = Some(Timer::after(delay, move || on_retry(&weak)));
        if self.online.is_none() {
            // Back online: try now instead of waiting out the backoff.
            let weak = self.weak.clone();
            self.online = GlobalListener::new("online", move || on_retry(&weak));
        }
    }

    /// The client is done: everything still waiting is rejected, iterators end.
    fn finish(&mut self, fx: &mut Effects, why: &str) {
        if self.state == State::Ended {
            return;
        }
        self.state = State::Ended;
        self.socket = None;
        self.timer = None;
        self.retry = None;
        self.online = None;
        for (_, call) in core::mem::take(&mut self.calls) {
            let message = cat(&[why, ": ", &call_kind(&call)]);
            call.reject(fx, error::error(&message));
        }
        for stream in self.streams.drain(..) {
            let mut stream = stream.borrow_mut();
            stream.done = true;
            for waiter in core::mem::take(&mut stream.waiting) {
                waiter.resolve(fx, iteration(JsValue::UNDEFINED, true));
            }
        }
        for deferred in core::mem::take(&mut self.ending) {
            deferred.resolve(fx, JsValue::UNDEFINED);
        }
        self.emit(fx, "end", &[]);
        // Nothing will be emitted any more: let go of the application's functions, and of
        // the client (the caller still holds a reference while this runs).
        self.listeners.clear();
        self.alive = None;
    }

    fn emit(&mut self, fx: &mut Effects, event: &str, args: &[JsValue]) {
        let mut array = None;
        for listener in self.listeners.iter().filter(|l| l.event == event) {
            let array = array.get_or_insert_with(|| arguments(args));
            fx.push((listener.handler.clone(), array.clone()));
        }
        self.listeners.retain(|l| !(l.once && l.event == event));
    }
}

fn call_kind(call: &Call) -> String {
    match call {
        Call::Publish { topic, .. } => cat(&["publish to \"", topic, "\" not completed"]),
        Call::Subscribe { filters, .. } => cat(&["subscribe to ", &list(filters), " not answered"]),
        Call::Unsubscribe { filters, .. } => {
            cat(&["unsubscribe from ", &list(filters), " not answered"])
        }
    }
}

fn settle_subscribe(
    deferred: Deferred,
    filters: &[String],
    codes: &[ReasonCode],
    fx: &mut Effects,
) {
    let granted = Array::new();
    for (filter, code) in filters.iter().zip(codes) {
        let o = Object::new();
        objects::set(&o, "topic", filter.as_str());
        objects::set(&o, "qos", u8::from(*code));
        granted.push(&o);
    }
    match codes.first() {
        Some(code) if codes.iter().all(|c| c.is_error()) => {
            let message = cat(&[
                "subscribe to ",
                &list(filters),
                " refused by the broker: ",
                &reason(*code),
            ]);
            deferred.reject(fx, error::refused(&message, *code));
        }
        _ => deferred.resolve(fx, granted.into()),
    }
}

/// `{ value, done }`.
fn iteration(value: JsValue, done: bool) -> JsValue {
    let o = Object::new();
    objects::set(&o, "value", value);
    objects::set(&o, "done", done);
    o.into()
}

fn js_message(value: &JsValue) -> String {
    // An Error's message (a DOMException's too), or a thrown string.
    js_sys::Reflect::get(value, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}

/// A connected MQTT client (the `MqttClient` of MQTT.js, Promise-based).
#[wasm_bindgen]
pub struct MqttClient {
    shared: Shared,
}

#[wasm_bindgen]
impl MqttClient {
    /// Adds an event listener: `connect`, `reconnect`, `offline`, `close`, `error`,
    /// `message`, `disconnect` or `end`.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, handler: Function) -> Result<(), JsValue> {
        self.listen(event, handler, false)
    }

    /// Adds an event listener that is removed after its first call.
    #[wasm_bindgen(skip_typescript)]
    pub fn once(&self, event: &str, handler: Function) -> Result<(), JsValue> {
        self.listen(event, handler, true)
    }

    /// Removes an event listener added with `on` or `once`.
    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: &str, handler: Function) {
        self.shared
            .borrow_mut()
            .listeners
            .retain(|l| !(l.event == event && l.handler == handler));
    }

    fn listen(&self, event: &str, handler: Function, once: bool) -> Result<(), JsValue> {
        let Some(event) = EVENTS.iter().find(|e| **e == event) else {
            return Err(error::error(&cat(&[
                "unknown event \"",
                event,
                "\"; the events are ",
                &list(&EVENTS),
            ])));
        };
        self.shared.borrow_mut().listeners.push(Listener {
            event,
            handler,
            once,
        });
        Ok(())
    }

    /// Publishes a message; resolves when its QoS flow completes.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn publish(
        &self,
        topic: String,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] payload: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "PublishOptions")] options: JsValue,
    ) -> Promise {
        let what = cat(&["publish to \"", &topic, "\""]);
        let prepared = publish_packet(&topic, &payload, options);
        let (promise, deferred) = self.command(&what, prepared.as_ref().err());
        if let (Some(deferred), Ok(publish)) = (deferred, prepared) {
            let mut inner = self.shared.borrow_mut();
            let token = inner.session.publish(now(), publish);
            inner.calls.push((token, Call::Publish { deferred, topic }));
        }
        drive(&self.shared);
        promise
    }

    /// Subscribes to a filter, an array of filters, or an object of filters and their
    /// options; resolves to `[{ topic, qos }]` (qos 128 or above: refused), rejects when every
    /// filter is refused.
    #[wasm_bindgen(unchecked_return_type = "Promise<Granted[]>")]
    pub fn subscribe(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "string | string[] | { [filter: string]: SubscribeOptions }"
        )]
        filters: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "SubscribeOptions")] options: JsValue,
    ) -> Promise {
        let prepared = subscriptions(&filters, options);
        let (promise, deferred) = self.command("subscribe", prepared.as_ref().err());
        if let (Some(deferred), Ok((list, properties))) = (deferred, prepared) {
            let mut inner = self.shared.borrow_mut();
            let mut filters = Vec::with_capacity(list.len());
            for subscription in &list {
                let filter = subscription.filter.as_str();
                if !inner.explicit.iter().any(|f| f == filter) {
                    inner.explicit.push(filter.to_owned());
                }
                filters.push(filter.to_owned());
            }
            let token = inner.session.subscribe_with(now(), list, properties);
            inner
                .calls
                .push((token, Call::Subscribe { deferred, filters }));
        }
        drive(&self.shared);
        promise
    }

    /// Unsubscribes from a filter or an array of filters.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn unsubscribe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | string[]")] filters: JsValue,
    ) -> Promise {
        let prepared = filter_list(&filters);
        let (promise, deferred) = self.command("unsubscribe", prepared.as_ref().err());
        if let (Some(deferred), Ok(list)) = (deferred, prepared) {
            let mut inner = self.shared.borrow_mut();
            let mut filters = Vec::with_capacity(list.len());
            for filter in &list {
                inner.explicit.retain(|f| f != filter.as_str());
                filters.push(filter.as_str().to_owned());
            }
            let token = inner.session.unsubscribe(now(), list);
            inner
                .calls
                .push((token, Call::Unsubscribe { deferred, filters }));
        }
        drive(&self.shared);
        promise
    }

    /// What publish, subscribe and unsubscribe share (one function, not one per argument
    /// type): a Promise, rejected at once if the arguments are wrong (`why`) or the client
    /// has ended; else also its `Deferred`, for the caller to give the command to the session.
    fn command(&self, what: &str, why: Option<&String>) -> (Promise, Option<Deferred>) {
        let (promise, deferred) = Deferred::new();
        let message = match why {
            Some(why) => cat(&[what, ": ", why]),
            None if self.shared.borrow().state == State::Ended => {
                cat(&["cannot ", what, ": the client has ended"])
            }
            None => return (promise, Some(deferred)),
        };
        let mut fx = Effects::new();
        deferred.reject(&mut fx, error::error(&message));
        run(fx);
        (promise, None)
    }

    /// Disconnects and stops reconnecting; resolves when done. Commands still waiting are
    /// rejected. Cleanly by default (DISCONNECT: the broker drops the will); with `force`, as
    /// in MQTT.js, the connection is simply dropped, as when a tab closes, and the broker
    /// publishes the will.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn end(&self, force: Option<bool>) -> Promise {
        let (promise, deferred) = Deferred::new();
        let mut fx = Effects::new();
        {
            let mut inner = self.shared.borrow_mut();
            if inner.state == State::Ended {
                deferred.resolve(&mut fx, JsValue::UNDEFINED);
            } else {
                inner.ending.push(deferred);
                if inner.started && force == Some(true) {
                    inner.socket = None;
                    inner.session.transport_closed();
                } else if inner.started {
                    inner.session.disconnect(now());
                } else {
                    inner.emit(&mut fx, "close", &[]);
                    inner.finish(&mut fx, "the client was ended");
                }
            }
        }
        run(fx);
        drive(&self.shared);
        promise
    }

    /// An async iterator over the messages matching `filter`: subscribes to it (with
    /// `options`) unless already subscribed, and unsubscribes when the loop is left, unless
    /// the application subscribed to the filter itself. A consumer that falls more than 1024
    /// messages behind loses the oldest.
    #[wasm_bindgen(unchecked_return_type = "AsyncIterableIterator<Message>")]
    pub fn messages(
        &self,
        filter: String,
        #[wasm_bindgen(unchecked_optional_param_type = "SubscribeOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let topic_filter = TopicFilter::try_from(filter.as_str())
            .map_err(|e| error::error(&cat(&["messages: ", &not_a_filter(&filter, e)])))?;
        let wrong = |e: String| error::error(&cat(&["messages options: ", &e]));
        let (list, properties) =
            subscriptions(&JsValue::from_str(&filter), options).map_err(wrong)?;
        let state = Rc::new(RefCell::new(StreamState {
            filter: topic_filter,
            buffered: Vec::new(),
            waiting: Vec::new(),
            done: false,
        }));
        {
            let mut inner = self.shared.borrow_mut();
            if inner.state == State::Ended {
                state.borrow_mut().done = true;
            } else {
                let already = inner.wanted(&filter);
                inner.streams.push(state.clone());
                if !already {
                    inner.session.subscribe_with(now(), list, properties);
                }
            }
        }
        drive(&self.shared);
        Ok(async_iterable(MessageStream {
            client: Rc::downgrade(&self.shared),
            state,
        }))
    }

    /// Whether the client is connected to the broker now.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        self.shared.borrow().state == State::Connected
    }

    /// Whether the client is trying to connect again (waiting, or connecting).
    #[wasm_bindgen(getter)]
    pub fn reconnecting(&self) -> bool {
        let inner = self.shared.borrow();
        matches!(inner.state, State::Waiting(_))
            || (inner.state == State::Connecting && inner.first.is_none())
    }

    /// Milliseconds until the next reconnection attempt, while waiting for it.
    #[wasm_bindgen(getter, js_name = reconnectIn)]
    pub fn reconnect_in(&self) -> Option<f64> {
        match self.shared.borrow().state {
            State::Waiting(at) => Some(at.saturating_sub(now()) as f64),
            _ => None,
        }
    }

    /// The MQTT protocol version in use: 4 (3.1.1) or 5.
    #[wasm_bindgen(getter, js_name = protocolVersion)]
    pub fn protocol_version(&self) -> u8 {
        self.shared.borrow().version.level()
    }
}

fn publish_packet(topic: &str, payload: &JsValue, options: JsValue) -> Result<Publish, String> {
    let topic_name = topic_name(topic)?;
    let settings = publish_options(payload, options)?;
    let mut publish = Publish::new(topic_name, settings.payload);
    publish.qos = settings.qos;
    publish.retain = settings.retain;
    publish.properties = Some(settings.properties)
        .filter(|p| *p != Default::default())
        .map(Box::new);
    Ok(publish)
}

/// One `messages(filter)` iterator (wrapped in JS into an async iterable).
#[wasm_bindgen(skip_typescript)]
pub struct MessageStream {
    client: Weak<RefCell<Inner>>,
    state: Rc<RefCell<StreamState>>,
}

#[wasm_bindgen]
impl MessageStream {
    /// The next message, or `{ done: true }` once the client has ended.
    pub fn next(&self) -> Promise {
        let (promise, deferred) = Deferred::new();
        let mut fx = Effects::new();
        {
            let mut state = self.state.borrow_mut();
            if !state.buffered.is_empty() {
                let message = state.buffered.remove(0);
                deferred.resolve(&mut fx, iteration(message, false));
            } else if state.done {
                deferred.resolve(&mut fx, iteration(JsValue::UNDEFINED, true));
            } else {
                state.waiting.push(deferred);
            }
        }
        run(fx);
        promise
    }

    /// The loop was left: stop collecting, and unsubscribe if nothing else needs the filter.
    pub fn stop(&self) {
        let mut fx = Effects::new();
        {
            let mut state = self.state.borrow_mut();
            state.done = true;
            for waiter in core::mem::take(&mut state.waiting) {
                waiter.resolve(&mut fx, iteration(JsValue::UNDEFINED, true));
            }
        }
        if let Some(shared) = self.client.upgrade() {
            {
                let mut inner = shared.borrow_mut();
                inner.streams.retain(|s| !Rc::ptr_eq(s, &self.state));
                let filter = self.state.borrow().filter.clone();
                if !inner.wanted(filter.as_str()) && inner.state != State::Ended {
                    inner.session.unsubscribe(now(), vec![filter]);
                }
            }
            drive(&shared);
        }
        run(fx);
    }
}
