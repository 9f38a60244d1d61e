//! Writing one version's tree: a hidden staging folder, files and links
//! into it (hardlinks to pool blobs, made in batches on worker threads
//! relative to open directory handles), and the atomic rename into place.
//! With a [`Share`], package files go into the distribution's generation
//! instead, and only those the previous version lacks are linked (see
//! [`crate::promote::shared`]). It knows nothing of apt or rpm.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::options::PublishError;
use crate::digest::Sha256Digest;
use crate::pool::{Pool, PoolError};
use crate::promote::shared::{FileList, LIST, PathMap, top_folder};

pub(super) struct Writer<'a> {
    pub dist: &'a str,
    pub stage: PathBuf,
    pool: &'a Pool,
    made_dirs: HashSet<PathBuf>,
    /// Every file linked so far, in the order linked.
    linked: PathMap,
    /// Links planned by [`Writer::link`] and not yet handed to a worker.
    pending: Vec<Link>,
    /// Inside [`Writer::with_links`]: the link workers' queues.
    workers: Vec<std::sync::mpsc::Sender<Vec<Link>>>,
    next_worker: usize,
    share: Option<Share>,
    /// Whether the file list was taken ([`Writer::take_list`]).
    listed: bool,
    /// The file list, being written by [`Writer::finish_early`].
    list_writer: Option<std::thread::JoinHandle<Result<(), PublishError>>>,
}

/// A planned link: path in the version, blob, and whether it goes into
/// the generation (else into the staging folder).
type Link = (String, Sha256Digest, bool);

/// Package files go into a generation of the distribution.
pub(super) struct Share {
    /// The generation's folder (`DIR/DIST/.pool-G`) and name.
    pub dir: PathBuf,
    pub name: String,
    /// The previous version's list: what the generation holds for it
    /// (empty in a new generation).
    pub previous: FileList,
    /// Top-level folders of metadata, never shared (`dists`, `repodata`).
    pub metadata: &'static [&'static str],
    /// The shared top-level folders used so far (a few).
    used: Vec<String>,
    /// Where in `previous` the last path planned was (the versions of a
    /// distribution list their files in about the same order).
    cursor: usize,
}

impl Share {
    pub fn new(dir: PathBuf, previous: FileList, metadata: &'static [&'static str]) -> Self {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            dir,
            name,
            previous,
            metadata,
            used: Vec::new(),
            cursor: 0,
        }
    }

    /// Where the file at `rel` goes: [`Plan::Held`] when the generation
    /// holds it for the previous version, else whether it is linked into
    /// the generation (a shared folder) or the staging folder.
    fn plan(&mut self, dist: &str, rel: &str, digest: Sha256Digest) -> Result<Plan, PublishError> {
        let Some(top) =
            top_folder(rel).filter(|top| !top.starts_with('.') && !self.metadata.contains(top))
        else {
            return Ok(Plan::Link { shared: false });
        };
        if !self.used.iter().any(|u| u == top) {
            self.used.push(top.to_owned());
        }
        match self.previous.files.get_next(rel, &mut self.cursor) {
            Some(d) if d == digest => Ok(Plan::Held),
            Some(_) => Err(PublishError::NewGeneration {
                dist: dist.to_owned(),
                generation: self.name.clone(),
                path: rel.to_owned(),
            }),
            None => Ok(Plan::Link { shared: true }),
        }
    }
}

/// [`Share::plan`]'s answer.
enum Plan {
    Held,
    Link { shared: bool },
}

/// Links are handed to workers in batches of this many.
const LINK_BATCH: usize = 2048;

impl<'a> Writer<'a> {
    /// A writer of the staging folder `stage`, linking from `pool`, for
    /// about `files` package files.
    pub fn new(dist: &'a str, stage: PathBuf, pool: &'a Pool, files: usize) -> Self {
        Self {
            share: None,
            listed: false,
            list_writer: None,
            dist,
            stage,
            pool,
            made_dirs: HashSet::new(),
            linked: PathMap::with_capacity(files),
            pending: Vec::new(),
            workers: Vec::new(),
            next_worker: 0,
        }
    }

