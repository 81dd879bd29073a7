// The options objects of the JS API (`connect`, `publish`, `subscribe`, `messages`), and
// the filters of `subscribe` and `unsubscribe`, read and checked here, in JS, for
// src/options.rs: walking a JS object is JS's own work, and costs the .wasm more than this
// file costs the glue. Every field is optional; the names are MQTT.js's where MQTT.js has
// one. A wrong option is a readable error naming it (by its path, like `will.qos`), never a
// silently ignored field.
//
// A reader hands Rust two arrays: `slots`, the values in a fixed layout (one slot per
// option, in the order of the tables below, depth first; an object's own slot holds its
// path when it is given), and `checks`, the strings the codec checks, as triples
// [check, path, text] in the order they were read (TOPIC, UTF8 or TOPIC_FILTER). It
// returns the first error it met, or undefined, and stops there: what it read before is in
// the arrays, so Rust runs the codec's checks first and then reports this error, the order
// in which the errors arise when reading front to back.

// What an option's value must be. The first three are also the codec's checks in `checks`,
// as src/options.rs numbers them.
const TOPIC = 0; // a topic name
const UTF8 = 1; // an MQTT UTF-8 string
const TOPIC_FILTER = 2; // (a filter of `subscribe` or `unsubscribe`, not an option)
const TEXT = 3;
const FLAG = 4;
const NUMBER = 5;
const QOS = 6;
const PAYLOAD = 7; // a string, Uint8Array or ArrayBuffer, handed over as a Uint8Array
const PAIRS = 8; // user properties
const ANY = 9;
// Whole numbers from the first to the second.
const U16 = [0, 65535];
const U32 = [0, 4294967295];
const POSITIVE = [1, 4294967295];

// A message's properties (a will's too, after its delay).
const MESSAGE = {
  payloadFormatIndicator: FLAG,
  messageExpiryInterval: U32,
  contentType: UTF8,
  responseTopic: TOPIC,
  correlationData: PAYLOAD,
  userProperties: PAIRS,
};
const CONNECT = {
  clientId: TEXT,
  protocolVersion: [0, 255],
  clean: FLAG,
  keepalive: U16,
  username: TEXT,
  password: PAYLOAD,
  will: {
    topic: TOPIC,
    payload: PAYLOAD,
    qos: QOS,
    retain: FLAG,
    properties: { willDelayInterval: U32, ...MESSAGE },
  },
  reconnect: ANY,
  properties: {
    sessionExpiryInterval: U32,
    receiveMaximum: [1, 65535],
    maximumPacketSize: POSITIVE,
    topicAliasMaximum: U16,
    requestResponseInformation: FLAG,
    requestProblemInformation: FLAG,
    userProperties: PAIRS,
  },
  connectTimeout: POSITIVE,
  queueLimit: U32,
  autoAssignTopicAlias: FLAG,
};
const BACKOFF = { initialDelayMs: U32, maxDelayMs: U32, jitter: NUMBER };
const PUBLISH = { qos: QOS, retain: FLAG, properties: MESSAGE };
const SUBSCRIBE = {
  qos: QOS,
  nl: FLAG,
  rap: FLAG,
  rh: [0, 2],
  properties: { subscriptionIdentifier: [1, 268435455], userProperties: PAIRS },
};
// Slots a filter of `subscribe` takes: its name, then its own SUBSCRIBE options.
const FILTER = 9;

const path = (base, key) => (base ? base + "." + key : key);

// Reads `value` (of the option `what`) as `kind` into slots[at] (and the slots after it for
// an object: the object's own slot, then its fields'); returns the next slot.
function walk(value, what, kind, slots, at, checks) {
  const given = value != null;
  const wrong = (why) => {
    throw what + why;
  };
  if (typeof kind == "object" && !Array.isArray(kind)) {
    const keys = Object.keys(kind);
    if (given) {
      if (typeof value != "object" || Array.isArray(value)) {
        throw path(what, "options") + " must be an object";
      }
      for (const [key] of Object.entries(value)) {
        if (!keys.includes(key)) {
          throw "unknown option " + path(what, key) + "; the options here are " + keys.join(", ");
        }
      }
      slots[at] = what;
    }
    at++;
    for (const key of keys) at = walk(given ? value[key] : undefined, path(what, key), kind[key], slots, at, checks);
    return at;
  }
  if (!given) return at + 1;
  if (Array.isArray(kind)) {
    if (typeof value != "number") wrong(" must be a number");
    if (!(Number.isInteger(value) && value >= kind[0] && value <= kind[1])) {
      wrong(" must be a whole number from " + kind[0] + " to " + kind[1]);
    }
  } else if (kind == FLAG) {
    if (typeof value != "boolean") wrong(" must be true or false");
  } else if (kind == NUMBER) {
    if (typeof value != "number") wrong(" must be a number");
  } else if (kind == QOS) {
    if (value !== 0 && value !== 1 && value !== 2) wrong(" must be 0, 1 or 2");
  } else if (kind == PAYLOAD) {
    value = bytes(value, what + ": ");
  } else if (kind == PAIRS) {
    // `{ name: value }` or `{ name: [value, ...] }`, as MQTT.js has them.
    if (typeof value != "object") wrong(" must be an object of strings");
    const pairs = (slots[at] = []);
    for (const [name, values] of Object.entries(value)) {
      for (const one of Array.isArray(values) ? values : [values]) {
        if (typeof one != "string") wrong("." + name + " must be a string or an array of strings");
        checks.push(UTF8, what, name, UTF8, what, one);
        pairs.push(name, one);
      }
    }
    return at + 1;
  } else if (kind != ANY) {
    if (typeof value != "string") wrong(" must be a string");
    if (kind < TOPIC_FILTER) checks.push(kind, what, value);
  }
  slots[at] = value;
  return at + 1;
}

