//! The train file: its YAML format and the checks that need nothing but
//! the file.
//!
//! Parsing is strict (`deny_unknown_fields` everywhere, closed word sets,
//! durations and URLs checked while parsing), so a typo is an error that
//! `serde_norway` places by line and column; what needs the whole file
//! (names defined twice, a source no one defines, a release built from
//! itself) is checked after parsing and placed by its key path
//! (`releases.main.from[1]`). Resolving names against a data root is
//! [`super::plan`]'s.
//!
//! This module owns the format only: it reads the file it is given and
//! touches nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::choice::Choice;
use crate::content::RepoKind;
use crate::formats::compress::Compression;
use crate::mirror::{MirrorDef, MirrorError, Mode, Policy};
use crate::promote::dist::Stage;
use crate::snapshot::ops::MergePolicy;

/// Why a train file is not usable; every case is the user's to fix (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the train file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Broken YAML, an unknown key or a bad value; the source says where.
    #[error("invalid train file {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("invalid train file {}: {place}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        /// Where in the file, as a key path (`releases.main.from[1]`).
        place: String,
        problem: String,
    },
}

impl FileError {
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::Read { .. } | Self::Parse { .. } | Self::Invalid { .. } => {
                crate::ErrorKind::Usage
            }
        }
    }
}

/// A train file as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainFile {
    /// The train's name: its journal folder (`trains/NAME/`) and its lock.
    pub train: String,
    /// Mirrors to update and snapshot: names of existing mirrors, or
    /// inline definitions.
    #[serde(default)]
    pub mirrors: Vec<MirrorEntry>,
    /// Local repos to snapshot.
    #[serde(default)]
    pub repos: Vec<String>,
    /// Integrated releases to make, by name.
    #[serde(default)]
    pub releases: BTreeMap<String, ReleaseSpec>,
    /// Distributions to publish, by name.
    #[serde(default)]
    pub publish: BTreeMap<String, PublishSpec>,
    /// Tests to request for what changed, by distribution.
    #[serde(default)]
    pub tests: BTreeMap<String, TestSpec>,
    /// Promotions to make, by distribution.
    #[serde(default)]
    pub promote: BTreeMap<String, PromoteSpec>,
    /// Pruning of what this train made, as a last step of each run (the
    /// flags of `depot prune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Webhook URLs: each gets a JSON POST per event.
    #[serde(default)]
    pub notify: Vec<WebhookUrl>,
    /// Mirrors updated at the same time (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_concurrency: Option<usize>,
}

/// An entry of `mirrors:`: a name, or an inline definition.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MirrorEntry {
    Existing(String),
    Inline(Box<InlineMirror>),
}

impl MirrorEntry {
    pub fn name(&self) -> &str {
        match self {
            Self::Existing(n) => n,
            Self::Inline(m) => &m.name,
        }
    }
}

// By hand rather than `untagged`, so that an error inside an inline
// definition keeps its own message and place.
impl<'de> Deserialize<'de> for MirrorEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MirrorEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mirror's name or an inline mirror definition")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MirrorEntry, E> {
                Ok(MirrorEntry::Existing(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MirrorEntry, A::Error> {
                InlineMirror::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|m| MirrorEntry::Inline(Box::new(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// An inline mirror: the fields of `depot mirror create`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InlineMirror {
    pub name: String,
    pub url: String,
    pub kind: RepoKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub archs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<PathBuf>,
    #[serde(default)]
    pub no_verify: bool,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default)]
    pub with_deps: bool,
    #[serde(default)]
    pub with_sources: bool,
    #[serde(default)]
    pub with_udebs: bool,
    #[serde(default)]
    pub verify_packages: bool,
}

/// `releases: NAME: {…}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReleaseSpec {
    /// Sources in priority order.
    #[serde(default)]
    pub from: Vec<String>,
    #[serde(default = "latest", with = "word")]
    pub policy: MergePolicy,
    /// `COMP: [SOURCE, …]`: these sources' packages all go to COMP.
    #[serde(default)]
    pub components: BTreeMap<String, Vec<String>>,
}

fn latest() -> MergePolicy {
    MergePolicy::Latest
}

/// `publish: DIST: {…}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PublishSpec {
    /// A release of this train, a mirror or repo of this train (its
    /// snapshot), or an existing snapshot or release.
    pub from: String,
    /// Default: the settings file's `sign-key`; none: unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_key: Option<String>,
    /// Publish unsigned even if the settings file names a key.
    #[serde(default)]
    pub skip_signing: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    #[serde(default)]
    pub compress: Vec<Compression>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<PathBuf>,
    /// Object stores the `dev` stage is pushed to once published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<PushTarget>,
}

