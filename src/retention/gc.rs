//! `depot gc`: deletes what nothing references — pool blobs (packages,
//! indices, selections, rpm metadata), catalogs of indices no longer
//! pooled, `cache/rpm-verified` entries of packages no longer pooled —
//! and temp files that killed processes left behind.
//!
//! **Why it is safe while writers run.** gc holds the pool's lock
//! exclusively ([`crate::lock::PoolGuard`]) for its whole mark and sweep;
//! every command that pools a blob or records a state or manifest naming
//! blobs (`mirror update`, `repo add`, `snapshot create`/`filter`,
//! `release create`, `publish`) holds it shared from before it first
//! looks at the pool until its state, manifest or version is saved. So
//! every blob gc can see is either named by a saved root or garbage: a
//! writer cannot be between "found it pooled" and "recorded it". A grace
//! period on blob age (Pulp's 24 hours) would not be enough on its own:
//! a writer may reuse an old blob that was unreferenced a moment ago.
//! gc waits for running writers, and writers that start meanwhile wait
//! for gc (a turnstile keeps a stream of writers from starving it); the
//! mark reads each distinct index once, so gc is short.
//!
//! **Memory** is one set of referenced digests (32 bytes each) and the
//! set of index parts walked: bounded by the distinct blobs, not by
//! snapshots × packages.
//!
//! A `kill -9` at any point leaves a consistent root: every deletion is
//! one `unlink` of something unreferenced, and a rerun finishes the work.
//! Drops of published versions that a killed process left half done are
//! finished first (see [`crate::promote::dist::finish_interrupted_drops`]).
//!
//! Meanwhile, on a thread of its own, each distribution's generations
//! ([`crate::promote::shared`]) lose the files no version folder lists,
//! under the distribution's lock (a publish adds to a generation only
//! under it); a generation that no version uses goes whole. That thread
//! never takes the pool's lock, and gc waits for it only after letting
//! the pool's go: publishes take a distribution's lock, then the pool's.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rustc_hash::FxHashSet;
use serde::Serialize;

use super::{RetentionError, io};
use crate::digest::Sha256Digest;
use crate::lock::{ObjectLock, PoolGuard, Wait};
use crate::root::{PublishRoot, Root};

/// Options of `depot gc`.
#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    pub now: Timestamp,
}

/// What `depot gc` deleted (or would delete).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Pool blobs deleted.
    pub blobs: usize,
    /// Bytes freed: blobs whose last link went, catalogs, temp files.
    pub bytes: u64,
    /// Bytes of deleted blobs that published versions still hold (freed
    /// when those versions are dropped).
    pub bytes_still_published: u64,
    /// Pool blobs kept (referenced).
    pub kept_blobs: usize,
    pub catalogs: usize,
    pub rpm_verified_entries: usize,
    pub temp_files: usize,
    /// Files of distributions' generations that no version lists.
    pub shared_files: usize,
    /// Generations that no version uses (deleted whole).
    pub generations: usize,
    /// Version drops a killed process had left half done, finished now.
    pub finished_drops: Vec<String>,
}

fn remove(path: &Path, dry_run: bool) -> Result<bool, RetentionError> {
    if dry_run {
        return Ok(true);
    }
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(path)(e)),
    };
    let result = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

/// Threads that unlink doomed files. An unlink that frees a file's last
/// link waits on the device more than it computes: on a filesystem
/// mounted with `discard` (common on cloud disks) ext4 trims the freed
/// extents before `unlink` returns, and on a network filesystem each is a
/// round trip. More threads than cores, each mostly asleep, keep the
/// device busy: measured after a prune of 23 nights (15k blobs) on this
/// project's benchmark disk, 2 threads took 1.3-1.5 s, 16 took 0.7 s,
/// 32 took 0.6 s and 64 no less.
const SWEEP_THREADS: usize = 32;

/// Deletes the doomed files (pool blobs and catalogs) on
/// [`SWEEP_THREADS`] threads; returns, in `doomed`'s order, the size and
/// link count of each file deleted (or, with `dry_run`, that would be),
/// or `None` for one that was already gone.
fn sweep(doomed: &[PathBuf], dry_run: bool) -> Result<Vec<Option<(u64, u64)>>, RetentionError> {
    crate::fsutil::on_threads(doomed, SWEEP_THREADS, |path| sweep_one(path, dry_run))
}

