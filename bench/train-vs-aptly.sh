#!/usr/bin/env bash
# A nightly release train: `depot train run` against the same night as an
# aptly shell script (issue 11, "Performance").
#
#   bench/train-vs-aptly.sh [--packages N] [--share PERCENT] [--work DIR]
#                           [--runs N] [--only depot|both] [--plain-disk]
#
# Two upstream apt trees from bench/gen-nights.py, served by one private
# nginx: mirror `a` has N packages (pkg0..pkgN-1), mirror `b` the first
# PERCENT % of them (default 90), byte for byte the same files, so the two
# share most packages and their merge is the N-package corpus. Night 2
# regenerates both at night 2: 1% of the packages changed, the same ones
# (and the same new files) in both. depot: one train file (both mirrors
# inline, release `merged` from [a, b] policy latest, publish `stable`
# unsigned, gz) run by `depot train run` each night. aptly 1.5: a shell
# script a night (mirror create x2 the first night, mirror update x2,
# snapshot create x2, snapshot merge -latest, publish snapshot the first
# night, publish switch the second; unsigned, -skip-contents -skip-bz2),
# run one command after the other. Each night is timed whole (wall,
# peak RSS) and per step: depot's steps from the train's journal, aptly's
# commands one by one. The train's overhead is its wall time minus the
# critical path of its steps; its own overhead leaves out the process
# start, up to depot's first clock reading (see "Overhead" in
# bench/README.md).
# Each run starts from empty roots; --runs N repeats both nights N times.
# --plain-disk keeps the roots on the disk $WORK is on (what users' machines
# look like) instead of a fresh ext4 per run.
# Defaults: 63000 packages, 90%, /tmp/depot-bench-train, 1 run, both.
# Prints a table and writes $WORK/results.json.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
REPO_ROOT=$(dirname "$HERE")

PACKAGES=63000
SHARE=90
WORK=/tmp/depot-bench-train
RUNS=1
ONLY=both
PLAIN=0

usage() { sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --packages) PACKAGES=$2; shift 2 ;;
    --share) SHARE=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --plain-disk) PLAIN=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
  esac
done
for n in "$PACKAGES" "$SHARE" "$RUNS"; do
  case "$n" in ''|*[!0-9]*) echo "--packages, --share and --runs must be numbers" >&2; exit 2 ;; esac
done
[ "$RUNS" -ge 1 ] || { echo "--runs must be at least 1" >&2; exit 2; }
[ "$SHARE" -ge 1 ] && [ "$SHARE" -le 100 ] || { echo "--share must be 1..100" >&2; exit 2; }
case "$ONLY" in depot|both) ;; *) echo "--only must be depot or both" >&2; exit 2 ;; esac
PACKAGES_B=$((PACKAGES * SHARE / 100))
[ "$PACKAGES_B" -ge 1 ] || { echo "--packages x --share leaves mirror b empty" >&2; exit 2; }

