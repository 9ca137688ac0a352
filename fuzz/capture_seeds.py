#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (see docs/testing.md).

Two sources:
- spec examples, typed in below with the section they come from;
- real captures: a listener on 127.0.0.1 records the raw bytes that curl and
  the Python `websockets` client send (both optional: a missing tool is
  skipped with a note). The listener answers just enough for the client to
  go on (a 101 with the right accept key, so the WebSocket client sends
  frames).

Every seed of a target that takes a control byte (http_head, ws_protocol,
sse_parser) starts with 0x00, "feed at once"; http_body seeds start with
three (split seed, framing, limit). Run from anywhere:

    python3 fuzz/capture_seeds.py
"""

import asyncio
import base64
import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ----------------------------------------------------------- captures --


class Listener:
    """Accepts connections on 127.0.0.1 and records what each client sends."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.captures = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        conn.settimeout(0.7)
        data = b""
        answered = False
        continued = False
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
                if answered or b"\r\n\r\n" not in data:
                    continue
                head = data.split(b"\r\n\r\n", 1)[0].lower()
                answered = True
                if b"upgrade: websocket" in head:
                    key = [l.split(b":", 1)[1].strip() for l in data.split(b"\r\n")
                           if l.lower().startswith(b"sec-websocket-key:")][0]
                    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                elif b"expect: 100-continue" in head and not continued:
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    continued = True
                    answered = False  # answer again once the body is in
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except (socket.timeout, ConnectionError):
            pass
        finally:
            conn.close()
        self.captures.append(data)

    def take(self, action):
        before = len(self.captures)
        action()
        deadline = time.time() + 3
        while len(self.captures) == before and time.time() < deadline:
            time.sleep(0.05)
        return self.captures[before] if len(self.captures) > before else None


def curl(port, *args):
    if not shutil.which("curl"):
        print("curl not found: skipping curl captures")
        return None
    subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "2", *args],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def websockets_client(port):
    try:
        import websockets.sync.client as ws
    except ImportError:
        print("python websockets not installed: skipping the WebSocket capture")
        return
    try:
        with ws.connect(f"ws://127.0.0.1:{port}/ws?topic=a", open_timeout=2) as c:
            c.send("Hello")
            c.send(b"\x00\x01binary")
            c.send("é" * 40)
            c.ping(b"p")
            c.close(1000, "bye")
    except Exception:
        pass


def captures():
    lis = Listener()
    base = f"http://127.0.0.1:{lis.port}"
    body = "x" * 2000
    with open(os.path.join(HERE, ".chunked-body"), "w") as f:
        f.write("hello\nchunked world\n")
    runs = {
        "curl_get_poll": lambda: curl(lis.port, f"{base}/poll?topic=a&since=0"),
        "curl_head": lambda: curl(lis.port, "-I", f"{base}/poll?topic=a"),
        "curl_http10": lambda: curl(lis.port, "--http1.0", f"{base}/long-poll?topic=a,b&timeout=1"),
        "curl_publish": lambda: curl(lis.port, "-d", "hello", f"{base}/publish?topic=a"),
        "curl_publish_expect": lambda: curl(lis.port, "-H", "Expect: 100-continue",
                                            "-H", "Authorization: Bearer s3cret",
                                            "-d", body, f"{base}/publish?topic=a"),
        "curl_publish_chunked": lambda: curl(lis.port, "-H", "Transfer-Encoding: chunked",
                                             "--data-binary", "@" + os.path.join(HERE, ".chunked-body"),
                                             f"{base}/publish?topic=b"),
        "curl_sse": lambda: curl(lis.port, "-N", "-H", "Accept: text/event-stream",
                                 "-H", "Last-Event-ID: e1-3", f"{base}/events?topic=a,b"),
        "curl_keepalive_two": lambda: curl(lis.port, f"{base}/stats", f"{base}/metrics"),
        "python_websockets": lambda: websockets_client(lis.port),
    }
    for name, action in runs.items():
        data = lis.take(action)
        if not data:
            continue
        # The port is random: write the default one, so seeds do not churn.
        data = data.replace(f"127.0.0.1:{lis.port}".encode(), b"127.0.0.1:8080")
        print(f"captured {name}: {len(data)} bytes")
        head_end = data.find(b"\r\n\r\n") + 4
        put("http_head", name, b"\x00" + data[:head_end])
        put("session_raw", name, data)  # for reading only (not a corpus)
        rest = data[head_end:]
        if name == "python_websockets" and rest:
            put("ws_protocol", name, b"\x00" + rest)
            put("ws_frame", name, rest[:14])
        if name.startswith("curl_publish") and rest:
            chunked = b"chunked" in data[:head_end].lower()
            put("http_body", name, bytes([0, 0 if chunked else 2, 12]) + rest)
    os.remove(os.path.join(HERE, ".chunked-body"))
    shutil.rmtree(os.path.join(CORPUS, "session_raw"), ignore_errors=True)


# ------------------------------------------------------ spec examples --


