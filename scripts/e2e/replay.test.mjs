// A real browser session of the demo page for scripts/replay.sh to record
// and replay: Debian's Chromium, headless, driven by playwright-core.
//
//   node replay.test.mjs URL
//
// Opens the page (all four transports connect), publishes from the page's
// box, drops the SSE, WebSocket and long-poll connections (publishing while
// each is down), sends a message from the WebSocket's chat box, and waits
// until every panel has every message; then closes the browser. Prints one
// line per step and exits non-zero if a step fails.

import { openBrowser } from "./browser.mjs";

const [url] = process.argv.slice(2);
if (!url) {
  console.error("usage: node replay.test.mjs URL");
  process.exit(2);
}
const started = Date.now();
const step = (what) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);

const browser = await openBrowser("pushlab-replay-", { viewport: { width: 1280, height: 800 } });
const { page } = browser;
const allReceived = (ids) => page.waitForFunction((ids) => Object.values(window.pushlab.panels)
  .every((p) => ids.every((id) => p.seen.has(id))), ids, { timeout: 10000, polling: 50 });
const publishN = (n, text) => page.evaluate(async ({ n, text }) => {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await window.pushlab.publish(`${text} ${i}`));
  return ids;
}, { n, text });

let ok = false;
try {
  await page.goto(`${url}?topic=replay`);
  await page.waitForFunction(() => window.pushlab && window.pushlab.ready
    && ["long_poll", "sse", "ws"].every((k) => window.pushlab.panels[k].state === "up"), null, { timeout: 10000 });
  step("page loaded, all four transports connected");

  await page.fill('[data-testid="publish-text"]', "typed into the page");
  await page.click('[data-testid="publish-send"]');
  await page.waitForFunction(() => window.pushlab.published.length === 1);
  const ids = [...(await page.evaluate(() => window.pushlab.published)), ...(await publishN(5, "burst"))];
  await allReceived(ids);
  step("6 messages published from the page reached all four panels");

  for (const key of ["sse", "ws", "long_poll"]) {
    await page.click(`[data-testid="drop-${key}"]`);
    const during = await publishN(2, `while ${key} is down`);
    await page.waitForFunction((k) => window.pushlab.panels[k].state === "up", key, { timeout: 10000 });
    await allReceived(during);
    step(`${key}: dropped, 2 published while down, recovered`);
  }

  const before = await page.evaluate(() => window.pushlab.panels.ws.ids.length);
  await page.fill('[data-testid="ws-text"]', "hello over the socket");
  await page.press('[data-testid="ws-text"]', "Enter");
  await page.waitForFunction((n) => window.pushlab.panels.ws.ids.length > n, before, { timeout: 5000 });
  const chatId = await page.evaluate(() => window.pushlab.panels.ws.ids.at(-1));
  await allReceived([chatId]);
  step("a message sent over the WebSocket reached all four panels");
  ok = true;
} catch (e) {
  console.log(`browser session failed: ${e.message}`);
} finally {
  await browser.close();
}
process.exit(ok ? 0 : 1);
