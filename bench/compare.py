#!/usr/bin/env python3
"""pushlab side by side with Nchan, tokio-tungstenite and Node ws, in one run
on one machine. docs/performance.md explains the method and the figures.

Every server runs pinned to core 0 (`taskset -c 0`), the load generator
(bench/loadgen) to core 1. The script installs what it needs (nginx +
libnginx-mod-nchan and wrk from Debian, `ws` from npm into bench/node), builds
pushlab, the load generator and the tokio echo server in release mode, runs
every test for a bounded time, and prints one Markdown table per family with
ratios. Raw results go to $CARGO_TARGET_DIR/bench/results.json.

    python3 bench/compare.py                 # everything, about 10 minutes
    python3 bench/compare.py --only echo     # one family: echo fanout release idle wrk deflate
    python3 bench/compare.py --duration 3    # shorter runs (smoke test)

Environment: CARGO_TARGET_DIR (default ./target) for builds and the nginx
prefix; run as root for the apt-get step (skipped when all is installed).
"""
import argparse, json, os, resource, shutil, signal, socket, subprocess, sys, time

from benchlib import log, ms, num, run, run_loadgen, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
RELEASE = os.path.join(TARGET, "release")
WORK = os.path.join(TARGET, "bench")
NCHAN_SO = "/usr/lib/nginx/modules/ngx_nchan_module.so"
PORTS = {"pushlab": 18200, "nchan": 18100, "tokio": 18300, "node": 18400, "floor": 18500,
         "pushlab-plain": 18210, "node-fanout": 18410}
SERVER_CORE, LOAD_CORE = "0", "1"


# ---------------------------------------------------------------- install

def ensure_installed():
    """Idempotent: installs only what is missing."""
    apt = []
    if not (shutil.which("nginx") and os.path.exists(NCHAN_SO)):
        apt += ["nginx-light", "libnginx-mod-nchan"]
    if not shutil.which("wrk"):
        apt += ["wrk"]
    if not shutil.which("node") or not shutil.which("npm"):
        apt += ["nodejs", "npm"]
    if not shutil.which("taskset"):
        apt += ["util-linux"]
    if apt:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update"], env=env)
        run(["apt-get", "install", "-y", "--no-install-recommends"] + apt, env=env)
    if not os.path.exists(os.path.join(BENCH, "node", "node_modules", "ws")):
        run(["npm", "install", "--no-audit", "--no-fund", "--prefix", os.path.join(BENCH, "node")])
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    run(["cargo", "build", "--release", "--bin", "pushlab"], cwd=ROOT, env=env)
    for crate in ("loadgen", "tokio-echo"):
        run(["cargo", "build", "--release", "--manifest-path",
             os.path.join(BENCH, crate, "Cargo.toml")], env=env)
    os.makedirs(WORK, exist_ok=True)


# ---------------------------------------------------------------- servers

