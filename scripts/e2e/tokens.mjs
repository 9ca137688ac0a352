// Signed tokens in a real browser (docs/security.md): a page reads private
// topics with the `pushlab_token` cookie through the browser's own
// `EventSource` or `WebSocket` — the two APIs that cannot send an
// `Authorization` header — and renews the cookie whenever the server ends
// its stream at the token's expiry.
//
//   const key = newKey();                       // secret + --jwt-secret-file
//   const issuer = await startIssuer(key.secret, { life: 2, subscribe: [...] });
//   const sub = await subscribeWithCookie(browser, port, issuer.url, "sse" | "ws", topics);
//   ... publish with Authorization: Bearer signHs256(key.secret, {...}) ...
//   const r = await sub.collect(lastId);        // same shape as delivery.mjs
//
// The issuer stands in for a login service: a node HTTP server on another
// port of 127.0.0.1 that answers `GET /token` with `Set-Cookie:
// pushlab_token=<fresh JWT>; HttpOnly; SameSite=Strict`. Cookies are per host,
// not per port, so the browser then sends the cookie to pushlab too; the
// page never sees the token (HttpOnly), and pushlab never issues one. Test
// only: it gives a token to anyone who asks.

import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const b64url = (x) => Buffer.from(x).toString("base64url");

// An HS256 JWS in compact serialization (RFC 7515 §7.1), unpadded base64url.
export function signHs256(secret, claims) {
  const input = `${b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

// A fresh 32-byte secret in a file of its own, for --jwt-secret-file.
export function newKey() {
  const dir = mkdtempSync(join(tmpdir(), "pushlab-jwt-"));
  const secret = randomBytes(32).toString("hex");
  const file = join(dir, "secret");
  writeFileSync(file, secret + "\n", { mode: 0o600 });
  return { secret, file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// The test-only token issuer: each GET sets a cookie holding a token that
// grants `subscribe` and expires `life` seconds after the current second.
export function startIssuer(secret, { life, subscribe }) {
  let issued = 0;
  const server = http.createServer((req, res) => {
    const exp = Math.floor(Date.now() / 1000) + life;
    issued++;
    const headers = {
      "Set-Cookie": `pushlab_token=${signHs256(secret, { exp, pushlab: { subscribe } })}; Path=/; HttpOnly; SameSite=Strict`,
      "Cache-Control": "no-store",
    };
    // Another port is another origin: a credentialed CORS response.
    if (req.headers.origin) {
      Object.assign(headers, {
        "Access-Control-Allow-Origin": req.headers.origin,
        "Access-Control-Allow-Credentials": "true",
        Vary: "Origin",
      });
    }
    res.writeHead(204, headers).end();
  });
  return new Promise((ok) =>
    server.listen(0, "127.0.0.1", () =>
      ok({
        url: `http://127.0.0.1:${server.address().port}/token`,
        get issued() { return issued; },
        close: () => new Promise((done) => server.close(done)),
      }),
    ),
  );
}

