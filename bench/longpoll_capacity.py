#!/usr/bin/env python3
"""Held long-poll capacity: park N requests on one topic, measure the
server's RSS per held request, publish once, and time until the last
response is read. Loopback only; bounded in time; stdlib only.

Usage: bench/longpoll_capacity.py --url http://127.0.0.1:PORT --pid PID [-n 10000]
"""
import argparse, json, selectors, socket, sys, time, urllib.request


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stats(base):
    with urllib.request.urlopen(base + "/stats", timeout=10) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--deadline", type=float, default=120.0)
    a = ap.parse_args()
    host, port = a.url.split("//")[1].rstrip("/").split(":")
    port = int(port)
    started = time.monotonic()
    before = rss_kib(a.pid)
    sel = selectors.DefaultSelector()
    req = b"GET /long-poll?topic=capacity&timeout=100 HTTP/1.1\r\nHost: x\r\n\r\n"
    socks = []
    for i in range(a.n):
        s = socket.create_connection((host, port))
        s.sendall(req)
        s.setblocking(False)
        socks.append(s)
    while stats(a.url)["transports"]["long_poll"]["holds_active"] < a.n:
        if time.monotonic() - started > a.deadline:
            sys.exit("timed out waiting for the holds")
        time.sleep(0.05)
    held = rss_kib(a.pid)
    for s in socks:
        sel.register(s, selectors.EVENT_READ, bytearray())
    t0 = time.monotonic()
    body = b"wake"
    p = socket.create_connection((host, port))
    p.sendall(b"POST /publish?topic=capacity HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n" + body)
    done = 0
    last = t0
    while done < a.n and time.monotonic() - t0 < a.deadline:
        for key, _ in sel.select(timeout=1):
            chunk = key.fileobj.recv(65536)
            buf = key.data
            buf += chunk
            if b"\r\n\r\n" in buf and buf.endswith(b"}"):
                sel.unregister(key.fileobj)
                done += 1
                last = time.monotonic()
    print(json.dumps({
        "parked": a.n,
        "answered": done,
        "rss_before_kib": before,
        "rss_held_kib": held,
        "rss_per_held_request_bytes": round((held - before) * 1024 / a.n),
        "publish_to_last_response_ms": round((last - t0) * 1000, 1),
    }))
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
