//! `depot check [--full]`: verifies a data root and changes nothing.
//!
//! - every state and manifest names blobs that exist (index, selection
//!   and metadata blobs always; package blobs unless the state is an
//!   on-demand mirror's, whose packages are fetched when published);
//! - every published version is complete: each index listed in its
//!   `Release` (or `repomd.xml`) exists with the listed size and SHA-256
//!   (compressed variants: size, and SHA-256 with `--full`), and each
//!   package file an index names exists with the right size (with
//!   `--full`, the right SHA-256; files linked more than once are hashed
//!   once);
//! - each stage points at a version that exists;
//! - with `--full`, every pool blob's name is its SHA-256.
//!
//! A version whose drop was killed after its tree was renamed aside is
//! listed as an interrupted drop, not as a problem: no reader can reach
//! it, no stage serves it, and the next `prune` or `gc` finishes the drop.
//!
//! Problems are listed, not raised one by one: the caller renders the
//! report and then [`CheckReport::result`] makes the exit code.

use std::hash::BuildHasher;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::refs::{RefError, Role, Walker};
use super::{Names, RetentionError};
use crate::digest::{Expected, Sha256Digest};
use crate::formats::apt as aptfmt;
use crate::root::{PublishRoot, Root};

/// Options of `depot check`.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    pub full: bool,
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A state or manifest cannot be read.
    UnreadableManifest,
    /// A state or manifest names a blob the pool lacks.
    MissingBlob,
    /// A pooled index or selection cannot be parsed.
    DamagedBlob,
    /// A pool blob's content does not match its name (`--full`).
    CorruptBlob,
    /// A version record without its tree.
    MissingVersion,
    /// An index listed in Release/repomd.xml is missing.
    MissingIndex,
    /// An index differs from what Release/repomd.xml lists.
    IndexMismatch,
    /// A package file an index names is missing.
    MissingPackage,
    /// A package file has the wrong size (truncated, say).
    PackageSize,
    /// A package file has the wrong SHA-256 (`--full`).
    PackageChecksum,
    /// A stage points at no version.
    BrokenStage,
    /// A version's file list cannot be read, or does not name a package
    /// file with the SHA-256 its index gives (`depot serve` would not
    /// serve the file).
    FileList,
}

impl ProblemKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::UnreadableManifest => "unreadable manifest",
            Self::MissingBlob => "missing blob",
            Self::DamagedBlob => "damaged blob",
            Self::CorruptBlob => "corrupt blob",
            Self::MissingVersion => "missing version",
            Self::MissingIndex => "missing index",
            Self::IndexMismatch => "index mismatch",
            Self::MissingPackage => "missing package",
            Self::PackageSize => "package size",
            Self::PackageChecksum => "package checksum",
            Self::BrokenStage => "broken stage",
            Self::FileList => "file list",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// What has the problem: a manifest, `DIST/VERSION`, a blob.
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub full: bool,
    pub manifests: usize,
    pub versions: usize,
    pub package_files: usize,
    pub blobs_hashed: usize,
    /// `DIST/VERSION`s whose drop a killed process left half done: the
    /// tree is renamed aside (no reader sees it, no stage serves it) and
    /// the record remains until the next `prune` or `gc` finishes it. Not
    /// a problem: nothing is damaged.
    pub interrupted_drops: Vec<String>,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// `Err` (exit 1) if anything is wrong.
    pub fn result(&self) -> Result<(), RetentionError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(RetentionError::Problems {
                count: self.problems.len(),
            })
        }
    }

    fn problem(&mut self, kind: ProblemKind, subject: impl Into<String>, detail: String) {
        self.problems.push(Problem {
            kind,
            subject: subject.into(),
            detail,
        });
    }
}