/// One entry of `push:` (of `publish:` or `promote:`): the flags of
/// `depot dist push`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PushTarget {
    /// `s3://BUCKET/PREFIX`.
    #[serde(with = "s3_url")]
    pub to: crate::promote::push::s3::S3Url,
    /// Default: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's, AWS's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub path_style: bool,
    #[serde(
        default = "one_hour",
        with = "duration_text",
        skip_serializing_if = "is_one_hour"
    )]
    pub delete_after: Duration,
    /// List the bucket instead of trusting the push manifest (`--verify`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
}

fn one_hour() -> Duration {
    crate::promote::push::DEFAULT_DELETE_AFTER
}

fn is_one_hour(d: &Duration) -> bool {
    *d == one_hour()
}

/// `s3://BUCKET/PREFIX`, checked while parsing.
mod s3_url {
    use super::*;
    use crate::promote::push::s3::S3Url;
    pub fn serialize<S: serde::Serializer>(v: &S3Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<S3Url, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// `tests: DIST: {…}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TestSpec {
    /// The release named in requests; default: the published suite's
    /// codename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Architectures to test; empty: all of the new version's.
    #[serde(default)]
    pub arch: Vec<String>,
    /// `spool` (the data root's) or `amqp://…`; default as `test submit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueSpec>,
    /// Where results are read; default as `test poll`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<String>,
    /// How long the gate waits for results before the promotion fails.
    #[serde(
        default = "six_hours",
        with = "duration_text",
        skip_serializing_if = "is_six_hours"
    )]
    pub timeout: Duration,
}

fn six_hours() -> Duration {
    Duration::from_secs(6 * 3600)
}

fn is_six_hours(d: &Duration) -> bool {
    *d == six_hours()
}

/// Where a train's test requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum QueueSpec {
    /// The data root's spool.
    Spool,
    /// A RabbitMQ URL (checked while parsing; it may hold a password, so
    /// it is never shown whole).
    Broker(String),
}

impl From<QueueSpec> for String {
    fn from(q: QueueSpec) -> String {
        match q {
            QueueSpec::Spool => "spool".into(),
            QueueSpec::Broker(url) => crate::testreq::amqp::BrokerUrl::parse(&url)
                .map(|b| b.shown().to_owned())
                .unwrap_or_else(|_| "amqp://***".into()),
        }
    }
}

impl<'de> Deserialize<'de> for QueueSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "spool" {
            return Ok(Self::Spool);
        }
        crate::testreq::amqp::BrokerUrl::parse(&text)
            .map(|_| Self::Broker(text))
            .map_err(|e| de::Error::custom(format!("queue: {e} (use `spool` or amqp://…)")))
    }
}

/// `promote: DIST: {…}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PromoteSpec {
    #[serde(with = "word")]
    pub to: Stage,
    /// Promote only once every test recorded for the version passed.
    #[serde(default)]
    pub require_tests: bool,
    /// Object stores the stage is pushed to once it serves `RUN`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<PushTarget>,
}

/// `retention: {…}`: the flags of `depot prune`, applied by the run's
/// last step to what this train makes (never gc: `depot gc` is separate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retention {
    /// Keep the newest N of each group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<usize>,
    /// Keep what is younger than D days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u32>,
    /// Keep the newest N versions ever released; none: every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_released: Option<usize>,
}

