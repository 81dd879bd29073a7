"""Security: passwords (`midge passwd`), the ACL file with its %u and %c patterns, reload on
SIGHUP, the strict topic policy, TLS (mqtts and wss) and the abuse limits, driven by
mosquitto_pub/sub, Paho and raw peers. Certificates come from the openssl command line."""

import re
import signal
import socket
import struct
import subprocess
import time

import pytest

import raw
from conftest import MIDGE, configured_broker, wait_for
from paho_client import Client
from test_mosquitto_clients import Sub

PASSWORDS = {"alice": "wonderland", "bob": "builder", "admin": "root-of-trust"}

ACL = """\
# anonymous clients may read the news
topic read news/#

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic read news/#

user bob
topic write alice/inbox

user admin
topic readwrite #

# everyone: their own devices' data, and a mailbox by user name
pattern readwrite devices/%c/#
pattern read mail/%u/#
"""


@pytest.fixture(scope="module")
def passwd_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("passwd") / "passwd"
    for user, password in PASSWORDS.items():
        subprocess.run([str(MIDGE), "passwd", "--stdin", str(path), user], input=password + "\n",
                       check=True, capture_output=True, text=True, timeout=30)
    return path


def toml(**keys) -> str:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, int):
            return str(v)
        return '"' + str(v) + '"'
    return "".join(f"{k} = {value(v)}\n" for k, v in keys.items())


def secured(tmp_path, passwd_file, acl=ACL, **keys):
    acl_path = tmp_path / "acl"
    acl_path.write_text(acl)
    return configured_broker(tmp_path, toml(password_file=passwd_file, acl_file=acl_path, **keys))


def connect_packet(client_id, username=None, password=None, version=4):
    """A CONNECT with a user name and password, for exact 3.1.1 return codes."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = raw.string("MQTT") + bytes([version, flags]) + struct.pack(">H", 60)
    if version == 5:
        body += b"\x00"
    body += raw.string(client_id)
    if username is not None:
        body += raw.string(username)
    if password is not None:
        body += raw.string(password)
    return raw.packet(0x10, body)


def connack_code(port, client_id, username=None, password=None, version=4):
    peer = raw.Peer(port)
    try:
        peer.send(connect_packet(client_id, username, password, version))
        body = peer.expect(0x20)
        return body[1]
    finally:
        peer.close()


def granted(client, topic, qos):
    """The reason codes of a one-filter SUBSCRIBE's SUBACK, as numbers."""
    return [rc.value for rc in client.subscribe(topic, qos=qos)]


def paho(broker, client_id, user=None, version=5, **kwargs):
    password = PASSWORDS.get(user) if user else None
    return Client(broker, client_id, version=version, username=user, password=password, **kwargs)


# --- midge passwd -----------------------------------------------------------------------------

def test_passwd_adds_changes_and_deletes_users_keeping_comments(tmp_path):
    path = tmp_path / "passwd"
    path.write_text("# the users of the test broker\n")

    def run(*args, stdin=""):
        return subprocess.run([str(MIDGE), "passwd", *args], input=stdin, capture_output=True, text=True,
                              timeout=30)

    assert run("--stdin", str(path), "carol", stdin="first\n").returncode == 0
    first = path.read_text()
    assert re.fullmatch(r"# the users of the test broker\ncarol:\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$\S+\n", first)
    assert path.stat().st_mode & 0o777 == 0o600
    assert run("--stdin", str(path), "carol", stdin="second\n").returncode == 0
    assert path.read_text() != first and path.read_text().count("carol:") == 1
    assert run("--stdin", str(path), "dave", stdin="x\n").returncode == 0
    assert run("-D", str(path), "carol").returncode == 0
    assert path.read_text().startswith("# the users of the test broker\ndave:")
    missing = run("-D", str(path), "carol")
    assert missing.returncode != 0 and "no user `carol`" in missing.stderr
    empty = run("--stdin", str(path), "erin", stdin="\n")
    assert empty.returncode != 0 and "empty password" in empty.stderr
    # A file it cannot read is left alone, and the line named.
    path.write_text("dave:not-a-hash\n")
    bad = run("--stdin", str(path), "erin", stdin="x\n")
    assert bad.returncode != 0 and f"{path}:1:" in bad.stderr
    assert path.read_text() == "dave:not-a-hash\n"


