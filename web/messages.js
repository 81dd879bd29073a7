// A message log (the private chat and the room share it): each entry shows who, when,
// what, and the topic it travelled on, so a reader learning MQTT sees the topics at work.

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** An element with a class and, optionally, text (never HTML: names and texts are users'). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** One entry of a log; `mine` aligns it right, `pending` marks a QoS 1 publish not yet acknowledged. */
export function messageItem({ name, text, topic, at, mine, pending }) {
  const li = el("li", mine ? "msg mine" : "msg");
  const meta = el("div", "meta");
  meta.append(el("span", "who", mine ? "you" : name), el("time", "when", TIME.format(at)));
  const state = el("span", "ack", pending ? "sending…" : "");
  if (mine) meta.append(state);
  li.append(meta, el("p", "text", text), el("code", "topic", topic));
  li.dataset.topic = topic;
  return { li, acknowledged: () => (state.textContent = "✓ broker"), failed: (why) => (state.textContent = `not sent: ${why}`) };
}

/** Appends to a log and keeps it scrolled to the newest entry if it was there already. */
export function append(log, li) {
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(li);
  while (log.children.length > 200) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

/** Sends the text typed into `form` through `send(text)`; Enter submits, the input is kept focused. */
export function onSubmit(form, send) {
  const input = form.querySelector("input");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || input.disabled) return;
    input.value = "";
    send(text);
    input.focus();
  });
}

/** Decodes a JSON payload, or null for an empty or foreign one. */
export function decode(payload) {
  if (!payload || payload.length === 0) return null;
  try {
    const value = JSON.parse(new TextDecoder().decode(payload));
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

/** The JSON payload of a message. */
export function encode(value) {
  return JSON.stringify(value);
}
