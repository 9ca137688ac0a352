// pushlab.js in a real browser (Debian's Chromium, headless, driven by
// playwright-core), with messages published throughout each case:
//
//   node client.test.mjs PUSHLAB_BIN PIDFILE [case...]
//
//   normal    the default transports, nothing in the way: WebSocket
//   no-ws     a proxy that refuses WebSocket upgrades: lands on SSE
//   cuts      a proxy that cuts every connection every 2.5 s (WebSocket)
//   sse-life  upgrades refused and --sse-max-lifetime 2s: SSE reconnects
//   lp-cuts   long polling only, every connection cut every 2.5 s (Chromium
//             replays a request whose idle keep-alive socket was cut, so
//             the client may see no error at all)
//   restart   the server restarted mid-stream: onReset, then streaming again
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
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { openBrowser } from "./browser.mjs";
import { startProxy } from "./tcpproxy.mjs";

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

// Publishes `count` messages, one every `every` ms, alternating two topics,
// to whichever server `target()` names; a refused publish (the server is
// restarting) is retried until it succeeds. Returns [{topic, id, data}].
async function publishSteadily(target, count, every, during) {
  const sent = [];
  for (let k = 0; k < count; k++) {
    const topic = k % 2 ? "beta" : "alpha";
    const data = k % 10 === 3 ? `line one ${k}\nline two` : `m${k}`;
    for (let tries = 0; ; tries++) {
      try {
        const r = await fetch(`http://127.0.0.1:${target()}/publish?topic=${topic}`, { method: "POST", body: data });
        if (r.status !== 200) throw new Error(`publish ${r.status}`);
        sent.push({ topic, id: (await r.json()).id, data });
        break;
      } catch (e) {
        if (tries > 200) throw e;
        await sleep(50);
      }
    }
    await during?.(k);
    await sleep(every);
  }
  return sent;
}

// Compares what the page got with what was sent: the same list, in order.
function tally(sent, got) {
  const key = (m) => `${m.topic}|${m.id}|${m.data}`;
  const want = new Set(sent.map(key));
  const seen = new Map();
  for (const m of got) seen.set(key(m), (seen.get(key(m)) ?? 0) + 1);
  const lost = sent.filter((m) => !seen.has(key(m))).length;
  const duplicated = [...seen.values()].reduce((a, n) => a + n - 1, 0);
  const foreign = got.filter((m) => !want.has(key(m))).length;
  const order = got.map(key).filter((k, i, a) => a.indexOf(k) === i);
  const expected = sent.map(key).filter((k) => seen.has(k));
  const outOfOrder = order.reduce((a, k, i) => a + (k !== expected[i] ? 1 : 0), 0);
  return { sent: sent.length, delivered: got.length, lost, duplicated, foreign, outOfOrder };
}

const started = Date.now();
const browser = await openBrowser("pushlab-client-");
const results = [];

// Opens a page through `proxyPort`, subscribes with `options`; returns a
// handle to read what the page received.
async function subscribeInPage(proxyPort, options) {
  const page = await browser.context.newPage();
  const origin = `http://127.0.0.1:${proxyPort}`;
  await page.goto(`${origin}/pushlab.js`);
  await page.evaluate(async ([options]) => {
    const { subscribe } = await import("/pushlab.js");
    const t0 = performance.now();
    const at = () => Math.round(performance.now() - t0);
    window.got = [];
    window.statuses = [];
    window.resets = [];
    window.missed = [];
    window.sub = subscribe(location.origin, ["alpha", "beta"], {
      ...options,
      onMessage: (m) => window.got.push(m),
      onReset: () => window.resets.push({ at: at(), after: window.got.length }),
      onMissed: (n) => window.missed.push(n),
      onStatus: (s) => window.statuses.push({ ...s, at: at() }),
    });
  }, [options]);
  // Wait for the first open before publishing anything.
  const deadline = Date.now() + 15000;
  while (!(await page.evaluate(() => window.statuses.some((s) => s.state === "open")))) {
    if (Date.now() > deadline) throw new Error("no transport opened within 15 s");
    await sleep(50);
  }
  return {
    page,
    async collect(lastId) {
      const until = Date.now() + 20000;
      while (Date.now() < until && !(await page.evaluate((id) => window.got.some((m) => m.id === id), lastId))) await sleep(100);
      const out = await page.evaluate(() => {
        window.sub.close();
        return { got: window.got, statuses: window.statuses, resets: window.resets, missed: window.missed, cursor: window.sub.cursor };
      });
      await page.close();
      return out;
    },
  };
}

