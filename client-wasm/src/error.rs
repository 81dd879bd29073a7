//! Errors as JavaScript sees them: an `Error` with a readable message and, where the broker
//! gave one, the MQTT reason code as a `reasonCode` property. Never a Rust panic text.

use js_sys::{Error, Reflect};
use midge_codec::ReasonCode;
use wasm_bindgen::JsValue;

use crate::session::{Closed, Failure};
use crate::text::{cat, decimal, reason};

/// A JS `Error` with `message`.
pub(crate) fn error(message: &str) -> JsValue {
    Error::new(message).into()
}

/// A JS `Error` with `message` and `reasonCode` set to `code`.
pub(crate) fn refused(message: &str, code: ReasonCode) -> JsValue {
    let error = Error::new(message);
    // Setting a property on a fresh Error cannot fail.
    let _ = Reflect::set(&error, &"reasonCode".into(), &u8::from(code).into());
    error.into()
}

/// The error a failed publish rejects with.
pub(crate) fn publish_failed(topic: &str, failure: &Failure, queue_limit: usize) -> JsValue {
    match failure {
        Failure::Refused(code) => refused(
            &cat(&[
                "publish to \"",
                topic,
                "\" refused by the broker: ",
                &reason(*code),
            ]),
            *code,
        ),
        Failure::Invalid(why) => error(&cat(&["cannot publish to \"", topic, "\": ", why])),
        Failure::QueueFull => error(&cat(&[
            "cannot publish to \"",
            topic,
            "\": offline and the queue is full (",
            &decimal(queue_limit as u64),
            " messages); wait for the connection",
        ])),
    }
}

/// The error for a connection that ended, or `None` when nothing went wrong.
pub(crate) fn closed(url: &str, why: &Closed) -> Option<JsValue> {
    Some(match why {
        Closed::Refused(code) => refused(
            &cat(&[
                "the broker at ",
                url,
                " refused the connection: ",
                &reason(*code),
            ]),
            *code,
        ),
        Closed::ByServer(code) if code.is_error() => refused(
            &cat(&[
                "the broker at ",
                url,
                " closed the connection: ",
                &reason(*code),
            ]),
            *code,
        ),
        Closed::Timeout => error(&cat(&[
            "the broker at ",
            url,
            " did not answer in time (CONNACK or PINGRESP)",
        ])),
        Closed::ProtocolError(why) => error(&cat(&[
            "the broker at ",
            url,
            " broke the MQTT protocol: ",
            why,
        ])),
        Closed::ByServer(_) | Closed::TransportClosed | Closed::Requested => return None,
    })
}
