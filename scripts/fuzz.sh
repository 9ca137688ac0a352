#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time, fails on any
# crash, prints executions and coverage per target, then minimises what the
# runs found and folds the inputs that reach new code into fuzz/corpus/.
#
#   scripts/fuzz.sh                 # every target, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh ws_protocol sse_parser
#
# Environment:
#   FUZZ_SECONDS        time per target (default 30)
#   FUZZ_JOBS           targets run at once (default: number of CPUs)
#   FUZZ_SANITIZER      none (default, works on stable) or address (nightly)
#   FUZZ_WORK           working corpus, grown by the runs and minimised
#                       (default fuzz/target/work-corpus; cache it in CI)
#   FUZZ_UPDATE_CORPUS  0 (default): leave fuzz/corpus/ alone; 1: copy into
#                       fuzz/corpus/<target> the inputs that reach code the
#                       committed corpus does not (edges only, so few)
#   CARGO_TARGET_DIR    honoured (passed as --target-dir)
#
# Budget: measured 190 s on 2 cores from a cold build with 8 targets (build
# 62 s, 8 x 30 s two at a time = 120 s, minimising ~10 s); the 9th and 10th
# targets (jwt, resp) add one 30 s round: about 220 s; the 11th, 12th
# (ws_inflate, envelope) another: about 250 s. Allow 6 minutes in CI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${FUZZ_SECONDS:-30}
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
SANITIZER=${FUZZ_SANITIZER:-none}
WORK=${FUZZ_WORK:-$ROOT/fuzz/target/work-corpus}
UPDATE=${FUZZ_UPDATE_CORPUS:-0}
ALL_TARGETS=(http_head http_body query ws_handshake ws_frame ws_protocol ws_inflate sse_parser session jwt resp envelope)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

# ASan needs nightly; `-s none` builds on stable.
TOOLCHAIN=()
if [ "$SANITIZER" != none ]; then TOOLCHAIN=(+nightly); fi
TARGET_DIR_ARGS=()
if [ -n "${CARGO_TARGET_DIR:-}" ]; then TARGET_DIR_ARGS=(--target-dir "$CARGO_TARGET_DIR"); fi
FUZZ=(cargo "${TOOLCHAIN[@]}" fuzz)
BUILD_ARGS=(-s "$SANITIZER" "${TARGET_DIR_ARGS[@]}")

start=$(date +%s)
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== building ${#TARGETS[@]} targets (sanitizer: $SANITIZER)"
cd "$ROOT/fuzz"
"${FUZZ[@]}" build "${BUILD_ARGS[@]}" >/dev/null
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/fuzz/target}/x86_64-unknown-linux-gnu/release
built=$(date +%s)
echo "   built in $((built - start)) s"

LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

run_one() {
    local t=$1
    mkdir -p "$WORK/$t" "$ROOT/fuzz/corpus/$t" "$ROOT/fuzz/artifacts/$t"
    # New inputs go to the working corpus; the committed one is only read.
    # A target without a dictionary runs without one (libFuzzer refuses a
    # -dict that names no file).
    local dict=()
    [ -s "$ROOT/fuzz/dict/$t.dict" ] && dict=(-dict="$ROOT/fuzz/dict/$t.dict")
    if "$BIN_DIR/$t" "$WORK/$t" "$ROOT/fuzz/corpus/$t" \
        "${dict[@]}" \
        -max_total_time="$SECONDS_EACH" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$ROOT/fuzz/artifacts/$t/" >"$LOGS/$t.log" 2>&1; then
        echo ok >"$LOGS/$t.status"
    else
        echo FAILED >"$LOGS/$t.status"
    fi
}

echo "== fuzzing, $SECONDS_EACH s per target, $JOBS at a time"
running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

failed=0
printf '%-14s %-7s %12s %8s %8s\n' target result execs cov ft
for t in "${TARGETS[@]}"; do
    log=$LOGS/$t.log
    touch "$log"
    status=$(cat "$LOGS/$t.status")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$( (grep -Eo 'cov: [0-9]+' "$log" || true) | tail -1 | cut -d' ' -f2)
    ft=$( (grep -Eo 'ft: [0-9]+' "$log" || true) | tail -1 | cut -d' ' -f2)
    printf '%-14s %-7s %12s %8s %8s\n' "$t" "$status" "${execs:-?}" "${cov:-?}" "${ft:-?}"
    if [ "$status" != ok ]; then
        failed=1
        echo "---- $t: the crash, and how to reproduce it"
        grep -E -A12 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -40 || true
        ls "$ROOT/fuzz/artifacts/$t/" 2>/dev/null | sed "s|^|    cargo fuzz run -s $SANITIZER $t fuzz/artifacts/$t/|"
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "== FAILED: a target crashed (inputs kept in fuzz/artifacts/)"
    exit 1
fi

echo "== minimising"
for t in "${TARGETS[@]}"; do
    # cargo fuzz cmin: keep the smallest set of inputs with the same coverage.
    "${FUZZ[@]}" cmin "${BUILD_ARGS[@]}" "$t" "$WORK/$t" >/dev/null 2>&1
    n=$(ls "$WORK/$t" | wc -l)
    added=0
    if [ "$UPDATE" = 1 ]; then
        # Copy into the committed corpus only inputs that reach new edges
        # (hit counts ignored), so it stays tens of small files.
        before=$(ls "$ROOT/fuzz/corpus/$t" | wc -l)
        "$BIN_DIR/$t" -merge=1 -use_counters=0 -max_len=2048 \
            "$ROOT/fuzz/corpus/$t" "$WORK/$t" >/dev/null 2>&1
        added=$(( $(ls "$ROOT/fuzz/corpus/$t" | wc -l) - before ))
    fi
    echo "   $t: working corpus $n inputs; $added added to fuzz/corpus/$t"
done
echo "== done in $(( $(date +%s) - start )) s"
