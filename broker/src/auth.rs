//! Who may connect, publish and subscribe: the hook that authentication and access control
//! plug into. The broker asks it at CONNECT, at every SUBSCRIBE filter and at every PUBLISH.
//!
//! [`AllowAll`] is what runs until a backend is configured, which is why the broker only
//! listens on loopback unless `allow_anonymous` is set; [`crate::Access`] is the backend
//! the configuration's password and ACL files make. `connect` may be slow (a password hash):
//! the broker calls it on a blocking thread, never on the async reactor.

use midge_codec::{Connect, ReasonCode, TopicFilter, TopicName};

/// The client a decision is about.
#[derive(Clone, Copy, Debug)]
pub struct ClientInfo<'a> {
    /// Its client identifier (assigned by the broker if it sent none).
    pub client_id: &'a str,
    /// The user name it connected with.
    pub username: Option<&'a str>,
}

/// An authentication and authorisation backend.
pub trait Auth: Send + Sync + 'static {
    /// Accepts a CONNECT, or refuses it with a CONNACK reason code (MQTT 3.x clients get the
    /// nearest 3.x return code, e.g. 0x86 Bad User Name or Password becomes 4).
    fn connect(&self, connect: &Connect) -> Result<(), ReasonCode>;

    /// Accepts a CONNECT on a TLS connection whose client certificate the TLS layer verified
    /// (`tls_client_ca`): the CONNECT's user name has been replaced by the certificate's
    /// subject common name and its password removed; the certificate is the credential.
    /// Accepted unless overridden.
    fn connect_certified(&self, connect: &Connect) -> Result<(), ReasonCode> {
        let _ = connect;
        Ok(())
    }

    /// Whether the client may subscribe to `filter`. A refused filter gets Not authorized
    /// (0x87) in a 5.0 SUBACK and Failure (0x80) in a 3.x one; the others are unaffected.
    fn subscribe(&self, client: ClientInfo<'_>, filter: &TopicFilter) -> bool;

    /// Whether the client may publish to `topic`. A refused message is dropped; a 5.0
    /// client's PUBACK or PUBREC then says Not authorized (0x87).
    fn publish(&self, client: ClientInfo<'_>, topic: &TopicName) -> bool;

    /// Whether a message published to `topic` may be delivered to the client (asked at each
    /// delivery, so a broad subscription cannot reach what a narrower rule hides). A refused
    /// message is skipped for that client alone. Everyone may, unless overridden.
    fn receive(&self, client: ClientInfo<'_>, topic: &TopicName) -> bool {
        let _ = (client, topic);
        true
    }
}

/// Everyone may do everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Auth for AllowAll {
    fn connect(&self, _: &Connect) -> Result<(), ReasonCode> {
        Ok(())
    }

    fn subscribe(&self, _: ClientInfo<'_>, _: &TopicFilter) -> bool {
        true
    }

    fn publish(&self, _: ClientInfo<'_>, _: &TopicName) -> bool {
        true
    }
}
