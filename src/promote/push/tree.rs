//! The files of one published version, as a push sends them: each with
//! its path relative to the version root, size, SHA-256, and class (which
//! decides the upload order and the caching headers).
//!
//! Package files are named with their SHA-256 in the version's file list
//! ([`crate::promote::shared`]), which also says which folders are the
//! distribution's generation: those are read from the list, not walked
//! (the generation holds other versions' files too). A version of the
//! older layout has no list; its package files are hardlinks of pool
//! blobs, whose names are their SHA-256, so their digests come from
//! matching inode numbers against the pool's directory entries (`readdir`
//! gives both for free). Either way a 63,000-package stage is not read to
//! be hashed, and a shared file whose content the last push recorded is
//! not even `stat`ed (its size is the manifest's). Everything else (the
//! indices depot wrote, or files copied across filesystems) is hashed, on
//! every core, each inode once (apt's by-hash names are hardlinks).
//!
//! It reads the version tree, its generation and the pool's directory
//! listing only.

use std::collections::HashMap;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::PushError;
use crate::digest::Sha256Digest;
use crate::promote::shared::{FileList, LIST};

/// The upload order: every object of a class is in the bucket before
/// any object of the next class is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// `.deb`, `.rpm`, sources: what indices point at.
    Package,
    /// apt's `by-hash/SHA256/…` copies of indices.
    ByHash,
    /// Indices under `dists/` or `repodata/`.
    Index,
    /// `Release`, `Release.gpg`, `InRelease`; `repomd.xml`, `repomd.xml.asc`:
    /// what a client reads first, so what makes the rest visible.
    Top,
}

impl Class {
    pub fn of(rel: &str) -> Self {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        // A folder of that name anywhere above the file.
        let in_dir = |d: &str| rel.rsplit('/').skip(1).any(|c| c == d);
        if in_dir("dists") {
            if rel.contains("/by-hash/") {
                Self::ByHash
            } else if matches!(name, "Release" | "Release.gpg" | "InRelease") {
                Self::Top
            } else {
                Self::Index
            }
        } else if in_dir("repodata") {
            if matches!(name, "repomd.xml" | "repomd.xml.asc" | "repomd.xml.key") {
                Self::Top
            } else {
                Self::Index
            }
        } else {
            Self::Package
        }
    }

    /// Within [`Class::Top`], the order of upload: the detached signature
    /// and the signed file before the clearsigned one apt reads first.
    pub fn top_rank(rel: &str) -> u8 {
        match rel.rsplit('/').next().unwrap_or(rel) {
            "Release" | "repomd.xml.key" => 0,
            "Release.gpg" | "repomd.xml" => 1,
            _ => 2,
        }
    }

    /// `Cache-Control`: files whose name changes with their content
    /// (packages, by-hash copies, rpm's `<sha256>-primary.xml.gz`) for a
    /// year; the rest, which a later push replaces, for a minute.
    pub fn cache_control(self, rel: &str) -> &'static str {
        const LONG: &str = "public, max-age=31536000, immutable";
        const SHORT: &str = "public, max-age=60";
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let hash_named = name.len() > 65
            && name.as_bytes()[64] == b'-'
            && name[..64].bytes().all(|b| b.is_ascii_hexdigit());
        match self {
            Self::Package | Self::ByHash => LONG,
            Self::Index if hash_named => LONG,
            Self::Index | Self::Top => SHORT,
        }
    }
}

