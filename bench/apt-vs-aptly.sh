#!/usr/bin/env bash
# Benchmark depot against aptly on the same synthetic apt repository.
#
#   bench/apt-vs-aptly.sh [--packages N] [--work DIR] [--only aptly|depot] [--seed S]
#                         [--plain-disk]
#
# Generates (or reuses) a repository with bench/gen-apt-repo.py, serves it with
# a private nginx on 127.0.0.1:<random port>, then runs mirror create / cold
# update / no-op update / snapshot / publish with each tool from a fresh root,
# and the loopback limit of the cold update (the same GETs by curl
# --parallel, written to files),
# timing every step with GNU time (wall seconds + peak RSS).  Prints a table
# and writes $WORK/results.json.  See bench/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
REPO_ROOT=$(dirname "$HERE")

PACKAGES=63000
SEED=1
WORK=/tmp/depot-bench
ONLY=both
PLAIN_DISK=0

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --packages) PACKAGES=$2; shift 2 ;;
    --packages=*) PACKAGES=${1#*=}; shift ;;
    --work) WORK=$2; shift 2 ;;
    --work=*) WORK=${1#*=}; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#*=}; shift ;;
    --seed) SEED=$2; shift 2 ;;
    --seed=*) SEED=${1#*=}; shift ;;
    --plain-disk) PLAIN_DISK=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
  esac
done
case "$ONLY" in both|aptly|depot) ;; *) echo "--only must be aptly or depot" >&2; exit 2 ;; esac
case "$PACKAGES" in ''|*[!0-9]*) echo "--packages must be a number" >&2; exit 2 ;; esac

