#!/usr/bin/env bash
# Pushing a published stage to S3: depot's `dist push` against aptly's own S3
# publishing (S3PublishEndpoints), both into the same SeaweedFS on loopback
# (scripts/s3-server.sh), each into a bucket of its own.
#
#   bench/push-vs-aptly.sh [--packages N] [--work DIR] [--only aptly|depot]
#
# Night 1 of a synthetic apt repository (bench/gen-nights.py) is mirrored,
# snapshotted and published by each tool, then pushed: depot `dist push`,
# aptly `publish snapshot … s3:bench:` (first push). Night 2 (1% of the
# packages changed) is mirrored, snapshotted and published again, then
# pushed: depot `dist push` again, aptly `publish switch … s3:bench:`
# (second night's push). Each push is timed with GNU time; objects/s is
# the objects the bucket holds under the stage after the push, divided by
# the push's seconds. Prints a table and writes $WORK/results.json.
# Defaults: 63000 packages, /tmp/depot-bench-push. See bench/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
REPO_ROOT=$(dirname "$HERE")

PACKAGES=63000
WORK=/tmp/depot-bench-push
ONLY=both
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --packages) PACKAGES=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
  esac
done
case "$PACKAGES" in ''|*[!0-9]*) echo "--packages must be a number" >&2; exit 2 ;; esac
case "$ONLY" in both|aptly|depot) ;; *) echo "--only must be aptly or depot" >&2; exit 2 ;; esac

