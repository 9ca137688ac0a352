// pushlab.js in a real browser (Debian's Chromium, headless, driven by
// playwright-core), with messages published throughout each case:
//
//   node client.test.mjs PUSHLAB_BIN PIDFILE [case...]
//
//   normal    the default transports, nothing in the way: WebSocket
//   no-ws     a proxy that refuses WebSocket upgrades: lands on SSE
//   ws-back   upgrades refused, then allowed again: SSE, then back to
//             WebSocket when the client retries it (retryBetter 1.5 s)
//   cuts      a proxy that cuts every connection every ~3 s (WebSocket)
//   sse-life  upgrades refused and --sse-max-lifetime 2s: SSE reconnects
//   lp-cuts   long polling only, every connection cut every 2.5 s (Chromium
//             replays a request whose idle keep-alive socket was cut, so
//             the client may see no error at all)
//   restart   the server restarted mid-stream: onReset, then streaming again
//   rolling   a rolling restart with --data-dir: the old server gets SIGTERM
//             (streams ended, WebSockets closed 1001, holds answered), a new
//             one starts on the same directory and the proxy moves to it:
//             no reset, every message exactly once, in order
//   rolling-redis  two nodes on one Redis (--redis) behind the proxy, both
//             serving; each in turn gets SIGTERM and is started again while
//             the proxy sends the page to the other: no reset, every
//             message exactly once, in order
//   binary-ws, binary-sse, binary-long-poll, binary-poll   text and
//             binary messages (every third is bytes that are not UTF-8,
//             published as application/octet-stream) on one transport each:
//             pushlab.js hands every binary one over as a Uint8Array of
//             exactly the bytes published, in order with the text ones
//   cookie-sse, cookie-ws   signed tokens (docs/security.md), without
//             pushlab.js: a page reads private topics through the browser's
//             own EventSource / WebSocket with the `pushlab_token` cookie,
//             after checking it is refused without one; each token lives
//             1–2 s, so the server ends the stream at its expiry several
//             times (SSE: end of stream; WebSocket: close 4401) and the page
//             gets a fresh cookie from a test-only issuer (tokens.mjs) and
//             resumes from its cursor
//
// Each case starts its own pushlab(s) (PIDs written to PIDFILE so the calling
// script can stop them whatever happens) and a TCP proxy (tcpproxy.mjs) in
// front; the page is served through the proxy, so the page, pushlab.js and
// every transport share one origin. The page subscribes to two topics; node
// publishes to both in turn straight to the server. Then every published
// message must have arrived exactly once and in order (for `restart`, the
// messages published to each server, in order, with one reset between).
// Prints, per case, the transports chosen with their switch times, and
// delivered / lost / duplicated / out of order. One PASS/FAIL line at the end.

import { spawn } from "node:child_process";
import { createServer, connect } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { openBrowser } from "./browser.mjs";
import { startProxy } from "./tcpproxy.mjs";
import { judge, publishSteadily, subscribeInPage } from "./delivery.mjs";
import { newKey, signHs256, startIssuer, subscribeWithCookie } from "./tokens.mjs";

const [bin, pidfile, ...only] = process.argv.slice(2);
if (!bin || !pidfile) {
  console.error("usage: node client.test.mjs PUSHLAB_BIN PIDFILE [case...]");
  process.exit(2);
}

