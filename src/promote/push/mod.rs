//! `depot dist push DIST --to s3://BUCKET/PREFIX`: a stage of a
//! distribution copied to S3-compatible object storage, so that the bucket
//! (or a CDN in front of it) serves clients instead of one host's disk.
//!
//! `PREFIX/DIST/STAGE/` becomes the version the stage serves
//! (`PREFIX/DIST/VERSION/` for `--stage VERSION`). The tree is computed
//! once, from the published version folder ([`tree`]); the target
//! ([`s3`]) lists, puts, copies and deletes. A push:
//!
//! 1. reads the push manifest `.depot-push.json.zst` under the stage's
//!    prefix: what the last complete push stored (each object's SHA-256,
//!    size and ETag; each stale object's, and when it left the stage);
//! 2. decides what the bucket holds. The manifest is trusted when there
//!    is one and no `.depot-push.pending` beside it; otherwise (the first
//!    push, a push after one that did not finish, `--verify`) the bucket
//!    is listed, in parallel key ranges. Trusting the manifest is what
//!    keeps a nightly push in proportion to what changed: listing a
//!    63,000-object stage costs an S3 server as much as uploading a
//!    thousand objects. Its limit: an object deleted or changed behind
//!    depot's back (a lifecycle rule, another writer) is not noticed until
//!    a push lists, so such buckets want `--verify`;
//! 3. uploads only what the bucket lacks: an object is skipped when the
//!    bucket holds it with the ETag and size the manifest recorded for the
//!    same SHA-256; with a listing, an object the manifest does not vouch
//!    for (a killed first push sent it, or someone changed it) is checked
//!    with HEAD against the SHA-256 every upload stores in
//!    `x-amz-meta-sha256`;
//! 4. uploads in order, each class complete before the next starts:
//!    packages, by-hash indices, indices, then `Release`, `Release.gpg`,
//!    `InRelease` (rpm: `repomd.xml`, `repomd.xml.asc`) — so a client
//!    reading the bucket mid-push sees the old or the new top file, and
//!    whatever a top file names is already there. With a manifest, what it
//!    does not vouch for is sent while the bucket is listed; what the
//!    listing then finds missing goes before the top files. An object
//!    whose content this push already stored under another key (apt's
//!    indices and their by-hash names) is copied inside the server;
//! 5. deletes an object no longer part of the stage only once
//!    `--delete-after` (default 1 h) has passed since a push first saw it
//!    gone (its `left` time in the manifest), so a client that read the
//!    old `InRelease` can finish its update;
//! 6. writes the manifest, then deletes `.depot-push.pending`.
//!
//! A killed push leaves the manifest of the last complete push and the
//! pending marker, so a rerun lists the bucket and completes it (objects
//! sent meanwhile are found by HEAD when no manifest vouches for them, or
//! sent again when they are new content). One push per target,
//! distribution and stage at a time: a second one exits 3
//! (`locks/push-DIST-STAGE-HASH.lock`).
//!
//! This module reads the data root (version records, the publish root,
//! the pool's directory) and writes only lock files locally.

pub mod aws;
pub mod s3;
pub mod tree;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use self::aws::AwsEnv;
use self::s3::{Body, Meta, S3Target, S3Url};
use self::tree::Class;
use super::dist::{DistError, Stage};
use crate::digest::Sha256Digest;
use crate::formats::compress::Compression;
use crate::lock::{LockError, ObjectLock, Wait};
use crate::names::InvalidName;
use crate::report::{Event, Reporter};
use crate::root::{PublishRoot, Root};

/// Parallel requests of a push unless `--concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// How long an object that left the stage stays, unless `--delete-after`.
pub const DEFAULT_DELETE_AFTER: Duration = Duration::from_secs(3600);
/// Expected keys per range of a parallel listing: eight pages each (a
/// 63,000-object stage listed 8 ranges at a time took 480 ms against
/// SeaweedFS on loopback; 16 ranges of 4 pages, 560 ms; one, 650 ms).
const LIST_RANGE: usize = 8000;
/// The push manifest's name under the stage's prefix.
pub const MANIFEST: &str = ".depot-push.json.zst";
/// Its name until depot wrote zstd (gzipped JSON, the same document): read
/// when [`MANIFEST`] is missing, deleted once a push has replaced it.
const LEGACY_MANIFEST: &str = ".depot-push.json.gz";
/// Stored before a push's first write and deleted after its manifest: a
/// push that finds it lists the bucket instead of trusting the manifest.
pub const PENDING: &str = ".depot-push.pending";

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
    /// `--verify`: list the bucket even when the manifest could be trusted.
    pub verify: bool,
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
    /// Whether the bucket was listed (else the push manifest was trusted).
    pub listed: bool,
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

