//! `depot publish`: a snapshot becomes `DIR/DIST/VERSION/`, a complete
//! repository (apt: [`super::publish_apt`], rpm: [`super::publish_rpm`]).
//! Package files are hardlinked from the content pool (copied across
//! filesystems); metadata is spliced from the snapshot's stored indices,
//! never re-serialised. The version is built in a hidden staging folder,
//! renamed into place, and only then does `DIR/DIST/dev` switch to it.
//!
//! This module owns writing new versions under a publish root; it never
//! changes or removes a published version, and leaves version records and
//! stage moves other than `dev` to `dist.rs`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use jiff::Timestamp;
use serde::Serialize;
use url::Url;

use crate::content::Content;
use crate::digest::{Expected, Sha256Digest};
use crate::formats::apt::AptFormatError;
use crate::formats::compress::Compression;
use crate::http::{FetchError, Fetcher};
use crate::lock::{LockError, ObjectLock, Wait};
use crate::names::InvalidName;
use crate::pool::{Pool, PoolError};
use crate::report::{Event, Reporter};
use crate::root::{PublishRoot, Root};
use crate::signing::{Signer, SigningError};
use crate::snapshot::SnapshotError;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("invalid suite `{0}`")]
    InvalidSuite(String),
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("distribution `{dist}`: cannot read an index of the snapshot")]
    Index {
        dist: String,
        #[source]
        source: crate::packages::catalog::CatalogError,
    },
    #[error("distribution `{dist}`: cannot read from the pool")]
    Pool {
        dist: String,
        #[source]
        source: PoolError,
    },
    #[error("distribution `{dist}`: a package file is missing and could not be fetched")]
    Fetch {
        dist: String,
        #[source]
        source: Box<FetchError>,
    },
    #[error("distribution `{dist}`: an index of the snapshot is malformed")]
    Malformed {
        dist: String,
        #[source]
        source: AptFormatError,
    },
    #[error("distribution `{dist}`: the snapshot's rpm metadata is malformed")]
    MalformedRpm {
        dist: String,
        #[source]
        source: crate::formats::rpm::RpmFormatError,
    },
    #[error("distribution `{dist}`: {path} would hold two different files")]
    Conflict { dist: String, path: String },
    #[error("distribution `{dist}`: cannot record the new version")]
    Record {
        dist: String,
        #[source]
        source: Box<super::dist::DistError>,
    },
    #[error("distribution `{dist}`: signing failed")]
    Signing {
        dist: String,
        #[source]
        source: SigningError,
    },
}

/// Options of `depot publish`.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub snapshot: String,
    pub dist: String,
    /// `Suite`/`Codename` of the published Release; default: upstream's.
    pub suite: Option<String>,
    /// Compressed copies of each index (apt: beside the uncompressed one;
    /// rpm: the first is used). Empty means the format's default: apt
    /// `gz,xz`, rpm `gz`.
    pub compress: Vec<Compression>,
    /// The publish root; default `public/` in the data root.
    pub to: Option<PathBuf>,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishSummary {
    pub dist: String,
    pub version: String,
    pub path: PathBuf,
    /// apt only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    pub packages: usize,
    pub signed: bool,
    /// Package files fetched now because the mirror defers downloads.
    pub fetched_on_demand: usize,
    /// SHA-256 of the top-level metadata (Release, repomd.xml).
    pub release_sha256: Sha256Digest,
}

pub(super) struct Writer<'a> {
    pub dist: &'a str,
    pub stage: PathBuf,
    pool: &'a Pool,
    made_dirs: HashSet<PathBuf>,
    linked: rustc_hash::FxHashMap<String, Sha256Digest>,
    /// Links planned by [`Writer::link`] and not yet handed to a worker.
    pending: Vec<(String, Sha256Digest)>,
    /// Inside [`Writer::with_links`]: the link workers' queues.
    workers: Vec<std::sync::mpsc::Sender<Vec<(String, Sha256Digest)>>>,
    next_worker: usize,
}

/// Links are handed to workers in batches of this many.
const LINK_BATCH: usize = 2048;

