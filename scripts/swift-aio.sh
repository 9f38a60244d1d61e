#!/usr/bin/env bash
# An all-in-one OpenStack Swift on 127.0.0.1 for depot's tests: Debian's
# swift-proxy/-account/-container/-object, one replica, one device, tempauth.
# Run as root. Idempotent: when the proxy already answers, it only checks
# that the test account authenticates, and prints the auth URL.
#
#   bash scripts/swift-aio.sh            # install, configure, start
#   eval "$(bash scripts/swift-aio.sh)"  # … and export ST_AUTH/ST_USER/ST_KEY
#
# Accounts (tempauth, `user_ACCOUNT_USER = KEY GROUPS…`):
#   test:tester    key testing    admin of AUTH_test (the worker's account)
#   test2:tester2  key testing2   admin of AUTH_test2, in group `*:tester2`
#   test3:tester3  key testing3   no account of its own, in group `*:tester3`
# autopkgtest-cloud grants private results to `*:SWIFTUSER` (Keystone's
# "this user in any project"). tempauth matches ACL entries against a user's
# groups literally, so the users carry that group name to be granted the
# same way.
#
# Environment: DEPOT_SWIFT_PORT (8080), DEPOT_SWIFT_DIR (/srv/depot-swift;
# its filesystem must support user xattrs), DEPOT_SWIFT_MEMCACHE_PORT (11311).
set -euo pipefail

port=${DEPOT_SWIFT_PORT:-8080}
dir=${DEPOT_SWIFT_DIR:-/srv/depot-swift}
mc_port=${DEPOT_SWIFT_MEMCACHE_PORT:-11311}
auth="http://127.0.0.1:$port/auth/v1.0"
etc=/etc/swift

say() { echo "swift-aio: $*" >&2; }

exports() {
    echo "export ST_AUTH=$auth ST_USER=test:tester ST_KEY=testing"
    echo "export DEPOT_TEST_SWIFT_AUTH=$auth"
}

authenticates() {
    curl -fsS -o /dev/null -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' "$auth" 2>/dev/null
}

if curl -fsS "http://127.0.0.1:$port/healthcheck" >/dev/null 2>&1; then
    if authenticates; then
        say "already running on 127.0.0.1:$port"
        exports
        exit 0
    fi
    say "127.0.0.1:$port answers but test:tester cannot authenticate there"
    exit 1
fi

if ! command -v swift-proxy-server >/dev/null || ! command -v memcached >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq swift-proxy swift-account swift-container swift-object \
        memcached curl python3 >/dev/null
fi

mkdir -p "$dir/node/d1" "$dir/log" "$dir/run"
# Swift keeps metadata in user xattrs; without them every PUT fails.
python3 - "$dir/node/d1" <<'EOF'
import os, sys, tempfile
with tempfile.NamedTemporaryFile(dir=sys.argv[1]) as f:
    try:
        os.setxattr(f.name, "user.depot-check", b"1")
    except OSError as e:
        sys.exit(f"swift-aio: {sys.argv[1]} has no user xattrs ({e}); set DEPOT_SWIFT_DIR")
EOF
chown -R swift:swift "$dir"

mkdir -p "$etc"
cat >"$etc/swift.conf" <<'EOF'
[swift-hash]
swift_hash_path_suffix = depot-aio
swift_hash_path_prefix = depot-aio

[storage-policy:0]
name = Policy-0
default = yes
EOF

common="[DEFAULT]
bind_ip = 127.0.0.1
workers = 1
user = swift
devices = $dir/node
mount_check = false
log_name = depot-aio
"
printf '%sbind_port = 6202\n\n[pipeline:main]\npipeline = account-server\n\n[app:account-server]\nuse = egg:swift#account\n' \
    "$common" >"$etc/depot-account-server.conf"
printf '%sbind_port = 6201\n\n[pipeline:main]\npipeline = container-server\n\n[app:container-server]\nuse = egg:swift#container\n' \
    "$common" >"$etc/depot-container-server.conf"
printf '%sbind_port = 6200\n\n[pipeline:main]\npipeline = object-server\n\n[app:object-server]\nuse = egg:swift#object\n' \
    "$common" >"$etc/depot-object-server.conf"
cat >"$etc/depot-proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 1
user = swift
log_name = depot-aio

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats tempauth proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc_port

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin
user_test2_tester2 = testing2 .admin *:tester2
user_test3_tester3 = testing3 *:tester3
EOF

# One device, one replica, 2^10 partitions.
(
    cd "$etc"
    for ring in account:6202 container:6201 object:6200; do
        name=${ring%%:*} p=${ring##*:}
        if [ ! -f "$name.ring.gz" ] || ! swift-ring-builder "$name.builder" 2>/dev/null | grep -q "127.0.0.1:$p"; then
            rm -f "$name.builder" "$name.ring.gz"
            swift-ring-builder "$name.builder" create 10 1 1 >/dev/null
            swift-ring-builder "$name.builder" add "r1z1-127.0.0.1:$p/d1" 100 >/dev/null
            swift-ring-builder "$name.builder" rebalance >/dev/null || true
        fi
    done
    chown swift:swift ./*.ring.gz ./*.builder
)

start() { # NAME COMMAND…
    local name=$1
    shift
    local pidfile="$dir/run/$name.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        return
    fi
    setsid "$@" >>"$dir/log/$name.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

start memcached memcached -u memcache -l 127.0.0.1 -p "$mc_port" -U 0 -m 64
start account swift-account-server "$etc/depot-account-server.conf"
start container swift-container-server "$etc/depot-container-server.conf"
start object swift-object-server "$etc/depot-object-server.conf"
start proxy swift-proxy-server "$etc/depot-proxy-server.conf"

for _ in $(seq 60); do
    if authenticates; then
        say "running on 127.0.0.1:$port (logs in $dir/log)"
        exports
        exit 0
    fi
    sleep 1
done
say "the proxy did not come up; its log:"
tail -n 30 "$dir/log/proxy.log" >&2 || true
exit 1