DEPOT=${DEPOT:-$REPO_ROOT/target/release/depot}
case "$DEPOT" in /*) ;; *) DEPOT=$REPO_ROOT/$DEPOT ;; esac

RUN_APTLY=0; RUN_DEPOT=0
[ "$ONLY" != depot ] && RUN_APTLY=1
[ "$ONLY" != aptly ] && RUN_DEPOT=1

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }; }
need python3 "apt-get install python3"
need curl "apt-get install curl"
[ -x /usr/bin/time ] || { echo "missing: /usr/bin/time (apt-get install time)" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "missing: nginx (apt-get install nginx-light)" >&2; exit 1; }
[ $RUN_APTLY = 1 ] && need aptly "apt-get install aptly"
if [ $RUN_DEPOT = 1 ] && [ ! -x "$DEPOT" ]; then
  echo "note: depot binary not found at $DEPOT (set DEPOT=... or cargo build --release); skipping depot steps" >&2
  RUN_DEPOT=0
fi

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
# two runs sharing a work dir would wipe each other's roots, logs and nginx
if command -v flock >/dev/null 2>&1; then
  exec 9>"$WORK/.lock"
  flock -n 9 || { echo "another benchmark run is using $WORK (use --work)" >&2; exit 1; }
fi
LOGS=$WORK/logs
REPO=$WORK/repo-n$PACKAGES-s$SEED
TSV=$WORK/results.tsv
rm -rf "$LOGS"; mkdir -p "$LOGS"
: >"$TSV"

# Both tools' roots live on a filesystem made fresh for each run (an ext4
# image with a journal, loop-mounted at $WORK/fs and left mounted for
# serve-vs-nginx.sh and inspection). This box's own ext4 has no journal, and
# without one ext4 skips inodes freed in the last 60-360 s when it allocates
# (fs/ext4/ialloc.c, recently_deleted), rescanning them for every new file:
# deleting a previous 63k-file root before a cold update made file creation
# quadratic, and both tools' cold-update figures depended on what the box
# deleted minutes before (perf: 20% of depot's CPU in recently_deleted).
# Without root (or losetup), the roots stay in $WORK and the run warns.
FS=$WORK/fs
if mountpoint -q "$FS" 2>/dev/null; then umount "$FS"; fi
rm -rf "$WORK/aptly-root" "$WORK/depot-root" "$WORK/fs.img"
ROOTS=$WORK
# --plain-disk: the roots on this box's own filesystem, as users' machines
# have them (issue 16 judges its targets on both).
if [ $PLAIN_DISK = 1 ]; then
  ROOTS=$WORK/roots
  rm -rf "$ROOTS"; mkdir -p "$ROOTS"
  echo "== roots on the plain disk at $ROOTS"
elif [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null &&
   truncate -s 16G "$WORK/fs.img" && mkfs.ext4 -q -F "$WORK/fs.img" &&
   mkdir -p "$FS" && mount -o loop "$WORK/fs.img" "$FS"; then
  ROOTS=$FS
  echo "== roots on a fresh ext4 (journal) at $FS"
else
  rm -f "$WORK/fs.img"
  echo "warning: cannot make a fresh filesystem (needs root and a loop device);" \
    "roots stay in $WORK and cold updates depend on what the box deleted recently" >&2
fi

# ---------------------------------------------------------------- repository
echo "== repository: $PACKAGES packages (seed $SEED) at $REPO"
gen_t0=$(date +%s.%N)
python3 "$HERE/gen-apt-repo.py" "$REPO" --packages "$PACKAGES" --seed "$SEED"
gen_t1=$(date +%s.%N)
echo "   ($(python3 -c "print('%.1f' % ($gen_t1 - $gen_t0))") s)"

# --------------------------------------------------------------------- nginx
first_deb=$(awk '/^Filename: /{print $2; exit}' "$REPO/dists/stable/main/binary-amd64/Packages")
start_nginx "$REPO" dists/stable/Release "$first_deb"

# a 2-core box shared with a compiler gives meaningless numbers: say so
read -r LOAD_START _ < /proc/loadavg
NPROC=$(nproc)
if python3 -c "import sys; sys.exit(0 if $LOAD_START > 0.5 * $NPROC else 1)"; then
  echo "warning: load average is $LOAD_START on $NPROC CPUs; timings will be noisy" >&2
fi

# ------------------------------------------------------------- step runner
FAILED=0
# run_step TOOL STEP CMD...
#   -> appends "TOOL STEP WALL_S RSS_KB RC HIRES_WALL_S USER_S SYS_S LOADAVG1" to $TSV
# WALL_S/RSS_KB come from GNU time (%e has 10 ms resolution); HIRES_WALL_S is
# measured around /usr/bin/time by the shell (includes ~1 ms of fork/exec).
run_step() {
  local tool=$1 step=$2; shift 2
  local log=$LOGS/$tool-$step.log tf=$LOGS/$tool-$step.time rc=0
  sync  # don't bill one step for the previous step's writeback
  printf '   %-6s %-13s ' "$tool" "$step"
  local t0 t1
  t0=${EPOCHREALTIME:-$(date +%s.%N)}
  /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$log" 2>&1 || rc=$?
  t1=${EPOCHREALTIME:-$(date +%s.%N)}
  local wall rss usr sys hr load
  hr=$(python3 -c "print('%.4f' % ($t1 - $t0))")
  read -r wall rss usr sys < <(tail -n 1 "$tf")
  read -r load _ < /proc/loadavg
  printf '%8s s %9s KB' "$wall" "$rss"
  echo "$tool $step $wall $rss $rc $hr $usr $sys $load" >>"$TSV"
  if [ "$rc" != 0 ]; then
    printf '   FAILED (exit %s), log: %s\n' "$rc" "$log"
    tail -n 15 "$log" | sed 's/^/      | /'
    FAILED=1
    return 1
  fi
  echo
}

count_stanzas() {  # count_stanzas FILE(.gz|.xz)
  case "$1" in
    *.gz) gzip -dc "$1" ;;
    *.xz) xz -dc "$1" ;;
    *) cat "$1" ;;
  esac | grep -c '^Package: ' || true
}

APTLY_VERSION= APTLY_CONC= APTLY_PUBLISHED= APTLY_MIRROR_PKGS=
DEPOT_VERSION= DEPOT_PUBLISHED=

# --------------------------------------------------------------------- aptly
if [ $RUN_APTLY = 1 ]; then
  AROOT=$ROOTS/aptly-root
  ACONF=$WORK/aptly.conf
  # downloadConcurrency deliberately not set: aptly's default is what we measure
  cat >"$ACONF" <<EOF
{
  "rootDir": "$AROOT",
  "architectures": [],
  "gpgDisableSign": true,
  "gpgDisableVerify": true,
  "skipContentsPublishing": true,
  "skipBz2Publishing": true
}
EOF
  APTLY_VERSION=$(aptly -config="$ACONF" version 2>/dev/null | sed 's/^aptly version: //')
  APTLY_CONC=$(aptly -config="$ACONF" config show 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("downloadConcurrency",""))' 2>/dev/null || true)
  echo "== aptly $APTLY_VERSION (downloadConcurrency=${APTLY_CONC:-?}), root $AROOT"
  A=(aptly -config="$ACONF")
  if run_step aptly create "${A[@]}" mirror create -ignore-signatures -architectures=amd64 bench "$URL" stable main &&
     run_step aptly cold-update "${A[@]}" mirror update -ignore-signatures bench &&
     run_step aptly noop-update "${A[@]}" mirror update -ignore-signatures bench &&
     run_step aptly snapshot "${A[@]}" snapshot create bench-snap from mirror bench &&
     run_step aptly publish "${A[@]}" publish snapshot -skip-contents -skip-bz2 -skip-signing -distribution=stable bench-snap
  then
    APTLY_MIRROR_PKGS=$("${A[@]}" mirror show bench 2>/dev/null | awk -F': ' '/^Number of packages/{print $2}')
    pf=$AROOT/public/dists/stable/main/binary-amd64/Packages.gz
    [ -f "$pf" ] && APTLY_PUBLISHED=$(count_stanzas "$pf")
    echo "   aptly: mirror has ${APTLY_MIRROR_PKGS:-?} packages, published index has ${APTLY_PUBLISHED:-?}"
  fi
  # Release engineering on the 63k snapshot (issue 4): a second snapshot
  # without the a* packages makes the merge and the diff non-trivial.
  run_step aptly filter-deps "${A[@]}" snapshot filter -with-deps bench-snap bench-req 'Priority (required)' &&
  run_step aptly make-other "${A[@]}" snapshot filter bench-snap bench-other '!Name (% a*)' &&
  run_step aptly merge "${A[@]}" snapshot merge -latest bench-merged bench-snap bench-other &&
  run_step aptly diff "${A[@]}" snapshot diff bench-snap bench-other &&
  run_step aptly verify "${A[@]}" snapshot verify bench-snap || true
fi

# --------------------------------------------------------------------- depot
if [ $RUN_DEPOT = 1 ]; then
  DROOT=$ROOTS/depot-root
  DEPOT_VERSION=$("$DEPOT" --version 2>/dev/null | head -n 1 || true)
  echo "== depot ${DEPOT_VERSION:-?} ($DEPOT), root $DROOT"
  D=("$DEPOT" --root "$DROOT" --no-progress)
  if run_step depot create "${D[@]}" mirror create bench "$URL" --kind apt --suite stable --component main --arch amd64 --no-verify &&
     run_step depot cold-update "${D[@]}" mirror update bench &&
     run_step depot noop-update "${D[@]}" mirror update bench &&
     run_step depot snapshot "${D[@]}" snapshot create bench-snap --mirror bench &&
     run_step depot publish "${D[@]}" publish bench-snap --dist bench --skip-signing --compress gz
  then
    # best effort: wherever depot put the published tree, count its stanzas
    # (e.g. public/<dist>/<timestamp>/dists/stable/main/binary-amd64/)
    pf=$(find "$DROOT" -path '*/binary-amd64/Packages.gz' 2>/dev/null | head -n 1)
    [ -n "$pf" ] && DEPOT_PUBLISHED=$(count_stanzas "$pf")
    echo "   depot: published index ${pf:-<not found>} has ${DEPOT_PUBLISHED:-?} packages"
  fi
  # depot's verify exits 1 when a dependency is unsatisfiable (aptly's
  # exits 0 either way); both report the same list.
  run_step depot filter-deps "${D[@]}" snapshot filter bench-snap bench-req 'Priority (required)' --with-deps &&
  run_step depot make-other "${D[@]}" snapshot filter bench-snap bench-other '!Name (% a*)' &&
  run_step depot merge "${D[@]}" release create bench-merged --from bench-snap bench-other &&
  run_step depot diff "${D[@]}" snapshot diff bench-snap bench-other &&
  run_step depot verify sh -c '"$@" snapshot verify bench-snap; [ $? -le 1 ]' sh "${D[@]}" || true
