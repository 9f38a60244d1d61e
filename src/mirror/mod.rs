//! Mirrors: definitions of upstream repositories and keeping a verified
//! local copy of them in the pool.
//!
//! A mirror is a hand-editable YAML definition (`mirrors/NAME.yaml`) plus
//! the state of its last successful update (`mirrors/NAME.state.json`),
//! which names the verified index blobs. An update builds the complete new
//! state — every index verified against the signed Release, every package
//! verified and pooled — before it replaces the state file, so a failed or
//! killed update leaves the previous state untouched, and a rerun resumes
//! (pooled packages are not fetched again).
//!
//! This module owns `mirrors/` (through [`crate::store`]); it adds to the
//! pool but never removes from it, and never touches snapshots (they hold their own pool references, so
//! dropping a mirror cannot break one).

pub mod apt;
mod download;
pub mod rpm;
pub mod rpm_verify;
mod steps;

use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::content::{Content, RepoKind};
use crate::digest::Sha256Digest;
use crate::http::FetchError;
use crate::lock::LockError;
use crate::names::InvalidName;
use crate::pool::PoolError;
use crate::signing::SigningError;
use crate::store::{Format, ObjectKind, Store, StoreError};

/// When package files are downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// During `mirror update`.
    #[default]
    Immediate,
    /// The first time something needs the bytes (publishing).
    OnDemand,
}

/// What happens to packages that upstream dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Each update makes the mirror equal to upstream.
    #[default]
    Mirror,
    /// Packages upstream dropped stay (Pulp's "additive" sync); rpm only.
    Additive,
}

impl crate::choice::Choice for Policy {
    const WHAT: &'static str = "policy";
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (
            Self::Immediate,
            "immediate",
            "Download package files during `mirror update`",
        ),
        (
            Self::OnDemand,
            "on-demand",
            "Keep metadata only; fetch a package the first time it is published",
        ),
    ];
}
crate::choice_words!(Policy);

impl crate::choice::Choice for Mode {
    const WHAT: &'static str = "mode";
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (
            Self::Mirror,
            "mirror",
            "Each update makes the mirror equal to upstream",
        ),
        (
            Self::Additive,
            "additive",
            "Keep packages upstream dropped (rpm only)",
        ),
    ];
}
crate::choice_words!(Mode);

/// A mirror definition, as stored in `mirrors/NAME.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorDef {
    pub name: String,
    pub kind: RepoKind,
    pub url: String,
    /// apt: the suite under `dists/`, or a flat directory ending in `/`.
    #[serde(default)]
    pub suite: String,
    /// Components to mirror; empty means all the Release file lists.
    #[serde(default)]
    pub components: Vec<String>,
    /// Architectures to mirror; empty means all the Release file lists.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Keyring that upstream signatures are checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<PathBuf>,
    /// Skip signature checks (checksums are still verified).
    #[serde(default)]
    pub no_verify: bool,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub with_sources: bool,
    #[serde(default)]
    pub with_udebs: bool,
    /// Only packages matching this query (aptly syntax) are mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// With `filter`: also every dependency of what it selects.
    #[serde(default)]
    pub filter_with_deps: bool,
    /// Client certificate and key for an upstream behind an x509 guard
    /// (another depot's `serve`), and a CA bundle to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// rpm: also check each package's own signature against `keyring`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify_packages: bool,
    pub created: Timestamp,
}

impl MirrorDef {
    /// How upstream is verified, in words, for `mirror show`.
    pub fn verification(&self) -> String {
        match (&self.keyring, self.no_verify) {
            (_, true) => "no (--no-verify)".to_owned(),
            (Some(k), false) if self.verify_packages => {
                format!("keyring {} (and each package's signature)", k.display())
            }
            (Some(k), false) => format!("keyring {}", k.display()),
            (None, false) => "?".to_owned(),
        }
    }

    pub fn client_tls(&self) -> crate::http::ClientTls {
        crate::http::ClientTls {
            cert: self.client_cert.clone(),
            key: self.client_key.clone(),
            ca: self.ca_cert.clone(),
        }
    }

    pub fn is_flat(&self) -> bool {
        self.suite.ends_with('/')
    }

