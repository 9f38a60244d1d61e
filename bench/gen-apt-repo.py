#!/usr/bin/env python3
"""Synthesise a deterministic, Debian-shaped apt repository for benchmarking.

Layout written under OUT/:

    dists/<suite>/Release
    dists/<suite>/<component>/binary-amd64/{Packages,Packages.gz,Packages.xz,Release}
    pool/<component>/<prefix>/<source>/<package>_<version>_<arch>.deb

The .deb files are small blobs of pseudo-random bytes (not valid debs); the
Size/MD5sum/SHA256 fields of every stanza match the blob.  The Release file
is unsigned (no InRelease), so clients must be told to skip verification.

The output depends only on (--packages, --seed, GENERATOR_VERSION).  A stamp
file OUT/.gen-stamp records these; if it matches, the existing tree is reused
and nothing is written.  Python 3 standard library only.
"""

import argparse
import gzip
import hashlib
import json
import lzma
import os
import random
import shutil
import sys
import time

GENERATOR_VERSION = 2
STAMP = ".gen-stamp"
RELEASE_DATE = "Sat, 08 Jun 2024 08:51:29 UTC"

# Real names for the "base system", so the top of the dependency graph looks
# familiar.  (name, source, kind)
CORE = [
    ("libc6", "glibc", "lib"), ("libc-bin", "glibc", "prog"),
    ("libc-dev-bin", "glibc", "prog"), ("libc6-dev", "glibc", "dev"),
    ("locales", "glibc", "data"), ("libgcc-s1", "gcc-12", "lib"),
    ("libstdc++6", "gcc-12", "lib"), ("gcc-12-base", "gcc-12", "data"),
    ("zlib1g", "zlib", "lib"), ("zlib1g-dev", "zlib", "dev"),
    ("libssl3", "openssl", "lib"), ("openssl", "openssl", "prog"),
    ("libssl-dev", "openssl", "dev"), ("liblzma5", "xz-utils", "lib"),
    ("xz-utils", "xz-utils", "prog"), ("libbz2-1.0", "bzip2", "lib"),
    ("bzip2", "bzip2", "prog"), ("libzstd1", "libzstd", "lib"),
    ("libselinux1", "libselinux", "lib"), ("libpcre2-8-0", "pcre2", "lib"),
    ("libtinfo6", "ncurses", "lib"), ("libncursesw6", "ncurses", "lib"),
    ("ncurses-base", "ncurses", "data"), ("libgmp10", "gmp", "lib"),
    ("libffi8", "libffi", "lib"), ("libexpat1", "expat", "lib"),
    ("libsqlite3-0", "sqlite3", "lib"), ("libreadline8", "readline", "lib"),
    ("libcrypt1", "libxcrypt", "lib"), ("libacl1", "acl", "lib"),
    ("libattr1", "attr", "lib"), ("libcap2", "libcap2", "lib"),
    ("libaudit1", "audit", "lib"), ("libpam0g", "pam", "lib"),
    ("libpam-modules", "pam", "lib"), ("libsystemd0", "systemd", "lib"),
    ("systemd", "systemd", "prog"), ("libudev1", "systemd", "lib"),
    ("libdb5.3", "db5.3", "lib"), ("libgnutls30", "gnutls28", "lib"),
    ("libxml2", "libxml2", "lib"), ("libglib2.0-0", "glib2.0", "lib"),
    ("libkrb5-3", "krb5", "lib"), ("libcurl4", "curl", "lib"),
    ("curl", "curl", "prog"), ("dpkg", "dpkg", "prog"),
    ("apt", "apt", "prog"), ("libapt-pkg6.0", "apt", "lib"),
    ("debconf", "debconf", "perl"), ("perl-base", "perl", "prog"),
    ("perl", "perl", "prog"), ("perl-modules-5.36", "perl", "perl"),
    ("libperl5.36", "perl", "lib"), ("python3", "python3-defaults", "prog"),
    ("python3-minimal", "python3-defaults", "prog"),
    ("python3.11", "python3.11", "prog"),
    ("libpython3.11", "python3.11", "lib"), ("bash", "bash", "prog"),
    ("dash", "dash", "prog"), ("coreutils", "coreutils", "prog"),
    ("util-linux", "util-linux", "prog"), ("mount", "util-linux", "prog"),
    ("libblkid1", "util-linux", "lib"), ("libmount1", "util-linux", "lib"),
    ("libuuid1", "util-linux", "lib"), ("grep", "grep", "prog"),
    ("sed", "sed", "prog"), ("tar", "tar", "prog"),
    ("gzip", "gzip", "prog"), ("findutils", "findutils", "prog"),
    ("diffutils", "diffutils", "prog"), ("adduser", "adduser", "perl"),
    ("passwd", "shadow", "prog"), ("login", "shadow", "prog"),
    ("init-system-helpers", "init-system-helpers", "perl"),
    ("lsb-base", "lsb", "data"), ("sysvinit-utils", "sysvinit", "prog"),
    ("procps", "procps", "prog"), ("libprocps8", "procps", "lib"),
    ("base-files", "base-files", "data"), ("base-passwd", "base-passwd", "prog"),
    ("debianutils", "debianutils", "prog"), ("hostname", "hostname", "prog"),
    ("ca-certificates", "ca-certificates", "data"),
    ("tzdata", "tzdata", "data"), ("mawk", "mawk", "prog"),
    ("libgpg-error0", "libgpg-error", "lib"), ("libgcrypt20", "libgcrypt20", "lib"),
    ("gpgv", "gnupg2", "prog"), ("gnupg", "gnupg2", "prog"),
    ("libx11-6", "libx11", "lib"), ("libx11-data", "libx11", "data"),
    ("libxext6", "libxext", "lib"), ("libfreetype6", "freetype", "lib"),
    ("libfontconfig1", "fontconfig", "lib"), ("libpng16-16", "libpng1.6", "lib"),
    ("libjpeg62-turbo", "libjpeg-turbo", "lib"), ("libgtk-3-0", "gtk+3.0", "lib"),
    ("libqt5core5a", "qtbase-opensource-src", "lib"),
]

