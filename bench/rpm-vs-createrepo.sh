#!/usr/bin/env bash
# Benchmark depot's rpm mirroring and publishing against createrepo_c.
#
#   bench/rpm-vs-createrepo.sh [--packages N] [--seed S] [--files F] [--work DIR]
#
# Generates (or reuses) N small, valid rpm packages with bench/rpmgen (with
# --files F, each also ships F small files on average: F = 60 gives a
# filelists of a real distribution's size), makes their repodata with
# `createrepo_c --no-database` (timed: the createrepo_c figure), then
# `createrepo_c --update` on the same tree (timed: it reuses the metadata of
# unchanged packages), then again on a hardlinked copy for a warm-cache
# figure, serves the
# repository with a private nginx on 127.0.0.1:<random port>, and times depot's
# mirror create / cold update / no-op update / snapshot / publish from a fresh
# root with GNU time (wall seconds + peak RSS), then what a release engineer
# does next: a search (the first, which builds and caches the state's
# catalog, then a second), a filter keeping about half the packages, a
# release of the filter and the snapshot, and its publish.  Prints a table
# and writes $WORK/results.json.  See bench/RPM.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
REPO_ROOT=$(dirname "$HERE")

PACKAGES=20000
SEED=1
FILES=0
WORK=/tmp/depot-bench-rpm

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --packages) PACKAGES=$2; shift 2 ;;
    --packages=*) PACKAGES=${1#*=}; shift ;;
    --seed) SEED=$2; shift 2 ;;
    --seed=*) SEED=${1#*=}; shift ;;
    --files) FILES=$2; shift 2 ;;
    --files=*) FILES=${1#*=}; shift ;;
    --work) WORK=$2; shift 2 ;;
    --work=*) WORK=${1#*=}; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
  esac
done
case "$PACKAGES" in ''|*[!0-9]*|0) echo "--packages must be a positive number" >&2; exit 2 ;; esac
case "$SEED" in ''|*[!0-9]*) echo "--seed must be a number" >&2; exit 2 ;; esac
case "$FILES" in ''|*[!0-9]*) echo "--files must be a number" >&2; exit 2 ;; esac

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }; }
need python3 "apt-get install python3"
need curl "apt-get install curl"
need createrepo_c "apt-get install createrepo-c"
need cargo "https://rustup.rs"
[ -x /usr/bin/time ] || { echo "missing: /usr/bin/time (apt-get install time)" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "missing: nginx (apt-get install nginx-light)" >&2; exit 1; }

