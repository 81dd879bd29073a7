// The page's topic structure (web/topics.js) without a browser: every topic follows the
// best practices, whatever name a user types, and the filters match what they should.

import assert from "node:assert/strict";
import { test } from "node:test";
import { TOPICS, TOPIC_MAP, clientIdFor, match } from "../../web/topics.js";

const LEVEL = /^[a-z0-9-]+$/;

test("client ids are one topic level of lowercase letters, digits and dashes, whatever the name", () => {
  const names = ["Ann", "Bob Smith", "ÅSA-Öberg", "李雷", "  --  ", "x".repeat(40), "R2-D2!", "#+/"];
  for (const name of names) {
    const id = clientIdFor(name);
    assert.match(id, LEVEL, `${JSON.stringify(name)} gave ${id}`);
    assert.ok(id.length <= 21, `${id} is long`);
  }
  assert.match(clientIdFor("Ann"), /^ann-[0-9a-f]{4}$/);
  assert.match(clientIdFor("ÅSA-Öberg"), /^asa-oberg-[0-9a-f]{4}$/);
  assert.match(clientIdFor("李雷"), /^user-[0-9a-f]{4}$/);
  assert.notEqual(clientIdFor("Ann"), clientIdFor("Ann"));
});

test("every topic is under data/ or cmd/, names a client, and no filter is #", () => {
  const id = "ann-0a1b";
  const topics = [TOPICS.presence(id), TOPICS.telemetry(id), TOPICS.room(id), TOPICS.inbox("bob-2c3d", id)];
  for (const topic of topics) {
    const [prefix, ...levels] = topic.split("/");
    assert.ok(prefix === "data" || prefix === "cmd", topic);
    assert.ok(levels.every((l) => LEVEL.test(l)), topic);
    assert.ok(topic.includes(id), topic);
  }
  // What a client says about itself is data/<its id>/... (the broker's strict policy).
  for (const topic of [TOPICS.presence(id), TOPICS.telemetry(id), TOPICS.room(id)]) {
    assert.equal(topic.split("/")[1], id);
  }
  const filters = [TOPICS.presenceAll, TOPICS.telemetryAll, TOPICS.roomAll, TOPICS.inboxOf(id), ...TOPIC_MAP.map((row) => row[2])];
  for (const filter of filters) assert.ok(!filter.includes("#"), filter);
});

test("the filters pick out the sender and nothing else", () => {
  assert.deepEqual(match(TOPICS.presenceAll, "data/bob-2c3d/presence"), ["bob-2c3d"]);
  assert.deepEqual(match(TOPICS.roomAll, "data/bob-2c3d/room/lobby"), ["bob-2c3d"]);
  assert.deepEqual(match(TOPICS.inboxOf("ann-0a1b"), "cmd/ann-0a1b/inbox/bob-2c3d"), ["bob-2c3d"]);
  assert.equal(match(TOPICS.inboxOf("ann-0a1b"), "cmd/cy-4e5f/inbox/bob-2c3d"), null);
  assert.equal(match(TOPICS.presenceAll, "data/bob-2c3d/telemetry"), null);
  assert.equal(match(TOPICS.roomAll, "data/bob-2c3d/room"), null);
  assert.equal(match(TOPICS.telemetryAll, "data/bob-2c3d/telemetry/extra"), null);
});
