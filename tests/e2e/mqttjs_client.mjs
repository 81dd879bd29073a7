// An MQTT.js client for the end-to-end tests: connects over WebSocket, subscribes, publishes
// at QoS 0, 1 and 2 to itself and to whoever listens, and prints one JSON line per event.
// Usage: node mqttjs_client.mjs URL PROTOCOL_VERSION CLIENT_ID
import mqtt from "mqtt";

const [url, version, clientId] = process.argv.slice(2);
const say = (event) => console.log(JSON.stringify(event));

const client = await mqtt.connectAsync(url, {
  clientId,
  protocolVersion: Number(version),
  reconnectPeriod: 0,
  connectTimeout: 5000,
  // 5.0: let the broker send topic aliases, which MQTT.js resolves.
  ...(Number(version) === 5 ? { properties: { topicAliasMaximum: 10 } } : {}),
});
say({ event: "connect" });
const received = [];
let aliased = 0;
client.on("message", (topic, payload, packet) => {
  received.push({ topic, payload: payload.toString(), qos: packet.qos });
  if (packet.properties?.topicAlias) aliased += 1;
});
const granted = await client.subscribeAsync("mqttjs/echo/#", { qos: 2 });
say({ event: "suback", granted: granted.map((g) => g.qos) });
for (const qos of [0, 1, 2]) {
  await client.publishAsync(`mqttjs/echo/${qos}`, `from mqtt.js at qos ${qos}`, { qos });
}
const deadline = Date.now() + 5000;
while (received.length < 3 && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
received.sort((a, b) => a.topic.localeCompare(b.topic));
say({ event: "messages", received, aliased });
await client.endAsync();
