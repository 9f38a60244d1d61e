//! One test request: validation of everything a user may type, encoding to
//! autopkgtest-cloud's message body, and decoding a body as its workers do.
//!
//! Validation happens before anything is queued, so a bad `--trigger` on
//! the third architecture never leaves the first two requests behind. The
//! character classes follow autopkgtest-web's (Debian Policy 5.6.1 and
//! 5.6.12 for names and versions), narrowed where theirs let shell
//! metacharacters through (`env` values).

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("invalid {field} `{value}`: {why}")]
    Invalid {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("invalid request: {0}")]
    Combination(&'static str),
    #[error("malformed request on queue `{queue}`: {why}")]
    Malformed { queue: String, why: String },
}

impl RequestError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            // A malformed request on a queue is refused as bad input too.
            Self::Invalid { .. } | Self::Combination(_) | Self::Malformed { .. } => Usage,
        }
    }
}

/// Which of autopkgtest-cloud's four queues of a release/arch a request
/// goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// `debci-RELEASE-ARCH`
    Default,
    /// `debci-huge-RELEASE-ARCH`: tests that need big instances.
    Huge,
    /// `debci-ppa-RELEASE-ARCH`: tests against PPAs.
    Ppa,
    /// `debci-upstream-RELEASE-ARCH`: tests of upstream git branches.
    Upstream,
}

impl crate::choice::Choice for QueueKind {
    const WHAT: &'static str = "queue kind";
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (Self::Default, "default", "debci-RELEASE-ARCH"),
        (Self::Huge, "huge", "debci-huge-RELEASE-ARCH"),
        (Self::Ppa, "ppa", "debci-ppa-RELEASE-ARCH (needs --ppa)"),
        (
            Self::Upstream,
            "upstream",
            "debci-upstream-RELEASE-ARCH (needs --build-git or --test-git)",
        ),
    ];
}
crate::choice_words!(QueueKind);

impl QueueKind {
    pub const ALL: [QueueKind; 4] = [Self::Default, Self::Huge, Self::Ppa, Self::Upstream];

    /// The queue's name for `release`/`arch` (both already validated).
    pub fn queue_name(self, release: &str, arch: &str) -> String {
        match self {
            Self::Default => format!("debci-{release}-{arch}"),
            Self::Huge => format!("debci-huge-{release}-{arch}"),
            Self::Ppa => format!("debci-ppa-{release}-{arch}"),
            Self::Upstream => format!("debci-upstream-{release}-{arch}"),
        }
    }

    /// Parses a queue name back into (kind, release, arch).
    pub fn parse_queue_name(name: &str) -> Option<(QueueKind, &str, &str)> {
        let rest = name.strip_prefix("debci-")?;
        let parts: Vec<&str> = rest.split('-').collect();
        let (kind, release, arch) = match parts[..] {
            [release, arch] => (Self::Default, release, arch),
            ["huge", release, arch] => (Self::Huge, release, arch),
            ["ppa", release, arch] => (Self::Ppa, release, arch),
            ["upstream", release, arch] => (Self::Upstream, release, arch),
            _ => return None,
        };
        (is_word(release) && is_word(arch)).then_some((kind, release, arch))
    }
}

/// The JSON half of a message body. Fields are declared in sorted key
/// order so that serde writes them as autopkgtest-web does
/// (`json.dumps(..., sort_keys=True)`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Params {
    /// Workers only check that the key exists, so `None` must mean absent
    /// (never `false`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub all_proposed: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_git: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ppas: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    pub readable_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swiftuser: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_bzr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_git: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub testname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<String>,
}

/// `"all-proposed": null` is still "present" for a worker.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    Ok(Some(serde_json::Value::deserialize(d)?))
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// One request: one package on one release/arch, bound for one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub package: String,
    pub release: String,
    pub arch: String,
    pub kind: QueueKind,
    pub params: Params,
}

impl Request {
    pub fn queue(&self) -> String {
        self.kind.queue_name(&self.release, &self.arch)
    }

