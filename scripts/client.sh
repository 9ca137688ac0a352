#!/usr/bin/env bash
# The browser client (client/pushlab.js, docs/client.md):
#
#   scripts/client.sh [case...]     # ~100 s; cases: see scripts/e2e/client.test.mjs
#
# 1. its size budget (under 5 KB gzipped) and a syntax check;
# 2. in headless Chromium (Debian's chromium, installed here if missing;
#    playwright-core from scripts/e2e's package-lock.json), behind a TCP
#    proxy that can refuse upgrades and cut connections, with messages
#    published throughout: the plain WebSocket case, upgrades refused → SSE,
#    connections cut every few seconds, SSE streams ended by
#    --sse-max-lifetime, long polling through cuts, a server restart →
#    onReset then streaming again, a rolling restart on --data-dir (no
#    reset), binary messages on each transport (a Uint8Array of exactly the
#    bytes published); then signed tokens without pushlab.js: a page reads private
#    topics through EventSource and WebSocket with the pushlab_token cookie
#    (refused without it), the server ends its stream each time the 1–2 s
#    token expires, and the page resumes with a fresh cookie from a
#    test-only issuer. Every message exactly once, in order.
# Builds pushlab (or runs $PUSHLAB_BIN). Exit 0 pass, 1 fail, 2 setup failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/lib.sh"

require_command node "node >= 20"
node client/size.mjs
node --check client/pushlab.js

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v redis-server >/dev/null || need+=(redis-server)
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi
npm_ci_once "$root/scripts/e2e" playwright-core
build_pushlab

work="${CARGO_TARGET_DIR:-$root/target}/e2e"
mkdir -p "$work"
pidfile="$work/client-pids"
: >"$pidfile"
# The test stops its servers itself; these are stopped too if it was killed.
cleanup() {
  local pid
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  done <"$pidfile"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout --kill-after=10 180 node scripts/e2e/client.test.mjs "$bin" "$pidfile" "$@" || {
  status=$?
  [ "$status" -eq 124 ] && echo "CLIENT FAIL: timed out after 180s"
  exit "$status"
}