impl Writer<'_> {
    pub fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> PublishError {
        let path = path.to_owned();
        move |source| PublishError::Io { path, source }
    }

    pub fn ensure_dir(&mut self, dir: &Path) -> Result<(), PublishError> {
        if !self.made_dirs.contains(dir) {
            std::fs::create_dir_all(dir).map_err(self.io(dir))?;
            self.made_dirs.insert(dir.to_owned());
        }
        Ok(())
    }

    /// Plans a link of pool blob `digest` at `rel` (relative to the version
    /// root), refusing two different files at one path.
    pub fn link(&mut self, rel: &str, digest: Sha256Digest) -> Result<(), PublishError> {
        if let Some(existing) = self.linked.get(rel) {
            if *existing == digest {
                return Ok(());
            }
            return Err(PublishError::Conflict {
                dist: self.dist.to_owned(),
                path: rel.to_owned(),
            });
        }
        self.linked.insert(rel.to_owned(), digest);
        self.pending.push((rel.to_owned(), digest));
        if self.pending.len() >= LINK_BATCH {
            self.hand_off();
        }
        Ok(())
    }

    /// Gives the pending links to the next worker (if workers run).
    fn hand_off(&mut self) {
        if self.workers.is_empty() || self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let i = self.next_worker % self.workers.len();
        self.next_worker += 1;
        // A worker that stopped has failed; its error is reported on join.
        let _ = self.workers[i].send(batch);
    }

    /// Runs `f` (typically compressing indices) while another thread makes
    /// the planned links: the two are publishing's biggest costs and use
    /// different resources (CPU vs metadata I/O).
    pub fn with_links<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, PublishError>,
    ) -> Result<T, PublishError> {
        let (stage, pool, dist) = (self.stage.clone(), self.pool, self.dist);
        std::thread::scope(|s| {
            // One worker per core, fed batches while `f` still plans links
            // (rewriting indices) and then compresses: link(2) calls in
            // different directories proceed in parallel in the kernel.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut handles = Vec::new();
            for _ in 0..cores {
                let (tx, rx) = std::sync::mpsc::channel::<Vec<(String, Sha256Digest)>>();
                self.workers.push(tx);
                let stage = &stage;
                handles.push(s.spawn(move || {
                    let mut linker = Linker::new(dist, stage, pool)?;
                    for batch in rx {
                        linker.link_all(&batch)?;
                    }
                    Ok::<(), PublishError>(())
                }));
            }
            self.hand_off();
            let result = f(self);
            self.hand_off();
            self.workers.clear();
            for h in handles {
                h.join().expect("link workers do not panic")?;
            }
            result
        })
    }

    pub fn write_file(&mut self, rel: &str, bytes: &[u8]) -> Result<(), PublishError> {
        let dst = self.stage.join(rel);
        if let Some(parent) = dst.parent() {
            self.ensure_dir(parent)?;
        }
        std::fs::write(&dst, bytes).map_err(self.io(&dst))
    }
}

/// The client certificate to fetch on-demand files with: that of the
/// mirror the snapshot was taken from (through filters of it), when the
/// mirror still exists (an upstream behind another depot's x509 guard).
/// Releases and local repos fetch without one.
fn client_tls(root: &Root, snapshot: &crate::snapshot::Snapshot) -> crate::http::ClientTls {
    use crate::snapshot::Origin;
    let mut origin = snapshot.origin.clone();
    for _ in 0..64 {
        match origin {
            Origin::Mirror { name, .. } => {
                return crate::mirror::load(root, &name)
                    .map(|def| def.client_tls())
                    .unwrap_or_default();
            }
            Origin::Filter { from, .. } => match crate::snapshot::load_any(root, &from) {
                Ok((_, s)) => origin = s.origin,
                Err(_) => break,
            },
            _ => break,
        }
    }
    crate::http::ClientTls::default()
}