DEPOT=${DEPOT:-$REPO_ROOT/target/release/depot}
case "$DEPOT" in /*) ;; *) DEPOT=$REPO_ROOT/$DEPOT ;; esac
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || { echo "missing: nginx (apt-get install nginx-light)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "missing: /usr/bin/time (apt-get install time)" >&2; exit 1; }
RUN_DEPOT=0; RUN_APTLY=0
[ "$ONLY" != aptly ] && RUN_DEPOT=1
[ "$ONLY" != depot ] && RUN_APTLY=1
if [ $RUN_DEPOT = 1 ] && [ ! -x "$DEPOT" ]; then
  echo "build depot first: cargo build --release (or DEPOT=...)" >&2; exit 1
fi
if [ $RUN_APTLY = 1 ] && ! command -v aptly >/dev/null; then
  echo "aptly not found (apt-get install aptly): depot only" >&2; RUN_APTLY=0
fi

# The S3 server and its admin identity (the defaults of scripts/s3-server.sh).
bash "$REPO_ROOT/scripts/s3-server.sh"
S3=${DEPOT_TEST_S3_ENDPOINT:-http://127.0.0.1:18333}
KEY=${DEPOT_S3_ACCESS_KEY:-depot-test}
SECRET=${DEPOT_S3_SECRET_KEY:-depot-test-secret}
s3() {  # s3 METHOD PATH: a SigV4-signed request, prints the HTTP status
  curl -s -o /dev/null -w '%{http_code}' -X "$1" --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$KEY:$SECRET" "$S3/$2"
}
count_objects() {  # count_objects BUCKET PREFIX: keys under PREFIX
  python3 - "$S3" "$1" "$2" "$KEY" "$SECRET" <<'PY'
import subprocess, sys, re, urllib.parse
s3, bucket, prefix, key, secret = sys.argv[1:]
# start-after (the last key of each page), not continuation-token: curl's
# SigV4 signs that one differently from SeaweedFS.
n, after = 0, None
while True:
    q = "list-type=2&max-keys=1000&prefix=" + urllib.parse.quote(prefix, safe="")
    if after:
        q += "&start-after=" + urllib.parse.quote(after, safe="")
    body = subprocess.run(["curl", "-s", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user",
                           f"{key}:{secret}", f"{s3}/{bucket}?{q}"],
                          capture_output=True, text=True).stdout
    keys = re.findall(r"<Key>([^<]*)</Key>", body)
    n += len(keys)
    if not keys or "<IsTruncated>true" not in body:
        break
    after = keys[-1]
print(n)
PY
}
fresh_bucket() {  # fresh_bucket NAME: deletes it with everything in it, creates it
  s3 DELETE "$1" >/dev/null || true
  local code; code=$(s3 PUT "$1")
  case "$code" in 200|409) ;; *) echo "cannot create bucket $1 (HTTP $code)" >&2; exit 1 ;; esac
}

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
exec 9>"$WORK/.lock"
flock -n 9 || { echo "another run uses $WORK (use --work)" >&2; exit 1; }
UP=$WORK/upstream
rm -rf "$UP" "$WORK/depot-root" "$WORK/aptly-root"
echo "== night 1: $PACKAGES packages"
python3 "$HERE/gen-nights.py" "$UP" 1 --packages "$PACKAGES"
start_nginx "$UP" dists/stable/Release

RESULTS=$WORK/results.txt
: >"$RESULTS"
timed() {  # timed TOOL STEP BUCKET PREFIX CMD...: GNU time, then objects in the bucket
  local tool=$1 step=$2 bucket=$3 prefix=$4; shift 4
  sync
  /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" >"$WORK/$tool-$step.log" 2>&1 || {
    echo "$tool $step failed:" >&2; tail -n 20 "$WORK/$tool-$step.log" >&2; exit 1; }
  local objects; objects=$(count_objects "$bucket" "$prefix")
  echo "$tool $step $(cat "$WORK/time.out") $objects" >>"$RESULTS"
  printf '   %-6s %-13s %8s s %8s objects\n' "$tool" "$step" "$(cut -d' ' -f1 "$WORK/time.out")" "$objects"
}

export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1
if [ $RUN_DEPOT = 1 ]; then
  fresh_bucket depot-bench
  D=("$DEPOT" --root "$WORK/depot-root" --no-progress -q)
  "${D[@]}" mirror create bench "$URL" --kind apt --suite stable --no-verify >/dev/null
  "${D[@]}" mirror update bench >/dev/null
  "${D[@]}" snapshot create n1 --mirror bench >/dev/null
  "${D[@]}" publish n1 --dist bench --skip-signing --compress gz >/dev/null
  timed depot first-push depot-bench p/bench/dev/ \
    "${D[@]}" dist push bench --stage dev --to s3://depot-bench/p --endpoint "$S3"
fi
if [ $RUN_APTLY = 1 ]; then
  fresh_bucket aptly-bench
  ACONF=$WORK/aptly.conf
  cat >"$ACONF" <<JSON
{
  "rootDir": "$WORK/aptly-root",
  "architectures": [],
  "gpgDisableSign": true,
  "gpgDisableVerify": true,
  "skipContentsPublishing": true,
  "skipBz2Publishing": true,
  "S3PublishEndpoints": {
    "bench": {
      "region": "us-east-1",
      "bucket": "aptly-bench",
      "endpoint": "$S3",
      "awsAccessKeyID": "$KEY",
      "awsSecretAccessKey": "$SECRET",
      "prefix": "p",
      "forceSigV2": false,
      "forceVirtualHostedStyle": false,
      "debug": false
    }
  }
}
JSON
  A=(aptly -config="$ACONF")
  "${A[@]}" mirror create -ignore-signatures -architectures=amd64 bench "$URL" stable main >/dev/null
  "${A[@]}" mirror update -ignore-signatures bench >/dev/null
  "${A[@]}" snapshot create n1 from mirror bench >/dev/null
  timed aptly first-push aptly-bench p/ \
    "${A[@]}" publish snapshot -skip-signing -skip-contents -skip-bz2 -distribution=stable n1 s3:bench:
fi

echo "== night 2: 1% of the packages changed"
python3 "$HERE/gen-nights.py" "$UP" 2 --packages "$PACKAGES"
if [ $RUN_DEPOT = 1 ]; then
  "${D[@]}" mirror update bench >/dev/null
  "${D[@]}" snapshot create n2 --mirror bench >/dev/null
  sleep 1  # a version name is a second-resolution timestamp
  "${D[@]}" publish n2 --dist bench --skip-signing --compress gz >/dev/null
  timed depot second-push depot-bench p/bench/dev/ \
    "${D[@]}" dist push bench --stage dev --to s3://depot-bench/p --endpoint "$S3"
  # The same stage again with --verify: nothing to send, the bucket listed
  # (what a push costs when it does not trust the manifest).
  timed depot verify-push depot-bench p/bench/dev/ \
    "${D[@]}" dist push bench --stage dev --verify --to s3://depot-bench/p --endpoint "$S3"
fi
if [ $RUN_APTLY = 1 ]; then
  "${A[@]}" mirror update -ignore-signatures bench >/dev/null
  "${A[@]}" snapshot create n2 from mirror bench >/dev/null
  timed aptly second-push aptly-bench p/ \
    "${A[@]}" publish switch -skip-signing -skip-contents -skip-bz2 stable s3:bench: n2
fi

python3 - "$RESULTS" "$PACKAGES" "$WORK/results.json" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    tool, step, secs, rss, objects = line.split()
    rows[(tool, step)] = {"seconds": float(secs), "rss_kb": int(rss), "objects": int(objects),
                          "objects_per_s": int(objects) / max(float(secs), 0.001)}
print("\n%-6s %-12s %9s %9s %12s %9s" % ("tool", "push", "seconds", "objects", "objects/s", "RSS MB"))
for (tool, step), r in rows.items():
    print("%-6s %-12s %9.2f %9d %12.0f %9.0f" % (tool, step, r["seconds"], r["objects"],
                                                 r["objects_per_s"], r["rss_kb"] / 1024))
out = {"packages": int(sys.argv[2]), "runs": {f"{t}/{s}": r for (t, s), r in rows.items()}}
d1, d2 = rows.get(("depot", "first-push")), rows.get(("depot", "second-push"))
a1 = rows.get(("aptly", "first-push"))
if d1 and d2:
    out["second_over_first"] = d2["seconds"] / d1["seconds"]
    print("\ndepot: second night's push is %.1f%% of the first's (target <= 5%%)"
          % (100 * out["second_over_first"]))
if d1 and a1:
    out["first_push_speedup"] = a1["seconds"] / d1["seconds"]
    print("first push: depot %.1fx faster than aptly (target >= 5x)" % out["first_push_speedup"])
json.dump(out, open(sys.argv[3], "w"), indent=2)
PY
