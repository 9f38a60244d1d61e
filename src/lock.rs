//! Per-object locks.
//!
//! There is no global database lock: commands on different objects run in
//! parallel, and commands on the same object are serialised by an advisory
//! `flock` on `locks/KIND-NAME.lock`. The kernel drops the lock when the
//! process dies, so a `kill -9` never leaves a stale lock behind. The lock
//! file holds the holder's pid, only to make the "busy" message useful.
//!
//! This module owns the lock files (named by [`Root::lock_file`]); what a
//! lock protects is its caller's business, and it touches nothing else.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;

use crate::root::Root;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{kind} `{name}` is busy: another depot process{} is working on it", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy {
        kind: &'static str,
        name: String,
        holder: Option<u32>,
    },
    #[error("cannot open the lock file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LockError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::Busy { .. } => Refused,
            Self::Io { .. } => Failure,
        }
    }
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct ObjectLock {
    _file: File,
}

/// How to behave when the object is already locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once with [`LockError::Busy`].
    No,
    /// Block until the holder finishes.
    Yes,
}

impl ObjectLock {
    pub fn acquire(
        root: &Root,
        kind: &'static str,
        name: &str,
        wait: Wait,
    ) -> Result<Self, LockError> {
        let path = root.lock_file(kind, name);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if wait == Wait::Yes => {
                file.lock().map_err(io_err)?;
            }
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(LockError::Busy {
                    kind,
                    name: name.to_owned(),
                    holder: pid.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        write!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(Self { _file: file })
    }
}

/// The pool's one shared/exclusive lock: every command that adds blobs to
/// the pool, or writes a state or manifest that names blobs, holds it
/// shared from before it first looks at the pool until its state or
/// manifest is saved; `depot gc` holds it exclusive while it marks and
/// sweeps. So gc never sees a blob that a writer has pooled (or found
/// already pooled) but not yet recorded, which a grace period on blob age
/// cannot promise: a writer may reuse an old, unreferenced blob.
///
/// Writers queue behind a waiting gc (a turnstile, `pool-turnstile.lock`,
/// which gc holds while it waits and writers pass through), so a steady
/// stream of overlapping writers cannot starve gc. A process takes the
/// writer side once: nested writer guards (publish inside a train, say)
/// share it, since a second shared `flock` behind a waiting gc would
/// deadlock.
#[derive(Debug, Clone)]
pub struct PoolGuard {
    _file: std::sync::Arc<File>,
}

type Held = std::sync::Mutex<std::collections::HashMap<PathBuf, std::sync::Weak<File>>>;

/// The writer guards this process holds, by lock file.
fn held() -> &'static Held {
    static HELD: std::sync::OnceLock<Held> = std::sync::OnceLock::new();
    HELD.get_or_init(Default::default)
}

fn open_lock(path: &std::path::Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.to_owned(),
            source,
        })
}

impl PoolGuard {
    /// The writer side: waits while gc runs.
    pub fn writer(root: &Root) -> Result<Self, LockError> {
        let path = root.pool_lock_file();
        let mut held = held().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = held.get(&path).and_then(std::sync::Weak::upgrade) {
            return Ok(Self { _file: file });
        }
        let io_err = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| LockError::Io { path, source }
        };
        // Pass the turnstile (held by a gc waiting for its turn), then
        // take the shared lock; the turnstile is released at once.
        let turnstile_path = root.pool_turnstile_file();
        let turnstile = open_lock(&turnstile_path)?;
        if turnstile.try_lock_shared().is_err() {
            tracing::info!("waiting for depot gc to finish");
            turnstile.lock_shared().map_err(io_err(&turnstile_path))?;
        }
        let file = open_lock(&path)?;
        file.lock_shared().map_err(io_err(&path))?;
        drop(turnstile);
        let file = std::sync::Arc::new(file);
        held.insert(path, std::sync::Arc::downgrade(&file));
        Ok(Self { _file: file })
    }

    /// gc's side: waits for running writers (and makes new ones wait), or
    /// with [`Wait::No`] fails at once with [`LockError::Busy`].
    pub fn collector(root: &Root, wait: Wait) -> Result<Self, LockError> {
        let busy = || LockError::Busy {
            kind: "pool",
            name: root.pool_dir().display().to_string(),
            holder: None,
        };
        let turnstile_path = root.pool_turnstile_file();
        let turnstile = open_lock(&turnstile_path)?;
        let path = root.pool_lock_file();
        let file = open_lock(&path)?;
        let io_err = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| LockError::Io { path, source }
        };
        match (turnstile.try_lock(), wait) {
            (Ok(()), _) => {}
            (Err(TryLockError::WouldBlock), Wait::Yes) => {
                turnstile.lock().map_err(io_err(&turnstile_path))?
            }
            (Err(TryLockError::WouldBlock), Wait::No) => return Err(busy()),
            (Err(TryLockError::Error(e)), _) => return Err(io_err(&turnstile_path)(e)),
        }
        match (file.try_lock(), wait) {
            (Ok(()), _) => {}
            (Err(TryLockError::WouldBlock), Wait::Yes) => {
                tracing::info!("waiting for running writers (mirror update, publish, …) to finish");
                file.lock().map_err(io_err(&path))?
            }
            (Err(TryLockError::WouldBlock), Wait::No) => return Err(busy()),
            (Err(TryLockError::Error(e)), _) => return Err(io_err(&path)(e)),
        }
        // Writers arriving from now on wait on pool.lock itself.
        drop(turnstile);
        Ok(Self {
            _file: std::sync::Arc::new(file),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn writers_wait_for_gc_and_gc_waits_for_writers() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let gc = PoolGuard::collector(&root, Wait::Yes).unwrap();
        let got = AtomicBool::new(false);
        std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let guard = PoolGuard::writer(&root).unwrap();
                got.store(true, Ordering::SeqCst);
                guard
            });
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert!(!got.load(Ordering::SeqCst), "a writer ran during gc");
            drop(gc);
            let guard = writer.join().unwrap();
            assert!(got.load(Ordering::SeqCst));
            // A second writer in this process shares the guard; gc cannot
            // start while either is held.
            let nested = PoolGuard::writer(&root).unwrap();
            assert!(matches!(
                PoolGuard::collector(&root, Wait::No),
                Err(LockError::Busy { .. })
            ));
            drop(guard);
            assert!(PoolGuard::collector(&root, Wait::No).is_err());
            drop(nested);
            PoolGuard::collector(&root, Wait::No).unwrap();
        });
    }
}
