#!/usr/bin/env bash
# depot serve vs nginx on the same publish tree, plain HTTP, with wrk:
# requests/s for a small file (Release) and MB/s for a large one
# (Packages.gz). Target (issue 5): depot >= 50% of nginx's throughput.
#
# Needs a published tree: run bench/apt-vs-aptly.sh first (it leaves
# $WORK/depot-root with the 63k-package distribution `bench`).
# Usage: bench/serve-vs-nginx.sh [--work DIR] [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=/tmp/depot-bench
RUN_SECONDS=10
while [ $# -gt 0 ]; do
  case $1 in
    --work) WORK=$2; shift 2 ;;
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    *) echo "usage: $0 [--work DIR] [--seconds N]" >&2; exit 2 ;;
  esac
done
DEPOT=${DEPOT:-target/release/depot}
ROOT=$WORK/depot-root
# apt-vs-aptly.sh keeps its roots on a fresh filesystem at $WORK/fs when it can.
if [ -d "$WORK/fs/depot-root" ]; then ROOT=$WORK/fs/depot-root; fi
command -v wrk >/dev/null || { echo "missing: wrk (apt-get install wrk)" >&2; exit 1; }
[ -d "$ROOT/public/bench" ] || { echo "no published tree in $ROOT: run bench/apt-vs-aptly.sh first" >&2; exit 1; }
"$DEPOT" --root "$ROOT" -q dist create bench --stage dev=public >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NGINX_DIR=$WORK/serve-nginx
rm -rf "$NGINX_DIR"; mkdir -p "$NGINX_DIR/logs"
NPORT=$(free_port)
cat > "$NGINX_DIR/nginx.conf" <<CONF
worker_processes 2;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  server { listen 127.0.0.1:$NPORT; root $ROOT/public; }
}
CONF
/usr/sbin/nginx -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR/"
"$DEPOT" --root "$ROOT" -q serve --listen 127.0.0.1:0 > "$WORK/serve.out" 2>/dev/null &
SERVE_PID=$!
trap 'kill $SERVE_PID 2>/dev/null; kill "$(cat "$NGINX_DIR/nginx.pid" 2>/dev/null)" 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
DURL=$(sed -n 's/^listening on //p' "$WORK/serve.out" | tr -d '\n')
DURL=${DURL%/}
NURL=http://127.0.0.1:$NPORT

# URL -> "requests/s MB/s"
run() {
  wrk -t2 -c32 -d"${RUN_SECONDS}s" "$1" | awk '
    /Requests\/sec/ {r=$2}
    /Transfer\/sec/ {v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2)+0;
      if (u=="GB") n*=1024; if (u=="KB") n/=1024; t=n}
    END {printf "%s %.1f\n", r, t}'
}
SMALL=bench/dev/dists/stable/Release
LARGE=bench/dev/dists/stable/main/binary-amd64/Packages.gz
curl -sf -o /dev/null "$DURL/$SMALL"
curl -sf -o /dev/null "$NURL/$SMALL"
read -r ns_r _ < <(run "$NURL/$SMALL")
read -r ds_r _ < <(run "$DURL/$SMALL")
read -r _ nl_m < <(run "$NURL/$LARGE")
read -r _ dl_m < <(run "$DURL/$LARGE")
python3 - "$ns_r" "$ds_r" "$nl_m" "$dl_m" <<'PY'
import sys
ns, ds, nl, dl = map(float, sys.argv[1:])
print("%-26s %14s %14s %7s  %s" % ("plain HTTP, wrk -t2 -c32", "nginx", "depot", "depot", "target >= 50%"))
for label, n, d, unit in [("small file (Release)", ns, ds, "req/s"), ("large file (Packages.gz)", nl, dl, "MB/s")]:
    r = d / n if n else 0
    print("%-26s %8.0f %-5s %8.0f %-5s %6.0f%%  %s" % (label, n, unit, d, unit, r * 100, "PASS" if r >= 0.5 else "MISS"))
PY
