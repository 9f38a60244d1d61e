#!/usr/bin/env python3
"""Fleet scale (issue 16, item 5): one root, many mirrors, many nights.

    bench/fleet.py [--mirrors 10] [--packages 63000] [--shift 6300]
                   [--nights 30] [--runs 5] [--work DIR] [--depot PATH]
                   [--keep]

MIRRORS synthetic apt mirrors of PACKAGES packages each, overlapping:
mirror k holds packages k*SHIFT .. k*SHIFT+PACKAGES-1 (by default each
shares 90% with the next, 119,700 distinct packages for ten), the same
package always the same file, 1% of packages changed a night (the rule of
gen-nights.py). Every night each mirror is updated and snapshotted. After
the last night the ten newest snapshots are merged into one release and
published (gz, unsigned), then `check`, `prune --dry-run` and `gc
--dry-run` run; after the listings, `prune --keep-last 7` and `gc`. Every depot command is timed (a monotonic clock around
it) with its peak RSS (GNU time's). Then each listing and showing
command runs RUNS times; the median wall time is reported.

Targets: every command's peak RSS <= 200 MB; listing or showing anything
< 100 ms. Prints a table and writes WORK/results.json. Needs nginx and
GNU time; depot from `cargo build --release` unless --depot. Python 3
standard library only. See bench/README.md.
"""

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RSS_LIMIT_KB = 200 * 1024
LIST_LIMIT_S = 0.100


def load_gen_nights():
    """bench/gen-nights.py as a module (its name has a hyphen): the
    packages, their files and their change rule are its."""
    spec = importlib.util.spec_from_file_location("gen_nights", os.path.join(HERE, "gen-nights.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = load_gen_nights()


class Upstream:
    """The mirrors' trees under OUT: one pool every mirror links to, and
    OUT/mK/dists/stable/ per mirror."""

    def __init__(self, out, mirrors, packages, shift):
        self.out, self.mirrors, self.packages, self.shift = out, mirrors, packages, shift
        self.total = packages + shift * (mirrors - 1)
        self.version = [1] * self.total
        self.pool = os.path.join(out, "pool")
        os.makedirs(self.pool, exist_ok=True)
        for k in range(mirrors):
            link = os.path.join(out, f"m{k}", "pool")
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.islink(link):
                os.symlink("../pool", link)

    def night(self, n):
        if n > 1:
            for i in range(self.total):
                if GEN.changed(i, n, 1.0):
                    self.version[i] = n
        stanzas = [GEN.package(self.pool, i, self.version[i]) for i in range(self.total)]
        for k in range(self.mirrors):
            first = k * self.shift
            text = "".join(stanzas[first : first + self.packages]).encode()
            GEN.write_dist(os.path.join(self.out, f"m{k}"), text)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_nginx(work, root):
    d = os.path.join(work, "nginx")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "logs"))
    port = free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(
            f"daemon off; master_process off; worker_processes 1;\n"
            f"pid {d}/nginx.pid; error_log {d}/logs/error.log warn;\n"
            f"events {{ worker_connections 512; }}\n"
            f"http {{ access_log off; sendfile on; keepalive_requests 100000;\n"
            f"  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n"
            f"  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n"
            f"  server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
        )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", d + "/", "-e", f"{d}/logs/error.log", "-c", f"{d}/nginx.conf"])
    url = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("nginx did not come up")