    /// The pool it links from (and the indices are read from).
    pub fn pool(&self) -> &'a Pool {
        self.pool
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

    /// Puts package files into the generation `share` describes.
    pub fn share(&mut self, share: Share) {
        self.share = Some(share);
    }

    /// Plans a link of pool blob `digest` at `rel` (relative to the version
    /// root), refusing two different files at one path; in a generation
    /// that holds another file at `rel`, fails with
    /// [`PublishError::NewGeneration`].
    pub fn link(&mut self, rel: &str, digest: Sha256Digest) -> Result<(), PublishError> {
        assert!(!self.listed, "a link planned after the file list was taken");
        if let Some(existing) = self.linked.insert(rel, digest) {
            if existing == digest {
                return Ok(());
            }
            return Err(PublishError::Conflict {
                dist: self.dist.to_owned(),
                path: rel.to_owned(),
            });
        }
        let plan = match &mut self.share {
            Some(share) => share.plan(self.dist, rel, digest)?,
            None => Plan::Link { shared: false },
        };
        let Plan::Link { shared } = plan else {
            return Ok(());
        };
        self.pending.push((rel.to_owned(), digest, shared));
        if self.pending.len() >= LINK_BATCH {
            self.hand_off();
        }
        Ok(())
    }

    /// Completes the tree once every file is written: the symlinks of the
    /// shared folders into the generation, and the file list (or waits
    /// for [`Writer::finish_early`] to have written it).
    pub fn finish(&mut self) -> Result<(), PublishError> {
        if let Some(writer) = self.list_writer.take() {
            return writer.join().expect("the list writer does not panic");
        }
        let Some(list) = self.take_list()? else {
            return Ok(());
        };
        let path = self.stage.join(LIST);
        list.write(&path).map_err(self.io(&path))
    }

    /// [`Writer::finish`]'s work, the file list written on a thread of its
    /// own while the caller goes on (with the indices): for a writer that
    /// has planned its last link. A night that changed little spends as
    /// long writing the 63k-line list as compressing its indices.
    pub fn finish_early(&mut self) -> Result<(), PublishError> {
        let Some(list) = self.take_list()? else {
            return Ok(());
        };
        let path = self.stage.join(LIST);
        self.list_writer = Some(std::thread::spawn(move || {
            list.write(&path)
                .map_err(|source| PublishError::Io { path, source })
        }));
        Ok(())
    }

    /// The symlinks of the shared folders made, the list to write: `None`
    /// without a [`Share`]. No link may be planned after.
    fn take_list(&mut self) -> Result<Option<FileList>, PublishError> {
        let Some(mut share) = self.share.take() else {
            return Ok(None);
        };
        share.used.sort_unstable();
        // Early, nothing may be in the staging folder yet.
        self.ensure_dir(&self.stage.clone())?;
        for top in &share.used {
            let link = self.stage.join(top);
            let target = Path::new("..").join(&share.name).join(top);
            std::os::unix::fs::symlink(&target, &link).map_err(self.io(&link))?;
        }
        self.listed = true;
        Ok(Some(FileList {
            generation: share.name,
            shared: share.used,
            files: std::mem::take(&mut self.linked),
        }))
    }

