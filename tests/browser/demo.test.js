// The demo page (web/) in headless Chromium against a real `midge`: three people in three
// browser contexts chat privately, talk in the room, watch the dashboard, one leaves, and
// the broker is killed and started again under them. Run: node --test tests/browser/
// (needs target/debug/midge, web/pkg/ from scripts/build-wasm.sh, and /usr/bin/chromium).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { checkClientBuilt, launchChromium, openPage, screenshotDir, startBroker, until } from "./harness.js";

const SHOTS = screenshotDir();
/** Topics as the best practices want them: two prefixes, then lowercase, digits and dashes. */
const TOPIC_RULE = /^(data|cmd)(\/[a-z0-9-]+)+$/;
/** The broker holds the page to the topic best practices (no `#`, `data/<client-id>/...`). */
const CONFIG = 'topic_policy = "strict"\n';
/** Chromium's own report of a refused WebSocket: expected while the broker is down. */
const REFUSED = /WebSocket connection to '.*' failed/;

describe("the demo page", { timeout: 180_000 }, () => {
  let broker;
  let browser;
  let url;
  const people = {}; // name -> { context, page, errors, clientId }
  let shot = 0;
  const outages = []; // [from, to] in Date.now() time: while the broker was down

  const snap = async (name, who) => {
    shot += 1;
    const file = join(SHOTS, `${String(shot).padStart(2, "0")}-${name}.png`);
    const { page } = people[who];
    await page.screenshot({ path: file, fullPage: page.viewportSize().width > 600 });
  };

  const join_ = async (name, viewport) => {
    const person = await openPage(browser, url, viewport);
    const { page } = person;
    people[name] = person;
    await until(page, `${name}'s page loading the client`, () => !document.getElementById("join-button").disabled);
    await page.fill("#name", name);
    if (shot === 0) await snap("join", name);
    await page.press("#name", "Enter");
    await until(page, `${name}'s client id`, () => document.getElementById("me-id").textContent !== "");
    person.clientId = await page.textContent("#me-id");
    assert.match(person.clientId, /^[a-z0-9-]+$/);
    await until(page, `${name} connected`, () => document.getElementById("status").dataset.state === "connected");
    return person;
  };

  /** The client ids in `name`'s list of who is online. */
  const online = (name) => people[name].page.$$eval("#people li", (lis) => lis.map((li) => li.dataset.clientId).sort());

  const waitOnline = (name, ids, what) =>
    until(
      people[name].page,
      what,
      (want) => {
        const have = [...document.querySelectorAll("#people li")].map((li) => li.dataset.clientId).sort();
        return JSON.stringify(have) === JSON.stringify(want);
      },
      [...ids].sort(),
    );

  /** Waits for `text` in the log `logId` of `name`'s page and returns the topic shown with it. */
  const waitMessage = async (name, logId, text) => {
    const { page } = people[name];
    await until(
      page,
      `"${text}" in ${name}'s ${logId}`,
      ([id, t]) => [...document.querySelectorAll(`#${id} .msg .text`)].some((p) => p.textContent === t),
      [logId, text],
    );
    return page.$$eval(
      `#${logId} .msg`,
      (lis, t) => lis.find((li) => li.querySelector(".text").textContent === t).querySelector(".topic").textContent,
      text,
    );
  };

  const send = async (name, inputId, text) => {
    await people[name].page.fill(`#${inputId}`, text);
    await people[name].page.press(`#${inputId}`, "Enter");
  };

  before(async () => {
    checkClientBuilt();
    broker = await startBroker({ config: CONFIG });
    url = `http://127.0.0.1:${broker.httpPort}/`;
    browser = await launchChromium();
    console.log(`broker pid ${broker.pid}, page ${url}, screenshots in ${SHOTS}`);
  });

  after(async () => {
    await browser?.close();
    await broker?.stop("SIGKILL");
  });

  it("two people pick names and see each other online; a third joins on a phone", async () => {
    await join_("Ann");
    await join_("Bob", { width: 390, height: 844 });
    await join_("Cy");
    const ids = ["Ann", "Bob", "Cy"].map((n) => people[n].clientId);
    for (const name of ["Ann", "Bob", "Cy"]) await waitOnline(name, ids, `all three in ${name}'s list`);
    for (const id of ids) assert.match(`data/${id}/presence`, TOPIC_RULE);
    await snap("ann-sees-everyone-online", "Ann");
    const { scrollWidth, innerWidth } = await people.Bob.page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
    }));
    assert.ok(scrollWidth <= innerWidth, `the phone page scrolls sideways (${scrollWidth} > ${innerWidth})`);
    await snap("bob-on-a-phone", "Bob");
  });

  it("Ann and Bob exchange private messages both ways, with Enter", async () => {
    const { Ann, Bob } = people;
    await Ann.page.click(`#people li[data-client-id="${Bob.clientId}"] button`);
    await send("Ann", "chat-input", "Hi Bob, only you can read this");
    const topic = await waitMessage("Bob", "chat-log", "Hi Bob, only you can read this");
    assert.equal(topic, `cmd/${Bob.clientId}/inbox/${Ann.clientId}`);
    assert.match(topic, TOPIC_RULE);
    await until(Ann.page, "Ann's message acknowledged", () => document.querySelector("#chat-log .msg.mine .ack").textContent.includes("✓"));
    await send("Bob", "chat-input", "Hi Ann, got it");
    const back = await waitMessage("Ann", "chat-log", "Hi Ann, got it");
    assert.equal(back, `cmd/${Ann.clientId}/inbox/${Bob.clientId}`);
    await snap("private-chat-ann", "Ann");
    await snap("private-chat-bob", "Bob");
  });

  it("a room message reaches everyone; Cy never sees the private ones", async () => {
    await send("Ann", "room-input", "Hello room, Ann here");
    for (const name of ["Bob", "Cy"]) {
      const topic = await waitMessage(name, "room-log", "Hello room, Ann here");
      assert.equal(topic, `data/${people.Ann.clientId}/room/lobby`);
    }
    await send("Cy", "room-input", "Cy says hi to all");
    for (const name of ["Ann", "Bob"]) await waitMessage(name, "room-log", "Cy says hi to all");
    const cy = people.Cy.page;
    assert.equal(await cy.$$eval("#chat-log .msg", (lis) => lis.length), 0, "Cy got a private message");
    const text = await cy.textContent("body");
    assert.ok(!text.includes("only you can read this") && !text.includes("got it"), "a private message showed on Cy's page");
    await snap("room-cy", "Cy");
  });

  it("the dashboard shows live readings from every open page", async () => {
    const ids = ["Ann", "Bob", "Cy"].map((n) => people[n].clientId);
    for (const name of ["Ann", "Bob", "Cy"]) {
      await until(
        people[name].page,
        `five readings with latencies from each page on ${name}'s dashboard`,
        (want) =>
          want.every((id) => {
            const card = document.querySelector(`#dash .reading[data-client-id="${id}"]`);
            return card && Number(card.dataset.readings) >= 5 && /ms$/.test(card.querySelector(".latency").textContent);
          }),
        ids,
      );
    }
    const cards = await people.Ann.page.$$eval("#dash .reading", (cs) => cs.map((c) => [c.dataset.clientId, c.querySelector(".topic").textContent]));
    for (const [id, topic] of cards) assert.equal(topic, `data/${id}/telemetry`);
    await snap("dashboard-ann", "Ann");
  });

  it("closing Cy's browser takes Cy off the others' lists (will + retained presence)", async () => {
    const gone = people.Cy.clientId;
    await people.Cy.context.close();
    const left = [people.Ann.clientId, people.Bob.clientId];
    await waitOnline("Ann", left, `${gone} gone from Ann's list`);
    await waitOnline("Bob", left, `${gone} gone from Bob's list`);
    await snap("cy-left", "Ann");
    const cy = people.Cy;
    delete people.Cy;
    assert.deepEqual(cy.errors, [], "console errors on Cy's page");
  });

  it("after the broker is killed and started again, the pages reconnect and chat again", async () => {
    const { tcpPort, httpPort } = broker;
    const outage = [Date.now(), Infinity];
    outages.push(outage);
    await broker.stop("SIGKILL");
    for (const name of ["Ann", "Bob"]) {
      await until(people[name].page, `${name} noticing the broker is gone`, () =>
        ["waiting", "reconnecting"].includes(document.getElementById("status").dataset.state),
      );
    }
    await until(people.Ann.page, "a countdown in Ann's status", () => /reconnecting in \d+ s/.test(document.getElementById("status-text").textContent));
    await snap("broker-down-ann", "Ann");
    broker = await startBroker({ tcpPort, httpPort, config: CONFIG });
    for (const name of ["Ann", "Bob"]) {
      await until(people[name].page, `${name} connected again`, () => document.getElementById("status").dataset.state === "connected");
    }
    outage[1] = Date.now();
    const both = [people.Ann.clientId, people.Bob.clientId];
    await waitOnline("Ann", both, "Ann's list rebuilt from the new presence messages");
    await waitOnline("Bob", both, "Bob's list rebuilt from the new presence messages");
    await send("Bob", "chat-input", "Still there after the restart?");
    const topic = await waitMessage("Ann", "chat-log", "Still there after the restart?");
    assert.equal(topic, `cmd/${people.Ann.clientId}/inbox/${people.Bob.clientId}`);
    await send("Ann", "chat-input", "Yes, no reload needed");
    await waitMessage("Bob", "chat-log", "Yes, no reload needed");
    await send("Ann", "room-input", "Room works again too");
    await waitMessage("Bob", "room-log", "Room works again too");
    await snap("after-restart-ann", "Ann");
    await snap("after-restart-bob", "Bob");
  });

  it("a page that joins while the broker is down keeps trying, and connects once it is back", async () => {
    const { tcpPort, httpPort } = broker;
    const dee = await openPage(browser, url, { width: 390, height: 844 });
    people.Dee = dee;
    await until(dee.page, "Dee's page loading the client", () => !document.getElementById("join-button").disabled);
    const outage = [Date.now(), Infinity];
    outages.push(outage);
    await broker.stop("SIGKILL");
    await dee.page.fill("#name", "Dee");
    await dee.page.press("#name", "Enter");
    await until(dee.page, "a countdown on Dee's page", () => /reconnecting in \d+ s/.test(document.getElementById("status-text").textContent));
    assert.match(await dee.page.textContent("#notice"), /last attempt failed/);
    assert.ok(await dee.page.isVisible("#notice"), "Dee is not told why the page is not connected");
    await snap("dee-waits-for-the-broker", "Dee");
    broker = await startBroker({ tcpPort, httpPort, config: CONFIG });
    await until(dee.page, "Dee connected", () => document.getElementById("status").dataset.state === "connected");
    outage[1] = Date.now();
    assert.ok(!(await dee.page.isVisible("#notice")), "the notice outlived the failure");
    dee.clientId = await dee.page.textContent("#me-id");
    for (const name of ["Ann", "Bob"]) await until(people[name].page, `everyone connected again on ${name}'s page`, () => document.getElementById("status").dataset.state === "connected");
    const all = [people.Ann.clientId, people.Bob.clientId, dee.clientId];
    for (const name of ["Ann", "Bob", "Dee"]) await waitOnline(name, all, `Ann, Bob and Dee in ${name}'s list`);
    await send("Dee", "room-input", "Dee made it");
    for (const name of ["Ann", "Bob"]) await waitMessage(name, "room-log", "Dee made it");
    await snap("dee-joined", "Dee");
  });

  it("no console errors on any page (but the browser's own report of refused reconnects)", () => {
    for (const [name, { errors }] of Object.entries(people)) {
      const unexpected = errors.filter(
        (e) => !(REFUSED.test(e.text) && outages.some(([from, to]) => e.at >= from && e.at <= to)),
      );
      assert.deepEqual(unexpected, [], `console errors on ${name}'s page`);
    }
  });
});
