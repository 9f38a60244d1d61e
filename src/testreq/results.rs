//! Test results: the `result.tar` archive of one run, and the two places
//! runs are stored — a Swift account over HTTP (autopkgtest-cloud's, what
//! britney calls `ADT_SWIFT_URL`) and a `file://` directory with the same
//! containers and object names (the embedded default, `results/` in the
//! data root).
//!
//! A Swift account is named by URL in one of two ways:
//! - `http(s)://HOST/v1/AUTH_ACCOUNT`: anonymous, read-only (britney's
//!   way: public containers are world-readable);
//! - `swift+https://HOST/v1/AUTH_ACCOUNT` (`swift+http://` to a loopback
//!   host only): authenticated with the credentials of the environment
//!   ([`super::swift`]), for writing and for reading private containers.
//!   The account is the URL's, not necessarily the credentials' own: a
//!   `readable-by` user reads the worker's account with its own token.
//!
//! A run is written object by object, `result.tar` last: a reader counts a
//! run once its `result.tar` exists, so a run cut short (a killed worker)
//! is never half-visible. In a `file://` store the run's directory is
//! staged and renamed into place.
//!
//! The stores are an enum rather than a trait: there are exactly two, the
//! poller needs both behind one value chosen from a URL at run time, and
//! async trait methods cannot be called through `dyn`.
//!
//! It owns result archives and reading and writing the two stores; it
//! never deletes a stored result.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;

use serde::Serialize;
use url::Url;

use super::swift::{self, AuthError, Credentials, Token};
use crate::http::redact;

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("invalid results URL `{url}`: {why}")]
    InvalidUrl { url: String, why: &'static str },
    #[error("{method} {url} failed")]
    Network {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} failed: HTTP {status}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
    },
    #[error("cannot authenticate to the Swift account {url}")]
    Auth {
        url: String,
        #[source]
        source: AuthError,
    },
    #[error(
        "the results URL {url} needs credentials: set ST_AUTH, ST_USER and ST_KEY, or OS_AUTH_URL and the other OS_* variables"
    )]
    NoCredentials { url: String },
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("listing {url} did not end after {pages} pages or {} s", seconds)]
    Unending {
        url: String,
        pages: usize,
        seconds: u64,
    },
}

impl ResultsError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidUrl { .. } | Self::NoCredentials { .. } => Usage,
            Self::Auth { source, .. } => source.kind(),
            Self::Network { .. }
            | Self::Status { .. }
            | Self::Io { .. }
            | Self::Client(_)
            | Self::Unending { .. } => Failure,
        }
    }
}

/// How a run ended, from autopkgtest's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// 0 (all passed) or 2 (some skipped).
    Pass,
    /// 8: the package has no tests to run.
    Neutral,
    /// 16: the testbed failed; the run says nothing about the package.
    Tmpfail,
    /// Anything else.
    Fail,
}

impl Outcome {
    pub fn from_exitcode(code: i32) -> Self {
        match code {
            0 | 2 => Self::Pass,
            8 => Self::Neutral,
            16 => Self::Tmpfail,
            _ => Self::Fail,
        }
    }
}

/// What one `result.tar` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub exitcode: i32,
    pub package: String,
    pub version: String,
    pub duration: Option<u64>,
    /// `ADT_TEST_TRIGGERS` of `testinfo.json`'s `custom_environment`
    /// (only entries with a `/`, as britney reads them).
    pub triggers: Vec<String>,
}

impl RunResult {
    pub fn outcome(&self) -> Outcome {
        Outcome::from_exitcode(self.exitcode)
    }
}

/// Members of a result archive are tiny; anything bigger is not one.
const MEMBER_LIMIT: u64 = 1 << 20;