class Server:
    """One server pinned to the server core; `pid` is the process whose
    RSS is the server's (nginx: the single worker)."""

    def __init__(self, name):
        self.name = name
        self.port = PORTS[name]
        pin = ["taskset", "-c", SERVER_CORE]
        out = open(os.path.join(WORK, f"{name}.log"), "w")
        if name in ("pushlab", "pushlab-plain"):
            cmd = [os.path.join(RELEASE, "pushlab"), "--addr", f"127.0.0.1:{self.port}",
                   "--max-connections", "200000", "--max-connections-per-ip", "200000", "--heartbeat", "10m", "--ws-ping", "10m",
                   "--idle-timeout", "10m", "--long-poll-max", "10m"]
            if name == "pushlab-plain":
                # The deflate family's uncompressed baseline.
                cmd += ["--ws-deflate", "off"]
        elif name == "nchan":
            prefix = os.path.join(WORK, "nchan")
            os.makedirs(prefix, exist_ok=True)
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            conf = open(os.path.join(BENCH, "nchan.conf")).read()
            conf = (conf.replace("@PORT@", str(self.port)).replace("@PREFIX@", prefix)
                    .replace("worker_rlimit_nofile 200000", f"worker_rlimit_nofile {nofile}"))
            path = os.path.join(prefix, "nginx.conf")
            open(path, "w").write(conf)
            cmd = ["nginx", "-c", path, "-p", prefix]
        elif name == "tokio":
            cmd = [os.path.join(RELEASE, "tokio-echo"), f"127.0.0.1:{self.port}"]
        elif name == "floor":
            # Not a server anyone would run: the least work per released
            # long poll (bench/loadgen/src/floor.rs), the kernel's share.
            cmd = [os.path.join(RELEASE, "loadgen"), "floor", "--addr", f"127.0.0.1:{self.port}"]
        elif name == "node":
            cmd = ["node", os.path.join(BENCH, "node", "echo.js"), str(self.port)]
        elif name == "node-fanout":
            # ws with perMessageDeflate, threshold 0 (bench/node/fanout.js).
            cmd = ["node", os.path.join(BENCH, "node", "fanout.js"), str(self.port), "deflate"]
        self.proc = subprocess.Popen(pin + cmd, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_port(self.port, self.proc, f"server on :{self.port}")
        self.pid = self.proc.pid
        if name == "nchan":
            for _ in range(100):
                kids = open(f"/proc/{self.pid}/task/{self.pid}/children").read().split()
                if kids:
                    break
                time.sleep(0.05)
            self.pid = int(kids[0])
        time.sleep(0.3)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if self.name != "nchan" else signal.SIGQUIT)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def loadgen(mode, timeout, srv=None, **flags):
    """Runs the load generator on the load core; with `srv`, the load
    generator also reports the server's CPU time and syscalls (perf stat)
    over the measured phase of the run."""
    cmd = ["taskset", "-c", LOAD_CORE, os.path.join(RELEASE, "loadgen"), mode]
    for k, v in flags.items():
        cmd += [f"--{k}", str(v)]
    if srv and mode != "idle":
        cmd += ["--pid", str(srv.pid)]
    return run_loadgen(cmd, timeout)


# ---------------------------------------------------------------- tests

def t_echo(a, R):
    conns = a.echo_conns
    for name in ("pushlab", "tokio", "node"):
        with Server(name) as s:
            path = "/echo" if name == "pushlab" else "/"
            # Depth 1: ping-pong, one message per round trip. Depth 8: the
            # client pipelines, as a chatty client or a game does.
            for size, depth in ((16, 1), (1024, 1), (65536, 1), (16, 8), (1024, 8)):
                R[("echo", name, size, depth)] = loadgen(
                    "echo", a.duration + 60, s, addr=f"127.0.0.1:{s.port}", path=path,
                    conns=conns, size=size, depth=depth, duration=a.duration, label=name)


def t_fanout(a, R):
    for name in ("pushlab", "nchan"):
        for n in (1000, 10000):
            for t in ("sse", "ws", "longpoll"):
                # Window 1: one message at a time, nothing to batch. Long
                # polling is measured with the wide window only.
                windows = [a.window] if t == "longpoll" else [a.window, 1]
                for w in windows:
                    # A fresh server per run: no run inherits another's heap.
                    with Server(name) as s:
                        R[("fanout", name, t, n, w)] = loadgen(
                            "fanout", a.duration + 180, s, addr=f"127.0.0.1:{s.port}",
                            server=name, transport=t, subs=n, duration=a.duration, window=w,
                            size=a.size, label=name)


DEFLATE_SERVERS = ("pushlab", "pushlab-plain", "node-fanout")


def t_deflate(a, R):
    # Compressed fan-out: every subscriber offers permessage-deflate and
    # inflates what it gets; the message is a ~380-byte JSON dashboard update
    # (bench/loadgen/src/deflate.rs). pushlab compresses each message once for
    # all subscribers; Node ws compresses it once per subscriber;
    # pushlab-plain (--ws-deflate off) declines the offer: the uncompressed
    # baseline. One warm-up message reaches every subscriber before the
    # measured phase (Node ws sets up a zlib stream per socket on its first
    # message: 10,000 of them take longer than a whole run), and a message
    # counts as lost only after 60 s, so a slow server's CPU time is not spent
    # on messages the run then gives up on.
    for n in (1000, 10000):
        for w in (a.window, 1):
            for name in DEFLATE_SERVERS:
                with Server(name) as s:
                    R[("deflate", name, n, w)] = loadgen(
                        "fanout", a.duration + 420, s, addr=f"127.0.0.1:{s.port}",
                        server="node" if name == "node-fanout" else "pushlab", transport="ws",
                        subs=n, duration=a.duration, window=w, deflate=1, body="json",
                        warmup=1, **{"give-up": 60}, label=name)


