//! The subscription tree: which sessions a message published to a topic name reaches
//! (§4.7), including shared subscriptions, which deliver to one member of a group in turn
//! (§4.8.2).
//!
//! One node per topic level; a subscription lives at the node of its filter's last level,
//! with `+` and `#` as ordinary children that matching treats specially.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use midge_codec::{SubscriptionId, SubscriptionOptions, TopicFilter, TopicName};

use crate::session::Session;

/// What a session asked for with one topic filter.
#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    pub(crate) options: SubscriptionOptions,
    pub(crate) id: Option<SubscriptionId>,
}

/// A session that a message matched, and through which subscription.
pub(crate) struct Target<'a> {
    pub(crate) session: &'a Arc<Session>,
    pub(crate) subscription: &'a Subscription,
    pub(crate) shared: bool,
}

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    subscribers: HashMap<Arc<str>, (Arc<Session>, Subscription)>,
    groups: HashMap<Box<str>, SharedGroup>,
}

#[derive(Default)]
struct SharedGroup {
    members: Vec<(Arc<Session>, Subscription)>,
    next: AtomicUsize,
}

/// All subscriptions of the broker.
#[derive(Default)]
pub(crate) struct Router {
    root: Node,
    count: usize,
}

impl Router {
    /// Adds or replaces `session`'s subscription to `filter`. Returns whether it existed.
    pub(crate) fn subscribe(
        &mut self,
        session: &Arc<Session>,
        filter: &TopicFilter,
        subscription: Subscription,
    ) -> bool {
        let node = self.node_mut(filter.filter());
        let client = &session.client_id;
        let existed = match filter.share_group() {
            None => node
                .subscribers
                .insert(client.clone(), (session.clone(), subscription))
                .is_some(),
            Some(group) => {
                let group = node.groups.entry(group.into()).or_default();
                match group
                    .members
                    .iter_mut()
                    .find(|(s, _)| &s.client_id == client)
                {
                    Some(member) => {
                        member.1 = subscription;
                        true
                    }
                    None => {
                        group.members.push((session.clone(), subscription));
                        false
                    }
                }
            }
        };
        if !existed {
            self.count += 1;
        }
        existed
    }

    /// Removes `client`'s subscription to `filter`. Returns whether it existed.
    pub(crate) fn unsubscribe(&mut self, client: &str, filter: &TopicFilter) -> bool {
        let removed = remove(
            &mut self.root,
            filter.filter().split('/'),
            client,
            filter.share_group(),
        );
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// The number of subscriptions.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Calls `deliver` for every subscription that `topic` matches: each plain one, and one
    /// member of each shared group, chosen in turn.
    pub(crate) fn route<'a>(&'a self, topic: &TopicName, mut deliver: impl FnMut(Target<'a>)) {
        let levels: Vec<&str> = topic.levels().collect();
        // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a `$` topic.
        let dollar = topic.is_dollar();
        walk(&self.root, &levels, !dollar, &mut deliver);
    }

    fn node_mut(&mut self, filter: &str) -> &mut Node {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        node
    }
}

fn walk<'a>(
    node: &'a Node,
    levels: &[&str],
    wildcards: bool,
    deliver: &mut impl FnMut(Target<'a>),
) {
    if wildcards {
        // `#` matches the rest, including nothing: `a/#` matches `a` (§4.7.1.2).
        if let Some(hash) = node.children.get("#") {
            visit(hash, deliver);
        }
    }
    match levels.split_first() {
        None => visit(node, deliver),
        Some((level, rest)) => {
            if let Some(child) = node.children.get(*level) {
                walk(child, rest, true, deliver);
            }
            if let (true, Some(plus)) = (wildcards, node.children.get("+")) {
                walk(plus, rest, true, deliver);
            }
        }
    }
}

fn visit<'a>(node: &'a Node, deliver: &mut impl FnMut(Target<'a>)) {
    for (session, subscription) in node.subscribers.values() {
        deliver(Target {
            session,
            subscription,
            shared: false,
        });
    }
    for group in node.groups.values() {
        let n = group.members.len();
        if n == 0 {
            continue;
        }
        let start = group.next.fetch_add(1, Ordering::Relaxed);
        // Prefer a member that is connected; if none is, the turn's member queues it.
        let pick = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| group.members.get(i).is_some_and(|(s, _)| s.is_connected()))
            .unwrap_or(start % n);
        if let Some((session, subscription)) = group.members.get(pick) {
            deliver(Target {
                session,
                subscription,
                shared: true,
            });
        }
    }
}