function describeSwitches(statuses) {
  return statuses
    .filter((s) => s.state !== "closed")
    .map((s) => `${(s.at / 1000).toFixed(2)}s ${s.transport} ${s.state}${s.reason && s.state !== "open" ? ` (${s.reason})` : ""}`)
    .join("; ");
}

const CASES = {
  async normal() {
    const srv = await startServer();
    const proxy = await startProxy(srv.port);
    const sub = await subscribeInPage(proxy.port, {});
    const sent = await publishSteadily(() => srv.port, 120, 40);
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, expect: { final: "ws", opens: ["ws"] } };
  },
  async "no-ws"() {
    const srv = await startServer();
    const proxy = await startProxy(srv.port, { refuseUpgrade: true });
    const sub = await subscribeInPage(proxy.port, {});
    const sent = await publishSteadily(() => srv.port, 120, 40);
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, expect: { final: "sse", failedFirst: "ws" } };
  },
  async cuts() {
    const srv = await startServer();
    const proxy = await startProxy(srv.port);
    const sub = await subscribeInPage(proxy.port, {});
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
    const sub = await subscribeInPage(proxy.port, {});
    const sent = await publishSteadily(() => srv.port, 250, 40);
    const r = await sub.collect(sent.at(-1).id);
    await proxy.close();
    await stopServer(srv);
    return { sent, r, expect: { final: "sse", minOpens: 4 } };
  },
  async "lp-cuts"() {
    const srv = await startServer();
    const proxy = await startProxy(srv.port);
    const sub = await subscribeInPage(proxy.port, { transports: ["long-poll"] });
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
    const sub = await subscribeInPage(proxy.port, {});
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
};

for (const name of Object.keys(CASES)) {
  if (only.length && !only.includes(name)) continue;
  const t = Date.now();
  let problems = [];
  let line = "";
  try {
    const { sent, r, note, expect } = await CASES[name]();
    const c = tally(sent, r.got);
    const opens = r.statuses.filter((s) => s.state === "open");
    const last = opens.at(-1)?.transport;
    if (c.lost || c.duplicated || c.foreign || c.outOfOrder) problems.push("delivery");
    if (expect.final && last !== expect.final) problems.push(`ended on ${last}, expected ${expect.final}`);
    if (expect.opens && opens.map((s) => s.transport).join() !== expect.opens.join()) problems.push(`opened ${opens.map((s) => s.transport)}`);
    if (expect.failedFirst && r.statuses.find((s) => s.state === "failed")?.transport !== expect.failedFirst) problems.push(`${expect.failedFirst} did not fail first`);
    if (expect.minOpens && opens.length < expect.minOpens) problems.push(`only ${opens.length} connections opened`);
    if ((expect.resets ?? 0) !== r.resets.length) problems.push(`${r.resets.length} resets`);
    if (r.missed.length) problems.push(`missed ${r.missed}`);
    line = `sent ${c.sent}, delivered ${c.delivered}, lost ${c.lost}, duplicated ${c.duplicated}, out of order ${c.outOfOrder}` +
      `${r.resets.length ? `, reset after message ${r.resets.map((x) => x.after)} at ${r.resets.map((x) => (x.at / 1000).toFixed(2))}s` : ""}` +
      `${note ? `, ${note}` : ""}\n    ${describeSwitches(r.statuses)}`;
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
