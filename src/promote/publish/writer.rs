//! Writing one version's tree: a hidden staging folder, files and links
//! into it (hardlinks to pool blobs, made in batches on worker threads
//! relative to open directory handles), and the atomic rename into place.
//! It knows nothing of apt or rpm.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::options::PublishError;
use crate::digest::Sha256Digest;
use crate::pool::{Pool, PoolError};

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

impl<'a> Writer<'a> {
    /// A writer of the staging folder `stage`, linking from `pool`, for
    /// about `files` package files.
    pub fn new(dist: &'a str, stage: PathBuf, pool: &'a Pool, files: usize) -> Self {
        Self {
            dist,
            stage,
            pool,
            made_dirs: HashSet::new(),
            linked: rustc_hash::FxHashMap::with_capacity_and_hasher(files, Default::default()),
            pending: Vec::new(),
            workers: Vec::new(),
            next_worker: 0,
        }
    }

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
            let cores = crate::fsutil::cores();
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
