//! The topic best practices of the design, as a policy an operator can switch on
//! (`topic_policy = "strict"`):
//!
//! - topic levels use lowercase letters, digits and dashes only (so no empty levels, no
//!   leading or trailing `/`); filters may also use `+` and `#` as whole levels; `$SYS/`
//!   filters are the broker's own and exempt;
//! - no subscription to everything (`#`, `+/#`, `+/+/#`...) except for admin users;
//! - a client's data carries its name: a topic under `data/` is published by the client
//!   whose client id is its second level (`data/<client-id>/...`), admins excepted.

use serde::Deserialize;

/// Which topics clients may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicPolicy {
    /// Any valid MQTT topic.
    #[default]
    Open,
    /// The best practices above.
    Strict,
}

/// Why the strict policy refused a topic.
pub(crate) type Refusal = &'static str;

fn plain_level(level: &str) -> bool {
    !level.is_empty()
        && level
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl TopicPolicy {
    /// Whether a client (`admin` if its user is one) may publish to `topic`.
    pub(crate) fn publish(self, topic: &str, client_id: &str, admin: bool) -> Result<(), Refusal> {
        if self == TopicPolicy::Open {
            return Ok(());
        }
        if !topic.split('/').all(plain_level) {
            return Err("topic levels are lowercase letters, digits and dashes");
        }
        let mut levels = topic.split('/');
        if !admin && levels.next() == Some("data") && levels.next() != Some(client_id) {
            return Err("data topics are data/<client-id>/...");
        }
        Ok(())
    }

    /// Whether a client may subscribe to `filter` (for a shared subscription, the part
    /// after `$share/group/`).
    pub(crate) fn subscribe(self, filter: &str, admin: bool) -> Result<(), Refusal> {
        if self == TopicPolicy::Open || filter.starts_with("$SYS/") {
            return Ok(());
        }
        if !filter
            .split('/')
            .all(|l| l == "+" || l == "#" || plain_level(l))
        {
            return Err("filter levels are lowercase letters, digits, dashes, + or #");
        }
        let everything = filter
            .strip_suffix('#')
            .is_some_and(|head| head.split_terminator('/').all(|l| l == "+"));
        if everything && !admin {
            return Err("only admin users may subscribe to every topic");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::TopicPolicy::{Open, Strict};

    #[test]
    fn strict_topics() {
        assert!(Strict.publish("data/dev-1/temp", "dev-1", false).is_ok());
        assert!(Strict.publish("data/dev-2/temp", "dev-1", false).is_err());
        assert!(Strict.publish("data/dev-2/temp", "dev-1", true).is_ok());
        assert!(Strict.publish("cmd/dev-2/reboot", "dev-1", false).is_ok());
        for bad in [
            "Room/lobby",
            "room//lobby",
            "/room",
            "room/",
            "room/lob_by",
            "room/lobby!",
        ] {
            assert!(Strict.publish(bad, "x", true).is_err(), "{bad}");
            assert!(Open.publish(bad, "x", false).is_ok(), "{bad}");
        }
    }

    #[test]
    fn strict_filters() {
        assert!(Strict.subscribe("data/+/temp", false).is_ok());
        assert!(Strict.subscribe("data/#", false).is_ok());
        assert!(Strict.subscribe("$SYS/#", false).is_ok());
        for everything in ["#", "+/#", "+/+/#"] {
            assert!(Strict.subscribe(everything, false).is_err(), "{everything}");
            assert!(Strict.subscribe(everything, true).is_ok(), "{everything}");
            assert!(Open.subscribe(everything, false).is_ok(), "{everything}");
        }
        assert!(Strict.subscribe("Data/+", true).is_err());
        assert!(Strict.subscribe("+/+", false).is_ok());
    }
}
