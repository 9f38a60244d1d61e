//! Synthesise a deterministic repository of small, valid rpm packages.
//!
//! ```text
//! rpmgen OUT [--packages N] [--seed S] [--files F] [--jobs J] [--force]
//! ```
//!
//! Writes `OUT/Packages/<first letter>/<name>-<version>-<release>.<arch>.rpm`
//! (Fedora's layout) and `OUT/.gen-stamp`.  No metadata: the benchmark runs
//! `createrepo_c` on OUT, and that run is what depot is compared with.
//!
//! The output depends only on (N, seed, GENERATOR_VERSION): every package has
//! a fixed build time, build host and file mtime, so the same arguments give
//! byte-identical packages.  If `OUT/.gen-stamp` says the tree was made with
//! the same arguments it is reused untouched (so is any `repodata/` in it).
//! The tree is built in `OUT.tmp-<pid>` and renamed into place, so an
//! interrupted run never leaves a tree that looks complete.
//!
//! Shape (see `plan`): a handful of base packages with real names (glibc,
//! bash, python3, ...), then "source groups": single packages, `libfoo` +
//! `libfoo-devel` (= EVR), `foo` + `foo-data` + `foo-doc`, `python3-foo`;
//! about 6% of groups also ship an older version.  Roughly 10% of packages
//! have an epoch, about 40% are noarch.  Requires point at earlier package
//! names, sonames (`libfoo.so.1()(64bit)`), `python(abi)` and a few virtual
//! capabilities that some packages Provide.  Each package carries one small
//! text file (under /usr/bin, /usr/lib64, /usr/include, /usr/share, /etc or
//! site-packages).
//!
//! `--files F` gives each package, besides, 0..=2F small files (F on
//! average) under `/usr/share/NAME/…` and `/usr/lib/NAME/…`, so that
//! `filelists` is the size of a real distribution's (F = 60 at 20,000
//! packages: ~100 MB of metadata uncompressed, like Fedora's).  F = 0 (the
//! default) gives the trees earlier versions gave.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rpm::{BuildConfig, CompressionWithLevel, Dependency, FileOptions, PackageBuilder};

const GENERATOR_VERSION: u32 = 1;
const STAMP: &str = ".gen-stamp";
/// 2024-06-08T08:51:29Z, the same instant gen-apt-repo.py uses.
const BUILD_TIME: u32 = 1_717_836_689;
const DIST: &str = "fc40";

// ------------------------------------------------------------------- PRNG

/// splitmix64: tiny, deterministic, good enough for shaping test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// uniform in 0..n
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// true with probability pct/100
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

// ------------------------------------------------------------------ specs

#[derive(Clone)]
enum Dep {
    Any(String),
    Eq(String, String),
    Ge(String, String),
    Lt(String, String),
}

impl Dep {
    fn to_rpm(&self) -> Dependency {
        match self {
            Dep::Any(n) => Dependency::any(n.as_str()),
            Dep::Eq(n, v) => Dependency::eq(n.as_str(), v.as_str()),
            Dep::Ge(n, v) => Dependency::greater_eq(n.as_str(), v.as_str()),
            Dep::Lt(n, v) => Dependency::less(n.as_str(), v.as_str()),
        }
    }
}

struct Spec {
    name: String,
    epoch: u32,
    version: String,
    release: String,
    arch: &'static str,
    license: &'static str,
    summary: String,
    description: String,
    url: String,
    group: &'static str,
    requires: Vec<Dep>,
    provides: Vec<Dep>,
    obsoletes: Vec<Dep>,
    file: String,
    file_mode: u16,
    file_config: bool,
    file_doc: bool,
    body: Vec<u8>,
}

impl Spec {
    fn evr(&self) -> String {
        if self.epoch > 0 {
            format!("{}:{}-{}", self.epoch, self.version, self.release)
        } else {
            format!("{}-{}", self.version, self.release)
        }
    }
    fn rel_path(&self) -> String {
        let first = self.name.chars().next().unwrap().to_ascii_lowercase();
        format!(
            "Packages/{first}/{}-{}-{}.{}.rpm",
            self.name, self.version, self.release, self.arch
        )
    }
}