// Opens a page on pushlab's origin and, in it: checks that `topics` are
// refused without the cookie (EventSource, WebSocket, fetch), gets a cookie
// from `issuer`, then subscribes with `transport` ("sse": EventSource, "ws":
// WebSocket). Whenever the server ends the stream (SSE: `error`; WebSocket:
// close 4401) the page renews the cookie and resumes from its cursor: SSE by
// EventSource's own reconnection with `Last-Event-ID` (or, if that was
// refused, a new EventSource with `last_event_id`), WebSocket with `since`.
export async function subscribeWithCookie(browser, port, issuer, transport, topics) {
  const page = await browser.context.newPage();
  await page.goto(`http://127.0.0.1:${port}/pushlab.js`);
  await page.evaluate(async ([transport, issuer, topics]) => {
    const t0 = performance.now();
    const at = () => Math.round(performance.now() - t0);
    Object.assign(window, { got: [], statuses: [], resets: [], missed: [], stopped: false });
    const log = (window.log = { renewals: 0, ended: 0, native: 0, reopened: 0, closes: [] });
    const status = (state, reason) => window.statuses.push({ transport, state, reason, at: at() });
    const query = `topic=${topics.join(",")}`;
    const sseUrl = (last) => `/events?${query}${last ? `&last_event_id=${last}` : ""}`;
    const wsUrl = (since) => `${location.origin.replace("http", "ws")}/ws?${query}${since ? `&since=${since}` : ""}`;
    const renew = async () => {
      const r = await fetch(issuer, { credentials: "include", cache: "no-store" });
      if (r.status !== 204) throw new Error(`issuer answered ${r.status}`);
      log.renewals++;
    };

    // Without the cookie: refused. A browser shows neither API the status
    // (EventSource fails for good, WebSocket closes with 1006); fetch can.
    log.refusedSse = await new Promise((ok) => {
      const es = new EventSource(sseUrl());
      es.onopen = () => (es.close(), ok("opened"));
      es.onerror = () => (ok(es.readyState === EventSource.CLOSED ? "refused" : `error, readyState ${es.readyState}`), es.close());
    });
    log.refusedWs = await new Promise((ok) => {
      const ws = new WebSocket(wsUrl());
      ws.onopen = () => (ws.close(), ok("opened"));
      ws.onclose = (e) => ok(`refused, close ${e.code}`);
    });
    const poll = await fetch(`/poll?${query}`, { cache: "no-store" });
    log.refusedPoll = `${poll.status} ${poll.headers.get("www-authenticate")}`;
    await renew();
    log.pollWithCookie = (await fetch(`/poll?${query}`, { cache: "no-store" })).status;

    let cursor = null;
    const deliver = (m) => {
      if (m.reset) return window.resets.push({ at: at(), after: window.got.length });
      if ("missed" in m) return window.missed.push(m.missed);
      window.got.push({ topic: m.topic, id: m.id, data: m.data });
      cursor = m.id;
    };

    function openSse(last) {
      const es = new EventSource(sseUrl(last));
      let opens = 0;
      es.onopen = () => {
        if (opens++) log.native++;
        status("open", opens > 1 ? "EventSource reconnected with Last-Event-ID" : last ? "reopened from the cursor" : "start");
      };
      es.onmessage = (e) => deliver(JSON.parse(e.data));
      es.addEventListener("missed", (e) => window.missed.push(+e.data));
      es.addEventListener("reset", () => deliver({ reset: true }));
      es.onerror = async () => {
        if (window.stopped) return;
        if (es.readyState === EventSource.CONNECTING) {
          // The stream ended: EventSource reconnects by itself after
          // `retry`, with whatever cookie the browser holds by then.
          log.ended++;
          status("reconnecting", "stream ended");
          await renew();
        } else {
          // Its reconnection was refused (the cookie came too late): a new
          // EventSource, from the cursor.
          status("failed", "reconnection refused");
          log.reopened++;
          await renew();
          if (!window.stopped) window.conn = openSse(cursor);
        }
      };
      return es;
    }

    function openWs(since) {
      const ws = new WebSocket(wsUrl(since));
      ws.onopen = () => status("open", since ? "reopened from the cursor" : "start");
      ws.onmessage = (e) => deliver(JSON.parse(e.data));
      ws.onclose = async (e) => {
        if (window.stopped) return;
        log.closes.push(`${e.code} ${e.reason}`);
        status("reconnecting", `closed ${e.code} ${e.reason}`);
        await renew();
        if (!window.stopped) window.conn = openWs(cursor);
      };
      return ws;
    }

    window.conn = transport === "sse" ? openSse(null) : openWs(null);
  }, [transport, issuer, topics]);

  const deadline = Date.now() + 15000;
  while (!(await page.evaluate(() => window.statuses.some((s) => s.state === "open")))) {
    if (Date.now() > deadline) throw new Error(`${transport} did not open within 15 s`);
    await sleep(50);
  }
  return {
    page,
    async collect(lastId) {
      const until = Date.now() + 20000;
      while (Date.now() < until && !(await page.evaluate((id) => window.got.some((m) => m.id === id), lastId))) await sleep(100);
      const out = await page.evaluate(async () => {
        window.stopped = true;
        const conn = window.conn;
        if (conn instanceof WebSocket && conn.readyState !== WebSocket.CLOSED) {
          // The server may have closed this socket with 4401 just before we
          // stop (it has counted that expiry): its close frame then answers
          // ours, and the close event carries its code.
          await new Promise((ok) => {
            conn.addEventListener("close", (e) => {
              if (e.code === 4401) window.log.closes.push(`${e.code} ${e.reason}`);
              ok();
            });
            conn.close();
            setTimeout(ok, 3000);
          });
        } else conn.close();
        const { got, statuses, resets, missed, log } = window;
        return { got, statuses, resets, missed, log };
      });
      await page.close();
      return out;
    },
  };
}
