// A module Web Worker that uses midge-mqtt by itself: no window, no DOM. Told the broker's
// WebSocket URL, it subscribes, publishes to itself at QoS 1 and reports what came back.
import init, { connect } from "./pkg/midge_mqtt.js";

self.onmessage = async ({ data: url }) => {
  try {
    await init();
    const client = await connect(url, { clientId: `worker-${Date.now()}` });
    const echoed = new Promise((resolve) => {
      client.on("message", (_topic, payload) => resolve(new TextDecoder().decode(payload)));
    });
    await client.subscribe("test/worker/echo", { qos: 1 });
    await client.publish("test/worker/echo", "from a worker", { qos: 1 });
    const text = await echoed;
    await client.end();
    self.postMessage({ ok: true, text });
  } catch (err) {
    self.postMessage({ ok: false, error: String(err?.message ?? err) });
  }
};