@pytest.mark.parametrize("name,content,where", [
    ("password_file", "alice:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\nbob\n", ":2:"),
    ("acl_file", "user alice\ntopic read a/#\ntopic sometimes a/b\n", ":3:"),
])
def test_a_bad_password_or_acl_file_stops_the_start_naming_the_line(tmp_path, name, content, where):
    bad = tmp_path / "bad"
    bad.write_text(content)
    config = tmp_path / "midge.toml"
    config.write_text(toml(tcp=["127.0.0.1:0"], http=["127.0.0.1:0"], **{name: bad}))
    result = subprocess.run([str(MIDGE), "--config", str(config)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert f"{bad}{where}" in result.stderr, result.stderr
    assert "panicked" not in result.stderr


# --- authentication ---------------------------------------------------------------------------

def test_a_password_file_is_enough_to_listen_beyond_loopback(tmp_path, passwd_file):
    config = tmp_path / "midge.toml"
    config.write_text(toml(tcp=["0.0.0.0:0"], http=["127.0.0.1:0"], password_file=passwd_file))
    log = tmp_path / "midge.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([str(MIDGE), "--config", str(config)], stderr=err, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: "listening for MQTT on tcp://0.0.0.0:" in log.read_text(), what="the listener")
        assert "allow_anonymous is set" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("version", [4, 5])
def test_wrong_passwords_unknown_users_and_anonymous_clients_are_refused(tmp_path, passwd_file, version):
    bad_credentials, not_authorized = (4, 5) if version == 4 else (0x86, 0x87)
    with secured(tmp_path, passwd_file) as b:
        assert connack_code(b.tcp_port, "a", "alice", "wonderland", version) == 0
        assert connack_code(b.tcp_port, "a", "alice", "looking-glass", version) == bad_credentials
        assert connack_code(b.tcp_port, "a", "alice", None, version) == bad_credentials
        assert connack_code(b.tcp_port, "m", "mallory", "wonderland", version) == bad_credentials
        assert connack_code(b.tcp_port, "n", None, None, version) == not_authorized
        assert "connection refused" in b.log()


def test_anonymous_clients_get_in_when_allowed_and_read_what_the_acl_gives_them(tmp_path, passwd_file):
    with secured(tmp_path, passwd_file, allow_anonymous=True) as b:
        assert connack_code(b.tcp_port, "n", None, None, 4) == 0
        assert connack_code(b.tcp_port, "a", "alice", "wrong", 4) == 4, "a user name still needs its password"
        reader = Client(b, "anon-reader", version=5)
        assert granted(reader, "news/#", 1) == [1]
        assert granted(reader, "alice/#", 1) == [0x87]
        admin = paho(b, "admin-1", "admin")
        admin.publish("news/today", "sunny", qos=1)
        admin.publish("alice/notes", "private", qos=1)
        assert [m.payload for m in reader.drain()] == [b"sunny"]
        reader.stop()
        admin.stop()


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_clients_with_and_without_the_right_password(tmp_path, passwd_file, version):
    with secured(tmp_path, passwd_file) as b:
        sub = Sub(b, version, "-t", "alice/notes", "-u", "alice", "-P", "wonderland", count=1)
        ok = subprocess.run(["mosquitto_pub", "-p", str(b.tcp_port), "-V", version, "-u", "alice", "-P", "wonderland",
                             "-t", "alice/notes", "-m", "hello", "-q", "1"], capture_output=True, text=True, timeout=10)
        assert ok.returncode == 0, ok.stderr
        assert sub.lines() == ["alice/notes hello"]
        for user, password in [("alice", "wrong"), ("nobody", "wonderland")]:
            bad = subprocess.run(["mosquitto_pub", "-p", str(b.tcp_port), "-V", version, "-u", user, "-P", password,
                                  "-t", "alice/notes", "-m", "x"], capture_output=True, text=True, timeout=10)
            assert bad.returncode != 0
            assert "bad user name or password" in bad.stderr.lower(), bad.stderr


def test_paho_sees_the_5_0_reason_codes(tmp_path, passwd_file):
    with secured(tmp_path, passwd_file) as b:
        good = paho(b, "alice-1", "alice")
        assert not good.reason.is_failure
        good.stop()
        for user, password, code in [("alice", "nope", 0x86), ("zed", "nope", 0x86), (None, None, 0x87)]:
            c = Client(b, "x", version=5, username=user, password=password)
            assert c.reason.value == code, c.reason
            c.stop()


# --- the ACL ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_denied_subscriptions_fail_alone_in_the_suback(tmp_path, passwd_file, version):
    refused = 0x80 if version == 4 else 0x87
    with secured(tmp_path, passwd_file) as b:
        alice = paho(b, "alice-1", "alice", version=version)
        codes = [alice.subscribe(f, qos=1) for f in ["alice/+", "alice/secret/#", "bob/#", "#", "news/#"]]
        assert [rc.value for [rc] in codes] == [1, refused, refused, refused, 1]
        alice.stop()


def test_denied_publishes_are_dropped_and_5_0_hears_not_authorized(tmp_path, passwd_file):
    with secured(tmp_path, passwd_file) as b:
        admin = paho(b, "watcher", "admin")
        admin.subscribe("#", qos=1)
        bob = paho(b, "bob-1", "bob")
        bob.publish("alice/inbox", "for alice", qos=1)
        assert bob.pubacks.get(timeout=5).value == 0
        bob.publish("alice/notes", "forged", qos=1)
        assert bob.pubacks.get(timeout=5).value == 0x87
        bob.publish("alice/notes", "forged", qos=0)
        # QoS 2: a failing PUBREC ends the flow (Paho goes on with PUBREL regardless, so
        # this one is checked byte by byte).
        peer = raw.Peer(b.tcp_port)
        peer.send(connect_packet("bob-2", "bob", "builder", version=5))
        assert peer.expect(0x20)[1] == 0
        peer.send(raw.packet(0x34, raw.string("alice/notes") + struct.pack(">H", 9) + b"\x00forged"))
        assert peer.expect(0x50)[:3] == struct.pack(">HB", 9, 0x87)
        peer.close()
        assert [m.payload for m in admin.drain()] == [b"for alice"]
        # 3.1.1 has no way to say so: the usual acknowledgement, and nothing delivered.
        subprocess.run(["mosquitto_pub", "-p", str(b.tcp_port), "-V", "mqttv311", "-u", "bob", "-P", "builder",
                        "-t", "alice/notes", "-m", "forged", "-q", "1"], check=True, timeout=10)
        assert admin.nothing()
        admin.stop()
        bob.stop()


def test_a_broad_subscription_does_not_receive_what_a_deny_rule_hides(tmp_path, passwd_file):
    with secured(tmp_path, passwd_file) as b:
        alice = paho(b, "alice-1", "alice")
        assert granted(alice, "alice/#", 1) == [1]
        admin = paho(b, "admin-1", "admin")
        admin.publish("alice/secret/diary", "hidden", qos=1)
        admin.publish("alice/notes", "visible", qos=1)
        assert [m.payload for m in alice.drain()] == [b"visible"]
        alice.stop()
        admin.stop()


def test_patterns_substitute_the_client_id_and_the_user_name(tmp_path, passwd_file):
    with secured(tmp_path, passwd_file) as b:
        sensor = paho(b, "sensor-7", "bob")
        assert granted(sensor, "devices/sensor-7/#", 1) == [1]
        assert granted(sensor, "devices/sensor-8/#", 1) == [0x87]
        assert granted(sensor, "mail/bob/#", 1) == [1]
        assert granted(sensor, "mail/alice/#", 1) == [0x87]
        sensor.publish("devices/sensor-7/temp", "21", qos=1)
        assert sensor.pubacks.get(timeout=5).value == 0
        assert sensor.get().payload == b"21"
        sensor.publish("devices/sensor-8/temp", "spoofed", qos=1)
        assert sensor.pubacks.get(timeout=5).value == 0x87
        # %c through mosquitto_sub too, with the client id it chooses.
        sub = Sub(b, "mqttv5", "-i", "sensor-9", "-u", "alice", "-P", "wonderland", "-t", "devices/sensor-9/#",
                  count=1)
        denied = Sub(b, "mqttv5", "-i", "sensor-10", "-u", "alice", "-P", "wonderland", "-t", "devices/sensor-9/#")
        subprocess.run(["mosquitto_pub", "-p", str(b.tcp_port), "-i", "publisher", "-u", "admin", "-P",
                        "root-of-trust", "-t", "devices/sensor-9/temp", "-m", "19"], check=True, timeout=10)
        assert sub.lines() == ["devices/sensor-9/temp 19"]
        assert denied.stop() == []
        sensor.stop()


def test_sighup_reloads_the_acl_and_passwords_without_dropping_anyone(tmp_path, passwd_file):
    with secured(tmp_path, passwd_file) as b:
        bob = paho(b, "bob-1", "bob")
        assert granted(bob, "news/#", 1) == [0x87]
        (tmp_path / "acl").write_text(ACL.replace("user bob\n", "user bob\ntopic read news/#\n"))
        b.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "password and ACL files reloaded" in b.log(), what="the reload")
        assert granted(bob, "news/#", 1) == [1]
        # A bad file on reload: the error names file and line, the old rules stay.
        (tmp_path / "acl").write_text("user bob\ntopic read news/#\ntopic maybe x\n")
        b.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: f"{tmp_path / 'acl'}:3:" in b.log(), what="the reload error")
        assert "previous rules stay in force" in b.log()
        assert granted(bob, "news/+", 1) == [1]
        assert bob.disconnects.empty(), "still connected"
        # Passwords too: a new user, added while the broker runs.
        subprocess.run([str(MIDGE), "passwd", "--stdin", str(passwd_file), "carol"], input="new\n", text=True,
                       check=True, timeout=30)
        try:
            assert connack_code(b.tcp_port, "c", "carol", "new") == 4
            b.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: connack_code(b.tcp_port, "c", "carol", "new") == 0, timeout=10, what="carol")
        finally:
            subprocess.run([str(MIDGE), "passwd", "-D", str(passwd_file), "carol"], check=True, timeout=30)
        bob.stop()


