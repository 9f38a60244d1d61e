#!/usr/bin/env bash
# depot serve vs nginx on the same publish tree, plain HTTP, with wrk:
# requests/s for a small file (Release) and MB/s for a large one
# (Packages.gz). Target (issue 5): depot >= 50% of nginx's throughput.
# Then depot under mTLS (an x509 guard on the `release` stage, throwaway
# P-256 CA and certificates): wrk cannot present a client certificate, so
# `openssl s_time` drives it, one connection at a time: new TLS handshakes
# per second (-new), resumed ones (-reuse), and MB/s for the large file
# (s_time counts real time in whole seconds: use --seconds 10 or more).
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

. bench/lib.sh  # free_port
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
TLS_PID=
trap 'kill $SERVE_PID $TLS_PID 2>/dev/null; kill "$(cat "$NGINX_DIR/nginx.pid" 2>/dev/null)" 2>/dev/null || true' EXIT
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

# ---------------------------------------------------------------- mTLS
TLS=$WORK/serve-tls
rm -rf "$TLS"; mkdir -p "$TLS"
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=bench-ca -keyout "$TLS/ca.key" -out "$TLS/ca.pem"
for who in server client; do
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench-$who" \
    -keyout "$TLS/$who.key" -out "$TLS/$who.csr"
done
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$TLS/server.ext"
printf 'extendedKeyUsage=clientAuth\n' > "$TLS/client.ext"
for who in server client; do
  ossl x509 -req -in "$TLS/$who.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
    -days 2 -extfile "$TLS/$who.ext" -out "$TLS/$who.pem"
done
"$DEPOT" --root "$ROOT" -q guard drop bench-mtls >/dev/null 2>&1 || true
"$DEPOT" --root "$ROOT" -q guard create bench-mtls --x509-ca "$TLS/ca.pem" >/dev/null
"$DEPOT" --root "$ROOT" -q dist create bench --stage dev=public --stage release=bench-mtls >/dev/null
"$DEPOT" --root "$ROOT" -q promote bench "$(readlink "$ROOT/public/bench/dev")" --to release >/dev/null
"$DEPOT" --root "$ROOT" -q serve --listen 127.0.0.1:0 --tls-cert "$TLS/server.pem" \
  --tls-key "$TLS/server.key" > "$WORK/serve-tls.out" 2>/dev/null &
TLS_PID=$!
for _ in $(seq 50); do grep -q listening "$WORK/serve-tls.out" 2>/dev/null && break; sleep 0.1; done
TADDR=$(sed -n 's|^listening on https://||p' "$WORK/serve-tls.out" | tr -d '/\n')
RSMALL=/bench/release/dists/stable/Release
RLARGE=/bench/release/dists/stable/main/binary-amd64/Packages.gz
curl -sf --cacert "$TLS/ca.pem" --cert "$TLS/client.pem" --key "$TLS/client.key" \
  -o /dev/null "https://$TADDR$RSMALL" || { echo "mTLS check failed on $TADDR" >&2; exit 1; }
# -> "connections/s MB/s" over RUN_SECONDS of openssl s_time
stime() {
  openssl s_time -connect "$TADDR" -CAfile "$TLS/ca.pem" -cert "$TLS/client.pem" \
    -key "$TLS/client.key" -time "$RUN_SECONDS" -www "$1" "$2" 2>/dev/null | awk '
    /connections in [0-9.]+ real seconds/ {
      for (i = 1; i <= NF; i++) { if ($(i+1) == "connections" && $(i+2) == "in") c = $i; if ($(i+1) == "real") t = $i; if ($(i+1) == "bytes" && $(i+2) == "read") b = $i }
      r = c / t; v = c * b / t / 1048576 }
    END { printf "%.0f %.1f\n", r, v }'
}
read -r new_r _ < <(stime "$RSMALL" -new)
read -r reuse_r _ < <(stime "$RSMALL" -reuse)
read -r _ large_m < <(stime "$RLARGE" -reuse)
printf '%-26s %s\n' "mTLS, openssl s_time" "depot serve, one connection at a time"
printf '%-26s %8s req/s (new handshake each)\n' "small file (Release)" "$new_r"
printf '%-26s %8s req/s (resumed sessions)\n' "small file (Release)" "$reuse_r"
printf '%-26s %8s MB/s (resumed sessions)\n' "large file (Packages.gz)" "$large_m"
