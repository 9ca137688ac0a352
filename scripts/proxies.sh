#!/usr/bin/env bash
# pushlab behind real reverse proxies: the nginx and HAProxy configurations
# of docs/deployment.md, taken from that file, checked with real clients.
#
#   scripts/proxies.sh        # ~2 min
#
# Installs Debian's nginx, haproxy and chromium when missing (apt-get update
# only when needed; no service is started), builds pushlab (or runs
# $PUSHLAB_BIN), makes a self-signed certificate, and starts its own pushlab,
# nginx and HAProxy on free loopback ports, from the docs' configurations with
# only the ports and the certificate path changed. For each proxy, over plain
# HTTP and over TLS with HTTP/2:
#   - SSE with curl: the first byte, each event and the heartbeats arrive
#     through the proxy while the stream stays open (not buffered);
#   - WebSocket (Node's built-in client): the upgrade passes, a frame arrives;
#   - long polling with curl: a held poll is released by a publish; an empty
#     hold ends with its own timeout, not the proxy's;
# twenty EventSource streams to one origin in Chromium through nginx, over
# HTTP/1.1 (six open, the seventh waits) and over HTTP/2 (all twenty);
# then pushlab.js in headless Chromium, messages published throughout: each
# good proxy → WebSocket; nginx without the upgrade headers → SSE; nginx
# without them that also buffers event streams → long polling; every
# message once, in order.
# Stops everything it started, by PID. Exit 0 pass, 1 a check failed,
# 2 setup failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/lib.sh"

require_command node "node >= 20"
require_command curl
require_command openssl

# Debian packages, installed when missing; `apt-get update` only if the
# install fails without it. A policy-rc.d keeps the packages' services from
# starting (this script starts its own instances).
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ -x /usr/bin/chromium ] || need+=(chromium)
apt_install_missing ${need[@]+"${need[@]}"}
npm_ci_once "$root/scripts/e2e" playwright-core
build_pushlab

work="${CARGO_TARGET_DIR:-$root/target}/proxies"
rm -rf "$work"
mkdir -p "$work/tls"

# A free loopback port (the kernel's pick; released at once, used soon after).
free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
now_ms() { date +%s%3N; }

# The self-signed certificate, trusted by curl with --cacert.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null ||
  die "openssl could not make a certificate"
cat "$work/tls/cert.pem" "$work/tls/key.pem" >"$work/tls/pushlab.pem"
spki="$(openssl x509 -in "$work/tls/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der |
  openssl dgst -sha256 -binary | base64)"

start_pushlab "$work/pushlab.log" --addr 127.0.0.1:0 --heartbeat 2s --long-poll-max 60s
up="$port"
server="http://127.0.0.1:$up"

# Every proxy started here is stopped by PID on exit, then the servers.
proxy_pids=()
stop_all() {
  local pid
  for pid in "${proxy_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  proxy_pids=()
  stop_server
}
trap stop_all EXIT

# config NAME: the fenced block under `<!-- config: NAME -->` in the docs.
config() {
  awk -v name="$1" '
    $0 == "<!-- config: " name " -->" { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }
  ' docs/deployment.md
}
# template: the docs' addresses → this run's ports and certificate folder.
template() {
  sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$up/" \
      -e "s/listen 80;/listen 127.0.0.1:$http_port;/" \
      -e "s/listen 443 /listen 127.0.0.1:$https_port /" \
      -e "s/bind :80\$/bind 127.0.0.1:$http_port/" \
      -e "s/bind :443 /bind 127.0.0.1:$https_port /" \
      -e "s#/etc/ssl/pushlab/#$work/tls/#"
}

# wait_port PORT PID: until something accepts on PORT (10 s), or PID died.
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# start_nginx NAME: nginx from $work/NAME/site.conf (the templated block),
# in the foreground of its own PID, with every path inside $work/NAME.
start_nginx() {
  local dir="$work/$1"
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    include $dir/site.conf;
}
EOF
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" 2>"$dir/test.log" || { cat "$dir/test.log" >&2; die "nginx rejects $1"; }
  nginx -p "$dir" -c "$dir/nginx.conf" 2>>"$dir/error.log" &
  proxy_pids+=($!)
  wait_port "$http_port" $! || { cat "$dir/error.log" >&2; die "nginx ($1) did not start"; }
}

