//! `setTimeout` owned by Rust: the callback lives as long as the [`Timer`], and dropping the
//! timer cancels it. Uses the global `setTimeout`, so it works in a page and in a worker.

use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::*;

use crate::socket::Callback;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Callback, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Milliseconds on the page's monotonic clock (`performance.now()`).
pub(crate) fn now() -> u64 {
    performance_now() as u64
}

/// A pending `setTimeout`; cancelled on drop.
pub(crate) struct Timer {
    id: JsValue,
    /// Kept alive until the timer fires or is dropped.
    _callback: Callback,
}

impl Timer {
    /// Calls `callback` once, after `ms` milliseconds.
    pub(crate) fn after(ms: u64, callback: impl FnOnce() + 'static) -> Timer {
        let callback = Closure::once(move |_: JsValue| callback());
        Timer {
            id: set_timeout(&callback, ms as f64),
            _callback: callback,
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}
