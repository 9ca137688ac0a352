#!/usr/bin/env bash
# End-to-end test of the demo page (static/index.html) in a real browser.
#
#   scripts/e2e.sh            # ~30 s: delivery, drops, table, screenshot
#   scripts/e2e.sh --minute   # also the one-minute run quoted in docs/demo.md
#
# Needs Debian's chromium (installed here if missing) and node >= 20; the
# playwright-core package is installed into scripts/e2e/node_modules on first
# run. Builds pushlab, starts it on a free port, runs scripts/e2e/demo.test.mjs
# against it, saves docs/demo.png and prints one PASS/FAIL line.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
case "$mode" in
  "" ) limit=120 ;;
  --minute ) limit=200 ;;
  * ) echo "usage: $0 [--minute]" >&2; exit 2 ;;
esac

if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update
  $sudo apt-get install -y chromium
fi
if [ ! -d scripts/e2e/node_modules/playwright-core ]; then
  npm install --prefix scripts/e2e --no-audit --no-fund
fi

cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/pushlab"

log="$(mktemp)"
"$bin" --addr 127.0.0.1:0 >"$log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

url=""
for _ in $(seq 100); do
  url="$(head -n 1 "$log" | sed -n 's#^pushlab listening on \(http://[^ ]*\)$#\1#p')"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "E2E FAIL: pushlab did not start:" >&2
  cat "$log" >&2
  exit 1
fi

timeout --kill-after=10 "$limit" node scripts/e2e/demo.test.mjs "$url" docs/demo.png $mode || {
  status=$?
  [ "$status" -eq 124 ] && echo "E2E FAIL: timed out after ${limit}s"
  exit "$status"
}
