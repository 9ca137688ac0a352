#!/usr/bin/env bash
# Two pushlab nodes on one real Redis (docs/scaling.md):
#
#   scripts/redis.sh        # ~20 s after the build
#
# Installs Debian's redis-server and nginx when missing (apt-get update only if the
# install needs it; no service is started), builds pushlab (or runs
# $PUSHLAB_BIN), starts its own redis-server (nothing persisted) on a free
# loopback port and two nodes on it (--history 300, --redis-timeout 1s,
# --heartbeat 1s), then scripts/redis_check.py checks:
#   - both nodes publishing at once: ids strictly increasing and each once,
#     subscribers on both nodes see the same messages in the same order;
#   - node B paused (SIGSTOP) while A publishes more than Redis keeps: B's
#     stream is told `missed` with the exact count of every hole;
#   - a cursor from node A resumes on node B exactly (poll and SSE), and an
#     older one counts what Redis no longer keeps exactly;
#   - a binary message published on A reads back on B as binary;
#   - Redis killed and restarted empty: a new epoch, `reset` on every
#     stream and for an old cursor, then publishing works again;
#   - Redis paused (SIGSTOP): a publish gets 503 with Retry-After within
#     --redis-timeout, /healthz says 503, streams keep their heartbeats;
#     after SIGCONT everything works again;
# then (scripts/redis_lb_check.py) three more nodes behind Debian's nginx
# (round robin, no stickiness): SSE, WebSocket and long-poll clients through
# nginx while messages flow, one node killed with SIGKILL: every client
# resumes on another node with its cursor, 0 lost, 0 duplicated.
# Stops everything it started, by PID. Exit 0 pass, 1 a check failed,
# 2 setup failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/lib.sh"

require_command python3
require_command curl
require_command timeout

need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/sbin/nginx ] || need+=(nginx)
apt_install_missing ${need[@]+"${need[@]}"}
build_pushlab

work="${CARGO_TARGET_DIR:-$root/target}/redis-check"
rm -rf "$work"
mkdir -p "$work"

# A free loopback port for Redis (bound, then let go).
redis_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis_pidfile="$work/redis.pid"

# lib.sh's stop_server (which start_pushlab traps on EXIT) stops the
# nodes; ours stops Redis too, whatever PID it has by then (the checks
# restart it).
eval "$(declare -f stop_server | sed '1s/stop_server/stop_nodes/')"
nginx_pid=""
stop_server() {
  if [ -n "$nginx_pid" ]; then
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
  fi
  stop_nodes
  if [ -f "$redis_pidfile" ]; then
    pid="$(cat "$redis_pidfile")"
    # Continued first, in case a check stopped it with SIGSTOP.
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$redis_pidfile"
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  >"$work/redis.log" 2>&1 &
echo $! >"$redis_pidfile"
disown
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null ||
  die "redis-server did not listen on $redis_port"
say "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$redis_port"

timeout_s=1
node_args=(--addr 127.0.0.1:0 --redis "redis://127.0.0.1:$redis_port"
  --history 300 --redis-timeout "${timeout_s}s" --heartbeat 1s)
# Node A records every input: after the checks its session is replayed
# (`pushlab replay --compare`), Redis's replies, reconnections and all.
start_pushlab "$work/a.log" "${node_args[@]}" --record "$work/a.rec"
port_a="$port"
pid_a="${server_pids[0]}"
start_pushlab "$work/b.log" "${node_args[@]}"
port_b="$port"
pid_b="${server_pids[1]}"

for p in "$port_a" "$port_b"; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
say "nodes on 127.0.0.1:$port_a and 127.0.0.1:$port_b"

status=0
timeout 120 python3 "$root/scripts/redis_check.py" "$port_a" "$port_b" "$redis_port" \
  "$redis_pidfile" "$pid_b" "$timeout_s" || status=$?
if [ "$status" -ne 0 ]; then
  say "a check failed (status $status); the nodes' logs:"
  tail -n 20 "$work/a.log" "$work/b.log" >&2 || true
  exit 1
fi

kill -TERM "$pid_a"
for _ in $(seq 100); do
  kill -0 "$pid_a" 2>/dev/null || break
  sleep 0.1
done
if ! timeout 120 "$bin" replay --compare "$work/a.rec" >"$work/replay.txt" 2>&1; then
  say "node A's recorded session did not replay identically:"
  tail -n 5 "$work/replay.txt" >&2
  exit 1
fi
say "node A's session replayed: $(tail -n 1 "$work/replay.txt")"

# Three more nodes behind nginx; the first is the one killed.
lb_ports=()
for name in c d e; do
  start_pushlab "$work/$name.log" "${node_args[@]}"
  lb_ports+=("$port")
done
victim_pid="${server_pids[2]}"
for p in "${lb_ports[@]}"; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
nginx_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream pushlab {
    server 127.0.0.1:${lb_ports[0]};
    server 127.0.0.1:${lb_ports[1]};
    server 127.0.0.1:${lb_ports[2]};
  }
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://pushlab;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_buffering off;
      chunked_transfer_encoding off;
      proxy_read_timeout 1h;
    }
  }
}
CONF
/usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx/logs/stdout.log" 2>&1 &
nginx_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$nginx_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
say "nginx on 127.0.0.1:$nginx_port in front of ${lb_ports[*]}"
timeout 60 python3 "$root/scripts/redis_lb_check.py" "$nginx_port" "${lb_ports[1]}" "$victim_pid" ||
  status=$?
if [ "$status" -ne 0 ]; then
  say "the load-balancer check failed (status $status); nginx's errors:"
  tail -n 20 "$work/nginx/logs/error.log" >&2 || true
  exit 1
fi
say "all checks passed"
