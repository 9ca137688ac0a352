#!/usr/bin/env python3
"""The checks of scripts/redis.sh: two pushlab nodes on one real Redis.

    redis_check.py PORT_A PORT_B REDIS_PORT REDIS_PIDFILE NODE_B_PID TIMEOUT_S

Standard library only. Each check prints one line "ok: …" or raises; the
exit status is 0 when every check passed, 1 otherwise. Redis is restarted
by this program (the new PID goes to REDIS_PIDFILE, which the calling
script uses to stop it); node B is paused with SIGSTOP and continued.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

PORT_A, PORT_B, REDIS_PORT = (int(x) for x in sys.argv[1:4])
REDIS_PIDFILE = sys.argv[4]
NODE_B_PID = int(sys.argv[5])
REDIS_TIMEOUT = float(sys.argv[6])
TOPIC = "t"
HISTORY = 300  # the nodes' --history: what Redis keeps, all topics together


def say(text):
    print(f"redis_check: {text}", flush=True)


def wait_for(what, cond, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {limit}s waiting for {what}")


def request(port, method, path, body=b"", headers=None, timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def healthy(port):
    try:
        return request(port, "GET", "/healthz", timeout=2)[0] == 200
    except OSError:
        return False


def seq_of(message_id):
    return int(message_id.rsplit("-", 1)[1])


def epoch_of(message_id):
    return message_id.rsplit("-", 1)[0]


class Publisher:
    """POSTs on one keep-alive connection."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def publish(self, data):
        self.conn.request("POST", f"/publish?topic={TOPIC}", body=data.encode())
        r = self.conn.getresponse()
        body = r.read()
        return r.status, dict(r.getheaders()), body


def report_thread_death(args):
    say(f"a subscriber's thread failed: {args.exc_type.__name__}: {args.exc_value}")


threading.excepthook = report_thread_death


class Subscriber(threading.Thread):
    """An SSE stream, parsed as it arrives: events and heartbeats."""

    def __init__(self, port, last_event_id=None):
        super().__init__(daemon=True)
        self.port = port
        self.events = []  # dicts: id, event, data
        self.pings = 0
        self.lock = threading.Lock()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        self.sock.sendall(
            f"GET /events?topic={TOPIC} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()
        )
        self.start()

    def run(self):
        f = self.sock.makefile("rb")
        status = f.readline()
        assert b" 200 " in status, status
        while f.readline() not in (b"\r\n", b""):
            pass
        event = {}
        for raw in f:
            line = raw.decode().rstrip("\n")
            with self.lock:
                if line == "":
                    if "data" in event:
                        self.events.append(event)
                    event = {}
                elif line.startswith(":"):
                    self.pings += 1
                else:
                    name, _, value = line.partition(": ")
                    if name == "data" and "data" in event:
                        event["data"] += "\n" + value
                    else:
                        event[name] = value

    def messages(self):
        with self.lock:
            return [e for e in self.events if "event" not in e]

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def close(self):
        self.sock.close()


def check_concurrent_publishing(subs):
    """Two nodes publish at once: one order, every id once, on both nodes."""
    n = 100
    results = {}

    def run(port, name):
        p = Publisher(port)
        ids = []
        for i in range(n):
            status, _, body = p.publish(f"{name}{i}")
            assert status == 200, (status, body)
            ids.append(json.loads(body)["id"])
        results[name] = ids

    threads = [threading.Thread(target=run, args=(port, name)) for port, name in
               ((PORT_A, "a"), (PORT_B, "b"))]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - start
    for name, ids in results.items():
        seqs = [seq_of(i) for i in ids]
        assert seqs == sorted(seqs) and len(set(seqs)) == n, f"{name}: {seqs}"
    every = sorted(seq_of(i) for ids in results.values() for i in ids)
    assert every == list(range(every[0], every[0] + 2 * n)), "ids are consecutive, each once"
    try:
        wait_for("both streams to carry all 200",
                 lambda: all(len(s.messages()) >= 2 * n for s in subs))
    except AssertionError:
        counts = [len(s.messages()) for s in subs]
        notices = [[e for e in s.snapshot() if "event" in e] for s in subs]
        every = {seq_of(i) for ids in results.values() for i in ids}
        lost = [sorted(every - {seq_of(m["id"]) for m in s.messages()}) for s in subs]
        raise AssertionError(f"the streams carried {counts} of {2 * n}; notices {notices}; "
                             f"not seen: {lost}") from None
    seen = [[(m["id"], m["data"]) for m in s.messages()] for s in subs]
    assert seen[0] == seen[1], "the same messages in the same order on both nodes"
    seqs = [seq_of(i) for i, _ in seen[0]]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), "ids strictly increasing"
    assert len(seen[0]) == 2 * n
    say(f"ok: 2 nodes x {n} concurrent publishes in {took:.2f}s: ids "
        f"{seqs[0]}..{seqs[-1]} strictly increasing, each once; both nodes' "
        f"subscribers saw the same {2 * n} messages in the same order")
    return seen[0]


