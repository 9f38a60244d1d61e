#!/usr/bin/env bash
# Retention benchmark: NIGHTS nights of a synthetic apt mirror (1% of its
# packages changed a night), each snapshotted and published, then
# `prune --keep-last 7` + `gc`, and `check`, timed with GNU time (wall
# seconds + peak RSS), each after a `sync`.
#
#   bench/retention.sh [--packages N] [--nights N] [--work DIR] [--only depot|both]
#
# Defaults: 63000 packages, 30 nights, /tmp/depot-bench-retention. Run it
# twice (--nights 10, --nights 30) to see gc's memory grow with distinct
# blobs rather than with nights. With aptly on PATH (and not --only
# depot), aptly mirrors the same nights, snapshots and publishes each
# (distribution nN, gz only), then drops all but the last 7 (`publish
# drop` + `snapshot drop`, timed as its prune) and runs `db cleanup`
# (its gc). Prints a table and writes $WORK/results.json. See
# bench/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
REPO_ROOT=$(dirname "$HERE")

PACKAGES=63000
NIGHTS=30
WORK=/tmp/depot-bench-retention
ONLY=both

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --packages) PACKAGES=$2; shift 2 ;;
    --nights) NIGHTS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
  esac
done
for n in "$PACKAGES" "$NIGHTS"; do
  case "$n" in ''|*[!0-9]*) echo "--packages and --nights must be numbers" >&2; exit 2 ;; esac
done
[ "$NIGHTS" -gt 7 ] || { echo "--nights must be more than 7 (prune keeps 7)" >&2; exit 2; }
case "$ONLY" in depot|both) ;; *) echo "--only must be depot or both" >&2; exit 2 ;; esac
APTLY=0
if [ "$ONLY" = both ]; then
  if command -v aptly >/dev/null 2>&1; then APTLY=1; else echo "aptly not on PATH: depot only" >&2; fi
fi

DEPOT=${DEPOT:-$REPO_ROOT/target/release/depot}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$DEPOT" ] || { echo "build depot first: cargo build --release" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "missing: nginx (apt-get install nginx-light)" >&2; exit 1; }

mkdir -p "$WORK"
UP=$WORK/upstream
ROOT=$WORK/depot-root
ACONF=$WORK/aptly.conf
rm -rf "$UP" "$ROOT" "$WORK/aptly-root"
python3 "$HERE/gen-nights.py" "$UP" 1 --packages "$PACKAGES"
start_nginx "$UP" dists/stable/Release

depot() { "$DEPOT" --root "$ROOT" --no-progress -q "$@"; }
# timed LABEL CMD...: runs CMD under GNU time, appends "LABEL seconds kB".
RESULTS=$WORK/results.txt
: >"$RESULTS"
timed() {
  local label=$1; shift
  # The step before (a prune unlinks a million links) leaves journal
  # and writeback work that the next step would otherwise pay for.
  sync
  /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" >/dev/null
  echo "$label $(cat "$WORK/time.out")" >>"$RESULTS"
}

depot mirror create m "$URL" --kind apt --suite stable --component main --arch amd64 --no-verify
A=(aptly -config="$ACONF")
if [ $APTLY = 1 ]; then
  cat >"$ACONF" <<JSON
{
  "rootDir": "$WORK/aptly-root",
  "architectures": ["amd64"],
  "gpgDisableSign": true,
  "gpgDisableVerify": true,
  "skipContentsPublishing": true,
  "skipBz2Publishing": true
}
JSON
  "${A[@]}" mirror create -ignore-signatures -architectures=amd64 m "$URL" stable main >/dev/null