fi

# ------------------------------------------------------- the loopback limit
# The cold update's floor here: every package GET of the index, written to
# a file, by curl --parallel (8 at once, depot's default concurrency;
# CURL_PARALLEL=N for another),
# with no hashing, no temp files, no index to decode. It runs after both
# tools: on a plain ext4 without a journal, files created right after many
# were deleted are slow to make, and deleting curl's 63k files before a
# tool's cold update would bill that tool for it.
CURL_DIR=$ROOTS/curl-limit
CURL_CFG=$WORK/curl-limit.cfg
awk -v url="$URL" -v dir="$CURL_DIR" '/^Filename: /{
  printf "url = \"%s%s\"\noutput = \"%s/%s\"\n", url, $2, dir, $2 }' \
  "$REPO/dists/stable/main/binary-amd64/Packages" >"$CURL_CFG"
rm -rf "$CURL_DIR"
run_step curl cold-limit curl -sS --fail --create-dirs --parallel --parallel-max "${CURL_PARALLEL:-8}" -K "$CURL_CFG" || true
rm -rf "$CURL_DIR"

# ------------------------------------------------------------ table + JSON
export PLAIN_DISK LOAD_START PACKAGES SEED URL WORK REPO TSV DEPOT APTLY_VERSION APTLY_CONC APTLY_PUBLISHED \
  APTLY_MIRROR_PKGS DEPOT_VERSION DEPOT_PUBLISHED RUN_APTLY RUN_DEPOT
