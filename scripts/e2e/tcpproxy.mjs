// A small TCP proxy for browser tests: it forwards bytes both ways to an
// upstream pushlab and can misbehave the way real networks do.
//
//   const p = await startProxy(upstreamPort, { refuseUpgrade: true });
//   p.port; p.cut(); p.setUpstream(port); p.setRefuseUpgrade(false); await p.close();
//
// refuseUpgrade: a request whose head asks for `Upgrade: websocket` gets
//   403 and is closed (what a proxy without WebSocket support does);
// cut(): destroys every open connection (an idle timeout, a NAT flush).

import net from "node:net";

export function startProxy(upstream, { refuseUpgrade = false } = {}) {
  const pairs = new Set();
  const server = net.createServer((client) => {
    let head = Buffer.alloc(0);
    let remote = null;
    const pair = { client, remote: null };
    pairs.add(pair);
    const drop = () => {
      client.destroy();
      remote?.destroy();
      pairs.delete(pair);
    };
    client.on("error", drop);
    client.on("close", drop);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0 && head.length < 65536) return; // wait for the whole head
      client.off("data", onData);
      client.pause();
      const text = head.subarray(0, end < 0 ? head.length : end).toString("latin1");
      if (refuseUpgrade && /^upgrade:\s*websocket\s*$/im.test(text)) {
        client.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 20\r\nConnection: close\r\n\r\nno WebSockets here\r\n");
        return;
      }
      remote = pair.remote = net.connect(upstream, "127.0.0.1", () => {
        remote.write(head);
        client.pipe(remote);
        remote.pipe(client);
        client.resume();
      });
      remote.on("error", drop);
      remote.on("close", drop);
    };
    client.on("data", onData);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: server.address().port,
        setUpstream(port) { upstream = port; },
        setRefuseUpgrade(on) { refuseUpgrade = on; },
        cut() {
          const n = pairs.size;
          for (const p of pairs) { p.client.destroy(); p.remote?.destroy(); }
          pairs.clear();
          return n;
        },
        close() {
          for (const p of pairs) { p.client.destroy(); p.remote?.destroy(); }
          return new Promise((ok) => server.close(ok));
        },
      });
    });
  });
}
