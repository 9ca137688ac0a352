// A fan-out server on Node's `ws`, written the way ws users broadcast:
// subscribers connect to `/ws?topic=T`; `POST /publish?topic=T` sends the
// request body, as a text message, to every open subscriber of T by calling
// `send` on each (the broadcast example of the ws README, per topic).
//
// `node fanout.js PORT [deflate|plain]` — prints `listening on 127.0.0.1:PORT`.
//
// Compression (`deflate`, the default): permessage-deflate with
//  - threshold 0: ws's default (1024 bytes) would leave the few-hundred-byte
//    messages measured here uncompressed;
//  - serverNoContextTakeover: every message compressed on its own, the same
//    rule pushlab always uses, so both servers send comparable payloads and
//    the load generator can inflate each message alone;
//  - everything else ws's defaults (zlib level 6, memLevel 8, one deflate
//    stream per connection, concurrencyLimit 10 zlib jobs at a time).
const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || 9003);
const deflate = (process.argv[3] || 'deflate') !== 'plain';
const topics = new Map(); // topic → Set of WebSocket

function topicOf(url) {
  return new URL(url, 'http://127.0.0.1').searchParams.get('topic') || '';
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || !req.url.startsWith('/publish')) {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const subs = topics.get(topicOf(req.url));
    let n = 0;
    if (subs) {
      for (const ws of subs) {
        if (ws.readyState === WebSocket.OPEN) {
          ws.send(body, { binary: false });
          n++;
        }
      }
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`${n}\n`);
  });
});

const wss = new WebSocketServer({
  server,
  path: '/ws',
  perMessageDeflate: deflate ? { threshold: 0, serverNoContextTakeover: true } : false,
});
wss.on('connection', (ws, req) => {
  req.socket.setNoDelay(true);
  const topic = topicOf(req.url);
  if (!topics.has(topic)) topics.set(topic, new Set());
  topics.get(topic).add(ws);
  ws.on('close', () => topics.get(topic).delete(ws));
  ws.on('message', () => {}); // subscribers only listen
});
// One publisher keeps one connection and pipelines its POSTs; while 10,000
// subscribers are compressed for, the loop is busy for seconds, and Node's
// HTTP timers (keep-alive 5 s, headers 60 s, request 300 s) would close it.
server.keepAliveTimeout = 0;
server.headersTimeout = 0;
server.requestTimeout = 0;
server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