impl Manifest {
    /// What the manifest records for `rel`, in the stage or stale, if it
    /// is this content.
    fn vouches(&self, rel: &str, sha256: &Sha256Digest) -> Option<&Sent> {
        self.objects
            .get(rel)
            .or_else(|| self.stale.get(rel).and_then(|s| s.was.as_ref()))
            .filter(|s| s.sha256 == *sha256)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sent {
    sha256: Sha256Digest,
    size: u64,
    etag: String,
}

impl Sent {
    fn of(o: &tree::Object, etag: String) -> Self {
        Self {
            sha256: o.sha256,
            size: o.size,
            etag,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stale {
    /// When a push first found it no longer part of the stage.
    left: Timestamp,
    /// What a push recorded for it while it was part of the stage (so a
    /// stage moved back to an older version finds it without a `HEAD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    was: Option<Sent>,
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
    let pending_key = format!("{prefix}{PENDING}");
    reporter.report(Event::Phase {
        subject: job.subject,
        message: "reading the published version and the push manifest",
    });
    let ((old, legacy), pending) = tokio::try_join!(
        read_old_manifest(target, prefix, reporter),
        target.get(&pending_key, reporter)
    )?;
    let old = Arc::new(old);
    // The manifest of a complete push vouches for the content it records.
    // The bucket is listed when there is none, when the push before did
    // not finish, or when asked; else the manifest is trusted.
    let complete = old.pushed.is_some();
    let list = opts.verify || !complete || pending.is_some();
    let holdings = async {
        if !list {
            return Ok(Holdings::Recorded);
        }
        reporter.report(Event::Phase {
            subject: job.subject,
            message: "listing the bucket",
        });
        // In ranges of about LIST_RANGE keys the last push sent, in
        // parallel.
        let bounds: Vec<String> = old
            .objects
            .keys()
            .skip(LIST_RANGE)
            .step_by(LIST_RANGE)
            .map(|rel| format!("{prefix}{rel}"))
            .collect();
        target
            .list(prefix, &bounds, opts.concurrency, reporter)
            .await
            .map(Holdings::Listed)
    };
    // The scan, then (with a manifest to trust) what it does not vouch
    // for, sent while the bucket is listed.
    let early = async {
        let manifest = old.clone();
        let objects = tokio::task::spawn_blocking(move || {
            tree::scan(&version_dir, &pool_dir, |rel, sha256| {
                manifest.vouches(rel, sha256).map(|s| s.size)
            })
        })
        .await
        .expect("the scan of a version does not panic")?;
        // What the manifest records for each object, looked up once.
        let vouched: Vec<Option<&Sent>> = objects
            .iter()
            .map(|o| old.vouches(&o.rel, &o.sha256))
            .collect();
        if opts.dry_run {
            return Ok((objects, vouched, Vec::new()));
        }
        // Before the first write: a push that finds it lists the bucket.
        target
            .put(
                &pending_key,
                Body::Bytes(job.version.as_bytes()),
                &Meta {
                    sha256: Sha256Digest::of(job.version.as_bytes()),
                    content_type: "text/plain",
                    cache_control: "no-cache",
                },
                reporter,
            )
            .await?;
        let mut sent = Vec::new();
        if complete {
            let fresh = (0..objects.len())
                .filter(|&i| objects[i].class != Class::Top && vouched[i].is_none())
                .collect();
            sent = upload(target, opts, job, &objects, fresh, reporter).await?;
        }
        Ok::<_, PushError>((objects, vouched, sent))
    };
    let (holdings, (objects, vouched, early_sent)) = tokio::try_join!(holdings, early)?;

    // What the bucket already holds, vouched for by the manifest.
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    let mut uploaded: Vec<usize> = Vec::with_capacity(early_sent.len());
    for (i, etag) in early_sent {
        let o = &objects[i];
        sent.insert(o.rel.clone(), Sent::of(o, etag));
        uploaded.push(i);
    }
    let mut sent_early = vec![false; objects.len()];
    for &i in &uploaded {
        sent_early[i] = true;
    }
    let mut unsure = Vec::new();
    let mut to_send = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if sent_early[i] {
            continue;
        }
        let vouched = vouched[i];
        match holdings.get(&old, &o.rel) {
            None => to_send.push(i),
            Some(l) if l.size == o.size && vouched.is_some_and(|v| v.etag == l.etag) => {
                sent.insert(o.rel.clone(), Sent::of(o, l.etag.to_owned()));
            }
            Some(l) if l.size != o.size || (complete && vouched.is_none()) => to_send.push(i),
            Some(_) => unsure.push(i),
        }
    }
    // Objects nobody vouches for (a killed first push sent them, or they
    // changed behind depot's back): their recorded SHA-256.
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
            let etag = holdings.get(&old, &o.rel).map(|l| l.etag.to_owned());
            sent.insert(o.rel.clone(), Sent::of(o, etag.unwrap_or_default()));
        } else {
            to_send.push(i);
        }
    }
    let present = sent.len() - uploaded.len();

    // Stale: in the bucket, not in the stage.
    let in_stage: rustc_hash::FxHashSet<&str> = objects.iter().map(|o| o.rel.as_str()).collect();
    let mut stale = BTreeMap::new();
    let mut expired = Vec::new();
    for rel in holdings.keys(&old) {
        if [MANIFEST, LEGACY_MANIFEST, PENDING].contains(&rel) || in_stage.contains(rel) {
            continue;
        }
        let before = old.stale.get(rel);
        let left = before.map_or(opts.now, |s| s.left);
        let age = opts.now.duration_since(left);
        if age
            >= jiff::SignedDuration::try_from(opts.delete_after)
                .unwrap_or(jiff::SignedDuration::MAX)
        {
            expired.push(format!("{prefix}{rel}"));
        } else {
            let was = old
                .objects
                .get(rel)
                .cloned()
                .or_else(|| before.and_then(|s| s.was.clone()));
            stale.insert(rel.to_owned(), Stale { left, was });
        }
    }
    expired.sort();

    uploaded.extend(&to_send);
    let summary = StagePush {
        stage: job.stage.to_owned(),
        version: job.version.to_owned(),
        url: target.show(prefix),
        objects: objects.len(),
        listed: list,
        uploaded: uploaded.len(),
        uploaded_bytes: uploaded.iter().map(|&i| objects[i].size).sum(),
        present,
        checked,
        deleted: expired.len(),
        stale_kept: stale.len(),
        seconds: 0.0,
    };
    if opts.dry_run {
        return Ok(summary);
    }
    // Whatever the listing found missing, then the top files.
    for (i, etag) in upload(target, opts, job, &objects, to_send, reporter).await? {
        let o = &objects[i];
        sent.insert(o.rel.clone(), Sent::of(o, etag));
    }
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
    let bytes = write_manifest(&manifest).map_err(|source| PushError::Io {
        path: PathBuf::from(MANIFEST),
        source,
    })?;
    target
        .put(
            &manifest_key,
            Body::Bytes(&bytes),
            &Meta {
                sha256: Sha256Digest::of(&bytes),
                content_type: "application/zstd",
                cache_control: "no-cache",
            },
            reporter,
        )
        .await?;
    let mut done = vec![pending_key];
    if legacy {
        done.push(format!("{prefix}{LEGACY_MANIFEST}"));
    }
    target.delete(&done, reporter).await?;
    Ok(summary)
}

/// What the bucket holds under a stage's prefix, as far as a push knows.
enum Holdings {
    /// Listed: the truth.
    Listed(rustc_hash::FxHashMap<String, s3::Listed>),
    /// What the last complete push recorded in its manifest.
    Recorded,
}

/// One object the bucket holds.
struct Held<'a> {
    size: u64,
    etag: &'a str,
}

impl Holdings {
    /// `rel`, if the bucket holds it (and, from the manifest, if its
    /// content is recorded).
    fn get<'a>(&'a self, old: &'a Manifest, rel: &str) -> Option<Held<'a>> {
        let held = |s: &'a Sent| Held {
            size: s.size,
            etag: &s.etag,
        };
        match self {
            Self::Listed(listed) => listed.get(rel).map(|l| Held {
                size: l.size,
                etag: &l.etag,
            }),
            Self::Recorded => old
                .objects
                .get(rel)
                .or_else(|| old.stale.get(rel).and_then(|s| s.was.as_ref()))
                .map(held),
        }
    }