/// `depot check [--full]`.
pub fn check(root: &Root, opts: CheckOptions) -> Result<CheckReport, RetentionError> {
    let mut report = CheckReport {
        full: opts.full,
        ..CheckReport::default()
    };
    // The manifests (their distinct indices parsed once) and the
    // published versions are checked at the same time: each is an index
    // scan per night, and on two cores neither waits for the other.
    let (manifests_report, versions) = std::thread::scope(|s| {
        let manifests_report = s.spawn(|| {
            let mut part = CheckReport::default();
            manifests(root, &mut part).map(|pooled| (part, pooled))
        });
        let versions = versions(root, opts, &mut report);
        (
            manifests_report
                .join()
                .expect("the manifest check does not panic"),
            versions,
        )
    });
    versions?;
    let (manifests_report, pooled) = manifests_report?;
    report.manifests = manifests_report.manifests;
    let mut problems = manifests_report.problems;
    problems.append(&mut report.problems);
    report.problems = problems;
    if opts.full {
        // The blobs the manifest check listed, each hashed once, on
        // every core; in digest order, so the report does not depend on
        // the listing's.
        let mut blobs: Vec<Sha256Digest> = pooled?.into_iter().collect();
        blobs.sort_unstable();
        let pool = crate::pool::Pool::new(root);
        let Ok(verdicts) = crate::fsutil::on_threads(&blobs, crate::fsutil::cores(), |digest| {
            Ok::<_, std::convert::Infallible>(match crate::pool::hash_file(&pool.path(digest)) {
                Ok((_, actual)) if actual == *digest => None,
                Ok((_, actual)) => Some(format!("its content's SHA-256 is {actual}")),
                // Listed, then gone: deleted by a gc meanwhile, not damage.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => Some(format!("cannot read it: {e}")),
            })
        });
        report.blobs_hashed = blobs.len();
        for (digest, detail) in blobs.iter().zip(verdicts) {
            if let Some(detail) = detail {
                report.problem(ProblemKind::CorruptBlob, format!("blob {digest}"), detail);
            }
        }
    }
    Ok(report)
}

/// Checks that every manifest's blobs are pooled; returns the pool's
/// blobs as listed, for `--full` to hash (or why the pool could not be
/// listed: the check itself then asks the pool blob by blob).
fn manifests(
    root: &Root,
    report: &mut CheckReport,
) -> Result<Result<rustc_hash::FxHashSet<Sha256Digest>, RetentionError>, RetentionError> {
    let catalogs = crate::packages::catalog::Cache::new(root);
    let pool = catalogs.pool();
    let mut walker = Walker::new(&catalogs);
    let mut found = Vec::new();
    let mut count = 0;
    // The packages of each index part are walked once; the ones missing
    // are remembered per part, to be named for every state that has it.
    let mut missing_by_part: FxHashMap<super::refs::Part, Vec<Sha256Digest>> = FxHashMap::default();
    // Thirty nights of one mirror name the same 60k package blobs thirty
    // times: the pool's listing answers (256 directory reads, not a stat
    // per blob), and a blob it lacks is asked for once (pooled after the
    // listing by a writer running meanwhile, or really missing).
    let listed = pool.listed();
    let mut asked: FxHashMap<Sha256Digest, bool> = FxHashMap::default();
    let mut contains = |d: &Sha256Digest| {
        listed.as_ref().is_ok_and(|l| l.contains(d))
            || *asked.entry(*d).or_insert_with(|| pool.contains(d))
    };
    super::for_each_root(root, &|_| false, &mut |subject, loaded| {
        count += 1;
        let subject_text = subject.to_string();
        match loaded {
            Err(e) => found.push((ProblemKind::UnreadableManifest, subject_text, e.to_string())),
            Ok(Names::Packages(p)) => {
                for d in p {
                    if !contains(&d) {
                        found.push((
                            ProblemKind::MissingBlob,
                            subject_text.clone(),
                            format!("package blob {d} is missing from the pool"),
                        ));
                    }
                }
            }
            Ok(Names::Content { content, complete }) => {
                let mut missing = Vec::new();
                let errors = walker.walk(&content, &mut |role, d, part| {
                    if role == Role::Package {
                        if !contains(&d) {
                            missing_by_part.entry(part).or_default().push(d);
                        }
                    } else if !contains(&d) {
                        missing.push((role, d));
                    }
                });
                if complete {
                    for part in super::refs::parts(&content) {
                        for d in missing_by_part.get(&part).into_iter().flatten() {
                            missing.push((Role::Package, *d));
                        }
                    }
                }
                missing.sort_by_key(|(_, d)| *d);
                missing.dedup();
                for (role, d) in missing {
                    found.push((
                        ProblemKind::MissingBlob,
                        subject_text.clone(),
                        format!("{} blob {d} is missing from the pool", role.label()),
                    ));
                }
                for e in errors {
                    // Missing blobs were listed above.
                    if !matches!(e, RefError::Missing { .. }) {
                        found.push((
                            ProblemKind::DamagedBlob,
                            subject_text.clone(),
                            e.to_string(),
                        ));
                    }
                }
            }
        }
    })?;
    report.manifests = count;
    for (kind, subject, detail) in found {
        report.problem(kind, subject, detail);
    }
    Ok(listed.map_err(RetentionError::from))
}

