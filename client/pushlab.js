// pushlab.js: the browser client of pushlab (docs/client.md). No dependencies.
//
//   import { subscribe, publish } from "/pushlab.js";
//   const sub = subscribe("/", ["news"], { onMessage(m) {}, onStatus(s) {} });
//
// One cursor (the hub-wide id "E-N") is carried across WebSocket, SSE, long
// polling and polling, so the client can change transport mid-stream without
// losing or repeating a message: every request resumes after the cursor, and
// a message whose id is not past the cursor is dropped as a duplicate.
//
// Binary messages (docs/api.md § Binary messages) arrive with `data` a
// Uint8Array on every transport: a WebSocket binary frame's envelope is
// opened, the base64 of SSE and polls decoded.

const TRANSPORTS = ["ws", "sse", "long-poll", "poll"];

/** POST one message (a string; bytes as a binary message); resolves to the server's {topic, id}. */
export async function publish(baseUrl, topic, data, { token, credentials } = {}) {
  const headers = { "Content-Type": typeof data === "string" ? "text/plain;charset=utf-8" : "application/octet-stream" };
  if (token) headers.Authorization = "Bearer " + token;
  const r = await fetch(endpoint(baseUrl, "publish", { topic }), { method: "POST", headers, body: data, credentials });
  const text = await r.text();
  if (!r.ok) throw new Error(`publish: ${r.status} ${text.trim()}`);
  return JSON.parse(text);
}

