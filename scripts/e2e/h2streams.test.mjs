// "SSE only works over HTTP/1.1", measured: twenty EventSource streams to
// one origin in headless Chromium, through nginx, once over HTTP/1.1 and
// once over HTTP/2 (TLS with the test's self-signed certificate, trusted by
// its SPKI hash). Run by scripts/proxies.sh.
//
//   node h2streams.test.mjs HTTP1_ORIGIN HTTP2_ORIGIN SERVER_BASE SPKI_SHA256
//
// Per protocol: how many streams opened within 3 s, how many of those got
// one message published to their topic, and (HTTP/1.1) whether the seventh
// opened once one of the six was closed; plus the protocol Chromium
// negotiated. Expected: HTTP/1.1 six open, the seventh waits; HTTP/2 all
// twenty. One ok/FAIL line per protocol.

import { openBrowser } from "./browser.mjs";

const [h1, h2, server, spki] = process.argv.slice(2);
if (!spki) {
  console.error("usage: node h2streams.test.mjs HTTP1_ORIGIN HTTP2_ORIGIN SERVER_BASE SPKI_SHA256");
  process.exit(2);
}
const N = 20;
const browser = await openBrowser("pushlab-h2-", { args: [`--ignore-certificate-errors-spki-list=${spki}`] });
let failed = 0;

async function measure(origin, topic) {
  const page = await browser.context.newPage();
  await page.goto(`${origin}/pushlab.js`);
  await page.evaluate(([n, topic]) => {
    window.streams = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const es = new EventSource(`/events?topic=${topic}`);
      const s = { es, opened: null, got: 0 };
      es.onopen = () => (s.opened = Math.round(performance.now() - t0));
      es.onmessage = () => s.got++;
      window.streams.push(s);
    }
  }, [N, topic]);
  await page.waitForTimeout(3000);
  await fetch(`${server}/publish?topic=${topic}`, { method: "POST", body: "to every stream" });
  await page.waitForTimeout(1000);
  const r = await page.evaluate(async () => {
    const opened = window.streams.filter((s) => s.opened != null);
    const out = {
      opened: opened.length,
      received: window.streams.filter((s) => s.got > 0).length,
      openTimes: opened.map((s) => s.opened),
      protocol: "",
    };
    // Close one open stream: a waiting one should take its connection.
    const waiting = window.streams.find((s) => s.opened == null);
    if (waiting) {
      opened[0].es.close();
      const t = performance.now();
      while (waiting.opened == null && performance.now() - t < 3000) await new Promise((ok) => setTimeout(ok, 50));
      out.seventhAfterClose = waiting.opened != null;
    }
    for (const s of window.streams) s.es.close();
    // Chromium's own word on the protocol: a fetch's resource timing (after
    // the streams are closed: over HTTP/1.1 this fetch would wait too).
    await (await fetch("/stats", { cache: "no-store" })).text();
    await new Promise((ok) => setTimeout(ok, 200));
    out.protocol = performance.getEntriesByType("resource").filter((e) => e.name.endsWith("/stats")).at(-1)?.nextHopProtocol;
    return out;
  });
  await page.close();
  return r;
}

const h1r = await measure(h1, "h1streams");
const h1ok = h1r.opened === 6 && h1r.received === 6 && h1r.seventhAfterClose === true && h1r.protocol === "http/1.1";
console.log(`  ${h1ok ? "ok  " : "FAIL"} ${N} EventSources over ${h1r.protocol}: ${h1r.opened} opened (at ${h1r.openTimes.join(", ")} ms), ` +
  `${h1r.received} got the message, the ${h1r.opened + 1}th opened ${h1r.seventhAfterClose ? "once one was closed" : "never"}`);
if (!h1ok) failed++;

const h2r = await measure(h2, "h2streams");
const h2ok = h2r.opened === N && h2r.received === N && h2r.protocol === "h2";
console.log(`  ${h2ok ? "ok  " : "FAIL"} ${N} EventSources over ${h2r.protocol}: ${h2r.opened} opened (the last at ${Math.max(...h2r.openTimes)} ms), ${h2r.received} got the message`);
if (!h2ok) failed++;

await browser.close();
process.exit(failed ? 1 : 0);
