// An independent SSE peer for pushlab: the `eventsource` package (a WHATWG
// EventSource for Node, with its own parser) subscribes to a topic while
// this script publishes COUNT numbered messages over one keep-alive
// connection; every message must arrive once, in order, with its id.
//
// Usage: node receive.mjs BASE_URL [COUNT] [TOPIC]
//   BASE_URL  e.g. http://127.0.0.1:8080/
// Prints one line; exits 0 on success, 1 on any loss, duplicate, reorder,
// `missed`/`reset` notice or timeout.
import http from 'node:http';
import { EventSource } from 'eventsource';

const [base, countArg = '10000', topic = 'peer'] = process.argv.slice(2);
if (!base) {
  console.error('usage: node receive.mjs BASE_URL [COUNT] [TOPIC]');
  process.exit(2);
}
const count = Number(countArg);
const timeoutMs = Number(process.env.SSE_PEER_TIMEOUT_MS ?? 60000);
const target = new URL(base);
const started = Date.now();

// Message i: its number, a line break, and 0-49 x's — so the stream carries
// multi-line data, empty lines and varying lengths.
const messageFor = (i) => `${i}\n${'x'.repeat(i % 50)}`;

let expected = 0;
let opens = 0;
let errors = 0;
let publishing = false;

function finish(ok, text) {
  const secs = ((Date.now() - started) / 1000).toFixed(2);
  console.log(`${ok ? 'PASS' : 'FAIL'}: ${text} (${secs}s)`);
  process.exit(ok ? 0 : 1);
}

const timer = setTimeout(
  () => finish(false, `timed out after ${timeoutMs} ms with ${expected}/${count} messages`),
  timeoutMs,
);
timer.unref();

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function publish(i) {
  const body = Buffer.from(messageFor(i));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: 'POST',
        path: `/publish?topic=${encodeURIComponent(topic)}`,
        agent,
        headers: { 'Content-Type': 'text/plain', 'Content-Length': body.length },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`publish ${i}: HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function publishAll() {
  for (let i = 0; i < count; i++) {
    await publish(i);
  }
}

const url = new URL(`events?topic=${encodeURIComponent(topic)}`, base);
const es = new EventSource(url);

es.addEventListener('open', () => {
  opens += 1;
  // Publish only once subscribed: the first message must not predate the
  // stream (no cursor means "from now on").
  if (!publishing) {
    publishing = true;
    publishAll().catch((e) => finish(false, e.message));
  }
});

es.addEventListener('message', (e) => {
  const want = messageFor(expected);
  if (e.data !== want) {
    finish(false, `message ${expected}: got ${JSON.stringify(e.data.slice(0, 40))} (id ${e.lastEventId})`);
  }
  if (!/^[0-9a-z]+-[0-9]+$/.test(e.lastEventId)) {
    finish(false, `message ${expected}: bad id ${JSON.stringify(e.lastEventId)}`);
  }
  expected += 1;
  if (expected === count) {
    es.close();
    finish(
      true,
      `eventsource received ${count}/${count} messages in order, none missing, ` +
        `${opens - 1} reconnection(s) resumed with Last-Event-ID`,
    );
  }
});

for (const type of ['missed', 'reset']) {
  es.addEventListener(type, (e) => finish(false, `unexpected '${type}' notice: ${e.data}`));
}

// An error event precedes each automatic reconnection (the server ending a
// stream at --sse-max-lifetime); only a closed source is fatal.
es.addEventListener('error', () => {
  errors += 1;
  if (es.readyState === EventSource.CLOSED) {
    finish(false, `the event source closed for good after ${expected} messages`);
  }
});
