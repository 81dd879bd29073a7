// midge-mqtt inside a module Web Worker (issue 4: "works inside a Web Worker"): a page that
// is only a worker, served by a real `midge` with the package beside it, in Chromium.

import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const { ROOT, tempDir } = await import("./harness.js");
// The harness serves MIDGE_WEB: here, a directory with the worker page and the package.
const web = tempDir("midge-worker-");
cpSync(join(ROOT, "tests", "browser", "worker"), web, { recursive: true });
cpSync(join(ROOT, "web", "pkg"), join(web, "pkg"), { recursive: true });
process.env.MIDGE_WEB = web;
const { startBroker, launchChromium, openPage, until } = await import(`./harness.js?worker`);

test("midge-mqtt connects, subscribes and publishes from a Web Worker", async () => {
  const broker = await startBroker();
  const browser = await launchChromium();
  try {
    const { page, errors } = await openPage(browser, `http://127.0.0.1:${broker.httpPort}/`);
    await until(page, "the worker's report", () => window.result !== undefined);
    const result = await page.evaluate(() => window.result);
    assert.deepEqual(result, { ok: true, text: "from a worker" });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await broker.stop();
  }
});
