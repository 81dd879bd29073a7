// Fan-in: every page publishes a reading each second (Telemetry); one panel subscribes to
// all of them with a `+` wildcard and draws them (Dashboard), with an SVG sparkline each.

import { TOPICS } from "./topics.js";
import { el, encode } from "./messages.js";

const SVG = "http://www.w3.org/2000/svg";
/** How many readings a sparkline shows, and when a silent page looks stale or goes. */
const POINTS = 60;
const STALE_MS = 3000;
const GONE_MS = 15000;

/** This page's readings: messages sent and received, and the latency of its own last reading. */
export class Telemetry {
  constructor(me, publish) {
    this.me = me;
    this.publish = publish;
    this.sent = 0;
    this.received = 0;
    this.latencyMs = null;
    this.seq = 0;
    this.pending = new Map(); // seq -> performance.now() when published
  }

  /** Publishes one reading; its echo (the page subscribes to all readings) times the round trip. */
  tick() {
    this.seq += 1;
    this.pending.set(this.seq, performance.now());
    for (const seq of this.pending.keys()) if (seq < this.seq - 10) this.pending.delete(seq);
    const reading = { name: this.me.name, seq: this.seq, sent: this.sent + 1, received: this.received, latencyMs: this.latencyMs };
    this.publish(TOPICS.telemetry(this.me.clientId), encode(reading), { qos: 0, retain: false }).catch(() => {});
  }

  /** One of this page's own readings came back through the broker. */
  echo(reading) {
    const at = this.pending.get(reading.seq);
    if (at === undefined) return;
    this.pending.delete(reading.seq);
    this.latencyMs = Math.round((performance.now() - at) * 10) / 10;
  }
}

export class Dashboard {
  constructor(me, root, empty) {
    this.me = me;
    this.root = root;
    this.empty = empty;
    this.cards = new Map(); // clientId -> { card, fields, history, seenAt }
    setInterval(() => this.sweep(), 1000);
  }

  /** A reading from `clientId`, published to `topic`. */
  reading(clientId, topic, r) {
    const entry = this.cards.get(clientId) ?? this.add(clientId);
    entry.seenAt = performance.now();
    entry.card.classList.remove("stale");
    if (typeof r.latencyMs === "number") entry.history.push(r.latencyMs);
    if (entry.history.length > POINTS) entry.history.shift();
    const you = clientId === this.me.clientId ? " (you)" : "";
    entry.fields.name.textContent = `${String(r.name ?? clientId)}${you}`;
    entry.fields.latency.textContent = typeof r.latencyMs === "number" ? `${r.latencyMs.toFixed(1)} ms` : "–";
    entry.fields.counts.textContent = `sent ${Number(r.sent) || 0} · received ${Number(r.received) || 0}`;
    entry.fields.topic.textContent = topic;
    entry.card.dataset.readings = String(Number(entry.card.dataset.readings) + 1);
    sparkline(entry.fields.chart, entry.history);
  }

  add(clientId) {
    const card = el("article", "reading");
    card.dataset.clientId = clientId;
    card.dataset.readings = "0";
    const fields = {
      name: el("strong", "name"),
      latency: el("span", "latency", "–"),
      counts: el("span", "counts"),
      chart: document.createElementNS(SVG, "svg"),
      topic: el("code", "topic"),
    };
    fields.chart.setAttribute("viewBox", `0 0 ${POINTS - 1} 30`);
    fields.chart.setAttribute("preserveAspectRatio", "none");
    fields.chart.setAttribute("class", "spark");
    fields.chart.setAttribute("role", "img");
    fields.chart.setAttribute("aria-label", "round-trip latency, last minute");
    const head = el("div", "head");
    head.append(fields.name, fields.latency);
    card.append(head, fields.chart, fields.counts, fields.topic);
    const entry = { card, fields, history: [], seenAt: performance.now() };
    this.cards.set(clientId, entry);
    const ids = [...this.cards.keys()].sort();
    this.root.insertBefore(card, this.cards.get(ids[ids.indexOf(clientId) + 1])?.card ?? null);
    this.empty.hidden = true;
    return entry;
  }

  /** Greys out pages that went quiet, and drops those gone for good. */
  sweep() {
    const now = performance.now();
    for (const [clientId, entry] of this.cards) {
      const silent = now - entry.seenAt;
      entry.card.classList.toggle("stale", silent > STALE_MS);
      if (silent > GONE_MS) {
        entry.card.remove();
        this.cards.delete(clientId);
      }
    }
    this.empty.hidden = this.cards.size > 0;
  }
}

/** Draws `values` into `svg` across its width, from zero to a little above their maximum. */
function sparkline(svg, values) {
  if (!svg.firstElementChild) {
    const area = document.createElementNS(SVG, "polygon");
    area.setAttribute("class", "area");
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(area, line);
  }
  const [area, line] = svg.children;
  const top = Math.max(1, ...values) * 1.2;
  const step = (POINTS - 1) / Math.max(1, values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(2)},${(30 - (v / top) * 30).toFixed(2)}`);
  if (points.length === 1) points.push(`${POINTS - 1},${points[0].split(",")[1]}`);
  line.setAttribute("points", points.join(" "));
  area.setAttribute("points", `0,30 ${points.join(" ")} ${POINTS - 1},30`);
}
