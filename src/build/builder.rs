//! The builder: a background task of `depot serve` that publishes each
//! build needing it, and the webhooks it tells.
//!
//! It scans `builds/.pending/` (the state is on disk: a restarted server,
//! even after `kill -9` mid-build, finds every pending build there and
//! publishes it). A build is queued once no upload has reached it for the
//! quiet time; at most `concurrency` builds are published at once, each
//! under its build's run lock, so two publishes of one repository never
//! overlap. A publish writes generation N's tree into a hidden folder,
//! renames it to `tree-N` and switches `current` to it, so a client never
//! sees half a repository. An upload that lands while a build runs bumps
//! the generation; the builder sees it when that build ends and builds
//! once more.
//!
//! Webhooks: each state change is POSTed as JSON (the build's key,
//! `status`, `time`, `url` of its repository, `extra`) by one sender task
//! per URL, in order, each POST retried with backoff
//! ([`crate::train::notify`]); a dead webhook delays only its own queue,
//! never a build.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use super::{Build, BuildError, BuildKey, Status};
use crate::report::{Event, Reporter};
use crate::root::Root;

/// What the builder is told (`depot serve --sign-key --quiet-time
/// --webhook`, or the settings file).
#[derive(Debug, Clone)]
pub struct BuilderOptions {
    /// Since a build's last upload, before it is published.
    pub quiet_time: Duration,
    /// The signing key (none: unsigned repositories).
    pub sign_key: Option<String>,
    pub webhooks: Vec<String>,
    /// Builds published at once.
    pub concurrency: usize,
    /// The server's own base URL, for the `url` webhooks receive.
    pub base_url: String,
}

/// Default quiet time.
pub const DEFAULT_QUIET_TIME: Duration = Duration::from_secs(30);

/// What a webhook receives.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    #[serde(flatten)]
    pub key: BuildKey,
    pub status: Status,
    pub time: Timestamp,
    /// The build's repository.
    pub url: String,
    /// Its repo file (`GET` it to configure a client).
    pub repo_file_url: String,
    pub extra: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Logs what the webhook senders report (they never fail a build).
struct LogReporter;

impl Reporter for LogReporter {
    fn report(&self, event: Event<'_>) {
        match event {
            Event::Phase { subject, message } => tracing::warn!("webhook {subject}: {message}"),
            Event::Retry {
                url,
                attempt,
                reason,
            } => tracing::info!("webhook {url}: attempt {attempt} failed ({reason}); retrying"),
            _ => {}
        }
    }
}

/// The webhook queues: one sender task per URL.
#[derive(Clone)]
pub struct Hooks {
    queues: Vec<mpsc::UnboundedSender<Notice>>,
    base_url: String,
}

impl Hooks {
    /// Starts one sender task per URL (inside a tokio runtime).
    pub fn start(urls: &[String], base_url: &str) -> Self {
        let queues = urls
            .iter()
            .map(|url| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Notice>();
                // A first try and 3 retries (after 200, 400, 800 ms).
                let notifier =
                    crate::train::notify::Notifier::new(vec![url.clone()]).with_attempts(4);
                tokio::spawn(async move {
                    while let Some(notice) = rx.recv().await {
                        notifier.post(&notice, &LogReporter).await;
                    }
                });
                tx
            })
            .collect();
        Self {
            queues,
            base_url: base_url.to_owned(),
        }
    }

    /// Queues `build`'s current state for every webhook.
    pub fn tell(&self, build: &Build) {
        if self.queues.is_empty() {
            return;
        }
        let k = &build.key;
        let notice = Notice {
            key: k.clone(),
            status: build.status,
            time: build.history.last().map_or_else(Timestamp::now, |t| t.time),
            url: format!("{}{}", self.base_url, k.repo_path()),
            repo_file_url: format!(
                "{}api/repos/{}/{}/{}/{}/{}/{}repo",
                self.base_url,
                k.project,
                k.reference,
                k.sha1,
                k.distro,
                k.distro_version,
                if k.flavor == super::DEFAULT_FLAVOR {
                    String::new()
                } else {
                    format!("flavors/{}/", k.flavor)
                }
            ),
            extra: build.extra.clone(),
            error: build.error.clone(),
        };
        for q in &self.queues {
            let _ = q.send(notice.clone());
        }
    }
}