const SYLLABLES: &[&str] = &[
    "ab", "ac", "al", "am", "an", "ar", "as", "at", "ba", "be", "bi", "bo", "bu", "ca", "ce", "ci",
    "co", "cu", "da", "de", "di", "do", "du", "el", "em", "en", "er", "es", "fa", "fe", "fi", "fo",
    "ga", "ge", "gi", "go", "ha", "he", "hi", "ho", "id", "il", "im", "in", "io", "ka", "ke", "ki",
    "ko", "la", "le", "li", "lo", "lu", "ma", "me", "mi", "mo", "mu", "na", "ne", "ni", "no", "nu",
    "ob", "od", "om", "on", "or", "os", "pa", "pe", "pi", "po", "pu", "qu", "ra", "re", "ri", "ro",
    "ru", "sa", "se", "si", "so", "su", "ta", "te", "ti", "to", "tu", "um", "un", "ur", "va", "ve",
    "vi", "vo", "xa", "xe", "za", "ze", "zi", "zo",
];
const TAILS: &[&str] = &[
    "", "", "", "", "x", "d", "ctl", "kit", "fs", "io", "mm", "ng", "pp", "tools", "utils", "lib",
];
const WORDS: &[&str] = &[
    "fast", "small", "portable", "library", "for", "parsing", "network", "data", "tool", "the",
    "client", "server", "daemon", "command", "line", "interface", "to", "and", "with", "support",
    "files", "configuration", "utilities", "bindings", "of", "a", "simple", "extensible", "format",
    "protocol", "images", "audio", "text", "compression", "storage", "monitoring", "system",
];
const LICENSES: &[&str] = &[
    "MIT", "GPL-2.0-or-later", "LGPL-2.1-or-later", "Apache-2.0", "BSD-3-Clause", "MPL-2.0",
];
const GROUPS: &[&str] = &["Unspecified", "System Environment/Libraries", "Development/Tools"];
/// Virtual capabilities: provided by some packages, required by others.
const VIRTUALS: &[&str] = &[
    "webserver", "mta", "syslog", "sql-server", "java-headless", "tex(latex)", "font(sans)",
];

fn word(rng: &mut Rng) -> String {
    let n = 2 + rng.below(2);
    let mut w = String::new();
    for _ in 0..n {
        w.push_str(*rng.pick(SYLLABLES));
    }
    w.push_str(*rng.pick(TAILS));
    w
}

/// `min + below(spread)` words.
fn sentence(rng: &mut Rng, min: u64, spread: u64) -> String {
    let words = min + rng.below(spread);
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(*rng.pick(WORDS));
    }
    s
}

fn version(rng: &mut Rng) -> String {
    let mut v = match rng.below(10) {
        0 => format!("{}.{}", rng.below(30), rng.below(100)),
        1 => format!("{}", 2000 + rng.below(25) * 100 + rng.below(12) + 1),
        _ => format!("{}.{}.{}", rng.below(13), rng.below(31), rng.below(21)),
    };
    match rng.below(100) {
        0..=2 => v.push_str(&format!("~rc{}", 1 + rng.below(4))),
        3 => v.push_str(&format!("^{}git{:07x}", 20240000 + rng.below(1300), rng.below(1 << 28))),
        _ => {}
    }
    v
}

/// A version sorting below `v`: the original with its last non-zero number
/// lowered, or `<v>~pre` if every number is 0.
fn older(v: &str) -> String {
    let base: &str = v.split(['~', '^']).next().unwrap();
    let mut parts: Vec<String> = base.split('.').map(str::to_owned).collect();
    for p in parts.iter_mut().rev() {
        if let Ok(n) = p.parse::<u64>()
            && n > 0
        {
            *p = (n - 1).to_string();
            return parts.join(".");
        }
    }
    format!("{base}~pre")
}

fn body(rng: &mut Rng, header: &str) -> Vec<u8> {
    let target = 200 + rng.below(1800) as usize;
    let mut s = String::with_capacity(target + 80);
    s.push_str(header);
    while s.len() < target {
        s.push_str("# ");
        s.push_str(&sentence(rng, 4, 8));
        s.push('\n');
    }
    s.into_bytes()
}

struct Pool {
    /// (capability, version to use in a versioned require)
    names: Vec<(String, Option<String>)>,
    sonames: Vec<String>,
    virtuals_provided: Vec<&'static str>,
}