/// `Content-Type` by file name.
pub fn content_type(rel: &str) -> &'static str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "deb" | "udeb" | "ddeb" => "application/vnd.debian.binary-package",
        "rpm" => "application/x-rpm",
        "dsc" => "text/prs.lines.tag",
        "gz" | "tgz" => "application/gzip",
        "xz" => "application/x-xz",
        "zst" => "application/zstd",
        "bz2" => "application/x-bzip2",
        "xml" => "application/xml",
        "yaml" => "application/yaml",
        "json" => "application/json",
        "gpg" | "asc" | "sig" => "application/pgp-signature",
        _ if matches!(
            name,
            "Release" | "InRelease" | "Packages" | "Sources" | "Index"
        ) =>
        {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

/// One file of the version.
#[derive(Debug, Clone)]
pub struct Object {
    /// Relative to the version root, `/`-separated.
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: Sha256Digest,
    pub class: Class,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PushError + '_ {
    move |source| PushError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Every file of the version in `version_dir`: its tree (symlinks
/// followed) and, for a version with a file list, its shared files.
///
/// `known` gives the size of a shared file whose content an earlier push
/// recorded (same path, same SHA-256), so that only new files are
/// `stat`ed: a 63,000-file version differs from the last push by a few
/// hundred.
pub fn scan(
    version_dir: &Path,
    pool_dir: &Path,
    known: impl Fn(&str, &Sha256Digest) -> Option<u64>,
) -> Result<Vec<Object>, PushError> {
    struct Found {
        rel: String,
        path: PathBuf,
        /// Device and inode: one content, whatever its names.
        file: (u64, u64),
        size: u64,
    }
    let list = FileList::read(version_dir).map_err(io(version_dir))?;
    let mut found = Vec::new();
    let mut stack = vec![(version_dir.to_owned(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name();
            if let Some(list) = &list
                && rel.is_empty()
                && (name == LIST || list.shared.iter().any(|s| name == s.as_str()))
            {
                continue;
            }
            let Some(name) = name.to_str() else {
                return Err(PushError::Io {
                    path: e.path(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "a file name that is not UTF-8 cannot be an object key",
                    ),
                });
            };
            let child_rel = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            let path = e.path();
            let meta = std::fs::metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                stack.push((path, child_rel));
            } else {
                found.push(Found {
                    rel: child_rel,
                    file: (meta.dev(), meta.ino()),
                    size: meta.len(),
                    path,
                });
            }
        }
    }
    let mut objects = Vec::with_capacity(found.len());
    if let Some(list) = &list {
        let generation = version_dir
            .parent()
            .unwrap_or(version_dir)
            .join(&list.generation);
        let mut unknown = Vec::new();
        for (rel, sha256) in list.shared_files() {
            match known(rel, &sha256) {
                Some(size) => objects.push(Object {
                    rel: rel.to_owned(),
                    path: generation.join(rel),
                    size,
                    sha256,
                    class: Class::of(rel),
                }),
                None => unknown.push((rel, sha256)),
            }
        }
        let sized = crate::fsutil::on_threads(&unknown, crate::fsutil::cores(), |(rel, _)| {
            let path = generation.join(rel);
            let meta = std::fs::metadata(&path).map_err(io(&path))?;
            Ok::<_, PushError>((path, meta.len()))
        })?;
        for ((rel, sha256), (path, size)) in unknown.into_iter().zip(sized) {
            objects.push(Object {
                rel: rel.to_owned(),
                path,
                size,
                sha256,
                class: Class::of(rel),
            });
        }
    }
    let by_inode = match &list {
        None => pool_digests(pool_dir, found.iter().map(|f| f.file)),
        Some(_) => HashMap::new(),
    };
    // The rest is hashed, each inode once: apt's by-hash copies are
    // hardlinks of the indices.
    let mut to_hash: Vec<&Found> = Vec::new();
    let mut known_ino: HashMap<(u64, u64), Option<Sha256Digest>> = HashMap::new();
    for f in &found {
        let listed = list.as_ref().and_then(|l| l.files.get(&f.rel));
        let digest = listed.or_else(|| by_inode.get(&f.file).copied());
        if let std::collections::hash_map::Entry::Vacant(v) = known_ino.entry(f.file) {
            v.insert(digest);
            if digest.is_none() {
                to_hash.push(f);
            }
        }
    }
    let hashed = crate::fsutil::on_threads(&to_hash, crate::fsutil::cores(), |f| {
        crate::pool::hash_file(&f.path).map_err(io(&f.path))
    })?;
    for (f, (_, digest)) in to_hash.iter().zip(hashed) {
        known_ino.insert(f.file, Some(digest));
    }
    for f in found {
        let listed = list.as_ref().and_then(|l| l.files.get(&f.rel));
        let sha256 = match listed {
            Some(d) => d,
            None => known_ino[&f.file].expect("every inode without a digest was hashed"),
        };
        objects.push(Object {
            class: Class::of(&f.rel),
            rel: f.rel,
            path: f.path,
            size: f.size,
            sha256,
        });
    }
    objects.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(objects)
}

/// Digests of the pool blobs that share an inode with a version file:
/// `(device, inode)` → digest.
fn pool_digests(
    pool_dir: &Path,
    files: impl Iterator<Item = (u64, u64)>,
) -> HashMap<(u64, u64), Sha256Digest> {
    let mut out = HashMap::new();
    let Ok(pool_dev) = std::fs::metadata(pool_dir).map(|m| m.dev()) else {
        return out;
    };
    let wanted: std::collections::HashSet<u64> = files
        .filter(|&(dev, _)| dev == pool_dev)
        .map(|(_, ino)| ino)
        .collect();
    if wanted.is_empty() {
        return out;
    }
    let Ok(shards) = std::fs::read_dir(pool_dir) else {
        return out;
    };
    for shard in shards.flatten() {
        let Ok(entries) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for e in entries.flatten() {
            if !wanted.contains(&e.ino()) {
                continue;
            }
            if let Some(d) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
                out.insert((pool_dev, e.ino()), d);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_order_clients_read_in() {
        assert_eq!(Class::of("pool/main/h/hello_1.0_amd64.deb"), Class::Package);
        assert_eq!(Class::of("Packages/alpha-1.0-1.noarch.rpm"), Class::Package);
        assert_eq!(
            Class::of("dists/stable/main/binary-amd64/by-hash/SHA256/ab12"),
            Class::ByHash
        );
        assert_eq!(
            Class::of("dists/stable/main/binary-amd64/Packages.xz"),
            Class::Index
        );
        assert_eq!(Class::of("dists/stable/InRelease"), Class::Top);
        assert_eq!(Class::of("dists/stable/Release.gpg"), Class::Top);
        assert_eq!(Class::of("repodata/repomd.xml"), Class::Top);
        assert_eq!(Class::of("repodata/repomd.xml.asc"), Class::Top);
        assert_eq!(Class::of("repodata/0123-primary.xml.gz"), Class::Index);
        assert!(Class::Package < Class::ByHash && Class::ByHash < Class::Index);
        assert!(Class::Index < Class::Top);
        assert!(Class::top_rank("dists/s/Release") < Class::top_rank("dists/s/InRelease"));
    }

    #[test]
    fn caching_is_long_only_for_names_that_change_with_content() {
        let hashed = format!("repodata/{}-primary.xml.gz", "a".repeat(64));
        assert!(Class::Index.cache_control(&hashed).contains("immutable"));
        assert!(
            Class::Index
                .cache_control("dists/s/main/binary-amd64/Packages.gz")
                .contains("max-age=60")
        );
        assert!(
            Class::Top
                .cache_control("dists/s/InRelease")
                .contains("max-age=60")
        );
        assert!(
            Class::Package
                .cache_control("pool/a.deb")
                .contains("immutable")
        );
        assert_eq!(
            content_type("pool/main/a/a+b_1.0_amd64.deb"),
            "application/vnd.debian.binary-package"
        );
        assert_eq!(
            content_type("dists/s/InRelease"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(content_type("repodata/repomd.xml"), "application/xml");
    }
}