VIRTUALS = [
    "mail-transport-agent", "www-browser", "x-terminal-emulator",
    "awk", "c-compiler", "editor", "httpd", "imap-server", "ftp-server",
    "x-window-manager", "pager", "news-reader", "java-runtime",
    "dbus-session-bus", "default-logind", "logind", "cron-daemon",
    "time-daemon", "syslog-daemon", "debconf-2.0", "libjpeg-dev",
]

SECTIONS = [
    "admin", "devel", "doc", "editors", "games", "gnome", "graphics", "kde",
    "libs", "libdevel", "mail", "math", "misc", "net", "perl", "python",
    "science", "sound", "text", "utils", "video", "web", "x11", "fonts",
    "database", "httpd", "interpreters", "java", "javascript", "ruby",
    "rust", "golang", "ocaml", "haskell", "electronics", "hamradio",
]

SYL = [
    "ab", "ac", "ad", "al", "am", "an", "ar", "as", "at", "ba", "be", "bi",
    "bo", "bu", "ca", "ce", "ci", "co", "cu", "da", "de", "di", "do", "du",
    "el", "em", "en", "er", "es", "ex", "fa", "fe", "fi", "fo", "ga", "ge",
    "gi", "go", "gu", "ha", "he", "hi", "ho", "id", "il", "im", "in", "io",
    "ir", "is", "ja", "jo", "ka", "ke", "ki", "ko", "la", "le", "li", "lo",
    "lu", "ma", "me", "mi", "mo", "mu", "na", "ne", "ni", "no", "nu", "ob",
    "od", "ol", "om", "on", "op", "or", "os", "ox", "pa", "pe", "pi", "po",
    "pu", "qu", "ra", "re", "ri", "ro", "ru", "sa", "se", "si", "so", "su",
    "ta", "te", "ti", "to", "tu", "ub", "ul", "um", "un", "ur", "us", "va",
    "ve", "vi", "vo", "wa", "we", "wi", "xa", "xi", "ya", "yo", "za", "ze",
    "zi", "zo", "kit", "lib", "tool", "gtk", "qt", "x", "py", "net", "db",
]

