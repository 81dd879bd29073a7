// The options of midge-mqtt's API, wrong and right, without a browser: the web build in
// web/pkg/ (from scripts/build-wasm.sh; or MIDGE_WEB's pkg/) run by node, against a stand-in WebSocket that
// records what the client sends and answers CONNECT, SUBSCRIBE and UNSUBSCRIBE. The options
// are read in JS (client-wasm/src/options.js) and their strings checked by the codec in the
// .wasm: the errors must read as they always have, and the first one met reading front to
// back must win, whichever side finds it (the texts are those of the build before the move).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const web = process.env.MIDGE_WEB ?? join(fileURLToPath(new URL("../..", import.meta.url)), "web");
const pkg = join(web, "pkg");
const mqtt = await import(join(pkg, "midge_mqtt.js"));
mqtt.initSync({ module: readFileSync(join(pkg, "midge_mqtt_bg.wasm")) });

const hex = (bytes) => Buffer.from(bytes).toString("hex");
let socket;
// What the stand-in answers CONNECT with: a 5.0 CONNACK with no properties, unless a test
// sets another.
let connack = [0x20, 3, 0, 0, 0];
globalThis.WebSocket = class {
  constructor() {
    this.sent = [];
    socket = this;
    setTimeout(() => this.onopen?.({}), 0);
  }
  send(data) {
    const bytes = new Uint8Array(data);
    this.sent.push(hex(bytes));
    const reply = (answer) => setTimeout(() => this.onmessage?.({ data: new Uint8Array(answer).buffer }), 0);
    const type = bytes[0] >> 4;
    if (type === 1) reply(connack);
    if (type === 8) reply([0x90, 4, bytes[2], bytes[3], 0, 1]); // SUBACK, QoS 1
    if (type === 10) reply([0xb0, 4, bytes[2], bytes[3], 0, 0]); // UNSUBACK
  }
  close() {}
};

const failure = (promise) => promise.then(() => "resolved", (e) => e.message);

test("wrong connect options are errors naming the option, the first one met winning", async () => {
  const cases = [
    [5, "options must be an object"],
    [{ foo: 1 }, "unknown option foo; the options here are clientId, protocolVersion, clean, keepalive, username, password, will, reconnect, properties, connectTimeout, queueLimit, autoAssignTopicAlias"],
    [{ clientId: 5 }, "clientId must be a string"],
    [{ protocolVersion: 3 }, "protocolVersion must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0)"],
    [{ protocolVersion: 4.5 }, "protocolVersion must be a whole number from 0 to 255"],
    [{ keepalive: -1 }, "keepalive must be a whole number from 0 to 65535"],
    [{ clean: 1 }, "clean must be true or false"],
    [{ password: 5 }, "password: a payload must be a string, a Uint8Array or an ArrayBuffer"],
    [{ will: 5 }, "will.options must be an object"],
    [{ will: {} }, "will.topic is missing"],
    [{ will: { topic: "t", qos: 3 } }, "will.qos must be 0, 1 or 2"],
    [{ will: { topic: "a/+" } }, 'will.topic: "a/+" is not a valid topic name: a topic name contains a wildcard'],
    [{ will: { topic: "t", properties: { contentType: "a\0b" } } }, 'will.properties.contentType: "a\0b" is not valid: string contains the null character U+0000'],
    [{ will: { topic: "t", properties: { userProperties: { a: ["x", 5] } } } }, "will.properties.userProperties.a must be a string or an array of strings"],
    // A codec error before a JS one, and a JS one before a codec one.
    [{ will: { topic: "t", properties: { userProperties: { "a\0": ["x", 5] } } } }, 'will.properties.userProperties: "a\0" is not valid: string contains the null character U+0000'],
    [{ will: { topic: "t" }, properties: { userProperties: { "\0": "x" } }, queueLimit: "x" }, 'properties.userProperties: "\0" is not valid: string contains the null character U+0000'],
    [{ will: { topic: "a/#" }, keepalive: -1 }, "keepalive must be a whole number from 0 to 65535"],
    [{ will: { topic: "a/#", properties: { contentType: 5 } } }, 'will.topic: "a/#" is not a valid topic name: a topic name contains a wildcard'],
    [{ will: { qos: 1 }, protocolVersion: 3 }, "protocolVersion must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0)"],
    [{ will: { qos: 1 }, reconnect: 5 }, "will.topic is missing"],
    [{ reconnect: 5 }, "reconnect.options must be an object"],
    [{ reconnect: { foo: 1 } }, "unknown option reconnect.foo; the options here are initialDelayMs, maxDelayMs, jitter"],
    [{ reconnect: { jitter: 2 } }, "reconnect.jitter must be from 0 to 1"],
    [{ autoAssignTopicAlias: "yes" }, "autoAssignTopicAlias must be true or false"],
    [{ reconnect: { jitter: 2 }, autoAssignTopicAlias: 1 }, "autoAssignTopicAlias must be true or false"],
    [{ autoAssignTopicAlias: true, reconnect: { maxDelayMs: -1 } }, "reconnect.maxDelayMs must be a whole number from 0 to 4294967295"],
    [{ properties: { receiveMaximum: 0 } }, "properties.receiveMaximum must be a whole number from 1 to 65535"],
  ];
  for (const [options, message] of cases) {
    assert.equal(await failure(mqtt.connect("ws://test/", options)), `connect options: ${message}`, JSON.stringify(options));
  }
});