def check_resume_on_other_node(ids):
    """A cursor from node A resumes on node B exactly (poll and SSE)."""
    cursor = ids[-6]
    status, _, body = request(PORT_B, "GET", f"/poll?topic={TOPIC}&since={cursor}")
    reply = json.loads(body)
    got = [m["id"] for m in reply["messages"]]
    assert status == 200 and got == ids[-5:], (status, reply)
    assert reply["missed"] == 0 and reply["reset"] is False, reply
    # An older cursor: what Redis no longer keeps is counted, exactly.
    old = ids[-(HISTORY + 11)]
    reply = json.loads(request(PORT_B, "GET", f"/poll?topic={TOPIC}&since={old}")[2])
    kept = len(reply["messages"])
    assert reply["missed"] + kept == HISTORY + 10, reply["missed"]
    sub = Subscriber(PORT_B, last_event_id=cursor)
    wait_for("the resumed stream's replay", lambda: len(sub.messages()) >= 5)
    resumed = [m["id"] for m in sub.messages()]
    sub.close()
    assert resumed == ids[-5:], resumed
    say(f"ok: cursor {cursor} from node A resumed on node B exactly (poll and "
        f"Last-Event-ID: the 5 after it, missed 0); a cursor {HISTORY + 10} back: "
        f"{kept} kept + missed {reply['missed']}")


def check_binary_across_nodes(subs):
    """A binary message published on node A reads back on node B as binary,
    and reaches both nodes' streams as `event: binary`."""
    _, _, body = request(PORT_A, "POST", f"/publish?topic={TOPIC}", body=b"\x00\xff\n",
                         headers={"Content-Type": "application/octet-stream"})
    msg_id = json.loads(body)["id"]
    since = f"{epoch_of(msg_id)}-{seq_of(msg_id) - 1}"
    reply = json.loads(request(PORT_B, "GET", f"/poll?topic={TOPIC}&since={since}")[2])
    got = reply["messages"]
    assert got == [{"topic": TOPIC, "id": msg_id, "encoding": "base64", "data": "AP8K"}], got
    # Waited for on every stream, so that the next check's "before" counts
    # it (node B's stream gets it through Redis, a moment after the poll).
    for s in subs:
        wait_for("the binary message on every stream", lambda s=s: any(
            e.get("id") == msg_id and e.get("event") == "binary" for e in s.snapshot()))
    say(f"ok: a binary message published on node A ({msg_id}) read back on node B as binary; "
        f"both nodes' streams got it as `event: binary`")


def start_redis():
    proc = subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(REDIS_PIDFILE, "w") as f:
        f.write(str(proc.pid))
    wait_for("redis-server to listen", lambda: _redis_up())
    return proc


def _redis_up():
    try:
        socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=0.2).close()
        return True
    except OSError:
        return False


def redis_pid():
    with open(REDIS_PIDFILE) as f:
        return int(f.read().strip())


