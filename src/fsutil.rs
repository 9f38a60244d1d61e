//! Small filesystem helpers shared by every module that writes state:
//! atomic replacement of files and symlinks, and hardlink-or-copy.
//! It owns no path: callers say where (from [`crate::root`]).

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
/// directory, fsynced, then hard-linked to `path` (a link never replaces, so
/// two writers racing for one name cannot both win).
pub fn write_new_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
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
