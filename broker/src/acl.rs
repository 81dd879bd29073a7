//! The ACL file: who may publish, subscribe and receive where, in Mosquitto's format.
//!
//! ```text
//! # before any `user` line: rules for clients that connected without a user name
//! topic read public/#
//! user alice                      # rules for alice, until the next `user` line
//! topic readwrite alice/#
//! topic deny alice/secret/#
//! pattern write data/%c/#         # for every client; %c its client id, %u its user name
//! ```
//!
//! A rule is `topic [read|write|readwrite|deny] <filter>` or `pattern [...] <filter>`; the
//! access defaults to `readwrite` (a filter with a space in it needs the access word, so that
//! a misspelt one is an error rather than a rule for a topic nobody uses). A client's rules are its user's `topic` lines (or the
//! anonymous ones) and every `pattern` line. Deny wins: an action matched by a `deny` rule is
//! refused; otherwise it is allowed if a rule grants it, and refused if none does.
//!
//! - publish (`write`): the topic must match a rule's filter;
//! - subscribe (`read`): the rule's filter must cover the whole subscription filter (`a/#`
//!   covers `a/+/b`; `a/+` does not cover `a/#`); a `deny` rule refuses the subscription
//!   when it covers it;
//! - receive (`read`): each message's topic is checked when it is delivered, so a broad
//!   subscription never leaks what a narrower `deny` rule hides.
//!
//! As in MQTT, a filter starting with a wildcard does not match topics starting with `$`.

use std::collections::HashMap;
use std::path::Path;

use crate::passwd::LineError;

/// What a rule lets a client do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn grants(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Access::ReadWrite, _)
                | (Access::Read, Action::Subscribe | Action::Receive)
                | (Access::Write, Action::Publish)
        )
    }
}

/// What a client asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Publish to a topic name.
    Publish,
    /// Subscribe to a topic filter.
    Subscribe,
    /// Be sent a message published to a topic name.
    Receive,
}

#[derive(Clone, Debug)]
struct Rule {
    access: Access,
    filter: String,
}

/// A parsed ACL file.
#[derive(Clone, Debug, Default)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl Acl {
    /// Parses the text of an ACL file.
    pub fn parse(text: &str) -> Result<Acl, LineError> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(LineError::new(number, "`user` needs a user name"));
                    }
                    acl.users.entry(rest.to_owned()).or_default();
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest).map_err(|m| LineError::new(number, m))?;
                    if keyword == "pattern" {
                        acl.patterns.push(rule);
                    } else if let Some(user) = &user {
                        acl.users.entry(user.clone()).or_default().push(rule);
                    } else {
                        acl.anonymous.push(rule);
                    }
                }
                other => {
                    return Err(LineError::new(
                        number,
                        format!(
                            "unknown keyword `{}`: expected `user`, `topic` or `pattern`",
                            other.escape_debug()
                        ),
                    ));
                }
            }
        }
        Ok(acl)
    }

    /// Reads and parses a file; errors read `path:line: message`.
    pub fn load(path: &Path) -> Result<Acl, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Acl::parse(&text).map_err(|e| e.at(path))
    }

    /// Whether a client (its user name, if it gave one, and client id) may do `action` on
    /// `topic` (a topic name, or for [`Action::Subscribe`] a topic filter; for a shared
    /// subscription, the filter after `$share/group/`).
    pub fn allows(
        &self,
        username: Option<&str>,
        client_id: &str,
        action: Action,
        topic: &str,
    ) -> bool {
        let own = match username {
            Some(user) => self.users.get(user).map_or(&[][..], Vec::as_slice),
            None => &self.anonymous,
        };
        let applies = |filter: &str| match action {
            Action::Subscribe => covers(filter, topic),
            Action::Publish | Action::Receive => matches(filter, topic),
        };
        let mut granted = false;
        let mut check = |access: Access, filter: &str| {
            if !applies(filter) {
                return true;
            }
            if access == Access::Deny {
                return false;
            }
            granted |= access.grants(action);
            true
        };
        for rule in own {
            if !check(rule.access, &rule.filter) {
                return false;
            }
        }
        for rule in &self.patterns {
            let Some(filter) = substitute(&rule.filter, username, client_id) else {
                continue;
            };
            if !check(rule.access, &filter) {
                return false;
            }
        }
        granted
    }
}

fn parse_rule(rest: &str) -> Result<Rule, String> {
    let (first, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (access, filter) = match first {
        "read" => (Access::Read, after.trim()),
        "write" => (Access::Write, after.trim()),
        "readwrite" => (Access::ReadWrite, after.trim()),
        "deny" => (Access::Deny, after.trim()),
        // Without an access word the filter is the rest; a typo such as `raed a/#` would make
        // it `raed a/#`, granting nothing anyone meant: an error, unless the access is given.
        _ if !after.trim().is_empty() => {
            return Err(format!(
                "unknown access `{}`: expected read, write, readwrite or deny",
                first.escape_debug()
            ));
        }
        _ => (Access::ReadWrite, rest),
    };
    if filter.is_empty() {
        return Err("a rule needs a topic filter".into());
    }
    check_filter(filter)?;
    Ok(Rule {
        access,
        filter: filter.to_owned(),
    })
}

/// The rules of §4.7 for a filter: `#` only last and alone in its level, `+` alone in its.
fn check_filter(filter: &str) -> Result<(), String> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        let bad = (level.contains('#') && (level != "#" || !last))
            || (level.contains('+') && level != "+");
        if bad {
            return Err(format!(
                "`{filter}` is not a valid topic filter (`#` only as the last level, `+` only as a whole level)"
            ));
        }
    }
    if filter.chars().any(|c| c == '\0') {
        return Err("a topic filter cannot contain NUL".into());
    }
    Ok(())
}

