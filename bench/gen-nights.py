#!/usr/bin/env python3
"""Write night N of a synthetic apt repository whose packages change 1% a night.

    gen-nights.py OUT NIGHT [--packages N] [--change PERCENT]

OUT/pool/ accumulates every package file ever listed (pseudo-random bytes,
named NAME_VERSION_amd64.deb; not valid debs); OUT/dists/stable/ holds
night NIGHT's Packages (plain and gz) and an unsigned Release. Package i's
version is the last night <= NIGHT at which it changed; a package changes
at night n > 1 when a hash of (i, n) falls in the first PERCENT %. The
output depends only on the arguments. Python 3 standard library only.
"""

import argparse
import gzip
import hashlib
import os


def changed(i, n, percent):
    h = hashlib.sha256(f"{i}/{n}".encode()).digest()
    return int.from_bytes(h[:4], "big") % 10000 < percent * 100


def package(pool, i, v):
    """Package i at version v: its file written into POOL if missing, and
    its stanza (Filename relative to the repository: pool/FILE)."""
    name = f"pkg{i}"
    fname = f"{name}_{v}.0_amd64.deb"
    path = os.path.join(pool, fname)
    body = hashlib.sha256(f"{name} {v}".encode()).digest() * (8 + i % 24)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(body)
    return (
        f"Package: {name}\nVersion: {v}.0\nArchitecture: amd64\n"
        f"Maintainer: bench <bench@depot.invalid>\nFilename: pool/{fname}\n"
        f"Size: {len(body)}\nSHA256: {hashlib.sha256(body).hexdigest()}\n"
        f"Description: synthetic package {i}\n\n"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("night", type=int)
    ap.add_argument("--packages", type=int, default=63000)
    ap.add_argument("--change", type=float, default=1.0)
    a = ap.parse_args()
    pool = os.path.join(a.out, "pool")
    os.makedirs(pool, exist_ok=True)
    out = []
    for i in range(a.packages):
        v = 1
        for n in range(a.night, 1, -1):
            if changed(i, n, a.change):
                v = n
                break
        out.append(package(pool, i, v))
    write_dist(a.out, "".join(out).encode())


def write_dist(out, text):
    """OUT/dists/stable/: the Packages TEXT, plain and gz, and an unsigned
    Release listing both."""
    binary = os.path.join(out, "dists/stable/main/binary-amd64")
    os.makedirs(binary, exist_ok=True)
    with open(os.path.join(binary, "Packages"), "wb") as f:
        f.write(text)
    gz = gzip.compress(text, compresslevel=1, mtime=0)
    with open(os.path.join(binary, "Packages.gz"), "wb") as f:
        f.write(gz)
    lines = [
        "Origin: bench\nLabel: bench\nSuite: stable\nCodename: stable\n",
        "Date: Sat, 08 Jun 2024 08:51:29 UTC\nArchitectures: amd64\nComponents: main\n",
        "SHA256:\n",
    ]
    for rel, data in [("main/binary-amd64/Packages", text), ("main/binary-amd64/Packages.gz", gz)]:
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>10} {rel}\n")
    tmp = os.path.join(out, "dists/stable/Release.tmp")
    with open(tmp, "w") as f:
        f.write("".join(lines))
    os.replace(tmp, os.path.join(out, "dists/stable/Release"))


if __name__ == "__main__":
    main()
