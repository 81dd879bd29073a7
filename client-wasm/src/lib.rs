//! # midge-wasm
//!
//! Midge's MQTT 3.1.1 and 5.0 client for the browser, published to npm as `midge-mqtt`.
//!
//! The protocol lives in [`session`]: a state machine with no I/O and no clock, tested
//! natively. Around it, a thin browser shell: [`socket`] (the page's WebSocket), [`timer`]
//! (`setTimeout`), and `api`, the `#[wasm_bindgen]` surface that JavaScript sees: `connect`
//! and `MqttClient`, shaped like MQTT.js, with Promises and events.

// The npm package has no `std` (the feature `std` off): a browser client has no use for its
// I/O, and without it the panic path is one `unreachable` (below) instead of the standard
// library's, with its messages and source locations. Tests keep `std`.
#![cfg_attr(all(target_arch = "wasm32", not(feature = "std"), not(test)), no_std)]

extern crate alloc;

mod api;
mod error;
mod fifo;
mod objects;
mod options;
pub mod session;
mod socket;
mod text;
mod timer;
mod typescript;

/// The allocator: talc instead of the standard library's dlmalloc, for size. It reuses freed
/// memory (the client runs for days) and needs no lock: `new_wasm_dynamic_allocator` is a
/// `const fn` that fails the build on any target but single-threaded WebAssembly.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// A panic stops the module: a trap, which JavaScript sees as a `RuntimeError`. The client
/// reports its failures as `Error`s and does not panic on what a peer or a caller sends (the
/// workspace's lints forbid `unwrap`, `expect` and indexing that can panic); a panic is a bug,
/// and its message would say nothing useful to a page.
#[cfg(all(target_arch = "wasm32", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// The client in headless Chromium against a live broker (see the module).
#[cfg(all(test, target_arch = "wasm32"))]
mod browser_tests;

pub use api::{MessageStream, MqttClient, connect};