fn sweep_one(path: &Path, dry_run: bool) -> Result<Option<(u64, u64)>, RetentionError> {
    // Listed as a regular file; gone since: another gc.
    let Ok(meta) = path.symlink_metadata() else {
        return Ok(None);
    };
    if !dry_run {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        }
    }
    Ok(Some((meta.len(), meta.nlink())))
}

fn pid_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Bytes under `path` (a file or a folder).
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = path.symlink_metadata() else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|es| es.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

/// `depot gc [--dry-run]`.
pub fn gc(root: &Root, opts: &GcOptions) -> Result<GcReport, RetentionError> {
    let mut report = GcReport {
        dry_run: opts.dry_run,
        ..GcReport::default()
    };
    if !opts.dry_run {
        report.finished_drops = crate::promote::dist::finish_interrupted_drops(root, opts.now)?;
    }
    // The generations on a thread of their own while the pool is marked
    // and swept: other folders, and both mostly waiting on the kernel.
    // Publishes take a distribution's lock, then the pool's: that thread
    // takes only distributions' locks, and this one waits for it only
    // once it has let the pool's go (the end of `pool`).
    let (generations, pooled) = std::thread::scope(|s| {
        let generations = s.spawn(|| {
            let mut part = GcReport::default();
            shared_files(root, opts, &mut part).map(|()| part)
        });
        let pooled = pool(root, opts, &mut report);
        (generations.join(), pooled)
    });
    pooled?;
    let generations = generations.expect("gc's generation thread does not panic")?;
    report.shared_files = generations.shared_files;
    report.generations = generations.generations;
    report.bytes += generations.bytes;
    Ok(report)
}

/// Marks and sweeps the pool, the catalogs, the rpm-verified lists and
/// the temp files, under the pool's lock.
fn pool(root: &Root, opts: &GcOptions, report: &mut GcReport) -> Result<(), RetentionError> {
    let _guard = PoolGuard::collector(root, Wait::Yes)?;
    let marks = super::referenced(root, &|_| false)?;

    // The pool, then the catalogs (`cache/catalog/ab/<sha>.<deb|src|rpm>`,
    // one per index blob), in one sweep.
    let mut doomed = Vec::new();
    crate::pool::Pool::new(root).walk(&mut |digest, path| {
        if marks.contains(&digest) {
            report.kept_blobs += 1;
        } else {
            doomed.push(path.to_owned());
        }
    })?;
    let blobs = doomed.len();
    let catalogs = root.catalog_cache_dir();
    for dir in std::fs::read_dir(&catalogs).into_iter().flatten().flatten() {
        for e in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let digest: Option<Sha256Digest> =
                name.split_once('.').and_then(|(hex, _)| hex.parse().ok());
            let garbage = match digest {
                Some(d) => !marks.contains(&d),
                None => stale_temp(&e.path(), &name, opts.now),
            };
            if !garbage {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_file()) {
                doomed.push(e.path());
            } else {
                // Not something depot writes there: removed as found.
                let len = size_of(&e.path());
                if remove(&e.path(), opts.dry_run)? {
                    report.catalogs += 1;
                    report.bytes += len;
                }
            }
        }
    }
    for (i, gone) in sweep(&doomed, opts.dry_run)?.into_iter().enumerate() {
        let Some((len, links)) = gone else {
            continue;
        };
        if i >= blobs {
            report.catalogs += 1;
            report.bytes += len;
        } else {
            report.blobs += 1;
            if links <= 1 {
                report.bytes += len;
            } else {
                report.bytes_still_published += len;
            }
        }
    }

    // `cache/rpm-verified/<keyring>`: lists of package digests.
    let verified = root.rpm_verified_dir();
    for e in std::fs::read_dir(&verified).into_iter().flatten().flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            if stale_temp(&path, &name, opts.now) && remove(&path, opts.dry_run)? {
                report.temp_files += 1;
            }
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let keep: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| {
                l.trim()
                    .parse::<Sha256Digest>()
                    .is_ok_and(|d| marks.contains(&d))
            })
            .collect();
        let gone = lines.len() - keep.len();
        if gone == 0 {
            continue;
        }
        report.rpm_verified_entries += gone;
        if opts.dry_run {
            continue;
        }
        if keep.is_empty() {
            remove(&path, false)?;
        } else {
            let mut text = keep.join("\n");
            text.push('\n');
            crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(io(&path))?;
        }
    }

    temp_files(root, opts, report)?;
    Ok(())
}