/// The background publisher of pending builds.
pub struct Builder {
    root: Root,
    opts: BuilderOptions,
    hooks: Hooks,
    /// Builds queued or being published by this process.
    running: Mutex<HashSet<String>>,
    slots: Arc<Semaphore>,
    /// The signer, found once (looking the key up costs a gpg run).
    signer: Mutex<Option<crate::signing::GpgSigner>>,
}

impl Builder {
    pub fn new(root: Root, opts: BuilderOptions, hooks: Hooks) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        Arc::new(Self {
            root,
            opts,
            hooks,
            running: Mutex::default(),
            slots,
            signer: Mutex::default(),
        })
    }

    /// Scans for pending builds until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let tick =
            (self.opts.quiet_time / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            let me = self.clone();
            let due = tokio::task::spawn_blocking(move || me.due())
                .await
                .unwrap_or_default();
            for key in due {
                let me = self.clone();
                tokio::spawn(async move { me.build(key).await });
            }
            tokio::time::sleep(tick).await;
        }
    }

    /// The pending builds whose quiet time is over, now marked queued (and
    /// running here); markers of builds with nothing to do are removed.
    fn due(&self) -> Vec<BuildKey> {
        let dir = self.root.build_pending_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let now = Timestamp::now();
        let quiet = jiff::SignedDuration::try_from(self.opts.quiet_time).unwrap_or_default();
        let mut due = Vec::new();
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            if self.running_guard().contains(&id) {
                continue;
            }
            // Touched by every upload: still quiet, no need to look closer.
            let quiet_since = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok());
            if quiet_since.is_some_and(|q| q < self.opts.quiet_time) {
                continue;
            }
            let Some(key) = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|t| BuildKey::from_path(&t))
            else {
                continue;
            };
            let result = (|| -> Result<Option<Build>, BuildError> {
                let _lock = super::manifest_lock(&self.root, &key)?;
                let Some(mut b) = super::load(&self.root, &key)? else {
                    let _ = std::fs::remove_file(e.path());
                    return Ok(None);
                };
                if b.generation <= b.published && b.status != Status::Building {
                    let _ = std::fs::remove_file(e.path());
                    return Ok(None);
                }
                if now.duration_since(b.last_upload) < quiet {
                    return Ok(None);
                }
                if b.status != Status::Queued {
                    b.set_status(Status::Queued, now);
                    super::save(&self.root, &b)?;
                }
                Ok(Some(b))
            })();
            match result {
                Ok(Some(b)) => {
                    self.running_guard().insert(id);
                    self.hooks.tell(&b);
                    due.push(key);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(
                    "build {key}: cannot queue it: {}",
                    crate::http::error_chain(&err)
                ),
            }
        }
        due
    }

    fn running_guard(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn build(self: Arc<Self>, key: BuildKey) {
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let me = self.clone();
        let k = key.clone();
        let result = tokio::task::spawn_blocking(move || me.publish(&k)).await;
        if let Ok(Err(err)) | Err(err) = result.map_err(|e| BuildError::Io {
            what: "publish",
            path: self.root.builds_dir(),
            source: std::io::Error::other(e),
        }) {
            tracing::warn!("build {key}: {}", crate::http::error_chain(&err));
        }
        self.running_guard().remove(&key.id());
    }

    /// Publishes one build (blocking): building → ready | failed.
    fn publish(&self, key: &BuildKey) -> Result<(), BuildError> {
        let _run = crate::lock::ObjectLock::acquire(
            &self.root,
            "build-run",
            &key.id(),
            crate::lock::Wait::Yes,
        )?;
        let build = {
            let _lock = super::manifest_lock(&self.root, key)?;
            let Some(mut b) = super::load(&self.root, key)? else {
                return Ok(());
            };
            b.set_status(Status::Building, Timestamp::now());
            super::save(&self.root, &b)?;
            b
        };
        self.hooks.tell(&build);
        let generation = build.generation;
        let outcome = self.write(&build);
        let _lock = super::manifest_lock(&self.root, key)?;
        let Some(mut b) = super::load(&self.root, key)? else {
            return Ok(());
        };
        let now = Timestamp::now();
        match &outcome {
            Ok(()) => {
                b.published = generation;
                b.error = None;
                b.set_status(Status::Ready, now);
            }
            Err(err) => {
                b.error = Some(crate::http::error_chain(err));
                b.set_status(Status::Failed, now);
            }
        }
        let again = b.generation > generation;
        super::save(&self.root, &b)?;
        self.hooks.tell(&b);
        if again {
            b.set_status(Status::Requested, now);
            super::save(&self.root, &b)?;
            self.hooks.tell(&b);
        } else {
            let _ = std::fs::remove_file(super::pending_marker(&self.root, key));
        }
        outcome
    }

    fn signer(&self, key: &str) -> Result<crate::signing::GpgSigner, BuildError> {
        let mut cached = self.signer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cached.as_ref() {
            return Ok(s.clone());
        }
        let s = crate::signing::GpgSigner::new(key).map_err(|source| BuildError::SignKey {
            key: key.to_owned(),
            source,
        })?;
        *cached = Some(s.clone());
        Ok(s)
    }

    /// Writes generation `build.generation`'s tree and switches `current`
    /// to it; removes trees older than the one it replaces.
    fn write(&self, build: &Build) -> Result<(), BuildError> {
        let key = &build.key;
        let dir = self.root.builds_dir().join(key.path());
        let name = format!("tree-{}", build.generation);
        let partial = dir.join(format!(".{name}.partial"));
        let final_dir = dir.join(&name);
        let publish_err = |e| BuildError::Publish {
            build: key.path(),
            source: Box::new(e),
        };
        let _pool = crate::lock::PoolGuard::writer(&self.root)?;
        // A killed publish leaves its partial folder: start afresh.
        let _ = std::fs::remove_dir_all(&partial);
        if !final_dir.exists() {
            let layout = crate::repo::ContentLayout {
                kind: build.kind,
                suite: &key.distro_version,
                component: "main",
                architectures: &[],
                files_url: format!("file://{}/", dir.display()),
            };
            let pool = crate::pool::Pool::new(&self.root);
            let content = crate::repo::packages_content(&pool, &layout, &build.packages).map_err(
                |source| BuildError::Pool {
                    build: key.path(),
                    source,
                },
            )?;
            let signer = match &self.opts.sign_key {
                Some(k) => Some(self.signer(k)?),
                None => None,
            };
            let opts = crate::promote::PublishOptions {
                snapshot: key.path(),
                dist: key.project.clone(),
                suite: Some(key.distro_version.clone()),
                // gzip only: xz's large dictionary costs more to set up
                // than a build's small indices take to compress, and
                // every apt and dnf reads gzip.
                compress: vec![crate::formats::compress::Compression::Gz],
                to: None,
                version: None,
                adopt: false,
                now: Timestamp::now(),
            };
            crate::promote::publish::write_tree(
                &self.root,
                &content,
                &partial,
                &opts,
                signer.as_ref().map(|s| s as &dyn crate::signing::Signer),
            )
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&partial);
                publish_err(e)
            })?;
            std::fs::rename(&partial, &final_dir).map_err(super::io("publish", &final_dir))?;
        }
        let current = dir.join("current");
        let previous = std::fs::read_link(&current).ok();
        crate::fsutil::switch_symlink(std::path::Path::new(&name), &current)
            .map_err(super::io("switch", &current))?;
        // Keep the tree just replaced (a client may be reading it).
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("tree-")
                    && n != name
                    && previous.as_deref() != Some(std::path::Path::new(&n))
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }
}
