// What the browser checks of pushlab.js share: a page that subscribes
// through a given origin and records what it gets, a steady publisher, and
// the exactly-once-in-order tally.

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// Opens a page at http://127.0.0.1:`proxyPort`/pushlab.js, subscribes with `options`; returns a
// handle to read what the page received.
export async function subscribeInPage(browser, proxyPort, options) {
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
      // Bytes kept as text, so the tally compares them like strings.
      onMessage: (m) => window.got.push(typeof m.data === "string" ? m : { ...m, data: `bytes:${m.data.join()}` }),
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

// Publishes `count` messages, one every `every` ms, alternating two topics,
// to whichever server `target()` names, with `headers` (a token); a refused
// publish (the server is restarting) is retried until it succeeds. With
// `binary`, every third message is bytes that are not UTF-8, published as
// application/octet-stream (recorded as "bytes:1,2,3", as the page records
// them). Returns [{topic, id, data}].
export async function publishSteadily(target, count, every, during, headers = {}, { binary = false } = {}) {
  const sent = [];
  for (let k = 0; k < count; k++) {
    const topic = k % 2 ? "beta" : "alpha";
    const bytes = binary && k % 3 === 1 ? Uint8Array.of(0, 255, k % 256, 10, 13, 128) : null;
    const data = bytes ? `bytes:${bytes.join()}` : k % 10 === 3 ? `line one ${k}\nline two` : `m${k}`;
    const body = bytes ?? data;
    const type = bytes ? { "Content-Type": "application/octet-stream" } : {};
    for (let tries = 0; ; tries++) {
      try {
        const r = await fetch(`http://127.0.0.1:${target()}/publish?topic=${topic}`, { method: "POST", body, headers: { ...headers, ...type } });
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
export function tally(sent, got) {
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

export function describeSwitches(statuses) {
  return statuses
    .filter((s) => s.state !== "closed")
    .map((s) => `${(s.at / 1000).toFixed(2)}s ${s.transport} ${s.state}${s.reason && s.state !== "open" ? ` (${s.reason})` : ""}`)
    .join("; ");
}


// Checks a case's outcome: every message once and in order, no notice, and
// what `expect` asks ({final, opens, failedFirst, minOpens, resets}).
export function judge(sent, r, expect, note) {
  const problems = [];
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
  const line = `sent ${c.sent}, delivered ${c.delivered}, lost ${c.lost}, duplicated ${c.duplicated}, out of order ${c.outOfOrder}` +
    `${r.resets.length ? `, reset after message ${r.resets.map((x) => x.after)} at ${r.resets.map((x) => (x.at / 1000).toFixed(2))}s` : ""}` +
    `${note ? `, ${note}` : ""}\n    ${describeSwitches(r.statuses)}`;
  return { problems, line };
}