start_haproxy() {
  local dir="$work/$1"
  haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/test.log" 2>&1 || { cat "$dir/test.log" >&2; die "haproxy rejects $1"; }
  haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
  proxy_pids+=($!)
  wait_port "$http_port" $! || { cat "$dir/haproxy.log" >&2; die "haproxy ($1) did not start"; }
}

failures=0
check() { # check NAME OK? DETAIL
  if [ "$2" = ok ]; then printf '  ok   %s: %s\n' "$1" "$3"; else printf '  FAIL %s: %s\n' "$1" "$3"; failures=$((failures + 1)); fi
}
publish() { curl -s -o /dev/null -w '%{http_code}' -X POST "$server/publish?topic=$1" --data-binary "$2"; }

# check_sse LABEL BASE [CURL_ARGS...]: an event stream through the proxy.
check_sse() {
  local label="$1" base="$2" out="$work/sse.$RANDOM" topic="sse$RANDOM" t0 first="" event="" ping="" cpid
  shift 2
  t0="$(now_ms)"
  curl -sN --max-time 8 "$@" "$base/events?topic=$topic" >"$out" 2>&1 &
  cpid=$!
  for _ in $(seq 50); do grep -q '^retry:' "$out" && { first=$(($(now_ms) - t0)); break; }; sleep 0.1; done
  if [ -z "$first" ]; then
    kill "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true
    check "$label SSE" fail "no first byte within 5 s (buffered?)"; return
  fi
  t0="$(now_ms)"
  publish "$topic" "hello $label" >/dev/null
  for _ in $(seq 30); do grep -q "^data: hello $label" "$out" && { event=$(($(now_ms) - t0)); break; }; sleep 0.1; done
  for _ in $(seq 40); do grep -q '^: ping' "$out" && { ping=1; break; }; sleep 0.1; done
  if kill -0 "$cpid" 2>/dev/null; then open=1; else open=""; fi
  kill "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true
  if [ -n "$event" ] && [ -n "$ping" ] && [ -n "$open" ]; then
    check "$label SSE" ok "first byte after ${first} ms, event ${event} ms after its publish, heartbeat passed, stream still open"
  else
    check "$label SSE" fail "event: ${event:-none}, ping: ${ping:-none}, open: ${open:-no}; got: $(head -c 300 "$out" | tr '\n' '|')"
  fi
}