/// Hashes files, each inode once, for every checking thread.
#[derive(Default)]
struct Hashes(std::sync::Mutex<FxHashMap<(u64, u64), Option<Sha256Digest>>>);

impl Hashes {
    /// The SHA-256 of `path`, whose (device, inode) is `key`.
    fn of(&self, path: &Path, key: (u64, u64)) -> Option<Sha256Digest> {
        if let Some(known) = self.lock().get(&key) {
            return *known;
        }
        // Hashed without the lock: two threads meeting the same new inode
        // may both hash it, which costs time, never a wrong answer.
        let digest = crate::pool::hash_file(path).ok().map(|(_, d)| d);
        self.lock().insert(key, digest);
        digest
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FxHashMap<(u64, u64), Option<Sha256Digest>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn versions(
    root: &Root,
    opts: CheckOptions,
    report: &mut CheckReport,
) -> Result<(), RetentionError> {
    let mut trees = Vec::new();
    for info in crate::promote::dist::list(root)? {
        let published = PublishRoot::new(&info.publish_root);
        for (stage, target) in [("dev", &info.dev), ("release", &info.release)] {
            if let Some(t) = target
                && !published.version_dir(&info.name, t).is_dir()
            {
                report.problem(
                    ProblemKind::BrokenStage,
                    format!("{}/{stage}", info.name),
                    format!("points at {t}, which does not exist"),
                );
            }
        }
        for v in &info.versions {
            let subject = format!("{}/{}", info.name, v.record.version);
            let tree = published.version_dir(&info.name, &v.record.version);
            if !tree.exists()
                && published
                    .dropping_dir(&info.name, &v.record.version)
                    .is_dir()
            {
                report.interrupted_drops.push(subject);
                continue;
            }
            trees.push((subject, tree));
        }
    }
    report.versions = trees.len();
    // Versions are independent and each is a few hundred thousand stat
    // calls and an index to hash and scan: one thread per core, taking
    // the next version as it finishes one; the reports are joined in
    // version order, so the output does not depend on the scheduling.
    let hashes = Hashes::default();
    let all_sizes = std::sync::Mutex::default();
    let generation_dirs = SharedListings::default();
    let done = crate::fsutil::on_threads_stealing(
        &trees,
        crate::fsutil::cores(),
        || Sizes {
            mine: FxHashMap::default(),
            all: &all_sizes,
        },
        |sizes, (subject, tree)| {
            let mut part = CheckReport::default();
            let mut files = TreeFiles::new((subject, tree), opts, &hashes, sizes, &generation_dirs);
            files.read_list(&mut part);
            version(&mut files, &mut part);
            part
        },
    );
    for part in done {
        report.package_files += part.package_files;
        report.problems.extend(part.problems);
    }
    Ok(())
}

/// Checks one published version's tree.
fn version(files: &mut TreeFiles<'_, '_>, report: &mut CheckReport) {
    let tree = files.tree;
    if tree.join("repodata/repomd.xml").is_file() {
        rpm_version(files, report);
    } else if tree.join("dists").is_dir() {
        apt_version(files, report);
    } else {
        report.problem(
            ProblemKind::MissingVersion,
            files.subject,
            format!("{} holds no repository", tree.display()),
        );
    }
}

/// Checks one file a signed listing names: that it is there with the
/// listed size and, when `hash`, the listed SHA-256 (read a block at a
/// time). Returns whether it passed.
fn listed_file(
    path: &Path,
    rel: &str,
    expected: Expected,
    hash: bool,
    subject: &str,
    report: &mut CheckReport,
) -> bool {
    let Ok(meta) = path.metadata() else {
        report.problem(
            ProblemKind::MissingIndex,
            subject,
            format!("{rel} is listed but missing"),
        );
        return false;
    };
    if meta.len() != expected.size {
        report.problem(
            ProblemKind::IndexMismatch,
            subject,
            format!(
                "{rel} has {} bytes, the listing says {}",
                meta.len(),
                expected.size
            ),
        );
        return false;
    }
    if !hash {
        return true;
    }
    match crate::pool::hash_file(path) {
        Ok((_, actual)) => listed_digest(rel, actual, expected, subject, report),
        Err(_) => {
            report.problem(
                ProblemKind::MissingIndex,
                subject,
                format!("cannot read {rel}"),
            );
            false
        }
    }
}

/// Whether `actual` is the SHA-256 the listing gives `rel`; reports it
/// if not.
fn listed_digest(
    rel: &str,
    actual: Sha256Digest,
    expected: Expected,
    subject: &str,
    report: &mut CheckReport,
) -> bool {
    if actual == expected.sha256 {
        return true;
    }
    report.problem(
        ProblemKind::IndexMismatch,
        subject,
        format!(
            "{rel} has SHA-256 {actual}, the listing says {}",
            expected.sha256
        ),
    );
    false
}

/// Reads `path` in blocks of about `block` bytes that end where a
/// paragraph does (after an empty line), handing each to `each` with the
/// number of its first line; returns the file's SHA-256. A published
/// `Packages` (16-54 MB for 63k packages) is hashed and scanned in
/// bounded memory rather than read whole by each checking thread.
fn paragraph_blocks(
    path: &Path,
    block: u64,
    mut each: impl FnMut(&[u8], usize),
) -> std::io::Result<Sha256Digest> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = Vec::new();
    let mut line = 1;
    loop {
        let read = file.by_ref().take(block).read_to_end(&mut buf)?;
        let eof = (read as u64) < block;
        let end = if eof {
            buf.len()
        } else {
            // A paragraph longer than the block: read on.
            let Some(i) = memchr::memmem::rfind(&buf, b"\n\n") else {
                continue;
            };
            i + 2
        };
        let block = &buf[..end];
        hasher.update(block);
        if !block.is_empty() {
            each(block, line);
        }
        if eof {
            return Ok(Sha256Digest::from_hasher(hasher));
        }
        line += memchr::memchr_iter(b'\n', block).count();
        buf.drain(..end);
    }
}

/// Hashes and scans a plain `Packages` or `Sources` index a block at a
/// time, checking each package file it names. What the scan finds counts
/// only if the index is the one `Release` lists (else that is the
/// problem).
fn scan_index(
    files: &mut TreeFiles<'_, '_>,
    path: &Path,
    rel: &str,
    expected: Expected,
    report: &mut CheckReport,
) {
    let subject = files.subject;
    let sources = rel.ends_with("Sources");
    let mut found = CheckReport::default();
    let mut utf8 = true;
    let digest = paragraph_blocks(path, 1 << 20, |block, line| {
        let Ok(text) = std::str::from_utf8(block).inspect_err(|_| utf8 = false) else {
            return;
        };
        let malformed = |found: &mut CheckReport, e: aptfmt::AptFormatError| {
            found.problem(ProblemKind::IndexMismatch, subject, format!("{rel}: {e}"));
        };
        if sources {
            for s in aptfmt::source_stanzas_from(text, line) {
                match s {
                    Ok(s) => {
                        for (file, e) in &s.files {
                            let rel = format!("{}/{file}", s.directory);
                            package_file(files, &rel, *e, &mut found);
                        }
                    }
                    Err(e) => malformed(&mut found, e),
                }
            }
        } else {
            for s in aptfmt::binary_stanzas_from(text, line) {
                match s {
                    Ok(s) => package_file(files, s.filename, s.expected, &mut found),
                    Err(e) => malformed(&mut found, e),
                }
            }
        }
    });
    let Ok(actual) = digest else {
        report.problem(
            ProblemKind::MissingIndex,
            subject,
            format!("cannot read {rel}"),
        );
        return;
    };
    if !listed_digest(rel, actual, expected, subject, report) {
        return;
    }
    if !utf8 {
        report.problem(
            ProblemKind::IndexMismatch,
            subject,
            format!("{rel} is not UTF-8"),
        );
        return;
    }
    report.package_files += found.package_files;
    report.problems.append(&mut found.problems);
}

/// (device, inode) → size of the package files seen: the versions of a
/// distribution link the same pool blobs, so each is stat'ed once, not
/// once per version. A thread looks in its own map, then in the one all
/// threads share (locked once per inode and thread, not per file).
struct Sizes<'s> {
    mine: FxHashMap<(u64, u64), u64>,
    all: &'s std::sync::Mutex<FxHashMap<(u64, u64), u64>>,
}