fi
for n in $(seq 1 "$NIGHTS"); do
  python3 "$HERE/gen-nights.py" "$UP" "$n" --packages "$PACKAGES"
  stamp=$(printf '2026-11-01T02:00:00Z' | python3 -c "import sys,datetime; t=datetime.datetime.fromisoformat(sys.stdin.read().replace('Z','+00:00'))+datetime.timedelta(days=$n-1); print(t.strftime('%Y-%m-%dT%H:%M:%SZ'))")
  export DEPOT_NOW=$stamp
  depot mirror update m >/dev/null
  depot snapshot create --mirror m >/dev/null
  snap=$(depot snapshot list --output-format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["name"])')
  depot publish "$snap" --dist bench --skip-signing --compress gz >/dev/null
  if [ $APTLY = 1 ]; then
    "${A[@]}" mirror update -ignore-signatures m >/dev/null
    "${A[@]}" snapshot create "n$n" from mirror m >/dev/null
    "${A[@]}" publish snapshot -skip-signing -skip-contents -skip-bz2 -distribution="n$n" "n$n" >/dev/null
  fi
  echo "night $n: $snap" >&2
done
export DEPOT_NOW=$(python3 -c "import datetime; print((datetime.datetime(2026,11,1,3)+datetime.timedelta(days=$NIGHTS)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
du_before=$(du -sb "$ROOT" | cut -f1)
timed "check" "$DEPOT" --root "$ROOT" --no-progress -q check
timed "prune-dry-run" "$DEPOT" --root "$ROOT" --no-progress -q prune --keep-last 7 --dry-run
timed "prune" "$DEPOT" --root "$ROOT" --no-progress -q prune --keep-last 7
timed "gc" "$DEPOT" --root "$ROOT" --no-progress -q gc
du_after=$(du -sb "$ROOT" | cut -f1)
timed "check-after" "$DEPOT" --root "$ROOT" --no-progress -q check
timed "check-full" "$DEPOT" --root "$ROOT" --no-progress -q check --full

if [ $APTLY = 1 ]; then
  # aptly has no retention rule: its prune is dropping each old night's
  # publish and snapshot by name, the way its users script it.
  drop=$WORK/aptly-drop.sh
  {
    echo 'set -e'
    for n in $(seq 1 $((NIGHTS - 7))); do
      echo "aptly -config='$ACONF' publish drop n$n >/dev/null"
      echo "aptly -config='$ACONF' snapshot drop n$n >/dev/null"
    done
  } >"$drop"
  adu_before=$(du -sb "$WORK/aptly-root" | cut -f1)
  timed "aptly-prune" bash "$drop"
  timed "aptly-db-cleanup" "${A[@]}" db cleanup
  adu_after=$(du -sb "$WORK/aptly-root" | cut -f1)
  echo "aptly root: $adu_before bytes before, $adu_after after" >&2
fi

python3 - "$RESULTS" "$WORK/results.json" "$PACKAGES" "$NIGHTS" "$du_before" "$du_after" <<'PY'
import json, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
out = {"packages": int(sys.argv[3]), "nights": int(sys.argv[4]),
       "root_bytes_before": int(sys.argv[5]), "root_bytes_after": int(sys.argv[6]),
       "steps": {r[0]: {"seconds": float(r[1]), "peak_rss_kb": int(r[2])} for r in rows}}
json.dump(out, open(sys.argv[2], "w"), indent=2)
print(f"{out['packages']} packages, {out['nights']} nights; root {out['root_bytes_before']/1e6:.1f} MB -> {out['root_bytes_after']/1e6:.1f} MB")
print(f"{'step':<16}{'seconds':>10}{'peak RSS MB':>14}")
for k, v in out["steps"].items():
    print(f"{k:<16}{v['seconds']:>10.2f}{v['peak_rss_kb']/1024:>14.1f}")
st = out["steps"]
if "aptly-db-cleanup" in st:
    ratio = st["aptly-db-cleanup"]["seconds"] / max(st["gc"]["seconds"], 0.001)
    both = (st["aptly-prune"]["seconds"] + st["aptly-db-cleanup"]["seconds"]) / max(
        st["prune"]["seconds"] + st["gc"]["seconds"], 0.001)
    out["gc_speedup"], out["prune_gc_speedup"] = ratio, both
    json.dump(out, open(sys.argv[2], "w"), indent=2)
    print(f"gc: depot {ratio:.1f}x faster than aptly db cleanup (target >= 20x); "
          f"prune + gc: {both:.1f}x")
PY