    /// A digest of what the definition asks to fetch; a change (say, a new
    /// architecture) makes the next update a full one even if upstream's
    /// Release did not change.
    pub fn fetch_digest(&self) -> Sha256Digest {
        let mut key = serde_json::json!([
            self.url,
            self.suite,
            self.components,
            self.architectures,
            self.keyring,
            self.no_verify,
            self.policy,
            self.mode,
            self.with_sources,
            self.with_udebs,
            self.filter,
            self.filter_with_deps,
            self.client_cert,
            self.client_key,
            self.ca_cert,
        ]);
        // Appended only when set, so older definitions keep their digest.
        if self.verify_packages
            && let Some(a) = key.as_array_mut()
        {
            a.push("verify-packages".into());
        }
        Sha256Digest::of(key.to_string().as_bytes())
    }
}

/// What the last successful update fetched (`mirrors/NAME.state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorState {
    pub updated: Timestamp,
    /// SHA-256 of the raw upstream InRelease (or Release + Release.gpg).
    pub release_raw: Sha256Digest,
    /// [`MirrorDef::fetch_digest`] of the definition used.
    pub fetch_digest: Sha256Digest,
    pub content: Content,
    /// Package files not pooled yet (policy on-demand).
    #[serde(default)]
    pub deferred: usize,
}

/// The signed index (and which of its fields) a metadata file is checked
/// against, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedIndex {
    /// apt's `Release`/`InRelease`.
    Release,
    /// rpm's `repomd.xml`: `checksum` and `size` of the file as served.
    Repomd,
    /// rpm's `repomd.xml`: `open-checksum` and `open-size`, of the file
    /// once decompressed.
    RepomdOpen,
}

impl std::fmt::Display for SignedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Release => "Release",
            Self::Repomd => "repomd.xml",
            Self::RepomdOpen => "repomd.xml (open-checksum, open-size)",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{} of {total} mirror updates failed: {}", failed.len(), failed.join(", "))]
    SomeFailed { failed: Vec<String>, total: usize },
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Query(#[from] crate::packages::query::QueryError),
    #[error("mirror `{mirror}`: cannot apply the filter")]
    Filter {
        mirror: String,
        #[source]
        source: crate::packages::pkgset::PackageSetError,
    },
    /// The definition (flags of `mirror create`/`edit`, or the hand-edited
    /// YAML) is not usable; a usage error.
    #[error("invalid mirror definition: {0}")]
    InvalidDefinition(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot resolve the path {}", path.display())]
    ReadDef {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("mirror `{mirror}`: cannot read an index")]
    Index {
        mirror: String,
        #[source]
        source: crate::content::IndexError,
    },
    #[error("mirror `{mirror}`: {what}")]
    Fetch {
        mirror: String,
        what: String,
        #[source]
        source: Box<FetchError>,
    },
    #[error("mirror `{mirror}`: the signature of {url} does not verify")]
    Signature {
        mirror: String,
        url: String,
        #[source]
        source: SigningError,
    },
    #[error(
        "mirror `{mirror}`: {url} is not signed (no InRelease or Release.gpg for apt, no repomd.xml.asc for rpm); recreate the mirror with --no-verify to accept unsigned repositories"
    )]
    Unsigned { mirror: String, url: String },
    #[error("mirror `{mirror}`: {url} is malformed")]
    Malformed {
        mirror: String,
        url: String,
        #[source]
        source: Box<crate::formats::apt::AptFormatError>,
    },
    #[error("mirror `{mirror}`: {problem}")]
    Upstream { mirror: String, problem: String },
    /// A path from upstream metadata (`what` names the field) that does
    /// not resolve to a URL under the repository it came from.
    #[error("mirror `{mirror}`: upstream {what} `{value}` is not a URL under {base}")]
    UpstreamUrl {
        mirror: String,
        what: &'static str,
        value: String,
        base: String,
        #[source]
        source: Option<url::ParseError>,
    },
    /// `subject` is a URL, or "the uncompressed content of URL".
    #[error("mirror `{mirror}`: {subject} does not match the signed {signed}")]
    IndexMismatch {
        mirror: String,
        subject: String,
        signed: SignedIndex,
        #[source]
        source: Box<PoolError>,
    },
    #[error("mirror `{mirror}`: cannot decompress {url}")]
    Decompress {
        mirror: String,
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mirror `{mirror}`: {failed} of {total} downloads failed; the previous state is kept")]
    Downloads {
        mirror: String,
        failed: usize,
        total: usize,
        #[source]
        first: Box<FetchError>,
    },
    #[error(
        "mirror `{mirror}`: package {package} fails its signature check; the previous state is kept"
    )]
    PackageCheck {
        mirror: String,
        package: String,
        #[source]
        source: Box<rpm_verify::PackageCheckError>,
    },
    #[error("mirror `{mirror}`: cannot store in the pool")]
    Pool {
        mirror: String,
        #[source]
        source: PoolError,
    },
}

