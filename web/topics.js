// The demo's topic structure, in one place. It follows the topic best practices of the
// design (and passes the broker's `topic_policy = "strict"`): lowercase letters, numbers and
// dashes; general to specific (prefix, then whose, then what); `data/` for what a client
// says about itself, which anyone may read, and `cmd/` for what is addressed to one client;
// the client id in every topic; no subscription to `#`.

/** Every topic the page publishes to or subscribes to. */
export const TOPICS = {
  /** Retained `{name, since}` while a page is open; its will clears it. */
  presence: (clientId) => `data/${clientId}/presence`,
  presenceAll: "data/+/presence",
  /** One reading a second from every page (fan-in). */
  telemetry: (clientId) => `data/${clientId}/telemetry`,
  telemetryAll: "data/+/telemetry",
  /** The room everyone is in (broadcast). */
  room: (clientId) => `data/${clientId}/room/lobby`,
  roomAll: "data/+/room/lobby",
  /** A private message to `to`'s inbox (point-to-point); the last level is the sender. */
  inbox: (to, from) => `cmd/${to}/inbox/${from}`,
  inboxOf: (clientId) => `cmd/${clientId}/inbox/+`,
};

/** The rows of the topic map the page shows. */
export const TOPIC_MAP = [
  ["presence", TOPICS.presence("{client-id}"), TOPICS.presenceAll, "retained, QoS 1; the will clears it"],
  ["private chat", TOPICS.inbox("{to-id}", "{from-id}"), TOPICS.inboxOf("{your-id}"), "QoS 1, one inbox"],
  ["room", TOPICS.room("{client-id}"), TOPICS.roomAll, "QoS 1, everyone subscribes"],
  ["dashboard", TOPICS.telemetry("{client-id}"), TOPICS.telemetryAll, "QoS 0, every second"],
];

/** One topic level as the best practices allow it. */
const LEVEL = /^[a-z0-9-]+$/;

/** The client id a name gets: its lowercase letters and digits, dashes, and a random tail. */
export function clientIdFor(name) {
  const base = name
    .normalize("NFKD")
    .replace(/\p{M}/gu, "") // the accents NFKD split off: Å is A
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 16)
    .replace(/-+$/, "");
  const tail = Array.from(crypto.getRandomValues(new Uint8Array(2)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
  const id = `${base || "user"}-${tail}`;
  if (!LEVEL.test(id)) throw new Error(`client id ${id} breaks the topic rules`);
  return id;
}

/**
 * The levels `topic` has where `filter` has `+`, or null if the filter does not match it
 * (the page's filters use `+` only).
 */
export function match(filter, topic) {
  const want = filter.split("/");
  const have = topic.split("/");
  if (want.length !== have.length) return null;
  const wild = [];
  for (let i = 0; i < want.length; i += 1) {
    if (want[i] === "+") wild.push(have[i]);
    else if (want[i] !== have[i]) return null;
  }
  return wild;
}
