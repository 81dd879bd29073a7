// What the browser tests stand on: a real `midge` on free ports (stopped by its pid, pass
// or fail), Debian's Chromium through playwright-core, console watching and screenshots.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const MIDGE = process.env.MIDGE_BIN ?? join(ROOT, "target", "debug", "midge");
/** The page's directory (with the client package in pkg/): web/ unless MIDGE_WEB says otherwise. */
const WEB = process.env.MIDGE_WEB ?? join(ROOT, "web");
const LISTENING = /listening for (MQTT|HTTP) on (?:tcp|http):\/\/127\.0\.0\.1:(\d+)/;
/** How long any one condition may take before the test fails. */
export const WAIT_MS = 15_000;

/** Every broker process started here, so that an exit kills what a failure left running. */
const running = new Set();
/** Every temporary directory made here, removed on exit, pass or fail. */
const temporary = new Set();
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

/** A new directory under the system's temporary one, removed when the process exits. */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporary.add(dir);
  return dir;
}

/**
 * Starts `midge --web web` on the given ports (0: free ones), with `config` as its TOML
 * file if given, and resolves once it logged both listening addresses, to
 * `{ tcpPort, httpPort, pid, stop(signal) }`.
 */
export function startBroker({ tcpPort = 0, httpPort = 0, config } = {}) {
  if (!existsSync(MIDGE)) {
    throw new Error(`${MIDGE} is missing: cargo build -p midge-broker --locked (or set MIDGE_BIN)`);
  }
  const args = ["--tcp", `127.0.0.1:${tcpPort}`, "--http", `127.0.0.1:${httpPort}`, "--web", WEB];
  if (config !== undefined) {
    const file = join(tempDir("midge-browser-"), "midge.toml");
    writeFileSync(file, config);
    args.push("--config", file);
  }
  const proc = spawn(MIDGE, args, {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info", NO_COLOR: "1" },
  });
  running.add(proc);
  const exited = new Promise((done) => proc.once("exit", done)).then(() => running.delete(proc));
  const stop = async (signal = "SIGTERM") => {
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, signal);
    await exited;
  };
  return new Promise((ready, fail) => {
    const ports = {};
    const log = [];
    let buffered = "";
    let started = false;
    const timer = setTimeout(() => {
      stop("SIGKILL");
      fail(new Error(`midge did not start within 10 s:\n${log.join("\n")}`));
    }, 10_000);
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`midge exited (${code ?? signal}) before listening:\n${log.join("\n")}`));
    });
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (chunk) => {
      const lines = (buffered + chunk).split("\n");
      buffered = lines.pop();
      for (const line of lines) {
        log.push(line);
        const m = LISTENING.exec(line);
        if (m) ports[m[1]] = Number(m[2]);
        if (ports.MQTT && ports.HTTP && !started) {
          started = true;
          clearTimeout(timer);
          ready({ tcpPort: ports.MQTT, httpPort: ports.HTTP, pid: proc.pid, stop, log });
        }
      }
    });
  });
}

/** Fails early, and says what to run, when the page's client package is not built. */
export function checkClientBuilt() {
  if (!existsSync(join(WEB, "pkg", "midge_mqtt.js"))) {
    throw new Error(`${join(WEB, "pkg")} holds no midge-mqtt build: run scripts/build-wasm.sh first`);
  }
}

/** Debian's Chromium, headless, with nothing that reaches out to the network. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/** A page in a context of its own, whose console errors and uncaught exceptions are kept in `errors`. */
export async function openPage(browser, url, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push({ at: Date.now(), text: msg.text() });
  });
  page.on("pageerror", (err) => errors.push({ at: Date.now(), text: `uncaught: ${err.message}` }));
  await page.goto(url);
  return { context, page, errors };
}

/** Waits until `fn(arg)` is truthy in the page, failing with `what` after WAIT_MS. */
export async function until(page, what, fn, arg) {
  try {
    return await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 100 });
  } catch (err) {
    throw new Error(`timed out waiting for ${what} (${err.message.split("\n")[0]})`);
  }
}

/** Where the screenshots go (printed by the test), without those of an earlier run. */
export function screenshotDir() {
  const dir = process.env.MIDGE_SCREENSHOTS ?? join(ROOT, "target", "screenshots", "demo");
  mkdirSync(dir, { recursive: true });
  for (const file of readdirSync(dir)) if (/^\d\d-[a-z-]+\.png$/.test(file)) rmSync(join(dir, file));
  return dir;
}