# --- the strict topic policy ------------------------------------------------------------------

def test_the_strict_topic_policy(tmp_path, passwd_file):
    config = toml(password_file=passwd_file, topic_policy="strict", admin_users=["admin"])
    with configured_broker(tmp_path, config) as b:
        device = paho(b, "thermo-1", "bob")
        assert granted(device, "#", 1) == [0x87]
        assert granted(device, "+/#", 1) == [0x87]
        assert granted(device, "Room/Lobby", 1) == [0x87]
        assert granted(device, "cmd/thermo-1/#", 1) == [1]
        admin = paho(b, "dashboard", "admin")
        assert granted(admin, "#", 1) == [1]
        for topic, allowed in [("data/thermo-1/temp", True), ("data/thermo-2/temp", False),
                               ("Data/thermo-1/temp", False), ("room/lobby_1", False), ("room/lobby-1", True)]:
            device.publish(topic, "x", qos=1)
            assert (device.pubacks.get(timeout=5).value == 0) == allowed, topic
        assert sorted(m.topic for m in admin.drain()) == ["data/thermo-1/temp", "room/lobby-1"]
        device.stop()
        admin.stop()


# --- TLS --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A test CA, and a server certificate it signed for 127.0.0.1 and localhost."""
    d = tmp_path_factory.mktemp("certs")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=midge test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    # A client certificate for alice, for certificate identity.
    openssl("req", *ec, "-keyout", "alice.key", "-out", "alice.csr", "-subj", "/O=Midge tests/CN=alice")
    (d / "client.cnf").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", "alice.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "alice.crt", "-days", "2", "-extfile", "client.cnf")
    return d


