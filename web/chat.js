// Point-to-point: who is online (retained presence messages), and private conversations
// through each client's inbox topic at QoS 1.

import { TOPICS } from "./topics.js";
import { append, el, encode, messageItem, onSubmit } from "./messages.js";

export class Chat {
  /**
   * `me` is `{ name, clientId }`; `publish(topic, text, options)` is the client's.
   * `dom` holds the list, count, log, form, title and hint elements.
   */
  constructor(me, publish, dom) {
    this.me = me;
    this.publish = publish;
    this.dom = dom;
    this.people = new Map(); // clientId -> { name, since }
    this.logs = new Map(); // clientId -> [li] of that conversation
    this.unread = new Map(); // clientId -> count
    this.peer = null;
    onSubmit(dom.form, (text) => this.send(text));
  }

  /** A presence message: `info` is `{ name, since }`, or null when the client left. */
  presence(clientId, info) {
    if (info) this.people.set(clientId, { name: String(info.name ?? clientId), since: info.since });
    else this.people.delete(clientId);
    this.renderPeople();
    if (clientId === this.peer) this.renderHeader();
  }

  /**
   * Forgets who was online: after a reconnect the retained presence messages that come
   * with the renewed subscription (and each page's own, sent again) say it anew.
   */
  forgetPresence() {
    this.people.clear();
    this.renderPeople();
    if (this.peer) this.renderHeader();
  }

  /** A message that arrived in this client's inbox from `from`. */
  incoming(from, topic, body) {
    const name = String(body.name ?? this.people.get(from)?.name ?? from);
    const { li } = messageItem({ name, text: String(body.text ?? ""), topic, at: new Date() });
    this.remember(from, li);
    if (this.peer === null) this.open(from);
    if (from !== this.peer) {
      this.unread.set(from, (this.unread.get(from) ?? 0) + 1);
      this.renderPeople();
    }
  }

  /** Shows the conversation with `clientId`. */
  open(clientId) {
    this.peer = clientId;
    this.unread.delete(clientId);
    this.dom.log.replaceChildren(...(this.logs.get(clientId) ?? []));
    this.dom.log.scrollTop = this.dom.log.scrollHeight;
    this.renderHeader();
    this.renderPeople();
    this.dom.input.focus();
  }

  send(text) {
    const to = this.peer;
    const topic = TOPICS.inbox(to, this.me.clientId);
    const item = messageItem({ name: this.me.name, text, topic, at: new Date(), mine: true, pending: true });
    this.remember(to, item.li);
    const body = encode({ name: this.me.name, text, sentAt: Date.now() });
    this.publish(topic, body, { qos: 1, retain: false }).then(item.acknowledged, (err) => item.failed(err.message));
  }

  remember(clientId, li) {
    const log = this.logs.get(clientId) ?? [];
    log.push(li);
    this.logs.set(clientId, log);
    if (clientId === this.peer) append(this.dom.log, li);
  }

  renderHeader() {
    const { title, hint, input, form } = this.dom;
    const peer = this.people.get(this.peer);
    const online = Boolean(peer);
    title.textContent = `Private chat with ${peer?.name ?? this.peer}`;
    hint.replaceChildren(
      online ? "Point-to-point: you publish to " : `${this.peer} went offline; messages to `,
      el("code", "", TOPICS.inbox(this.peer, this.me.clientId)),
      online ? "" : " would reach nobody",
    );
    input.disabled = !online;
    form.querySelector("button").disabled = !online;
    input.placeholder = online ? `Message ${peer.name} (Enter sends)` : "They went offline";
  }

  renderPeople() {
    const { list, count } = this.dom;
    const ids = [...this.people.keys()].sort((a, b) =>
      a === this.me.clientId ? -1 : b === this.me.clientId ? 1 : this.people.get(a).name.localeCompare(this.people.get(b).name),
    );
    count.textContent = String(ids.length);
    list.replaceChildren(...ids.map((id) => this.personItem(id)));
  }

  personItem(clientId) {
    const { name } = this.people.get(clientId);
    const li = el("li", "person");
    li.dataset.clientId = clientId;
    const self = clientId === this.me.clientId;
    const button = el("button", clientId === this.peer ? "pick active" : "pick");
    button.type = "button";
    button.disabled = self;
    button.append(el("span", "avatar", name.slice(0, 1).toUpperCase()));
    const label = el("span", "label");
    label.append(el("span", "name", self ? `${name} (you)` : name), el("code", "id", clientId));
    button.append(label);
    const unread = this.unread.get(clientId);
    if (unread) button.append(el("span", "badge", String(unread)));
    if (!self) button.addEventListener("click", () => this.open(clientId));
    li.append(button);
    return li;
  }
}
