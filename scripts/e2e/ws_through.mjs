// A WebSocket client through a proxy (Node's built-in WebSocket, from undici:
// run with `node --experimental-websocket` on Node 20). Subscribes to TOPIC
// at WS_BASE/ws, publishes one message straight to the server at
// SERVER_BASE once open, and prints how long the frame took to come back.
// Exit 0 when it did within 5 s, 1 otherwise.
//
//   node --experimental-websocket ws_through.mjs WS_BASE SERVER_BASE TOPIC

const [wsBase, serverBase, topic] = process.argv.slice(2);
const wsUrl = `${wsBase}/ws?topic=${topic}`;
const publishUrl = `${serverBase}/publish?topic=${topic}`;
const t0 = Date.now();
const fail = (why) => {
  console.log(`ws FAIL: ${why}`);
  process.exit(1);
};
setTimeout(() => fail("no frame within 5 s"), 5000);
const ws = new WebSocket(wsUrl);
const data = `through-${process.pid}`;
let sentAt = 0;
ws.onerror = () => fail("the WebSocket failed (upgrade refused?)");
ws.onopen = async () => {
  sentAt = Date.now();
  const r = await fetch(publishUrl, { method: "POST", body: data });
  if (r.status !== 200) fail(`publish answered ${r.status}`);
};
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.data !== data) return;
  console.log(`ws ok: upgraded in ${sentAt - t0} ms, frame ${Date.now() - sentAt} ms after the publish`);
  ws.close(1000);
  process.exit(0);
};