def t_release(a, R):
    # reissue=1: every released client asks again at once, as real ones do,
    # so the server also reads 10,000 new requests during the release;
    # reissue=0: clients only read, the release alone is measured.
    for name in ("pushlab", "nchan", "floor"):
        with Server(name) as s:
            for reissue in (1, 0):
                for i in range(a.release_runs):
                    R[("release", name, reissue, i)] = loadgen(
                        "fanout", 240, s, addr=f"127.0.0.1:{s.port}",
                        server="nchan" if name == "nchan" else "pushlab",
                        transport="longpoll", subs=10000, messages=1, settle=2, size=a.size,
                        topic=f"release{reissue}{i}", reissue=reissue, label=name)


def t_idle(a, R):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    sizes = [10000] + [n for n in (20000, 50000) if n + 200 <= hard]
    if hard < 50200:
        sizes.append(hard - 200)
    for name in ("pushlab", "nchan"):
        for t in ("sse", "ws"):
            for n in sorted(set(sizes)):
                with Server(name) as s:
                    R[("idle", name, t, n)] = loadgen(
                        "idle", 400, addr=f"127.0.0.1:{s.port}", server=name, transport=t,
                        conns=n, pid=s.pid, settle=2, label=name)


def t_wrk(a, R):
    with Server("pushlab") as s:
        url = f"http://127.0.0.1:{s.port}/poll?topic=bench"
        cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c50", f"-d{int(a.wrk_seconds)}s", url]
        log("+", " ".join(cmd))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.wrk_seconds + 30).stdout
        log(out)
        rps = next((l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")), "0")
        lat = next((l.split()[1:3] for l in out.splitlines() if l.strip().startswith("Latency")), ["?", "?"])
        R[("wrk",)] = {"requests_per_s": float(rps), "latency_avg": lat[0], "latency_stdev": lat[1],
                       "command": " ".join(cmd[3:])}


# ---------------------------------------------------------------- report

def ratio(x, y):
    return f"{x / y:.2f}×" if y else "–"


def per(r, what, count_key):
    """Server CPU µs or syscalls per delivered message."""
    n = num(r, count_key)
    if what == "cpu":
        return f"{num(r, 'server_cpu_s') * 1e6 / n:.1f}" if n else "–"
    calls = num(r, "server_syscalls")
    return f"{calls / n:.2f}" if n and calls > 0 else "–"


def report(R, meta):
    lines = [f"Machine: {meta['cpus']} cores, {meta['date']}, load average before / after: "
             f"{meta['load_before']} / {meta['load_after']}; servers on core {SERVER_CORE}, "
             f"load generator on core {LOAD_CORE}; {meta['duration']} s per run.", ""]
    if any(k[0] == "fanout" for k in R):
        lines += ["### Fan-out: one publisher, N subscribers, "
                  f"{meta['size']} B messages, publishes pipelined, W in flight", "",
                  "| transport | N | W | pushlab deliveries/s | Nchan deliveries/s | ratio | "
                  "pushlab p50 / p99 / max ms | Nchan p50 / p99 / max ms | lost (pushlab / Nchan) | "
                  "server CPU µs per delivery (pushlab / Nchan) | syscalls per delivery (pushlab / Nchan) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for t in ("sse", "ws", "longpoll"):
            windows = sorted({k[4] for k in R if k[0] == "fanout"}, reverse=True)
            for w, n in [(w, n) for w in windows for n in (1000, 10000)]:
                p, q = R.get(("fanout", "pushlab", t, n, w)), R.get(("fanout", "nchan", t, n, w))
                if not p or not q:
                    continue
                lines.append(
                    f"| {t} | {n} | {w} | {num(p, 'deliveries_per_s'):,.0f} | {num(q, 'deliveries_per_s'):,.0f} | "
                    f"{ratio(num(p, 'deliveries_per_s'), num(q, 'deliveries_per_s'))} | "
                    f"{ms(num(p, 'p50_us'))} / {ms(num(p, 'p99_us'))} / {ms(num(p, 'max_us'))} | "
                    f"{ms(num(q, 'p50_us'))} / {ms(num(q, 'p99_us'))} / {ms(num(q, 'max_us'))} | "
                    f"{int(num(p, 'lost'))} / {int(num(q, 'lost'))} | "
                    f"{per(p, 'cpu', 'deliveries')} / {per(q, 'cpu', 'deliveries')} | "
                    f"{per(p, 'sys', 'deliveries')} / {per(q, 'sys', 'deliveries')} |")
        lines.append("")
    dfl = {k: v for k, v in R.items() if k[0] == "deflate"}
    if dfl:
        body = next((int(num(r, "body_bytes")) for r in dfl.values() if num(r, "body_bytes")), "?")
        lines += ["### Compressed WebSocket fan-out: one publisher, N subscribers that offer "
                  f"permessage-deflate, a {body}-byte JSON update, W in flight", "",
                  "`pushlab` compresses each message once for every subscriber; `node-fanout` is Node "
                  "`ws` with `perMessageDeflate` (threshold 0, server_no_context_takeover), which "
                  "compresses it for each subscriber; `pushlab-plain` is pushlab with `--ws-deflate off` "
                  "(the offer declined, frames uncompressed). Every subscriber inflates and checks "
                  "every message.", "",
                  "| N | W | server | deliveries/s | server CPU s | deliveries per server CPU-s | "
                  "CPU µs per delivery | p50 / p99 ms | wire bytes per delivery | compressed frames | "
                  "lost / corrupt |",
                  "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for n, w in sorted({k[2:] for k in dfl}, key=lambda k: (k[0], -k[1])):
            for name in DEFLATE_SERVERS:
                r = dfl.get(("deflate", name, n, w))
                if not r:
                    continue
                cpu, d = num(r, "server_cpu_s"), num(r, "deliveries")
                lines.append(
                    f"| {n} | {w} | {name} | {num(r, 'deliveries_per_s'):,.0f} | {cpu:.3f} | "
                    f"{d / cpu if cpu else 0:,.0f} | {per(r, 'cpu', 'deliveries')} | "
                    f"{ms(num(r, 'p50_us'))} / {ms(num(r, 'p99_us'))} | {num(r, 'wire_bytes_per_delivery'):.1f} | "
                    f"{int(num(r, 'compressed_frames')):,} | {int(num(r, 'lost'))} / {int(num(r, 'corrupt'))} |")
        lines += ["", "| N | W | pushlab deliveries per CPU-s ÷ Node ws's (target ≥ 10×) | "
                  "pushlab CPU per delivery, compressed ÷ uncompressed (target ≤ 1.3×) |",
                  "| ---: | ---: | ---: | ---: |"]
        for n, w in sorted({k[2:] for k in dfl}, key=lambda k: (k[0], -k[1])):
            get = lambda name: dfl.get(("deflate", name, n, w), {})
            dpc = lambda r: num(r, "deliveries") / num(r, "server_cpu_s") if num(r, "server_cpu_s") else 0
            p, u, q = dpc(get("pushlab")), dpc(get("pushlab-plain")), dpc(get("node-fanout"))
            lines.append(f"| {n} | {w} | {ratio(p, q)} | {ratio(u, p)} |")
        lines.append("")
    rel = {k: v for k, v in R.items() if k[0] == "release"}
    if rel:
        lines += ["### Long polling: 10,000 parked requests released by one publish", "",
                  "`floor` is bench/loadgen/src/floor.rs: one prebuilt `write` per parked socket "
                  "and nothing else, the least any one-threaded server can do.", "",
                  "| server | clients ask again | run | last response after (ms) | responses/s | "
                  "p50 / p99 ms | lost | server CPU µs per response | syscalls per response |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for (_, name, reissue, i), r in sorted(rel.items(), key=lambda kv: (kv[0][1], -kv[0][2], kv[0][3])):
            last = num(r, "last_us")
            rate = num(r, "deliveries") / (last / 1e6) if last else 0
            lines.append(f"| {name} | {'yes' if reissue else 'no'} | {i + 1} | {ms(last)} | {rate:,.0f} | "
                         f"{ms(num(r, 'p50_us'))} / {ms(num(r, 'p99_us'))} | {int(num(r, 'lost'))} | "
                         f"{per(r, 'cpu', 'deliveries')} | {per(r, 'sys', 'deliveries')} |")
        lines.append("")
    if any(k[0] == "echo" for k in R):
        lines += [f"### WebSocket echo: {meta['echo_conns']} connections, D messages in flight each", "",
                  "| size | D | pushlab msg/s | tokio-tungstenite msg/s | Node ws msg/s | vs tokio | vs Node | "
                  "p99 RTT ms (pushlab / tokio / Node) | server CPU µs per message (pushlab / tokio / Node) | "
                  "syscalls per message (pushlab / tokio / Node) |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for size, depth in sorted({k[2:] for k in R if k[0] == "echo"}, key=lambda k: (k[1], k[0])):
            p, t, n = (R.get(("echo", s, size, depth), {}) for s in ("pushlab", "tokio", "node"))
            lines.append(
                f"| {size} | {depth} | {num(p, 'messages_per_s'):,.0f} | {num(t, 'messages_per_s'):,.0f} | "
                f"{num(n, 'messages_per_s'):,.0f} | {ratio(num(p, 'messages_per_s'), num(t, 'messages_per_s'))} | "
                f"{ratio(num(p, 'messages_per_s'), num(n, 'messages_per_s'))} | "
                f"{ms(num(p, 'p99_us'))} / {ms(num(t, 'p99_us'))} / {ms(num(n, 'p99_us'))} | "
                f"{per(p, 'cpu', 'messages')} / {per(t, 'cpu', 'messages')} / {per(n, 'cpu', 'messages')} | "
                f"{per(p, 'sys', 'messages')} / {per(t, 'sys', 'messages')} / {per(n, 'sys', 'messages')} |")
        lines.append("")
    idle = {k: v for k, v in R.items() if k[0] == "idle"}
    if idle:
        lines += ["### Idle connections: server RSS growth per connection", "",
                  "| transport | N | pushlab B/conn | Nchan B/conn | ratio | open (pushlab / Nchan) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for t in ("sse", "ws"):
            for n in sorted({k[3] for k in idle}):
                p, q = idle.get(("idle", "pushlab", t, n)), idle.get(("idle", "nchan", t, n))
                if not p or not q:
                    continue
                lines.append(f"| {t} | {n} | {num(p, 'bytes_per_conn'):,.0f} | {num(q, 'bytes_per_conn'):,.0f} | "
                             f"{ratio(num(q, 'bytes_per_conn'), num(p, 'bytes_per_conn'))} smaller | "
                             f"{int(num(p, 'open'))} / {int(num(q, 'open'))} |")
        lines.append("")
    if ("wrk",) in R:
        w = R[("wrk",)]
        lines += ["### Short polling, keep-alive (wrk)", "",
                  f"`{w['command']}` against pushlab: **{w['requests_per_s']:,.0f} requests/s**, "
                  f"latency avg {w['latency_avg']} (stdev {w['latency_stdev']}).", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=["fanout", "release", "echo", "idle", "wrk", "deflate"])
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--echo-conns", type=int, default=100)
    ap.add_argument("--release-runs", type=int, default=3)
    ap.add_argument("--wrk-seconds", type=float, default=10)
    ap.add_argument("--no-install", action="store_true")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not a.no_install:
        ensure_installed()
    os.makedirs(WORK, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_before": " ".join(open("/proc/loadavg").read().split()[:3]),
            "duration": a.duration, "window": a.window, "size": a.size, "echo_conns": a.echo_conns}
    R = {}
    tests = {"fanout": t_fanout, "release": t_release, "echo": t_echo, "idle": t_idle, "wrk": t_wrk,
             "deflate": t_deflate}
    started = time.time()
    for name in a.only:
        tests[name](a, R)
    meta["load_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
    meta["seconds"] = round(time.time() - started)
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": [{"key": list(k), **v} for k, v in R.items()]}, f, indent=1)
    print(report(R, meta))
    log(f"done in {meta['seconds']} s; raw results in {os.path.join(WORK, 'results.json')}")


if __name__ == "__main__":
    main()
