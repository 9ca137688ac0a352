#!/usr/bin/env bash
# Record a real browser session of the demo page and replay it, byte for
# byte (docs/replay.md).
#
#   scripts/replay.sh
#
# Starts pushlab with --record on a free port, runs scripts/e2e/replay.test.mjs
# in headless Chromium against it (all four transports, each long-lived one
# dropped, messages published from the page and from its WebSocket), stops
# the server with SIGTERM (the recording is flushed and closed), then runs
# `pushlab replay --compare` on the recording. Prints one PASS/FAIL line.
# Exit status: 0 identical, 1 a difference (or the browser session failed),
# 2 the run could not be set up. Needs what scripts/e2e.sh needs (Chromium,
# node >= 20, playwright-core, installed here if missing); honours
# PUSHLAB_BIN as every script does (scripts/lib.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/lib.sh"

if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update
  $sudo apt-get install -y chromium
fi
npm_ci_once "$root/scripts/e2e" playwright-core
require_command node

build_pushlab
work="${CARGO_TARGET_DIR:-$root/target}/replay"
mkdir -p "$work"
recording="$work/session.rec"
rm -f "$recording"
start_pushlab "$work/pushlab.log" --addr 127.0.0.1:0 --record "$recording"

if ! timeout --kill-after=10 90 node scripts/e2e/replay.test.mjs "http://127.0.0.1:$port/"; then
  echo "REPLAY FAIL: the browser session failed"
  exit 1
fi
stop_server
[ -s "$recording" ] || die "no recording at $recording"
say "recorded $(stat -c %s "$recording") bytes"

# The readable form must work too (first lines shown), then the check.
"$bin" replay "$recording" >"$work/replay.txt" || { echo "REPLAY FAIL: pushlab replay exited $?"; exit 1; }
head -n 12 "$work/replay.txt" | sed 's/^/  /'
if verdict="$(timeout 300 "$bin" replay --compare "$recording")"; then
  echo "$verdict"
  echo "REPLAY PASS: $verdict"
else
  echo "$verdict"
  echo "REPLAY FAIL: the replay differs from the recorded session"
  exit 1
fi