function endpoint(baseUrl, path, params) {
  const base = new URL(baseUrl || "/", location.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const url = new URL(path, base);
  for (const [k, v] of Object.entries(params)) if (v != null) url.searchParams.set(k, v);
  return url;
}

// "E-N" -> [E, N]
const parseId = (id) => {
  const i = id.lastIndexOf("-");
  return [id.slice(0, i), +id.slice(i + 1)];
};

export function subscribe(baseUrl, topics, options = {}) {
  const o = {
    transports: TRANSPORTS,
    firstByteTimeout: 5000, // an event stream with no byte by then is buffered
    stallTimeout: 45000, // no byte (not even a heartbeat) for this long: reconnect
    longPollTimeout: 25, // seconds a long poll may be held (below proxy timeouts)
    pollInterval: 2000,
    retryBetter: 30000, // first wait before trying a better transport again
    maxDelay: 30000,
    ...options,
  };
  topics = [].concat(topics);
  const topic = topics.join(",");
  const call = (name, arg) => {
    try {
      o[name]?.(arg);
    } catch (e) {
      setTimeout(() => { throw e; });
    }
  };

  let cursor = o.since == null ? null : String(o.since);
  let afterReset = false; // the next message starts the new epoch
  let retryMs = 1000; // the server's `retry:` advice, once seen
  let closed = false, conn = null, idx = 0, rounds = 0, quick = 0, timer, better;
  let betterWait = o.retryBetter;

  const sub = {
    get cursor() { return cursor; },
    transport: null,
    state: "connecting",
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      clearTimeout(better);
      conn?.stop();
      conn = null;
      status(sub.transport, "closed", "closed by the page");
    },
  };

  function status(transport, state, reason) {
    sub.transport = transport;
    sub.state = state;
    call("onStatus", { transport, state, reason, cursor, at: Date.now() });
  }
  const jitter = (ms) => ms / 2 + (Math.random() * ms) / 2;
  const backoff = (n) => jitter(Math.min(o.maxDelay, retryMs * 2 ** n));

  // Everything a transport receives goes through these three.
  function deliver(m) {
    if (cursor && cursor !== "0" && !afterReset) {
      const [e, n] = parseId(m.id), [ce, cn] = parseId(cursor);
      if (e === ce && n <= cn) return; // already delivered
    }
    afterReset = false;
    cursor = m.id;
    const data = m.encoding === "base64" ? Uint8Array.from(atob(m.data), (c) => c.charCodeAt(0)) : m.data;
    call("onMessage", { topic: m.topic, id: m.id, data });
  }
  function notice(kind, n, id) {
    if (kind === "reset") {
      afterReset = true;
      call("onReset");
    } else if (n > 0) call("onMissed", n);
    if (id) advance(id);
  }
  // A cursor the server gave without a message (poll `next`, a notice's id).
  function advance(id) {
    if (!afterReset && cursor && cursor !== "0") {
      const [e, n] = parseId(id), [ce, cn] = parseId(cursor);
      if (e === ce && n <= cn) return;
    }
    afterReset = false;
    cursor = id;
  }

  function connect(reason) {
    clearTimeout(timer);
    if (closed) return;
    const t = list[idx];
    const me = { t, healthy: false, began: Date.now(), got: 0 };
    conn = me;
    status(t, "connecting", reason);
    const live = () => conn === me && !closed;
    const up = () => {
      if (!live() || me.healthy) return;
      me.healthy = true;
      rounds = 0;
      status(t, "open", reason);
      if (idx === 0) {
        betterWait = o.retryBetter;
        clearTimeout(better);
        better = 0;
      } else if (!better) {
        // On a lower transport: try the first one again later, whatever
        // reconnections happen meanwhile.
        better = setTimeout(() => {
          better = 0;
          betterWait = Math.min(betterWait * 2, 300000);
          conn?.stop();
          conn = null;
          clearTimeout(timer);
          idx = 0;
          connect(`trying ${list[0]} again`);
        }, jitter(betterWait * 2));
      }
    };
    const end = (why) => {
      if (!live()) return;
      conn = null;
      me.stop();
      const lived = Date.now() - me.began;
      quick = me.healthy && !me.got && lived < 1000 ? quick + 1 : 0;
      let delay;
      if (me.healthy && quick < 3) {
        // A working connection ended (server restart, lifetime, proxy
        // timeout): resume on the same transport after the server's advice.
        status(t, "reconnecting", why);
        delay = quick ? backoff(quick) : jitter(retryMs * 2);
      } else {
        // Never worked (or keeps dying at once): try the next transport;
        // after a whole round, back off.
        status(t, "failed", why);
        idx = (idx + 1) % list.length;
        delay = idx ? 0 : backoff(rounds++);
        quick = 0;
      }
      timer = setTimeout(() => connect(why), delay);
    };
    me.stop = OPEN[t]({ me, live, up, end });
  }


  // Each opener starts one connection and returns its stop function.
  const OPEN = {
    ws({ me, up, end }) {
      const url = endpoint(baseUrl, "ws", { topic, since: cursor });
      url.protocol = url.protocol.replace("http", "ws");
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      ws.onopen = up;
      ws.onmessage = (e) => {
        me.got++;
        if (typeof e.data != "string") {
          // The envelope: a 2-byte length, that much JSON {topic, id}, the bytes.
          const n = new DataView(e.data).getUint16(0);
          const m = JSON.parse(new TextDecoder().decode(new Uint8Array(e.data, 2, n)));
          return deliver({ ...m, data: new Uint8Array(e.data, 2 + n) });
        }
        const m = JSON.parse(e.data);
        if (m.reset) notice("reset");
        else if ("missed" in m) notice("missed", m.missed);
        else deliver(m);
      };
      ws.onclose = (e) => end(me.healthy ? `closed ${e.code} ${e.reason}`.trim() : "upgrade refused or failed");
      return () => {
        ws.onclose = ws.onmessage = null;
        ws.close();
      };
    },

    sse({ me, live, up, end }) {
      const ac = new AbortController();
      let watchdog;
      const arm = (ms, why) => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => end(why), ms);
      };
      arm(o.firstByteTimeout, `no first byte in ${o.firstByteTimeout} ms (buffered?)`);
      (async () => {
        const r = await fetch(endpoint(baseUrl, "events", { topic, since: cursor }), {
          signal: ac.signal, cache: "no-store", credentials: o.credentials,
        });
        if (!r.ok || !/^text\/event-stream/.test(r.headers.get("content-type"))) return end(`HTTP ${r.status}`);
        const reader = r.body.getReader(), dec = new TextDecoder();
        let buf = "", data = [], event = "", id = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (!live()) return;
          if (done) return end("stream ended");
          up();
          arm(o.stallTimeout, `no byte in ${o.stallTimeout} ms`);
          buf += dec.decode(value, { stream: true });
          const lines = buf.split(/\r\n|\r|\n/);
          buf = lines.pop();
          for (const line of lines) {
            if (!line) {
              me.got++;
              if (event === "missed" || event === "reset") notice(event, +data[0], id);
              else if (data.length) {
                const d = data.join("\n");
                const m = topics.length > 1 ? JSON.parse(d) : { topic, id, data: d };
                if (event === "binary") m.encoding = "base64";
                deliver(m);
              }
              data = [];
              event = id = "";
              if (!live()) return;
              continue;
            }
            if (line[0] === ":") continue; // heartbeat
            const c = line.indexOf(":");
            const field = c < 0 ? line : line.slice(0, c);
            let v = c < 0 ? "" : line.slice(c + 1);
            if (v[0] === " ") v = v.slice(1);
            if (field === "data") data.push(v);
            else if (field === "event") event = v;
            else if (field === "id") id = v;
            else if (field === "retry" && /^\d+$/.test(v)) retryMs = +v;
          }
        }
      })().catch((e) => live() && end(e.message || "network error"));
      return () => {
        clearTimeout(watchdog);
        ac.abort();
      };
    },

    "long-poll": (c) => polling(c, true),
    poll: (c) => polling(c, false),
  };
  const list = o.transports.filter((t) => OPEN[t]);
  if (!list.length) throw new Error("subscribe: no known transport in " + o.transports);

  function polling({ me, live, up, end }, long) {
    const ac = new AbortController();
    let watchdog, wait;
    (async () => {
      while (live()) {
        const url = endpoint(baseUrl, long ? "long-poll" : "poll", {
          // The first long poll answers at once: it proves the path works.
          topic, since: cursor, timeout: long ? (me.healthy ? o.longPollTimeout : 0) : null,
        });
        watchdog = setTimeout(() => end("no answer"), (long ? o.longPollTimeout * 1000 : 0) + 10000);
        const r = await fetch(url, { signal: ac.signal, cache: "no-store", credentials: o.credentials });
        if (!r.ok) return end(`HTTP ${r.status}`);
        const b = await r.json();
        clearTimeout(watchdog);
        if (!live()) return;
        up();
        if (b.reset) notice("reset");
        if (b.missed) notice("missed", b.missed);
        for (const m of b.messages) deliver(m), me.got++;
        if (b.next) advance(b.next);
        if (!long) await new Promise((ok) => (wait = setTimeout(ok, o.pollInterval)));
      }
    })().catch((e) => live() && end(e.message || "network error"));
    return () => {
      clearTimeout(watchdog);
      clearTimeout(wait);
      ac.abort();
    };
  }

  // "From now on" needs a cursor before the first connection, so that a
  // transport switch before the first message cannot skip any: ask a poll
  // for the head.
  if (cursor == null) {
    (async function head(n) {
      try {
        const r = await fetch(endpoint(baseUrl, "poll", { topic }), { cache: "no-store", credentials: o.credentials });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        const b = await r.json();
        if (cursor == null) cursor = b.next;
        connect("start");
      } catch (e) {
        if (closed) return;
        status("poll", "failed", "head: " + e.message);
        timer = setTimeout(() => head(n + 1), backoff(n));
      }
    })(0);
  } else connect("start");
  return sub;
}
