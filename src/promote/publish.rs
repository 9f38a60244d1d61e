//! `depot publish`: a snapshot becomes `DIR/DIST/VERSION/`, an apt
//! repository whose `Packages`/`Sources` are the snapshot's stanzas copied
//! verbatim except for `Filename`/`Directory`, which point into the
//! version's own `pool/` (hardlinks to the content pool, copies across
//! filesystems). `Release` lists SHA-256 and size of every index, and
//! `Acquire-By-Hash: yes` with `by-hash/SHA256/` copies lets apt fetch
//! indices race-free while a newer version is being switched in.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use jiff::Timestamp;
use serde::Serialize;
use url::Url;

use crate::content::{AptContent, IndexKind};
use crate::digest::{Expected, Sha256Digest};
use crate::formats::apt::{self as fmt, AptFormatError};
use crate::formats::compress::Compression;
use crate::http::{FetchError, Fetcher};
use crate::lock::{LockError, ObjectLock, Wait};
use crate::names::InvalidName;
use crate::pool::{Pool, PoolError};
use crate::report::{Event, Reporter};
use crate::root::Root;
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
    #[error("distribution `{dist}`: {path} would hold two different files")]
    Conflict { dist: String, path: String },
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
    /// Compressed copies of each index, beside the uncompressed one.
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
    pub suite: String,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    pub packages: usize,
    pub signed: bool,
    /// Package files fetched now because the mirror defers downloads.
    pub fetched_on_demand: usize,
    /// SHA-256 of the published Release.
    pub release_sha256: Sha256Digest,
}

struct Writer<'a> {
    dist: &'a str,
    stage: PathBuf,
    pool: &'a Pool,
    made_dirs: HashSet<PathBuf>,
    linked: HashMap<String, Sha256Digest>,
}

impl Writer<'_> {
    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> PublishError {
        let path = path.to_owned();
        move |source| PublishError::Io { path, source }
    }

    fn ensure_dir(&mut self, dir: &Path) -> Result<(), PublishError> {
        if !self.made_dirs.contains(dir) {
            std::fs::create_dir_all(dir).map_err(self.io(dir))?;
            self.made_dirs.insert(dir.to_owned());
        }
        Ok(())
    }

    /// Links pool blob `digest` to `rel` (relative to the version root).
    fn link(&mut self, rel: &str, digest: Sha256Digest) -> Result<(), PublishError> {
        if let Some(existing) = self.linked.get(rel) {
            if *existing == digest {
                return Ok(());
            }
            return Err(PublishError::Conflict {
                dist: self.dist.to_owned(),
                path: rel.to_owned(),
            });
        }
        let dst = self.stage.join(rel);
        if let Some(parent) = dst.parent() {
            self.ensure_dir(parent)?;
        }
        crate::fsutil::link_or_copy(&self.pool.path(&digest), &dst).map_err(self.io(&dst))?;
        self.linked.insert(rel.to_owned(), digest);
        Ok(())
    }

    fn write_file(&mut self, rel: &str, bytes: &[u8]) -> Result<(), PublishError> {
        let dst = self.stage.join(rel);
        if let Some(parent) = dst.parent() {
            self.ensure_dir(parent)?;
        }
        std::fs::write(&dst, bytes).map_err(self.io(&dst))
    }
}