impl Sizes<'_> {
    fn get(&mut self, key: (u64, u64)) -> Option<u64> {
        if let Some(&size) = self.mine.get(&key) {
            return Some(size);
        }
        let size = *self
            .all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)?;
        self.mine.insert(key, size);
        Some(size)
    }

    fn insert(&mut self, key: (u64, u64), size: u64) {
        self.mine.insert(key, size);
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, size);
    }
}

/// The files of one published tree, found by listing its directories: one
/// `getdents` pass per directory instead of a `stat` per file (63k package
/// files of a version are a few dozen system calls). A name's inode comes
/// from the listing; its size from [`Sizes`], or from one `stat` whose
/// inode must agree with the listing's (a filesystem whose listings carry
/// other numbers is then stat'ed file by file).
struct TreeFiles<'a, 's> {
    /// The version, as problems name it (`DIST/VERSION`).
    subject: &'a str,
    tree: &'a Path,
    opts: CheckOptions,
    /// Package files hashed (`--full`), shared by every checking thread.
    hashes: &'a Hashes,
    dev: Option<u64>,
    sizes: &'a mut Sizes<'s>,
    /// Directory (relative) → its regular files' inodes, `None` when it
    /// cannot be listed.
    dirs: FxHashMap<String, Option<Arc<Listing>>>,
    /// The listings of generation folders, for every version.
    generation_dirs: &'a SharedListings,
    /// Listing inodes proved unreliable here: stat every file.
    stat_each: bool,
    /// The version's file list ([`crate::promote::shared`]), `None` for a
    /// version without one.
    listed: Option<Listed>,
}