impl Pool {
    /// 0-3 requires on things earlier packages provide.
    fn requires(&self, rng: &mut Rng, arch: &str, out: &mut Vec<Dep>) {
        if arch == "x86_64" {
            out.push(Dep::Any("libc.so.6()(64bit)".into()));
            if !self.sonames.is_empty() {
                for _ in 0..rng.below(3) {
                    out.push(Dep::Any(rng.pick(&self.sonames).clone()));
                }
            }
        }
        if !self.names.is_empty() {
            for _ in 0..rng.below(4) {
                let (n, v) = rng.pick(&self.names);
                match v {
                    Some(v) if rng.pct(30) => out.push(Dep::Ge(n.clone(), v.clone())),
                    _ => out.push(Dep::Any(n.clone())),
                }
            }
        }
        if !self.virtuals_provided.is_empty() && rng.pct(3) {
            out.push(Dep::Any((*rng.pick(&self.virtuals_provided)).to_owned()));
        }
        out.sort_by(|a, b| dep_name(a).cmp(dep_name(b)));
        out.dedup_by(|a, b| dep_name(a) == dep_name(b));
    }
}

fn dep_name(d: &Dep) -> &str {
    match d {
        Dep::Any(n) | Dep::Eq(n, _) | Dep::Ge(n, _) | Dep::Lt(n, _) => n,
    }
}

#[allow(clippy::too_many_arguments)]
fn spec(
    rng: &mut Rng,
    name: String,
    epoch: u32,
    version: &str,
    release: &str,
    arch: &'static str,
    file: String,
    file_mode: u16,
) -> Spec {
    let header = if file_mode & 0o111 != 0 {
        format!("#!/bin/sh\necho {name} {version}\n")
    } else {
        format!("# {name} {version}-{release}\n")
    };
    Spec {
        summary: {
            let mut s = sentence(rng, 3, 5);
            s[..1].make_ascii_uppercase();
            s
        },
        description: (0..1 + rng.below(4))
            .map(|_| {
                let mut s = sentence(rng, 6, 12);
                s[..1].make_ascii_uppercase();
                s.push('.');
                s
            })
            .collect::<Vec<_>>()
            .join(" "),
        url: format!("https://example.org/{name}"),
        license: *rng.pick(LICENSES),
        group: *rng.pick(GROUPS),
        body: body(rng, &header),
        name,
        epoch,
        version: version.to_owned(),
        release: release.to_owned(),
        arch,
        requires: Vec::new(),
        provides: Vec::new(),
        obsoletes: Vec::new(),
        file,
        file_mode,
        file_config: false,
        file_doc: false,
    }
}