def tls_ports(b):
    """The mqtts and https ports the broker logged."""
    found = {}

    def logged():
        for kind, pattern in [("mqtts", r"mqtts://127\.0\.0\.1:(\d+)"), ("https", r"on https://127\.0\.0\.1:(\d+)")]:
            m = re.search(pattern, b.log())
            if m:
                found[kind] = int(m.group(1))
        return len(found) == 2

    wait_for(logged, what="the TLS listeners")
    return found["mqtts"], found["https"]


def tls_broker(tmp_path, certs, **keys):
    return configured_broker(tmp_path, toml(mqtts=["127.0.0.1:0"], https=["127.0.0.1:0"],
                                            tls_cert=certs / "server.crt", tls_key=certs / "server.key", **keys))


@pytest.mark.parametrize("which", ["tls_cert", "tls_key"])
def test_an_unusable_certificate_or_key_stops_the_start_naming_the_file(tmp_path, certs, which):
    files = {"tls_cert": certs / "server.crt", "tls_key": certs / "server.key"}
    files[which] = tmp_path / "not-pem"
    files[which].write_text("this is not PEM\n")
    config = tmp_path / "midge.toml"
    config.write_text(toml(tcp=["127.0.0.1:0"], http=["127.0.0.1:0"], mqtts=["127.0.0.1:0"], **files))
    result = subprocess.run([str(MIDGE), "--config", str(config)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert str(tmp_path / "not-pem") in result.stderr, result.stderr
    assert "panicked" not in result.stderr


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_clients_over_tls(tmp_path, certs, version):
    with tls_broker(tmp_path, certs) as b:
        mqtts, _ = tls_ports(b)
        tls = ["-h", "127.0.0.1", "-p", str(mqtts), "--cafile", str(certs / "ca.crt"), "-V", version]
        sub = subprocess.Popen(["mosquitto_sub", *tls, "-t", "secure/topic", "-C", "1", "-v"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        subprocess.run(["mosquitto_pub", *tls, "-t", "secure/topic", "-m", "over tls", "-q", "1"], check=True,
                       timeout=10)
        out, err = sub.communicate(timeout=10)
        assert out.splitlines() == ["secure/topic over tls"], err
        # A client that does not trust the certificate does not get in.
        untrusted = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mqtts), "--capath", str(tmp_path),
                                    "-t", "x", "-m", "x"], capture_output=True, text=True, timeout=10)
        assert untrusted.returncode != 0


def test_paho_over_tls_and_wss_meets_plain_tcp_subscribers(tmp_path, certs):
    with tls_broker(tmp_path, certs) as b:
        mqtts, https = tls_ports(b)
        plain = Client(b, "plain")
        plain.subscribe("mixed/#", qos=1)
        over_tls = Client(b, "tls", tls_ca=certs / "ca.crt", port=mqtts)
        over_wss = Client(b, "wss", transport="websockets", tls_ca=certs / "ca.crt", port=https)
        assert not over_tls.reason.is_failure and not over_wss.reason.is_failure
        over_wss.subscribe("mixed/#", qos=1)
        over_tls.publish("mixed/a", "from tls", qos=1)
        plain.publish("mixed/b", "from tcp", qos=1)
        for c in (plain, over_wss):
            assert sorted(m.payload for m in [c.get(), c.get()]) == [b"from tcp", b"from tls"]
        for c in (plain, over_tls, over_wss):
            c.stop()


def test_plain_mqtt_on_the_tls_port_gets_nowhere(tmp_path, certs):
    with tls_broker(tmp_path, certs) as b:
        mqtts, _ = tls_ports(b)
        peer = raw.Peer(mqtts)
        peer.send(raw.connect("plain-on-tls"))
        answer = peer.read()
        assert answer is None or answer[0] == 0x15, "a TLS alert at most, never a CONNACK"
        peer.close()
        assert Client(b, "still-fine").reason.value == 0


def test_a_client_certificate_is_the_users_identity(tmp_path, certs, passwd_file):
    (tmp_path / "acl").write_text(ACL)
    keys = dict(password_file=passwd_file, acl_file=tmp_path / "acl", tls_client_ca=certs / "ca.crt")
    with tls_broker(tmp_path, certs, **keys) as b:
        mqtts, _ = tls_ports(b)
        admin = paho(b, "admin-1", "admin")
        admin.subscribe("#", qos=1)
        # alice by her certificate: no password, and the ACL knows her as alice.
        alice = Client(b, "alice-cert", tls_ca=certs / "ca.crt", tls_cert=certs / "alice.crt",
                       tls_key=certs / "alice.key", port=mqtts)
        assert alice.reason.value == 0
        alice.publish("alice/notes", "signed", qos=1)
        assert alice.pubacks.get(timeout=5).value == 0
        alice.publish("bob/notes", "not hers", qos=1)
        assert alice.pubacks.get(timeout=5).value == 0x87
        # mosquitto_pub too; and the certificate wins over a user name the client claims.
        signed = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mqtts), "--cafile", str(certs / "ca.crt"),
                  "--cert", str(certs / "alice.crt"), "--key", str(certs / "alice.key"), "-q", "1"]
        subprocess.run(signed + ["-t", "alice/notes", "-m", "by mosquitto_pub"], check=True, timeout=10)
        subprocess.run(signed + ["-u", "admin", "-t", "bob/notes", "-m", "claims admin"], check=True, timeout=10)
        assert [m.payload for m in admin.drain()] == [b"signed", b"by mosquitto_pub"]
        # Without a certificate on the same listener: the password file decides.
        anonymous = Client(b, "nobody", tls_ca=certs / "ca.crt", port=mqtts)
        assert anonymous.reason.value == 0x87
        anonymous.stop()
        alice.stop()
        admin.stop()