/// What check keeps of a version's file list: its header, and each path
/// with its digest (40 bytes a file, not the list's ~110).
struct Listed {
    header: crate::promote::shared::FileList,
    files: crate::promote::shared::PathHashes<Sha256Digest>,
}

/// A package file as [`TreeFiles`] finds it.
enum Found {
    Missing,
    Present { size: u64, key: (u64, u64) },
}

impl<'a, 's> TreeFiles<'a, 's> {
    fn new(
        (subject, tree): (&'a str, &'a Path),
        opts: CheckOptions,
        hashes: &'a Hashes,
        sizes: &'a mut Sizes<'s>,
        generation_dirs: &'a SharedListings,
    ) -> Self {
        Self {
            subject,
            opts,
            hashes,
            tree,
            dev: tree.metadata().ok().map(|m| m.dev()),
            sizes,
            dirs: FxHashMap::default(),
            generation_dirs,
            stat_each: false,
            listed: None,
        }
    }

    /// Reads the version's file list, reporting one it cannot read.
    fn read_list(&mut self, report: &mut CheckReport) {
        let mut files = crate::promote::shared::PathHashes::default();
        let header = crate::promote::shared::FileList::read_each(self.tree, |_, path, digest| {
            files.push(path, digest);
        });
        match header {
            Ok(header) => {
                let files = files.sorted();
                self.listed = header.map(|header| Listed { header, files });
            }
            Err(e) => report.problem(ProblemKind::FileList, self.subject, e.to_string()),
        }
    }