/// The whole repository, in order.  Cheap: no I/O.
fn plan(n: usize, seed: u64) -> Vec<Spec> {
    let mut rng = Rng(seed ^ 0x5eed_0000_0000_0000);
    let mut out: Vec<Spec> = Vec::with_capacity(n);
    let mut used: HashSet<String> = HashSet::new();
    let mut pool = Pool { names: Vec::new(), sonames: Vec::new(), virtuals_provided: Vec::new() };

    // Base system with real names; everything x86_64 needs glibc's soname.
    let core: &[(&str, &'static str, &str, &[&str])] = &[
        ("glibc", "x86_64", "/usr/lib64/libc.so.6", &["libc.so.6()(64bit)", "libm.so.6()(64bit)"]),
        ("bash", "x86_64", "/usr/bin/bash", &["/bin/sh"]),
        ("filesystem", "x86_64", "/usr/share/filesystem/README", &[]),
        ("setup", "noarch", "/etc/setup.conf", &[]),
        ("coreutils", "x86_64", "/usr/bin/coreutils", &[]),
        ("zlib", "x86_64", "/usr/lib64/libz.so.1", &["libz.so.1()(64bit)"]),
        ("openssl-libs", "x86_64", "/usr/lib64/libssl.so.3", &["libssl.so.3()(64bit)"]),
        ("python3", "x86_64", "/usr/bin/python3", &["python(abi) = 3.12", "/usr/bin/python3"]),
        ("perl-interpreter", "x86_64", "/usr/bin/perl", &["perl(:VERSION) = 5.38.2"]),
        ("systemd", "x86_64", "/usr/bin/systemctl", &["syslog"]),
    ];
    for (name, arch, file, provides) in core.iter().take(n) {
        let ver = version(&mut rng);
        let mode = if file.contains("/bin/") || file.contains(".so") { 0o755 } else { 0o644 };
        let mut s = spec(&mut rng, (*name).into(), 0, &ver, &format!("1.{DIST}"), arch, (*file).into(), mode);
        for p in *provides {
            match p.split_once(" = ") {
                Some((cap, v)) => s.provides.push(Dep::Eq(cap.into(), v.into())),
                None => s.provides.push(Dep::Any((*p).into())),
            }
            if p.ends_with("(64bit)") {
                pool.sonames.push((*p).into());
            }
        }
        if *name == "systemd" {
            pool.virtuals_provided.push("syslog");
        }
        if *name != "glibc" && *arch == "x86_64" {
            s.requires.push(Dep::Any("libc.so.6()(64bit)".into()));
        }
        s.file_config = file.starts_with("/etc/");
        pool.names.push((s.name.clone(), Some(s.version.clone())));
        used.insert(s.name.clone());
        out.push(s);
    }

    while out.len() < n {
        let base = loop {
            let w = word(&mut rng);
            if !used.contains(&w) && !used.contains(&format!("lib{w}")) {
                break w;
            }
        };
        let epoch = match rng.below(100) {
            0..=7 => 1,
            8..=9 => 2 + rng.below(3) as u32,
            _ => 0,
        };
        let ver = version(&mut rng);
        let max_rel = if rng.pct(70) { 3 } else { 30 };
        let rel = format!("{}.{DIST}", 1 + rng.below(max_rel));
        let mut group: Vec<Spec> = Vec::new();
        match rng.below(100) {
            // a single package: program, config-only or data
            0..=49 => {
                let s = if rng.pct(65) {
                    spec(&mut rng, base.clone(), epoch, &ver, &rel, "x86_64", format!("/usr/bin/{base}"), 0o755)
                } else if rng.pct(30) {
                    let mut s = spec(&mut rng, base.clone(), epoch, &ver, &rel, "noarch", format!("/etc/{base}.conf"), 0o644);
                    s.file_config = true;
                    s
                } else {
                    spec(&mut rng, base.clone(), epoch, &ver, &rel, "noarch", format!("/usr/share/{base}/{base}.dat"), 0o644)
                };
                group.push(s);
            }
            // libfoo + libfoo-devel
            50..=69 => {
                let major = ver.split('.').next().unwrap_or("0").trim_start_matches('0');
                let major = if major.is_empty() || major.len() > 2 { "1" } else { major };
                let soname = format!("lib{base}.so.{major}()(64bit)");
                let mut lib = spec(
                    &mut rng, format!("lib{base}"), epoch, &ver, &rel, "x86_64",
                    format!("/usr/lib64/lib{base}.so.{major}"), 0o755,
                );
                lib.provides.push(Dep::Any(soname.clone()));
                let mut devel = spec(
                    &mut rng, format!("lib{base}-devel"), epoch, &ver, &rel, "x86_64",
                    format!("/usr/include/{base}/{base}.h"), 0o644,
                );
                devel.requires.push(Dep::Eq(lib.name.clone(), lib.evr()));
                devel.provides.push(Dep::Eq(format!("pkgconfig({base})"), ver.clone()));
                group.push(lib);
                group.push(devel);
                pool.sonames.push(soname);
            }
            // foo + foo-data + foo-doc
            70..=84 => {
                let mut app = spec(&mut rng, base.clone(), epoch, &ver, &rel, "x86_64", format!("/usr/bin/{base}"), 0o755);
                let data = spec(
                    &mut rng, format!("{base}-data"), epoch, &ver, &rel, "noarch",
                    format!("/usr/share/{base}/data.txt"), 0o644,
                );
                let mut doc = spec(
                    &mut rng, format!("{base}-doc"), epoch, &ver, &rel, "noarch",
                    format!("/usr/share/doc/{base}/README"), 0o644,
                );
                doc.file_doc = true;
                app.requires.push(Dep::Eq(data.name.clone(), data.evr()));
                group.push(app);
                group.push(data);
                group.push(doc);
            }
            // python3-foo
            _ => {
                let mut py = spec(
                    &mut rng, format!("python3-{base}"), epoch, &ver, &rel, "noarch",
                    format!("/usr/lib/python3.12/site-packages/{base}/__init__.py"), 0o644,
                );
                py.requires.push(Dep::Eq("python(abi)".into(), "3.12".into()));
                py.provides.push(Dep::Eq(format!("python3.12dist({base})"), ver.clone()));
                py.provides.push(Dep::Eq(format!("python3dist({base})"), ver.clone()));
                group.push(py);
            }
        }
        // cross-group relations, a few virtual provides, the odd Obsoletes
        for s in group.iter_mut() {
            let arch = s.arch;
            pool.requires(&mut rng, arch, &mut s.requires);
            if rng.pct(2) {
                let v = *rng.pick(VIRTUALS);
                s.provides.push(Dep::Any(v.into()));
                if !pool.virtuals_provided.contains(&v) {
                    pool.virtuals_provided.push(v);
                }
            }
            if rng.pct(2) {
                s.obsoletes.push(Dep::Lt(format!("{}-compat", s.name), s.version.clone()));
            }
        }
        // about 6% of groups keep an older build next to the current one
        let old: Vec<Spec> = if rng.pct(6) {
            let over = older(&ver);
            group
                .iter()
                .map(|s| {
                    let file = s.file.clone();
                    let mut o = spec(&mut rng, s.name.clone(), epoch, &over, &rel, s.arch, file, s.file_mode);
                    o.requires = s
                        .requires
                        .iter()
                        .map(|d| match d {
                            // keep -devel = EVR pointing at its own build
                            Dep::Eq(n, v) if v.ends_with(&rel) => {
                                Dep::Eq(n.clone(), v.replace(&ver, &over))
                            }
                            d => d.clone(),
                        })
                        .collect();
                    o.provides = s.provides.clone();
                    o.file_config = s.file_config;
                    o.file_doc = s.file_doc;
                    o
                })
                .collect()
        } else {
            Vec::new()
        };
        for s in &group {
            used.insert(s.name.clone());
            pool.names.push((s.name.clone(), Some(s.version.clone())));
        }
        for s in old.into_iter().chain(group) {
            if out.len() < n {
                out.push(s);
            }
        }
    }
    out
}

// ---------------------------------------------------------------- writing

/// `--files`: 0..=2*avg extra files for package `name`, the same for the
/// same name.
fn extra_files(name: &str, avg: usize) -> Vec<(String, Vec<u8>)> {
    const DIRS: &[&str] = &[
        "share/{n}/data",
        "share/{n}/doc/examples",
        "share/locale/{l}/LC_MESSAGES",
        "share/icons/hicolor/48x48/apps",
        "share/man/man1",
        "lib/{n}/modules",
        "lib/{n}/plugins/extra",
    ];
    const LOCALES: &[&str] = &["de", "es", "fr", "it", "ja", "pt_BR", "ru", "zh_CN"];
    if avg == 0 {
        return Vec::new();
    }
    let mut rng = Rng(name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    }));
    let count = rng.below(2 * avg as u64 + 1) as usize;
    (0..count)
        .map(|j| {
            let (dir, locale) = (*rng.pick(DIRS), *rng.pick(LOCALES));
            let dir = dir.replace("{n}", name).replace("{l}", locale);
            let word = *rng.pick(WORDS);
            let ext = *rng.pick(&["txt", "dat", "py", "mo", "png", "gz"]);
            let path = format!("/usr/{dir}/{word}-{j:03}.{ext}");
            (path, format!("{name} {j}\n").into_bytes())
        })
        .collect()
}

