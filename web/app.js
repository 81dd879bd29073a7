// The demo page: a name, one MQTT connection (midge-mqtt over WebSocket to the broker that
// served the page), and the three patterns on it: chat, room, dashboard.

import { Chat } from "./chat.js";
import { Room } from "./room.js";
import { Dashboard, Telemetry } from "./dashboard.js";
import { StatusView, openConnection } from "./connection.js";
import { decode, el, encode } from "./messages.js";
import { TOPICS, TOPIC_MAP, clientIdFor, match } from "./topics.js";

const $ = (id) => document.getElementById(id);
const BROKER_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/mqtt`;
const NAME_KEY = "midge-demo-name";

// Fetched at once, not on Join (the broker that serves it may be gone by then); Join waits for it.
const mqttModule = loadClient();
mqttModule.then(
  () => {
    $("join-button").disabled = false;
    $("join-button").textContent = "Join";
  },
  (err) => showError(err.message),
);
const status = new StatusView($("status"), $("status-text"));
$("broker-url").textContent = BROKER_URL;
$("name").value = localStorage.getItem(NAME_KEY) ?? "";

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("name").value.trim();
  if (!name) return;
  localStorage.setItem(NAME_KEY, name);
  $("join-button").disabled = true;
  join(name).catch((err) => showError(err.message));
});

function showError(message) {
  $("notice").textContent = message;
  $("notice").hidden = false;
}

async function join(name) {
  const mqtt = await mqttModule;
  const me = { name, clientId: clientIdFor(name) };
  status.clientId = me.clientId;
  let connected = false;
  let client = null;
  const telemetry = new Telemetry(me, (...args) => publish(...args));
  // Every publish goes through here, to be counted on the dashboard.
  const publish = (topic, payload, options) => {
    telemetry.sent += 1;
    return client ? client.publish(topic, payload, options) : Promise.reject(new Error("not connected yet"));
  };
  const chat = new Chat(me, publish, {
    list: $("people"), count: $("people-count"), log: $("chat-log"), form: $("chat-form"),
    input: $("chat-input"), title: $("chat-title"), hint: $("chat-hint"),
  });
  const room = new Room(me, publish, { log: $("room-log"), form: $("room-form") });
  const dashboard = new Dashboard(me, $("dash"), $("dash-empty"));

  const route = router(me, { chat, room, dashboard, telemetry });

  showApp(me);
  const presence = encode({ name, since: Date.now() });
  await openConnection({
    connect: mqtt.connect,
    url: BROKER_URL,
    options: {
      clientId: me.clientId,
      protocolVersion: 5,
      clean: true,
      keepalive: 20,
      // If this tab dies, the broker clears its retained presence: it drops off every list.
      will: { topic: TOPICS.presence(me.clientId), payload: "", qos: 1, retain: true },
    },
    onState: (s) => {
      connected = s.state === "connected";
      document.body.dataset.link = s.state;
      status.show(s);
      if (s.reason) showError(`The last attempt failed: ${s.reason}`);
      if (connected) $("notice").hidden = true;
    },
    onConnect: async (c, first) => {
      client = c;
      if (first) {
        c.on("message", route);
        // The client subscribes again by itself after reconnecting.
        const filters = [TOPICS.presenceAll, TOPICS.inboxOf(me.clientId), TOPICS.roomAll, TOPICS.telemetryAll];
        const refused = (await c.subscribe(filters, { qos: 1 })).filter((g) => g.qos >= 0x80);
        if (refused.length) throw new Error(`The broker refused ${refused.map((g) => g.topic).join(", ")}`);
      } else {
        chat.forgetPresence();
      }
      // Retained: whoever subscribes later gets it at once. Sent again after every
      // reconnect, since a restarted broker may have forgotten it.
      await publish(TOPICS.presence(me.clientId), presence, { qos: 1, retain: true });
    },
  });

  setInterval(() => connected && telemetry.tick(), 1000);
}

/** Hands each message to the panel whose filter it matched; the filter's `+` is the sender. */
function router(me, { chat, room, dashboard, telemetry }) {
  return (topic, payload) => {
    telemetry.received += 1;
    const body = decode(payload);
    let from;
    if ((from = match(TOPICS.presenceAll, topic))) return chat.presence(from[0], body);
    if (body === null) return;
    if ((from = match(TOPICS.inboxOf(me.clientId), topic))) return chat.incoming(from[0], topic, body);
    if ((from = match(TOPICS.roomAll, topic))) return room.incoming(from[0], topic, body);
    if ((from = match(TOPICS.telemetryAll, topic))) {
      if (from[0] === me.clientId) telemetry.echo(body);
      dashboard.reading(from[0], topic, body);
    }
  };
}

/** midge-mqtt's `--target web` build, initialised; a readable error when it was not built. */
async function loadClient() {
  let mqtt;
  try {
    mqtt = await import("./pkg/midge_mqtt.js");
  } catch {
    throw new Error("The MQTT client is not built: run scripts/build-wasm.sh, then reload.");
  }
  await mqtt.default();
  return mqtt;
}

function showApp(me) {
  $("join").hidden = true;
  $("app").hidden = false;
  $("me-id").textContent = me.clientId;
  $("people-filter").textContent = TOPICS.presenceAll;
  $("room-filter").textContent = TOPICS.roomAll;
  $("dash-filter").textContent = TOPICS.telemetryAll;
  $("topic-map").tBodies[0].replaceChildren(
    ...TOPIC_MAP.map((cells) => {
      const tr = el("tr");
      cells.forEach((cell, i) => tr.append(el("td", i === 1 || i === 2 ? "mono" : "", cell)));
      return tr;
    }),
  );
  $("room-input").focus({ preventScroll: true });
}