/// A webhook URL (http or https).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebhookUrl(pub String);

impl<'de> Deserialize<'de> for WebhookUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match url::Url::parse(&text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Self(text)),
            Ok(_) => Err(de::Error::custom(format!(
                "notify: `{text}` is not an http or https URL"
            ))),
            Err(e) => Err(de::Error::custom(format!("notify: `{text}`: {e}"))),
        }
    }
}

/// A [`Choice`] read and written as its word.
mod word {
    use super::*;
    pub fn serialize<T: Choice, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.word())
    }
    pub fn deserialize<'de, T: Choice, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        T::from_word(&text)
            .ok_or_else(|| de::Error::custom(crate::choice::UnknownWord::new::<T>(&text)))
    }
}

/// A duration read as `6h`, `30m`, … ([`crate::duration::parse`]).
mod duration_text {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", v.as_secs()))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::duration::parse(&text).map_err(de::Error::custom)
    }
}

/// What a name used as a SOURCE stands for within the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defined {
    Mirror,
    Repo,
    Release,
}

impl TrainFile {
    /// Reads and checks `path` (everything but names in the data root).
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks `text`, read from `path` (for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, FileError> {
        let file: Self = serde_norway::from_str(text).map_err(|source| FileError::Parse {
            path: path.to_owned(),
            source,
        })?;
        file.check()
            .map_err(|(place, problem)| FileError::Invalid {
                path: path.to_owned(),
                place,
                problem,
            })?;
        Ok(file)
    }

    /// What `name` stands for in this file, if it defines it.
    pub fn defined(&self, name: &str) -> Option<Defined> {
        if self.mirrors.iter().any(|m| m.name() == name) {
            Some(Defined::Mirror)
        } else if self.repos.iter().any(|r| r == name) {
            Some(Defined::Repo)
        } else if self.releases.contains_key(name) {
            Some(Defined::Release)
        } else {
            None
        }
    }

    /// Every source of release `name`, with its place in the file.
    pub fn release_sources<'a>(
        &'a self,
        name: &'a str,
        spec: &'a ReleaseSpec,
    ) -> impl Iterator<Item = (String, &'a String)> + 'a {
        let from = spec
            .from
            .iter()
            .enumerate()
            .map(move |(i, s)| (format!("releases.{name}.from[{i}]"), s));
        let comps = spec.components.iter().flat_map(move |(c, list)| {
            list.iter()
                .enumerate()
                .map(move |(i, s)| (format!("releases.{name}.components.{c}[{i}]"), s))
        });
        from.chain(comps)
    }

    /// The checks that need only the file: `(place, problem)`.
    fn check(&self) -> Result<(), (String, String)> {
        let name_ok = |what, place: String, name: &str| {
            crate::names::validate(what, name).map_err(|e| (place, e.to_string()))
        };
        name_ok("train", "train".into(), &self.train)?;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut define = |place: String, name: &str| match seen.get(name) {
            Some(first) => Err((place, format!("`{name}` is already defined at {first}"))),
            None => {
                seen.insert(name.to_owned(), place.clone());
                Ok(())
            }
        };
        for (i, m) in self.mirrors.iter().enumerate() {
            let place = match m {
                MirrorEntry::Existing(_) => format!("mirrors[{i}]"),
                MirrorEntry::Inline(_) => format!("mirrors[{i}].name"),
            };
            name_ok("mirror", place.clone(), m.name())?;
            define(place, m.name())?;
        }
        for (i, r) in self.repos.iter().enumerate() {
            name_ok("repo", format!("repos[{i}]"), r)?;
            define(format!("repos[{i}]"), r)?;
        }
        for name in self.releases.keys() {
            name_ok("release", format!("releases.{name}"), name)?;
            define(format!("releases.{name}"), name)?;
        }
        for (name, spec) in &self.releases {
            if spec.from.is_empty() && spec.components.values().all(Vec::is_empty) {
                return Err((
                    format!("releases.{name}"),
                    "a release needs at least one source (`from:` or `components:`)".into(),
                ));
            }
            for comp in spec.components.keys() {
                if comp.is_empty() || comp.contains(['/', ' ']) {
                    return Err((
                        format!("releases.{name}.components.{comp}"),
                        format!("invalid component `{comp}`"),
                    ));
                }
            }
            for (place, source) in self.release_sources(name, spec) {
                name_ok("source", place, source)?;
            }
        }
        self.check_cycles()?;
        for (dist, spec) in &self.publish {
            name_ok("distribution", format!("publish.{dist}"), dist)?;
            name_ok("source", format!("publish.{dist}.from"), &spec.from)?;
            if spec.skip_signing && spec.sign_key.is_some() {
                return Err((
                    format!("publish.{dist}.skip-signing"),
                    "give either `sign-key:` or `skip-signing: true`, not both".into(),
                ));
            }
        }
        for (section, dists) in [
            ("tests", self.tests.keys().collect::<Vec<_>>()),
            ("promote", self.promote.keys().collect()),
        ] {
            if let Some(d) = dists
                .iter()
                .find(|d| !self.publish.contains_key(d.as_str()))
            {
                return Err((
                    format!("{section}.{d}"),
                    format!("distribution `{d}` is not published by this train (no `publish.{d}`)"),
                ));
            }
        }
        if let Some(r) = &self.retention
            && r.keep_last.is_none()
            && r.keep_days.is_none()
        {
            return Err((
                "retention".into(),
                "needs `keep-last:` or `keep-days:` (or both): with neither it would keep nothing"
                    .into(),
            ));
        }
        if self.mirror_concurrency == Some(0) {
            return Err(("mirror-concurrency".into(), "must be at least 1".into()));
        }
        Ok(())
    }

    /// A release built, directly or not, from itself.
    fn check_cycles(&self) -> Result<(), (String, String)> {
        // Depth-first over releases of this file; `path` is the chain
        // being followed.
        fn visit<'a>(
            file: &'a TrainFile,
            name: &'a str,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Result<(), (String, String)> {
            if done.contains(name) {
                return Ok(());
            }
            path.push(name);
            let spec = &file.releases[name];
            for (place, source) in file.release_sources(name, spec) {
                if !file.releases.contains_key(source.as_str()) {
                    continue;
                }
                if let Some(start) = path.iter().position(|p| p == source) {
                    let mut chain: Vec<&str> = path[start..].to_vec();
                    chain.push(source);
                    return Err((place, format!("cycle: {}", chain.join(" → "))));
                }
                visit(file, source, path, done)?;
            }
            path.pop();
            done.insert(name);
            Ok(())
        }
        let mut done = BTreeSet::new();
        for name in self.releases.keys() {
            visit(self, name, &mut Vec::new(), &mut done)?;
        }
        Ok(())
    }
}

