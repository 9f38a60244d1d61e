//! Small filesystem helpers shared by every module that writes state:
//! atomic replacement of files and symlinks, hardlink-or-copy, and one
//! operation over many files (or blocks) on several threads. It owns no path: callers
//! say where (from [`crate::root`]).

use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temp file in the same directory,
/// fsynced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes `bytes` to a new file `path` atomically, failing with
/// [`io::ErrorKind::AlreadyExists`] if `path` exists: a temp file in the same
/// directory, fsynced unless `sync` is false, then hard-linked to `path` (a
/// link never replaces, so two writers racing for one name cannot both
/// win). Unsynced, readers see the whole file at once, but a power loss
/// may leave it empty.
pub fn write_new_atomic(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if sync {
        tmp.as_file().sync_all()?;
    }
    std::fs::hard_link(tmp.path(), path)
}

/// Points the symlink `link` at `target` atomically (create aside, rename
/// over), so readers see either the old or the new target, never nothing.
pub fn switch_symlink(target: &Path, link: &Path) -> io::Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

/// Hardlinks `src` to `dst`, copying when they are on different
/// filesystems (or the filesystem refuses links). An existing `dst` is left
/// alone: callers name destinations by content.
pub fn link_or_copy(src: &Path, dst: &Path) -> io::Result<()> {
    match std::fs::hard_link(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(_) => {
            std::fs::copy(src, dst)?;
            Ok(())
        }
    }
}

/// The threads for work that computes (hashing): one per core.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` over `items` on up to `threads` scoped threads, each taking the
/// next item as it finishes one, with state of its own that `init` makes
/// once per thread and `f` reuses from item to item; the results in
/// `items`' order, whatever the scheduling. For items of uneven cost
/// (published versions to check) or whose work needs a costly tool (a
/// compressor that allocates its tables). One thread runs on the caller's.
pub fn on_threads_stealing<T: Sync, S, U: Send>(
    items: &[T],
    threads: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> U + Sync,
) -> Vec<U> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = threads.min(items.len());
    if threads <= 1 {
        let mut state = init();
        return items.iter().map(|item| f(&mut state, item)).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, U)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut state = init();
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return mine;
                        };
                        mine.push((i, f(&mut state, item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker threads do not panic"))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, u)| u).collect()
}

/// `f` over `items` on up to `threads` scoped threads, each taking one
/// contiguous share; the results in `items`' order, or the first error
/// (in that order). For file operations over thousands of paths: hashing
/// on every core, or unlinks that wait on the device.
pub fn on_threads<T: Sync, U: Send, E: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<U, E> + Sync,
) -> Result<Vec<U>, E> {
    let chunk = items.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Result<Vec<_>, E>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            out.extend(h.join().expect("worker threads do not panic")?);
        }
        Ok(out)
    })
}
