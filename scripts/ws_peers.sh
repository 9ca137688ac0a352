#!/usr/bin/env bash
# Independent WebSocket clients against pushlab: the `ws` npm package (Node)
# and the `websockets` PyPI package (Python), each a separate implementation
# of RFC 6455 with its own framing, masking and closing handshake. Each
# runs pub/sub between two clients (every message, once, in order), a
# resume with `since`, a binary message round trip (bytes in, one binary
# frame with its envelope out, on one topic and on several), echo of text
# and binary, and the close codes (1000 echoed, 1008 for a bad multi-topic
# text); then, with each library's compression
# on (permessage-deflate), a large message published and echoed intact and
# pushlab's /stats counting compressed frames out and messages in.
#
# The script:
#   1. installs ws into scripts/ws_peer/node_modules (`npm ci` from the
#      committed package-lock.json) and websockets into a venv under the
#      target directory, each only when missing;
#   2. builds pushlab (cargo build --release);
#   3. starts `pushlab --addr 127.0.0.1:0 --ws-ping 1s` and reads the bound
#      address from its first stdout line;
#   4. runs scripts/ws_peer/pubsub.mjs, then scripts/ws_peer/pubsub.py, then
#      scripts/ws_peer/deflate.mjs and deflate.py;
#   5. stops the server by PID and prints one line per peer: PASS or FAIL.
#
# Usage: scripts/ws_peers.sh
# Environment (all optional):
#   PUSHLAB_BIN          run this binary instead of building target/release/pushlab
#   WS_PEERS_COUNT       messages per run (default 1000)
#   WS_PEERS_TIMEOUT     seconds each client run may take (default 120)
#   WEBSOCKETS_VERSION   websockets version for the venv (default 15.0.1)
#   BUILD_TIMEOUT        seconds the release build may take (default 1800)
# Every wait is bounded, so the script always stops by itself. Exit status: 0
# pass, 1 fail, 2 the run itself could not happen.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/lib.sh"

peer_dir="$root/scripts/ws_peer"
work="${CARGO_TARGET_DIR:-$root/target}/ws_peers"
venv="$work/venv"
server_log="$work/pushlab.log"
count="${WS_PEERS_COUNT:-1000}"
run_timeout="${WS_PEERS_TIMEOUT:-120}"
websockets_version="${WEBSOCKETS_VERSION:-15.0.1}"

mkdir -p "$work"
require_command node "Node.js 20 or later is needed"
require_command npm
require_command python3

# 1. The client libraries, each installed only when missing.
npm_ci_once "$peer_dir" ws
pip_install_once "$venv" websockets "$websockets_version"

# 2. The server binary.
build_pushlab

# 3. Start it on a free port; stop it by PID however the script ends. The
# history holds every message of a run, so a resume never reports `missed`;
# a short ping interval makes the libraries answer pings during the run.
start_pushlab "$server_log" --addr 127.0.0.1:0 --history "$((count * 2))" --ws-ping 1s
url="http://127.0.0.1:$port/"

# 4. The clients. Each prints "PASS: ..." or "FAIL: ..." and exits 0 or 1.
overall=0
run_peer() {
    local name="$1"
    shift
    local status=0 result
    result="$(WS_PEER_TIMEOUT_MS=$((run_timeout * 1000)) timeout --kill-after=5 \
        "$((run_timeout + 10))" "$@" "$url" "$count" 2>&1)" || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "ws_peers: $name: FAIL: did not finish within ${run_timeout}s"
        overall=1
    elif [ "$status" -ne 0 ] || ! grep -q '^PASS' <<<"$result"; then
        echo "ws_peers: $name: $(tail -n 1 <<<"$result")"
        printf '%s\n' "$result" | sed 's/^/  /' >&2
        overall=1
    else
        echo "ws_peers: $name: $(tail -n 1 <<<"$result")"
    fi
}
run_peer node node "$peer_dir/pubsub.mjs"
run_peer python "$venv/bin/python" "$peer_dir/pubsub.py"
# permessage-deflate with each library's compression on.
run_peer node-deflate node "$peer_dir/deflate.mjs"
run_peer python-deflate "$venv/bin/python" "$peer_dir/deflate.py"
stop_server
exit "$overall"