    /// Every key (relative to the prefix) the bucket holds.
    fn keys<'a>(&'a self, old: &'a Manifest) -> Box<dyn Iterator<Item = &'a str> + 'a> {
        match self {
            Self::Listed(listed) => Box::new(listed.keys().map(String::as_str)),
            Self::Recorded => Box::new(
                old.objects
                    .keys()
                    .chain(old.stale.keys())
                    .map(String::as_str),
            ),
        }
    }
}

/// Sends `members` of `objects` class by class, each class complete
/// before the next starts; returns each one's ETag.
async fn upload(
    target: &S3Target,
    opts: &PushOptions,
    job: &Job<'_>,
    objects: &[tree::Object],
    members: Vec<usize>,
    reporter: &dyn Reporter,
) -> Result<Vec<(usize, String)>, PushError> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    reporter.report(Event::Phase {
        subject: job.subject,
        message: "uploading",
    });
    reporter.report(Event::DownloadsPlanned {
        subject: job.subject,
        files: members.len() as u64,
        bytes: members.iter().map(|&i| objects[i].size).sum(),
    });
    let mut by_class: BTreeMap<Class, Vec<usize>> = BTreeMap::new();
    for &i in &members {
        by_class.entry(objects[i].class).or_default().push(i);
    }
    // What this push has stored, by content: apt's indices are copies of
    // their by-hash files, sent a class earlier, so the server copies them.
    let mut stored: rustc_hash::FxHashMap<Sha256Digest, usize> = Default::default();
    let mut out = Vec::with_capacity(members.len());
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
                let key = format!("{}{}", job.prefix, o.rel);
                let source = stored
                    .get(&o.sha256)
                    .map(|&j| format!("{}{}", job.prefix, objects[j].rel));
                let meta = Meta {
                    sha256: o.sha256,
                    content_type: tree::content_type(&o.rel),
                    cache_control: o.class.cache_control(&o.rel),
                };
                async move {
                    let etag = match source {
                        Some(source) => {
                            let etag = target.copy(&key, &source, &meta, reporter).await?;
                            reporter.report(Event::Bytes(o.size));
                            etag
                        }
                        None => {
                            target
                                .put(&key, Body::File(&o.path), &meta, reporter)
                                .await?
                        }
                    };
                    reporter.report(Event::FileDone);
                    Ok((i, etag))
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        for r in results {
            let (i, etag) = r?;
            stored.entry(objects[i].sha256).or_insert(i);
            out.push((i, etag));
        }
    }
    reporter.report(Event::DownloadsFinished);
    Ok(out)
}

