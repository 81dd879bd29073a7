//! # midge-wasm
//!
//! Midge's MQTT client for the browser, published to npm as `midge-mqtt`.
//!
//! The protocol lives in [`session`]: a state machine with no I/O and no clock, driven by the
//! browser shell (a WebSocket, timers and Promises, to come) and tested natively here.

pub mod session;
