#!/usr/bin/env python3
"""Scale-out on one Redis, measured side by side in one run: pushlab's Redis
log (`--redis`) against Nchan in its Redis mode. docs/performance.md
("Scale-out on one Redis") explains the method and gives the figures.

One redis-server (nothing persisted) on a free loopback port serves the
whole run; every server — the pushlab nodes, the nginx+Nchan instances and
redis-server itself — is pinned to core 0 (`taskset -c 0`), the load
generator (bench/loadgen) to core 1.

- fanout:  2 nodes on the Redis, N SSE subscribers on each, one publisher
           posting to node 1, W messages in flight (pipelined): deliveries/s,
           deliveries per server CPU-second (both nodes' CPU summed; Redis's
           CPU apart), lost. Then the same with two nginx+Nchan instances
           (`nchan_redis_url`, `nchan_use_redis on`, storage mode
           `distributed`) on the same Redis.
- latency: the same two nodes, a few subscribers on each, publishes paced
           at R per second (one at a time, not pipelined): publish → delivery
           p50 / p99 / max on node 1 and on the *other* node; same for Nchan.
- publish: `loadgen publish` (64 keep-alive connections, D publishes in
           flight each, 64-byte bodies) against one node on the Redis and,
           for the ratio, one node with the in-memory log, runs
           interleaved, each row `--repeat` times (5): its median run and
           range are reported, as this shared machine's speed varies by
           ±20 % from one run to the next. Redis's `used_memory` before and
           after, divided by the stream's length (`--history` holds
           100,000), gives Redis memory per 1,000 kept messages.

    python3 bench/scaleout.py                    # everything, about 5 minutes
    python3 bench/scaleout.py --only latency     # fanout latency publish
    python3 bench/scaleout.py --duration 3       # a quick smoke run

Installs redis-server, nginx-light and libnginx-mod-nchan from Debian when
missing (as root), builds pushlab and the load generator in release mode
(CARGO_TARGET_DIR, default ./target). Raw results go to
$CARGO_TARGET_DIR/bench/scaleout.json, logs and nginx.conf files to
$CARGO_TARGET_DIR/bench/scaleout/. Stops everything it started, by PID.
"""
import argparse, json, os, resource, shutil, signal, socket, subprocess, sys, time

from benchlib import log, ms, num, run, run_loadgen, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
RELEASE = os.path.join(TARGET, "release")
WORK = os.path.join(TARGET, "bench", "scaleout")
NCHAN_SO = "/usr/lib/nginx/modules/ngx_nchan_module.so"
SERVER_CORE, LOAD_CORE = "0", "1"
# `--pushlab PATH` replaces it (an A/B of two builds).
PUSHLAB_BIN = [os.path.join(RELEASE, "pushlab")]
PUSHLAB_FLAGS = ["--max-connections", "200000", "--max-connections-per-ip", "200000",
                 "--heartbeat", "10m", "--ws-ping", "10m", "--idle-timeout", "10m",
                 "--long-poll-max", "10m"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ensure_installed(build=True):
    apt = []
    if not shutil.which("redis-server"):
        apt += ["redis-server"]
    if not (shutil.which("nginx") and os.path.exists(NCHAN_SO)):
        apt += ["nginx-light", "libnginx-mod-nchan"]
    if apt:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update"], env=env)
        run(["apt-get", "install", "-y", "--no-install-recommends"] + apt, env=env)
    if build:
        env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
        run(["cargo", "build", "--release", "--bin", "pushlab"], cwd=ROOT, env=env)
        run(["cargo", "build", "--release", "--manifest-path",
             os.path.join(BENCH, "loadgen", "Cargo.toml")], env=env)


# ---------------------------------------------------------------- processes

class Proc:
    """A process this script started, pinned to the server core, stopped by
    its PID (and its own process group: nginx's worker)."""

    def __init__(self, name, cmd, stop_signal=signal.SIGTERM):
        self.name = name
        self.stop_signal = stop_signal
        self.out = open(os.path.join(WORK, f"{name}.log"), "w")
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CORE] + cmd, stdout=subprocess.PIPE
                                     if name.startswith("pushlab") else self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True, text=True)
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def resp(port, *args):
    """One Redis command (RESP2), its reply as bytes or an int."""
    cmd = f"*{len(args)}\r\n" + "".join(f"${len(str(a))}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(cmd.encode())
        buf = b""
        while b"\r\n" not in buf:
            buf += s.recv(65536)
        kind, rest = buf[:1], buf[1:]
        line, _, body = rest.partition(b"\r\n")
        if kind == b":":
            return int(line)
        if kind == b"$":
            n = int(line)
            while len(body) < n + 2:
                body += s.recv(65536)
            return body[:n]
        if kind == b"-":
            raise RuntimeError(line.decode())
        return line


def used_memory(port):
    info = resp(port, "INFO", "memory").decode()
    return int(next(l.split(":")[1] for l in info.split("\r\n") if l.startswith("used_memory:")))


def command_calls(port):
    """Calls per command since the last CONFIG RESETSTAT (INFO commandstats)."""
    info = resp(port, "INFO", "commandstats").decode()
    return {l.split(":")[0][len("cmdstat_"):]: int(l.split("calls=")[1].split(",")[0])
            for l in info.split("\r\n") if l.startswith("cmdstat_")}


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Redis(Proc):
    def __init__(self):
        self.port = free_port()
        super().__init__("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"])
        wait_port(self.port, self.proc, self.name)
        self.version = resp(self.port, "INFO", "server").decode().split("redis_version:")[1].split()[0]