test("right connect options make the CONNECT they describe", async () => {
  const options = {
    clientId: "abc",
    keepalive: 30,
    username: "u",
    password: new Uint8Array([0x70]),
    will: { topic: "t", payload: "hi", qos: 1, retain: true, properties: { willDelayInterval: 10, contentType: "text/plain", userProperties: { a: "b", c: ["d", "e"] } } },
    properties: { sessionExpiryInterval: 60, receiveMaximum: 10, userProperties: { k: "v" } },
    reconnect: { initialDelayMs: 100 },
  };
  const client = await mqtt.connect("ws://test/", options);
  assert.deepEqual(socket.sent, [
    "105400044d51545405ee001e0f110000003c21000a2600016b000176000361626327180000000a03000a746578742f706c61696e26000161000162260001630001642600016300016500017400026869000175000170",
  ]);
  await client.end(true);
});

test("wrong publish, subscribe, unsubscribe and messages arguments", async () => {
  const client = await mqtt.connect("ws://test/", { clientId: "c" });
  const cases = [
    [() => client.publish("a/+", 5), 'publish to "a/+": "a/+" is not a valid topic name: a topic name contains a wildcard'],
    [() => client.publish("t", 5, { qos: 3 }), 'publish to "t": a payload must be a string, a Uint8Array or an ArrayBuffer'],
    [() => client.publish("t", "p", { foo: 1 }), 'publish to "t": unknown option foo; the options here are qos, retain, properties'],
    [() => client.publish("t", "p", { properties: { contentType: "\0", userProperties: 5 } }), 'publish to "t": properties.contentType: "\0" is not valid: string contains the null character U+0000'],
    [() => client.subscribe(5), "subscribe: expected a topic filter, an array of them, or an object of them"],
    [() => client.subscribe([]), "subscribe: at least one topic filter is needed"],
    [() => client.subscribe(["a/#/b", 5]), "subscribe: every filter must be a string"],
    [() => client.subscribe(["a/#/b"]), `subscribe: "a/#/b" is not a valid topic filter: '#' is not the whole last level`],
    [() => client.subscribe({ "a/#/b": { qos: 5 } }), "subscribe: a/#/b.qos must be 0, 1 or 2"],
    [() => client.subscribe({ a: { properties: { userProperties: { "\0": "x" } } }, "b/#/c": null }), 'subscribe: a.properties.userProperties: "\0" is not valid: string contains the null character U+0000'],
    [() => client.subscribe(["a/#/b"], { properties: { userProperties: { "\0": "" } } }), 'subscribe: properties.userProperties: "\0" is not valid: string contains the null character U+0000'],
    [() => client.subscribe({ "": 5 }), "subscribe: options must be an object"],
    [() => client.unsubscribe({ a: 1 }), "unsubscribe: expected a topic filter or an array of them"],
    [() => client.unsubscribe("a/#/b"), `unsubscribe: "a/#/b" is not a valid topic filter: '#' is not the whole last level`],
  ];
  for (const [call, message] of cases) assert.equal(await failure(call()), message, String(call));
  assert.throws(() => client.messages("m/#/x", { qos: 5 }), { message: `messages: "m/#/x" is not a valid topic filter: '#' is not the whole last level` });
  assert.throws(() => client.messages("m", { rh: 3 }), { message: "messages options: rh must be a whole number from 0 to 2" });

  socket.sent = [];
  await client.subscribe({ a: { qos: 1 }, b: null, c: { nl: true, rap: true, rh: 2 } }, { qos: 2 });
  await client.publish("t", "p", { properties: { payloadFormatIndicator: true, correlationData: new Uint8Array([1]), userProperties: { a: ["1", "2"] } } });
  assert.deepEqual(socket.sent, ["820f00010000016101000162020001632e", "301900017414010109000101260001610001312600016100013270"]);
  await client.end(true);
});

test("autoAssignTopicAlias publishes through topic aliases, up to the server's maximum", async () => {
  connack = [0x20, 6, 0, 0, 3, 0x22, 0, 2]; // Topic Alias Maximum 2
  const client = await mqtt.connect("ws://test/", { clientId: "c", autoAssignTopicAlias: true });
  socket.sent = [];
  for (const topic of ["t", "t", "u", "v", "u"]) await client.publish(topic, "p");
  connack = [0x20, 3, 0, 0, 0];
  assert.deepEqual(socket.sent, [
    "30080001740323000170", // "t" and alias 1
    "300700000323000170", // alias 1 alone
    "30080001750323000270", // "u" and alias 2
    "30050001760070", // "v" in full: no alias left
    "300700000323000270", // alias 2 alone
  ]);
  await client.end(true);
});
