// The page's one MQTT connection and what the status bar says about it.
//
// midge-mqtt reconnects by itself once connected (exponential backoff from
// BACKOFF.initialDelayMs, doubling up to BACKOFF.maxDelayMs, with jitter) and resubscribes;
// `connect` itself rejects when the first attempt fails, so that first attempt is retried
// here, on the same schedule. Once connected, the countdown shown while waiting is the
// client's own (`client.reconnectIn`, jitter included); before that, the schedule's.

/** The reconnect schedule handed to the client (and used for the first connection). */
export const BACKOFF = { initialDelayMs: 500, maxDelayMs: 8000, jitter: 0.2 };

/** The nominal delay before reconnect attempt number `attempt` (0 is the first). */
export function backoffDelay(attempt) {
  return Math.min(BACKOFF.maxDelayMs, BACKOFF.initialDelayMs * 2 ** attempt);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Connects with `connect(url, options)` (midge-mqtt's), retrying the first connection,
 * and reports every change of state to `onState({ state, retryAt, attempt })`, where
 * `state` is "connecting", "connected", "waiting" (until `retryAt`, a `performance.now()`
 * time) or "reconnecting". `onConnect(client, first)` runs after every CONNACK.
 */
export async function openConnection({ connect, url, options, onState, onConnect }) {
  let attempt = 0;
  let client;
  for (;;) {
    onState({ state: attempt === 0 ? "connecting" : "reconnecting", attempt });
    try {
      client = await connect(url, { ...options, reconnect: BACKOFF });
      break;
    } catch (err) {
      const delay = backoffDelay(attempt);
      attempt += 1;
      onState({ state: "waiting", retryAt: performance.now() + delay, attempt, reason: String(err?.message ?? err) });
      await sleep(delay);
    }
  }
  watch(client, onState, onConnect);
  onState({ state: "connected", attempt: 0 });
  await onConnect(client, true);
  return client;
}

/** Follows the client's own reconnecting through its events. */
function watch(client, onState, onConnect) {
  let phase = "connected";
  let attempt = 0;
  const dropped = () => {
    if (phase === "waiting") return; // "close" and "offline" both announce one drop
    phase = "waiting";
    // The client knows the delay it chose, jitter included; the schedule is the fallback.
    const delay = client.reconnectIn ?? backoffDelay(attempt);
    attempt += 1;
    onState({ state: "waiting", retryAt: performance.now() + delay, attempt });
  };
  client.on("close", dropped);
  client.on("offline", dropped);
  client.on("reconnect", () => {
    phase = "reconnecting";
    onState({ state: "reconnecting", attempt });
  });
  client.on("connect", () => {
    if (phase === "connected") return; // the first CONNACK is `connect` resolving
    phase = "connected";
    attempt = 0;
    onState({ state: "connected", attempt });
    Promise.resolve(onConnect(client, false)).catch((err) => console.info("mqtt:", err?.message ?? err));
  });
  client.on("error", (err) => {
    // A refused or dropped connection while the broker is away is expected; say it quietly.
    console.info("mqtt:", err?.message ?? err);
  });
}

/** Renders the state into the status bar, counting down while waiting. */
export class StatusView {
  constructor(root, text) {
    this.root = root;
    this.text = text;
    this.timer = null;
    this.clientId = "";
  }

  show({ state, retryAt }) {
    clearInterval(this.timer);
    this.root.dataset.state = state;
    if (state === "waiting") {
      const tick = () => {
        const left = Math.ceil((retryAt - performance.now()) / 1000);
        this.text.textContent = left > 0 ? `reconnecting in ${left} s` : "reconnecting…";
        if (left <= 0) clearInterval(this.timer);
      };
      tick();
      this.timer = setInterval(tick, 200);
      return;
    }
    this.text.textContent = {
      connecting: "connecting…",
      reconnecting: "reconnecting…",
      connected: `connected as ${this.clientId}`,
    }[state] ?? state;
  }
}