python3 - <<'PY'
import json, os, platform, datetime

E = os.environ
rows = {}
for line in open(E["TSV"]):
    tool, step, wall, rss, rc, hr, usr, sys_, load = line.split()
    rows.setdefault(step, {})[tool] = {"wall_s": float(wall), "peak_rss_kb": int(rss),
                                       "rc": int(rc), "wall_s_hires": float(hr),
                                       "cpu_s": round(float(usr) + float(sys_), 2),
                                       "loadavg1_after": float(load)}

STEPS = [
    ("create",      "mirror create", None,     "-"),
    ("cold-update", "cold update",   "ratio",  ">= 5x faster"),
    ("noop-update", "no-op update",  "abs",    "depot < 1 s"),
    ("snapshot",    "snapshot",      "abs",    "depot < 0.1 s"),
    ("publish",     "publish",       "ratio",  ">= 10x faster"),
    ("filter-deps", "filter --with-deps", "both", ">= 10x, < 0.5 s"),
    ("merge",       "merge / release create", "both", ">= 10x, < 0.5 s"),
    ("diff",        "snapshot diff", "both",   ">= 10x, < 0.5 s"),
    ("verify",      "snapshot verify", "both", ">= 10x, < 0.5 s"),
]
ABS = {"noop-update": 1.0, "snapshot": 0.1}
RATIO = {"cold-update": 5.0, "publish": 10.0}

def ok(t):
    return t is not None and t["rc"] == 0

steps_out = []
for key, label, kind, target in STEPS:
    r = rows.get(key, {})
    a, d = r.get("aptly"), r.get("depot")
    ratio = None
    if ok(a) and ok(d):
        # GNU time's resolution is 10 ms, too coarse for steps that take
        # tens of milliseconds: compare the shell's high-resolution times
        # (each includes the same ~1 ms of fork/exec).
        ratio = a["wall_s_hires"] / max(d["wall_s_hires"], 0.001)
    passed = None
    if kind == "ratio" and ratio is not None:
        passed = ratio >= RATIO[key]
    elif kind == "abs" and ok(d):
        passed = d["wall_s"] < ABS[key]
    elif kind == "both" and ratio is not None:
        passed = ratio >= 10.0 and d["wall_s"] < 0.5
    steps_out.append({"step": key, "label": label, "aptly": a, "depot": d,
                      "ratio": None if ratio is None else round(ratio, 2),
                      "target": target, "pass": passed})