DEPOT=${DEPOT:-$REPO_ROOT/target/release/depot}
case "$DEPOT" in /*) ;; *) DEPOT=$REPO_ROOT/$DEPOT ;; esac
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$DEPOT" ] || { echo "build depot first: cargo build --release (or DEPOT=...)" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "missing: nginx (apt-get install nginx-light)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "missing: /usr/bin/time (apt-get install time)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 1; }
APTLY=0
if [ "$ONLY" = both ]; then
  if command -v aptly >/dev/null 2>&1; then APTLY=1; else echo "aptly not on PATH: depot only" >&2; fi
fi

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
exec 9>"$WORK/.lock"
flock -n 9 || { echo "another run uses $WORK (use --work)" >&2; exit 1; }
UP=$WORK/upstream
LOGS=$WORK/logs
TSV=$WORK/nights.tsv          # RUN TOOL NIGHT T0 T1 WALL RSS_KB USER SYS
CMDS=$WORK/aptly-commands.tsv # RUN NIGHT COMMAND T0 T1 WALL RSS_KB USER SYS
rm -rf "$UP" "$LOGS" "$WORK/roots"
mkdir -p "$LOGS"
: >"$TSV"; : >"$CMDS"

# Both tools' roots go on an ext4 made fresh for each run, as in
# apt-vs-aptly.sh: on a journal-less ext4 (this box's root) file creation
# slows down after many recent deletions (recently_deleted), so a cold
# first night right after removing the previous run's roots would be
# billed for that removal. Without root or a loop device the roots stay
# in $WORK/roots and the run warns.
FS=$WORK/fs
fresh_roots() {
  if mountpoint -q "$FS" 2>/dev/null; then umount "$FS"; fi
  rm -rf "$WORK/roots" "$WORK/fs.img"
  if [ "$PLAIN" = 0 ] && [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null &&
     truncate -s 16G "$WORK/fs.img" && mkfs.ext4 -q -F "$WORK/fs.img" &&
     mkdir -p "$FS" && mount -o loop "$WORK/fs.img" "$FS" 2>/dev/null; then
    ROOTS=$FS
  else
    rm -f "$WORK/fs.img"
    ROOTS=$WORK/roots
    mkdir -p "$ROOTS"
    [ "$PLAIN" = 1 ] || echo "warning: no fresh filesystem for the roots (needs root and a loop device);" \
      "the first night's figures depend on what the box deleted recently" >&2
  fi
}

gen() {  # gen NIGHT: both upstream trees at NIGHT
  python3 "$HERE/gen-nights.py" "$UP/a" "$1" --packages "$PACKAGES"
  python3 "$HERE/gen-nights.py" "$UP/b" "$1" --packages "$PACKAGES_B"
}

echo "== upstream: mirror a $PACKAGES packages, mirror b $PACKAGES_B (the first $SHARE % of a)"
gen 1
start_nginx "$UP" a/dists/stable/Release b/dists/stable/Release

read -r LOAD_START _ </proc/loadavg
if python3 -c "import sys; sys.exit(0 if $LOAD_START > 0.5 * $(nproc) else 1)"; then
  echo "warning: load average is $LOAD_START on $(nproc) CPUs; timings will be noisy" >&2
fi

# What /usr/bin/time itself costs (fork + exec of time and of a trivial
# program), measured by the shell's clock: subtracted from the train's
# wall time before its overhead is computed, since no train pays it.
TIME_BASE=$(for _ in 1 2 3 4 5 6 7; do
  t0=$EPOCHREALTIME; /usr/bin/time -f '%e' -o "$WORK/time.base" true; t1=$EPOCHREALTIME
  echo "$t0 $t1"
done | python3 -c 'import sys, statistics
print("%.6f" % statistics.median(float(b) - float(a) for a, b in (l.split() for l in sys.stdin)))')

# ------------------------------------------------------------------- depot
TRAIN=$WORK/train.yaml
cat >"$TRAIN" <<YAML
# bench/train-vs-aptly.sh: two mirrors sharing most packages, one
# release merging them, one unsigned gz-only publish.
train: bench
mirror-concurrency: 4
mirrors:
  - name: a
    url: ${URL}a/
    kind: apt
    suite: stable
    components: [main]
    archs: [amd64]
    no-verify: true
  - name: b
    url: ${URL}b/
    kind: apt
    suite: stable
    components: [main]
    archs: [amd64]
    no-verify: true
releases:
  merged:
    from: [a, b]
    policy: latest
publish:
  stable:
    from: merged
    skip-signing: true
    suite: stable
    compress: [gz]
YAML
DEPOT_VERSION=$("$DEPOT" --version 2>/dev/null | head -n 1 || true)

# timed_night RUN TOOL NIGHT OUT CMD...: runs CMD (stdout to OUT.json:
# depot's journal; stderr appended to OUT.log) under GNU time after a sync, timed by the
# shell's microsecond clock too; appends a row to $TSV and prints a line.
timed_night() {
  local r=$1 tool=$2 n=$3 out=$4 rc=0 t0 t1
  shift 4
  sync
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%e %M %U %S' -o "$out.time" "$@" >"$out.json" 2>>"$out.log" || rc=$?
  t1=$EPOCHREALTIME
  if [ $rc != 0 ]; then
    echo "$tool night $n failed with exit $rc:" >&2
    tail -n 30 "$out.log" >&2
    exit 1
  fi
  local wall rss usr sys
  read -r wall rss usr sys < <(tail -n 1 "$out.time")
  echo "$r $tool $n $t0 $t1 $wall $rss $usr $sys" >>"$TSV"
  printf '   %-5s  night %s %8.3f s  %7.1f MB\n' "$tool" "$n" \
    "$(python3 -c "print($t1 - $t0)")" "$(python3 -c "print($rss / 1024)")"
}

depot_night() {  # depot_night RUN NIGHT: one `train run`, timed; its journal kept
  local r=$1 n=$2 out
  out=$LOGS/run$r-depot-night$n
  local D=("$DEPOT" --root "$ROOTS/depot-root" --no-progress)
  # The RUN id has a resolution of one second: never two nights in one.
  sleep 1
  : >"$out.log"
  timed_night "$r" depot "$n" "$out" "${D[@]}" --output-format json train run "$TRAIN"
}

# ------------------------------------------------------------------- aptly
ACONF=$WORK/aptly.conf
aptly_night() {  # aptly_night RUN NIGHT: the night as one shell script, timed
  local r=$1 n=$2 out script
  out=$LOGS/run$r-aptly-night$n
  script=$WORK/aptly-night$n.sh
  cat >"$ACONF" <<JSON
{
  "rootDir": "$ROOTS/aptly-root",
  "architectures": [],
  "gpgDisableSign": true,
  "gpgDisableVerify": true,
  "skipContentsPublishing": true,
  "skipBz2Publishing": true
}
JSON
  # Each command runs under GNU time (about 1 ms each); its line in
  # $CMDS: RUN NIGHT COMMAND T0 T1 WALL RSS USER SYS.
  {
    echo '#!/usr/bin/env bash'
    echo "# aptly's night $n, written by bench/train-vs-aptly.sh"
    echo 'set -euo pipefail'
    printf 'A=(aptly %q)\n' "-config=$ACONF"
    printf 'CMDS=%q TF=%q LOG=%q\n' "$CMDS" "$out.cmd.time" "$out.log"
    echo 'step() {  # step LABEL CMD...'
    echo '  local label=$1 t0 t1; shift'
    echo '  t0=$EPOCHREALTIME'
    echo '  /usr/bin/time -f "%e %M %U %S" -o "$TF" "$@" >>"$LOG" 2>&1 ||'
    echo '    { echo "aptly $label failed (log: $LOG)" >&2; exit 1; }'
    echo '  t1=$EPOCHREALTIME'
    printf '  echo "%s %s $label $t0 $t1 $(tail -n 1 "$TF")" >>"$CMDS"\n' "$r" "$n"
    echo '}'
    if [ "$n" = 1 ]; then
      echo 'step "mirror create a" "${A[@]}" mirror create -ignore-signatures -architectures=amd64 a' \
        "$(printf %q "${URL}a/")" 'stable main'
      echo 'step "mirror create b" "${A[@]}" mirror create -ignore-signatures -architectures=amd64 b' \
        "$(printf %q "${URL}b/")" 'stable main'
    fi
    echo "step \"mirror update a\" \"\${A[@]}\" mirror update -ignore-signatures a"
    echo "step \"mirror update b\" \"\${A[@]}\" mirror update -ignore-signatures b"
    echo "step \"snapshot create a\" \"\${A[@]}\" snapshot create a-n$n from mirror a"
    echo "step \"snapshot create b\" \"\${A[@]}\" snapshot create b-n$n from mirror b"
    echo "step \"snapshot merge\" \"\${A[@]}\" snapshot merge -latest merged-n$n a-n$n b-n$n"
    if [ "$n" = 1 ]; then
      echo "step \"publish snapshot\" \"\${A[@]}\" publish snapshot -skip-signing -skip-contents -skip-bz2 -distribution=stable merged-n$n"
    else
      echo "step \"publish switch\" \"\${A[@]}\" publish switch -skip-signing -skip-contents -skip-bz2 stable merged-n$n"
    fi
  } >"$script"
  : >"$out.log"
  timed_night "$r" aptly "$n" "$out" bash "$script"
}
APTLY_VERSION=
[ $APTLY = 1 ] && APTLY_VERSION=$(aptly version 2>/dev/null | sed 's/^aptly version: //')

count_stanzas() { gzip -dc "$1" | grep -c '^Package: ' || true; }
PUBLISHED=$WORK/published.tsv  # RUN NIGHT TOOL PACKAGES
: >"$PUBLISHED"
published() {  # published RUN NIGHT: packages in each tool's published index
  local r=$1 n=$2 path pf
  path=$(python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(next(s["made"]["path"] for s in j["steps"] if s["id"] == "publish/stable"))' \
    "$LOGS/run$r-depot-night$n.json")
  pf=$(find "$path" -path '*/main/binary-amd64/Packages.gz' | head -n 1)
  echo "$r $n depot $([ -n "$pf" ] && count_stanzas "$pf" || echo 0)" >>"$PUBLISHED"
  if [ $APTLY = 1 ]; then
    pf=$ROOTS/aptly-root/public/dists/stable/main/binary-amd64/Packages.gz
    echo "$r $n aptly $([ -f "$pf" ] && count_stanzas "$pf" || echo 0)" >>"$PUBLISHED"
  fi
}

