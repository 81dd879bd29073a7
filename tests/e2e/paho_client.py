"""A small synchronous wrapper over Eclipse Paho (paho-mqtt 2.x) for the tests."""

import queue
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

TIMEOUT = 5


def properties(packet, **values):
    """Paho properties for `packet` ('PUBLISH', 'CONNECT', 'SUBSCRIBE', ...)."""
    props = Properties(getattr(PacketTypes, packet))
    for name, value in values.items():
        setattr(props, name, value)
    return props


class Client:
    """A connected Paho client whose callbacks feed queues and events."""

    def __init__(self, broker, client_id="", version=5, transport="tcp", clean=True, connect_properties=None,
                 will=None, keepalive=30, on_message=None, username=None, password=None, tls_ca=None,
                 tls_cert=None, tls_key=None, port=None):
        self.version = version
        protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        kwargs = {} if version == 5 else {"clean_session": clean}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                                  transport=transport, **kwargs)
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        if will:
            self.client.will_set(**will)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca), certfile=tls_cert and str(tls_cert),
                                keyfile=tls_key and str(tls_key))
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.disconnects = queue.Queue()
        self.client.on_message = on_message or (lambda c, u, m: self.messages.put(m))
        self.client.on_connect = lambda c, u, flags, rc, props: self.connack.put((flags, rc, props))
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.put(rcs)
        self.pubacks = queue.Queue()
        self.client.on_publish = lambda c, u, mid, rc, props: self.pubacks.put(rc)
        self.client.on_disconnect = lambda c, u, flags, rc, props: self.disconnects.put(rc)
        port = port or (broker.http_port if transport == "websockets" else broker.tcp_port)
        connect_args = {"keepalive": keepalive}
        if version == 5:
            connect_args["clean_start"] = clean
            connect_args["properties"] = connect_properties
        self.client.connect("127.0.0.1", port, **connect_args)
        self.client.loop_start()
        self.flags, self.reason, self.connack_properties = self.connack.get(timeout=TIMEOUT)

    def subscribe(self, topic, qos=0, properties=None, **options):
        if self.version == 5:
            opts = SubscribeOptions(qos=qos, **options)
            self.client.subscribe(topic, options=opts, properties=properties)
        else:
            self.client.subscribe(topic, qos)
        return self.subacks.get(timeout=TIMEOUT)

    def unsubscribe(self, topic):
        self.client.unsubscribe(topic)

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()

    def get(self, timeout=TIMEOUT):
        return self.messages.get(timeout=timeout)

    def drain(self, wait=0.3):
        """Every message that arrives within `wait` seconds of the last one."""
        messages = []
        while True:
            try:
                messages.append(self.messages.get(timeout=wait))
            except queue.Empty:
                return messages

    def nothing(self, wait=0.3):
        try:
            message = self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message on {message.topic}: {message.payload!r}")

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def kill(self):
        """Ends the connection without DISCONNECT."""
        self.client.loop_stop()
        self.client.socket().close()

    def reconnect(self):
        """Connects again with the same Paho client, which keeps its own session state
        (QoS 2 messages received but not yet released), as a real client must."""
        self.client.reconnect()
        self.client.loop_start()
        self.flags, self.reason, self.connack_properties = self.connack.get(timeout=TIMEOUT)
