#!/usr/bin/env bash
# An independent SSE client against pushlab: the `eventsource` npm package (a
# WHATWG EventSource for Node with its own event-stream parser) receives
# 10,000 messages, which must all arrive, once each, in order.
#
# The server runs with a short --sse-max-lifetime, so the client library's
# own automatic reconnection, with `Last-Event-ID`, is exercised several times
# during the run; any gap, duplicate, reorder or `missed`/`reset` notice fails.
#
# The script:
#   1. installs eventsource into scripts/sse_peer/node_modules (once, `npm ci`
#      from the committed package-lock.json);
#   2. builds pushlab (cargo build --release);
#   3. starts `pushlab --addr 127.0.0.1:0 ...` and reads the bound address from
#      its first stdout line, "pushlab listening on http://127.0.0.1:PORT/";
#   4. runs scripts/sse_peer/receive.mjs, which subscribes, then publishes the
#      numbered messages over one keep-alive connection and checks each one;
#   5. stops the server by PID and prints one line: PASS or FAIL.
#
# Usage: scripts/sse_peers.sh
# Environment (all optional):
#   PUSHLAB_BIN         run this binary instead of building target/release/pushlab
#   SSE_PEERS_COUNT     messages to send (default 10000)
#   SSE_PEERS_LIFETIME  --sse-max-lifetime of the server (default 700ms; "off"
#                       for one unbroken stream)
#   SSE_PEERS_TIMEOUT   seconds the client run may take (default 120)
#   BUILD_TIMEOUT       seconds the release build may take (default 1800)
# Every wait is bounded, so the script always stops by itself. Exit status: 0
# pass, 1 fail, 2 the run itself could not happen.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/lib.sh"

peer_dir="$root/scripts/sse_peer"
work="${CARGO_TARGET_DIR:-$root/target}/sse_peers"
server_log="$work/pushlab.log"
count="${SSE_PEERS_COUNT:-10000}"
lifetime="${SSE_PEERS_LIFETIME:-700ms}"
run_timeout="${SSE_PEERS_TIMEOUT:-120}"

mkdir -p "$work"
require_command node "Node.js 20 or later is needed"
require_command npm

# 1. The client library, pinned by scripts/sse_peer/package-lock.json.
npm_ci_once "$peer_dir" eventsource

# 2. The server binary.
build_pushlab

# 3. Start it on a free port; stop it however the script ends. The history
# holds every message, so a resume can never legitimately report `missed`.
server_args=(--addr 127.0.0.1:0 --history "$count" --sse-retry 100ms)
if [ "$lifetime" != "off" ]; then
    server_args+=(--sse-max-lifetime "$lifetime")
fi
start_pushlab "$server_log" "${server_args[@]}"

# 4. The client. It prints "PASS: ..." or "FAIL: ..." and exits 0 or 1.
status=0
result="$(SSE_PEER_TIMEOUT_MS=$((run_timeout * 1000)) timeout --kill-after=5 "$((run_timeout + 10))" \
    node "$peer_dir/receive.mjs" "http://127.0.0.1:$port/" "$count" peers 2>&1)" || status=$?
stop_server

# 5. One line.
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "sse_peers: FAIL: the client did not finish within ${run_timeout}s"
    exit 1
fi
echo "sse_peers: ${result//$'\n'/ | } [server ${server_args[*]:2}]"
exit "$status"
