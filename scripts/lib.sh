# Shared by the scripts that run pushlab against outside peers (autobahn.sh,
# sse_peers.sh, ws_peers.sh, e2e.sh). Sourced, not run:
#
#   root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
#   source "$root/scripts/lib.sh"
#
# It defines functions only (and `script_name`, the prefix of every message);
# the caller keeps `set -euo pipefail` and its own settings. Every wait here is
# bounded, and failures to set up a run exit 2 (the run itself could not
# happen), as each script's exit status promises.
#
# Environment it honours:
#   PUSHLAB_BIN       run this binary instead of building target/release/pushlab
#   BUILD_TIMEOUT     seconds the release build may take (default 1800)
#   CARGO_TARGET_DIR  where cargo builds (default $root/target)

script_name="$(basename "$0" .sh)"

say() { printf '%s: %s\n' "$script_name" "$*" >&2; }
die() {
    say "$*"
    exit 2
}

# require_command NAME [HINT]: exit 2 unless NAME is on PATH.
require_command() {
    command -v "$1" >/dev/null || die "$1 is not installed${2:+ ($2)}"
}

# npm_ci_once DIR PACKAGE: `npm ci` in DIR (from its committed
# package-lock.json) unless DIR/node_modules already holds PACKAGE.
npm_ci_once() {
    local dir="$1" package="$2"
    [ -f "$dir/node_modules/$package/package.json" ] && return 0
    say "installing $package into $dir/node_modules"
    timeout 300 npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2 ||
        die "npm ci in $dir failed"
}

# pip_install_once VENV PACKAGE VERSION: PACKAGE==VERSION in the venv VENV,
# created when missing; installed only when missing or another version.
pip_install_once() {
    local venv="$1" package="$2" version="$3" installed
    if [ ! -x "$venv/bin/python" ]; then
        say "creating a Python venv in $venv"
        timeout 120 python3 -m venv "$venv" ||
            die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    installed="$("$venv/bin/python" -c \
        "import importlib.metadata as m; print(m.version('$package'))" 2>/dev/null || true)"
    if [ "$installed" != "$version" ]; then
        say "installing $package $version"
        timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "$package==$version" || die "pip install $package==$version failed"
    fi
}

# apt_install_missing PACKAGE...: installs the Debian packages named (the
# caller passes only those it found missing; none: nothing to do). Services
# the packages ship are not started (policy-rc.d says no while installing):
# the scripts start their own instances on free ports. `apt-get update` only
# when the first install fails (a stale index).
apt_install_missing() {
    [ "$#" -gt 0 ] || return 0
    local sudo="" policy=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        policy=1
    fi
    say "installing $*"
    _apt_install() {
        $sudo env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q \
            -o DPkg::Lock::Timeout=300 --no-install-recommends "$@" >&2
    }
    _apt_install "$@" || { $sudo timeout 300 apt-get update -q >&2 && _apt_install "$@"; } ||
        die "apt-get install $* failed"
    if [ -n "$policy" ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
}

# build_pushlab: sets `bin` to $PUSHLAB_BIN, or builds the release binary.
build_pushlab() {
    local build_timeout="${BUILD_TIMEOUT:-1800}"
    if [ -n "${PUSHLAB_BIN:-}" ]; then
        bin="$PUSHLAB_BIN"
    else
        say "building pushlab (release)"
        timeout "$build_timeout" cargo build --release --bin pushlab ||
            die "cargo build --release failed or took longer than ${build_timeout}s"
        bin="${CARGO_TARGET_DIR:-$root/target}/release/pushlab"
    fi
    [ -x "$bin" ] || die "no executable at $bin"
}

# start_pushlab LOG ARG...: starts `$bin ARG...` (which should include
# `--addr 127.0.0.1:0`) with its output in LOG, and sets `port` from its first
# line, "pushlab listening on http://127.0.0.1:PORT/" (within 30 s). Every
# server started so is stopped by PID however the script ends (stop_server,
# on EXIT); a script may start more than one.
server_pids=()
start_pushlab() {
    local log="$1" start_timeout=30 first_line pid
    shift
    trap stop_server EXIT
    trap 'exit 130' INT TERM
    "$bin" "$@" >"$log" 2>&1 &
    pid=$!
    server_pids+=("$pid")
    port=""
    for _ in $(seq $((start_timeout * 10))); do
        first_line="$(head -n 1 "$log" 2>/dev/null || true)"
        if [[ "$first_line" =~ ^pushlab\ listening\ on\ http://127\.0\.0\.1:([0-9]+)/ ]]; then
            port="${BASH_REMATCH[1]}"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "pushlab did not print its address within ${start_timeout}s; its output:"
    else
        say "pushlab exited before printing its address; its output:"
    fi
    sed 's/^/  /' "$log" >&2 || true
    exit 2
}

# stop_server: SIGTERM, up to 5 s for a clean exit, then SIGKILL; only the
# processes start_pushlab started, by their PIDs. Safe to call more than once.
stop_server() {
    local pid
    for pid in "${server_pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    server_pids=()
}