/// The manifest under `prefix`, or under its legacy name (then `true`);
/// an empty one if the stage was never pushed there.
async fn read_old_manifest(
    target: &S3Target,
    prefix: &str,
    reporter: &dyn Reporter,
) -> Result<(Manifest, bool), PushError> {
    for name in [MANIFEST, LEGACY_MANIFEST] {
        let key = format!("{prefix}{name}");
        if let Some(bytes) = target.get(&key, reporter).await? {
            let manifest = read_manifest(&bytes).map_err(|source| PushError::Manifest {
                object: target.show(&key),
                source,
            })?;
            return Ok((manifest, name == LEGACY_MANIFEST));
        }
    }
    Ok((Manifest::default(), false))
}

/// The manifest's compressed JSON (zstd, or gzip under the legacy name),
/// decompressed whole first: `serde_json` parses a slice several times
/// faster than a reader.
fn read_manifest(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
    let compression = if bytes.starts_with(&[0x1f, 0x8b]) {
        Compression::Gz
    } else {
        Compression::Zst
    };
    let json = compression
        .decompress(bytes)
        .map_err(serde_json::Error::io)?;
    serde_json::from_slice(&json)
}

/// zstd at level 1: a 63,000-object manifest is 10 MB of JSON (mostly
/// hex digests), 3.5 MB compressed, read and written by every push;
/// gzip took three times as long for 6 MB.
fn write_manifest(manifest: &Manifest) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(manifest).map_err(std::io::Error::other)?;
    zstd::stream::encode_all(&json[..], 1)
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
        assert!(read_manifest(b"not zstd").is_err());
        // What depot wrote before zstd: the same JSON, gzipped.
        let json = serde_json::to_vec(&m).unwrap();
        let legacy = Compression::Gz.compress(&json).unwrap();
        assert!(legacy.starts_with(&[0x1f, 0x8b]));
        assert_eq!(read_manifest(&legacy).unwrap().objects.len(), 1);
    }
}