class Depot:
    def __init__(self, binary, root, work):
        self.binary, self.root, self.work = binary, root, work
        self.steps = []  # (label, seconds, peak kB)

    def run(self, label, *args, now=None, record=True):
        """Runs one depot command; records its wall time (a monotonic
        clock around it, GNU time's start-up included, ~1 ms) and peak
        RSS (GNU time's: wait4 here would count the forked Python's
        pages); returns its stdout."""
        env = dict(os.environ)
        if now:
            env["DEPOT_NOW"] = now
        rss = os.path.join(self.work, "rss.out")
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss,
               self.binary, "--root", self.root, "--no-progress", "-q", *args]
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        secs = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
        if record:
            with open(rss) as f:
                self.steps.append((label, secs, int(f.read().split()[-1])))
        return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirrors", type=int, default=10)
    ap.add_argument("--packages", type=int, default=63000)
    ap.add_argument("--shift", type=int, default=6300)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", default="/tmp/depot-bench-fleet")
    ap.add_argument("--depot", default=os.path.join(os.path.dirname(HERE), "target/release/depot"))
    ap.add_argument("--keep", action="store_true", help="keep the root and upstream afterwards")
    a = ap.parse_args()
    if not os.access(a.depot, os.X_OK):
        sys.exit(f"no depot at {a.depot}: cargo build --release")
    work = os.path.abspath(a.work)
    up, root = os.path.join(work, "upstream"), os.path.join(work, "root")
    shutil.rmtree(up, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    upstream = Upstream(up, a.mirrors, a.packages, a.shift)
    upstream.night(1)
    nginx, url = start_nginx(work, up)
    depot = Depot(a.depot, root, work)
    start = datetime.datetime(2026, 11, 1, 2, 0, tzinfo=datetime.timezone.utc)
    stamp = lambda n: (start + datetime.timedelta(days=n - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        mirrors = [f"m{k}" for k in range(a.mirrors)]
        for m in mirrors:
            depot.run("mirror create", "mirror", "create", m, f"{url}{m}/", "--kind", "apt", "--suite", "stable",
                      "--component", "main", "--arch", "amd64", "--no-verify")
        t0 = time.time()
        for n in range(1, a.nights + 1):
            if n > 1:
                upstream.night(n)
            for m in mirrors:
                depot.run("mirror update (cold)" if n == 1 else "mirror update", "mirror", "update", m, now=stamp(n))
                depot.run("snapshot create", "snapshot", "create", "--mirror", m, now=stamp(n))
            print(f"night {n}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        now = stamp(a.nights + 1)
        snaps = json.loads(depot.run("snapshot list", "--output-format", "json", "snapshot", "list", record=False))
        newest = {}
        for s in snaps:
            newest[s["name"].rsplit("-", 1)[0]] = s["name"]
        latest = [newest[m] for m in mirrors]
        depot.run("release create", "release", "create", "fleet", "--from", *latest, now=now)
        depot.run("publish", "publish", "fleet", "--dist", "fleet", "--skip-signing", "--compress", "gz", now=now)
        depot.run("check", "check", now=now)
        depot.run("prune --dry-run", "prune", "--keep-last", "7", "--dry-run", now=now)
        depot.run("gc --dry-run", "gc", "--dry-run", now=now)
        listing = [
            ("mirror list", ["mirror", "list"]),
            ("mirror show", ["mirror", "show", mirrors[-1]]),
            ("snapshot list", ["snapshot", "list"]),
            ("snapshot show", ["snapshot", "show", latest[-1]]),
            ("release list", ["release", "list"]),
            ("release show", ["release", "show", "fleet"]),
            ("dist list", ["dist", "list"]),
            ("dist show", ["dist", "show", "fleet"]),
            ("snapshot list --output-format json", ["--output-format", "json", "snapshot", "list"]),
        ]
        lists = []
        for label, args in listing:
            before = len(depot.steps)
            for _ in range(a.runs):
                depot.run(label, *args, now=now)
            runs = depot.steps[before:]
            lists.append((label, statistics.median(s for _, s, _ in runs), [s for _, s, _ in runs], max(k for _, _, k in runs)))
        depot.run("prune --keep-last 7", "prune", "--keep-last", "7", now=now)
        depot.run("gc", "gc", now=now)
    finally:
        nginx.kill()
        nginx.wait()

    by_cmd = {}
    for label, secs, kb in depot.steps:
        d = by_cmd.setdefault(label, {"runs": 0, "max_s": 0.0, "max_kb": 0})
        d["runs"] += 1
        d["max_s"] = max(d["max_s"], secs)
        d["max_kb"] = max(d["max_kb"], kb)
    print(f"\nFleet: {a.mirrors} mirrors x {a.packages} packages (shift {a.shift}), {a.nights} nights, "
          f"{len(snaps)} snapshots")
    print(f"{'command':38}{'runs':>6}{'max s':>9}{'peak MB':>10}  rss <= 200 MB")
    for label, d in by_cmd.items():
        ok = "PASS" if d["max_kb"] <= RSS_LIMIT_KB else "FAIL"
        print(f"{label:38}{d['runs']:>6}{d['max_s']:>9.2f}{d['max_kb'] / 1024:>10.1f}  {ok}")
    print(f"\n{'listing / showing':38}{'median ms':>10}  {'runs (ms)':30} < 100 ms")
    for label, med, runs, kb in lists:
        ok = "PASS" if med < LIST_LIMIT_S else "FAIL"
        print(f"{label:38}{med * 1000:>10.0f}  {' '.join(f'{r * 1000:.0f}' for r in runs):30} {ok}")
    du = subprocess.run(["du", "-sb", root], capture_output=True, text=True).stdout.split()[0]
    results = {
        "mirrors": a.mirrors, "packages": a.packages, "shift": a.shift, "nights": a.nights,
        "snapshots": len(snaps), "root_bytes": int(du),
        "commands": by_cmd,
        "listing": [{"command": l, "median_s": m, "runs_s": r, "peak_kb": k} for l, m, r, k in lists],
        "rss_target_met": all(d["max_kb"] <= RSS_LIMIT_KB for d in by_cmd.values()),
        "listing_target_met": all(m < LIST_LIMIT_S for _, m, _, _ in lists),
        "load_average": os.getloadavg(),
    }
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"root {int(du) / 2**20:.0f} MiB; wrote {work}/results.json")
    if not a.keep:
        shutil.rmtree(up, ignore_errors=True)


if __name__ == "__main__":
    main()