    /// The listing of folder `dir` of the tree; a folder of the
    /// generation comes from (or goes into) the listings all versions
    /// share.
    fn listing(&self, dir: &str) -> Option<Arc<Listing>> {
        let path = self.tree.join(dir);
        let shared = self
            .listed
            .as_ref()
            .is_some_and(|l| l.header.is_shared(&format!("{dir}/")));
        if !shared {
            return Listing::read(&path).map(Arc::new);
        }
        let meta = path.metadata().ok()?;
        let key = (meta.dev(), meta.ino());
        let lock = || {
            self.generation_dirs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        if let Some(listing) = lock().get(&key) {
            return Some(listing.clone());
        }
        let listing = Arc::new(Listing::read(&path)?);
        lock().insert(key, listing.clone());
        Some(listing)
    }

    fn find(&mut self, rel: &str) -> Found {
        let by_stat = |rel: &str| match self.tree.join(rel).metadata() {
            Ok(m) if m.is_file() => Found::Present {
                size: m.len(),
                key: (m.dev(), m.ino()),
            },
            _ => Found::Missing,
        };
        let (Some(dev), false) = (self.dev, self.stat_each) else {
            return by_stat(rel);
        };
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        // Looked up before inserting: a pool directory holds many files,
        // and its name is copied only for the first.
        if !self.dirs.contains_key(dir) {
            let listing = self.listing(dir);
            self.dirs.insert(dir.to_owned(), listing);
        }
        let Some(listing) = &self.dirs[dir] else {
            return by_stat(rel);
        };
        let Some(ino) = listing.get(name) else {
            // Not a regular file in the listing (absent, or a symlink or
            // another kind): stat tells which.
            return by_stat(rel);
        };
        if let Some(size) = self.sizes.get((dev, ino)) {
            return Found::Present {
                size,
                key: (dev, ino),
            };
        }
        let found = by_stat(rel);
        match found {
            Found::Present { size, key } if key == (dev, ino) => {
                self.sizes.insert(key, size);
            }
            // Replaced since the listing, or a filesystem whose listings
            // do not carry the inode number: trust only stat from here on.
            _ => self.stat_each = true,
        }
        found
    }
}

/// Listings of the folders of distributions' generations by (device,
/// inode): the versions of a generation share its folders
/// ([`crate::promote::shared`]), which are listed once, not per version.
type SharedListings = std::sync::Mutex<FxHashMap<(u64, u64), Arc<Listing>>>;

/// The regular files of a directory with their inode numbers, from the
/// listing alone. The names share one buffer, and the table holds
/// (offset, length, inode) hashed by name: a pool directory of 63k files
/// is then a few allocations rather than one per name, and each published
/// version lists its own.
struct Listing {
    names: String,
    table: hashbrown::HashTable<(u32, u32, u64)>,
}

impl Listing {
    fn read(dir: &Path) -> Option<Self> {
        use std::os::unix::fs::DirEntryExt;
        let mut this = Self {
            names: String::new(),
            table: hashbrown::HashTable::new(),
        };
        for e in std::fs::read_dir(dir).ok()? {
            let e = e.ok()?;
            if e.file_type().ok()?.is_file()
                && let Ok(name) = e.file_name().into_string()
            {
                let (Ok(off), Ok(len)) =
                    (u32::try_from(this.names.len()), u32::try_from(name.len()))
                else {
                    // Names past 4 GiB: let the caller stat instead.
                    return None;
                };
                this.names.push_str(&name);
                let names = &this.names;
                let name_at = |&(o, l, _): &(u32, u32, u64)| &names[o as usize..(o + l) as usize];
                this.table
                    .insert_unique(hash_name(&name), (off, len, e.ino()), |v| {
                        hash_name(name_at(v))
                    });
            }
        }
        Some(this)
    }