WORDS = (
    "the a an of for and with to in on by from this that which is are be "
    "library tool utility program package daemon server client module "
    "plugin extension interface binding framework toolkit parser "
    "compiler interpreter runtime engine backend frontend driver protocol "
    "format file data network graphics audio video image text document "
    "database cache stream archive compression encryption authentication "
    "configuration management monitoring logging testing debugging "
    "development documentation support provides contains implements "
    "allows enables simple fast small lightweight portable extensible "
    "modern robust secure efficient flexible generic high-level low-level "
    "command-line graphical interactive shared static development files "
    "headers symbols examples manual pages translations common helpers "
    "scripts Python Perl Ruby Rust Go Java C C++ GNOME KDE Qt GTK X11 "
    "Wayland HTTP JSON XML YAML SQL TLS SSH DNS USB PDF PNG SVG UTF-8"
).split()

FIRST = ["Adam", "Alice", "Bastian", "Carla", "Dmitry", "Elena", "Felix",
         "Guido", "Hanna", "Ian", "Jonas", "Kaori", "Luca", "Maria",
         "Niels", "Olga", "Pierre", "Quentin", "Rosa", "Sven", "Tomasz",
         "Ulrike", "Vincent", "Wei", "Xavier", "Yuki", "Zoltan"]
LAST = ["Anders", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer",
        "Garcia", "Horvath", "Ivanov", "Jensen", "Kowalski", "Lindqvist",
        "Moreau", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt",
        "Tanaka", "Umarov", "Vogel", "Weber", "Xu", "Yilmaz", "Zimmermann"]
TEAMS = ["Debian Python Team <team+python@tracker.debian.org>",
         "Debian Perl Group <pkg-perl-maintainers@lists.alioth.debian.org>",
         "Debian Rust Maintainers <pkg-rust-maintainers@alioth-lists.debian.net>",
         "Debian Go Packaging Team <team+pkg-go@tracker.debian.org>",
         "Debian QA Group <packages@qa.debian.org>",
         "Debian X Strike Force <debian-x@lists.debian.org>",
         "Debian GNOME Maintainers <pkg-gnome-maintainers@lists.alioth.debian.org>",
         "Debian Qt/KDE Maintainers <debian-qt-kde@lists.debian.org>",
         "Debian Science Maintainers <debian-science-maintainers@lists.alioth.debian.org>",
         "Debian Java Maintainers <pkg-java-maintainers@lists.alioth.debian.org>"]


class Pkg:
    __slots__ = ("name", "source", "srcver", "version", "arch", "section",
                 "priority", "maint", "homepage", "kind", "fields", "upver",
                 "filename", "blob_seed", "size")


def pool_prefix(src):
    return src[:4] if src.startswith("lib") and len(src) > 3 else src[0]


def strip_epoch(v):
    return v.split(":", 1)[1] if ":" in v else v


def upstream_of(v):
    v = strip_epoch(v)
    return v.rsplit("-", 1)[0] if "-" in v else v


