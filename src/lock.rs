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
