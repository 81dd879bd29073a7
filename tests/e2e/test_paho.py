"""The broker driven by Eclipse Paho (Python), over TCP and WebSocket, MQTT 3.1.1 and 5.0,
including the 5.0 features a Mosquitto user relies on."""

import time

import pytest

from paho_client import Client, properties

TRANSPORTS = ["tcp", "websockets"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("version", [4, 5])
def test_every_qos_both_ways(broker, transport, version):
    sub = Client(broker, "sub", version, transport)
    sub.subscribe("t/#", qos=2)
    pub = Client(broker, "pub", version, transport)
    for qos in (0, 1, 2):
        pub.publish(f"t/{qos}", f"qos {qos}".encode(), qos=qos)
        message = sub.get()
        assert (message.topic, message.payload, message.qos) == (f"t/{qos}", f"qos {qos}".encode(), qos)
    pub.stop()
    sub.stop()


def test_granted_qos_caps_delivery(broker):
    sub = Client(broker, "capped")
    assert [rc.value for rc in sub.subscribe("t", qos=1)] == [1]
    pub = Client(broker, "pub")
    pub.publish("t", b"x", qos=2)
    assert sub.get().qos == 1


def test_request_response_and_user_properties_pass_through(broker):
    responder = Client(broker, "responder")
    responder.subscribe("svc/echo", qos=1)
    asker = Client(broker, "asker")
    sent = properties("PUBLISH", ResponseTopic="svc/reply/asker", CorrelationData=b"\x01\x02",
                      UserProperty=[("trace", "abc"), ("trace", "def")], ContentType="text/plain",
                      PayloadFormatIndicator=1)
    asker.publish("svc/echo", b"ping", qos=1, properties=sent)
    got = responder.get().properties
    assert got.ResponseTopic == "svc/reply/asker"
    assert got.CorrelationData == b"\x01\x02"
    assert got.UserProperty == [("trace", "abc"), ("trace", "def")]
    assert (got.ContentType, got.PayloadFormatIndicator) == ("text/plain", 1)


def test_overlapping_subscriptions_deliver_once_with_every_identifier(broker):
    sub = Client(broker, "overlap")
    sub.subscribe("a/+", qos=0, properties=properties("SUBSCRIBE", SubscriptionIdentifier=1))
    sub.subscribe("a/b", qos=1, properties=properties("SUBSCRIBE", SubscriptionIdentifier=2))
    Client(broker, "pub").publish("a/b", b"x", qos=1)
    message = sub.get()
    assert message.qos == 1
    assert sorted(message.properties.SubscriptionIdentifier) == [1, 2]
    sub.nothing()


def test_overlapping_subscriptions_deliver_once_in_311(broker):
    sub = Client(broker, "overlap311", version=4)
    sub.subscribe("a/#", qos=0)
    sub.subscribe("a/b", qos=1)
    Client(broker, "pub", version=4).publish("a/b", b"x", qos=1)
    assert sub.get().qos == 1
    sub.nothing()


def test_no_local(broker):
    me = Client(broker, "me")
    me.subscribe("chat/room", qos=1, noLocal=True)
    me.publish("chat/room", b"mine", qos=1)
    me.nothing()
    Client(broker, "other").publish("chat/room", b"theirs", qos=1)
    assert me.get().payload == b"theirs"


def test_retain_handling_and_retain_as_published(broker):
    pub = Client(broker, "pub")
    pub.publish("cfg/a", b"1", qos=1, retain=True)
    never = Client(broker, "never")
    never.subscribe("cfg/#", retainHandling=2)
    never.nothing()
    once = Client(broker, "once")
    once.subscribe("cfg/#", retainHandling=1)
    assert once.get().retain
    once.subscribe("cfg/#", retainHandling=1)  # exists already: nothing again
    once.nothing()
    keep = Client(broker, "keep")
    keep.subscribe("live/#", retainAsPublished=True)
    plain = Client(broker, "plain")
    plain.subscribe("live/#")
    pub.publish("live/x", b"now", retain=True)
    assert keep.get().retain and not plain.get().retain


def test_assigned_client_identifier_and_limits_in_connack(broker):
    c = Client(broker, "")
    assert c.connack_properties.AssignedClientIdentifier.startswith("midge-")
    assert c.connack_properties.ReceiveMaximum > 0
    assert c.connack_properties.TopicAliasMaximum > 0


def test_topic_alias_from_the_client(broker):
    sub = Client(broker, "sub")
    sub.subscribe("long/topic/name", qos=1)
    pub = Client(broker, "aliaser")
    pub.publish("long/topic/name", b"first", qos=1, properties=properties("PUBLISH", TopicAlias=3))
    pub.publish("", b"second", qos=1, properties=properties("PUBLISH", TopicAlias=3))
    assert [(m.topic, m.payload) for m in (sub.get(), sub.get())] == [
        ("long/topic/name", b"first"), ("long/topic/name", b"second")]


def test_takeover_disconnects_the_old_connection(broker):
    old = Client(broker, "same-id")
    new = Client(broker, "same-id")
    assert old.disconnects.get(timeout=5).value == 0x8E  # Session taken over
    new.stop()


@pytest.mark.parametrize("version", [4, 5])
def test_session_present_after_reconnect(broker, version):
    props = properties("CONNECT", SessionExpiryInterval=60) if version == 5 else None
    first = Client(broker, "durable", version, clean=False, connect_properties=props)
    first.subscribe("q", qos=1)
    first.stop()
    Client(broker, "pub", version).publish("q", b"while away", qos=1)
    again = Client(broker, "durable", version, clean=False, connect_properties=props)
    assert again.flags.session_present
    assert again.get().payload == b"while away"


def test_v5_session_without_expiry_ends_with_the_connection(broker):
    first = Client(broker, "brief", clean=False)
    first.subscribe("q", qos=1)
    first.stop()
    again = Client(broker, "brief", clean=False)
    assert not again.flags.session_present


def test_will_over_websocket(broker):
    watcher = Client(broker, "watcher")
    watcher.subscribe("presence/#", qos=1)
    doomed = Client(broker, "doomed", transport="websockets",
                    will={"topic": "presence/doomed", "payload": b"offline", "qos": 1, "retain": True})
    doomed.kill()
    message = watcher.get()
    assert (message.topic, message.payload) == ("presence/doomed", b"offline")


def test_message_expiry(broker):
    props = properties("CONNECT", SessionExpiryInterval=300)
    away = Client(broker, "away", clean=False, connect_properties=props)
    away.subscribe("news/#", qos=1)
    away.stop()
    pub = Client(broker, "pub")
    pub.publish("news/stale", b"old", qos=1, properties=properties("PUBLISH", MessageExpiryInterval=1))
    pub.publish("news/fresh", b"new", qos=1, properties=properties("PUBLISH", MessageExpiryInterval=120))
    time.sleep(1.5)
    back = Client(broker, "away", clean=False, connect_properties=props)
    message = back.get()
    # The expired one is gone; the other carries the time it has left [MQTT-3.3.2-6].
    assert message.topic == "news/fresh"
    assert 100 < message.properties.MessageExpiryInterval <= 120
    back.nothing()


def test_will_delay_is_cancelled_by_a_reconnect(broker):
    watcher = Client(broker, "watcher")
    watcher.subscribe("presence/#", qos=1)
    will = {"topic": "presence/flaky", "payload": b"gone", "qos": 1,
            "properties": properties("WILLMESSAGE", WillDelayInterval=2)}
    session = properties("CONNECT", SessionExpiryInterval=60)
    Client(broker, "flaky", will=will, clean=False, connect_properties=session).kill()
    Client(broker, "flaky", will=will, clean=False, connect_properties=session)  # back in time
    watcher.nothing(wait=3)
    # Gone for good this time: the will follows after its delay.
    Client(broker, "steady", will=dict(will, topic="presence/steady"), connect_properties=session).kill()
    started = time.monotonic()
    assert watcher.get(timeout=6).topic == "presence/steady"
    assert time.monotonic() - started >= 1.5


def test_sys_topics(broker):
    first = Client(broker, "operator")
    first.subscribe("$SYS/broker/version")
    assert first.get().payload.startswith(b"midge ")  # published, live or retained
    # Once published, a new subscriber gets it retained at once.
    later = Client(broker, "latecomer")
    later.subscribe("$SYS/broker/#")
    got = {m.topic: m for m in [later.get(), *later.drain(wait=0.3)]}
    assert got["$SYS/broker/version"].retain
    assert got["$SYS/broker/clients/connected"].payload.isdigit()