class Gen:
    def __init__(self, n, seed, component):
        self.n = n
        self.rng = random.Random(seed)
        self.component = component
        self.names = set()
        self.pkgs = []
        self.libs = []       # runtime library packages (dependency targets)
        self.progs = []      # other arch-dependent packages
        self.commons = []    # arch: all data/perl/python packages
        self.src_names = set()

    # ---------------------------------------------------------------- names
    def word_name(self):
        r = self.rng
        while True:
            k = r.choices((1, 2, 3, 4), weights=(1, 6, 5, 2))[0]
            s = "".join(r.choice(SYL) for _ in range(k))
            if r.random() < 0.15:
                s += r.choice(("d", "r", "s", "x", "-ng", "-tools", "2", "3",
                               "-utils", "-el", "+", ".js"))
            s = s.strip("-.+")
            # aptly 1.5 panics (PoolDirectory: source[:4]) on a source
            # called just "lib"; Debian has none, so never generate one
            if s.startswith("lib") and len(s) < 4:
                continue
            if len(s) >= 2 and s[0].isalnum() and s not in self.src_names:
                self.src_names.add(s)
                return s

    # ------------------------------------------------------------- versions
    def upstream_version(self):
        r = self.rng
        x = r.random()
        if x < 0.55:
            v = "%d.%d" % (r.choice((0, 0, 1, 1, 1, 2, 2, 3, 4, 5, 7, 10, 12)),
                           r.randrange(40))
            if r.random() < 0.6:
                v += ".%d" % r.randrange(30)
        elif x < 0.65:
            v = "%d%02d%02d" % (r.randrange(2005, 2025), r.randrange(1, 13),
                                r.randrange(1, 29))
        elif x < 0.75:
            v = "%d.%d~%s%d" % (r.randrange(6), r.randrange(20),
                                r.choice(("rc", "beta", "alpha", "pre", "git")),
                                r.randrange(1, 5))
        elif x < 0.85:
            v = "%d.%d.%d+%s" % (r.randrange(6), r.randrange(20), r.randrange(10),
                                 r.choice(("dfsg", "ds", "really1.0", "dfsg1",
                                           "git20230101.abc1234")))
        else:
            v = "%d.%d" % (r.randrange(1, 9), r.randrange(100))
        return v

    def debian_version(self, native=False):
        r = self.rng
        v = self.upstream_version()
        if not native:
            x = r.random()
            if x < 0.55:
                v += "-%d" % r.randrange(1, 6)
            elif x < 0.7:
                v += "-%d+deb12u%d" % (r.randrange(1, 5), r.randrange(1, 4))
            elif x < 0.8:
                v += "-%d.%d" % (r.randrange(1, 5), r.randrange(1, 3))
            elif x < 0.88:
                v += "-%d~bpo12+1" % r.randrange(1, 4)
            else:
                v += "-%d" % r.randrange(1, 30)
        if r.random() < 0.06:
            v = "%d:%s" % (r.choice((1, 1, 1, 2, 3)), v)
        return v

    # -------------------------------------------------------------- helpers
    def maintainer(self):
        r = self.rng
        if r.random() < 0.3:
            return r.choice(TEAMS)
        f, l = r.choice(FIRST), r.choice(LAST)
        return "%s %s <%s@%s>" % (f, l, f.lower(),
                                  r.choice(("debian.org", "example.org",
                                            "gmail.com", "posteo.de")))

    def description(self, name, kind):
        r = self.rng
        w = lambda k: " ".join(r.choices(WORDS, k=k))
        short = {"lib": "shared library", "dev": "development files",
                 "doc": "documentation", "data": "data files",
                 "perl": "Perl module", "py": "Python 3 module"}.get(kind)
        short = "%s - %s" % (w(r.randrange(2, 6)), short) if short else \
            w(r.randrange(3, 9))
        lines = [short]
        for p in range(r.choices((1, 2, 3), weights=(5, 4, 1))[0]):
            if p:
                lines.append(" .")
            words = r.choices(WORDS, k=r.randrange(8, 45))
            if r.random() < 0.5:
                words.insert(r.randrange(len(words)), name)
            cur = ""
            for wd in words:
                if cur and len(cur) + len(wd) + 1 > 72:
                    lines.append(" " + cur)
                    cur = wd
                else:
                    cur = (cur + " " + wd) if cur else wd
            if cur:
                lines.append(" " + cur + ".")
        return "\n".join(lines)

    def relation(self, target, op_bias=0.45):
        """'name' or 'name (op version)' referring to an existing package."""
        r = self.rng
        s = target.name
        if target.kind in ("py", "perl") and r.random() < 0.05:
            s += ":any"
        x = r.random()
        if x < op_bias:
            v = target.version
            if r.random() < 0.6:
                # depend on the upstream part, keep epoch as Debian does
                ep = v.split(":", 1)[0] + ":" if ":" in v else ""
                v = ep + upstream_of(v)
            s += " (>= %s)" % v
        elif x < op_bias + 0.03:
            s += " (<< %s)" % target.version
        return s

    def pick(self, pool, k):
        if not pool or k <= 0:
            return []
        # prefer recently-generated and core packages a little
        out = []
        for _ in range(k):
            if self.rng.random() < 0.3:
                out.append(self.rng.choice(pool[:50] if len(pool) > 50 else pool))
            else:
                out.append(self.rng.choice(pool))
        seen, res = set(), []
        for p in out:
            if p.name not in seen:
                seen.add(p.name)
                res.append(p)
        return res

    def rel_list(self, targets, alt_prob=0.08):
        r = self.rng
        parts = []
        for t in targets:
            s = self.relation(t)
            if r.random() < alt_prob:
                alt_pool = self.libs if t.kind == "lib" else self.progs
                alts = self.pick(alt_pool, r.randrange(1, 3))
                alts = [a for a in alts if a.name != t.name]
                if alts:
                    s += " | " + " | ".join(self.relation(a, 0.2) for a in alts)
            parts.append(s)
        return ", ".join(parts)

    # ----------------------------------------------------------- generation
    def add(self, name, src, version, srcver, kind, arch, section, prio,
            maint, homepage):
        if name in self.names:
            return None
        r = self.rng
        p = Pkg()
        p.name, p.source, p.version, p.srcver = name, src, version, srcver
        p.kind, p.arch, p.section, p.priority = kind, arch, section, prio
        p.maint, p.homepage = maint, homepage
        p.upver = upstream_of(version)
        self.names.add(name)

        f = []
        # dependencies only point at packages that already exist
        libc = self.pkgs[0] if self.pkgs else None
        dep_targets, pre, rec, sug = [], [], [], []
        if arch != "all" and libc is not None and name != "libc6":
            dep_targets.append(libc)
        if kind == "lib":
            dep_targets += self.pick(self.libs, r.choices((0, 1, 2, 3, 5, 8),
                                                          weights=(3, 4, 4, 3, 2, 1))[0])
        elif kind == "prog":
            dep_targets += self.pick(self.libs, r.randrange(0, 7))
            dep_targets += self.pick(self.commons, r.choices((0, 1, 2), weights=(5, 3, 1))[0])
            if r.random() < 0.25:
                rec = self.pick(self.progs if r.random() < 0.6 else self.commons, r.randrange(1, 4))
            if r.random() < 0.15:
                sug = self.pick(self.progs if r.random() < 0.6 else self.commons, r.randrange(1, 3))
            if r.random() < 0.04:
                pre = [p2 for p2 in self.pkgs[:60] if p2.name in ("dpkg", "init-system-helpers", "debconf")]
                pre = pre[: r.randrange(1, 3)] if pre else []
        elif kind in ("py", "perl"):
            base = [p2 for p2 in self.pkgs[:120]
                    if p2.name == ("python3" if kind == "py" else "perl")]
            dep_targets = base + self.pick(self.commons, r.randrange(0, 4))
            if arch != "all":
                dep_targets += self.pick(self.libs, r.randrange(1, 4))
            if r.random() < 0.2:
                rec = self.pick(self.commons, r.randrange(1, 3))
        elif kind == "data" and r.random() < 0.2:
            dep_targets = self.pick(self.commons, 1)
        # no self-dependencies, no duplicates
        seen = {name}
        dep_targets = [t for t in dep_targets
                       if t.name not in seen and not seen.add(t.name)]
        rec = [t for t in rec if t.name != name]
        sug = [t for t in sug if t.name != name]

        f.append(("Package", name))
        if src != name or srcver != version:
            f.append(("Source", src if srcver == version else "%s (%s)" % (src, srcver)))
        f.append(("Version", version))
        f.append(("Installed-Size", str(int(r.lognormvariate(5.5, 1.6)) + 8)))
        f.append(("Maintainer", maint))
        f.append(("Architecture", arch))
        if kind == "lib" and arch != "all":
            f.append(("Multi-Arch", "same"))
        elif kind in ("data", "doc") or (kind in ("py", "perl") and r.random() < 0.5):
            f.append(("Multi-Arch", "foreign"))
        if r.random() < 0.05 and self.pkgs:
            f.append(("Replaces", self.relation(r.choice(self.pkgs), 0.9).replace(">=", "<<")))
        if r.random() < 0.07:
            prov = [r.choice(VIRTUALS)] if kind == "prog" else []
            if kind == "lib":
                prov.append("%s-abi-%d" % (name.rstrip("0123456789.-"), r.randrange(1, 9)))
            if kind in ("py", "perl"):
                prov.append("%s-%s (= %s)" % (name, r.choice(("api", "compat")), version))
            if not prov:
                prov = [r.choice(VIRTUALS)]
            f.append(("Provides", ", ".join(prov)))
        if dep_targets:
            f.append(("Depends", self.rel_list(dep_targets)))
        if pre:
            f.append(("Pre-Depends", ", ".join(self.relation(t, 0.8) for t in pre)))
        if rec:
            f.append(("Recommends", self.rel_list(rec, 0.15)))
        if sug:
            f.append(("Suggests", self.rel_list(sug, 0.1)))
        if r.random() < 0.04 and self.pkgs:
            f.append(("Breaks", "%s (<< %s)" % (r.choice(self.pkgs).name, self.upstream_version())))
        if r.random() < 0.02 and self.pkgs:
            f.append(("Conflicts", r.choice(self.pkgs).name))
        f.append(("Description", self.description(name, kind)))
        if homepage:
            f.append(("Homepage", homepage))
        f.append(("Section", section))
        f.append(("Priority", prio))
        p.fields = f
        p.filename = "pool/%s/%s/%s/%s_%s_%s.deb" % (
            self.component, pool_prefix(src), src, name, strip_epoch(version), arch)
        p.size = r.randrange(1024, 3073)
        p.blob_seed = r.getrandbits(64)
        self.pkgs.append(p)
        if kind == "lib":
            self.libs.append(p)
        elif arch == "all":
            self.commons.append(p)
        else:
            self.progs.append(p)
        return p

    def source_meta(self, src):
        r = self.rng
        version = self.debian_version(native=r.random() < 0.05)
        maint = self.maintainer()
        hp = None
        if r.random() < 0.8:
            hp = r.choice(("https://github.com/%s/%s", "https://gitlab.com/%s/%s",
                           "https://www.%s.org/%s", "https://%s.sourceforge.io/%s"))
            hp = hp % (src.replace("+", "p"), src.replace("+", "p"))
        return version, maint, hp

    def binnmu(self, version, arch):
        if arch != "all" and self.rng.random() < 0.03:
            return version + "+b%d" % self.rng.randrange(1, 3)
        return version

    def gen_core(self):
        srcmeta = {}
        nreq = 0
        for name, src, kind in CORE:
            if len(self.pkgs) >= self.n:
                return
            if src not in srcmeta:
                srcmeta[src] = self.source_meta(src)
                self.src_names.add(src)
            version, maint, hp = srcmeta[src]
            arch = "all" if kind in ("data", "perl") else "amd64"
            section = {"lib": "libs", "dev": "libdevel", "perl": "perl",
                       "data": "misc"}.get(kind, "admin")
            prio = "required" if nreq < 60 else "important"
            nreq += 1
            self.add(name, src, self.binnmu(version, arch), version, kind,
                     arch, section, prio, maint, hp)

    def gen_source(self):
        r = self.rng
        src = self.word_name()
        version, maint, hp = self.source_meta(src)
        section = r.choice(SECTIONS)
        # a few hundred required/important packages in total
        idx = len(self.pkgs)
        if idx < 260:
            prio = "required" if idx < 160 else "important"
        elif r.random() < 0.0015:
            prio = "important"
        else:
            prio = "optional"
        shape = r.choices(("prog", "lib", "py", "perl", "data", "multi"),
                          weights=(30, 22, 12, 7, 6, 6))[0]
        bins = []  # (name, kind, arch, section)
        if shape == "prog":
            bins.append((src, "prog", "amd64", section))
            if r.random() < 0.2:
                bins.append((src + "-data", "data", "all", section))
            if r.random() < 0.12:
                bins.append((src + "-doc", "doc", "all", "doc"))
        elif shape == "lib":
            base = src[3:] if src.startswith("lib") else src
            sov = r.choice(("0", "1", "2", "3", "4", "5", "6", "-1.0-0", "0d",
                            "1t64", "-2.4-1", "c2", "11", "23"))
            sep = "-" if base[-1].isdigit() and not sov.startswith("-") else ""
            lib = "lib%s%s%s" % (base, sep, sov)
            bins.append((lib, "lib", "amd64", "libs"))
            bins.append(("lib%s-dev" % base, "dev", "amd64", "libdevel"))
            if r.random() < 0.3:
                bins.append(("lib%s-doc" % base, "doc", "all", "doc"))
            if r.random() < 0.25:
                bins.append(("%s-tools" % base, "prog", "amd64", "utils"))
            if r.random() < 0.15:
                bins.append(("lib%s-dbg" % base, "prog", "amd64", "debug"))
        elif shape == "py":
            base = src[7:] if src.startswith("python-") else src
            bins.append(("python3-%s" % base, "py",
                         "all" if r.random() < 0.7 else "amd64", "python"))
            if r.random() < 0.25:
                bins.append(("python-%s-doc" % base, "doc", "all", "doc"))
        elif shape == "perl":
            bins.append(("lib%s-perl" % src, "perl",
                         "all" if r.random() < 0.8 else "amd64", "perl"))
        elif shape == "data":
            pre = r.choice(("fonts-", "", "", "node-", "golang-", "librust-"))
            kind = "data"
            sect = {"fonts-": "fonts", "node-": "javascript",
                    "golang-": "golang", "librust-": "rust"}.get(pre, section)
            bins.append((pre + src + ("-dev" if pre in ("golang-", "librust-") else ""),
                         kind, "all", sect))
        else:
            for suf in ("", "-common", "-bin", "-dev", "-doc", "-plugins",
                        "-dbgsym", "-l10n", "-utils", "-server", "-client"):
                if suf == "" or r.random() < 0.45:
                    kind = ("data" if suf in ("-common", "-l10n") else
                            "doc" if suf == "-doc" else
                            "dev" if suf == "-dev" else "prog")
                    arch = "all" if kind in ("data", "doc") else "amd64"
                    bins.append((src + suf, kind, arch,
                                 "doc" if kind == "doc" else section))
        made = []
        for name, kind, arch, sect in bins:
            if len(self.pkgs) >= self.n:
                break
            p = self.add(name, src, self.binnmu(version, arch), version, kind,
                         arch, sect, prio, maint, hp)
            if p:
                made.append(p)
        # -dev packages depend on their runtime lib with an exact version
        lib = next((p for p in made if p.kind == "lib"), None)
        for p in made:
            if p.kind == "dev" and lib is not None:
                rel = "%s (= %s)" % (lib.name, lib.version)
                for i, (k, v) in enumerate(p.fields):
                    if k == "Depends":
                        p.fields[i] = (k, rel + ", " + v)
                        break
                else:
                    at = next(i for i, (k, _) in enumerate(p.fields) if k == "Description")
                    p.fields.insert(at, ("Depends", rel))

    def run(self):
        self.gen_core()
        while len(self.pkgs) < self.n:
            self.gen_source()


