"""permessage-deflate (RFC 7692) with an independent client, Python
`websockets` (compression on by default): the extension is agreed, a large
JSON message published compressed reaches a compressed subscriber intact, a
compressed echo comes back intact, and /stats shows compressed frames out
and compressed messages in. Prints "PASS: ..." or "FAIL: ...", exits 0 or 1.

Usage: python deflate.py http://127.0.0.1:PORT/
"""

import asyncio
import json
import sys
import urllib.request

from websockets.asyncio.client import connect


def fail(why):
    print(f"FAIL: {why}")
    sys.exit(1)


def stats(base):
    with urllib.request.urlopen(base + "stats", timeout=10) as r:
        return json.load(r)["transports"]["ws"]


async def main(base):
    ws_base = "ws" + base[len("http"):]
    before = stats(base)
    async with connect(ws_base + "ws?topic=deflatepy") as sub, connect(
        ws_base + "ws?topic=deflatepy"
    ) as pub, connect(ws_base + "echo") as echo:
        for ws in (sub, pub, echo):
            agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            if "permessage-deflate" not in agreed:
                fail(f"no extension agreed: {agreed!r}")
        update = json.dumps({"rows": [{"id": i, "status": "ok", "load": i % 9} for i in range(80)]})
        await pub.send(update)
        for ws in (sub, pub):
            got = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if got["data"] != update:
                fail("the published message arrived changed")
        big = "y" * 65536 + update
        await echo.send(big)
        if await asyncio.wait_for(echo.recv(), 10) != big:
            fail("the compressed echo came back changed")
    after = stats(base)
    out = after["deflate_frames_out"] - before["deflate_frames_out"]
    into = after["deflate_messages_in"] - before["deflate_messages_in"]
    if out < 3:
        fail(f"only {out} compressed frames went out")
    if into < 2:
        fail(f"only {into} compressed messages came in")
    print(f"PASS: websockets permessage-deflate agreed; {out} frames out compressed, {into} compressed messages in")


asyncio.run(main(sys.argv[1]))