def test_a_required_client_certificate(tmp_path, certs):
    with tls_broker(tmp_path, certs, tls_client_ca=certs / "ca.crt", require_client_certificate=True) as b:
        mqtts, _ = tls_ports(b)
        base = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mqtts), "--cafile", str(certs / "ca.crt"),
                "-t", "t", "-m", "m"]
        assert subprocess.run(base, capture_output=True, timeout=10).returncode != 0
        signed = base + ["--cert", str(certs / "alice.crt"), "--key", str(certs / "alice.key")]
        assert subprocess.run(signed, capture_output=True, timeout=10).returncode == 0


# --- abuse limits ------------------------------------------------------------------------------

def test_subscription_and_topic_level_limits(tmp_path):
    with configured_broker(tmp_path, toml(max_subscriptions=2, max_topic_levels=3)) as b:
        c = Client(b, "limited")
        assert granted(c, "a/b/c", 1) == [1]
        assert granted(c, "a/b/c/d", 1) == [0x8F]
        assert granted(c, "x", 1) == [1]
        assert granted(c, "y", 1) == [0x97]
        assert granted(c, "x", 0) == [0], "replacing one is not adding one"
        c.publish("a/b/c/d", "deep", qos=1)
        assert c.pubacks.get(timeout=5).value == 0x90
        v3 = Client(b, "limited-3", version=3)
        assert granted(v3, "a/b/c/d", 1) == [0x80]
        c.stop()
        v3.stop()


