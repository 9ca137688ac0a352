// permessage-deflate (RFC 7692) with an independent client, the `ws`
// package with `perMessageDeflate` on: the extension is agreed, a large
// JSON message published compressed reaches another compressed subscriber
// intact, a compressed echo comes back intact, and pushlab's /stats shows
// that frames went out compressed and compressed messages came in. Prints
// "PASS: ..." or "FAIL: ...", exits 0 or 1.
//
// Usage: node deflate.mjs http://127.0.0.1:PORT/
import WebSocket from 'ws';

const [base] = process.argv.slice(2);
const wsBase = base.replace(/^http/, 'ws');
setTimeout(() => fail('timed out'), Number(process.env.WS_PEER_TIMEOUT_MS || 60000)).unref();

function fail(why) {
  console.log(`FAIL: ${why}`);
  process.exit(1);
}

const stats = async () => (await (await fetch(base + 'stats')).json()).transports.ws;

/** Opens `path` offering compression (client threshold 0: every message
 * compressed); resolves with the socket and a function for its next message. */
function open(path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(new URL(path, wsBase), { perMessageDeflate: { threshold: 0 } });
    const queue = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const w = waiters.shift();
      if (w) w({ data, isBinary });
      else queue.push({ data, isBinary });
    });
    ws.next = () => new Promise((res) => (queue.length ? res(queue.shift()) : waiters.push(res)));
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

const before = await stats();
const sub = await open('/ws?topic=deflate');
const pub = await open('/ws?topic=deflate');
for (const ws of [sub, pub]) {
  if (!ws.extensions.includes('permessage-deflate')) fail(`no extension agreed: "${ws.extensions}"`);
}
// A realistic dashboard update, well above the server's 128-byte threshold.
const update = JSON.stringify({
  series: Array.from({ length: 60 }, (_, i) => ({ t: 1765000000 + i, cpu: (i * 7) % 100, mem: 512 + i })),
});
pub.send(update);
for (const ws of [sub, pub]) {
  const m = await ws.next();
  const got = JSON.parse(m.data.toString());
  if (got.data !== update) fail('the published message arrived changed');
}
const echo = await open('/echo');
const big = 'x'.repeat(64 * 1024) + update;
echo.send(big);
const back = await echo.next();
if (back.data.toString() !== big) fail('the compressed echo came back changed');
const after = await stats();
const out = after.deflate_frames_out - before.deflate_frames_out;
const into = after.deflate_messages_in - before.deflate_messages_in;
const ratio = (after.deflate_bytes_before - before.deflate_bytes_before) / (after.deflate_bytes_after - before.deflate_bytes_after);
if (out < 3) fail(`only ${out} compressed frames went out`);
if (into < 2) fail(`only ${into} compressed messages came in`);
for (const ws of [sub, pub, echo]) ws.close(1000);
console.log(`PASS: ws permessage-deflate agreed; ${out} frames out compressed (${ratio.toFixed(1)}x), ${into} compressed messages in`);
process.exit(0);
