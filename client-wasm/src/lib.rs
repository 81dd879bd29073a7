//! # midge-wasm
//!
//! Midge's MQTT 3.1.1 and 5.0 client for the browser, published to npm as `midge-mqtt`.
//!
//! The protocol lives in [`session`]: a state machine with no I/O and no clock, tested
//! natively. Around it, a thin browser shell: [`socket`] (the page's WebSocket), [`timer`]
//! (`setTimeout`), and `api`, the `#[wasm_bindgen]` surface that JavaScript sees: `connect`
//! and `MqttClient`, shaped like MQTT.js, with Promises and events.

mod api;
mod error;
mod objects;
mod options;
pub mod session;
mod socket;
mod text;
mod timer;
mod typescript;
mod vec_map;

/// The allocator: talc instead of the standard library's dlmalloc, for size. It reuses freed
/// memory (the client runs for days) and needs no lock: `new_wasm_dynamic_allocator` is a
/// `const fn` that fails the build on any target but single-threaded WebAssembly.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// The client in headless Chromium against a live broker (see the module).
#[cfg(all(test, target_arch = "wasm32"))]
mod browser_tests;

pub use api::{MessageStream, MqttClient, connect};
