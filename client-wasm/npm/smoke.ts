// Type-checked (tsc --strict --noEmit) against the installed package by
// tests/e2e/test_npm_package.py: the README's example, and mistakes the types must catch.

import init, { connect, MqttClient, type ConnectOptions, type PublishPacket } from "midge-mqtt";

export async function example(): Promise<MqttClient> {
  await init();
  const options: ConnectOptions = {
    clientId: "dash-1", protocolVersion: 5, clean: true, keepalive: 30,
    will: { topic: "status/dash-1", payload: "offline", qos: 1, retain: true },
    reconnect: { initialDelayMs: 500, maxDelayMs: 30000, jitter: 0.25 },
    properties: { sessionExpiryInterval: 3600, userProperties: { app: "dash" } },
  };
  const client = await connect("ws://127.0.0.1:8080/mqtt", options);
  client.on("message", (topic: string, payload: Uint8Array, packet: PublishPacket) => {
    const qos: 0 | 1 | 2 = packet.qos;
    console.log(topic, payload.byteLength, qos, packet.properties.userProperties);
  });
  client.on("connect", (connack) => console.log(connack.sessionPresent));
  client.on("error", (error) => console.log(error.message, error.reasonCode));
  const granted = await client.subscribe("chat/ann/inbox", { qos: 1 });
  console.log(granted[0].topic, granted[0].qos);
  await client.subscribe({ "sensors/+/temp": { qos: 0 }, "alerts/#": { qos: 1, rh: 2 } });
  await client.publish("chat/bob/inbox", "hello", { qos: 1, retain: false, properties: {} });
  await client.publish("raw", new Uint8Array([1, 2, 3]));
  for await (const msg of client.messages("sensors/+/temp")) {
    console.log(msg.topic, msg.payload.byteLength);
    break;
  }
  const connected: boolean = client.connected;
  const waiting: number | undefined = client.reconnectIn;
  console.log(connected, waiting);
  await client.unsubscribe("chat/ann/inbox");
  await client.end();
  return client;
}

export async function mistakes(client: MqttClient): Promise<void> {
  // @ts-expect-error: qos is 0, 1 or 2
  await client.publish("t", "x", { qos: 3 });
  // @ts-expect-error: no such event
  client.on("mesage", () => {});
  // @ts-expect-error: a message handler gets a string topic first
  client.on("message", (topic: number) => console.log(topic));
  // @ts-expect-error: protocolVersion is 4 or 5
  await connect("ws://x/mqtt", { protocolVersion: 3 });
}