# -------------------------------------------------------------------- runs
for r in $(seq 1 "$RUNS"); do
  fresh_roots
  [ "$r" = 1 ] || gen 1
  echo "== run $r/$RUNS, night 1 (roots in $ROOTS)"
  depot_night "$r" 1
  [ $APTLY = 1 ] && aptly_night "$r" 1
  published "$r" 1
  echo "== run $r/$RUNS, night 2: 1% of the packages changed"
  gen 2
  depot_night "$r" 2
  [ $APTLY = 1 ] && aptly_night "$r" 2
  published "$r" 2
done
read -r LOAD_END _ </proc/loadavg

# ----------------------------------------------------------- table + JSON
export TSV CMDS LOGS PUBLISHED PACKAGES PACKAGES_B SHARE RUNS URL TIME_BASE LOAD_START LOAD_END \
  DEPOT DEPOT_VERSION APTLY_VERSION WORK
python3 - <<'PY'
import datetime, json, os, platform, re, statistics

E = os.environ
UTC = datetime.timezone.utc


def ts(text):
    """RFC 3339 (jiff's, up to nanoseconds) -> seconds since the epoch."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    base = datetime.datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3]))
    return base.timestamp() + float(m[2] or 0)


def union(intervals):
    """Length of the union of [start, end] intervals, and the merged list."""
    merged = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return sum(b - a for a, b in merged), merged


def overhead(journal, t0, t1, base):
    """The train's overhead: its wall time (less GNU time's own cost) minus
    the critical path of its steps. A step's work is the interval
    [finished - duration_ms, finished] (duration_ms is measured around the
    step's library call alone; finished is taken right after it), so the
    journal writes and the planning fall outside every step. Steps that
    run at the same time (the mirror updates) overlap, and the union of
    the intervals is the critical path: the time during which at least one
    step was working. What is left is planning, locking, journal writes,
    webhooks, process start and exit: startup (start -> first step),
    gaps (no step working between the first and the last), tail (last
    step -> exit). The train's own overhead leaves out the process start
    (start -> depot's first clock reading, the journal's `started`): exec,
    the dynamic loader and the first touch of the binary's pages, which
    any command pays and which on a VM with free page reporting grows
    from ~5 ms to ~100 ms after the box sat idle (see bench/README.md)."""
    iv, steps = [], []
    for s in journal["steps"]:
        d = s.get("duration_ms")
        if d is None or "finished" not in s:
            continue
        end = ts(s["finished"])
        iv.append((end - d / 1000.0, end))
        steps.append({"id": s["id"], "ms": d, "state": s["state"],
                      "start_ms": round((end - d / 1000.0 - t0) * 1000, 1)})
    crit, merged = union(iv)
    wall = t1 - t0 - base
    plain = sum(s["ms"] for s in steps) / 1000.0
    # the same with the journal's own started/finished stamps (started is
    # taken before the "running" state is saved, so one journal write per
    # step counts as the step's): a lower bound
    crit_ts, _ = union([(ts(s["started"]), ts(s["finished"])) for s in journal["steps"]
                        if "started" in s and "finished" in s])
    gaps = sum(b[0] - a[1] for a, b in zip(merged, merged[1:]))
    # the mirror updates run at the same time: how much they overlapped
    # (span close to the sum means they did not)
    mirrors = [(a, b) for (a, b), s in zip(iv, steps) if s["id"].startswith("mirror/")]
    mirror_group = None
    if mirrors:
        mirror_group = {"span_ms": round((max(b for _, b in mirrors) - min(a for a, _ in mirrors)) * 1000, 1),
                        "longest_ms": round(max(b - a for a, b in mirrors) * 1000, 1),
                        "sum_ms": round(sum(b - a for a, b in mirrors) * 1000, 1)}
    return {
        "wall_ms": round(wall * 1000, 1),
        "steps": steps,
        "sum_of_steps_ms": round(plain * 1000, 1),
        "critical_path_ms": round(crit * 1000, 1),
        "overhead_ms": round((wall - crit) * 1000, 1),
        "overhead_ms_journal_stamps": round((wall - crit_ts) * 1000, 1),
        "wall_minus_plain_sum_ms": round((wall - plain) * 1000, 1),
        "startup_ms": round((merged[0][0] - t0) * 1000, 1) if merged else None,
        "gaps_ms": round(gaps * 1000, 1),
        "tail_ms": round((t1 - merged[-1][1]) * 1000, 1) if merged else None,
        "process_start_ms": round(max(ts(journal["started"]) - t0 - base, 0) * 1000, 1),
        "own_overhead_ms": round((t1 - ts(journal["started"]) - crit) * 1000, 1),
        "mirrors": mirror_group,
    }


nights = {}
for line in open(E["TSV"]):
    r, tool, n, t0, t1, wall, rss, usr, sys_ = line.split()
    nights.setdefault(int(r), {}).setdefault(int(n), {})[tool] = {
        "wall_s": round(float(t1) - float(t0), 4), "wall_s_gnu_time": float(wall),
        "peak_rss_kb": int(rss), "cpu_s": round(float(usr) + float(sys_), 2),
        "t0": float(t0), "t1": float(t1)}
for line in open(E["CMDS"]):
    f = line.split()
    r, n, rest = int(f[0]), int(f[1]), f[2:]
    label = " ".join(rest[:-6])
    t0, t1, wall, rss, usr, sys_ = rest[-6:]
    a = nights[r][n]["aptly"] if "aptly" in nights[r].get(n, {}) else None
    entry = {"command": label, "wall_s": round(float(t1) - float(t0), 4),
             "peak_rss_kb": int(rss), "cpu_s": round(float(usr) + float(sys_), 2)}
    if a is None:  # the night's own line is written after its commands
        nights.setdefault(r, {}).setdefault(n, {}).setdefault("_aptly_cmds", []).append(entry)
    else:
        a.setdefault("commands", []).append(entry)
published = {}
for line in open(E["PUBLISHED"]):
    r, n, tool, count = line.split()
    published[(int(r), int(n), tool)] = int(count)

base = float(E["TIME_BASE"])
runs_out = []
for r in sorted(nights):
    run = {"run": r, "nights": {}}
    for n in sorted(nights[r]):
        x = nights[r][n]
        cmds = x.pop("_aptly_cmds", None)
        if cmds and "aptly" in x:
            x["aptly"]["commands"] = cmds
        d = x.get("depot")
        if d:
            j = json.load(open(os.path.join(E["LOGS"], f"run{r}-depot-night{n}.json")))
            d["run_id"] = j["run"]
            d["train"] = overhead(j, d["t0"], d["t1"], base)
            d["published_packages"] = published.get((r, n, "depot"))
        a = x.get("aptly")
        if a:
            a["published_packages"] = published.get((r, n, "aptly"))
        if d and a:
            x["aptly_over_depot"] = round(a["wall_s"] / max(d["wall_s"], 1e-3), 2)
        for t in (d, a):
            if t:
                t.pop("t0"); t.pop("t1")
        run["nights"][str(n)] = x
    runs_out.append(run)


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"values": values, "min": min(values), "median": round(statistics.median(values), 2),
            "max": max(values)}


ratio2 = spread([r["nights"]["2"].get("aptly_over_depot") for r in runs_out])
ratio1 = spread([r["nights"]["1"].get("aptly_over_depot") for r in runs_out])
ovh = {n: spread([r["nights"][n]["depot"]["train"]["overhead_ms"] for r in runs_out])
       for n in ("1", "2")}
own = {n: spread([r["nights"][n]["depot"]["train"]["own_overhead_ms"] for r in runs_out])
       for n in ("1", "2")}

# ------------------------------------------------------------------ table
print()
print(f"Results: mirror a {E['PACKAGES']} packages, mirror b {E['PACKAGES_B']} "
      f"(first {E['SHARE']} %), {len(runs_out)} run(s); load average "
      f"{E['LOAD_START']} -> {E['LOAD_END']} on {os.cpu_count()} CPUs")
mismatch = []
for r in runs_out:
    print(f"\nrun {r['run']}")
    print(f"  {'night':<6}{'depot s':>10}{'aptly s':>10}{'aptly/depot':>13}"
          f"{'depot MB':>10}{'aptly MB':>10}{'own ovh ms':>12}{'+ start ms':>12}{'published':>16}")
    for n, x in r["nights"].items():
        d, a = x.get("depot"), x.get("aptly")
        ratio = x.get("aptly_over_depot")
        pub = f"{d['published_packages']}" + (f" / {a['published_packages']}" if a else "")
        if a and a["published_packages"] != d["published_packages"]:
            mismatch.append((r["run"], n))
        a_s = f"{a['wall_s']:.3f}" if a else "-"
        a_mb = f"{a['peak_rss_kb'] / 1024:.1f}" if a else "-"
        print(f"  {n:<6}{d['wall_s']:>10.3f}{a_s:>10}"
              f"{(f'{ratio:.1f}x' if ratio else '-'):>13}{d['peak_rss_kb'] / 1024:>10.1f}{a_mb:>10}"
              f"{d['train']['own_overhead_ms']:>12.1f}{d['train']['overhead_ms']:>12.1f}{pub:>16}")
    for n, x in r["nights"].items():
        t = x["depot"]["train"]
        steps = ", ".join(f"{s['id']} {s['ms']}" for s in t["steps"])
        print(f"  depot night {n} steps (ms): {steps}")
        print(f"    wall {t['wall_ms']} ms = critical path {t['critical_path_ms']} + overhead "
              f"{t['overhead_ms']} (startup {t['startup_ms']} of which process start "
              f"{t['process_start_ms']}, gaps {t['gaps_ms']}, tail {t['tail_ms']}); "
              f"own overhead {t['own_overhead_ms']}; plain sum of steps {t['sum_of_steps_ms']}")
        if t["mirrors"]:
            m = t["mirrors"]
            print(f"    mirror updates side by side: span {m['span_ms']} ms, longest {m['longest_ms']}, "
                  f"sum {m['sum_ms']}")
        if "aptly" in x:
            cmds = ", ".join(f"{c['command']} {c['wall_s'] * 1000:.0f}"
                             for c in x["aptly"].get("commands", []))
            print(f"  aptly night {n} commands (ms): {cmds}")
if mismatch:
    print(f"\nWARNING: depot and aptly published different package counts in {mismatch}")

print()
if ratio2:
    ok = ratio2["min"] >= 10
    print(f"second night, aptly / depot: min {ratio2['min']:.1f}x median {ratio2['median']:.1f}x "
          f"max {ratio2['max']:.1f}x (target >= 10x: {'PASS' if ok else 'MISS'})")
if ratio1:
    print(f"first night, aptly / depot:  min {ratio1['min']:.1f}x median {ratio1['median']:.1f}x "
          f"max {ratio1['max']:.1f}x (no target)")
for n in ("1", "2"):
    o = own[n]
    print(f"train's own overhead (planning, journal, exit), night {n}: min {o['min']:.1f} "
          f"median {o['median']:.1f} max {o['max']:.1f} ms (target < 50 ms: "
          f"{'PASS' if o['max'] < 50 else 'MISS'})")
for n in ("1", "2"):
    o = ovh[n]
    print(f"  with the process start, night {n}: min {o['min']:.1f} median {o['median']:.1f} "
          f"max {o['max']:.1f} ms (no target)")
print(f"(GNU time's own {base * 1000:.1f} ms taken off the train's wall time)")

cpu = None
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
out = {
    "date": datetime.datetime.now(UTC).isoformat(timespec="seconds"),
    "packages": int(E["PACKAGES"]), "mirror_b_packages": int(E["PACKAGES_B"]),
    "share_percent": int(E["SHARE"]), "url": E["URL"],
    "depot": {"binary": E["DEPOT"], "version": E.get("DEPOT_VERSION") or None},
    "aptly": {"version": E.get("APTLY_VERSION") or None},
    "host": {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
             "loadavg1_start": float(E["LOAD_START"]), "loadavg1_end": float(E["LOAD_END"])},
    "gnu_time_cost_ms": round(base * 1000, 2),
    "runs": runs_out,
    "second night depot vs aptly": ratio2,
    "first night depot vs aptly": ratio1,
    "train own overhead ms": {"first night": own["1"], "second night": own["2"],
                              "target": "< 50 ms",
                              "formula": "exit - journal's started - |union of [finished - duration_ms,"
                                         " finished] over the steps|"},
    "train overhead with process start ms": {
        "first night": ovh["1"], "second night": ovh["2"],
        "formula": "wall - GNU time's cost - |union of [finished - duration_ms, finished]"
                   " over the steps|"},
    "targets": {
        "second_night_ratio_pass": None if ratio2 is None else ratio2["min"] >= 10,
        "overhead_pass": own["2"]["max"] < 50 and own["1"]["max"] < 50,
    },
}
json.dump(out, open(os.path.join(E["WORK"], "results.json"), "w"), indent=2)
print(f"wrote {os.path.join(E['WORK'], 'results.json')}")
PY
if mountpoint -q "$FS" 2>/dev/null; then
  echo "(roots left mounted at $FS for inspection: umount $FS to free them)"
fi