/// Reads a `result.tar`. The error is a human-readable reason: a damaged
/// archive is reported, never fatal.
pub fn parse_result_tar(bytes: &[u8]) -> Result<RunResult, String> {
    let mut archive = tar::Archive::new(bytes);
    let (mut exitcode, mut version, mut duration, mut testinfo) = (None, None, None, None);
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| format!("bad member name: {e}"))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let slot = match name.as_str() {
            "exitcode" => &mut exitcode,
            "testpkg-version" => &mut version,
            "duration" => &mut duration,
            "testinfo.json" => &mut testinfo,
            _ => continue,
        };
        let mut text = String::new();
        entry
            .take(MEMBER_LIMIT)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        *slot = Some(text);
    }
    let exitcode = exitcode.ok_or("no exitcode member")?;
    let exitcode: i32 = exitcode
        .trim()
        .parse()
        .map_err(|_| format!("exitcode `{}` is not a number", exitcode.trim()))?;
    let version = version.ok_or("no testpkg-version member")?;
    let (package, version) = match version.split_whitespace().collect::<Vec<_>>()[..] {
        [p, v] => (p.to_owned(), v.to_owned()),
        _ => {
            return Err(format!(
                "testpkg-version `{}` is not `PACKAGE VERSION`",
                version.trim()
            ));
        }
    };
    let testinfo = testinfo.ok_or("no testinfo.json member")?;
    let testinfo: serde_json::Value =
        serde_json::from_str(&testinfo).map_err(|e| format!("testinfo.json: {e}"))?;
    let triggers = testinfo
        .get("custom_environment")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .find_map(|e| e.strip_prefix("ADT_TEST_TRIGGERS="))
        .ok_or("testinfo.json has no ADT_TEST_TRIGGERS")?
        .split_whitespace()
        .filter(|t| t.contains('/'))
        .map(str::to_owned)
        .collect();
    Ok(RunResult {
        exitcode,
        package,
        version,
        duration: duration.and_then(|d| d.trim().parse().ok()),
        triggers,
    })
}

/// Builds a `result.tar` as autopkgtest-cloud's worker does.
pub fn build_result_tar(
    exitcode: i32,
    package: &str,
    version: &str,
    duration: u64,
    testinfo: &serde_json::Value,
    mtime: u64,
) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let members: [(&str, Vec<u8>); 4] = [
        ("exitcode", format!("{exitcode}\n").into_bytes()),
        (
            "testpkg-version",
            format!("{package} {version}\n").into_bytes(),
        ),
        ("duration", format!("{duration}\n").into_bytes()),
        (
            "testinfo.json",
            serde_json::to_vec(testinfo).expect("JSON values serialise"),
        ),
    ];
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        builder
            .append_data(&mut header, name, data.as_slice())
            .expect("writing to memory cannot fail");
    }
    builder.into_inner().expect("writing to memory cannot fail")
}

/// autopkgtest-cloud's object name prefix for a package's runs:
/// `RELEASE/ARCH/PREFIX/SRCPKG/`.
pub fn package_prefix(release: &str, arch: &str, package: &str) -> String {
    format!(
        "{release}/{arch}/{}/{package}/",
        crate::formats::apt::pool_prefix(package)
    )
}

/// Where runs are stored.
#[derive(Debug, Clone)]
pub enum Store {
    /// `file://DIR`: `DIR/CONTAINER/OBJECT`.
    File(PathBuf),
    /// A Swift account URL: `URL/CONTAINER/OBJECT`.
    Swift(SwiftStore),
}

#[derive(Debug, Clone)]
pub struct SwiftStore {
    base: Url,
    client: reqwest::Client,
    attempts: u32,
    /// `None` for anonymous reads (`http(s)://`).
    auth: Option<Arc<SwiftAuth>>,
}

/// The credentials of a `swift+` URL and the token they last got, shared
/// by the clones of a store.
#[derive(Debug)]
struct SwiftAuth {
    credentials: Credentials,
    token: tokio::sync::Mutex<Option<Token>>,
}

/// The objects of one run, as a worker stores them.
#[derive(Debug, Clone, Copy)]
pub struct RunObjects<'a> {
    pub container: &'a str,
    /// `RELEASE/ARCH/PREFIX/SRCPKG/RUNID@`.
    pub run: &'a str,
    /// Shared buffers: an upload and its retries send them without a copy.
    pub result_tar: &'a bytes::Bytes,
    pub log_gz: &'a bytes::Bytes,
    pub artifacts_tar_gz: &'a bytes::Bytes,
    /// Users granted read access to a private run's container (the
    /// request's `swiftuser`, then its `readable-by`); empty for a public
    /// run. A `file://` store has no access control.
    pub readers: &'a [String],
}

