#!/usr/bin/env python3
"""The load-balancer check of scripts/redis.sh: three pushlab nodes on one
Redis behind nginx (round robin, no stickiness); one node is killed with
SIGKILL while messages flow; every client reconnects through nginx to
another node and resumes with its cursor.

    redis_lb_check.py NGINX_PORT PUBLISH_PORT VICTIM_PID

SSE, WebSocket and long-poll clients (three of each, so round robin puts
one of each on every node) each count what they receive: every published
message exactly once, in order — 0 lost, 0 duplicated — and the longest
reconnect gap is reported. Standard library only; exit 0 pass, 1 fail.
"""

import base64
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time

NGINX, PUBLISH, VICTIM = (int(x) for x in sys.argv[1:4])
TOPIC = "lb"
COUNT = 150
INTERVAL = 0.02


def say(text):
    print(f"redis_lb_check: {text}", flush=True)


class Client(threading.Thread):
    """Receives through nginx, reconnecting with its cursor on any end."""

    kind = "?"

    def __init__(self, cursor):
        super().__init__(daemon=True)
        self.cursor = cursor
        self.got = []  # (id, data)
        self.notices = []
        self.reconnects = 0
        self.gaps = []  # seconds from an end to the next answer
        self.stop = False
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.start()
        # One at a time, so that nginx's round robin puts the three
        # clients of each kind on the three nodes.
        self.connected.wait(10)

    def run(self):
        ended_at = None
        while not self.stop:
            try:
                for first in self.session():
                    self.connected.set()
                    if first and ended_at is not None:
                        self.gaps.append(time.monotonic() - ended_at)
                        ended_at = None
            except (OSError, ValueError, http.client.HTTPException):
                pass
            if self.stop:
                return
            if ended_at is None:
                ended_at = time.monotonic()
                self.reconnects += 1
            time.sleep(0.05)

    def take(self, msg_id, data):
        with self.lock:
            self.got.append((msg_id, data))
            self.cursor = msg_id


class Sse(Client):
    kind = "sse"

    def session(self):
        s = socket.create_connection(("127.0.0.1", NGINX), timeout=30)
        try:
            s.sendall(f"GET /events?topic={TOPIC} HTTP/1.1\r\nHost: t\r\n"
                      f"Last-Event-ID: {self.cursor}\r\n\r\n".encode())
            f = s.makefile("rb")
            if b" 200 " not in f.readline():
                return
            while f.readline() not in (b"\r\n", b""):
                pass
            yield True
            event = {}
            while not self.stop:
                try:
                    raw = f.readline()
                except socket.timeout:
                    continue
                if not raw:
                    return
                line = raw.decode().rstrip("\n")
                if line == "":
                    if "event" in event:
                        self.notices.append(event)
                    elif "data" in event:
                        self.take(event["id"], event["data"])
                    event = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    event[name] = value
        finally:
            s.close()


class Ws(Client):
    kind = "ws"

    def session(self):
        s = socket.create_connection(("127.0.0.1", NGINX), timeout=30)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(f"GET /ws?topic={TOPIC}&since={self.cursor} HTTP/1.1\r\nHost: t\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            f = s.makefile("rb")
            if b" 101 " not in f.readline():
                return
            while f.readline() not in (b"\r\n", b""):
                pass
            yield True
            while not self.stop:
                try:
                    head = f.read(2)
                except socket.timeout:
                    continue
                if len(head) < 2:
                    return
                opcode, n = head[0] & 0x0F, head[1] & 0x7F
                if n == 126:
                    n = int.from_bytes(f.read(2), "big")
                elif n == 127:
                    n = int.from_bytes(f.read(8), "big")
                payload = f.read(n)
                if opcode == 8:
                    return
                if opcode != 1:
                    continue
                frame = json.loads(payload)
                if "id" in frame:
                    self.take(frame["id"], frame["data"])
                else:
                    self.notices.append(frame)
        finally:
            s.close()


class LongPoll(Client):
    kind = "long-poll"

    def session(self):
        first = True
        while not self.stop:
            c = http.client.HTTPConnection("127.0.0.1", NGINX, timeout=10)
            try:
                c.request("GET", f"/long-poll?topic={TOPIC}&since={self.cursor}&timeout=2")
                r = c.getresponse()
                body = r.read()
            finally:
                c.close()
            if r.status != 200:
                raise ValueError(f"{r.status} {body[:80]!r}")
            yield first
            first = False
            reply = json.loads(body)
            if reply["missed"] or reply["reset"]:
                self.notices.append(reply)
            for m in reply["messages"]:
                self.take(m["id"], m["data"])


def main():
    c = http.client.HTTPConnection("127.0.0.1", PUBLISH, timeout=10)
    c.request("GET", f"/poll?topic={TOPIC}")
    start = json.loads(c.getresponse().read())["next"]
    clients = [cls(start) for cls in (Sse, Ws, LongPoll) for _ in range(3)]
    time.sleep(0.5)
    published = []
    killed_at = None
    for i in range(COUNT):
        c.request("POST", f"/publish?topic={TOPIC}", body=f"m{i}".encode())
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body)
        published.append((json.loads(body)["id"], f"m{i}"))
        if i == COUNT // 3:
            os.kill(VICTIM, signal.SIGKILL)
            killed_at = time.monotonic()
        time.sleep(INTERVAL)
    last = published[-1][0]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(cl.cursor == last for cl in clients):
            break
        time.sleep(0.05)
    for cl in clients:
        cl.stop = True
    ok = True
    gaps = []
    affected = 0
    for cl in clients:
        with cl.lock:
            got = list(cl.got)
        lost = [m for m in published if m not in got]
        dup = len(got) - len(set(got))
        order = got == [m for m in published if m in got]
        if cl.reconnects:
            affected += 1
        gaps.extend(cl.gaps)
        if lost or dup or not order or cl.notices:
            ok = False
            say(f"FAILED: {cl.kind}: lost {len(lost)}, duplicated {dup}, in order {order}, "
                f"notices {cl.notices[:3]}")
    by_kind = {}
    for cl in clients:
        by_kind[cl.kind] = by_kind.get(cl.kind, 0) + (1 if cl.reconnects else 0)
    for kind in ("sse", "ws"):
        if not by_kind.get(kind):
            ok = False
            say(f"FAILED: no {kind} client was on the killed node")
    if not ok:
        raise SystemExit(1)
    worst = max(gaps) if gaps else 0.0
    say(f"ok: 3 nodes behind nginx, one killed (SIGKILL) after {COUNT // 3 + 1} of {COUNT} "
        f"messages: {affected} of {len(clients)} clients reconnected through nginx (SSE "
        f"{by_kind.get('sse', 0)}, WebSocket {by_kind.get('ws', 0)}, long poll "
        f"{by_kind.get('long-poll', 0)} of 3 each) and resumed with their cursors; each of the "
        f"{len(clients)} got all {COUNT}, 0 lost, "
        f"0 duplicated, in order; longest reconnect gap {worst * 1000:.0f} ms")
    assert killed_at


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        say(f"FAILED: {e}")
        raise SystemExit(1)