fn remove<'f>(
    node: &mut Node,
    mut levels: impl Iterator<Item = &'f str>,
    client: &str,
    group: Option<&str>,
) -> bool {
    let Some(level) = levels.next() else {
        return match group {
            None => node.subscribers.remove(client).is_some(),
            Some(group) => node.groups.get_mut(group).is_some_and(|g| {
                let before = g.members.len();
                g.members.retain(|(s, _)| &*s.client_id != client);
                g.members.len() != before
            }),
        };
    };
    let Some(child) = node.children.get_mut(level) else {
        return false;
    };
    let removed = remove(child, levels, client, group);
    if child.children.is_empty()
        && child.subscribers.is_empty()
        && child.groups.values().all(|g| g.members.is_empty())
    {
        node.children.remove(level);
    }
    removed
}

#[cfg(test)]
mod tests {
    use midge_codec::QoS;

    use super::*;

    fn sub(qos: QoS) -> Subscription {
        Subscription {
            options: SubscriptionOptions::qos(qos),
            id: None,
        }
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).unwrap()
    }

    fn matched(router: &Router, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        router.route(&TopicName::try_from(topic).unwrap(), |t| {
            out.push(t.session.client_id.to_string())
        });
        out.sort();
        out
    }

    #[test]
    fn routes_by_section_4_7() {
        let mut router = Router::default();
        let (a, b, c) = (
            Session::new("a".into()),
            Session::new("b".into()),
            Session::new("c".into()),
        );
        router.subscribe(&a, &filter("sport/tennis/#"), sub(QoS::AtMostOnce));
        router.subscribe(&b, &filter("sport/+/player1"), sub(QoS::AtMostOnce));
        router.subscribe(&c, &filter("#"), sub(QoS::AtMostOnce));
        assert_eq!(matched(&router, "sport/tennis/player1"), ["a", "b", "c"]);
        assert_eq!(matched(&router, "sport/tennis"), ["a", "c"]);
        assert_eq!(matched(&router, "sport"), ["c"]);
        // [MQTT-4.7.2-1]
        assert!(matched(&router, "$SYS/uptime").is_empty());
        router.subscribe(&a, &filter("$SYS/#"), sub(QoS::AtMostOnce));
        assert_eq!(matched(&router, "$SYS/uptime"), ["a"]);
        assert_eq!(router.len(), 4);
    }

    #[test]
    fn resubscribing_replaces_and_unsubscribing_prunes() {
        let mut router = Router::default();
        let a = Session::new("a".into());
        assert!(!router.subscribe(&a, &filter("x/+"), sub(QoS::AtMostOnce)));
        assert!(router.subscribe(&a, &filter("x/+"), sub(QoS::ExactlyOnce)));
        assert_eq!(router.len(), 1);
        assert!(router.unsubscribe("a", &filter("x/+")));
        assert!(!router.unsubscribe("a", &filter("x/+")));
        assert_eq!(router.len(), 0);
        assert!(router.root.children.is_empty(), "empty nodes are pruned");
    }

    #[test]
    fn shared_groups_take_turns_among_connected_members() {
        let mut router = Router::default();
        let members: Vec<_> = ["w1", "w2", "w3"].map(|id| Session::new(id.into())).into();
        for m in &members {
            m.set_connected(true);
            router.subscribe(m, &filter("$share/g/jobs/#"), sub(QoS::AtLeastOnce));
        }
        let picks: Vec<String> = (0..6).flat_map(|_| matched(&router, "jobs/1")).collect();
        assert_eq!(picks, ["w1", "w2", "w3", "w1", "w2", "w3"]);
        // A disconnected member is skipped while others are connected.
        members[1].set_connected(false);
        let picks: Vec<String> = (0..4).flat_map(|_| matched(&router, "jobs/1")).collect();
        assert!(!picks.contains(&"w2".to_string()), "{picks:?}");
        // Another group on the same filter gets its own copy.
        let other = Session::new("o".into());
        router.subscribe(&other, &filter("$share/h/jobs/#"), sub(QoS::AtLeastOnce));
        assert_eq!(matched(&router, "jobs/1").len(), 2);
        assert!(router.unsubscribe("o", &filter("$share/h/jobs/#")));
    }
}