async fn fetch_missing(
    dist: &str,
    pool: &Pool,
    missing: &[(Url, Expected)],
    tls: &crate::http::ClientTls,
    reporter: &dyn Reporter,
) -> Result<(), PublishError> {
    let fetch_err = |source| PublishError::Fetch {
        dist: dist.to_owned(),
        source: Box::new(source),
    };
    let fetcher = Fetcher::with_tls(tls).map_err(fetch_err)?;
    reporter.report(Event::DownloadsPlanned {
        subject: dist,
        files: missing.len() as u64,
        bytes: missing.iter().map(|(_, e)| e.size).sum(),
    });
    let results: Vec<Result<(), FetchError>> = futures_util::stream::iter(missing)
        .map(|(url, expected)| {
            let fetcher = &fetcher;
            async move {
                fetcher
                    .download_to_pool(url, expected, pool, reporter)
                    .await?;
                reporter.report(Event::FileDone);
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    reporter.report(Event::DownloadsFinished);
    results
        .into_iter()
        .collect::<Result<(), _>>()
        .map_err(fetch_err)
}

/// Makes links relative to open directory handles — `linkat(pool,
/// "ab/HASH", dir, NAME)` — so the kernel walks two short paths per
/// file instead of two absolute ones.
struct Linker<'a> {
    dist: &'a str,
    stage: &'a Path,
    pool: &'a Pool,
    pool_fd: rustix::fd::OwnedFd,
    dirs: rustc_hash::FxHashMap<String, rustix::fd::OwnedFd>,
}

fn open_dir(path: &Path) -> Result<rustix::fd::OwnedFd, PublishError> {
    use rustix::fs::{Mode, OFlags, openat};
    openat(
        rustix::fs::CWD,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| PublishError::Io {
        path: path.to_owned(),
        source: e.into(),
    })
}

impl<'a> Linker<'a> {
    fn new(dist: &'a str, stage: &'a Path, pool: &'a Pool) -> Result<Self, PublishError> {
        Ok(Self {
            dist,
            stage,
            pool,
            pool_fd: open_dir(pool.dir())?,
            dirs: rustc_hash::FxHashMap::default(),
        })
    }

    fn link_all(&mut self, batch: &[(String, Sha256Digest)]) -> Result<(), PublishError> {
        use rustix::fs::{AtFlags, linkat};
        for (rel, digest) in batch {
            let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            if !self.dirs.contains_key(dir) {
                let path = self.stage.join(dir);
                std::fs::create_dir_all(&path).map_err(|source| PublishError::Io {
                    path: path.clone(),
                    source,
                })?;
                self.dirs.insert(dir.to_owned(), open_dir(&path)?);
            }
            let dir_fd = &self.dirs[dir];
            let source = Pool::relative_path(digest);
            let source = std::ffi::CStr::from_bytes_with_nul(&source).expect("one NUL, at the end");
            match linkat(&self.pool_fd, source, dir_fd, name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(rustix::io::Errno::NOENT) => {
                    return Err(PublishError::Pool {
                        dist: self.dist.to_owned(),
                        source: PoolError::Missing {
                            digest: *digest,
                            path: self.pool.path(digest),
                        },
                    });
                }
                Err(_) => {
                    // Another filesystem (EXDEV) or no hardlinks: copy.
                    let dst = self.stage.join(rel);
                    crate::fsutil::link_or_copy(&self.pool.path(digest), &dst)
                        .map_err(|source| PublishError::Io { path: dst, source })?;
                }
            }
        }
        Ok(())
    }
}

pub(super) fn rfc2822(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

enum Prepared {
    Apt(super::publish_apt::Prepared),
    Rpm(super::publish_rpm::Prepared),
}

/// `depot publish SNAPSHOT --dist DIST`.
pub async fn publish(
    root: &Root,
    opts: &PublishOptions,
    signer: Option<&dyn Signer>,
    reporter: &dyn Reporter,
) -> Result<PublishSummary, PublishError> {
    crate::names::validate("distribution", &opts.dist)?;
    let (_, snapshot) = crate::snapshot::load_any(root, &opts.snapshot)?;
    let content = &snapshot.content;
    let dist = opts.dist.as_str();
    let publish_root = opts
        .to
        .clone()
        .map_or_else(|| root.default_publish_root(), PublishRoot::new);
    let dist_dir = publish_root.dist_dir(dist);
    std::fs::create_dir_all(&dist_dir).map_err(|source| PublishError::Io {
        path: dist_dir.clone(),
        source,
    })?;
    let _lock = ObjectLock::acquire(root, "dist", dist, Wait::Yes)?;

    let catalogs = crate::packages::catalog::Cache::new(root);
    let pool = catalogs.pool();
    let prepared = match content {
        Content::Apt(a) => Prepared::Apt(super::publish_apt::prepare(
            &catalogs,
            dist,
            a,
            opts,
            snapshot.complete,
        )?),
        Content::Rpm(r) => Prepared::Rpm(super::publish_rpm::prepare(
            pool,
            dist,
            r,
            snapshot.complete,
        )?),
    };
    let missing = match &prepared {
        Prepared::Apt(p) => &p.missing,
        Prepared::Rpm(p) => &p.missing,
    };
    let fetched_on_demand = missing.len();
    if !missing.is_empty() {
        reporter.report(Event::Phase {
            subject: dist,
            message: "fetching package files on demand",
        });
        let tls = client_tls(root, &snapshot);
        fetch_missing(dist, pool, missing, &tls, reporter).await?;
    }

    // A version name is a second-resolution timestamp; two publishes of one
    // distribution within a second get consecutive seconds.
    let mut when = opts.now;
    let mut version = when.strftime("%Y%m%dT%H%M%SZ").to_string();
    while publish_root.version_dir(dist, &version).exists() {
        when = when
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap_or(when);
        version = when.strftime("%Y%m%dT%H%M%SZ").to_string();
    }
    let stage = publish_root.partial_dir(dist, &version, std::process::id());
    let _ = std::fs::remove_dir_all(&stage);
    reporter.report(Event::Phase {
        subject: dist,
        message: "writing indices",
    });
    let mut w = Writer {
        dist,
        stage: stage.clone(),
        pool,
        made_dirs: HashSet::new(),
        linked: rustc_hash::FxHashMap::with_capacity_and_hasher(
            content.package_count(),
            Default::default(),
        ),
        pending: Vec::new(),
        workers: Vec::new(),
        next_worker: 0,
    };
    let result = match &prepared {
        Prepared::Apt(p) => super::publish_apt::write_version(&mut w, opts, p, when, signer),
        Prepared::Rpm(p) => super::publish_rpm::write_version(&mut w, opts, p, when, signer),
    };
    let release_sha256 = match result {
        Ok(sha) => sha,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&stage);
            return Err(e);
        }
    };
    let final_dir = publish_root.version_dir(dist, &version);
    std::fs::rename(&stage, &final_dir).map_err(|source| PublishError::Io {
        path: final_dir.clone(),
        source,
    })?;
    let dev = publish_root.stage_link(dist, super::dist::Stage::Dev.name());
    crate::fsutil::switch_symlink(Path::new(&version), &dev).map_err(|source| {
        PublishError::Io {
            path: dev.clone(),
            source,
        }
    })?;
    let entry = crate::audit::AuditEntry {
        time: opts.now,
        user: crate::audit::current_user(),
        action: "publish",
        dist,
        version: &version,
        from: &snapshot.name,
        to: "dev",
        digest: release_sha256.to_hex(),
    };
    crate::audit::append(root, &entry).map_err(|source| PublishError::Io {
        path: root.audit_log(),
        source,
    })?;
    super::dist::record_publish(
        root,
        dist,
        publish_root.path(),
        &super::dist::VersionRecord {
            version: version.clone(),
            published: opts.now,
            source: snapshot.name.clone(),
            digest: release_sha256,
            released: None,
            withdrawn: None,
        },
    )
    .map_err(|e| PublishError::Record {
        dist: dist.to_owned(),
        source: Box::new(e),
    })?;
    Ok(PublishSummary {
        dist: dist.to_owned(),
        version,
        path: final_dir,
        suite: match &prepared {
            Prepared::Apt(p) => Some(p.suite.clone()),
            Prepared::Rpm(_) => None,
        },
        components: content.components(),
        architectures: content.architectures(),
        packages: content.package_count(),
        signed: signer.is_some(),
        fetched_on_demand,
        release_sha256,
    })
}