impl Store {
    /// `file://DIR`, an anonymous `http(s)://` Swift account URL, or an
    /// authenticated `swift+https://` one (`swift+http://` to loopback).
    /// Credentials come from the environment ([`swift::Credentials::from_env`]),
    /// never from the URL: results URLs are recorded with tests and shown.
    pub fn open(url: &str) -> Result<Self, ResultsError> {
        let invalid = |why| ResultsError::InvalidUrl {
            url: Url::parse(url).map_or_else(|_| url.to_owned(), |u| redact(&u)),
            why,
        };
        let parsed = Url::parse(url).map_err(|_| invalid("not a URL"))?;
        let (base, authenticated) = match parsed.scheme() {
            "file" => {
                return parsed
                    .to_file_path()
                    .map(Store::File)
                    .map_err(|()| invalid("not a local path"));
            }
            "http" | "https" => (parsed, false),
            "swift+http" | "swift+https" => {
                let base = Url::parse(&url["swift+".len()..]).map_err(|_| invalid("not a URL"))?;
                if base.password().is_some() {
                    return Err(invalid(
                        "put no password in a results URL: use the ST_* or OS_* variables",
                    ));
                }
                if swift::check_transport(&base).is_err() {
                    return Err(invalid(
                        "swift+http:// sends a token in clear: use it for a loopback host only",
                    ));
                }
                (base, true)
            }
            _ => return Err(invalid("use file://, http(s):// or swift+https://")),
        };
        if base
            .path_segments()
            .is_none_or(|mut s| s.all(str::is_empty))
        {
            return Err(invalid("name the account: …/v1/AUTH_ACCOUNT"));
        }
        let auth = if authenticated {
            let credentials = swift::Credentials::from_env()
                .map_err(|source| ResultsError::Auth {
                    url: redact(&base),
                    source,
                })?
                .ok_or_else(|| ResultsError::NoCredentials { url: redact(&base) })?;
            Some(Arc::new(SwiftAuth {
                credentials,
                token: tokio::sync::Mutex::new(None),
            }))
        } else {
            None
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("depot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(ResultsError::Client)?;
        Ok(Store::Swift(SwiftStore {
            base,
            client,
            attempts: 4,
            auth,
        }))
    }

    /// The URL of an object, as shown to people (for log links).
    pub fn object_url(&self, container: &str, object: &str) -> String {
        match self {
            Store::File(dir) => format!("file://{}/{container}/{object}", dir.display()),
            Store::Swift(s) => redact(&s.object_url(container, object)),
        }
    }

    /// Every run below `prefix` in `container`, as object-name prefixes
    /// ending in `@`, sorted (so oldest first: run ids start with the time).
    /// A container that does not exist has no runs.
    pub async fn list_runs(
        &self,
        container: &str,
        prefix: &str,
    ) -> Result<Vec<String>, ResultsError> {
        match self {
            Store::File(dir) => list_file_runs(&dir.join(container), prefix),
            Store::Swift(s) => s.list_runs(container, prefix).await,
        }
    }

    /// An object's bytes; `None` if it does not exist.
    pub async fn get(
        &self,
        container: &str,
        object: &str,
    ) -> Result<Option<Vec<u8>>, ResultsError> {
        match self {
            Store::File(dir) => {
                let path = dir.join(container).join(object);
                match std::fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(ResultsError::Io { path, source }),
                }
            }
            Store::Swift(s) => s.get(container, object).await,
        }
    }

    /// Checks that runs can be stored here, before a worker takes a
    /// request: a Swift store needs credentials, and they must work.
    pub async fn check_writable(&self) -> Result<(), ResultsError> {
        match self {
            Store::File(_) => Ok(()),
            Store::Swift(s) => {
                let auth = s.auth.as_ref().ok_or_else(|| s.read_only())?;
                s.token(auth).await.map(drop)
            }
        }
    }

    /// Stores a run; returns where it is (a directory, or the run's URL).
    /// Nothing of it counts as a result until this returns: a `file://`
    /// run appears by rename, a Swift run once `result.tar` (the last
    /// object) is stored.
    pub async fn put_run(&self, run: &RunObjects<'_>) -> Result<String, ResultsError> {
        match self {
            Store::File(dir) => put_file_run(dir, run),
            Store::Swift(s) => s.put_run(run).await,
        }
    }
}

fn list_file_runs(container: &Path, prefix: &str) -> Result<Vec<String>, ResultsError> {
    let dir = container.join(prefix);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ResultsError::Io { path: dir, source }),
    };
    let mut runs: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        // Runs appear by rename once complete; temp dirs start with a dot.
        .filter(|n| n.ends_with('@') && !n.starts_with('.'))
        .map(|n| format!("{prefix}{n}"))
        .collect();
    runs.sort();
    Ok(runs)
}

