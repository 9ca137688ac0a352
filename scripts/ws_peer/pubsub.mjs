// An independent WebSocket client (the `ws` package) against pushlab:
// pub/sub between two clients, resume with `since`, a multi-topic publish,
// a binary message round trip (the envelope, docs/api.md § Binary
// messages), echo of text and binary, and the closing handshake. Prints one line,
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

/** The envelope of a binary frame: its JSON header and its bytes. */
function envelope(data) {
  const n = data.readUInt16BE(0);
  return { header: JSON.parse(data.subarray(2, 2 + n).toString()), bytes: data.subarray(2 + n) };
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
  // 5. Binary on /ws: bytes published, one binary frame out with the
  // envelope (topic, id, then the bytes), on one topic and on several.
  const bytes = Buffer.from([0, 255, 1, 2, 0x80, 10]);
  pub.send(bytes);
  for (const ws of [sub, pub, multi]) {
    const m = await ws.next();
    check(m.isBinary, `binary came back as text: ${m.data}`);
    const { header, bytes: got } = envelope(m.data);
    check(header.topic === topic && /-\d+$/.test(header.id), `binary header ${JSON.stringify(header)}`);
    check(Buffer.compare(got, bytes) === 0, `binary bytes ${got.toString('hex')}`);
  }
  const head = Buffer.from(JSON.stringify({ topic: `${topic}-b` }));
  const length = Buffer.alloc(2);
  length.writeUInt16BE(head.length);
  multi.send(Buffer.concat([length, head, bytes]));
  const mb = envelope((await multi.next()).data);
  check(mb.header.topic === `${topic}-b` && Buffer.compare(mb.bytes, bytes) === 0, 'multi-topic binary');
  // 6. A multi-topic text that is not {"topic","data"}: 1008; a normal
  // close is echoed.
  multi.send('not json');
  const refused = await multi.closed;
  check(refused.code === 1008, `bad multi-topic text closed with ${refused.code}`);
  echo.close(1000, 'bye');
  const closed = await echo.closed;
  check(closed.code === 1000, `close echoed ${closed.code}`);
  for (const ws of [sub, pub, resumed]) ws.close();
  await Promise.all([sub.closed, pub.closed, resumed.closed]);
  clearTimeout(deadline);
  console.log(`PASS: ws ${count} messages to 2 subscribers, resume, multi-topic, binary round trip, echo, close codes`);
}

main().catch((e) => fail(e.stack || String(e)));