// A payload: a string (sent as UTF-8), a Uint8Array or an ArrayBuffer, as a Uint8Array.
function bytes(value, what) {
  if (typeof value == "string") return new TextEncoder().encode(value);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw what + "a payload must be a string, a Uint8Array or an ArrayBuffer";
}

// Runs a reader: the error it threw (a string), or undefined.
function run(read) {
  try {
    read();
  } catch (e) {
    if (typeof e != "string") throw e;
    return e;
  }
}

// A filter or an array of filters, each a string, at least one.
function filterList(filters, slots, at, checks, stride) {
  const list = typeof filters == "string" ? [filters] : filters;
  for (const filter of list) if (typeof filter != "string") throw "every filter must be a string";
  if (!list.length) throw "at least one topic filter is needed";
  for (const filter of list) {
    checks.push(TOPIC_FILTER, "", filter);
    slots[at] = filter;
    at += stride;
  }
  return at;
}

// `connect(url, options)`. Slots 1 to 31 as CONNECT, `reconnect` an object's at 32 to 35.
export function readConnect(options, slots, checks) {
  return run(() => {
    walk(options, "", CONNECT, slots, 0, checks);
    const version = slots[2];
    if (version != null && version != 4 && version != 5) {
      throw "protocolVersion must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0)";
    }
    if (version == 4 && !slots[1]) {
      // 3.1.1 servers need not accept an empty client id; make one up, as MQTT.js does.
      slots[1] = "midge-" + ((Math.random() * 4294967295) >>> 0).toString(16).padStart(8, "0");
    }
    if (slots[7] != null && slots[8] == null) throw "will.topic is missing";
    const reconnect = slots[20];
    if (reconnect != null && typeof reconnect != "boolean") {
      walk(reconnect, "reconnect", BACKOFF, slots, 32, checks);
      const jitter = slots[35];
      if (jitter != null && !(jitter >= 0 && jitter <= 1)) throw "reconnect.jitter must be from 0 to 1";
    }
  });
}

// `publish(topic, payload, options)`: the payload in slot 0, then PUBLISH from slot 1.
export function readPublish(payload, options, slots, checks) {
  return run(() => {
    if (payload != null) slots[0] = bytes(payload, "");
    walk(options, "", PUBLISH, slots, 1, checks);
  });
}

// `subscribe(filters, options)` (and `messages(filter, options)`): the common options as
// SUBSCRIBE from slot 0, then FILTER slots per filter from slot 8, each filter's options
// completed with the common ones.
export function readSubscribe(filters, options, slots, checks) {
  return run(() => {
    walk(options, "", SUBSCRIBE, slots, 0, checks);
    let at = 8;
    if (typeof filters == "string" || Array.isArray(filters)) {
      at = filterList(filters, slots, at, checks, FILTER);
    } else if (typeof filters == "object" && filters) {
      for (const [filter, own] of Object.entries(filters)) {
        walk(own, filter, SUBSCRIBE, slots, at + 1, checks);
        checks.push(TOPIC_FILTER, "", filter);
        slots[at] = filter;
        at += FILTER;
      }
      if (at == 8) throw "at least one topic filter is needed";
    } else {
      throw "expected a topic filter, an array of them, or an object of them";
    }
    for (let filter = 8; filter < at; filter += FILTER) {
      for (let i = 1; i < 5; i++) if (slots[filter + 1 + i] === undefined) slots[filter + 1 + i] = slots[i];
    }
  });
}

// `unsubscribe(filters)`: the filters from slot 0.
export function readFilters(filters, slots, checks) {
  return run(() => {
    if (typeof filters != "string" && !Array.isArray(filters)) {
      throw "expected a topic filter or an array of them";
    }
    filterList(filters, slots, 0, checks, 1);
  });
}
