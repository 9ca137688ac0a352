#!/usr/bin/env bash
# Runs the Autobahn TestSuite server cases against pushlab's /echo endpoint.
#
# The cases are Autobahn's own case files, driven by kosoku (PyPI), a native
# runner that needs neither Python 2 nor Docker. The script:
#   1. installs kosoku into a venv under target/autobahn/ (once);
#   2. builds pushlab (cargo build --release);
#   3. starts `pushlab --addr 127.0.0.1:0` and reads the bound address from
#      its first stdout line, "pushlab listening on http://127.0.0.1:PORT/";
#   4. runs the cases against ws://127.0.0.1:PORT/echo;
#   5. stops the server, prints a summary table, and exits 1 if any case
#      FAILED, was NON-STRICT or was UNIMPLEMENTED (pushlab accepts every
#      permessage-deflate offer of sections 12 and 13) (2 if the run itself
#      could not happen).
#
# Usage: scripts/autobahn.sh [CASE ...]
#   CASE is a case id or glob as kosoku takes it (1.1.1, 9.*); the default is
#   all 517 cases: sections 1.* to 10.* (Autobahn has no section 8) and the
#   permessage-deflate sections 12.* and 13.* (RFC 7692).
#
# Environment (all optional):
#   PUSHLAB_BIN         run this binary instead of building target/release/pushlab
#   AUTOBAHN_DIR        work directory (default target/autobahn)
#   KOSOKU_VERSION      kosoku version to install (default 0.1.0)
#   KOSOKU_PARALLELISM  cases run at once (default 1)
#   AUTOBAHN_TIMEOUT    seconds the whole case run may take (default 1800)
#   BUILD_TIMEOUT       seconds the release build may take (default 1800)
# Every wait is bounded, so the script always stops by itself.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/lib.sh"

work="${AUTOBAHN_DIR:-$root/target/autobahn}"
venv="$work/venv"
reports="$work/reports"
server_log="$work/pushlab.log"
kosoku_version="${KOSOKU_VERSION:-0.1.0}"
parallelism="${KOSOKU_PARALLELISM:-1}"
run_timeout="${AUTOBAHN_TIMEOUT:-1800}"

if [ "$#" -gt 0 ]; then
    cases=("$@")
else
    # Every case. Sections 12 and 13 (permessage-deflate) move 9.5 GB
    # through the echo: about 8 minutes of the run on two shared cores.
    cases=('1.*' '2.*' '3.*' '4.*' '5.*' '6.*' '7.*' '9.*' '10.*' '12.*' '13.*')
fi

mkdir -p "$work"

# 1. kosoku in its own venv, installed only when missing or another version.
pip_install_once "$venv" kosoku "$kosoku_version"

# 2. The server binary.
build_pushlab

# 3. Start it on a free port; stop it however the script ends.
start_pushlab "$server_log" --addr 127.0.0.1:0
url="ws://127.0.0.1:$port/echo"

# 4. The cases. kosoku exits 1 when a case fails; the summary below decides.
include=()
for case_id in "${cases[@]}"; do
    include+=(-i "$case_id")
done
say "running ${cases[*]} against $url (parallelism $parallelism, at most ${run_timeout}s)"
rm -rf "$reports"
kosoku_status=0
timeout --kill-after=10 "$run_timeout" "$venv/bin/kosoku" --mode fuzzingclient \
    "${include[@]}" --parallelism "$parallelism" --outdir "$reports" "$url" ||
    kosoku_status=$?
stop_server
if [ "$kosoku_status" -eq 124 ] || [ "$kosoku_status" -eq 137 ]; then
    die "kosoku did not finish within ${run_timeout}s"
fi
[ -f "$reports/index.json" ] || die "kosoku wrote no report (exit status $kosoku_status)"

# 5. The summary, read from Autobahn's index.json:
#    {agent: {case_id: {behavior, behaviorClose, remoteCloseCode, ...}}}.
# A case FAILED when its behavior is not OK / NON-STRICT / INFORMATIONAL /
# UNIMPLEMENTED, or its closing behavior is not OK / INFORMATIONAL (the rule
# kosoku's CaseResult.passed applies). The run fails on any FAILED,
# NON-STRICT or UNIMPLEMENTED case: sections 12 and 13 offer permessage-deflate
# with server windows of 9 and 15 bits, which pushlab accepts; it declines only
# server_max_window_bits=8, which no case offers (docs/websocket.md,
# "Compression").
summary_status=0
"$venv/bin/python" - "$reports/index.json" "$url" <<'PY' || summary_status=$?
import json
import sys

index_path, url = sys.argv[1], sys.argv[2]
with open(index_path) as f:
    index = json.load(f)

COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def verdict(case):
    behavior, close = case["behavior"], case["behaviorClose"]
    if behavior == "UNIMPLEMENTED":
        return behavior
    if behavior in ("OK", "NON-STRICT", "INFORMATIONAL") and close in ("OK", "INFORMATIONAL"):
        return behavior
    return "FAILED"


def sort_key(case_id):
    return [int(part) for part in case_id.split(".")]


rows = {}
failed = []
for agent, cases in index.items():
    for case_id, case in cases.items():
        v = verdict(case)
        rows.setdefault(case_id.split(".")[0], dict.fromkeys(COLUMNS, 0))[v] += 1
        if v in ("FAILED", "NON-STRICT", "UNIMPLEMENTED"):
            failed.append((case_id, case))

total = dict.fromkeys(COLUMNS, 0)
for row in rows.values():
    for column in COLUMNS:
        total[column] += row[column]

agents = ", ".join(a or "(no Server header)" for a in index)
print(f"Autobahn TestSuite server cases against {url} (agent: {agents})")
print()
width = max(len(c) for c in COLUMNS)
print(f"{'section':>8} " + " ".join(f"{c:>{width}}" for c in COLUMNS) + f" {'total':>6}")
for section in sorted(rows, key=int):
    row = rows[section]
    cells = " ".join(f"{row[c]:>{width}}" for c in COLUMNS)
    print(f"{section + '.*':>8} {cells} {sum(row.values()):>6}")
cells = " ".join(f"{total[c]:>{width}}" for c in COLUMNS)
print(f"{'all':>8} {cells} {sum(total.values()):>6}")

if failed:
    print()
    print(f"{len(failed)} FAILED, NON-STRICT or UNIMPLEMENTED:")
    for case_id, case in sorted(failed, key=lambda item: sort_key(item[0])):
        print(
            f"  {case_id}: behavior={case['behavior']} close={case['behaviorClose']}"
            f" remoteCloseCode={case['remoteCloseCode']} ({case['reportfile']})"
        )
sys.exit(1 if failed else 0)
PY
say "reports: $reports/index.html"
exit "$summary_status"