    /// The inode of regular file `name`, if listed.
    fn get(&self, name: &str) -> Option<u64> {
        self.table
            .find(hash_name(name), |&(o, l, _)| {
                &self.names[o as usize..(o + l) as usize] == name
            })
            .map(|&(_, _, ino)| ino)
    }
}

fn hash_name(name: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(name)
}

/// Checks one package file of a published tree.
fn package_file(
    files: &mut TreeFiles<'_, '_>,
    rel: &str,
    expected: Expected,
    report: &mut CheckReport,
) {
    let (subject, opts, hashes) = (files.subject, files.opts, files.hashes);
    report.package_files += 1;
    if let Some(listed) = &files.listed
        && listed.files.get(rel) != Some(expected.sha256)
    {
        report.problem(
            ProblemKind::FileList,
            subject,
            format!("{rel} is not in the version's file list with its index's SHA-256"),
        );
    }
    let Found::Present { size, key } = files.find(rel) else {
        report.problem(
            ProblemKind::MissingPackage,
            subject,
            format!("{rel} is missing"),
        );
        return;
    };
    if size != expected.size {
        report.problem(
            ProblemKind::PackageSize,
            subject,
            format!("{rel} has {size} bytes, its index says {}", expected.size),
        );
        return;
    }
    if opts.full && hashes.of(&files.tree.join(rel), key) != Some(expected.sha256) {
        report.problem(
            ProblemKind::PackageChecksum,
            subject,
            format!(
                "{rel} does not have the SHA-256 its index lists ({})",
                expected.sha256
            ),
        );
    }
}

fn find_release_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            if e.file_name() != "by-hash" {
                find_release_files(&path, out);
            }
        } else if e.file_name() == "Release" {
            out.push(path);
        }
    }
}

fn apt_version(files: &mut TreeFiles<'_, '_>, report: &mut CheckReport) {
    let (subject, opts) = (files.subject, files.opts);
    let tree = files.tree;
    let mut releases = Vec::new();
    find_release_files(&tree.join("dists"), &mut releases);
    if releases.is_empty() {
        report.problem(
            ProblemKind::MissingIndex,
            subject,
            "no dists/SUITE/Release".into(),
        );
    }
    for release in releases {
        let dir = release.parent().unwrap_or(tree);
        let rel_dir = dir.strip_prefix(tree).unwrap_or(dir).display().to_string();
        let parsed = std::fs::read_to_string(&release)
            .ok()
            .and_then(|t| aptfmt::Release::parse(&t).ok());
        let Some(parsed) = parsed else {
            report.problem(
                ProblemKind::MissingIndex,
                subject,
                format!("{rel_dir}/Release cannot be read"),
            );
            continue;
        };
        for (path, expected) in &parsed.sha256 {
            let plain = crate::formats::compress::Compression::from_path(path)
                == crate::formats::compress::Compression::None;
            let index = plain && (path.ends_with("Packages") || path.ends_with("Sources"));
            let rel = format!("{rel_dir}/{path}");
            let file = dir.join(path);
            let hash = (plain || opts.full) && !index;
            if listed_file(&file, &rel, *expected, hash, subject, report) && index {
                scan_index(files, &file, &rel, *expected, report);
            }
        }
    }
}

