"""What bench/compare.py and bench/scaleout.py share: logging, running a
command, waiting for a server's port, running the load generator and
reading its JSON line, and the number formatting of the tables."""
import json, socket, subprocess, sys, time


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("+", " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def wait_port(port, proc, name, timeout=10):
    """Waits until something listens on 127.0.0.1:`port`; exits the script
    if the server process `proc` (a Popen) ends first or nothing listens in
    `timeout` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{name}: nothing listens on :{port}")


def run_loadgen(cmd, timeout):
    """Runs the load generator command `cmd` (its first three words are
    `taskset -c CORE`) and returns its last output line, parsed, or an
    `error` entry."""
    log("+", " ".join(cmd[3:]))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        log(out.stderr)
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    log("  ", res)
    return res


def num(r, k):
    try:
        return float(r.get(k, 0))
    except (TypeError, ValueError):
        return 0.0


def ms(us):
    return f"{us / 1000:.1f}"