    /// The message body: `PACKAGE\nJSON`.
    pub fn body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(128);
        body.extend_from_slice(self.package.as_bytes());
        body.push(b'\n');
        serde_json::to_writer(&mut body, &self.params).expect("request params serialise");
        body
    }

    /// Decodes a body taken from `queue` the way autopkgtest-cloud's worker
    /// does: split at the first newline, a name of `[a-zA-Z0-9.+-]`, a JSON
    /// object whose known keys have the documented types (unknown keys,
    /// such as autopkgtest-web's `uuid`, are ignored).
    pub fn decode(queue: &str, body: &[u8]) -> Result<Self, RequestError> {
        let malformed = |why: String| RequestError::Malformed {
            queue: queue.to_owned(),
            why,
        };
        let (kind, release, arch) = QueueKind::parse_queue_name(queue)
            .ok_or_else(|| malformed("not an autopkgtest-cloud queue name".into()))?;
        let text = std::str::from_utf8(body).map_err(|_| malformed("body is not UTF-8".into()))?;
        let (package, json) = text
            .split_once('\n')
            .ok_or_else(|| malformed("no newline between package name and parameters".into()))?;
        if package.is_empty()
            || !package
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
        {
            return Err(malformed(format!("invalid package name `{package}`")));
        }
        let params: Params = serde_json::from_str(json)
            .map_err(|e| malformed(format!("parameters are not the expected JSON: {e}")))?;
        Ok(Self {
            package: package.to_owned(),
            release: release.to_owned(),
            arch: arch.to_owned(),
            kind,
            params,
        })
    }

    /// The Swift container results of this request land in.
    pub fn container(&self) -> String {
        container_name(
            &self.release,
            self.params.ppas.last().map(String::as_str),
            self.params.swiftuser.is_some(),
        )
    }
}

/// autopkgtest-cloud's container naming: `autopkgtest-RELEASE`, with
/// `-LPUSER-PPA` of the last PPA, `private-` for private runs.
pub fn container_name(release: &str, last_ppa: Option<&str>, private: bool) -> String {
    let mut name = String::new();
    if private {
        name.push_str("private-");
    }
    name.push_str("autopkgtest-");
    name.push_str(release);
    if let Some(ppa) = last_ppa {
        name.push('-');
        name.push_str(&ppa.replace('/', "-"));
    }
    name
}

/// What `depot test submit` was asked for, before validation.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    pub package: String,
    pub release: String,
    pub archs: Vec<String>,
    pub triggers: Vec<String>,
    pub ppas: Vec<String>,
    pub env: Vec<String>,
    /// `URL` and an optional branch.
    pub test_git: Option<(String, Option<String>)>,
    /// `URL[#REF]`
    pub build_git: Option<String>,
    pub test_bzr: Option<String>,
    pub all_proposed: bool,
    pub testname: Option<String>,
    pub swiftuser: Option<String>,
    pub readable_by: Vec<String>,
    pub requester: Option<String>,
    pub kind: QueueKind,
    pub submit_time: Timestamp,
}