fn rpm_version(files: &mut TreeFiles<'_, '_>, report: &mut CheckReport) {
    let subject = files.subject;
    let tree = files.tree;
    use crate::formats::rpm;
    let records = std::fs::read_to_string(tree.join("repodata/repomd.xml"))
        .ok()
        .and_then(|t| rpm::parse_repomd(&t).ok());
    let Some(records) = records else {
        report.problem(
            ProblemKind::MissingIndex,
            subject,
            "repodata/repomd.xml cannot be read".into(),
        );
        return;
    };
    for r in records {
        let Ok(sha256) = r.checksum.parse::<Sha256Digest>() else {
            report.problem(
                ProblemKind::IndexMismatch,
                subject,
                format!("{}: no SHA-256 checksum", r.href),
            );
            continue;
        };
        let path = tree.join(&r.href);
        let size = r
            .size
            .or_else(|| path.metadata().ok().map(|m| m.len()))
            .unwrap_or(0);
        let expected = Expected { size, sha256 };
        let primary = r.mdtype == "primary";
        if !listed_file(&path, &r.href, expected, !primary, subject, report) || !primary {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            report.problem(
                ProblemKind::MissingIndex,
                subject,
                format!("cannot read {}", r.href),
            );
            continue;
        };
        if !listed_digest(&r.href, Sha256Digest::of(&bytes), expected, subject, report) {
            continue;
        }
        let text = crate::formats::compress::decompress_named(&r.href, &bytes)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let parsed = text.as_deref().and_then(|t| rpm::parse_primary(t).ok());
        let Some((_, packages)) = parsed else {
            report.problem(
                ProblemKind::IndexMismatch,
                subject,
                format!("{} cannot be parsed", r.href),
            );
            continue;
        };
        for p in packages {
            let Ok(sha256) = p.sha256.parse() else {
                report.problem(
                    ProblemKind::IndexMismatch,
                    subject,
                    format!("{}: `{}` has no SHA-256 checksum", r.href, p.name),
                );
                continue;
            };
            let expected = Expected {
                size: p.size,
                sha256,
            };
            package_file(files, &p.href, expected, report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks end after an empty line, cover the file in order, carry the
    /// right first line numbers (a paragraph longer than a block
    /// included), and the digest is the whole file's.
    #[test]
    fn paragraph_blocks_split_only_between_paragraphs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Packages");
        let long: String = (0..40).map(|i| format!(" line {i}\n")).collect();
        let text = format!(
            "Package: a\nVersion: 1\n\nPackage: b\nDescription: x\n{long}\nPackage: c\nVersion: 2\n"
        );
        std::fs::write(&path, &text).unwrap();
        let mut seen = Vec::new();
        let digest = paragraph_blocks(&path, 16, |block, line| {
            seen.push((String::from_utf8(block.to_vec()).unwrap(), line));
        })
        .unwrap();
        assert_eq!(digest, Sha256Digest::of(text.as_bytes()));
        let joined: String = seen.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(joined, text);
        for (block, _) in &seen[..seen.len() - 1] {
            assert!(block.ends_with("\n\n"), "{block:?}");
        }
        for (block, line) in &seen {
            let first = block.lines().next().unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines[line - 1], first, "block {block:?} says line {line}");
        }
        assert!(seen.iter().any(|(b, _)| b.contains("line 39")));
        // The scanner's line numbers follow: `c` is on line 47.
        let (last, line) = seen.last().unwrap();
        let p = crate::formats::deb822::paragraphs_from(last, *line)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!((p.get("Package"), p.line), (Some("c"), 47));
    }
}