class Pushlab(Proc):
    """A pushlab node; with `redis_port`, on that Redis."""

    def __init__(self, name, redis_port=None, prefix="bench:", extra=()):
        cmd = [PUSHLAB_BIN[0], "serve", "--addr", "127.0.0.1:0"] + PUSHLAB_FLAGS
        if redis_port:
            cmd += ["--redis", f"redis://127.0.0.1:{redis_port}", "--redis-prefix", prefix]
        super().__init__(name, cmd + list(extra))
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            sys.exit(f"{name}: unexpected first line {line!r}")
        self.port = int(line.rsplit(":", 1)[1].strip().strip("/"))
        # The rest of stdout goes to the log file, so the pipe never fills.
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=self.out)
        end = time.time() + 10
        while time.time() < end:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit(f"{name}: /healthz not 200 after 10 s")

    def stop(self):
        super().stop()
        self.drain.wait(timeout=5)


class Nchan(Proc):
    """nginx + Nchan from bench/nchan.conf, with its store in Redis."""

    def __init__(self, name, redis_port):
        self.port = free_port()
        prefix = os.path.join(WORK, name)
        os.makedirs(prefix, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        conf = open(os.path.join(BENCH, "nchan.conf")).read()
        store = ("nchan_shared_memory_size 256M;\n"
                 "    # Scale-out (bench/scaleout.py): every channel lives in Redis, shared\n"
                 "    # by every nginx on it.\n"
                 f"    nchan_redis_url \"redis://127.0.0.1:{redis_port}\";\n"
                 "    nchan_use_redis on;\n"
                 "    nchan_redis_storage_mode distributed;")
        assert "nchan_shared_memory_size 256M;" in conf
        conf = (conf.replace("@PORT@", str(self.port)).replace("@PREFIX@", prefix)
                .replace("worker_rlimit_nofile 200000", f"worker_rlimit_nofile {nofile}")
                .replace("nchan_shared_memory_size 256M;", store))
        path = os.path.join(prefix, "nginx.conf")
        open(path, "w").write(conf)
        super().__init__(name, ["nginx", "-c", path, "-p", prefix], signal.SIGQUIT)
        wait_port(self.port, self.proc, self.name)
        for _ in range(100):
            kids = open(f"/proc/{self.pid}/task/{self.pid}/children").read().split()
            if kids:
                break
            time.sleep(0.05)
        # The single worker does the work; the master only waits.
        self.worker = int(kids[0])
        time.sleep(0.5)


def loadgen(mode, timeout, **flags):
    cmd = ["taskset", "-c", LOAD_CORE, os.path.join(RELEASE, "loadgen"), mode]
    for k, v in flags.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return run_loadgen(cmd, timeout)


# ---------------------------------------------------------------- tests

def pairs(redis, kind):
    """Two nodes of `kind` on `redis`, and the PIDs whose CPU is theirs."""
    if kind == "pushlab":
        nodes = [Pushlab(f"pushlab{i}", redis.port) for i in (1, 2)]
        return nodes, [n.pid for n in nodes]
    nodes = [Nchan(f"nchan{i}", redis.port) for i in (1, 2)]
    return nodes, [n.worker for n in nodes]


def t_fanout(a, R, redis):
    # One publishing connection (the load generator sends one publish per
    # turn of its loop: the server sees them one by one), then W
    # connections (what the window allows leaves together, as a busy
    # publisher's would).
    for conns in a.conns or (1, a.window):
        for kind in a.servers:
            fanout_run(a, R, redis, kind, conns)


def fanout_run(a, R, redis, kind, conns):
    nodes, pids = pairs(redis, kind)
    try:
        resp(redis.port, "CONFIG", "RESETSTAT")
        r = R[("fanout", kind, conns)] = loadgen(
            "fanout", a.duration + 180, addr=f"127.0.0.1:{nodes[0].port}",
            sub_addrs=",".join(f"127.0.0.1:{n.port}" for n in nodes),
            server=kind, transport="sse", subs=2 * a.subs, duration=a.duration,
            window=a.window, size=a.size, pids=",".join(map(str, pids + [redis.pid])),
            publishers=conns, topic=f"fan{os.getpid()}x{conns}", label=kind)
        # How many messages each of pushlab's XREAD replies carried: a batch
        # read together is fanned out together (one write per subscriber).
        r["redis_calls"] = command_calls(redis.port)
    finally:
        for n in nodes:
            n.stop()


def t_latency(a, R, redis):
    # The control: one node with the in-memory log, the same subscribers
    # and rate — what the machine alone adds to the tail latency.
    node = Pushlab("pushlab-latency-memory")
    try:
        R[("latency", "memory")] = loadgen(
            "fanout", a.duration + 60, addr=f"127.0.0.1:{node.port}", server="pushlab",
            transport="sse", subs=2 * a.latency_subs, duration=a.duration, rate=a.rate,
            window=100000, size=a.size, pids=node.pid, topic=f"latm{os.getpid()}", label="memory")
    finally:
        node.stop()
    for kind in a.servers:
        nodes, pids = pairs(redis, kind)
        try:
            R[("latency", kind)] = loadgen(
                "fanout", a.duration + 60, addr=f"127.0.0.1:{nodes[0].port}",
                sub_addrs=",".join(f"127.0.0.1:{n.port}" for n in nodes),
                server=kind, transport="sse", subs=2 * a.latency_subs, duration=a.duration,
                rate=a.rate, window=100000, size=a.size,
                pids=",".join(map(str, pids + [redis.pid])), topic=f"lat{os.getpid()}", label=kind)
        finally:
            for n in nodes:
                n.stop()


def t_publish(a, R, redis):
    # Both nodes up at once (the idle one costs nothing): the memory log, for
    # the ratio, and one node on the Redis with a history long enough to keep
    # 100,000 messages. The runs are interleaved (memory and Redis at D = 1,
    # then at D = 8, --repeat times) so a noisy spell of the machine touches
    # both logs alike; the report gives each one's median and range.
    memory = Pushlab("pushlab-memory")
    mem0 = used_memory(redis.port)
    node = Pushlab("pushlab-publish", redis.port, prefix="benchpub:",
                   extra=["--history", str(a.kept)])
    try:
        for rep in range(a.repeat):
            for depth in (1, 8):
                for kind, n in (("memory", memory), ("redis", node)):
                    cpu0 = cpu_seconds(redis.pid)
                    r = loadgen("publish", a.duration + 60, addr=f"127.0.0.1:{n.port}", conns=64,
                                depth=depth, size=a.size, duration=a.duration, pid=n.pid,
                                label=kind)
                    if kind == "redis":
                        r["redis_cpu_s"] = round(cpu_seconds(redis.pid) - cpu0, 2)
                    R.setdefault(("publish", kind, depth), {"runs": []})["runs"].append(r)
        time.sleep(0.5)
        mem1 = used_memory(redis.port)
        kept = resp(redis.port, "XLEN", "benchpub:log")
        R[("memory",)] = {"before": mem0, "after": mem1, "kept": kept, "size": a.size,
                          "bytes_per_1000": round((mem1 - mem0) / kept * 1000) if kept else 0}
        log("  ", R[("memory",)])
    finally:
        node.stop()
        memory.stop()


def median_run(entry):
    """The run with the median publishes/s of `entry`'s runs, with the range
    of all of them (`low`, `high`) and their number (`n`)."""
    runs = [r for r in entry.get("runs", []) if "error" not in r]
    if not runs:
        return {}
    runs.sort(key=lambda r: num(r, "publishes_per_s"))
    mid = dict(runs[(len(runs) - 1) // 2])
    mid.update(low=num(runs[0], "publishes_per_s"), high=num(runs[-1], "publishes_per_s"),
               n=len(runs))
    return mid


# ---------------------------------------------------------------- report

def report(R, meta):
    lines = [f"{meta['date']}, load average before / after: {meta['load_before']} / "
             f"{meta['load_after']}; redis-server {meta['redis']} and every server pinned to core "
             f"{SERVER_CORE}, the load generator to core {LOAD_CORE}; one run.", ""]
    if any(k[0] == "fanout" for k in R):
        lines += [f"### Fan-out across two nodes on one Redis: {meta['subs']:,} SSE subscribers on "
                  f"each, one publisher (to node 1) over C connections, {meta['size']} B messages, "
                  f"{meta['window']} in flight, {meta['duration']:g} s", "",
                  "| server | C | deliveries/s | deliveries per server CPU-second (both nodes) | "
                  "node 1 + node 2 CPU s | Redis CPU s | deliveries per CPU-second with Redis's | "
                  "p50 / p99 / max ms (node 1; node 2) | lost | published |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        per, notes = {}, []
        for kind, conns in sorted({k[1:] for k in R if k[0] == "fanout"}, key=lambda k: (k[1], k[0] != "pushlab")):
            r = R[("fanout", kind, conns)]
            if "error" in r:
                lines.append(f"| {kind} | {conns} | failed: {r['error']} | | | | | | | |")
                continue
            nodes = num(r, "cpu_s_0") + num(r, "cpu_s_1")
            red = num(r, "cpu_s_2")
            d = num(r, "deliveries")
            per[(kind, conns)] = d / nodes if nodes else 0
            lines.append(
                f"| {kind} | {conns} | {num(r, 'deliveries_per_s'):,.0f} | {per[(kind, conns)]:,.0f} | "
                f"{num(r, 'cpu_s_0'):.2f} + {num(r, 'cpu_s_1'):.2f} | {red:.2f} | "
                f"{d / (nodes + red) if nodes + red else 0:,.0f} | "
                f"{ms(num(r, 'p50_us_0'))} / {ms(num(r, 'p99_us_0'))} / {ms(num(r, 'max_us_0'))}; "
                f"{ms(num(r, 'p50_us_1'))} / {ms(num(r, 'p99_us_1'))} / {ms(num(r, 'max_us_1'))} | "
                f"{int(num(r, 'lost'))} | {int(num(r, 'published'))} |")
            xread = r.get("redis_calls", {}).get("xread", 0)
            if kind == "pushlab" and xread:
                notes.append(f"C = {conns}: {xread:,} `XREAD` replies for "
                             f"{2 * int(num(r, 'published')):,} messages read by the two nodes, "
                             f"{2 * num(r, 'published') / xread:.2f} per read.")
        lines.append("")
        lines += [n + "  " for n in notes]
        for conns in sorted({k[2] for k in R if k[0] == "fanout"}):
            if per.get(("nchan", conns)):
                lines.append(f"pushlab / Nchan, deliveries per server CPU-second, C = {conns}: "
                             f"**{per.get(('pushlab', conns), 0) / per[('nchan', conns)]:.2f}×** "
                             f"(target ≥ 1.5×).  ")
        lines.append("")
    if ("latency", "pushlab") in R:
        lines += [f"### Publish → delivery across nodes: {meta['rate']:g} msg/s paced, "
                  f"{meta['latency_subs']} SSE subscribers on each node, publisher on node 1, "
                  f"{meta['duration']:g} s", "",
                  "| server | same node p50 / p99 / max ms | **other node** p50 / p99 / max ms | "
                  "lost | published | node 1 + node 2 CPU s | Redis CPU s |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for kind in [k for k in ("pushlab", "nchan") if ("latency", k) in R]:
            r = R[("latency", kind)]
            if "error" in r:
                lines.append(f"| {kind} | failed: {r['error']} | | | | | |")
                continue
            lines.append(
                f"| {kind} | {ms(num(r, 'p50_us_0'))} / {ms(num(r, 'p99_us_0'))} / {ms(num(r, 'max_us_0'))} | "
                f"{ms(num(r, 'p50_us_1'))} / {ms(num(r, 'p99_us_1'))} / {ms(num(r, 'max_us_1'))} | "
                f"{int(num(r, 'lost'))} | {int(num(r, 'published'))} | "
                f"{num(r, 'cpu_s_0'):.2f} + {num(r, 'cpu_s_1'):.2f} | {num(r, 'cpu_s_2'):.2f} |")
        m = R.get(("latency", "memory"))
        if m and "error" not in m:
            lines += ["", f"The control, one pushlab node with the in-memory log and all "
                          f"{2 * meta['latency_subs']} subscribers, same rate: p50 / p99 / max "
                          f"{ms(num(m, 'p50_us'))} / {ms(num(m, 'p99_us'))} / {ms(num(m, 'max_us'))} ms, "
                          f"lost {int(num(m, 'lost'))}, node CPU {num(m, 'cpu_s_0'):.2f} s."]
        lines.append("")
    if ("publish", "redis", 1) in R:
        P = {k: median_run(v) for k, v in R.items() if k[0] == "publish"}
        runs = P[("publish", "redis", 1)].get("n", 0)
        lines += [f"### Publish throughput, one node: 64 connections, D publishes in flight each, "
                  f"{meta['size']} B, {meta['duration']:g} s, {runs} runs each (interleaved)", "",
                  "The median run of each row, and the range of all its runs.", "",
                  "| log | D | publishes/s, median | range | p50 / p99 / max ms | refused "
                  "| node CPU s | Redis CPU s |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for kind in ("memory", "redis"):
            for depth in (1, 8):
                r = P.get(("publish", kind, depth), {})
                lines.append(
                    f"| {kind} | {depth} | {num(r, 'publishes_per_s'):,.0f} | "
                    f"{num(r, 'low'):,.0f}–{num(r, 'high'):,.0f} | "
                    f"{ms(num(r, 'p50_us'))} / {ms(num(r, 'p99_us'))} / {ms(num(r, 'max_us'))} | "
                    f"{int(num(r, 'refused'))} | {num(r, 'server_cpu_s'):.2f} | "
                    f"{r.get('redis_cpu_s', '–')} |")
        for depth in (1, 8):
            m, r = P.get(("publish", "memory", depth), {}), P.get(("publish", "redis", depth), {})
            if num(m, "publishes_per_s"):
                lines.append("")
                lines.append(f"Redis / memory at D = {depth} (medians): "
                             f"{num(r, 'publishes_per_s') / num(m, 'publishes_per_s'):.2f}×.")
        mem = R.get(("memory",))
        if mem:
            lines += ["", f"Redis memory: used_memory {mem['before']:,} B before, {mem['after']:,} B "
                          f"after, {mem['kept']:,} messages of {mem['size']} B kept: "
                          f"**{mem['bytes_per_1000']:,} B per 1,000 kept messages** "
                          f"({mem['bytes_per_1000'] / 1000:.0f} B each)."]
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=["fanout", "latency", "publish"])
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--subs", type=int, default=1000, help="SSE subscribers per node (fanout)")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rate", type=float, default=1000, help="publishes per second (latency)")
    ap.add_argument("--latency-subs", type=int, default=10, help="SSE subscribers per node (latency)")
    ap.add_argument("--kept", type=int, default=100000, help="--history of the publish node")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each publish row (median reported)")
    ap.add_argument("--servers", nargs="*", default=["pushlab", "nchan"])
    ap.add_argument("--conns", nargs="*", type=int, help="publishing connections (fanout; default 1 and --window)")
    ap.add_argument("--pushlab", help="the pushlab binary (default: the release build)")
    ap.add_argument("--no-install", action="store_true")
    a = ap.parse_args()
    if a.pushlab:
        PUSHLAB_BIN[0] = os.path.abspath(a.pushlab)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ensure_installed(build=not a.no_install)
    os.makedirs(WORK, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_before": " ".join(open("/proc/loadavg").read().split()[:3]),
            "duration": a.duration, "window": a.window, "size": a.size, "subs": a.subs,
            "rate": a.rate, "latency_subs": a.latency_subs}
    R = {}
    tests = {"fanout": t_fanout, "latency": t_latency, "publish": t_publish}
    started = time.time()
    redis = Redis()
    meta["redis"] = redis.version
    try:
        for name in a.only:
            tests[name](a, R, redis)
    finally:
        redis.stop()
    meta["load_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
    meta["seconds"] = round(time.time() - started)
    with open(os.path.join(os.path.dirname(WORK), "scaleout.json"), "w") as f:
        json.dump({"meta": meta, "results": [{"key": list(k), **v} for k, v in R.items()]}, f, indent=1)
    print(report(R, meta))
    log(f"done in {meta['seconds']} s; raw results in {os.path.join(os.path.dirname(WORK), 'scaleout.json')}")


if __name__ == "__main__":
    main()