fn put_file_run(dir: &Path, run: &RunObjects<'_>) -> Result<String, ResultsError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ResultsError::Io { path, source }
    };
    let final_path = dir.join(run.container).join(run.run);
    let parent = final_path
        .parent()
        .ok_or_else(|| ResultsError::Io {
            path: final_path.clone(),
            source: std::io::Error::other("a run has a parent directory"),
        })?
        .to_owned();
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    for (name, bytes) in run.objects() {
        let path = staging.path().join(name);
        write_synced(&path, bytes).map_err(io(&path))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &final_path).map_err(io(&final_path))?;
    Ok(final_path.display().to_string())
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl RunObjects<'_> {
    /// The objects in upload order: `result.tar` last.
    fn objects(&self) -> [(&'static str, &bytes::Bytes); 3] {
        [
            ("log.gz", self.log_gz),
            ("artifacts.tar.gz", self.artifacts_tar_gz),
            ("result.tar", self.result_tar),
        ]
    }
}

/// One page of a Swift container listing (plain text, a name a line):
/// the names past `marker`, in the order given, and the marker of the next
/// page: the greatest of them, or `None` when the page brings nothing new,
/// which ends the listing. Swift sends names sorted, so the greatest is the
/// last; taking the greatest also ends a listing whose server ignores
/// `marker` or sends names unsorted, after one repeated page.
pub fn listing_page<'a>(page: &'a str, marker: Option<&str>) -> (Vec<&'a str>, Option<&'a str>) {
    let new: Vec<&str> = page
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|name| marker.is_none_or(|m| *name > m))
        .collect();
    let next = new.iter().max().copied();
    (new, next)
}

/// The run folders (`…/RUNID@`) among a listing's names under `prefix`.
pub fn run_dirs<'a>(names: &[&'a str], prefix: &str) -> impl Iterator<Item = &'a str> {
    names
        .iter()
        .copied()
        .filter(move |l| l.ends_with('@') && l.starts_with(prefix))
}

/// Listing pages one poll may request of one container, and how long it
/// may take in all (each request has its own timeouts too).
const LIST_MAX_PAGES: usize = 1_000;
const LIST_MAX_TIME: Duration = Duration::from_secs(600);

/// What a GET returned, before interpretation.
enum Reply {
    Body(Vec<u8>),
    NoContent,
    Missing,
    /// 403 to an authenticated reader.
    Denied,
}

/// autopkgtest-cloud's read ACL of a public results container: anyone
/// may read objects and list (britney reads anonymously).
const PUBLIC_READ: &str = ".r:*,.rlistings";

