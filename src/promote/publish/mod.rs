//! `depot publish`: a snapshot becomes `DIR/DIST/VERSION/`, a complete
//! repository (apt: [`apt`], rpm: [`rpm`]; the tree is written by
//! [`writer`], and [`options`] holds what a publish is told, reports and
//! fails with).
//! Package files are hardlinked from the content pool (copied across
//! filesystems) into the distribution's generation, where the versions
//! share them ([`crate::promote::shared`]); metadata is spliced from the
//! snapshot's stored indices, never re-serialised. The version is built
//! in a hidden staging folder, renamed into place, and only then does
//! `DIR/DIST/dev` switch to it.
//!
//! This module owns writing new versions under a publish root; it never
//! changes or removes a published version, and leaves version records and
//! stage moves other than `dev` to `dist.rs`.

mod apt;
mod options;
mod rpm;
mod writer;

pub use options::{PublishError, PublishOptions, PublishSummary};
use std::path::Path;
use writer::{Share, Writer};

use futures_util::StreamExt;
use url::Url;

use crate::content::Content;
use crate::digest::Expected;
use crate::http::{FetchError, Fetcher};
use crate::lock::{ObjectLock, Wait};
use crate::pool::Pool;
use crate::promote::shared::FileList;
use crate::report::{Event, Reporter};
use crate::root::{PublishRoot, Root};
use crate::signing::Signer;

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

enum Prepared {
    Apt(apt::Prepared),
    Rpm(rpm::Prepared),
}

/// `depot publish SNAPSHOT --dist DIST`.
pub async fn publish(
    root: &Root,
    opts: &PublishOptions,
    signer: Option<&dyn Signer>,
    reporter: &dyn Reporter,
) -> Result<PublishSummary, PublishError> {
    crate::names::validate("distribution", &opts.dist)?;
    // Fails early on an unknown source, before anything is made; the
    // manifest is read again below, under the pool guard.
    crate::snapshot::load_any(root, &opts.snapshot)?;
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
    // Publishing links pool blobs and may pool on-demand files and
    // catalogs: none may be collected under it, from the moment the
    // source's manifest is read (a drop of the source and a gc may come
    // between that read and the links otherwise).
    let _pool = crate::lock::PoolGuard::writer(root)?;
    // Package files go into the generation of the version `dev` serves
    // (the last publish), or, when that has none or holds another file at
    // one of this version's paths, into a generation of this version. Its
    // list (63k lines) is read while the source is prepared.
    let previous_dir = std::fs::read_link(publish_root.stage_link(dist, "dev"))
        .ok()
        .map(|v| dist_dir.join(v));
    let previous_list = {
        let dir = previous_dir.clone();
        std::thread::spawn(move || dir.and_then(|dir| FileList::read(&dir).ok().flatten()))
    };
    let (_, snapshot) = crate::snapshot::load_any(root, &opts.snapshot)?;
    let content = &snapshot.content;

    let catalogs = crate::packages::catalog::Cache::new(root);
    let pool = catalogs.pool();
    let prepared = match content {
        Content::Apt(a) => {
            Prepared::Apt(apt::prepare(&catalogs, dist, a, opts, snapshot.complete)?)
        }
        Content::Rpm(r) => Prepared::Rpm(rpm::prepare(pool, dist, r, snapshot.complete)?),
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

    let (version, when) = match &opts.version {
        Some(version) => {
            crate::names::validate("version", version)?;
            remove_stale_partials(&publish_root, dist, version);
            if publish_root.version_dir(dist, version).exists() {
                return finish_existing(root, opts, &snapshot, &publish_root, &prepared, signer);
            }
            (version.clone(), opts.now)
        }
        None => {
            // A version name is a second-resolution timestamp; two
            // publishes of one distribution within a second get
            // consecutive seconds.
            let mut when = opts.now;
            let mut version = when.strftime("%Y%m%dT%H%M%SZ").to_string();
            while publish_root.version_dir(dist, &version).exists() {
                when = when
                    .checked_add(jiff::SignedDuration::from_secs(1))
                    .unwrap_or(when);
                version = when.strftime("%Y%m%dT%H%M%SZ").to_string();
            }
            (version, when)
        }
    };
    let stage = publish_root.partial_dir(dist, &version, std::process::id());
    let _ = std::fs::remove_dir_all(&stage);
    reporter.report(Event::Phase {
        subject: dist,
        message: "writing indices",
    });
    let mut previous = previous_list
        .join()
        .expect("the previous list's reader does not panic");
    let release_sha256 = loop {
        let _ = std::fs::remove_dir_all(&stage);
        let reusing = previous.is_some();
        let previous = previous.take().unwrap_or_default();
        let generation = match reusing {
            true => previous.generation.clone(),
            false => FileList::generation_of(&version),
        };
        let metadata: &'static [&'static str] = match &prepared {
            Prepared::Apt(_) => &["dists"],
            Prepared::Rpm(_) => &["repodata"],
        };
        let mut w = Writer::new(dist, stage.clone(), pool, content.package_count());
        w.share(Share::new(dist_dir.join(generation), previous, metadata));
        let result = match &prepared {
            Prepared::Apt(p) => {
                apt::write_version(&mut w, opts, p, when, signer, previous_dir.as_deref())
            }
            Prepared::Rpm(p) => rpm::write_version(&mut w, opts, p, when, signer),
        }
        .and_then(|sha| w.finish().map(|()| sha));
        match result {
            Ok(sha) => break sha,
            Err(PublishError::NewGeneration { .. }) if reusing => continue,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&stage);
                return Err(e);
            }
        }
    };
    let final_dir = publish_root.version_dir(dist, &version);
    std::fs::rename(&stage, &final_dir).map_err(|source| PublishError::Io {
        path: final_dir.clone(),
        source,
    })?;
    complete(
        root,
        opts,
        &snapshot,
        &publish_root,
        &version,
        release_sha256,
    )?;
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
        adopted: false,
    })
}

