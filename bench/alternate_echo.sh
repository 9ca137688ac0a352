#!/usr/bin/env bash
# Echo, pushlab and tokio-tungstenite alternating: ROUNDS rounds of one short
# run each, so that whatever else the machine does lands on both alike. One
# line per run: server, size, depth, msg/s, server CPU µs per message. For
# the one-write-per-message cases, whose full-run ratios move by ±20–30 %
# (docs/performance.md), compare the medians.
#
#     bench/alternate_echo.sh [SIZE=16] [DEPTH=1] [ROUNDS=5] [SECONDS=4]
#
# Needs the release builds that bench/compare.py makes (pushlab, loadgen,
# tokio-echo under $CARGO_TARGET_DIR/release, default ./target/release).
# Servers run on core 0, the load generator on core 1, both on 127.0.0.1.
set -euo pipefail
SIZE=${1:-16} DEPTH=${2:-1} ROUNDS=${3:-5} SECONDS_EACH=${4:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
PORT=18341
for b in pushlab loadgen tokio-echo; do
    [ -x "$BIN/$b" ] || { echo "alternate_echo: $BIN/$b missing: run python3 bench/compare.py --only echo first" >&2; exit 2; }
done
LOG=$(mktemp)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -f "$LOG"' EXIT

for _ in $(seq "$ROUNDS"); do
    for server in pushlab tokio; do
        if [ "$server" = pushlab ]; then
            taskset -c 0 "$BIN/pushlab" --addr 127.0.0.1:$PORT --max-connections 200000 --max-connections-per-ip 200000 \
                --heartbeat 10m --ws-ping 10m --idle-timeout 10m >"$LOG" 2>&1 &
            path=/echo
        else
            taskset -c 0 "$BIN/tokio-echo" 127.0.0.1:$PORT >"$LOG" 2>&1 &
            path=/
        fi
        PID=$!
        for _ in $(seq 50); do
            (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
            sleep 0.1
        done
        taskset -c 1 "$BIN/loadgen" echo --addr 127.0.0.1:$PORT --path $path --conns 100 \
            --size "$SIZE" --depth "$DEPTH" --duration "$SECONDS_EACH" --pid "$PID" |
            tail -1 | python3 -c "
import json, sys
d = json.loads(sys.stdin.read())
cpu = float(d['server_cpu_s']) * 1e6 / max(1, int(d['messages']))
print('$server', $SIZE, $DEPTH, d['messages_per_s'], f'{cpu:.2f}')"
        kill "$PID"
        wait "$PID" 2>/dev/null || true
        PID=
    done
done