impl InlineMirror {
    /// The definition an inline mirror asks for (paths relative to `base`,
    /// the train file's folder), checked as `mirror create` checks it.
    pub fn definition(&self, base: &Path, now: jiff::Timestamp) -> Result<MirrorDef, MirrorError> {
        crate::mirror::definition(crate::mirror::CreateOptions {
            name: self.name.clone(),
            kind: self.kind,
            url: self.url.clone(),
            suite: self.suite.clone(),
            components: self.components.clone(),
            architectures: self.archs.clone(),
            keyring: self.keyring.as_ref().map(|k| base.join(k)),
            no_verify: self.no_verify,
            policy: self.policy,
            mode: self.mode,
            with_sources: self.with_sources,
            with_udebs: self.with_udebs,
            filter: self.filter.clone(),
            filter_with_deps: self.with_deps,
            client_tls: crate::http::ClientTls::default(),
            verify_packages: self.verify_packages,
            now,
        })
    }
}

/// Two definitions that ask for the same thing (creation times aside).
pub(super) fn same_definition(stored: &MirrorDef, wanted: &MirrorDef) -> bool {
    let mut wanted = wanted.clone();
    wanted.created = stored.created;
    *stored == wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TrainFile, FileError> {
        TrainFile::parse(Path::new("t.yaml"), text)
    }

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err();
        let mut s = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            s.push_str(&format!(": {c}"));
            cause = c.source();
        }
        s
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../examples/nightly.yaml");
        let f = parse(text).unwrap();
        assert_eq!(f.train, "nightly");
        assert!(!f.mirrors.is_empty() && !f.publish.is_empty());
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let e = err("train: t\nreleases:\n  r:\n    from: [a]\n    polcy: first\nrepos: [a]\n");
        assert!(
            e.contains("unknown field `polcy`") && e.contains("line 5"),
            "{e}"
        );
        let e = err(
            "train: t\nmirrors:\n  - name: m\n    url: http://x/\n    kind: apt\n    suit: s\n",
        );
        assert!(
            e.contains("unknown field `suit`") && e.contains("line 6"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_named_with_their_line() {
        let e = err("train: t\nrepos: [a]\nreleases:\n  r: {from: [a], policy: newest}\n");
        assert!(
            e.contains("unknown merge policy `newest`") && e.contains("line 4"),
            "{e}"
        );
        let e =
            err("train: t\nrepos: [a]\npublish:\n  d: {from: a}\ntests:\n  d: {timeout: soon}\n");
        assert!(e.contains("not a duration") && e.contains("line 6"), "{e}");
        let e = err("train: t\nnotify: [ftp://x/]\n");
        assert!(e.contains("not an http or https URL"), "{e}");
        let e = err("train: t\nrepos: [a]\npublish:\n  d: {from: a}\npromote:\n  d: {to: prod}\n");
        assert!(e.contains("unknown stage `prod`"), "{e}");
    }

    #[test]
    fn retention_takes_the_flags_of_prune_and_needs_a_rule() {
        let f =
            parse("train: t\nretention: {keep-last: 2, keep-days: 7, keep-released: 1}\n").unwrap();
        assert_eq!(
            f.retention,
            Some(Retention {
                keep_last: Some(2),
                keep_days: Some(7),
                keep_released: Some(1),
            })
        );
        let e = err("train: t\nretention: {keep: 3}\n");
        assert!(
            e.contains("unknown field `keep`") && e.contains("line 2"),
            "{e}"
        );
        let e = err("train: t\nretention: {keep-released: 3}\n");
        assert!(e.contains("retention: needs `keep-last:`"), "{e}");
        let e = err("train: t\nretention: {}\n");
        assert!(e.contains("retention: needs `keep-last:`"), "{e}");
    }

    #[test]
    fn cycles_and_double_definitions_are_placed() {
        let e = err(
            "train: t\nrepos: [a]\nreleases:\n  x: {from: [a, y]}\n  y: {from: [z]}\n  z: {components: {main: [x]}}\n",
        );
        assert!(e.contains("cycle: x → y → z → x"), "{e}");
        assert!(e.contains("releases.z.components.main[0]"), "{e}");
        let e = err("train: t\nrepos: [a]\nreleases:\n  a: {from: [a]}\n");
        assert!(
            e.contains("releases.a: `a` is already defined at repos[0]"),
            "{e}"
        );
    }

    #[test]
    fn tests_and_promotions_need_a_publish() {
        let e = err("train: t\npromote:\n  d: {to: release}\n");
        assert!(
            e.contains("promote.d: distribution `d` is not published"),
            "{e}"
        );
    }

    #[test]
    fn a_broker_password_is_not_serialised() {
        let f = parse(
            "train: t\nrepos: [a]\npublish:\n  d: {from: a}\ntests:\n  d: {queue: 'amqp://u:secret@h/'}\n",
        )
        .unwrap();
        assert!(!serde_json::to_string(&f).unwrap().contains("secret"));
    }
}