# The RSS target is the mirror's (create, updates, snapshot, publish); the
# release-engineering steps report their own RSS in the JSON.
MIRROR_STEPS = {"create", "cold-update", "noop-update", "snapshot", "publish"}

def peak(tool):
    v = [r[tool]["peak_rss_kb"] for k, r in rows.items() if tool in r and k in MIRROR_STEPS]
    return max(v) if v else None

# The cold update against the loopback limit (curl, same GETs).
limit = rows.get("cold-limit", {}).get("curl")
cold = rows.get("cold-update", {}).get("depot")
vs_limit = None
if ok(limit) and ok(cold):
    vs_limit = {"curl_s": limit["wall_s_hires"], "depot_s": cold["wall_s_hires"],
                "depot_over_limit": round(cold["wall_s_hires"] / max(limit["wall_s_hires"], 0.001), 2),
                "target": "<= 1.5"}

pa, pd = peak("aptly"), peak("depot")
rss_ratio = pa / pd if pa and pd else None
rss = {"aptly_kb": pa, "depot_kb": pd,
       "ratio": None if rss_ratio is None else round(rss_ratio, 2),
       "target": "depot <= 1/4 of aptly",
       "pass": None if rss_ratio is None else rss_ratio >= 4.0}

def fmt_s(t):
    if t is None:
        return "-"
    return ("%.3f" % t["wall_s_hires"]) + ("" if t["rc"] == 0 else " (FAIL)")

def verdict(p):
    return "" if p is None else ("PASS" if p else "MISS")

print()
print("Results: %s packages, %s" % (E["PACKAGES"], E["URL"]))
hdr = "%-24s %10s %10s %12s  %-15s %s" % ("step", "aptly s", "depot s", "aptly/depot", "target", "")
print(hdr)
print("-" * len(hdr))
for s in steps_out:
    ratio = "-" if s["ratio"] is None else "%.1fx" % s["ratio"]
    print("%-24s %10s %10s %12s  %-15s %s" % (s["label"], fmt_s(s["aptly"]), fmt_s(s["depot"]),
                                             ratio, s["target"], verdict(s["pass"])))
if vs_limit:
    print("%-24s %10s %10s %12s  %-15s %s" % ("cold update / curl", "%.3f" % vs_limit["curl_s"],
          "%.3f" % vs_limit["depot_s"], "%.2fx" % vs_limit["depot_over_limit"], "depot <= 1.5x",
          verdict(vs_limit["depot_over_limit"] <= 1.5)))
mb = lambda kb: "-" if kb is None else "%.0f MB" % (kb / 1024)
print("%-24s %10s %10s %12s  %-15s %s" % ("peak RSS", mb(pa), mb(pd),
      "-" if rss_ratio is None else "%.1fx" % rss_ratio, "depot <= 1/4", verdict(rss["pass"])))

def num(name):
    v = E.get(name, "")
    return int(v) if v.isdigit() else None

cpu = None
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass

out = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "packages": int(E["PACKAGES"]), "seed": int(E["SEED"]),
    "repo": E["REPO"], "url": E["URL"],
    "host": {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
             "loadavg1_at_start": float(E["LOAD_START"])},
    "aptly": {"version": E.get("APTLY_VERSION") or None,
              "download_concurrency": num("APTLY_CONC"),
              "mirror_packages": num("APTLY_MIRROR_PKGS"),
              "published_packages": num("APTLY_PUBLISHED")} if E["RUN_APTLY"] == "1" else None,
    "depot": {"binary": E["DEPOT"], "version": E.get("DEPOT_VERSION") or None,
              "published_packages": num("DEPOT_PUBLISHED")} if E["RUN_DEPOT"] == "1" else None,
    "steps": steps_out,
    "peak_rss": rss,
    "cold_update_vs_curl": vs_limit,
    "plain_disk": E.get("PLAIN_DISK") == "1",
}
path = os.path.join(E["WORK"], "results.json")
with open(path, "w") as fh:
    json.dump(out, fh, indent=2)
    fh.write("\n")
print("\nwrote %s (logs in %s/logs)" % (path, E["WORK"]))
PY

exit $FAILED
