#!/usr/bin/env python3
"""Build repositories under load: N uploads of small packages across B
builds from C concurrent clients to one `depot serve`.

Reports uploads/s (all uploads, first request to last answer) and, per
build, the time from its last upload's answer to the `ready` webhook
(the server's own POST, received by a listener in this script). Targets:
>= 200 uploads/s, and every build ready within quiet time + 2 s.

    cargo build --release
    bench/builds.py [--uploads 1000] [--builds 50] [--clients 8]
                    [--quiet 3] [--depot target/release/depot] [--work DIR]

Half the builds are ubuntu/jammy (.deb, made with dpkg-deb), half
centos/9 (.rpm, made with rpmbuild); each build gets uploads/builds
distinct packages, uploaded interleaved across builds so that every
build's last upload comes near the end (the builder then has all builds
due at once: the worst case for the ready time). Repositories are signed
with a throwaway GnuPG key. Prints a table and writes results.json in the
work directory.
"""

import argparse
import http.client
import http.server
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time


def run(*args, **kw):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, **kw)


def make_debs(dir, n):
    out = []
    for i in range(n):
        tree = os.path.join(dir, f"deb{i}")
        os.makedirs(os.path.join(tree, "DEBIAN"))
        os.makedirs(os.path.join(tree, f"usr/share/doc/bpkg{i}"))
        with open(os.path.join(tree, f"usr/share/doc/bpkg{i}/README"), "w") as f:
            f.write(f"bench package {i}\n")
        with open(os.path.join(tree, "DEBIAN/control"), "w") as f:
            f.write(
                f"Package: bpkg{i}\nVersion: 1.0-1\nArchitecture: amd64\n"
                "Maintainer: bench <b@depot.invalid>\nDescription: bench\n"
            )
        deb = os.path.join(dir, f"bpkg{i}_1.0-1_amd64.deb")
        run("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, deb)
        out.append(deb)
    return out


def make_rpms(dir, n):
    top = os.path.join(dir, "rpmbuild")
    out = []
    for i in range(n):
        spec = os.path.join(dir, f"r{i}.spec")
        with open(spec, "w") as f:
            f.write(
                f"Name: brpm{i}\nVersion: 1.0\nRelease: 1\nSummary: bench\n"
                "License: MIT\nBuildArch: noarch\n%description\nbench\n%install\n"
                f"mkdir -p %{{buildroot}}/usr/share/doc/brpm{i}\n"
                f"echo {i} > %{{buildroot}}/usr/share/doc/brpm{i}/README\n"
                f"%files\n/usr/share/doc/brpm{i}/README\n"
            )
        run(
            "rpmbuild", "-bb", "--define", f"_topdir {top}",
            "--define", "_build_id_links none", spec,
            stderr=subprocess.DEVNULL,
        )
        out.append(os.path.join(top, f"RPMS/noarch/brpm{i}-1.0-1.noarch.rpm"))
    return out


class Hook(http.server.BaseHTTPRequestHandler):
    ready = {}
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        now = time.monotonic()
        try:
            v = json.loads(body)
        except ValueError:
            v = {}
        if v.get("status") == "ready":
            with Hook.lock:
                Hook.ready[v["sha1"] + "/" + v["distro"]] = now
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uploads", type=int, default=1000)
    ap.add_argument("--builds", type=int, default=50)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--quiet", type=float, default=3.0)
    ap.add_argument(
        "--depot",
        default=os.path.join(os.path.dirname(__file__), "..", "target/release/depot"),
    )
    ap.add_argument("--work", default=None)
    a = ap.parse_args()
    per_build = a.uploads // a.builds
    work = a.work or tempfile.mkdtemp(prefix="depot-builds-")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    pkgs = os.path.join(work, "pkgs")
    os.makedirs(pkgs)
    debs = make_debs(pkgs, per_build)
    rpms = make_rpms(pkgs, per_build)

    gnupg = tempfile.mkdtemp(prefix="gpg", dir="/tmp")
    env = dict(os.environ, GNUPGHOME=gnupg)
    run(
        "gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
        "--quick-gen-key", "bench <bench@depot.invalid>", "ed25519", "sign", "never",
        env=env,
    )
    root = os.path.join(work, "root")
    tokens = os.path.join(work, "tokens")
    with open(tokens, "w") as f:
        f.write("bench-token\n")
    run(a.depot, "--root", root, "guard", "create", "ci", "--token-file", tokens,
        "--scope", "upload")

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{hook.server_address[1]}/"
    server = subprocess.Popen(
        [a.depot, "--root", root, "serve", "--listen", "127.0.0.1:0",
         "--sign-key", "bench@depot.invalid", "--quiet-time", f"{int(a.quiet * 1000)}ms",
         "--webhook", hook_url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        line = server.stdout.readline().decode().strip()
        host = line.removeprefix("listening on http://").rstrip("/")
        builds = []
        for b in range(a.builds):
            if b % 2 == 0:
                builds.append((f"{b:040x}", "ubuntu", "jammy", "amd64", debs))
            else:
                builds.append((f"{b:040x}", "centos", "9", "noarch", rpms))
        # Interleaved: package 0 of every build, then package 1, …
        jobs = queue.Queue()
        for i in range(per_build):
            for b in builds:
                jobs.put((b, b[4][i]))
        last = {}
        errors = []
        lock = threading.Lock()

        def client():
            conn = http.client.HTTPConnection(host)
            while True:
                try:
                    (sha1, d, v, arch, _), path = jobs.get_nowait()
                except queue.Empty:
                    return
                with open(path, "rb") as f:
                    body = f.read()
                conn.request(
                    "POST", f"/api/binaries/bench/main/{sha1}/{d}/{v}/{arch}/",
                    body=body,
                    headers={"Authorization": "Bearer bench-token",
                             "Content-Type": "application/octet-stream"},
                )
                r = conn.getresponse()
                r.read()
                done = time.monotonic()
                with lock:
                    if r.status != 201:
                        errors.append((r.status, path))
                    key = f"{sha1}/{d}"
                    last[key] = max(last.get(key, 0), done)

        start = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        total = a.builds * per_build
        deadline = time.monotonic() + a.quiet + 60
        while len(Hook.ready) < a.builds and time.monotonic() < deadline:
            time.sleep(0.05)
        lags = sorted(
            Hook.ready[k] - last[k] for k in last if k in Hook.ready
        )
        result = {
            "uploads": total,
            "builds": a.builds,
            "clients": a.clients,
            "errors": len(errors),
            "seconds": round(elapsed, 3),
            "uploads_per_s": round(total / elapsed, 1),
            "quiet_s": a.quiet,
            "ready": len(lags),
            "ready_lag_s": {
                "min": round(lags[0], 3) if lags else None,
                "median": round(lags[len(lags) // 2], 3) if lags else None,
                "max": round(lags[-1], 3) if lags else None,
            },
            "targets": {
                "uploads_per_s>=200": total / elapsed >= 200,
                "all_ready_within_quiet+2s": len(lags) == a.builds
                and lags[-1] <= a.quiet + 2,
            },
        }
        print(f"{total} uploads across {a.builds} builds from {a.clients} clients "
              f"in {elapsed:.2f} s: {total / elapsed:.0f} uploads/s "
              f"({len(errors)} errors)")
        if lags:
            print(f"last upload -> ready (quiet time {a.quiet:g} s): min {lags[0]:.2f} s, "
                  f"median {lags[len(lags) // 2]:.2f} s, max {lags[-1]:.2f} s; "
                  f"{len(lags)}/{a.builds} ready")
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result["targets"]))
        return 0 if not errors and len(lags) == a.builds else 1
    finally:
        server.kill()
        server.wait()
        hook.shutdown()
        subprocess.run(["gpgconf", "--kill", "all"], env=env)
        shutil.rmtree(gnupg, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
