//! `depot dist push DIST --to s3://BUCKET/PREFIX`: a stage of a
//! distribution copied to S3-compatible object storage, so that the bucket
//! (or a CDN in front of it) serves clients instead of one host's disk.
//!
//! `PREFIX/DIST/STAGE/` becomes the version the stage serves
//! (`PREFIX/DIST/VERSION/` for `--stage VERSION`). The tree is computed
//! once, from the published version folder ([`tree`]); the target
//! ([`s3`]) lists, puts and deletes. A push:
//!
//! 1. lists what the bucket holds under the stage's prefix (the truth for
//!    what exists) and reads the push manifest `.depot-push.json.gz` there
//!    (what earlier pushes sent: each object's SHA-256, size and ETag,
//!    and when each stale object left the stage);
//! 2. uploads only what the bucket lacks: an object is skipped when the
//!    listing has it with the ETag and size the manifest recorded for the
//!    same SHA-256; an object the manifest does not vouch for (a killed
//!    push sent it, or someone changed it) is checked with HEAD against
//!    the SHA-256 every upload stores in `x-amz-meta-sha256`;
//! 3. uploads in order, each class complete before the next starts:
//!    packages, by-hash indices, indices, then `Release`, `Release.gpg`,
//!    `InRelease` (rpm: `repomd.xml`, `repomd.xml.asc`) — so a client
//!    reading the bucket mid-push sees the old or the new top file, and
//!    whatever a top file names is already there;
//! 4. deletes an object no longer part of the stage only once
//!    `--delete-after` (default 1 h) has passed since a push first saw it
//!    gone (its `left` time in the manifest), so a client that read the
//!    old `InRelease` can finish its update;
//! 5. writes the manifest last.
//!
//! A killed push leaves the manifest of the last complete push, so a rerun
//! completes it (objects sent meanwhile are found by HEAD, not sent
//! again). One push per target, distribution and stage at a time: a
//! second one exits 3 (`locks/push-DIST-STAGE-HASH.lock`).
//!
//! This module reads the data root (version records, the publish root,
//! the pool's directory) and writes only lock files locally.

pub mod aws;
pub mod s3;
pub mod tree;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use self::aws::AwsEnv;
use self::s3::{Body, S3Target, S3Url};
use self::tree::Class;
use super::dist::{DistError, Stage};
use crate::digest::Sha256Digest;
use crate::lock::{LockError, ObjectLock, Wait};
use crate::names::InvalidName;
use crate::report::{Event, Reporter};
use crate::root::{PublishRoot, Root};

/// Parallel requests of a push unless `--concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// How long an object that left the stage stays, unless `--delete-after`.
pub const DEFAULT_DELETE_AFTER: Duration = Duration::from_secs(3600);
/// Expected keys per range of a parallel listing.
const LIST_RANGE: usize = 4000;
/// The push manifest's name under the stage's prefix.
pub const MANIFEST: &str = ".depot-push.json.gz";

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Dist(#[from] DistError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("invalid push target `{url}`: {problem}")]
    Target { url: String, problem: String },
    #[error("invalid S3 endpoint `{url}`: {problem}")]
    Endpoint { url: String, problem: String },
    #[error("`{stage}` of distribution `{dist}` serves no version (publish or promote first)")]
    NoStage { dist: String, stage: String },
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile `{profile}` keys in {files}"
    )]
    NoCredentials { profile: String, files: String },
    #[error(
        "{method} {object} refused (HTTP {status} {code}): {message}; check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the bucket's permissions"
    )]
    Denied {
        method: &'static str,
        object: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{method} {object} failed (HTTP {status} {code}): {message}")]
    Status {
        method: &'static str,
        object: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{method} {object} failed")]
    Network {
        method: &'static str,
        object: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot read the listing of {object}: {problem}")]
    Listing { object: String, problem: String },
    #[error("the push manifest {object} is damaged")]
    Manifest {
        object: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PushError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidName(_) | Self::Target { .. } | Self::Endpoint { .. } => Usage,
            Self::Dist(d) => d.kind(),
            Self::Lock(l) => l.kind(),
            Self::NoStage { .. }
            | Self::NoCredentials { .. }
            | Self::Denied { .. }
            | Self::Status { .. }
            | Self::Network { .. }
            | Self::Client(_)
            | Self::Listing { .. }
            | Self::Manifest { .. }
            | Self::Io { .. } => Failure,
        }
    }
}

/// What `--stage` names: a stage, or one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    Stage(Stage),
    Version(String),
}