const children = new Set();
const savePids = () => writeFileSync(pidfile, [...children].map((c) => c.pid).join("\n") + "\n");
function stopAll() {
  for (const c of children) c.kill("SIGKILL");
}
process.on("exit", stopAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function startServer(...args) {
  const child = spawn(bin, ["--addr", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  savePids();
  const line = await Promise.race([
    new Promise((ok) => createInterface({ input: child.stdout }).once("line", ok)),
    sleep(30000).then(() => ""),
  ]);
  const m = /^pushlab listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(line);
  if (!m) throw new Error(`pushlab did not start: ${JSON.stringify(line)}`);
  child.stdout.resume();
  return { child, port: +m[1] };
}
async function stopServer(s) {
  if (s.child.exitCode != null) return children.delete(s.child) && savePids();
  const exited = new Promise((ok) => s.child.once("exit", ok));
  s.child.kill("SIGTERM");
  await Promise.race([exited, sleep(8000)]);
  s.child.kill("SIGKILL");
  children.delete(s.child);
  savePids();
}

// A private topic read with a cookie whose token keeps expiring, over
// `transport` ("sse" or "ws"): the page is refused without the cookie, then
// streams through every expiry. Besides the delivery tally, `checks` lists
// what went wrong with the tokens themselves.
async function cookieCase(transport) {
  await browser.context.clearCookies();
  const key = newKey();
  const srv = await startServer("--jwt-secret-file", key.file, "--jwt-leeway", "0s", "--sse-retry", "500ms");
  const topics = ["alpha", "beta"];
  const issuer = await startIssuer(key.secret, { life: 2, subscribe: topics });
  try {
    const sub = await subscribeWithCookie(browser, srv.port, issuer.url, transport, topics);
    const exp = Math.floor(Date.now() / 1000) + 600;
    const bearer = { Authorization: `Bearer ${signHs256(key.secret, { exp, pushlab: { publish: topics } })}` };
    const sent = await publishSteadily(() => srv.port, 120, 40, null, bearer);
    const r = await sub.collect(sent.at(-1).id);
    const { log } = r;
    const checks = [];
    if (log.refusedSse !== "refused") checks.push(`EventSource without cookie: ${log.refusedSse}`);
    if (log.refusedWs !== "refused, close 1006") checks.push(`WebSocket without cookie: ${log.refusedWs}`);
    if (!log.refusedPoll.startsWith("401 Bearer")) checks.push(`poll without cookie: ${log.refusedPoll}`);
    if (log.pollWithCookie !== 200) checks.push(`poll with cookie: ${log.pollWithCookie}`);
    // Every end the page saw was an expiry the server counted.
    const ends = transport === "sse" ? log.ended : log.closes.length;
    if (ends < 2) checks.push(`only ${ends} expiries mid-stream`);
    if (log.closes.some((c) => c !== "4401 token expired")) checks.push(`closes ${log.closes}`);
    const counted = (s) => transport === "sse" ? s.transports.sse.token_expiry_closes : s.transports.ws.close_codes["4401"] ?? 0;
    let server = -1;
    for (const until = Date.now() + 5000; Date.now() < until; await sleep(50)) {
      server = counted(await (await fetch(`http://127.0.0.1:${srv.port}/stats`)).json());
      if (server === ends) break;
    }
    // An EventSource closed by the page cannot tell whether the server had
    // just ended its stream for an expiry (the WebSocket case waits for its
    // close event and counts a 4401 that crossed its own close): one expiry
    // racing the page's stop may be counted by the server alone.
    const slack = transport === "sse" && server === ends + 1;
    if (server !== ends && !slack) checks.push(`the server counted ${server} expiries, the page saw ${ends}`);
    const how = transport === "sse" ? `, ${log.native} EventSource reconnections, ${log.reopened} reopened` : "";
    const note = `refused without cookie (EventSource ${log.refusedSse}, WebSocket ${log.refusedWs}, fetch ${log.refusedPoll.slice(0, 3)}); ` +
      `${ends} expiries, ${log.renewals} cookies issued${how}`;
    return { sent, r, note, expect: { final: transport, minOpens: 3 }, checks };
  } finally {
    await issuer.close();
    await stopServer(srv);
    key.remove();
    await browser.context.clearCookies();
  }
}

// Text and binary messages on `transport` alone: every binary message must
// arrive as a Uint8Array of the bytes published (the page records it as
// "bytes:…", compared with what was sent by the tally).
async function binaryCase(transport) {
  const srv = await startServer();
  const proxy = await startProxy(srv.port);
  const sub = await subscribeInPage(browser, proxy.port, { transports: [transport], pollInterval: 200 });
  const sent = await publishSteadily(() => srv.port, 60, 30, null, {}, { binary: true });
  const r = await sub.collect(sent.at(-1).id);
  await proxy.close();
  await stopServer(srv);
  const binary = r.got.filter((m) => m.data.startsWith("bytes:")).length;
  const checks = binary === 20 ? [] : [`${binary} binary messages arrived as bytes, 20 sent`];
  return { sent, r, note: `${binary} of them binary`, expect: { final: transport }, checks };
}

/** A free loopback port (bound, then released). */
function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().once("error", fail).listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Debian's redis-server on a free port, nothing persisted; resolves once
 * it accepts connections. */
async function startRedis() {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" });
  children.add(child);
  savePids();
  for (let i = 0; i < 200; i++) {
    const up = await new Promise((ok) => {
      const c = connect(port, "127.0.0.1", () => { c.end(); ok(true); }).once("error", () => ok(false));
    });
    if (up) return { child, port };
    await sleep(25);
  }
  throw new Error("redis-server did not start");
}

const started = Date.now();
const browser = await openBrowser("pushlab-client-");
const results = [];

const CASES = {
  async normal() {
    const srv = await startServer();
    const proxy = await startProxy(srv.port);
    const sub = await subscribeInPage(browser, proxy.port, {});
    const sent = await publishSteadily(() => srv.port, 120, 40);
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, expect: { final: "ws", opens: ["ws"] } };
  },
  async "no-ws"() {
    const srv = await startServer();
    const proxy = await startProxy(srv.port, { refuseUpgrade: true });
    const sub = await subscribeInPage(browser, proxy.port, {});
    const sent = await publishSteadily(() => srv.port, 120, 40);
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, expect: { final: "sse", failedFirst: "ws" } };
  },
  async "ws-back"() {
    const srv = await startServer();
    const proxy = await startProxy(srv.port, { refuseUpgrade: true });
    const sub = await subscribeInPage(browser, proxy.port, { retryBetter: 1500 });
    const sent = await publishSteadily(() => srv.port, 200, 40, (k) => { if (k === 10) proxy.setRefuseUpgrade(false); });
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, note: "upgrades allowed again after message 10", expect: { final: "ws", failedFirst: "ws" } };
  },
  async cuts() {
    const srv = await startServer();
    const proxy = await startProxy(srv.port);
    const sub = await subscribeInPage(browser, proxy.port, {});
    let cuts = 0;
    const sent = await publishSteadily(() => srv.port, 250, 40, (k) => { if (k % 60 === 59) cuts += proxy.cut(); });
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, note: `${cuts} connections cut`, expect: { final: "ws", minOpens: 4 } };
  },
  async "sse-life"() {
    const srv = await startServer("--sse-max-lifetime", "2s", "--sse-retry", "300ms");
    const proxy = await startProxy(srv.port, { refuseUpgrade: true });
    const sub = await subscribeInPage(browser, proxy.port, {});
    const sent = await publishSteadily(() => srv.port, 250, 40);
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, expect: { final: "sse", minOpens: 4 } };
  },
  async "lp-cuts"() {
    const srv = await startServer();
    const proxy = await startProxy(srv.port);
    const sub = await subscribeInPage(browser, proxy.port, { transports: ["long-poll"] });
    let cuts = 0;
    const sent = await publishSteadily(() => srv.port, 250, 40, (k) => { if (k % 60 === 59) cuts += proxy.cut(); });
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, note: `${cuts} connections cut`, expect: { final: "long-poll" } };
  },
  async restart() {
    let srv = await startServer();
    const proxy = await startProxy(srv.port);
    const sub = await subscribeInPage(browser, proxy.port, {});
    let restartedAt = 0;
    const sent = await publishSteadily(() => srv.port, 250, 40, async (k) => {
      if (k !== 100) return;
      const t = Date.now();
      await stopServer(srv);
      srv = await startServer();
      proxy.setUpstream(srv.port);
      restartedAt = Date.now() - t;
    });
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, note: `server down for ${restartedAt} ms`, expect: { final: "ws", resets: 1 } };
  },
  async "rolling-redis"() {
    const redis = await startRedis();
    const url = `redis://127.0.0.1:${redis.port}`;
    const nodes = [await startServer("--redis", url), await startServer("--redis", url)];
    const proxy = await startProxy(nodes[0].port);
    const sub = await subscribeInPage(browser, proxy.port, {});
    let serving = 0;
    const gaps = [];
    // Publishes go to whichever node the proxy sends the page to.
    const sent = await publishSteadily(() => nodes[serving].port, 250, 40, async (k) => {
      if (k !== 80 && k !== 160) return;
      // Roll: the page's node is moved away from and restarted.
      const old = serving;
      serving = 1 - old;
      proxy.setUpstream(nodes[serving].port);
      const t = Date.now();
      await stopServer(nodes[old]);
      nodes[old] = await startServer("--redis", url);
      gaps.push(Date.now() - t);
    });
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    for (const n of nodes) await stopServer(n);
    redis.child.kill("SIGKILL");
    children.delete(redis.child);
    return { sent, r, note: `two rolls; each node back after ${gaps.join(", ")} ms`, expect: { final: "ws", resets: 0 } };
  },
  async rolling() {
    const dir = mkdtempSync(join(tmpdir(), "pushlab-rolling-"));
    try {
      let srv = await startServer("--data-dir", dir);
      const proxy = await startProxy(srv.port);
      const sub = await subscribeInPage(browser, proxy.port, {});
      let gap = 0;
      const sent = await publishSteadily(() => srv.port, 250, 40, async (k) => {
        if (k !== 100) return;
        const t = Date.now();
        await stopServer(srv);
        srv = await startServer("--data-dir", dir);
        proxy.setUpstream(srv.port);
        gap = Date.now() - t;
      });
      const r = await sub.collect(sent.at(-1).id);
      await proxy.close();
      await stopServer(srv);
      return { sent, r, note: `old server stopped, new one serving after ${gap} ms`, expect: { final: "ws", resets: 0 } };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  "binary-ws": () => binaryCase("ws"),
  "binary-sse": () => binaryCase("sse"),
  "binary-long-poll": () => binaryCase("long-poll"),
  "binary-poll": () => binaryCase("poll"),
  "cookie-sse": () => cookieCase("sse"),
  "cookie-ws": () => cookieCase("ws"),
};

for (const name of Object.keys(CASES)) {
  if (only.length && !only.includes(name)) continue;
  const t = Date.now();
  let problems = [];
  let line = "";
  try {
    const { sent, r, note, expect, checks = [] } = await CASES[name]();
    ({ problems, line } = judge(sent, r, expect, note));
    problems.push(...checks);
  } catch (e) {
    problems.push(e.message);
  }
  const ok = problems.length === 0;
  results.push(ok);
  console.log(`  ${ok ? "ok  " : "FAIL"} ${name} (${((Date.now() - t) / 1000).toFixed(1)}s): ${problems.join("; ")}${problems.length ? " | " : ""}${line}`);
}
await browser.close();
const pass = results.length > 0 && results.every(Boolean);
console.log(`CLIENT ${pass ? "PASS" : "FAIL"} in ${((Date.now() - started) / 1000).toFixed(1)}s: ${results.filter(Boolean).length}/${results.length} cases`);
process.exit(pass ? 0 : 1);