# check_long_poll LABEL BASE [CURL_ARGS...]: a hold released by a publish,
# and an empty hold that ends by its own timeout.
check_long_poll() {
  local label="$1" base="$2" topic="lp$RANDOM" out="$work/lp.$RANDOM" next t0 took cpid
  shift 2
  next="$(curl -s "$@" "$base/poll?topic=$topic" | sed -n 's/.*"next":"\([^"]*\)".*/\1/p')"
  [ -n "$next" ] || { check "$label long poll" fail "no poll answer"; return; }
  t0="$(now_ms)"
  curl -s --max-time 10 "$@" "$base/long-poll?topic=$topic&since=$next&timeout=20" >"$out" &
  cpid=$!
  sleep 1
  publish "$topic" "wake $label" >/dev/null
  wait "$cpid" || true
  took=$(($(now_ms) - t0))
  if grep -q "\"data\":\"wake $label\"" "$out" && [ "$took" -lt 5000 ]; then
    next="$(sed -n 's/.*"next":"\([^"]*\)".*/\1/p' "$out")"
    t0="$(now_ms)"
    curl -s --max-time 10 "$@" -o "$out" "$base/long-poll?topic=$topic&since=$next&timeout=3" || true
    local empty=$(($(now_ms) - t0))
    if grep -q '"messages":\[\]' "$out" && [ "$empty" -ge 2900 ] && [ "$empty" -lt 6000 ]; then
      check "$label long poll" ok "released ${took} ms after the request (publish at 1 s); an empty 3 s hold answered after ${empty} ms"
    else
      check "$label long poll" fail "empty hold: ${empty} ms, $(head -c 200 "$out")"
    fi
  else
    check "$label long poll" fail "took ${took} ms: $(head -c 200 "$out")"
  fi
}

check_ws() {
  local label="$1" url="$2" line
  if line="$(timeout 10 node --experimental-websocket --no-warnings scripts/e2e/ws_through.mjs "$url" "$server" "ws$RANDOM" 2>&1)"; then
    check "$label WebSocket" ok "${line#ws ok: }"
  else
    check "$label WebSocket" fail "$line"
  fi
}

check_h2() {
  local label="$1" base="$2" v
  v="$(curl -s --cacert "$work/tls/cert.pem" --http2 -o /dev/null -w '%{http_version}' "$base/stats" || true)"
  if [ "$v" = 2 ]; then check "$label TLS" ok "HTTP/2 to the client, certificate verified"; else check "$label TLS" fail "HTTP version '$v'"; fi
}

fallback() { # fallback NAME EXPECTED
  timeout --kill-after=10 90 node scripts/e2e/fallback.test.mjs "$1" "$http_port" "$up" "$2" || failures=$((failures + 1))
}

SECONDS=0
for proxy in nginx haproxy; do
  http_port="$(free_port)"; https_port="$(free_port)"
  mkdir -p "$work/$proxy"
  if [ "$proxy" = nginx ]; then
    config nginx | template >"$work/nginx/site.conf"
    grep -q "127.0.0.1:$https_port" "$work/nginx/site.conf" || die "the nginx block of docs/deployment.md did not template"
    start_nginx nginx
  else
    config haproxy | template >"$work/haproxy/haproxy.cfg"
    grep -q "127.0.0.1:$https_port" "$work/haproxy/haproxy.cfg" || die "the haproxy block of docs/deployment.md did not template"
    start_haproxy haproxy
  fi
  say "$proxy on http://127.0.0.1:$http_port/ and https://127.0.0.1:$https_port/ → pushlab on $up"
  plain="http://127.0.0.1:$http_port"
  tls="https://127.0.0.1:$https_port"
  check_sse "$proxy http/1.1" "$plain"
  check_sse "$proxy h2" "$tls" --http2 --cacert "$work/tls/cert.pem"
  check_h2 "$proxy" "$tls"
  check_ws "$proxy" "ws://127.0.0.1:$http_port"
  check_long_poll "$proxy http/1.1" "$plain"
  check_long_poll "$proxy h2" "$tls" --http2 --cacert "$work/tls/cert.pem"
  fallback "$proxy (docs config)" ws
  if [ "$proxy" = nginx ]; then
    # Twenty EventSources to one origin: HTTP/1.1 on the plain port, HTTP/2
    # on the TLS one (Chromium trusts the certificate by its SPKI hash).
    timeout --kill-after=10 60 node scripts/e2e/h2streams.test.mjs "$plain" "$tls" "$server" "$spki" ||
      check "twenty EventSources" fail "the measurement failed (exit status $?; 124 = timed out)"
  fi
done

# The two ways nginx is commonly misconfigured, from the same block.
http_port="$(free_port)"; https_port="$(free_port)"
mkdir -p "$work/nginx-no-upgrade"
config nginx | template | grep -v -e 'proxy_set_header Upgrade' -e 'proxy_set_header Connection' >"$work/nginx-no-upgrade/site.conf"
start_nginx nginx-no-upgrade
fallback "nginx without upgrade headers" sse

# Buffering alone leaves WebSockets working; an old proxy that buffers
# responses usually knows nothing of upgrades either, so both are removed.
http_port="$(free_port)"; https_port="$(free_port)"
mkdir -p "$work/nginx-buffering"
config nginx | template | grep -v -e 'proxy_set_header Upgrade' -e 'proxy_set_header Connection' |
  sed -e 's/proxy_buffering off;/proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;/' \
  >"$work/nginx-buffering/site.conf"
grep -q 'proxy_buffering on' "$work/nginx-buffering/site.conf" || die "could not derive the buffering configuration"
start_nginx nginx-buffering
line="$(check_sse "nginx buffering" "http://127.0.0.1:$http_port")"
if [[ "$line" == *"FAIL nginx buffering SSE: no first byte"* ]]; then
  check "nginx buffering SSE" ok "buffered, as this configuration should: no first byte within 5 s"
else
  check "nginx buffering SSE" fail "expected a buffered stream: $line"
fi
fallback "nginx without upgrades, buffering event streams" long-poll

if [ "$failures" -eq 0 ]; then
  echo "PROXIES PASS in ${SECONDS}s"
else
  echo "PROXIES FAIL in ${SECONDS}s: $failures check(s) failed"
  exit 1
fi