impl StageRef {
    pub fn name(&self) -> &str {
        match self {
            Self::Stage(s) => s.name(),
            Self::Version(v) => v,
        }
    }
}

impl std::str::FromStr for StageRef {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, InvalidName> {
        if let Ok(stage) = s.parse::<Stage>() {
            return Ok(Self::Stage(stage));
        }
        crate::names::validate("version", s)?;
        Ok(Self::Version(s.to_owned()))
    }
}

/// What `depot dist push` is told.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub dist: String,
    /// Empty: every stage that serves a version.
    pub stages: Vec<StageRef>,
    pub to: S3Url,
    /// `--endpoint`; else the environment's or the profile's, else AWS's.
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub delete_after: Duration,
    pub concurrency: usize,
    pub dry_run: bool,
    pub aws: AwsEnv,
    pub now: Timestamp,
}

/// What one stage's push did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct StagePush {
    pub stage: String,
    pub version: String,
    /// `s3://BUCKET/PREFIX/DIST/STAGE/`.
    pub url: String,
    /// Objects the stage consists of.
    pub objects: usize,
    /// Objects sent (or to send).
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    /// Objects the bucket already held with the same content.
    pub present: usize,
    /// Of those, checked with HEAD (sent by a killed push, unknown to the
    /// manifest).
    pub checked: usize,
    /// Stale objects deleted (their `--delete-after` had passed).
    pub deleted: usize,
    /// Stale objects kept until their `--delete-after` passes.
    pub stale_kept: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PushSummary {
    pub dist: String,
    pub target: String,
    pub dry_run: bool,
    pub stages: Vec<StagePush>,
}