    /// Gives the pending links to the next worker now (if workers run),
    /// without waiting for a batch to fill.
    pub fn hand_off(&mut self) {
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
        let generation = self.share.as_ref().map(|s| s.dir.clone());
        std::thread::scope(|s| {
            // One worker per core, fed batches while `f` still plans links
            // (rewriting indices) and then compresses: link(2) calls in
            // different directories proceed in parallel in the kernel.
            let cores = crate::fsutil::cores();
            let mut handles = Vec::new();
            for _ in 0..cores {
                let (tx, rx) = std::sync::mpsc::channel::<Vec<Link>>();
                self.workers.push(tx);
                let (stage, generation) = (&stage, generation.as_deref());
                handles.push(s.spawn(move || {
                    let mut linker = Linker::new(dist, stage, generation, pool)?;
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

impl Drop for Writer<'_> {
    /// A writer given up (a publish that failed, or that starts another
    /// generation in the same staging folder) waits for its list writer,
    /// so that no list lands in the next attempt's folder.
    fn drop(&mut self) {
        if let Some(writer) = self.list_writer.take() {
            let _ = writer.join();
        }
    }
}

/// Makes links relative to open directory handles — `linkat(pool,
/// "ab/HASH", dir, NAME)` — so the kernel walks two short paths per
/// file instead of two absolute ones.
struct Linker<'a> {
    dist: &'a str,
    stage: &'a Path,
    generation: Option<&'a Path>,
    pool: &'a Pool,
    pool_fd: rustix::fd::OwnedFd,
    /// (in the generation, folder) → its handle.
    dirs: rustc_hash::FxHashMap<(bool, String), rustix::fd::OwnedFd>,
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
    fn new(
        dist: &'a str,
        stage: &'a Path,
        generation: Option<&'a Path>,
        pool: &'a Pool,
    ) -> Result<Self, PublishError> {
        Ok(Self {
            dist,
            stage,
            generation,
            pool,
            pool_fd: open_dir(pool.dir())?,
            dirs: rustc_hash::FxHashMap::default(),
        })
    }

    fn link_all(&mut self, batch: &[Link]) -> Result<(), PublishError> {
        use rustix::fs::{AtFlags, linkat};
        for (rel, digest, shared) in batch {
            let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            let base = match (*shared, self.generation) {
                (true, Some(g)) => g,
                _ => self.stage,
            };
            let key = (*shared, dir.to_owned());
            if !self.dirs.contains_key(&key) {
                let path = base.join(dir);
                std::fs::create_dir_all(&path).map_err(|source| PublishError::Io {
                    path: path.clone(),
                    source,
                })?;
                self.dirs.insert(key.clone(), open_dir(&path)?);
            }
            let dir_fd = &self.dirs[&key];
            let source = Pool::relative_path(digest);
            let source = std::ffi::CStr::from_bytes_with_nul(&source).expect("one NUL, at the end");
            match linkat(&self.pool_fd, source, dir_fd, name, AtFlags::empty()) {
                Ok(()) => {}
                // A generation may hold the file already: from a version
                // since dropped, or a killed publish. It must be this one.
                Err(rustix::io::Errno::EXIST) if *shared => {
                    if !same_file(&self.pool_fd, source, dir_fd, name, digest, &base.join(rel)) {
                        return Err(PublishError::NewGeneration {
                            dist: self.dist.to_owned(),
                            generation: base
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                            path: rel.clone(),
                        });
                    }
                }
                Err(rustix::io::Errno::EXIST) => {}
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
                    let dst = base.join(rel);
                    crate::fsutil::link_or_copy(&self.pool.path(digest), &dst)
                        .map_err(|source| PublishError::Io { path: dst, source })?;
                }
            }
        }
        Ok(())
    }
}

/// Whether the file `name` in `dir_fd` (at `path`) is blob `digest`: the
/// same inode as the blob, or (a copy, or a blob pooled again since) the
/// same bytes.
fn same_file(
    pool_fd: &rustix::fd::OwnedFd,
    blob: &std::ffi::CStr,
    dir_fd: &rustix::fd::OwnedFd,
    name: &str,
    digest: &Sha256Digest,
    path: &Path,
) -> bool {
    use rustix::fs::{AtFlags, statat};
    let (Ok(a), Ok(b)) = (
        statat(pool_fd, blob, AtFlags::empty()),
        statat(dir_fd, name, AtFlags::SYMLINK_NOFOLLOW),
    ) else {
        return false;
    };
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) {
        return true;
    }
    a.st_size == b.st_size && crate::pool::hash_file(path).is_ok_and(|(_, d)| d == *digest)
}

pub(super) fn rfc2822(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S UTC").to_string()
}
