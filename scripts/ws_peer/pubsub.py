"""An independent WebSocket client (the `websockets` package, sync API)
against pushlab: pub/sub between two clients, resume with `since`, a
binary message round trip (the envelope, docs/api.md § Binary messages),
echo, the closing handshake. Prints one line, "PASS: ..." or "FAIL: ...", and
exits 0 or 1.

Usage: python pubsub.py http://127.0.0.1:PORT/ [COUNT]
"""

import json
import os
import struct
import sys

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def fail(why):
    print(f"FAIL: {why}")
    sys.exit(1)


def check(cond, why):
    if not cond:
        fail(why)


def envelope(payload):
    """The JSON header and the bytes of a binary frame's envelope."""
    (n,) = struct.unpack(">H", payload[:2])
    return json.loads(payload[2 : 2 + n]), payload[2 + n :]


def main():
    base = sys.argv[1].replace("http", "ws", 1)
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    timeout = float(os.environ.get("WS_PEER_TIMEOUT_MS", "60000")) / 1000
    topic = f"py-{os.getpid()}"

    def open_(path):
        return connect(base + path, open_timeout=timeout, close_timeout=timeout)

    with open_(f"ws?topic={topic}") as sub, open_(f"ws?topic={topic}") as pub:
        for i in range(count):
            pub.send(f"m{i}")
        ids = []
        for ws in (sub, pub):
            for i in range(count):
                msg = json.loads(ws.recv(timeout=timeout))
                check(msg["topic"] == topic and msg["data"] == f"m{i}", f"message {i}: {msg}")
                if ws is sub:
                    ids.append(msg["id"])
        half = count // 2
        with open_(f"ws?topic={topic}&since={ids[half - 1]}") as resumed:
            for i in range(half, count):
                msg = json.loads(resumed.recv(timeout=timeout))
                check(msg["id"] == ids[i], f"resume {i}: {msg} (expected {ids[i]})")
        # The library's own keepalive ping is answered.
        pub.ping(b"py").wait(timeout)

    with open_("echo") as echo:
        echo.send("héllo")
        check(echo.recv(timeout=timeout) == "héllo", "echo text")
        blob = bytes(range(256)) * 400
        echo.send(blob)
        check(echo.recv(timeout=timeout) == blob, "echo binary")
        echo.close(1000, "bye")
        rcvd = echo.protocol.close_rcvd
        check(rcvd is not None and rcvd.code == 1000, f"close {rcvd}")

    # Binary on /ws: bytes in, one binary frame out with the envelope; on
    # several topics the frame sent is an envelope naming one of them.
    data = b"\x00\xff\x01\x80\r\n"
    with open_(f"ws?topic={topic}") as ws, open_(f"ws?topic={topic},{topic}-b") as multi:
        ws.send(data)
        for c in (ws, multi):
            got = c.recv(timeout=timeout)
            check(isinstance(got, bytes), f"binary came back as text: {got!r}")
            header, body = envelope(got)
            check(header["topic"] == topic and body == data, f"binary {header} {body!r}")
        head = json.dumps({"topic": f"{topic}-b"}).encode()
        multi.send(struct.pack(">H", len(head)) + head + data)
        header, body = envelope(multi.recv(timeout=timeout))
        check(header["topic"] == f"{topic}-b" and body == data, f"multi-topic binary {header}")
        multi.send("not json")
        try:
            multi.recv(timeout=timeout)
            fail("a bad multi-topic text was accepted")
        except ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1008, f"bad text closed with {e.rcvd}")

    print(f"PASS: websockets {count} messages to 2 subscribers, resume, ping, binary round trip, echo, close codes")


if __name__ == "__main__":
    main()