/// Rewrites one index: stanzas copied verbatim but for the path field, and
/// every file linked into the version's pool.
fn rewrite_index(
    w: &mut Writer<'_>,
    component: &str,
    kind: IndexKind,
    text: &str,
) -> Result<String, PublishError> {
    let malformed = |source| PublishError::Malformed {
        dist: w.dist.to_owned(),
        source,
    };
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    match kind {
        IndexKind::Binary | IndexKind::Udeb => {
            for stanza in fmt::binary_stanzas(text) {
                let s = stanza.map_err(malformed)?;
                let base = s.filename.rsplit('/').next().unwrap_or(s.filename);
                let rel = format!(
                    "pool/{component}/{}/{}/{base}",
                    fmt::pool_prefix(s.source),
                    s.source
                );
                w.link(&rel, s.expected.sha256)?;
                let field = s
                    .paragraph
                    .field("Filename")
                    .expect("checked by binary_stanzas");
                out.push_str(&text[s.paragraph.span.start..field.span.start]);
                let _ = writeln!(out, "Filename: {rel}");
                out.push_str(&text[field.span.end..s.paragraph.span.end]);
                out.push('\n');
            }
        }
        IndexKind::Source => {
            for stanza in fmt::source_stanzas(text) {
                let s = stanza.map_err(malformed)?;
                let dir = format!("pool/{component}/{}/{}", fmt::pool_prefix(s.name), s.name);
                for (file, expected) in &s.files {
                    w.link(&format!("{dir}/{file}"), expected.sha256)?;
                }
                let field = s
                    .paragraph
                    .field("Directory")
                    .expect("checked by source_stanzas");
                out.push_str(&text[s.paragraph.span.start..field.span.start]);
                let _ = writeln!(out, "Directory: {dir}");
                out.push_str(&text[field.span.end..s.paragraph.span.end]);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Package files the pool lacks (mirrors with the on-demand policy).
fn missing_files(
    pool: &Pool,
    texts: &[(IndexKind, String)],
) -> Result<Vec<(String, Expected)>, AptFormatError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (kind, text) in texts {
        match kind {
            IndexKind::Binary | IndexKind::Udeb => {
                for s in fmt::binary_stanzas(text) {
                    let s = s?;
                    if seen.insert(s.expected.sha256) && !pool.contains(&s.expected.sha256) {
                        out.push((s.filename.to_owned(), s.expected));
                    }
                }
            }
            IndexKind::Source => {
                for s in fmt::source_stanzas(text) {
                    let s = s?;
                    for (file, e) in &s.files {
                        if seen.insert(e.sha256) && !pool.contains(&e.sha256) {
                            out.push((format!("{}/{file}", s.directory), *e));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

async fn fetch_missing(
    dist: &str,
    content: &AptContent,
    pool: &Pool,
    missing: &[(String, Expected)],
    reporter: &dyn Reporter,
) -> Result<(), PublishError> {
    let fetch_err = |source| PublishError::Fetch {
        dist: dist.to_owned(),
        source: Box::new(source),
    };
    let fetcher = Fetcher::new().map_err(fetch_err)?;
    let base = Url::parse(&content.files_url).map_err(|_| {
        fetch_err(FetchError::Scheme {
            url: content.files_url.clone(),
        })
    })?;
    reporter.report(Event::DownloadsPlanned {
        subject: dist,
        files: missing.len() as u64,
        bytes: missing.iter().map(|(_, e)| e.size).sum(),
    });
    let results: Vec<Result<(), FetchError>> = futures_util::stream::iter(missing)
        .map(|(path, expected)| {
            let (fetcher, base) = (&fetcher, &base);
            async move {
                let url = base
                    .join(path)
                    .map_err(|_| FetchError::Scheme { url: path.clone() })?;
                fetcher
                    .download_to_pool(&url, expected, pool, reporter)
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

fn rfc2822(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

/// `depot publish SNAPSHOT --dist DIST`.
pub async fn publish(
    root: &Root,
    opts: &PublishOptions,
    signer: Option<&dyn Signer>,
    reporter: &dyn Reporter,
) -> Result<PublishSummary, PublishError> {
    crate::names::validate("distribution", &opts.dist)?;
    let snapshot = crate::snapshot::load(root, &opts.snapshot)?;
    let content = &snapshot.content;
    let dist = opts.dist.as_str();
    let suite = match &opts.suite {
        Some(s) => s.clone(),
        None => content
            .codename
            .clone()
            .or_else(|| Some(content.suite.clone()))
            .filter(|s| fmt::unsafe_path_reason(s).is_none())
            .unwrap_or_else(|| dist.to_owned()),
    };
    if fmt::unsafe_path_reason(&suite).is_some() {
        return Err(PublishError::InvalidSuite(suite));
    }
    let publish_root = opts.to.clone().unwrap_or_else(|| root.public_dir());
    let dist_dir = publish_root.join(dist);
    std::fs::create_dir_all(&dist_dir).map_err(|source| PublishError::Io {
        path: dist_dir.clone(),
        source,
    })?;
    let _lock = ObjectLock::acquire(root, "dist", dist, Wait::Yes)?;

    let pool = Pool::new(root);
    let pool_err = |source| PublishError::Pool {
        dist: dist.to_owned(),
        source,
    };
    let mut texts = Vec::with_capacity(content.indices.len());
    for index in &content.indices {
        let bytes = pool.read(&index.blob).map_err(pool_err)?;
        let text = String::from_utf8(bytes).map_err(|_| PublishError::Malformed {
            dist: dist.to_owned(),
            source: AptFormatError::EmptyRelease,
        })?;
        texts.push((index.kind, text));
    }
    let missing = missing_files(&pool, &texts).map_err(|source| PublishError::Malformed {
        dist: dist.to_owned(),
        source,
    })?;
    if !missing.is_empty() {
        reporter.report(Event::Phase {
            subject: dist,
            message: "fetching package files on demand",
        });
        fetch_missing(dist, content, &pool, &missing, reporter).await?;
    }

    // A version name is a second-resolution timestamp; two publishes of one
    // distribution within a second get consecutive seconds.
    let mut when = opts.now;
    let mut version = when.strftime("%Y%m%dT%H%M%SZ").to_string();
    while dist_dir.join(&version).exists() {
        when = when
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap_or(when);
        version = when.strftime("%Y%m%dT%H%M%SZ").to_string();
    }
    let stage = dist_dir.join(format!(".{version}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    reporter.report(Event::Phase {
        subject: dist,
        message: "writing indices",
    });
    let mut w = Writer {
        dist,
        stage: stage.clone(),
        pool: &pool,
        made_dirs: HashSet::new(),
        linked: HashMap::new(),
    };
    let result = write_version(&mut w, opts, content, &texts, &suite, when, signer);
    let release_sha256 = match result {
        Ok(sha) => sha,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&stage);
            return Err(e);
        }
    };
    let final_dir = dist_dir.join(&version);
    std::fs::rename(&stage, &final_dir).map_err(|source| PublishError::Io {
        path: final_dir.clone(),
        source,
    })?;
    let dev = dist_dir.join("dev");
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
    Ok(PublishSummary {
        dist: dist.to_owned(),
        version,
        path: final_dir,
        suite,
        components: content.components(),
        architectures: content.architectures(),
        packages: content.package_count(),
        signed: signer.is_some(),
        fetched_on_demand: missing.len(),
        release_sha256,
    })
}

/// Writes every file of the version into `w.stage`; returns the Release's
/// SHA-256.
fn write_version(
    w: &mut Writer<'_>,
    opts: &PublishOptions,
    content: &AptContent,
    texts: &[(IndexKind, String)],
    suite: &str,
    when: Timestamp,
    signer: Option<&dyn Signer>,
) -> Result<Sha256Digest, PublishError> {
    let dists = format!("dists/{suite}");
    let mut checksums: Vec<(String, u64, Sha256Digest)> = Vec::new();
    let mut compressions = vec![Compression::None];
    for c in &opts.compress {
        if !compressions.contains(c) {
            compressions.push(*c);
        }
    }
    for (index, (kind, text)) in content.indices.iter().zip(texts) {
        let plain = rewrite_index(w, &index.component, *kind, text)?;
        let rel = index.dist_path();
        let by_hash_dir = format!(
            "{dists}/{}/by-hash/SHA256",
            rel.rsplit_once('/').map_or("", |(dir, _)| dir)
        );
        let outputs: Vec<(Compression, Vec<u8>)> = std::thread::scope(|s| {
            let handles: Vec<_> = compressions
                .iter()
                .map(|c| {
                    let plain = plain.as_bytes();
                    s.spawn(move || (*c, c.compress(plain)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("compression threads do not panic"))
                .map(|(c, r)| r.map(|bytes| (c, bytes)))
                .collect::<Result<_, _>>()
        })
        .map_err(w.io(Path::new(&rel)))?;
        for (c, bytes) in outputs {
            let file_rel = format!("{rel}{}", c.suffix());
            let digest = Sha256Digest::of(&bytes);
            w.write_file(&format!("{dists}/{file_rel}"), &bytes)?;
            let by_hash = w.stage.join(format!("{by_hash_dir}/{digest}"));
            let src = w.stage.join(format!("{dists}/{file_rel}"));
            if let Some(parent) = by_hash.parent() {
                w.ensure_dir(parent)?;
            }
            crate::fsutil::link_or_copy(&src, &by_hash).map_err(w.io(&by_hash))?;
            checksums.push((file_rel, bytes.len() as u64, digest));
        }
    }

    let components = content.components();
    let archs = content.architectures();
    let mut release = String::new();
    let origin = content.origin.clone().unwrap_or_else(|| opts.dist.clone());
    let label = content.label.clone().unwrap_or_else(|| opts.dist.clone());
    let _ = writeln!(release, "Origin: {origin}");
    let _ = writeln!(release, "Label: {label}");
    let _ = writeln!(release, "Suite: {suite}");
    let _ = writeln!(release, "Codename: {suite}");
    let _ = writeln!(release, "Date: {}", rfc2822(when));
    let _ = writeln!(release, "Architectures: {}", archs.join(" "));
    let _ = writeln!(release, "Components: {}", components.join(" "));
    let _ = writeln!(
        release,
        "Description: {} published by depot from snapshot {}",
        opts.dist, opts.snapshot
    );
    let _ = writeln!(release, "Acquire-By-Hash: yes");
    let _ = writeln!(release, "SHA256:");
    for (path, size, digest) in &checksums {
        let _ = writeln!(release, " {digest} {size:>10} {path}");
    }
    w.write_file(&format!("{dists}/Release"), release.as_bytes())?;
    if let Some(signer) = signer {
        let sign_err = |source| PublishError::Signing {
            dist: opts.dist.clone(),
            source,
        };
        let inrelease = signer.clearsign(release.as_bytes()).map_err(sign_err)?;
        w.write_file(&format!("{dists}/InRelease"), &inrelease)?;
        let detached = signer.detach_sign(release.as_bytes()).map_err(sign_err)?;
        w.write_file(&format!("{dists}/Release.gpg"), &detached)?;
    }
    Ok(Sha256Digest::of(release.as_bytes()))
}
