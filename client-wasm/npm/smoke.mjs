// Run by tests/e2e/test_npm_package.py in a scratch project where the packed midge-mqtt
// tarball was installed: checks what a user gets from `npm install midge-mqtt`.
//
//   node --experimental-wasm-modules smoke.mjs
//
// The web build is loaded with its .wasm bytes (Node has no fetch of file: URLs); the bundler
// build imports its .wasm as a module, which Node does behind --experimental-wasm-modules.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const manifest = JSON.parse(readFileSync(require.resolve("midge-mqtt/package.json"), "utf8"));
assert.equal(manifest.name, "midge-mqtt");

const web = await import("midge-mqtt");
assert.equal(typeof web.default, "function", "init is the default export");
assert.equal(typeof web.connect, "function");
assert.equal(typeof web.MqttClient, "function");
const wasmPath = require.resolve("midge-mqtt/midge_mqtt_bg.wasm");
await web.default({ module_or_path: readFileSync(wasmPath) });

const bundler = await import("midge-mqtt/bundler");
assert.equal(typeof bundler.connect, "function", "the bundler build needs no init");

for (const [name, build] of [["web", web], ["bundler", bundler]]) {
  // Bad options are a readable Error, not a panic; nothing here needs a broker.
  await assert.rejects(
    build.connect("ws://127.0.0.1:1/mqtt", { protocolVersion: 7 }),
    (e) => e instanceof Error && /protocolVersion must be 4 .* or 5/.test(e.message),
    `${name}: protocolVersion 7`,
  );
  await assert.rejects(
    build.connect("ws://127.0.0.1:1/mqtt", { keepAlive: 30 }),
    (e) => e instanceof Error && /unknown option keepAlive; the options here are .*keepalive/.test(e.message),
    `${name}: a misspelt option`,
  );
  console.log(`smoke: ${name} build ok`);
}