/// The files of distributions' generations that no version lists, and
/// the generations no version uses ([`crate::promote::shared`]), each
/// distribution under its lock.
fn shared_files(
    root: &Root,
    opts: &GcOptions,
    report: &mut GcReport,
) -> Result<(), RetentionError> {
    use crate::promote::shared;
    for d in crate::promote::dist::list(root)? {
        let _lock = ObjectLock::acquire(root, "dist", &d.name, Wait::Yes)?;
        let dir = PublishRoot::new(&d.publish_root).dist_dir(&d.name);
        let versions = shared::version_folders(&dir).map_err(io(&dir))?;
        let unneeded = shared::unneeded(&dir, &versions).map_err(io(&dir))?;
        for (len, links) in sweep(&unneeded.files, opts.dry_run)?.into_iter().flatten() {
            report.shared_files += 1;
            if links <= 1 {
                report.bytes += len;
            }
        }
        for g in &unneeded.generations {
            remove(g, opts.dry_run)?;
        }
        report.generations += unneeded.generations.len();
    }
    Ok(())
}

/// A `.tmp-…` file of an atomic write, old enough that its writer is
/// surely gone (the stores' writers do not hold the pool's lock).
fn stale_temp(path: &Path, name: &str, now: Timestamp) -> bool {
    const AGE: i64 = 3600;
    name.starts_with(".tmp-")
        && path
            .symlink_metadata()
            .is_ok_and(|m| now.as_second() - m.mtime() > AGE)
}

/// The pid in `PREFIX<pid>` followed by `-` or the end.
fn pid_after(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    rest.split(['-', '.']).next()?.parse().ok()
}

/// Temp files of processes that are gone: downloads in `tmp/`, atomic
/// writes in the stores, half-written versions and stage switches in
/// publish roots.
fn temp_files(root: &Root, opts: &GcOptions, report: &mut GcReport) -> Result<(), RetentionError> {
    let mut doomed: Vec<PathBuf> = Vec::new();
    // tmp/: only pool writers stage here, and none runs now (the lock);
    // a live pid is spared anyway, in case of a writer that took no lock.
    for e in std::fs::read_dir(root.tmp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !pid_after(&name, "dl-").is_some_and(pid_alive) {
            doomed.push(e.path());
        }
    }
    let mut store_dirs = vec![
        root.mirrors_dir(),
        root.repos_dir(),
        root.snapshots_dir(),
        root.releases_dir(),
        root.guards_dir(),
        root.dists_dir(),
    ];
    let mut publish_roots = FxHashSet::default();
    if let Ok(dists) = crate::promote::dist::list(root) {
        for d in dists {
            store_dirs.push(root.dist_dir(&d.name));
            publish_roots.insert((d.publish_root.clone(), d.name.clone()));
        }
    }
    for dir in store_dirs {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if stale_temp(&e.path(), &name, opts.now) {
                doomed.push(e.path());
            }
        }
    }
    for (publish_root, dist) in publish_roots {
        let dir = PublishRoot::new(publish_root).dist_dir(&dist);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hidden) = name.strip_prefix('.') else {
                continue;
            };
            // `.VERSION.partial-PID/` and `.STAGE.tmp-PID` of dead writers.
            let pid = hidden
                .rsplit_once(".partial-")
                .or_else(|| hidden.rsplit_once(".tmp-"))
                .and_then(|(_, pid)| pid.parse::<u32>().ok());
            if pid.is_some_and(|p| !pid_alive(p)) {
                doomed.push(e.path());
            }
        }
    }
    for path in doomed {
        let len = size_of(&path);
        if remove(&path, opts.dry_run)? {
            report.temp_files += 1;
            report.bytes += len;
        }
    }
    Ok(())
}
