// Broadcast: one room every page subscribes to; each message goes to all of them.

import { TOPICS } from "./topics.js";
import { append, encode, messageItem, onSubmit } from "./messages.js";

export class Room {
  /** `me` is `{ name, clientId }`; `dom` holds the log and the form. */
  constructor(me, publish, dom) {
    this.me = me;
    this.publish = publish;
    this.dom = dom;
    onSubmit(dom.form, (text) => this.send(text));
  }

  /** A room message from `from`; this page's own come back too and were shown when sent. */
  incoming(from, topic, body) {
    if (from === this.me.clientId) return;
    const { li } = messageItem({ name: String(body.name ?? from), text: String(body.text ?? ""), topic, at: new Date() });
    append(this.dom.log, li);
  }

  send(text) {
    const topic = TOPICS.room(this.me.clientId);
    const item = messageItem({ name: this.me.name, text, topic, at: new Date(), mine: true, pending: true });
    append(this.dom.log, item.li);
    const body = encode({ name: this.me.name, text, sentAt: Date.now() });
    this.publish(topic, body, { qos: 1, retain: false }).then(item.acknowledged, (err) => item.failed(err.message));
  }
}