impl RequestOptions {
    /// Validates everything and builds one request per architecture.
    pub fn build(&self) -> Result<Vec<Request>, RequestError> {
        check("package", &self.package, is_name, NAME_WHY)?;
        check("release", &self.release, is_word, WORD_WHY)?;
        if self.archs.is_empty() {
            return Err(RequestError::Combination("give at least one --arch"));
        }
        for arch in &self.archs {
            check("arch", arch, is_word, WORD_WHY)?;
        }
        for (i, arch) in self.archs.iter().enumerate() {
            if self.archs[..i].contains(arch) {
                return Err(RequestError::Invalid {
                    field: "arch",
                    value: arch.clone(),
                    why: "given twice",
                });
            }
        }
        for t in &self.triggers {
            check(
                "trigger",
                t,
                is_trigger,
                "must be SRCPKG/VERSION (a Debian source package name and version)",
            )?;
        }
        for p in &self.ppas {
            check(
                "ppa",
                p,
                is_ppa,
                "must be USER/PPA (lowercase letters, digits and `.+-`)",
            )?;
        }
        for e in &self.env {
            check(
                "env",
                e,
                is_env,
                "must be KEY=VALUE: KEY of letters, digits and `_` (starting with a letter), VALUE of letters, digits, spaces and `.:~/=,+_-`",
            )?;
        }
        let test_git = match &self.test_git {
            None => None,
            Some((url, branch)) => {
                check("test-git URL", url, is_git_url, GIT_WHY)?;
                match branch {
                    Some(b) => {
                        check(
                            "test-git branch",
                            b,
                            is_ref,
                            "use letters, digits and `._/-`, not starting with `-`",
                        )?;
                        Some(format!("{url} {b}"))
                    }
                    None => Some(url.clone()),
                }
            }
        };
        if let Some(b) = &self.build_git {
            check(
                "build-git",
                b,
                is_build_git,
                "must be an http(s) git URL, optionally followed by #REF",
            )?;
        }
        if let Some(b) = &self.test_bzr {
            check(
                "test-bzr",
                b,
                is_bzr_url,
                "must be an http(s) URL or lp:BRANCH",
            )?;
        }
        if [
            test_git.is_some(),
            self.build_git.is_some(),
            self.test_bzr.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count()
            > 1
        {
            return Err(RequestError::Combination(
                "--test-git, --build-git and --test-bzr exclude each other",
            ));
        }
        if let Some(t) = &self.testname {
            check("testname", t, is_name, NAME_WHY)?;
        }
        if let Some(u) = &self.swiftuser {
            check("swiftuser", u, is_user, USER_WHY)?;
        }
        for u in &self.readable_by {
            check("readable-by", u, is_user, USER_WHY)?;
        }
        if !self.readable_by.is_empty() && self.swiftuser.is_none() {
            return Err(RequestError::Combination(
                "--readable-by needs --swiftuser (only private results have readers)",
            ));
        }
        if let Some(r) = &self.requester {
            check("requester", r, is_user, USER_WHY)?;
        }
        // autopkgtest-web's rules for the migration reference run, which
        // tests the package against the release without any trigger.
        if self.triggers.iter().any(|t| t == "migration-reference/0") {
            if self.triggers.len() != 1 {
                return Err(RequestError::Combination(
                    "migration-reference/0 cannot be combined with other triggers",
                ));
            }
            if !self.ppas.is_empty() {
                return Err(RequestError::Combination(
                    "migration-reference/0 cannot be combined with --ppa",
                ));
            }
            if self.all_proposed {
                return Err(RequestError::Combination(
                    "migration-reference/0 cannot be combined with --all-proposed",
                ));
            }
        }
        match self.kind {
            QueueKind::Ppa if self.ppas.is_empty() => {
                return Err(RequestError::Combination(
                    "--queue-kind ppa needs at least one --ppa",
                ));
            }
            QueueKind::Upstream if self.build_git.is_none() && test_git.is_none() => {
                return Err(RequestError::Combination(
                    "--queue-kind upstream needs --build-git or --test-git",
                ));
            }
            _ => {}
        }
        let params = Params {
            all_proposed: self.all_proposed.then_some(serde_json::Value::Bool(true)),
            build_git: self.build_git.clone(),
            env: self.env.clone(),
            ppas: self.ppas.clone(),
            readable_by: self.readable_by.clone(),
            requester: self.requester.clone(),
            // autopkgtest-web's format (`%Y-%m-%d %H:%M:%S%z`, UTC).
            submit_time: Some(
                self.submit_time
                    .strftime("%Y-%m-%d %H:%M:%S+0000")
                    .to_string(),
            ),
            swiftuser: self.swiftuser.clone(),
            test_bzr: self.test_bzr.clone(),
            test_git,
            testname: self.testname.clone(),
            triggers: self.triggers.clone(),
        };
        Ok(self
            .archs
            .iter()
            .map(|arch| Request {
                package: self.package.clone(),
                release: self.release.clone(),
                arch: arch.clone(),
                kind: self.kind,
                params: params.clone(),
            })
            .collect())
    }
}

const NAME_WHY: &str = "use lowercase letters, digits and `.+-`, starting with a letter or digit (at least two characters)";
const WORD_WHY: &str =
    "use lowercase letters, digits and `._+` (no `-`: it separates queue name parts)";
const USER_WHY: &str = "use letters, digits and `._+-`, starting with a letter or digit";
const GIT_WHY: &str = "must be an http(s) URL of letters, digits and `._/~+-`";

fn check(
    field: &'static str,
    value: &str,
    ok: fn(&str) -> bool,
    why: &'static str,
) -> Result<(), RequestError> {
    if ok(value) {
        Ok(())
    } else {
        Err(RequestError::Invalid {
            field,
            value: value.to_owned(),
            why,
        })
    }
}

/// A source package name: `[a-z0-9][a-z0-9.+-]+`.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..].iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'+' | b'-')
        })
}

