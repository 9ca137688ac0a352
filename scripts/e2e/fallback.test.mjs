// pushlab.js through one real proxy, in headless Chromium: which transport
// the client lands on, and whether every message still arrives once, in
// order. Run by scripts/proxies.sh.
//
//   node fallback.test.mjs NAME PROXY_PORT SERVER_PORT EXPECTED_TRANSPORT
//
// The page is http://127.0.0.1:PROXY_PORT/pushlab.js (so pushlab.js and
// every transport go through the proxy); messages are published straight to
// the server at SERVER_PORT throughout. One ok/FAIL line, with the switches.

import { openBrowser } from "./browser.mjs";
import { judge, publishSteadily, subscribeInPage } from "./delivery.mjs";

const [name, proxyPort, serverPort, expected] = process.argv.slice(2);
if (!expected) {
  console.error("usage: node fallback.test.mjs NAME PROXY_PORT SERVER_PORT EXPECTED_TRANSPORT");
  process.exit(2);
}
const t = Date.now();
const browser = await openBrowser("pushlab-fallback-");
let problems = [];
let line = "";
try {
  const sub = await subscribeInPage(browser, +proxyPort, {});
  // Long enough for the event stream's first-byte bound (5 s) to pass.
  const sent = await publishSteadily(() => serverPort, 200, 40);
  const r = await sub.collect(sent.at(-1).id);
  ({ problems, line } = judge(sent, r, { final: expected }));
} catch (e) {
  problems.push(e.message);
} finally {
  await browser.close();
}
const ok = problems.length === 0;
console.log(`  ${ok ? "ok  " : "FAIL"} ${name} → ${expected} (${((Date.now() - t) / 1000).toFixed(1)}s): ${problems.join("; ")}${problems.length ? " | " : ""}${line}`);
process.exit(ok ? 0 : 1);
