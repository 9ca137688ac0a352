// An independent WebSocket client (the `ws` package) against pushlab:
// pub/sub between two clients, resume with `since`, a multi-topic publish,
// echo of text and binary, and the closing handshake. Prints one line,
// "PASS: ..." or "FAIL: ...", and exits 0 or 1.
//
// Usage: node pubsub.mjs http://127.0.0.1:PORT/ [COUNT]
import WebSocket from 'ws';

const [base, countArg] = process.argv.slice(2);
const count = Number(countArg || 1000);
const wsBase = base.replace(/^http/, 'ws');
const deadline = setTimeout(() => fail('timed out'), Number(process.env.WS_PEER_TIMEOUT_MS || 60000));

function fail(why) {
  console.log(`FAIL: ${why}`);
  process.exit(1);
}

function check(cond, why) {
  if (!cond) fail(why);
}

/** Opens `path`; resolves with the socket and a queue of its messages. */
function open(path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsBase + path);
    const queue = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const item = { data, isBinary };
      const waiter = waiters.shift();
      if (waiter) waiter(item);
      else queue.push(item);
    });
    ws.next = () =>
      new Promise((res) => {
        const item = queue.shift();
        if (item) res(item);
        else waiters.push(res);
      });
    ws.nextJson = async () => JSON.parse((await ws.next()).data.toString());
    ws.closed = new Promise((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

async function main() {
  const topic = `node-${process.pid}`;
  // 1. Two subscribers; one of them publishes every message.
  const sub = await open(`ws?topic=${topic}`);
  const pub = await open(`ws?topic=${topic}`);
  for (let i = 0; i < count; i++) pub.send(`m${i}`);
  const ids = [];
  for (const ws of [sub, pub]) {
    for (let i = 0; i < count; i++) {
      const msg = await ws.nextJson();
      check(msg.topic === topic && msg.data === `m${i}`, `message ${i}: ${JSON.stringify(msg)}`);
      if (ws === sub) ids.push(msg.id);
    }
  }
  // 2. Resume from the middle: exactly what follows, nothing else.
  const half = Math.floor(count / 2);
  const resumed = await open(`ws?topic=${topic}&since=${ids[half - 1]}`);
  for (let i = half; i < count; i++) {
    const msg = await resumed.nextJson();
    check(msg.id === ids[i], `resume ${i}: ${JSON.stringify(msg)} (expected ${ids[i]})`);
  }
  // 3. Several topics: publish as {"topic","data"}.
  const multi = await open(`ws?topic=${topic},${topic}-b`);
  multi.send(JSON.stringify({ topic: `${topic}-b`, data: 'to b' }));
  const b = await multi.nextJson();
  check(b.topic === `${topic}-b` && b.data === 'to b', `multi: ${JSON.stringify(b)}`);
  // 4. Echo: text and a 100 KB binary message.
  const echo = await open('echo');
  echo.send('héllo');
  const t = await echo.next();
  check(!t.isBinary && t.data.toString() === 'héllo', 'echo text');
  const blob = Buffer.alloc(100_000, 7);
  echo.send(blob);
  const got = await echo.next();
  check(got.isBinary && Buffer.compare(got.data, blob) === 0, 'echo binary');
  // 5. Binary on /ws is refused with 1003; a normal close is echoed.
  pub.send(Buffer.from([1, 2, 3]));
  const refused = await pub.closed;
  check(refused.code === 1003, `binary on /ws closed with ${refused.code}`);
  echo.close(1000, 'bye');
  const closed = await echo.closed;
  check(closed.code === 1000, `close echoed ${closed.code}`);
  for (const ws of [sub, resumed, multi]) ws.close();
  await Promise.all([sub.closed, resumed.closed, multi.closed]);
  clearTimeout(deadline);
  console.log(`PASS: ws ${count} messages to 2 subscribers, resume, multi-topic, echo, close codes`);
}

main().catch((e) => fail(e.stack || String(e)));