fn build(
    spec: &Spec,
    root: &Path,
    files: usize,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let cfg = BuildConfig::v4()
        .compression(CompressionWithLevel::Gzip(6))
        .source_date(BUILD_TIME);
    let mut b = PackageBuilder::new(&spec.name, &spec.version, spec.license, spec.arch, &spec.summary);
    b.using_config(cfg)
        .release(spec.release.as_str())
        .description(spec.description.as_str())
        .url(spec.url.as_str())
        .vendor("depot bench")
        .packager("depot bench <bench@example.org>")
        .group(spec.group)
        .build_host("bench.example.org");
    if spec.epoch > 0 {
        b.epoch(spec.epoch);
    }
    for d in &spec.requires {
        b.requires(d.to_rpm());
    }
    for d in &spec.provides {
        b.provides(d.to_rpm());
    }
    for d in &spec.obsoletes {
        b.obsoletes(d.to_rpm());
    }
    let mut fo = FileOptions::new(spec.file.as_str()).permissions(spec.file_mode);
    if spec.file_config {
        fo = fo.config();
    }
    if spec.file_doc {
        fo = fo.doc();
    }
    b.with_file_contents(spec.body.clone(), fo)?;
    for (path, body) in extra_files(&spec.name, files) {
        b.with_file_contents(body, FileOptions::new(path.as_str()))?;
    }
    let pkg = b.build()?;
    let path = root.join(spec.rel_path());
    let mut buf = Vec::with_capacity(8192);
    pkg.write(&mut buf)?;
    fs::write(&path, &buf)?;
    Ok(buf.len() as u64)
}