/// A version: `[a-zA-Z0-9.+:~-]+`.
pub fn is_version(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b':' | b'~' | b'-'))
}

/// A release or architecture: becomes part of queue names and paths.
pub fn is_word(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'+')
        })
}

pub fn is_trigger(s: &str) -> bool {
    match s.split_once('/') {
        Some((src, ver)) => is_name(src) && is_version(ver),
        None => false,
    }
}

fn is_ppa(s: &str) -> bool {
    match s.split_once('/') {
        Some((user, ppa)) => is_name(user) && is_name(ppa),
        None => false,
    }
}

fn is_env(s: &str) -> bool {
    let Some((key, value)) = s.split_once('=') else {
        return false;
    };
    let k = key.as_bytes();
    k.len() >= 2
        && k[0].is_ascii_alphabetic()
        && k.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && value.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'.' | b':' | b'~' | b'/' | b' ' | b'=' | b',' | b'+' | b'_' | b'-'
                )
        })
}

fn url_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b'~' | b'+' | b'-')
        })
}

fn is_git_url(s: &str) -> bool {
    s.strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .is_some_and(|rest| url_chars(rest) && !rest.starts_with('/'))
}

fn is_ref(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b'-'))
}

fn is_build_git(s: &str) -> bool {
    match s.split_once('#') {
        Some((url, r)) => is_git_url(url) && is_ref(r),
        None => is_git_url(s),
    }
}

fn is_bzr_url(s: &str) -> bool {
    is_git_url(s) || s.strip_prefix("lp:").is_some_and(url_chars)
}