def check_redis_restarted_empty(subs, old_id):
    """Redis killed and started empty: a new epoch, `reset` on every
    stream and on an old cursor, then publishing works again."""
    before = [len(s.snapshot()) for s in subs]
    pid = redis_pid()
    os.kill(pid, signal.SIGKILL)
    wait_for("the old redis-server to be gone", lambda: not _alive(pid))
    killed = time.monotonic()
    start_redis()
    wait_for("both nodes healthy again", lambda: healthy(PORT_A) and healthy(PORT_B), 15)
    back = time.monotonic() - killed
    status, _, body = Publisher(PORT_A).publish("after-restart")
    assert status == 200, (status, body)
    new_id = json.loads(body)["id"]
    assert epoch_of(new_id) != epoch_of(old_id) and seq_of(new_id) == 1, new_id
    for s in subs:
        def told():
            tail = s.snapshot()[before[subs.index(s)]:]
            kinds = [e.get("event", "message") for e in tail]
            return kinds if "message" in kinds else None
        kinds = wait_for("the reset and the new message", told)
        tail = s.snapshot()[before[subs.index(s)]:]
        assert kinds[0] == "reset", kinds
        assert tail[0]["id"] == f"{epoch_of(new_id)}-0", tail[0]
        assert tail[-1]["id"] == new_id and tail[-1]["data"] == "after-restart", tail[-1]
    reply = json.loads(request(PORT_B, "GET", f"/poll?topic={TOPIC}&since={old_id}")[2])
    assert reply["reset"] is True, reply
    say(f"ok: Redis killed and restarted empty: both nodes healthy again "
        f"{back:.2f}s after the kill; every stream got `reset` (id {epoch_of(new_id)}-0) "
        f"then {new_id}; an old cursor reads reset:true")
    return new_id


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def check_redis_paused(subs):
    """Redis paused with SIGSTOP: publishes get 503 within the bound,
    /healthz 503, streams keep their heartbeats; all resumes after SIGCONT."""
    pid = redis_pid()
    pings = [s.pings for s in subs]
    os.kill(pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        status, headers, body = Publisher(PORT_A).publish("while-stopped")
        took = time.monotonic() - start
        assert status == 503, (status, body)
        assert "Retry-After" in headers, headers
        assert took <= REDIS_TIMEOUT + 1.0, f"503 after {took:.2f}s"
        wait_for("/healthz 503 on both nodes",
                 lambda: not healthy(PORT_A) and not healthy(PORT_B), 2 * REDIS_TIMEOUT + 3)
        unhealthy_after = time.monotonic() - start
        why = json.loads(request(PORT_A, "GET", "/healthz")[2])["why"]
        refused = Publisher(PORT_B).publish("refused")
        assert refused[0] == 503, refused
        wait_for("heartbeats while Redis is stopped",
                 lambda: all(s.pings > p for s, p in zip(subs, pings)), 5)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    wait_for("both nodes healthy after SIGCONT", lambda: healthy(PORT_A) and healthy(PORT_B), 15)
    back = time.monotonic() - resumed_at
    before = [len(s.messages()) for s in subs]
    status, _, body = Publisher(PORT_B).publish("after-continue")
    assert status == 200, (status, body)
    new_id = json.loads(body)["id"]
    for s, n in zip(subs, before):
        wait_for("the message after SIGCONT", lambda: any(
            m["id"] == new_id for m in s.messages()[n:]))
    say(f"ok: Redis stopped: a publish got 503 with Retry-After in {took:.2f}s "
        f"(--redis-timeout {REDIS_TIMEOUT:g}s), /healthz 503 on both after "
        f"{unhealthy_after:.2f}s ({why!r}), heartbeats went on; after SIGCONT "
        f"healthy again in {back:.2f}s and {new_id} reached both nodes")


def check_lagging_tail(subs):
    """Node B paused while node A publishes more than Redis keeps: B's
    stream is told `missed` with the exact count of what it never saw."""
    sub_b = subs[1]
    start = len(sub_b.snapshot())
    os.kill(NODE_B_PID, signal.SIGSTOP)
    try:
        p = Publisher(PORT_A)
        ids = []
        for i in range(HISTORY + 70):  # more than Redis keeps
            status, _, body = p.publish(f"lag{i}")
            assert status == 200, (status, body)
            ids.append(json.loads(body)["id"])
    finally:
        os.kill(NODE_B_PID, signal.SIGCONT)
    last = ids[-1]
    wait_for("node B to read the last message", lambda: any(
        e.get("id") == last for e in sub_b.snapshot()[start:]), 15)
    tail = sub_b.snapshot()[start:]
    notices = [e for e in tail if e.get("event") == "missed"]
    assert notices, "a missed notice"
    # Every hole in B's ids is told, with its exact size, in place.
    prev = seq_of(ids[0]) - 1
    told = 0
    pending = 0
    for e in tail:
        if e.get("event") == "missed":
            pending += int(e["data"])
            told += int(e["data"])
            assert seq_of(e["id"]) >= prev + pending, e
            continue
        seq = seq_of(e["id"])
        assert seq - prev - 1 == pending, f"hole {prev}..{seq} but told {pending}"
        prev, pending = seq, 0
    published = len(ids)
    received = len([e for e in tail if "event" not in e])
    assert received + told == published, (received, told, published)
    say(f"ok: node B paused while {published} were published (Redis keeps {HISTORY}): "
        f"B's stream got {received} and `missed` {told}, exact for every hole")
    return ids


def main():
    subs = [Subscriber(PORT_A), Subscriber(PORT_B)]
    time.sleep(0.2)
    check_concurrent_publishing(subs)
    ids = check_lagging_tail(subs)
    check_resume_on_other_node(ids)
    check_binary_across_nodes(subs)
    last = check_redis_restarted_empty(subs, ids[-1])
    check_redis_paused(subs)
    for s in subs:
        s.close()
    assert last


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        say(f"FAILED: {e}")
        raise SystemExit(1)