impl MirrorError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidName(_) | Self::InvalidDefinition(_) | Self::Query(_) => Usage,
            Self::Lock(l) => l.kind(),
            Self::Store(s) => s.kind(),
            // Upstream data, however malformed or hostile, fails the update;
            // it is not the user's request that is wrong.
            Self::Upstream { .. }
            | Self::UpstreamUrl { .. }
            | Self::Malformed { .. }
            | Self::IndexMismatch { .. }
            | Self::Unsigned { .. }
            | Self::Signature { .. }
            | Self::Index { .. }
            | Self::Decompress { .. }
            | Self::Fetch { .. }
            | Self::Downloads { .. }
            | Self::PackageCheck { .. }
            | Self::Filter { .. }
            | Self::Pool { .. }
            | Self::ReadDef { .. }
            | Self::SomeFailed { .. } => Failure,
        }
    }
}

/// Options of `depot mirror create`.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    pub kind: RepoKind,
    pub url: String,
    pub suite: Option<String>,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    pub keyring: Option<PathBuf>,
    pub no_verify: bool,
    pub policy: Policy,
    pub mode: Mode,
    pub with_sources: bool,
    pub with_udebs: bool,
    pub filter: Option<String>,
    pub filter_with_deps: bool,
    pub client_tls: crate::http::ClientTls,
    pub verify_packages: bool,
    pub now: Timestamp,
}

/// `mirrors/NAME.yaml`.
fn defs(root: &crate::root::Root) -> Store<MirrorDef> {
    Store::files(
        ObjectKind::Mirror,
        root.mirrors_dir(),
        ".yaml",
        Format::Yaml,
    )
    .with_header("# depot mirror definition; edit by hand or with `depot mirror edit`.\n")
}

/// `mirrors/NAME.state.json`.
pub(crate) fn states(root: &crate::root::Root) -> Store<MirrorState> {
    Store::files(
        ObjectKind::MirrorState,
        root.mirrors_dir(),
        ".state.json",
        Format::Json,
    )
}

/// Checks a definition (new, edited or loaded from its hand-editable
/// YAML); every problem is the user's to fix.
fn validate(def: &MirrorDef) -> Result<(), MirrorError> {
    crate::names::validate("mirror", &def.name)?;
    validate_url(def)?;
    validate_verification(def)?;
    validate_kind_options(def)?;
    validate_paths(def)?;
    validate_verify_packages(def)?;
    validate_files_and_filter(def)
}

fn validate_url(def: &MirrorDef) -> Result<(), MirrorError> {
    let url = Url::parse(&def.url)
        .map_err(|e| MirrorError::InvalidDefinition(format!("URL `{}`: {e}", def.url)))?;
    if !matches!(url.scheme(), "http" | "https" | "file") {
        return Err(MirrorError::InvalidDefinition(format!(
            "URL `{}`: the scheme must be http, https or file",
            def.url
        )));
    }
    Ok(())
}

/// A keyring or --no-verify.
fn validate_verification(def: &MirrorDef) -> Result<(), MirrorError> {
    match (&def.keyring, def.no_verify) {
        (Some(_), true) => {
            return Err(MirrorError::InvalidDefinition(
                "give either a keyring or --no-verify, not both".into(),
            ));
        }
        (None, false) => {
            return Err(MirrorError::InvalidDefinition(
                "a keyring is required to verify upstream signatures (--keyring FILE), or --no-verify to skip verification".into(),
            ));
        }
        (Some(k), false) if !k.is_file() => {
            return Err(MirrorError::InvalidDefinition(format!(
                "keyring {} does not exist",
                k.display()
            )));
        }
        _ => {}
    }
    Ok(())
}

