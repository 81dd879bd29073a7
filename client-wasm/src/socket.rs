//! The browser's WebSocket, owned by Rust: binary frames as `ArrayBuffer`, the `mqtt`
//! subprotocol, and event handlers that live exactly as long as the [`Socket`]. Dropping it
//! removes the handlers and closes the connection, so a replaced socket never calls back.

use alloc::{string::String, vec::Vec};
use js_sys::{ArrayBuffer, Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::WebSocket;

/// The one type of callback the client hands to JS (socket events, timers, `online`): each
/// distinct closure type costs its own glue in the JS and the `.wasm`.
pub(crate) type Callback = Closure<dyn FnMut(JsValue)>;

/// What a socket reports.
pub(crate) enum SocketEvent {
    /// The connection is open.
    Open,
    /// Bytes arrived.
    Data(Vec<u8>),
    /// The connection closed (or could not be opened): the close code and reason.
    Closed { code: u16, reason: String },
}

/// An open or opening WebSocket with its handlers.
pub(crate) struct Socket {
    ws: WebSocket,
    _on_open: Callback,
    _on_message: Callback,
    _on_close: Callback,
}

impl Socket {
    /// Opens a WebSocket to `url` with the `mqtt` subprotocol; `handler` receives its events.
    pub(crate) fn open(
        url: &str,
        handler: impl Fn(SocketEvent) + Clone + 'static,
    ) -> Result<Socket, JsValue> {
        let ws = WebSocket::new_with_str(url, "mqtt")?;
        set(&ws, "binaryType", &JsValue::from_str("arraybuffer"));

        let on_open = {
            let handler = handler.clone();
            Callback::new(move |_: JsValue| handler(SocketEvent::Open))
        };
        let on_message = {
            let handler = handler.clone();
            Callback::new(move |event: JsValue| {
                // Text frames are not MQTT (§6 of the 5.0 specification); they are ignored
                // here and the broker would close on them anyway.
                if let Ok(buffer) = get(&event, "data").dyn_into::<ArrayBuffer>() {
                    handler(SocketEvent::Data(Uint8Array::new(&buffer).to_vec()));
                }
            })
        };
        // A failed connection fires `error` and then `close`: only `close` is needed.
        let on_close = Callback::new(move |event: JsValue| {
            handler(SocketEvent::Closed {
                code: get(&event, "code").as_f64().unwrap_or(0.0) as u16,
                reason: get(&event, "reason").as_string().unwrap_or_default(),
            });
        });
        set(&ws, "onopen", on_open.as_ref());
        set(&ws, "onmessage", on_message.as_ref());
        set(&ws, "onclose", on_close.as_ref());
        Ok(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Writes bytes as one binary frame. Errors mean the socket is closing; its `close` event
    /// follows and reports it.
    pub(crate) fn send(&self, bytes: &[u8]) {
        let _ = self.ws.send_with_u8_array(bytes);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        for handler in ["onopen", "onmessage", "onclose"] {
            set(&self.ws, handler, &JsValue::NULL);
        }
        // Closing a socket that is already closed or closing is allowed; an error here can
        // only mean the socket is gone already.
        let _ = self.ws.close();
    }
}

// Properties read and set through `Reflect`, which the client imports anyway, rather than
// web-sys's typed getters and setters: each of those is one more JS import and its glue.

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or_default()
}

fn set(target: &JsValue, key: &str, value: &JsValue) {
    // Setting a WebSocket's handler or binaryType cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}