/// `.depot-push.json.gz` under the stage's prefix.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    dist: String,
    stage: String,
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pushed: Option<Timestamp>,
    /// Key relative to the stage's prefix → what was sent.
    objects: BTreeMap<String, Sent>,
    /// Objects no longer part of the stage, still in the bucket.
    #[serde(default)]
    stale: BTreeMap<String, Stale>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sent {
    sha256: Sha256Digest,
    size: u64,
    etag: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stale {
    /// When a push first found it no longer part of the stage.
    left: Timestamp,
}

/// `depot dist push`.
pub async fn push(
    root: &Root,
    opts: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<PushSummary, PushError> {
    crate::names::validate("distribution", &opts.dist)?;
    let info = super::dist::show(root, &opts.dist)?;
    let publish_root = PublishRoot::new(&info.publish_root);
    // Which version each stage serves, decided before anything is sent.
    let mut stages = Vec::new();
    let wanted = if opts.stages.is_empty() {
        vec![StageRef::Stage(Stage::Dev), StageRef::Stage(Stage::Release)]
    } else {
        opts.stages.clone()
    };
    for s in &wanted {
        let version = match s {
            StageRef::Stage(Stage::Dev) => info.dev.clone(),
            StageRef::Stage(Stage::Release) => info.release.clone(),
            StageRef::Version(v) => info
                .versions
                .iter()
                .any(|r| &r.record.version == v)
                .then(|| v.clone()),
        };
        match version {
            Some(v) => stages.push((s.name().to_owned(), v)),
            // Without --stage, a stage nothing was promoted to is skipped.
            None if opts.stages.is_empty() => {}
            None => {
                return Err(match s {
                    StageRef::Version(v) => DistError::NoVersion {
                        dist: opts.dist.clone(),
                        version: v.clone(),
                    }
                    .into(),
                    StageRef::Stage(_) => PushError::NoStage {
                        dist: opts.dist.clone(),
                        stage: s.name().to_owned(),
                    },
                });
            }
        }
    }
    if stages.is_empty() {
        return Err(PushError::NoStage {
            dist: opts.dist.clone(),
            stage: "dev".into(),
        });
    }
    let config = opts.aws.resolve()?;
    let endpoint = opts.endpoint.clone().or_else(|| config.endpoint.clone());
    let target = S3Target::new(&opts.to, endpoint.as_deref(), opts.path_style, &config)?;
    let pool_dir = root.pool_dir();
    let mut out = Vec::new();
    for (stage, version) in stages {
        let prefix = if opts.to.prefix.is_empty() {
            format!("{}/{stage}/", opts.dist)
        } else {
            format!("{}/{}/{stage}/", opts.to.prefix, opts.dist)
        };
        // The bucket and key prefix name the target: one bucket reached
        // through two endpoints (a proxy, a CDN origin) is one target.
        let lock_name = format!(
            "{}-{stage}-{}",
            opts.dist,
            &Sha256Digest::of(format!("{}\n{prefix}", opts.to.bucket).as_bytes()).to_hex()[..12]
        );
        let _lock = ObjectLock::acquire(root, "push", &lock_name, Wait::No)?;
        let version_dir = publish_root.version_dir(&opts.dist, &version);
        let subject = format!("{}/{stage}", opts.dist);
        let started = Instant::now();
        let mut summary = push_stage(
            &target,
            opts,
            &Job {
                subject: &subject,
                stage: &stage,
                version: &version,
                prefix: &prefix,
            },
            (version_dir, pool_dir.clone()),
            reporter,
        )
        .await?;
        summary.seconds = started.elapsed().as_secs_f64();
        out.push(summary);
    }
    Ok(PushSummary {
        dist: opts.dist.clone(),
        target: opts.to.to_string(),
        dry_run: opts.dry_run,
        stages: out,
    })
}

struct Job<'a> {
    subject: &'a str,
    stage: &'a str,
    version: &'a str,
    /// `PREFIX/DIST/STAGE/`.
    prefix: &'a str,
}

async fn push_stage(
    target: &S3Target,
    opts: &PushOptions,
    job: &Job<'_>,
    (version_dir, pool_dir): (PathBuf, PathBuf),
    reporter: &dyn Reporter,
) -> Result<StagePush, PushError> {
    let prefix = job.prefix;
    let manifest_key = format!("{prefix}{MANIFEST}");
    reporter.report(Event::Phase {
        subject: job.subject,
        message: "reading the published version and listing the bucket",
    });
    let old: Manifest = match target.get(&manifest_key, reporter).await? {
        Some(bytes) => read_manifest(&bytes).map_err(|source| PushError::Manifest {
            object: target.show(&manifest_key),
            source,
        })?,
        None => Manifest::default(),
    };
    // The listing (server-bound) and the scan of the version (local) at
    // once; the listing in ranges of about 4,000 keys the last push sent
    // (four pages each), in parallel.
    let bounds: Vec<String> = old
        .objects
        .keys()
        .skip(LIST_RANGE)
        .step_by(LIST_RANGE)
        .map(|rel| format!("{prefix}{rel}"))
        .collect();
    let scan = tokio::task::spawn_blocking(move || tree::scan(&version_dir, &pool_dir));
    let (listed, objects) = tokio::join!(
        target.list(prefix, &bounds, opts.concurrency, reporter),
        scan
    );
    let objects = objects.expect("the scan of a version does not panic")?;
    let listed = listed?;

    // What the bucket already holds, vouched for by the manifest.
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    let mut unsure = Vec::new();
    let mut to_send = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let key = format!("{prefix}{}", o.rel);
        match listed.get(&key) {
            None => to_send.push(i),
            Some(l) => match old.objects.get(&o.rel) {
                Some(s) if s.sha256 == o.sha256 && s.etag == l.etag && l.size == o.size => {
                    sent.insert(o.rel.clone(), s.clone());
                }
                _ if l.size != o.size => to_send.push(i),
                _ => unsure.push(i),
            },
        }
    }
    // Objects the manifest does not vouch for: their recorded SHA-256.
    let checked = unsure.len();
    let heads: Vec<Result<(usize, bool), PushError>> = futures_util::stream::iter(unsure)
        .map(|i| {
            let o = &objects[i];
            let key = format!("{prefix}{}", o.rel);
            async move {
                let sha = target.head_sha256(&key, reporter).await?;
                Ok((i, sha == Some(o.sha256)))
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    for h in heads {
        let (i, same) = h?;
        let o = &objects[i];
        if same {
            let l = &listed[&format!("{prefix}{}", o.rel)];
            sent.insert(
                o.rel.clone(),
                Sent {
                    sha256: o.sha256,
                    size: o.size,
                    etag: l.etag.clone(),
                },
            );
        } else {
            to_send.push(i);
        }
    }
    let present = sent.len();

    // Stale: in the bucket, not in the stage.
    let in_stage: std::collections::HashSet<&str> =
        objects.iter().map(|o| o.rel.as_str()).collect();
    let mut stale = BTreeMap::new();
    let mut expired = Vec::new();
    for key in listed.keys() {
        let Some(rel) = key.strip_prefix(prefix) else {
            continue;
        };
        if rel == MANIFEST || in_stage.contains(rel) {
            continue;
        }
        let left = old.stale.get(rel).map_or(opts.now, |s| s.left);
        let age = opts.now.duration_since(left);
        if age
            >= jiff::SignedDuration::try_from(opts.delete_after)
                .unwrap_or(jiff::SignedDuration::MAX)
        {
            expired.push(key.clone());
        } else {
            stale.insert(rel.to_owned(), Stale { left });
        }
    }
    expired.sort();

    let uploaded_bytes = to_send.iter().map(|&i| objects[i].size).sum();
    let mut summary = StagePush {
        stage: job.stage.to_owned(),
        version: job.version.to_owned(),
        url: target.show(prefix),
        objects: objects.len(),
        uploaded: to_send.len(),
        uploaded_bytes,
        present,
        checked,
        deleted: expired.len(),
        stale_kept: stale.len(),
        seconds: 0.0,
    };
    if opts.dry_run {
        return Ok(summary);
    }

    reporter.report(Event::Phase {
        subject: job.subject,
        message: "uploading",
    });
    reporter.report(Event::DownloadsPlanned {
        subject: job.subject,
        files: to_send.len() as u64,
        bytes: uploaded_bytes,
    });
    let mut by_class: BTreeMap<Class, Vec<usize>> = BTreeMap::new();
    for &i in &to_send {
        by_class.entry(objects[i].class).or_default().push(i);
    }
    for (class, mut members) in by_class {
        // Top files go one at a time, in their order; the rest in parallel.
        let parallel = if class == Class::Top {
            members.sort_by_key(|&i| Class::top_rank(&objects[i].rel));
            1
        } else {
            opts.concurrency.max(1)
        };
        let results: Vec<Result<(usize, String), PushError>> = futures_util::stream::iter(members)
            .map(|i| {
                let o = &objects[i];
                let key = format!("{prefix}{}", o.rel);
                async move {
                    let etag = target
                        .put(
                            &key,
                            Body::File(&o.path, o.size),
                            o.sha256,
                            tree::content_type(&o.rel),
                            o.class.cache_control(&o.rel),
                            reporter,
                        )
                        .await?;
                    reporter.report(Event::FileDone);
                    Ok((i, etag))
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        for r in results {
            let (i, etag) = r?;
            let o = &objects[i];
            sent.insert(
                o.rel.clone(),
                Sent {
                    sha256: o.sha256,
                    size: o.size,
                    etag,
                },
            );
        }
    }
    reporter.report(Event::DownloadsFinished);
    if !expired.is_empty() {
        reporter.report(Event::Phase {
            subject: job.subject,
            message: "deleting objects that left the stage",
        });
        target.delete(&expired, reporter).await?;
    }
    let manifest = Manifest {
        format: 1,
        dist: opts.dist.clone(),
        stage: job.stage.to_owned(),
        version: job.version.to_owned(),
        pushed: Some(opts.now),
        objects: sent,
        stale,
    };
    // gzip: a 63,000-object manifest is 10 MB of JSON, read and written by
    // every push.
    let bytes = write_manifest(&manifest).map_err(|source| PushError::Io {
        path: PathBuf::from(MANIFEST),
        source,
    })?;
    target
        .put(
            &manifest_key,
            Body::Bytes(&bytes),
            Sha256Digest::of(&bytes),
            "application/gzip",
            "no-cache",
            reporter,
        )
        .await?;
    summary.deleted = expired.len();
    Ok(summary)
}

/// The manifest's gzipped JSON, read whole first (`serde_json` parses a
/// slice several times faster than a reader).
fn read_manifest(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
    use std::io::Read;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(serde_json::Error::io)?;
    serde_json::from_slice(&json)
}

fn write_manifest(manifest: &Manifest) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let json = serde_json::to_vec(manifest).map_err(std::io::Error::other)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&json)?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_reads_back_what_was_written_and_damage_is_an_error() {
        let mut m = Manifest {
            format: 1,
            dist: "d".into(),
            ..Manifest::default()
        };
        m.objects.insert(
            "pool/main/a/a+b_1.0_amd64.deb".into(),
            Sent {
                sha256: Sha256Digest::of(b"x"),
                size: 1,
                etag: "e".into(),
            },
        );
        let bytes = write_manifest(&m).unwrap();
        let back = read_manifest(&bytes).unwrap();
        assert_eq!(back.objects.len(), 1);
        assert_eq!(back.dist, "d");
        assert!(read_manifest(b"not gzip").is_err());
    }
}