def spec_examples():
    # RFC 9112 §3 request-line forms, §2.2 leading CRLF and bare LF.
    heads = {
        "rfc9112_origin_form": b"GET /where?q=now HTTP/1.1\r\nHost: www.example.org\r\n\r\n",
        "rfc9112_absolute_form": b"GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\nHost: www.example.org\r\n\r\n",
        "rfc9112_asterisk_form": b"OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n",
        "rfc9112_leading_crlf": b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "rfc9112_bare_lf": b"GET / HTTP/1.1\nHost: a\n\n",
        "rfc9112_cl_and_te": b"POST /publish?topic=a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "rfc9112_repeated_cl": b"POST /publish?topic=a HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n",
        "rfc9112_http10_te": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "rfc9112_obs_fold": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        "rfc6455_handshake": b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
                             b"Sec-WebSocket-Version: 13\r\n\r\n",
    }
    for name, h in heads.items():
        put("http_head", name, b"\x00" + h)

    # RFC 9112 §7.1 chunked bodies (with an extension and a trailer).
    put("http_body", "rfc9112_chunked", b"\x00\x00\x0c" + b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nExpires: never\r\n\r\n")
    put("http_body", "rfc9112_chunked_split", b"\x03\x00\x0c" + b"1\r\na\r\n0\r\n\r\n")
    put("http_body", "content_length", b"\x00\x02\x0c" + b"0123456789")

    # Query strings: pushlab's parameters (DESIGN.md §1).
    for name, q in {
        "poll": b"topic=a,b,c&since=e1-42",
        "since_zero": b"topic=a&since=0",
        "long_poll": b"topic=a&since=e1-7&timeout=500ms",
        "repeated_topic": b"topic=a&topic=b%2Cc&timeout=2m",
        "plus_and_percent": b"topic=a+b&last_event_id=%65%31-9",
        "bad_utf8": b"topic=%FF",
    }.items():
        put("query", name, q)

    # RFC 6455 §5.7 examples, as frames (ws_frame) and as a client stream
    # (ws_protocol, which expects masked frames: the masked ones).
    frames = {
        "rfc6455_hello_unmasked": bytes.fromhex("810548656c6c6f"),
        "rfc6455_hello_masked": bytes.fromhex("818537fa213d7f9f4d5158"),
        "rfc6455_fragment_1": bytes.fromhex("010348656c"),
        "rfc6455_fragment_2": bytes.fromhex("80026c6f"),
        "rfc6455_ping": bytes.fromhex("890548656c6c6f"),
        "rfc6455_pong_masked": bytes.fromhex("8a8537fa213d7f9f4d5158"),
        "rfc6455_256_bytes": bytes.fromhex("827e0100"),
        "rfc6455_64k": bytes.fromhex("827f0000000000010000"),
        "close_1000": bytes.fromhex("880203e8"),
    }
    for name, f in frames.items():
        put("ws_frame", name, f)
    key = bytes.fromhex("37fa213d")

    def masked(opcode_byte, payload):
        m = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        n = len(payload)
        if n < 126:
            return bytes([opcode_byte, 0x80 | n]) + key + m
        return bytes([opcode_byte, 0x80 | 126]) + n.to_bytes(2, "big") + key + m

    put("ws_protocol", "rfc6455_hello", b"\x00" + masked(0x81, b"Hello"))
    put("ws_protocol", "fragmented_with_ping",
        b"\x00" + masked(0x01, b"Hel") + masked(0x89, b"ping") + masked(0x80, b"lo"))
    put("ws_protocol", "close_with_reason", b"\x00" + masked(0x88, b"\x03\xe8bye"))
    put("ws_protocol", "utf8_split", b"\x00" + masked(0x01, "κό".encode()[:3]) + masked(0x80, "κό".encode()[3:]))
    put("ws_protocol", "binary_300", b"\x00" + masked(0x82, bytes(range(256)) + b"x" * 44))

    # WHATWG HTML §9.2.6 examples and pushlab's own stream (DESIGN.md §1).
    sse = {
        "whatwg_stock": b"data: YHOO\ndata: +2\ndata: 10\n\n",
        "whatwg_comment_and_ids": b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
        "whatwg_two_events": b"data\n\ndata\ndata\n\ndata:\n",
        "whatwg_spaces": b"data:test\n\ndata: test\n\n",
        "crlf_and_cr": b"event: add\r\ndata: 73857293\r\n\r\nevent: remove\rdata: 2153\r\rretry: 1000\r\n\r\n",
        "bom": b"\xef\xbb\xbfdata: after a BOM\n\n",
        "pushlab_stream": b"retry: 2000\n\nevent: missed\nid: e1-3\ndata: 2\n\nid: e1-4\ndata: hello\ndata: world\n\n: ping\n\n"
                          b"id: e1-5\ndata: {\"topic\":\"a\",\"id\":\"e1-5\",\"data\":\"x\"}\n\nevent: reset\ndata: true\n\n",
    }
    for name, s in sse.items():
        put("sse_parser", name, b"\x00" + s)

    # ws_handshake takes structured input (`arbitrary`); its corpus is grown
    # by the fuzzer and minimised, like the session target's.


if __name__ == "__main__":
    spec_examples()
    captures()