/// Options that apply to one kind of repository only.
fn validate_kind_options(def: &MirrorDef) -> Result<(), MirrorError> {
    match def.kind {
        RepoKind::Apt if def.suite.is_empty() => {
            return Err(MirrorError::InvalidDefinition(
                "an apt mirror needs --suite".into(),
            ));
        }
        RepoKind::Apt if def.mode == Mode::Additive => {
            return Err(MirrorError::InvalidDefinition(
                "--mode additive is supported for rpm mirrors only".into(),
            ));
        }
        RepoKind::Rpm
            if !def.suite.is_empty()
                || !def.components.is_empty()
                || !def.architectures.is_empty()
                || def.with_sources
                || def.with_udebs =>
        {
            return Err(MirrorError::InvalidDefinition(
                "--suite, --component, --arch, --with-sources and --with-udebs apply to apt mirrors only".into(),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// The suite, components and architectures become URL paths.
fn validate_paths(def: &MirrorDef) -> Result<(), MirrorError> {
    let flat_suite = def.suite.trim_end_matches('/');
    if !flat_suite.is_empty()
        && crate::formats::apt::unsafe_path_reason(flat_suite).is_some()
        && flat_suite != "."
    {
        return Err(MirrorError::InvalidDefinition(format!(
            "suite `{}` is not a safe path",
            def.suite
        )));
    }
    for word in def.components.iter().chain(&def.architectures) {
        if word.is_empty() || word.contains(['/', ' ']) || word.starts_with('.') {
            return Err(MirrorError::InvalidDefinition(format!(
                "`{word}` is not a valid component or architecture"
            )));
        }
    }
    Ok(())
}

fn validate_verify_packages(def: &MirrorDef) -> Result<(), MirrorError> {
    if def.verify_packages {
        let why = match (def.kind, def.policy, def.no_verify) {
            (RepoKind::Apt, _, _) => Some(
                "--verify-packages applies to rpm mirrors only (apt packages carry no signatures of their own)",
            ),
            (_, Policy::OnDemand, _) => Some(
                "--verify-packages needs --policy immediate (on-demand packages are fetched at publish, unchecked)",
            ),
            (_, _, true) => Some("--verify-packages needs --keyring"),
            _ => None,
        };
        if let Some(why) = why {
            return Err(MirrorError::InvalidDefinition(why.into()));
        }
    }
    Ok(())
}

fn validate_files_and_filter(def: &MirrorDef) -> Result<(), MirrorError> {
    if def.client_cert.is_some() != def.client_key.is_some() {
        return Err(MirrorError::InvalidDefinition(
            "--client-cert and --client-key go together".into(),
        ));
    }
    for f in [&def.client_cert, &def.client_key, &def.ca_cert]
        .into_iter()
        .flatten()
    {
        if !f.is_file() {
            return Err(MirrorError::InvalidDefinition(format!(
                "{} does not exist",
                f.display()
            )));
        }
    }
    if let Some(q) = &def.filter {
        crate::packages::query::Query::parse(q)?;
    } else if def.filter_with_deps {
        return Err(MirrorError::InvalidDefinition(
            "--with-deps needs --filter".into(),
        ));
    }
    if def.is_flat() && (def.with_sources || def.with_udebs) && !def.components.is_empty() {
        return Err(MirrorError::InvalidDefinition(
            "a flat repository has no components".into(),
        ));
    }
    Ok(())
}

fn abs(p: Option<PathBuf>) -> Result<Option<PathBuf>, MirrorError> {
    p.map(|p| {
        std::path::absolute(&p).map_err(|source| MirrorError::ReadDef {
            path: p.clone(),
            source,
        })
    })
    .transpose()
}

/// `depot mirror create`: stores a new definition.
pub fn create(root: &crate::root::Root, opts: CreateOptions) -> Result<MirrorDef, MirrorError> {
    let def = definition(opts)?;
    defs(root).create(&def.name, &def)?;
    Ok(def)
}

/// The definition `create` would store, checked, without storing it (a
/// train checks its inline mirrors before anything runs).
pub fn definition(opts: CreateOptions) -> Result<MirrorDef, MirrorError> {
    let keyring = match opts.keyring {
        Some(k) => Some(
            std::path::absolute(&k).map_err(|source| MirrorError::ReadDef {
                path: k.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let mut url = opts.url;
    if !url.ends_with('/') {
        url.push('/');
    }
    let def = MirrorDef {
        name: opts.name,
        kind: opts.kind,
        url,
        suite: opts.suite.unwrap_or_default(),
        components: opts.components,
        architectures: opts.architectures,
        keyring,
        no_verify: opts.no_verify,
        policy: opts.policy,
        mode: opts.mode,
        with_sources: opts.with_sources,
        with_udebs: opts.with_udebs,
        filter: opts.filter,
        filter_with_deps: opts.filter_with_deps,
        client_cert: abs(opts.client_tls.cert)?,
        client_key: abs(opts.client_tls.key)?,
        ca_cert: abs(opts.client_tls.ca)?,
        verify_packages: opts.verify_packages,
        created: opts.now,
    };
    validate(&def)?;
    Ok(def)
}

/// The stored definition of `name`, if there is one (not checked).
pub fn load_opt(root: &crate::root::Root, name: &str) -> Result<Option<MirrorDef>, MirrorError> {
    crate::names::validate("mirror", name)?;
    Ok(defs(root).load_opt(name)?)
}

pub fn load(root: &crate::root::Root, name: &str) -> Result<MirrorDef, MirrorError> {
    crate::names::validate("mirror", name)?;
    let defs = defs(root);
    let def = defs.load(name)?;
    if def.name != name {
        return Err(MirrorError::InvalidDefinition(format!(
            "{} names the mirror `{}`; the file name says `{name}`",
            defs.path(name).display(),
            def.name
        )));
    }
    validate(&def)?;
    Ok(def)
}

pub fn load_state(
    root: &crate::root::Root,
    name: &str,
) -> Result<Option<MirrorState>, MirrorError> {
    Ok(states(root).load_opt(name)?)
}

fn save_state(
    root: &crate::root::Root,
    name: &str,
    state: &MirrorState,
) -> Result<(), MirrorError> {
    Ok(states(root).save(name, state)?)
}

/// A mirror and its last update, for `list` and `show`.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorInfo {
    #[serde(flatten)]
    pub def: MirrorDef,
    pub last_update: Option<Timestamp>,
    pub packages: Option<usize>,
    pub deferred: Option<usize>,
}

fn info(root: &crate::root::Root, def: MirrorDef) -> Result<MirrorInfo, MirrorError> {
    let state = load_state(root, &def.name)?;
    Ok(MirrorInfo {
        last_update: state.as_ref().map(|s| s.updated),
        packages: state.as_ref().map(|s| s.content.package_count()),
        deferred: state.as_ref().map(|s| s.deferred),
        def,
    })
}

/// `depot mirror list`.
pub fn list(root: &crate::root::Root) -> Result<Vec<MirrorInfo>, MirrorError> {
    defs(root)
        .load_listed()?
        .into_iter()
        .map(|(_, def)| info(root, def?))
        .collect()
}

/// `depot mirror show`.
pub fn show(root: &crate::root::Root, name: &str) -> Result<MirrorInfo, MirrorError> {
    info(root, load(root, name)?)
}

/// Changes `depot mirror edit` may make.
#[derive(Debug, Clone, Default)]
pub struct EditOptions {
    pub url: Option<String>,
    pub suite: Option<String>,
    pub components: Option<Vec<String>>,
    pub architectures: Option<Vec<String>>,
    pub keyring: Option<PathBuf>,
    pub no_verify: Option<bool>,
    pub policy: Option<Policy>,
    pub mode: Option<Mode>,
    /// `Some(None)` removes the filter.
    pub filter: Option<Option<String>>,
    pub filter_with_deps: Option<bool>,
    pub with_sources: Option<bool>,
    pub with_udebs: Option<bool>,
    pub verify_packages: Option<bool>,
}

/// `depot mirror edit`: changes a definition (under the mirror's lock, so an
/// update in progress finishes with the definition it started with).
pub fn edit(
    root: &crate::root::Root,
    name: &str,
    changes: EditOptions,
) -> Result<MirrorDef, MirrorError> {
    let _lock = crate::lock::ObjectLock::acquire(root, "mirror", name, crate::lock::Wait::No)?;
    let mut def = load(root, name)?;
    if let Some(mut url) = changes.url {
        if !url.ends_with('/') {
            url.push('/');
        }
        def.url = url;
    }
    if let Some(s) = changes.suite {
        def.suite = s;
    }
    if let Some(c) = changes.components {
        def.components = c;
    }
    if let Some(a) = changes.architectures {
        def.architectures = a;
    }
    if let Some(k) = changes.keyring {
        def.keyring = Some(
            std::path::absolute(&k).map_err(|source| MirrorError::ReadDef {
                path: k.clone(),
                source,
            })?,
        );
        def.no_verify = false;
    }
    if let Some(nv) = changes.no_verify {
        def.no_verify = nv;
        if nv {
            def.keyring = None;
        }
    }
    if let Some(p) = changes.policy {
        def.policy = p;
    }
    if let Some(m) = changes.mode {
        def.mode = m;
    }
    if let Some(f) = changes.filter {
        if f.is_none() {
            def.filter_with_deps = false;
        }
        def.filter = f;
    }
    if let Some(w) = changes.filter_with_deps {
        def.filter_with_deps = w;
    }
    if let Some(s) = changes.with_sources {
        def.with_sources = s;
    }
    if let Some(v) = changes.verify_packages {
        def.verify_packages = v;
    }
    if let Some(u) = changes.with_udebs {
        def.with_udebs = u;
    }
    validate(&def)?;
    defs(root).save(name, &def)?;
    Ok(def)
}

/// `depot mirror drop`: removes the definition and state. Pooled blobs stay
/// (snapshots may reference them; `depot gc` removes what nothing uses).
pub fn drop_mirror(root: &crate::root::Root, name: &str) -> Result<(), MirrorError> {
    let _lock = crate::lock::ObjectLock::acquire(root, "mirror", name, crate::lock::Wait::No)?;
    load(root, name)?;
    states(root).remove_if_present(name)?;
    defs(root).remove_if_present(name)?;
    Ok(())
}

/// Options of `depot mirror update`.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// Parallel package downloads.
    pub concurrency: usize,
    pub now: Timestamp,
}

/// What an update did.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateSummary {
    pub mirror: String,
    /// False when upstream had not changed since the last update.
    pub changed: bool,
    pub indices: usize,
    pub packages: usize,
    pub downloaded_files: usize,
    pub downloaded_bytes: u64,
    /// Files already in the pool (from this or another mirror).
    pub already_pooled: usize,
    /// Files left for on-demand fetching.
    pub deferred: usize,
    /// Packages the filter left out.
    #[serde(skip_serializing_if = "is_zero")]
    pub filtered_out: usize,
    /// Dependencies of filtered packages nothing upstream satisfies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsatisfied: Vec<crate::packages::pkgset::Unsatisfied>,
}

impl UpdateSummary {
    /// The summary of an update that found upstream unchanged, if it did:
    /// same raw top-level metadata and same definition as last time.
    fn unchanged(
        def: &MirrorDef,
        previous: Option<&MirrorState>,
        release_raw: Sha256Digest,
    ) -> Option<Self> {
        let prev = previous?;
        if prev.release_raw != release_raw || prev.fetch_digest != def.fetch_digest() {
            return None;
        }
        Some(Self {
            mirror: def.name.clone(),
            changed: false,
            indices: match &prev.content {
                Content::Apt(a) => a.indices.len(),
                Content::Rpm(r) => r.metadata.len(),
            },
            packages: prev.content.package_count(),
            downloaded_files: 0,
            downloaded_bytes: 0,
            already_pooled: 0,
            deferred: prev.deferred,
            filtered_out: 0,
            unsatisfied: Vec::new(),
        })
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Content narrowed by the mirror's filter, how many packages it left out
/// and the dependencies nothing upstream satisfies.
pub(crate) type Filtered = (Content, usize, Vec<crate::packages::pkgset::Unsatisfied>);

/// Applies the mirror's filter to freshly fetched content: the kept
/// packages' entries, verbatim, as new index blobs; `None` without a
/// filter.
pub(crate) fn apply_filter(
    root: &crate::root::Root,
    def: &MirrorDef,
    content: &Content,
) -> Result<Option<Filtered>, MirrorError> {
    let Some(q) = &def.filter else {
        return Ok(None);
    };
    let query = crate::packages::query::Query::parse(q)?;
    let catalogs = crate::packages::catalog::Cache::new(root);
    let pool = catalogs.pool();
    let filter_err = |source| MirrorError::Filter {
        mirror: def.name.clone(),
        source,
    };
    let set = crate::packages::pkgset::PackageSet::load(&catalogs, content).map_err(filter_err)?;
    let (selected, unsatisfied) =
        crate::packages::pkgset::select(&set, &query, def.filter_with_deps);
    let picks: Vec<_> = (0..set.len())
        .filter(|&i| selected[i])
        .map(|i| (0, i))
        .collect();
    let out = set.len() - picks.len();
    let filtered = crate::packages::pkgset::build(pool, std::slice::from_ref(&set), &[], &picks)
        .map_err(filter_err)?;
    Ok(Some((filtered, out, unsatisfied)))
}

/// `depot mirror update NAME`.
pub async fn update(
    root: &crate::root::Root,
    name: &str,
    opts: &UpdateOptions,
    reporter: &dyn crate::report::Reporter,
) -> Result<UpdateSummary, MirrorError> {
    let _lock = crate::lock::ObjectLock::acquire(root, "mirror", name, crate::lock::Wait::No)?;
    // Held until the new state (naming what was pooled or found pooled)
    // is saved: gc must not collect any of it meanwhile.
    let _pool = crate::lock::PoolGuard::writer(root)?;
    let def = load(root, name)?;
    let previous = load_state(root, name)?;
    let run = steps::Run::start(root, &def, opts, reporter)?;
    let (state, summary) = match def.kind {
        RepoKind::Apt => run.steps(&apt::Apt::new(&def)?, previous.as_ref()).await?,
        RepoKind::Rpm => run.steps(&rpm::Rpm::new(&def)?, previous.as_ref()).await?,
    };
    if let Some(state) = state {
        save_state(root, name, &state)?;
    }
    Ok(summary)
}

/// Which mirrors `mirror update` takes.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every defined mirror, in name order.
    All,
    Names(Vec<String>),
}

/// `depot mirror update A B …` / `--all`: updates the mirrors one after
/// another and goes on past a failed one, since a nightly job should get
/// as much as it can. With one mirror, its error is returned as it is;
/// with several, each failure is reported as [`Event::Failed`] and the
/// error says how many failed. The summaries of the updates that worked
/// come back either way.
///
/// [`Event::Failed`]: crate::report::Event::Failed
pub async fn update_many(
    root: &crate::root::Root,
    selection: &Selection,
    opts: &UpdateOptions,
    reporter: &dyn crate::report::Reporter,
) -> (Vec<UpdateSummary>, Result<(), MirrorError>) {
    let names = match selection {
        Selection::Names(names) => names.clone(),
        Selection::All => match list(root) {
            Ok(all) => all.into_iter().map(|m| m.def.name).collect(),
            Err(e) => return (Vec::new(), Err(e)),
        },
    };
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for name in &names {
        match update(root, name, opts, reporter).await {
            Ok(summary) => done.push(summary),
            Err(error) if names.len() > 1 => {
                reporter.report(crate::report::Event::Failed {
                    subject: name,
                    error: &error,
                });
                failed.push(name.clone());
            }
            Err(error) => return (done, Err(error)),
        }
    }
    let result = if failed.is_empty() {
        Ok(())
    } else {
        Err(MirrorError::SomeFailed {
            failed,
            total: names.len(),
        })
    };
    (done, result)
}