fn is_user(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RequestOptions {
        RequestOptions {
            package: "hello".into(),
            release: "noble".into(),
            archs: vec!["amd64".into()],
            triggers: vec![],
            ppas: vec![],
            env: vec![],
            test_git: None,
            build_git: None,
            test_bzr: None,
            all_proposed: false,
            testname: None,
            swiftuser: None,
            readable_by: vec![],
            requester: None,
            kind: QueueKind::Default,
            submit_time: "2026-11-22T10:24:35Z".parse().unwrap(),
        }
    }

    #[test]
    fn body_is_name_newline_sorted_json_without_unset_keys() {
        let mut o = opts();
        o.triggers = vec!["glibc/2.40-1ubuntu1".into()];
        o.ppas = vec!["user/ppa".into()];
        let r = o.build().unwrap().remove(0);
        assert_eq!(r.queue(), "debci-noble-amd64");
        assert_eq!(
            String::from_utf8(r.body()).unwrap(),
            "hello\n{\"ppas\":[\"user/ppa\"],\"submit-time\":\"2026-11-22 10:24:35+0000\",\"triggers\":[\"glibc/2.40-1ubuntu1\"]}"
        );
    }

    #[test]
    fn all_proposed_is_present_only_when_set() {
        let mut o = opts();
        assert!(
            !String::from_utf8(o.build().unwrap()[0].body())
                .unwrap()
                .contains("all-proposed")
        );
        o.all_proposed = true;
        assert!(
            String::from_utf8(o.build().unwrap()[0].body())
                .unwrap()
                .contains("\"all-proposed\":true")
        );
    }

    #[test]
    fn invalid_fields_are_named() {
        type Mutation = Box<dyn Fn(&mut RequestOptions)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("package", Box::new(|o| o.package = "Hello".into())),
            ("release", Box::new(|o| o.release = "noble-proposed".into())),
            ("arch", Box::new(|o| o.archs = vec!["amd-64".into()])),
            (
                "trigger",
                Box::new(|o| o.triggers = vec!["glibc 2.40".into()]),
            ),
            (
                "trigger",
                Box::new(|o| o.triggers = vec!["glibc/2.40/1".into()]),
            ),
            ("ppa", Box::new(|o| o.ppas = vec!["noslash".into()])),
            ("env", Box::new(|o| o.env = vec!["NOVALUE".into()])),
            ("env", Box::new(|o| o.env = vec!["A=$(rm -rf /)".into()])),
            (
                "test-git URL",
                Box::new(|o| o.test_git = Some(("ftp://x/y".into(), None))),
            ),
            (
                "test-git branch",
                Box::new(|o| o.test_git = Some(("https://x/y".into(), Some("-rf".into())))),
            ),
            (
                "build-git",
                Box::new(|o| o.build_git = Some("https://x/y#a b".into())),
            ),
            ("testname", Box::new(|o| o.testname = Some("a b".into()))),
        ];
        for (field, mutate) in cases {
            let mut o = opts();
            mutate(&mut o);
            match o.build() {
                Err(RequestError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn readable_by_needs_swiftuser() {
        let mut o = opts();
        o.readable_by = vec!["alice".into()];
        assert!(matches!(o.build(), Err(RequestError::Combination(_))));
        o.swiftuser = Some("bob".into());
        let r = o.build().unwrap().remove(0);
        assert_eq!(r.container(), "private-autopkgtest-noble");
    }

    #[test]
    fn decode_reads_what_encode_wrote_and_what_others_write() {
        let mut o = opts();
        o.test_git = Some(("https://git.example/x.git".into(), Some("main".into())));
        o.archs = vec!["amd64".into(), "arm64".into()];
        let reqs = o.build().unwrap();
        for r in &reqs {
            assert_eq!(&Request::decode(&r.queue(), &r.body()).unwrap(), r);
        }
        // autopkgtest-web adds `uuid` and may send readable-by as a string.
        let r = Request::decode(
            "debci-ppa-noble-s390x",
            b"libfoo\n{\"readable-by\": \"alice\", \"uuid\": \"x\", \"ppas\": [\"a/b\"]}",
        )
        .unwrap();
        assert_eq!(r.kind, QueueKind::Ppa);
        assert_eq!(r.arch, "s390x");
        assert_eq!(r.params.readable_by, vec!["alice"]);
        assert_eq!(r.container(), "autopkgtest-noble-a-b");
    }

    #[test]
    fn decode_rejects_what_workers_reject() {
        for body in [
            &b"hello {\"triggers\": []}"[..],
            b"hel lo\n{}",
            b"hello\nnot json",
            b"hello\n{\"triggers\": \"a/1\"}",
            b"\n{}",
        ] {
            assert!(
                Request::decode("debci-noble-amd64", body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn queue_names_round_trip() {
        for kind in QueueKind::ALL {
            let q = kind.queue_name("noble", "amd64");
            assert_eq!(
                QueueKind::parse_queue_name(&q),
                Some((kind, "noble", "amd64"))
            );
        }
        assert_eq!(QueueKind::parse_queue_name("debci-a-b-c-d"), None);
    }
}
