#!/usr/bin/env bash
# End-to-end test of the demo page (static/index.html) in a real browser.
#
#   scripts/e2e.sh            # ~30 s: delivery, drops, table, screenshot
#   scripts/e2e.sh --minute   # also the one-minute run quoted in docs/demo.md
#   scripts/e2e.sh --update-screenshot [--minute]
#                             # also copy the screenshot over docs/demo.png
#
# Needs Debian's chromium (installed here if missing) and node >= 20; the
# playwright-core package is installed into scripts/e2e/node_modules on first
# run (`npm ci` from the committed package-lock.json). Builds pushlab (or runs
# $PUSHLAB_BIN), starts it on a free port, runs scripts/e2e/demo.test.mjs
# against it, saves a screenshot under target/e2e/ (docs/demo.png, which is
# tracked, only with --update-screenshot) and prints one PASS/FAIL line; then
# starts three more servers (one with --allow-origin for the first one's
# origin, one with --allow-origin '*', one without) and runs
# scripts/e2e/cors.test.mjs: one more PASS/FAIL line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/lib.sh"

mode=""
limit=120
update_screenshot=0
for arg in "$@"; do
  case "$arg" in
    --minute ) mode=--minute; limit=200 ;;
    --update-screenshot ) update_screenshot=1 ;;
    * ) echo "usage: $0 [--minute] [--update-screenshot]" >&2; exit 2 ;;
  esac
done

if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update
  $sudo apt-get install -y chromium
fi
npm_ci_once "$root/scripts/e2e" playwright-core

build_pushlab
work="${CARGO_TARGET_DIR:-$root/target}/e2e"
mkdir -p "$work"
start_pushlab "$work/pushlab.log" --addr 127.0.0.1:0
url="http://127.0.0.1:$port/"

# The screenshot goes to the build directory: a test run leaves the checkout
# as it was. docs/demo.png changes only when asked.
timeout --kill-after=10 "$limit" node scripts/e2e/demo.test.mjs "$url" "$work/demo.png" $mode || {
  status=$?
  [ "$status" -eq 124 ] && echo "E2E FAIL: timed out after ${limit}s"
  exit "$status"
}
if [ "$update_screenshot" -eq 1 ]; then
  cp "$work/demo.png" docs/demo.png
  echo "docs/demo.png updated"
fi

# Cross-origin (CORS): the demo server's origin is the page's; one server
# allows that origin by name, one allows any origin without credentials
# ('*'), one (the default) allows none.
start_pushlab "$work/pushlab-allowing.log" --addr 127.0.0.1:0 --allow-origin "http://127.0.0.1:$port"
allowing="http://127.0.0.1:$port/"
start_pushlab "$work/pushlab-star.log" --addr 127.0.0.1:0 --allow-origin '*'
star="http://127.0.0.1:$port/"
start_pushlab "$work/pushlab-refusing.log" --addr 127.0.0.1:0
refusing="http://127.0.0.1:$port/"
timeout --kill-after=10 60 node scripts/e2e/cors.test.mjs "$url" "$allowing" "$refusing" "$star" || {
  status=$?
  [ "$status" -eq 124 ] && echo "CORS FAIL: timed out after 60s"
  exit "$status"
}
