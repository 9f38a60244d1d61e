//! The content-addressed pool.
//!
//! Every file depot keeps — a package, an upstream index, a generated
//! index — is a blob stored at `pool/ab/<sha256>`, named by the SHA-256 of
//! its bytes. One copy per content exists across all mirrors and snapshots.
//! Blobs are written to `tmp/`, hashed while written, checked against what
//! the signed index promised, and only then renamed into place, so a blob's
//! name always equals its content's SHA-256 even after a `kill -9`.
//!
//! This module owns `pool/` and `tmp/`; it never deletes a pooled blob
//! (that is garbage collection's job, which knows the references).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::digest::{Expected, Sha256Digest};
use crate::root::Root;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot write to the pool at {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("SHA-256 mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("blob {digest} is missing from the pool ({})", path.display())]
    Missing { digest: Sha256Digest, path: PathBuf },
    #[error("cannot list the pool at {}", path.display())]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Pool {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Pool {
    pub fn new(root: &Root) -> Self {
        Self {
            dir: root.pool_dir(),
            tmp: root.tmp_dir(),
        }
    }

    /// The pool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The blob's path relative to [`Pool::dir`].
    /// `ab/abcd…` plus a NUL, for system calls relative to the pool's
    /// folder (see [`std::ffi::CStr::from_bytes_with_nul`]).
    pub fn relative_path(digest: &Sha256Digest) -> [u8; 68] {
        let hex = digest.hex_digits();
        let mut out = [0u8; 68];
        out[..2].copy_from_slice(&hex[..2]);
        out[2] = b'/';
        out[3..67].copy_from_slice(&hex);
        out
    }

    /// Where the blob named `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Sha256Digest) -> PathBuf {
        let hex = digest.to_hex();
        // One level of 256 folders: a second level would mean ~40k
        // mkdirs for a 63k-package mirror, for folders of ~250 entries.
        self.dir.join(&hex[0..2]).join(hex)
    }

    /// Calls `f` for each blob (a regular file named by a digest), folder
    /// by folder. The kind of each entry comes from the listing, not a
    /// `stat`: 256 directory reads answer for every blob, where asking
    /// [`Pool::contains`] of each of a mirror's 63k packages is 63k path
    /// walks. Callers stat only the blobs they act on.
    pub fn walk(&self, f: &mut dyn FnMut(Sha256Digest, &Path)) -> Result<(), PoolError> {
        let list_err = |path: &Path| {
            let path = path.to_owned();
            move |source| PoolError::List { path, source }
        };
        let dirs = std::fs::read_dir(&self.dir).map_err(list_err(&self.dir))?;
        let mut dirs: Vec<PathBuf> = dirs
            .flatten()
            .filter(|e| e.file_name().len() == 2)
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for dir in dirs {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => continue,
                Err(e) => return Err(list_err(&dir)(e)),
            };
            for e in entries.flatten() {
                let Some(digest) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    f(digest, &e.path());
                }
            }
        }
        Ok(())
    }

    /// Which of `digests` the pool lacks, in their order: a few are asked
    /// one by one, many are answered from one [`Pool::walk`] (a digest it
    /// does not list is still asked, in case it was pooled meanwhile).
    /// Listing pays only while the digests are a fair share of the pool:
    /// one folder's size, times 256, estimates the pool, and a pool many
    /// times larger than the question (a fleet of mirrors) is asked
    /// digest by digest.
    pub fn missing<'a>(
        &self,
        digests: impl ExactSizeIterator<Item = &'a Sha256Digest>,
    ) -> Vec<bool> {
        /// Below this, stat calls cost less than listing 256 folders.
        const LIST_FROM: usize = 2_000;
        let asked = digests.len();
        let pooled_estimate = std::fs::read_dir(self.dir.join("00")).map_or(0, |d| d.count()) * 256;
        if asked < LIST_FROM || pooled_estimate > 4 * asked {
            return digests.map(|d| !self.contains(d)).collect();
        }
        // A pool that cannot be listed is asked blob by blob.
        let listed = self.listed().unwrap_or_default();
        digests
            .map(|d| !listed.contains(d) && !self.contains(d))
            .collect()
    }

    /// Every blob's digest, from one [`Pool::walk`].
    pub fn listed(&self) -> Result<rustc_hash::FxHashSet<Sha256Digest>, PoolError> {
        let mut listed = rustc_hash::FxHashSet::default();
        self.walk(&mut |d, _| {
            listed.insert(d);
        })?;
        Ok(listed)
    }

    pub fn contains(&self, digest: &Sha256Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Starts writing a new blob.
    pub fn stage(&self) -> Result<Staging, PoolError> {
        // Readable by all (as the umask allows): published trees hardlink
        // these files, and a web server serving them runs as another user.
        let file = tempfile::Builder::new()
            .prefix(&format!("dl-{}-", std::process::id()))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(&self.tmp)
            .map_err(|source| PoolError::Io {
                path: self.tmp.clone(),
                source,
            })?;
        Ok(Staging {
            file: BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Stores `bytes` as a blob and returns its name.
    pub fn put(&self, bytes: &[u8]) -> Result<Sha256Digest, PoolError> {
        let digest = Sha256Digest::of(bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut staging = self.stage()?;
        staging.write(bytes)?;
        staging.commit(self, None)
    }

    /// Moves a finished temp file (in this pool's `tmp/`) into the pool as
    /// blob `digest`; the caller has hashed it and checked what it holds.
    pub fn adopt(&self, tmp: NamedTempFile, digest: &Sha256Digest) -> Result<(), PoolError> {
        // The blob may be there already (another mirror fetched it
        // meanwhile): renaming over it swaps one copy for an identical one,
        // cheaper than asking first. A missing folder is made on demand.
        let dest = self.path(digest);
        let tmp = match tmp.persist(&dest) {
            Ok(_) => return Ok(()),
            Err(e) if e.error.kind() == io::ErrorKind::NotFound => e.file,
            Err(e) => {
                return Err(PoolError::Io {
                    path: dest,
                    source: e.error,
                });
            }
        };
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|source| PoolError::Io {
            path: parent.to_owned(),
            source,
        })?;
        tmp.persist(&dest).map_err(|e| PoolError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// A new, empty temp file in `tmp/` (the pool's filesystem), named so
    /// that [`Pool::clean_stale_temp_files`] removes it if this process
    /// dies before adopting it.
    pub fn temp_file(&self) -> Result<NamedTempFile, PoolError> {
        tempfile::Builder::new()
            .prefix(&format!("dl-{}-", std::process::id()))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(&self.tmp)
            .map_err(|source| PoolError::Io {
                path: self.tmp.clone(),
                source,
            })
    }

    /// Reads a whole blob into memory.
    pub fn read(&self, digest: &Sha256Digest) -> Result<Vec<u8>, PoolError> {
        let path = self.path(digest);
        std::fs::read(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                PoolError::Missing {
                    digest: *digest,
                    path,
                }
            } else {
                PoolError::Io { path, source }
            }
        })
    }

    /// Maps a whole blob into memory (read-only): its pages are read as
    /// they are touched and, being the page cache's, are not copied.
    pub fn map(&self, digest: &Sha256Digest) -> Result<memmap2::Mmap, PoolError> {
        let path = self.path(digest);
        let err = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                PoolError::Missing {
                    digest: *digest,
                    path: path.clone(),
                }
            } else {
                PoolError::Io {
                    path: path.clone(),
                    source,
                }
            }
        };
        let file = std::fs::File::open(&path).map_err(err)?;
        // SAFETY: a pool blob is written whole under a temporary name and
        // renamed into place, never written again, and deleted only by gc,
        // which waits for the commands that read the pool (the pool's
        // lock); an unlinked file stays mapped.
        unsafe { memmap2::Mmap::map(&file) }.map_err(err)
    }

    /// Removes temp files left by depot processes that no longer run (a
    /// `kill -9` mid-download leaves one behind).
    pub fn clean_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.tmp) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Some(pid) = name
                .strip_prefix("dl-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// A blob being written: hashed on the way in, renamed into the pool by
/// [`Staging::commit`] only if it matches what was expected.
pub struct Staging {
    file: BufWriter<NamedTempFile>,
    hasher: Sha256,
    size: u64,
}

impl Staging {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), PoolError> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes).map_err(|source| PoolError::Io {
            path: self.file.get_ref().path().to_owned(),
            source,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks size and SHA-256 against `expected` (when given) and moves the
    /// blob into the pool. On mismatch the temp file is deleted.
    pub fn commit(
        self,
        pool: &Pool,
        expected: Option<&Expected>,
    ) -> Result<Sha256Digest, PoolError> {
        let digest = Sha256Digest::from_hasher(self.hasher);
        if let Some(expected) = expected {
            if self.size != expected.size {
                return Err(PoolError::SizeMismatch {
                    expected: expected.size,
                    actual: self.size,
                });
            }
            if digest != expected.sha256 {
                return Err(PoolError::ChecksumMismatch {
                    expected: expected.sha256,
                    actual: digest,
                });
            }
        }
        let tmp = self.file.into_inner().map_err(|e| {
            let (source, writer) = e.into_parts();
            PoolError::Io {
                path: writer.get_ref().path().to_owned(),
                source,
            }
        })?;
        pool.adopt(tmp, &digest)?;
        Ok(digest)
    }
}

/// Checks bytes held in memory (an index, a metadata file) against the
/// size (when known) and SHA-256 a signed listing gave for them.
pub fn check_bytes(bytes: &[u8], size: Option<u64>, sha256: Sha256Digest) -> Result<(), PoolError> {
    if let Some(size) = size
        && bytes.len() as u64 != size
    {
        return Err(PoolError::SizeMismatch {
            expected: size,
            actual: bytes.len() as u64,
        });
    }
    let actual = Sha256Digest::of(bytes);
    if actual != sha256 {
        return Err(PoolError::ChecksumMismatch {
            expected: sha256,
            actual,
        });
    }
    Ok(())
}

/// Hashes a file on disk (used to check pooled blobs).
pub fn hash_file(path: &Path) -> io::Result<(u64, Sha256Digest)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher)?;
    Ok((size, Sha256Digest::from_hasher(hasher)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_refuses_a_blob_that_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let pool = Pool::new(&root);
        let mut staging = pool.stage().unwrap();
        staging.write(b"hello").unwrap();
        let wrong = Expected {
            size: 5,
            sha256: Sha256Digest::of(b"world"),
        };
        assert!(matches!(
            staging.commit(&pool, Some(&wrong)),
            Err(PoolError::ChecksumMismatch { .. })
        ));
        assert_eq!(std::fs::read_dir(root.tmp_dir()).unwrap().count(), 0);
        let d = pool.put(b"hello").unwrap();
        assert_eq!(pool.read(&d).unwrap(), b"hello");
        assert_eq!(hash_file(&pool.path(&d)).unwrap(), (5, d));
    }

    #[test]
    fn missing_answers_the_same_by_listing_and_by_asking() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let pool = Pool::new(&root);
        let pooled: Vec<Sha256Digest> = (0..2500u32)
            .map(|i| pool.put(&i.to_le_bytes()).unwrap())
            .collect();
        let absent: Vec<Sha256Digest> = (0..500u32)
            .map(|i| Sha256Digest::of(&(i + 1_000_000).to_le_bytes()))
            .collect();
        // Every pooled blob and some absent ones: enough to be answered
        // from a listing.
        let asked: Vec<&Sha256Digest> = pooled.iter().chain(&absent).collect();
        let listed = pool.missing(asked.iter().copied());
        let one_by_one: Vec<bool> = asked.iter().map(|d| !pool.contains(d)).collect();
        assert_eq!(listed, one_by_one);
        assert_eq!(listed.iter().filter(|m| **m).count(), absent.len());
        // A blob that is not a regular file is not pooled.
        std::fs::remove_file(pool.path(&pooled[0])).unwrap();
        std::fs::create_dir(pool.path(&pooled[0])).unwrap();
        assert!(pool.missing(asked.iter().copied())[0]);
    }
}