def test_connection_rate_per_source_address(tmp_path):
    with configured_broker(tmp_path, toml(max_connection_rate=3)) as b:
        peers = [raw.Peer(b.tcp_port) for _ in range(10)]
        answered = 0
        for i, peer in enumerate(peers):
            try:
                peer.send(raw.connect(f"rate-{i}"))
                answered += peer.read() is not None
            except OSError:
                pass
            peer.close()
        # A burst of 3, then 3 a second: a slow machine may let one more through.
        assert 3 <= answered <= 4, answered
        # A second later there are tokens again (HTTP counts too: the limit is per address).
        time.sleep(1.1)
        assert connack_code(b.tcp_port, "later", version=5) == 0
        metrics = urlopen(f"http://127.0.0.1:{b.http_port}/metrics")
        assert f"midge_connections_refused_total {10 - answered}" in metrics


def test_publish_rate_per_client(tmp_path):
    with configured_broker(tmp_path, toml(max_publish_rate=10)) as b:
        sub = Client(b, "counter")
        sub.subscribe("rate", qos=0)
        pub = Client(b, "chatty")
        start = time.monotonic()
        for i in range(30):
            pub.publish("rate", str(i), qos=1)
        elapsed = time.monotonic() - start
        # 10 at once, then 10 a second: the last 20 take about 2 s.
        assert 1.6 < elapsed < 6, elapsed
        assert len(sub.drain(1)) == 30
        sub.stop()
        pub.stop()


def urlopen(url, headers=None):
    import urllib.request
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
        return r.read().decode()


def websocket_status(port, origin=None):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        head = (f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n")
        if origin:
            head += f"Origin: {origin}\r\n"
        s.sendall((head + "\r\n").encode())
        return s.recv(1024).decode().split("\r\n")[0]


def test_websocket_origin_allow_list(tmp_path):
    with configured_broker(tmp_path, toml(allowed_origins=["https://dashboard.example"])) as b:
        assert "101" in websocket_status(b.http_port, "https://dashboard.example")
        assert "403" in websocket_status(b.http_port, "https://evil.example")
        assert "101" in websocket_status(b.http_port), "no Origin: not a browser page"
