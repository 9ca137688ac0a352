// A WebSocket echo server on Node's `ws`, as its README shows it.
// `node echo.js PORT` — prints `listening on 127.0.0.1:PORT`.
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 9002);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  req.socket.setNoDelay(true);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.log(`listening on 127.0.0.1:${wss.address().port}`));