/// Writes `content`, whose package files are all pooled, as one complete
/// repository into `dir` (made here; it must not exist): the tree of a
/// version without the distribution around it (no version record, no
/// stage, no audit entry). CI build repositories ([`crate::build`]) are
/// published this way; the caller holds the pool's writer guard and
/// decides where the tree goes and how it is switched in.
pub fn write_tree(
    root: &Root,
    content: &Content,
    dir: &Path,
    opts: &PublishOptions,
    signer: Option<&dyn Signer>,
) -> Result<crate::digest::Sha256Digest, PublishError> {
    let dist = opts.dist.as_str();
    let catalogs = crate::packages::catalog::Cache::new(root);
    let pool = catalogs.pool();
    let prepared = match content {
        Content::Apt(a) => Prepared::Apt(apt::prepare(&catalogs, dist, a, opts, true)?),
        Content::Rpm(r) => Prepared::Rpm(rpm::prepare(pool, dist, r, true)?),
    };
    let mut w = Writer::new(dist, dir.to_owned(), pool, content.package_count());
    w.ensure_dir(dir)?;
    match &prepared {
        Prepared::Apt(p) => apt::write_version(&mut w, opts, p, opts.now, signer, None),
        Prepared::Rpm(p) => rpm::write_version(&mut w, opts, p, opts.now, signer),
    }
}

/// Removes what killed publishes of `version` left behind (their staging
/// folders); the caller holds the distribution's lock, so no live publish
/// is writing one.
fn remove_stale_partials(publish_root: &PublishRoot, dist: &str, version: &str) {
    let prefix = format!(".{version}.partial-");
    let Ok(entries) = std::fs::read_dir(publish_root.dist_dir(dist)) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The steps after a version folder is in place: `dev` points at it, the
/// audit log and the version record say so. A killed publish may stop
/// between any two; [`finish_existing`] redoes them.
fn complete(
    root: &Root,
    opts: &PublishOptions,
    snapshot: &crate::snapshot::Snapshot,
    publish_root: &PublishRoot,
    version: &str,
    release_sha256: crate::digest::Sha256Digest,
) -> Result<(), PublishError> {
    let dist = opts.dist.as_str();
    let dev = publish_root.stage_link(dist, super::dist::Stage::Dev.name());
    crate::fsutil::switch_symlink(Path::new(version), &dev).map_err(|source| PublishError::Io {
        path: dev.clone(),
        source,
    })?;
    let entry = crate::audit::AuditEntry {
        time: opts.now,
        user: crate::audit::current_user(),
        action: "publish",
        dist,
        version,
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
            version: version.to_owned(),
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
    Ok(())
}

/// A version of the requested name exists: refused, unless `adopt` and it
/// is this snapshot's (recorded, or left unrecorded by a killed publish,
/// whose metadata is then read back and the remaining steps done).
fn finish_existing(
    root: &Root,
    opts: &PublishOptions,
    snapshot: &crate::snapshot::Snapshot,
    publish_root: &PublishRoot,
    prepared: &Prepared,
    signer: Option<&dyn Signer>,
) -> Result<PublishSummary, PublishError> {
    let dist = opts.dist.as_str();
    let version = opts.version.as_deref().unwrap_or_default();
    let record =
        super::dist::version_record(root, dist, version).map_err(|e| PublishError::Record {
            dist: dist.to_owned(),
            source: Box::new(e),
        })?;
    let exists = |from: String| PublishError::VersionExists {
        dist: dist.to_owned(),
        version: version.to_owned(),
        from,
    };
    if !opts.adopt {
        return Err(exists(record.map(|r| r.source).unwrap_or_default()));
    }
    let final_dir = publish_root.version_dir(dist, version);
    let release_sha256 = match record {
        Some(r) if r.source == snapshot.name => r.digest,
        Some(r) => return Err(exists(r.source)),
        None => {
            let top = match prepared {
                Prepared::Apt(p) => final_dir.join("dists").join(&p.suite).join("Release"),
                Prepared::Rpm(_) => final_dir.join("repodata").join("repomd.xml"),
            };
            let bytes = std::fs::read(&top).map_err(|source| PublishError::Io {
                path: top.clone(),
                source,
            })?;
            let digest = crate::digest::Sha256Digest::of(&bytes);
            complete(root, opts, snapshot, publish_root, version, digest)?;
            digest
        }
    };
    let content = &snapshot.content;
    Ok(PublishSummary {
        dist: dist.to_owned(),
        version: version.to_owned(),
        path: final_dir,
        suite: match prepared {
            Prepared::Apt(p) => Some(p.suite.clone()),
            Prepared::Rpm(_) => None,
        },
        components: content.components(),
        architectures: content.architectures(),
        packages: content.package_count(),
        signed: signer.is_some(),
        fetched_on_demand: 0,
        release_sha256,
        adopted: true,
    })
}