/// `filter` with `%u` and `%c` replaced by the user name and client id; `None` when the
/// rule cannot apply (it needs a user name the client has not got, or a value would change
/// the filter's levels or add wildcards).
fn substitute(filter: &str, username: Option<&str>, client_id: &str) -> Option<String> {
    if !filter.contains('%') {
        return Some(filter.to_owned());
    }
    let unsafe_value = |v: &str| v.is_empty() || v.contains(['+', '#', '/']);
    let mut out = filter.to_owned();
    if out.contains("%u") {
        let user = username.filter(|u| !unsafe_value(u))?;
        out = out.replace("%u", user);
    }
    if out.contains("%c") {
        if unsafe_value(client_id) {
            return None;
        }
        out = out.replace("%c", client_id);
    }
    Some(out)
}

/// Whether `filter` matches the topic name `topic` (§4.7), `$` topics excepted from leading
/// wildcards.
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        if level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(t) if level == "+" || level == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// Whether every topic `subscription` can match is matched by `filter`.
pub(crate) fn covers(filter: &str, subscription: &str) -> bool {
    if subscription.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut sub_levels = subscription.split('/');
    for level in filter.split('/') {
        if level == "#" {
            return true;
        }
        match sub_levels.next() {
            Some("#") | None => return false,
            Some("+") if level != "+" => return false,
            Some(s) if level == "+" || level == s => {}
            Some(_) => return false,
        }
    }
    sub_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Publish, Receive, Subscribe};

    const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic $SYS/#

user bob
topic write inbox/alice

pattern write data/%c/#
pattern read users/%u/#
";

    #[test]
    fn users_anonymous_and_patterns() {
        let acl = Acl::parse(FILE).unwrap();
        let alice = |action, topic| acl.allows(Some("alice"), "a1", action, topic);
        assert!(alice(Publish, "alice/notes"));
        assert!(alice(Subscribe, "alice/+/x"));
        assert!(!alice(Publish, "alice/secret/plan"));
        assert!(!alice(Subscribe, "alice/secret/#"));
        // A broad subscription is allowed; the denied topics are filtered on delivery.
        assert!(alice(Subscribe, "alice/#"));
        assert!(!alice(Receive, "alice/secret/plan"));
        assert!(alice(Receive, "alice/notes"));
        assert!(alice(Subscribe, "$SYS/broker/uptime"));
        assert!(!alice(Publish, "public/news"));
        // Patterns: %c and %u.
        assert!(alice(Publish, "data/a1/temp"));
        assert!(!alice(Publish, "data/a2/temp"));
        assert!(alice(Subscribe, "users/alice/#"));
        assert!(!alice(Subscribe, "users/bob/#"));

        let bob = |action, topic| acl.allows(Some("bob"), "b1", action, topic);
        assert!(bob(Publish, "inbox/alice"));
        assert!(!bob(Subscribe, "inbox/alice"));
        assert!(!bob(Receive, "inbox/alice"));

        let anon = |action, topic| acl.allows(None, "x", action, topic);
        assert!(anon(Subscribe, "public/#"));
        assert!(anon(Receive, "public/a/b"));
        assert!(!anon(Publish, "public/a"));
        assert!(!anon(Subscribe, "users/+/x"), "%u needs a user name");
        assert!(anon(Publish, "data/x/1"));

        // An unknown user has only the patterns.
        assert!(!acl.allows(Some("carol"), "c", Subscribe, "public/#"));
        // A client id that would change the levels or add wildcards never fits %c.
        assert!(!acl.allows(Some("carol"), "+", Publish, "data/+/1"));
        assert!(!acl.allows(Some("carol"), "a/b", Publish, "data/a/b/1"));
    }

    #[test]
    fn coverage_and_matching() {
        assert!(covers("a/#", "a/+/b"));
        assert!(covers("a/#", "a"));
        assert!(covers("#", "a/#"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("a/+/c", "a/b"));
        assert!(!covers("#", "$SYS/x"));
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line, words) in [
            ("topic read a/#\nuser\n", 2, "user name"),
            ("\n\ntopic read\n", 3, "needs a topic filter"),
            ("topic read a/#/b\n", 1, "not a valid topic filter"),
            ("pattern write a+/b\n", 1, "not a valid topic filter"),
            ("user a\ntopics read a\n", 2, "unknown keyword `topics`"),
            ("user a\ntopic raed a/#\n", 2, "unknown access `raed`"),
        ] {
            let err = Acl::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(words), "{text:?}: {err}");
        }
    }
}
