"""The broker driven by Debian's mosquitto_pub and mosquitto_sub, in MQTT 3.1.1 and 5.0:
the five methods, the three patterns, QoS 0/1/2, retained messages, wills and sessions."""

import subprocess
import time

import pytest

from conftest import wait_for

VERSIONS = ["mqttv311", "mqttv5"]


class Sub:
    """A mosquitto_sub running in the background, collecting `topic payload` lines."""

    def __init__(self, broker, version, *args, count=None):
        cmd = ["mosquitto_sub", "-p", str(broker.tcp_port), "-V", version, "-v", *args]
        if count is not None:
            cmd += ["-C", str(count)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # mosquitto_sub has no "subscribed" signal on stdout: give it its SUBACK.
        time.sleep(0.4)

    def lines(self, timeout=5):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return out.splitlines()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.lines()


def pub(broker, version, topic, message, *args):
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker.tcp_port), "-V", version, "-t", topic, "-m", message, *args],
        check=True, timeout=5,
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_point_to_point_at_each_qos(broker, version, qos):
    sub = Sub(broker, version, "-t", "chat/bob/inbox", "-q", str(qos), count=1)
    pub(broker, version, "chat/bob/inbox", f"hello at qos {qos}", "-q", str(qos))
    assert sub.lines() == [f"chat/bob/inbox hello at qos {qos}"]


@pytest.mark.parametrize("version", VERSIONS)
def test_broadcast_reaches_every_subscriber(broker, version):
    subs = [Sub(broker, version, "-t", "room/lobby", "-q", "1", count=1) for _ in range(5)]
    pub(broker, version, "room/lobby", "to everyone", "-q", "1")
    for sub in subs:
        assert sub.lines() == ["room/lobby to everyone"]


@pytest.mark.parametrize("version", VERSIONS)
def test_fan_in_with_a_wildcard(broker, version):
    sub = Sub(broker, version, "-t", "sensors/+/temp", "-q", "1", count=5)
    for i in range(5):
        pub(broker, version, f"sensors/dev-{i}/temp", f"2{i}.5", "-q", "1")
    assert sorted(sub.lines()) == [f"sensors/dev-{i}/temp 2{i}.5" for i in range(5)]


@pytest.mark.parametrize("version", VERSIONS)
def test_unsubscribe_stops_delivery(broker, version):
    # mosquitto_sub -U unsubscribes from a filter right after subscribing to it.
    sub = Sub(broker, version, "-t", "a/#", "-t", "a/secret", "-U", "a/#")
    pub(broker, version, "a/secret", "only via a/secret")
    pub(broker, version, "a/other", "nobody")
    time.sleep(0.3)
    assert sub.stop() == ["a/secret only via a/secret"]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_message_is_sent_on_subscribe_and_cleared(broker, version):
    pub(broker, version, "status/door", "open", "-r", "-q", "1")
    sub = Sub(broker, version, "-t", "status/#", "-F", "%t %p %r", count=1)
    assert sub.lines() == ["status/door open 1"]
    # An empty retained message clears it (§3.3.1.3).
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker.tcp_port), "-V", version, "-t", "status/door", "-r", "-n"],
        check=True, timeout=5,
    )
    sub = Sub(broker, version, "-t", "status/#")
    time.sleep(0.3)
    assert sub.stop() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_will_is_published_when_a_client_dies(broker, version):
    sub = Sub(broker, version, "-t", "presence/#", count=1)
    dying = subprocess.Popen(
        ["mosquitto_sub", "-p", str(broker.tcp_port), "-V", version, "-t", "x", "-i", "dying",
         "--will-topic", "presence/dying", "--will-payload", "gone", "--will-qos", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.4)
    dying.kill()  # no DISCONNECT: the connection just ends
    assert sub.lines() == ["presence/dying gone"]


@pytest.mark.parametrize("version", VERSIONS)
def test_clean_disconnect_discards_the_will(broker, version):
    sub = Sub(broker, version, "-t", "presence/#")
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker.tcp_port), "-V", version, "-t", "x", "-m", "y", "-i", "polite",
         "--will-topic", "presence/polite", "--will-payload", "gone"], check=True)
    time.sleep(0.3)
    assert sub.stop() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_session_gets_what_it_missed(broker, version):
    session = ["-i", f"keeper-{version}", "-q", "1", "-t", "jobs/#"]
    session += ["-c"] if version == "mqttv311" else ["-c", "-x", "300"]
    # Subscribe once with a persistent session, then go away.
    first = Sub(broker, version, *session)
    first.stop()
    for i in range(3):
        pub(broker, version, f"jobs/{i}", f"job {i}", "-q", "1")
    # Back: the queued QoS 1 messages arrive.
    again = Sub(broker, version, *session, count=3)
    assert again.lines() == [f"jobs/{i} job {i}" for i in range(3)]


@pytest.mark.parametrize("version", VERSIONS)
def test_shared_subscription_splits_the_stream(broker, version):
    workers = [Sub(broker, version, "-t", "$share/workers/tasks/#", "-q", "1") for _ in range(2)]
    for i in range(10):
        pub(broker, version, f"tasks/{i}", str(i), "-q", "1")
    time.sleep(0.5)
    got = [w.stop() for w in workers]
    assert sorted(line for lines in got for line in lines) == sorted(f"tasks/{i} {i}" for i in range(10))
    assert all(len(lines) == 5 for lines in got), got  # round robin


def test_sys_topics_are_not_matched_by_a_leading_wildcard(broker):
    sub = Sub(broker, "mqttv311", "-t", "#")
    pub(broker, "mqttv311", "$SYS/fake", "hidden")
    pub(broker, "mqttv311", "visible", "shown")
    time.sleep(0.3)
    assert sub.stop() == ["visible shown"]