def write_repo(out, n, seed, suite, component, xz_preset):
    t0 = time.time()
    g = Gen(n, seed, component)
    g.run()
    pkgs = sorted(g.pkgs, key=lambda p: p.name)

    bindir = os.path.join(out, "dists", suite, component, "binary-amd64")
    os.makedirs(bindir)
    chunks = []
    made_dirs = set()
    for p in pkgs:
        blob = random.Random(p.blob_seed).randbytes(p.size)
        path = os.path.join(out, p.filename)
        d = os.path.dirname(path)
        if d not in made_dirs:
            os.makedirs(d, exist_ok=True)
            made_dirs.add(d)
        with open(path, "wb") as fh:
            fh.write(blob)
        f = p.fields + [("Filename", p.filename), ("Size", str(p.size)),
                        ("MD5sum", hashlib.md5(blob).hexdigest()),
                        ("SHA256", hashlib.sha256(blob).hexdigest())]
        chunks.append("".join("%s: %s\n" % kv for kv in f))
    packages = "\n".join(chunks).encode()

    files = {}
    rel = "main"
    files["Packages"] = packages
    files["Packages.gz"] = gzip.compress(packages, compresslevel=9, mtime=0)
    files["Packages.xz"] = lzma.compress(packages, preset=xz_preset)
    files["Release"] = ("Archive: %s\nOrigin: Depot-Bench\nLabel: Depot-Bench\n"
                        "Component: %s\nArchitecture: amd64\n" % (suite, component)).encode()
    for name, data in files.items():
        with open(os.path.join(bindir, name), "wb") as fh:
            fh.write(data)

    entries = [("%s/binary-amd64/%s" % (component, k), v) for k, v in sorted(files.items())]
    lines = [
        "Origin: Depot-Bench",
        "Label: Depot-Bench",
        "Suite: %s" % suite,
        "Codename: %s" % suite,
        "Date: %s" % RELEASE_DATE,
        "Acquire-By-Hash: no",
        "Architectures: amd64",
        "Components: %s" % component,
        "Description: synthetic %d-package repository for depot benchmarks (seed %d)" % (n, seed),
        "MD5Sum:",
    ]
    w = max(len(str(len(v))) for _, v in entries)
    for path, data in entries:
        lines.append(" %s %*d %s" % (hashlib.md5(data).hexdigest(), w, len(data), path))
    lines.append("SHA256:")
    for path, data in entries:
        lines.append(" %s %*d %s" % (hashlib.sha256(data).hexdigest(), w, len(data), path))
    with open(os.path.join(out, "dists", suite, "Release"), "w") as fh:
        fh.write("\n".join(lines) + "\n")

    stats = {
        "packages": len(pkgs),
        "sources": len({p.source for p in pkgs}),
        "arch_all": sum(p.arch == "all" for p in pkgs),
        "required": sum(p.priority == "required" for p in pkgs),
        "important": sum(p.priority == "important" for p in pkgs),
        "pool_bytes": sum(p.size for p in pkgs),
        "packages_bytes": len(packages),
        "packages_gz_bytes": len(files["Packages.gz"]),
        "packages_xz_bytes": len(files["Packages.xz"]),
        "seconds": round(time.time() - t0, 2),
    }
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output directory (the repository root)")
    ap.add_argument("-n", "--packages", type=int, default=63000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--suite", default="stable")
    ap.add_argument("--component", default="main")
    ap.add_argument("--xz-preset", type=int, default=1,
                    help="xz level for Packages.xz (default 1: level 6 takes ~1 min "
                         "for 63k packages in pure Python; decompression speed is similar)")
    ap.add_argument("--force", action="store_true", help="regenerate even if the stamp matches")
    a = ap.parse_args()

    want = {"generator": GENERATOR_VERSION, "packages": a.packages, "seed": a.seed,
            "suite": a.suite, "component": a.component, "xz_preset": a.xz_preset}
    out = os.path.abspath(a.out)
    stamp = os.path.join(out, STAMP)
    if not a.force and os.path.exists(stamp):
        try:
            with open(stamp) as fh:
                have = json.load(fh)
            if all(have.get(k) == v for k, v in want.items()):
                print("gen-apt-repo: reusing %s (%d packages, seed %d)"
                      % (out, a.packages, a.seed), file=sys.stderr)
                return 0
        except (OSError, ValueError):
            pass

    # build next to the target and swap in, so an interrupted run never
    # leaves a half-written tree that looks complete
    tmp = out + ".tmp-%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        stats = write_repo(tmp, a.packages, a.seed, a.suite, a.component, a.xz_preset)
        with open(os.path.join(tmp, STAMP), "w") as fh:
            json.dump(dict(want, stats=stats), fh, indent=1)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print("gen-apt-repo: wrote %s: %s" % (out, json.dumps(stats)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