fn usage() -> ! {
    eprintln!("usage: rpmgen OUT [--packages N] [--seed S] [--files F] [--jobs J] [--force]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut packages: usize = 20_000;
    let mut seed: u64 = 1;
    let mut files: usize = 0;
    let mut jobs: usize = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let mut force = false;
    while let Some(a) = args.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let mut val = || inline.clone().or_else(|| args.next()).unwrap_or_else(|| usage());
        match key.as_str() {
            "--packages" => packages = val().parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = val().parse().unwrap_or_else(|_| usage()),
            "--files" => files = val().parse().unwrap_or_else(|_| usage()),
            "--jobs" => jobs = val().parse().unwrap_or_else(|_| usage()),
            "--force" => force = true,
            "-h" | "--help" => usage(),
            _ if !key.starts_with('-') && out.is_none() => out = Some(PathBuf::from(&a)),
            _ => usage(),
        }
    }
    let out = out.unwrap_or_else(|| usage());
    let out = std::path::absolute(&out).expect("absolute path");
    let mut key = format!("rpmgen generator={GENERATOR_VERSION} packages={packages} seed={seed}");
    if files > 0 {
        key.push_str(&format!(" files={files}"));
    }
    let stamp = out.join(STAMP);
    if !force
        && let Ok(have) = fs::read_to_string(&stamp)
        && have.lines().next() == Some(key.as_str())
    {
        eprintln!("rpmgen: reusing {} ({packages} packages, seed {seed})", out.display());
        return;
    }

    let t0 = Instant::now();
    let specs = plan(packages, seed);
    let tmp = PathBuf::from(format!("{}.tmp-{}", out.display(), std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let mut dirs: Vec<String> = specs
        .iter()
        .map(|s| s.rel_path().rsplit_once('/').unwrap().0.to_owned())
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        fs::create_dir_all(tmp.join(d)).expect("create output directory");
    }

    let next = AtomicUsize::new(0);
    let bytes = AtomicUsize::new(0);
    let failed = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                sc.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(s) = specs.get(i) else { return None };
                        match build(s, &tmp, files) {
                            Ok(n) => {
                                bytes.fetch_add(n as usize, Ordering::Relaxed);
                            }
                            Err(e) => return Some(format!("{}: {e}", s.rel_path())),
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().expect("worker panicked")).next()
    });
    if let Some(e) = failed {
        let _ = fs::remove_dir_all(&tmp);
        eprintln!("rpmgen: {e}");
        std::process::exit(1);
    }

    let noarch = specs.iter().filter(|s| s.arch == "noarch").count();
    let epochs = specs.iter().filter(|s| s.epoch > 0).count();
    let names: HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let bytes = bytes.load(Ordering::Relaxed);
    let stats = format!(
        "{{\"packages\": {}, \"names\": {}, \"noarch\": {noarch}, \"x86_64\": {}, \"with_epoch\": {epochs}, \"bytes\": {bytes}, \"seconds\": {:.1}}}",
        specs.len(),
        names.len(),
        specs.len() - noarch,
        t0.elapsed().as_secs_f64()
    );
    let mut f = fs::File::create(tmp.join(STAMP)).expect("write stamp");
    writeln!(f, "{key}\n{stats}").expect("write stamp");
    drop(f);
    if out.exists() {
        fs::remove_dir_all(&out).expect("remove old tree");
    }
    fs::rename(&tmp, &out).expect("rename into place");
    eprintln!("rpmgen: wrote {}: {stats}", out.display());
}