impl SwiftStore {
    fn container_url(&self, container: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(container);
        }
        url
    }

    fn read_only(&self) -> ResultsError {
        ResultsError::InvalidUrl {
            url: redact(&self.base),
            why: "storing results needs credentials: use swift+https://",
        }
    }

    fn object_url(&self, container: &str, object: &str) -> Url {
        let mut url = self.container_url(container);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(object.split('/'));
        }
        url
    }

    /// The current token, authenticating first if there is none or it is
    /// about to expire.
    async fn token(&self, auth: &SwiftAuth) -> Result<swift::Secret, ResultsError> {
        let mut slot = auth.token.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| t.fresh()) {
            return Ok(t.token.clone());
        }
        let token = swift::authenticate(&self.client, &auth.credentials)
            .await
            .map_err(|source| ResultsError::Auth {
                url: redact(&self.base),
                source,
            })?;
        tracing::debug!(
            user = %auth.credentials.who(),
            account = %redact(&self.base),
            own_account = ?token.storage_url.as_ref().map(redact),
            "authenticated to Swift"
        );
        let secret = token.token.clone();
        *slot = Some(token);
        Ok(secret)
    }

    /// Forgets `used` if it is still the current token (another request
    /// may have renewed it already).
    async fn expire(&self, auth: &SwiftAuth, used: &swift::Secret) {
        let mut slot = auth.token.lock().await;
        if slot.as_ref().is_some_and(|t| &t.token == used) {
            *slot = None;
        }
    }

    /// One request, with the token if authenticated: a 401 renews the
    /// token once (it expired or was revoked) and retries; timeouts,
    /// connection failures, 502, 503 and 504 — of the request or of the
    /// authentication before it — are retried with backoff (Swift proxies
    /// answer those under load). Every request here is idempotent.
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<&bytes::Bytes>,
    ) -> Result<reqwest::Response, ResultsError> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        let mut renewed = false;
        loop {
            let token = match &self.auth {
                Some(auth) => match self.token(auth).await {
                    Ok(t) => Some(t),
                    Err(ResultsError::Auth { source, .. })
                        if source.is_transient() && attempt < self.attempts =>
                    {
                        tracing::debug!(url = %redact(url), attempt, "authentication failed ({source}), retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                        attempt += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
                None => None,
            };
            let mut request = self.client.request(method.clone(), url.clone());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(t) = &token {
                // A token that is no header value is the server's doing;
                // the request then goes without it and is refused.
                if let Ok(value) = t.header() {
                    request = request.header("X-Auth-Token", value);
                }
            }
            if let Some(b) = body {
                request = request.body(b.clone());
            }
            let result = request.send().await;
            if let (Ok(resp), Some(auth), Some(used)) = (&result, &self.auth, &token)
                && resp.status() == reqwest::StatusCode::UNAUTHORIZED
                && !renewed
            {
                tracing::debug!(url = %redact(url), "token refused; authenticating again");
                self.expire(auth, used).await;
                renewed = true;
                continue;
            }
            let transient = match &result {
                Ok(resp) => matches!(resp.status().as_u16(), 502..=504),
                Err(e) => e.is_timeout() || e.is_connect(),
            };
            if transient && attempt < self.attempts {
                tracing::debug!(url = %redact(url), attempt, "transient failure, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
                continue;
            }
            return result.map_err(|source| ResultsError::Network {
                method: method_name(method),
                url: redact(url),
                source,
            });
        }
    }

    fn status_error(method: &Method, url: &Url, resp: &reqwest::Response) -> ResultsError {
        ResultsError::Status {
            method: method_name(method),
            url: redact(url),
            status: resp.status().as_u16(),
        }
    }

    async fn fetch(&self, url: &Url) -> Result<Reply, ResultsError> {
        let resp = self.send(&Method::GET, url, &[], None).await?;
        match resp.status().as_u16() {
            200 => Ok(Reply::Body(
                resp.bytes()
                    .await
                    .map_err(|source| ResultsError::Network {
                        method: "GET",
                        url: redact(url),
                        source,
                    })?
                    .to_vec(),
            )),
            204 => Ok(Reply::NoContent),
            // Anonymously, Swift answers 401 for a container that does not
            // exist (britney treats it so); with a token, 401 survived a
            // renewal and is an error. 404 is a missing object or container.
            401 if self.auth.is_none() => Ok(Reply::Missing),
            404 => Ok(Reply::Missing),
            403 if self.auth.is_some() => Ok(Reply::Denied),
            _ => Err(Self::status_error(&Method::GET, url, &resp)),
        }
    }

    async fn list_runs(&self, container: &str, prefix: &str) -> Result<Vec<String>, ResultsError> {
        let mut runs = Vec::new();
        let mut marker: Option<String> = None;
        let started = std::time::Instant::now();
        // Swift returns at most 10,000 names per request, sorted: page with
        // `marker` until a page brings no name past it. A server that
        // ignores `marker` (a static copy of a listing, a proxy dropping
        // query strings) sends the same page again, which brings nothing
        // new and ends the listing; the page count and the clock bound
        // what is left (10 M names, far past any real package's runs).
        for pages in 0.. {
            if pages == LIST_MAX_PAGES || started.elapsed() > LIST_MAX_TIME {
                return Err(ResultsError::Unending {
                    url: redact(&self.container_url(container)),
                    pages,
                    seconds: LIST_MAX_TIME.as_secs(),
                });
            }
            let mut url = self.container_url(container);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("delimiter", "@")
                    .append_pair("prefix", prefix);
                if let Some(m) = &marker {
                    q.append_pair("marker", m);
                }
            }
            let page = match self.fetch(&url).await? {
                Reply::Body(b) => String::from_utf8_lossy(&b).into_owned(),
                Reply::NoContent | Reply::Missing => break,
                // Swift cannot tell another account's reader whether a
                // container exists: a private container a worker has not
                // created yet is refused as one the reader may not read.
                // Like britney's 401 when anonymous, that is "no runs yet";
                // a gate waiting on it times out rather than fails.
                Reply::Denied => {
                    tracing::warn!(
                        "{} refused to list {} (HTTP 403): no runs yet, or {} may not read them",
                        redact(&self.base),
                        container,
                        self.auth
                            .as_ref()
                            .map_or_else(String::new, |a| a.credentials.who())
                    );
                    break;
                }
            };
            let (new, next) = listing_page(&page, marker.as_deref());
            let Some(next) = next else { break };
            runs.extend(run_dirs(&new, prefix).map(str::to_owned));
            marker = Some(next.to_owned());
        }
        runs.sort();
        runs.dedup();
        Ok(runs)
    }

    async fn get(&self, container: &str, object: &str) -> Result<Option<Vec<u8>>, ResultsError> {
        let url = self.object_url(container, object);
        match self.fetch(&url).await? {
            Reply::Body(b) => Ok(Some(b)),
            Reply::NoContent => Ok(Some(Vec::new())),
            Reply::Missing => Ok(None),
            Reply::Denied => Err(ResultsError::Status {
                method: "GET",
                url: redact(&url),
                status: 403,
            }),
        }
    }

    /// Creates `container` if it is missing, readable as `readers` say
    /// (everyone when empty); adds missing readers to an existing private
    /// container's read ACL.
    async fn ensure_container(
        &self,
        container: &str,
        readers: &[String],
    ) -> Result<(), ResultsError> {
        let url = self.container_url(container);
        // autopkgtest-cloud grants `*:USER`: that user in any project.
        let wanted: Vec<String> = readers.iter().map(|u| format!("*:{u}")).collect();
        let head = self.send(&Method::HEAD, &url, &[], None).await?;
        match head.status().as_u16() {
            200 | 204 => {
                if wanted.is_empty() {
                    return Ok(());
                }
                let current: Vec<String> = head
                    .headers()
                    .get("x-container-read")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect();
                let missing: Vec<&String> =
                    wanted.iter().filter(|w| !current.contains(w)).collect();
                if missing.is_empty() {
                    return Ok(());
                }
                let acl = current
                    .iter()
                    .chain(missing)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(",");
                let resp = self
                    .send(&Method::POST, &url, &[("X-Container-Read", &acl)], None)
                    .await?;
                if !resp.status().is_success() {
                    return Err(Self::status_error(&Method::POST, &url, &resp));
                }
                Ok(())
            }
            404 => {
                let acl = if wanted.is_empty() {
                    PUBLIC_READ.to_owned()
                } else {
                    wanted.join(",")
                };
                tracing::info!(container, "creating the Swift container");
                let resp = self
                    .send(&Method::PUT, &url, &[("X-Container-Read", &acl)], None)
                    .await?;
                if !resp.status().is_success() {
                    return Err(Self::status_error(&Method::PUT, &url, &resp));
                }
                Ok(())
            }
            _ => Err(Self::status_error(&Method::HEAD, &url, &head)),
        }
    }

    async fn put_run(&self, run: &RunObjects<'_>) -> Result<String, ResultsError> {
        if self.auth.is_none() {
            return Err(self.read_only());
        }
        self.ensure_container(run.container, run.readers).await?;
        for (name, bytes) in run.objects() {
            let url = self.object_url(run.container, &format!("{}/{name}", run.run));
            let resp = self.send(&Method::PUT, &url, &[], Some(bytes)).await?;
            if !resp.status().is_success() {
                return Err(Self::status_error(&Method::PUT, &url, &resp));
            }
        }
        Ok(redact(&self.object_url(run.container, run.run)))
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        _ => "GET",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testinfo(triggers: &str) -> serde_json::Value {
        serde_json::json!({ "custom_environment": [format!("ADT_TEST_TRIGGERS={triggers}")] })
    }

    #[test]
    fn built_archives_parse_back() {
        let tar = build_result_tar(
            2,
            "hello",
            "2.10-3",
            42,
            &testinfo("glibc/2.40-1 hello/2.10-3"),
            0,
        );
        let r = parse_result_tar(&tar).unwrap();
        assert_eq!(r.exitcode, 2);
        assert_eq!(r.outcome(), Outcome::Pass);
        assert_eq!(
            (r.package.as_str(), r.version.as_str()),
            ("hello", "2.10-3")
        );
        assert_eq!(r.duration, Some(42));
        assert_eq!(r.triggers, vec!["glibc/2.40-1", "hello/2.10-3"]);
    }

    #[test]
    fn exit_codes_map_as_autopkgtest_defines_them() {
        use Outcome::*;
        for (code, want) in [
            (0, Pass),
            (2, Pass),
            (4, Fail),
            (6, Fail),
            (8, Neutral),
            (12, Fail),
            (16, Tmpfail),
            (20, Fail),
        ] {
            assert_eq!(Outcome::from_exitcode(code), want, "{code}");
        }
    }

    #[test]
    fn damaged_archives_are_reasons_not_panics() {
        assert!(parse_result_tar(b"garbage").is_err());
        assert!(parse_result_tar(&[0u8; 2048]).is_err());
        let tar = build_result_tar(0, "hello", "1", 1, &serde_json::json!({}), 0);
        assert!(
            parse_result_tar(&tar)
                .unwrap_err()
                .contains("ADT_TEST_TRIGGERS")
        );
        let tar = build_result_tar(0, "hello", "1", 1, &testinfo("a/1"), 0);
        assert!(parse_result_tar(&tar[..700]).is_err());
    }

    /// A server that stalls past the client's read timeout once is retried
    /// (autopkgtest-cloud's Swift does stall under load); the client here
    /// times out after 200 ms instead of a minute.
    #[test]
    fn a_stalled_swift_is_retried_after_the_read_timeout() {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|r| r > 2) {
                        line.clear();
                    }
                    if n == 0 {
                        // Say nothing for much longer than the timeout.
                        std::thread::sleep(Duration::from_secs(5));
                        return;
                    }
                    let mut stream = stream;
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
                });
            }
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = SwiftStore {
            base: Url::parse(&format!("http://{addr}/v1/AUTH_test")).unwrap(),
            client: reqwest::Client::builder()
                .read_timeout(Duration::from_millis(200))
                .build()
                .unwrap(),
            attempts: 4,
            auth: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let got = rt.block_on(store.get("autopkgtest-noble", "noble/amd64/h/hello/x@/log.gz"));
        assert_eq!(got.unwrap(), Some(b"hello".to_vec()));
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "did not wait out the stall"
        );
    }

    #[test]
    fn prefixes_follow_the_debian_pool_rule() {
        assert_eq!(
            package_prefix("noble", "amd64", "libpng1.6"),
            "noble/amd64/libp/libpng1.6/"
        );
        assert_eq!(
            package_prefix("noble", "amd64", "hello"),
            "noble/amd64/h/hello/"
        );
    }
}