# depot: $DEPOT, else target/release/depot, built once if missing
if [ -n "${DEPOT:-}" ]; then
  case "$DEPOT" in /*) ;; *) DEPOT=$PWD/$DEPOT ;; esac
  [ -x "$DEPOT" ] || { echo "DEPOT=$DEPOT is not executable" >&2; exit 1; }
else
  DEPOT=$REPO_ROOT/target/release/depot
  if [ ! -x "$DEPOT" ]; then
    echo "== building depot (cargo build --release)"
    (cd "$REPO_ROOT" && cargo build --release)
  fi
fi

# rpmgen: a standalone cargo project with its own target dir
RPMGEN=$HERE/rpmgen/target/release/rpmgen
if [ ! -x "$RPMGEN" ] || [ -n "$(find "$HERE/rpmgen/src" "$HERE/rpmgen/Cargo.toml" -newer "$RPMGEN" 2>/dev/null)" ]; then
  echo "== building bench/rpmgen"
  cargo build --release --locked --quiet --manifest-path "$HERE/rpmgen/Cargo.toml"
fi

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LOGS=$WORK/logs
REPO=$WORK/repo-n$PACKAGES-s$SEED
[ "$FILES" = 0 ] || REPO=$REPO-f$FILES
COPY=$WORK/createrepo-copy
TSV=$WORK/results.tsv
rm -rf "$LOGS"; mkdir -p "$LOGS"
: >"$TSV"

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
  printf '   %-12s %-13s ' "$tool" "$step"
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

# ---------------------------------------------------------------- repository
echo "== repository: $PACKAGES rpm packages (seed $SEED) at $REPO"
gen_t0=$(date +%s.%N)
"$RPMGEN" "$REPO" --packages "$PACKAGES" --seed "$SEED" --files "$FILES"
gen_t1=$(date +%s.%N)
echo "   ($(python3 -c "print('%.1f' % ($gen_t1 - $gen_t0))") s)"

CREATEREPO_VERSION=$(createrepo_c --version 2>/dev/null | head -n 1)
echo "== createrepo_c ($CREATEREPO_VERSION)"
# The served tree's repodata: this run is the createrepo_c figure.  It runs
# every time (also on a reused tree), so each run measures it.
run_step createrepo_c metadata createrepo_c --no-database "$REPO" ||
  { echo "createrepo_c failed on the generated packages" >&2; exit 1; }
# What a repository's maintainer runs after a change: the metadata of
# unchanged packages (same mtime and size) is taken from the last run's.
run_step createrepo_c update createrepo_c --update --no-database "$REPO" ||
  { echo "createrepo_c --update failed" >&2; exit 1; }
# Again on a copy (hardlinked packages, no repodata): the packages' pages
# are certainly cached now, as the pool's are when depot publishes.
rm -rf "$COPY"; mkdir -p "$COPY"
cp -al "$REPO/Packages" "$COPY/Packages"
run_step createrepo_c metadata-warm createrepo_c --no-database "$COPY" ||
  { echo "createrepo_c failed on the copy" >&2; exit 1; }
rm -rf "$COPY"

# --------------------------------------------------------------------- nginx
first_rpm=$(cd "$REPO" && find Packages -name '*.rpm' -print -quit)
start_nginx "$REPO" repodata/repomd.xml "$first_rpm"

# --------------------------------------------------------------------- depot
DROOT=$WORK/depot-root
rm -rf "$DROOT"
DEPOT_VERSION=$("$DEPOT" --version 2>/dev/null | head -n 1 || true)
DEPOT_COMMIT=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || true)
echo "== depot ${DEPOT_VERSION:-?} ($DEPOT, tree at ${DEPOT_COMMIT:-?}), root $DROOT"
D=("$DEPOT" --root "$DROOT" --no-progress)
DEPOT_OK=0
if run_step depot create "${D[@]}" mirror create bench "$URL" --kind rpm --no-verify &&
   run_step depot cold-update "${D[@]}" mirror update bench &&
   run_step depot noop-update "${D[@]}" mirror update bench &&
   run_step depot snapshot "${D[@]}" snapshot create bench-snap --mirror bench &&
   run_step depot publish "${D[@]}" publish bench-snap --dist bench --skip-signing &&
   run_step depot search-first "${D[@]}" snapshot search bench-snap 'Name (% a*)' &&
   run_step depot search "${D[@]}" snapshot search bench-snap 'Name (% a*)' &&
   run_step depot filter "${D[@]}" snapshot filter bench-snap half \
     'Name (% a*) | Name (% b*) | Name (% c*) | Name (% d*) | Name (% e*) | Name (% f*) | Name (% g*) | Name (% h*) | Name (% i*) | Name (% j*) | Name (% k*) | Name (% l*)' &&
   run_step depot release "${D[@]}" release create rel --from half --from bench-snap &&
   run_step depot publish-release "${D[@]}" publish rel --dist rel --skip-signing
then
  DEPOT_OK=1
fi

# ------------------------------------------------- sanity, table and JSON
export LOAD_START PACKAGES SEED FILES URL WORK REPO TSV DEPOT DEPOT_VERSION DEPOT_COMMIT DROOT \
  DEPOT_OK CREATEREPO_VERSION
python3 - <<'PY'
import datetime, glob, gzip, hashlib, json, os, platform
import xml.etree.ElementTree as ET

E = os.environ
REPO, DROOT = E["REPO"], E["DROOT"]
NS = {"r": "http://linux.duke.edu/metadata/repo",
      "c": "http://linux.duke.edu/metadata/common"}

def primary_of(repodir):
    """(package count attribute, {pkgid: href}) of a repodata/ dir's primary."""
    md = ET.parse(os.path.join(repodir, "repodata", "repomd.xml"))
    for d in md.getroot().findall("r:data", NS):
        if d.get("type") == "primary":
            href = d.find("r:location", NS).get("href")
            break
    else:
        return None, {}
    path = os.path.join(repodir, href)
    op = gzip.open if path.endswith(".gz") else open
    pkgs, count = {}, None
    for ev, el in ET.iterparse(op(path, "rb"), events=("start", "end")):
        if ev == "start" and el.tag.endswith("}metadata"):
            count = int(el.get("packages"))
        elif ev == "end" and el.tag == "{%s}package" % NS["c"]:
            pkgs[el.find("c:checksum", NS).text] = el.find("c:location", NS).get("href")
            el.clear()
    return count, pkgs

# Sanity (not timed): depot's published primary lists the same packages as
# upstream's, and every listed file exists in the published tree.
sanity = {"upstream_packages": None, "published_packages": None,
          "same_package_set": None, "missing_files": None, "published_dir": None}
try:
    sanity["upstream_packages"], up = primary_of(REPO)
    if E["DEPOT_OK"] == "1":
        # DIR/DIST/dev is the symlink to the version just published
        pub = os.path.join(DROOT, "public", "bench", "dev")
        if not os.path.exists(os.path.join(pub, "repodata", "repomd.xml")):
            cands = glob.glob(os.path.join(DROOT, "public", "**", "repodata", "repomd.xml"),
                              recursive=True)
            pub = os.path.dirname(os.path.dirname(sorted(cands)[-1])) if cands else None
        if pub:
            sanity["published_dir"] = os.path.realpath(pub)
            sanity["published_packages"], got = primary_of(pub)
            sanity["same_package_set"] = set(got) == set(up)
            sanity["missing_files"] = sum(1 for h in got.values()
                                          if not os.path.isfile(os.path.join(pub, h)))
            # every repomd entry's checksum matches its file
            bad = []
            md = ET.parse(os.path.join(pub, "repodata", "repomd.xml")).getroot()
            for d in md.findall("r:data", NS):
                href = d.find("r:location", NS).get("href")
                want = d.find("r:checksum", NS).text
                with open(os.path.join(pub, href), "rb") as fh:
                    if hashlib.sha256(fh.read()).hexdigest() != want:
                        bad.append(href)
            sanity["repomd_bad_checksums"] = bad
except Exception as e:  # never lose the timings over a sanity check
    sanity["error"] = repr(e)

rows = {}
for line in open(E["TSV"]):
    tool, step, wall, rss, rc, hr, usr, sys_, load = line.split()
    rows[(tool, step)] = {"wall_s": float(wall), "peak_rss_kb": int(rss), "rc": int(rc),
                          "wall_s_hires": float(hr),
                          "cpu_s": round(float(usr) + float(sys_), 2),
                          "loadavg1_after": float(load)}

def ok(t):
    return t is not None and t["rc"] == 0

crc = rows.get(("createrepo_c", "metadata"))
crc_warm = rows.get(("createrepo_c", "metadata-warm"))
crc_update = rows.get(("createrepo_c", "update"))
pub = rows.get(("depot", "publish"))
noop = rows.get(("depot", "noop-update"))

def ratio(a, d):
    # GNU time resolution is 10 ms: a 0.00 depot time gives a lower bound
    return round(a["wall_s"] / max(d["wall_s"], 0.01), 2) if ok(a) and ok(d) else None

r_pub, r_pub_warm = ratio(crc, pub), ratio(crc_warm, pub)
r_pub_update = ratio(crc_update, pub)
depot_rss = [v["peak_rss_kb"] for (t, _), v in rows.items() if t == "depot"]
peak = max(depot_rss) if depot_rss else None
RSS_LIMIT_KB = 200 * 1024
targets = [
    {"target": "publish at least as fast as createrepo_c (createrepo_c/publish >= 1)",
     "value": r_pub, "warm_value": r_pub_warm,
     "pass": None if r_pub is None else r_pub >= 1.0},
    {"target": "no-op update < 1 s", "value": noop["wall_s"] if ok(noop) else None,
     "pass": noop["wall_s"] < 1.0 if ok(noop) else None},
    {"target": "depot peak RSS < 200 MB (max over all depot steps)", "value": peak,
     "pass": None if peak is None else peak < RSS_LIMIT_KB},
    {"target": "publish >= 10x faster than createrepo_c --update (issue 16)",
     "value": r_pub_update,
     "pass": None if r_pub_update is None else r_pub_update >= 10.0},
]

def verdict(p):
    return "-" if p is None else ("PASS" if p else "FAIL")

LABEL = {("createrepo_c", "metadata"): "createrepo_c --no-database",
         ("createrepo_c", "update"): "createrepo_c --update",
         ("createrepo_c", "metadata-warm"): "createrepo_c (copy, warm)",
         ("depot", "create"): "depot mirror create",
         ("depot", "cold-update"): "depot cold update",
         ("depot", "noop-update"): "depot no-op update",
         ("depot", "snapshot"): "depot snapshot",
         ("depot", "publish"): "depot publish (gz)",
         ("depot", "search-first"): "depot search (builds catalog)",
         ("depot", "search"): "depot search (cached)",
         ("depot", "filter"): "depot snapshot filter",
         ("depot", "release"): "depot release create",
         ("depot", "publish-release"): "depot publish release"}
TARGET = {("depot", "noop-update"): ("< 1 s", targets[1]["pass"]),
          ("depot", "publish"): ("<= createrepo_c", targets[0]["pass"])}

print()
print("Results: %s rpm packages, %s" % (E["PACKAGES"], E["URL"]))
hdr = "%-31s %9s %9s %9s %8s  %-16s %s" % ("step", "wall s", "cpu s", "RSS KB", "RSS MB",
                                           "target", "")
print(hdr)
print("-" * len(hdr))
for key, label in LABEL.items():
    t = rows.get(key)
    if t is None:
        continue
    tgt, p = TARGET.get(key, ("", None))
    print("%-31s %9s %9.2f %9d %8.1f  %-16s %s" % (
        label, ("%.2f" % t["wall_s"]) + ("" if t["rc"] == 0 else " FAIL"), t["cpu_s"],
        t["peak_rss_kb"], t["peak_rss_kb"] / 1024, tgt, verdict(p) if tgt else ""))
fmt_r = lambda r, d: "-" if r is None else "%s%.2fx" % (">" if d and d["wall_s"] < 0.01 else "", r)
print()
print("createrepo_c / depot publish: %s (warm copy: %s)   target >= 1x: %s"
      % (fmt_r(r_pub, pub), fmt_r(r_pub_warm, pub), verdict(targets[0]["pass"])))
print("createrepo_c --update / depot publish: %s   target >= 10x: %s"
      % (fmt_r(r_pub_update, pub), verdict(targets[3]["pass"])))
print("depot peak RSS: %s   target < 200 MB: %s"
      % ("-" if peak is None else "%d KB = %.1f MB" % (peak, peak / 1024),
         verdict(targets[2]["pass"])))
print("sanity: upstream %s packages, published %s, same set: %s, missing files: %s, "
      "bad repomd checksums: %s"
      % (sanity["upstream_packages"], sanity["published_packages"],
         sanity["same_package_set"], sanity["missing_files"],
         len(sanity["repomd_bad_checksums"]) if "repomd_bad_checksums" in sanity else None))
if "error" in sanity:
    print("sanity check error: %s" % sanity["error"])

cpu = None
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
stamp = {}
try:
    with open(os.path.join(REPO, ".gen-stamp")) as fh:
        fh.readline()
        stamp = json.loads(fh.readline())
except (OSError, ValueError):
    pass

out = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "packages": int(E["PACKAGES"]), "seed": int(E["SEED"]), "files": int(E["FILES"]),
    "repo": REPO, "repo_stats": stamp, "url": E["URL"],
    "host": {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
             "loadavg1_at_start": float(E["LOAD_START"])},
    "createrepo_c": {"version": E.get("CREATEREPO_VERSION") or None},
    "depot": {"binary": E["DEPOT"], "version": E.get("DEPOT_VERSION") or None,
              "tree_commit": E.get("DEPOT_COMMIT") or None},
    "steps": [dict(tool=t, step=s, **v) for (t, s), v in rows.items()],
    "ratio_createrepo_over_publish": r_pub,
    "ratio_createrepo_warm_over_publish": r_pub_warm,
    "targets": targets,
    "sanity": sanity,
}
path = os.path.join(E["WORK"], "results.json")
with open(path, "w") as fh:
    json.dump(out, fh, indent=2)
    fh.write("\n")
print("\nwrote %s (logs in %s/logs)" % (path, E["WORK"]))
PY

exit $FAILED
