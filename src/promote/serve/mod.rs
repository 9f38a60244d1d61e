//! `depot serve`: the publish root over HTTP, with each stage's guard
//! enforced.
//!
//! Paths are `/DIST/dev/…`, `/DIST/release/…` (the stage pointers) and
//! `/DIST/VERSION/…`. A version's level is `release` once it has been
//! promoted to release (until a rollback of `release` to an older version
//! withdraws it), else `dev`; a reader admitted by the guard of stage S may
//! read every version whose level is S or later (dev readers read dev and
//! released versions, release readers only released ones). Credentials are
//! `Authorization: Bearer TOKEN` or basic auth with the token as password,
//! checked against token guards.
//!
//! A refused request gets 401 (no credentials: no token, no client
//! certificate) or 403 (credentials the guard does not admit), with an
//! empty body and the same headers, decided before any file is looked up.
//! An unknown distribution is answered as a distribution whose guards admit
//! nobody: 401 without credentials, 403 with any. So a refusal never tells
//! whether a distribution, version or file exists; only a reader the
//! guard admits can get a 404.
//!
//! With `--tls-cert/--tls-key` it serves HTTPS and asks for (without
//! requiring) a client certificate chaining to one of the x509 guards' CAs;
//! a request is admitted by an x509 guard when its certificate chain
//! verifies against that guard's own CA bundle and is within its validity
//! period, and its subject (`CN=…,O=…`) matches the guard's `--subject`
//! pattern when it has one.
//!
//! `/api/…` and `/r/…` belong to CI build repositories: serve routes them
//! to [`crate::build::api`] and runs its builder in the background (those
//! write under `builds/`, through [`crate::build`]).
//!
//! This module itself only reads: distributions, guards and published
//! files; it never writes to the data root or a publish root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::dist::{self, DistInfo};
use super::guard::{self, GuardKind};
use super::shared::{FileList, LIST, PathHashes};
use crate::root::{PublishRoot, Root};

mod conn;
pub use conn::Limits;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the TLS certificate or key {}", path.display())]
    TlsFile {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("invalid TLS configuration")]
    Tls(#[source] rustls::Error),
    #[error("cannot build the client-certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("cannot sign build repositories with `{key}`")]
    SignKey {
        key: String,
        #[source]
        source: crate::signing::SigningError,
    },
}

impl ServeError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::Bind { .. }
            | Self::TlsFile { .. }
            | Self::Tls(_)
            | Self::Verifier(_)
            | Self::SignKey { .. } => Failure,
        }
    }
}

type Chain = Arc<Vec<rustls_pki_types::CertificateDer<'static>>>;

/// What a request needs to know about a distribution, cached until the
/// distribution's records or stage pointers change (checked with a stat and
/// two readlinks per request instead of reading every version record).
struct Cache {
    dists: std::sync::Mutex<std::collections::HashMap<String, (Stamp, Arc<DistInfo>)>>,
    /// Each x509 guard's client-certificate verifier, until its CA bundle
    /// changes (its modification time).
    verifiers: std::sync::Mutex<std::collections::HashMap<String, (CaStamp, Verifier)>>,
    /// What the file lists of the versions read lately say, by version
    /// folder, with the inode of the list they were read from.
    lists: std::sync::Mutex<std::collections::HashMap<PathBuf, (u64, Arc<Served>)>>,
}

/// How many versions' file lists [`Cache`] keeps. A 63k-package version
/// costs 0.5 MB here; a reader who walks more versions than this makes
/// serve read a list (~20 ms) per request.
const LISTS_KEPT: usize = 64;

/// What serve keeps of a version's file list ([`crate::promote::shared`]):
/// its header, and the shared paths it names (8 bytes a file instead of
/// the list's ~110).
struct Served {
    /// The list without its files.
    header: FileList,
    shared: PathHashes<()>,
}

/// [`Cache::listed`]'s answer.
enum Listed {
    /// A version without a list (the older layout).
    None,
    Cached(Arc<Served>),
    /// To be read (the list's inode).
    Unread(u64),
}

type CaStamp = Option<std::time::SystemTime>;
type Verifier = Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>;

#[derive(Clone, PartialEq, Eq)]
struct Stamp {
    records: Option<std::time::SystemTime>,
    dev: Option<PathBuf>,
    release: Option<PathBuf>,
}

impl Stamp {
    fn of(records: Option<std::time::SystemTime>, info: &DistInfo) -> Self {
        let published = PublishRoot::new(&info.publish_root);
        let link = |stage: dist::Stage| published.stage_link(&info.name, stage.name());
        Self {
            records,
            dev: std::fs::read_link(link(dist::Stage::Dev)).ok(),
            release: std::fs::read_link(link(dist::Stage::Release)).ok(),
        }
    }
}

impl Cache {
    fn dist(&self, root: &Root, name: &str) -> Option<Arc<DistInfo>> {
        crate::names::validate("distribution", name).ok()?;
        let records = root.dist_dir(name);
        let modified = std::fs::metadata(&records).and_then(|m| m.modified()).ok();
        let mut guard = self.dists.lock().ok()?;
        if let Some((stamp, info)) = guard.get(name)
            && *stamp == Stamp::of(modified, info)
        {
            return Some(info.clone());
        }
        let info = Arc::new(dist::show(root, name).ok()?);
        let stamp = Stamp::of(modified, &info);
        guard.insert(name.to_owned(), (stamp, info.clone()));
        Some(info)
    }

    /// What is known of version folder `dir`'s file list.
    fn listed(&self, dir: &Path) -> std::io::Result<Listed> {
        use std::os::unix::fs::MetadataExt;
        let ino = match std::fs::metadata(dir.join(LIST)) {
            Ok(m) => m.ino(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listed::None),
            Err(e) => return Err(e),
        };
        match self.lists().get(dir) {
            Some((i, served)) if *i == ino => Ok(Listed::Cached(served.clone())),
            _ => Ok(Listed::Unread(ino)),
        }
    }

    /// Reads version folder `dir`'s list (whose inode was `ino`) into the
    /// cache; `None` if it went meanwhile.
    fn read_list(&self, dir: &Path, ino: u64) -> std::io::Result<Option<Arc<Served>>> {
        // Only shared paths are looked up.
        let mut shared = PathHashes::default();
        let Some(header) = FileList::read_each(dir, |header, path, _| {
            if header.is_shared(path) {
                shared.push(path, ());
            }
        })?
        else {
            return Ok(None);
        };
        let shared = shared.sorted();
        let served = Arc::new(Served { header, shared });
        let mut lists = self.lists();
        if lists.len() >= LISTS_KEPT {
            lists.clear();
        }
        lists.insert(dir.to_owned(), (ino, served.clone()));
        Ok(Some(served))
    }

    fn lists(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<PathBuf, (u64, Arc<Served>)>> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// CA certificates of every x509 guard (what TLS asks clients for).
fn x509_roots(root: &Root, only: Option<&str>) -> rustls::RootCertStore {
    use rustls_pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for g in guard::list(root).unwrap_or_default() {
        if !matches!(g.kind, GuardKind::X509 { .. }) || only.is_some_and(|o| o != g.name) {
            continue;
        }
        if let Ok(iter) =
            rustls_pki_types::CertificateDer::pem_file_iter(guard::ca_path(root, &g.name))
        {
            for cert in iter.flatten() {
                let _ = store.add(cert);
            }
        }
    }
    store
}

/// Whether the end-entity certificate's subject matches the guard's
/// pattern (if it has one). An unreadable subject never matches.
fn subject_ok(pattern: Option<&str>, chain: &Chain) -> bool {
    let Some(pattern) = pattern else {
        return true;
    };
    let (Ok(re), Some(subject)) = (
        regex::Regex::new(pattern),
        chain.first().and_then(|c| guard::subject_of(c)),
    ) else {
        return false;
    };
    re.is_match(&subject)
}

impl Cache {
    /// Whether `chain` (end entity first) verifies against guard `name`'s
    /// CAs.
    fn chain_admitted(
        &self,
        root: &Root,
        name: &str,
        chain: &[rustls_pki_types::CertificateDer<'static>],
    ) -> bool {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return false;
        };
        let Some(verifier) = self.verifier(root, name) else {
            return false;
        };
        verifier
            .verify_client_cert(end_entity, intermediates, rustls_pki_types::UnixTime::now())
            .is_ok()
    }

    fn verifier(&self, root: &Root, name: &str) -> Verifier {
        let stamp = std::fs::metadata(guard::ca_path(root, name))
            .and_then(|m| m.modified())
            .ok();
        let mut verifiers = self.verifiers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, v)) = verifiers.get(name)
            && *s == stamp
        {
            return v.clone();
        }
        let roots = x509_roots(root, Some(name));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = (!roots.is_empty())
            .then(|| {
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .ok()
            })
            .flatten();
        verifiers.insert(name.to_owned(), (stamp, verifier.clone()));
        verifier
    }
}

fn tls_config(
    root: &Root,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls_pki_types::pem::PemObject;
    let file_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ServeError::TlsFile { path, source }
    };
    let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::CertificateDer::pem_file_iter(cert)
            .map_err(file_err(cert))?
            .collect::<Result<_, _>>()
            .map_err(file_err(cert))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).map_err(file_err(key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = x509_roots(root, None);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(ServeError::Tls)?;
    let builder = if roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(ServeError::Verifier)?;
        builder.with_client_cert_verifier(verifier)
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(ServeError::Tls)?;
    Ok(Arc::new(config))
}

type Body = BoxBody<Bytes, std::io::Error>;

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r
}

/// The token a request carries, if any.
fn token(req: &Request<hyper::body::Incoming>) -> Option<String> {
    authorization_token(req.headers().get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token in an `Authorization` value: `Bearer TOKEN`, or basic auth
/// with the token as password. (Public, with [`range`], for the
/// `serve_request` fuzz target.)
pub fn authorization_token(value: &str) -> Option<String> {
    if let Some(t) = value.strip_prefix("Bearer ") {
        return Some(t.trim().to_owned());
    }
    let basic = value.strip_prefix("Basic ")?;
    let decoded = base64_decode(basic.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Standard base64 (for basic auth): small enough not to need a crate.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    /// 401: it carried neither a token nor a client certificate.
    NoCredentials,
    /// 403: its credentials are not admitted.
    Forbidden,
}

impl Refused {
    fn for_credentials(token: Option<&str>, chain: Option<&Chain>) -> Self {
        match (token, chain) {
            (None, None) => Self::NoCredentials,
            _ => Self::Forbidden,
        }
    }
}

/// Whether the request's credentials admit a reader at any of `stages`.
fn admitted(
    cache: &Cache,
    root: &Root,
    info: &DistInfo,
    stages: &[&str],
    token: Option<&str>,
    chain: Option<&Chain>,
) -> Result<(), Refused> {
    for stage in stages {
        let Some(guard_name) = info.stages.get(*stage) else {
            continue;
        };
        if guard_name == "public" {
            return Ok(());
        }
        let Ok(g) = guard::load(root, guard_name) else {
            continue;
        };
        match &g.kind {
            GuardKind::Token { .. } => {
                if token.is_some_and(|t| g.accepts_token(t)) {
                    return Ok(());
                }
            }
            GuardKind::X509 { subject, .. } => {
                if let Some(c) = chain
                    && cache.chain_admitted(root, guard_name, c)
                    && subject_ok(subject.as_deref(), c)
                {
                    return Ok(());
                }
            }
        }
    }
    Err(Refused::for_credentials(token, chain))
}

/// The answer to a refused request: the same status, headers and (empty)
/// body whatever the path, so that it tells nothing about what exists.
fn refusal(refused: Refused) -> Response<Body> {
    match refused {
        Refused::NoCredentials => {
            let mut r = empty(StatusCode::UNAUTHORIZED);
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"depot\""),
            );
            r
        }
        Refused::Forbidden => empty(StatusCode::FORBIDDEN),
    }
}

/// Hands `/api/…` and `/r/…` to the build repositories' API.
async fn handle_builds(
    api: &crate::build::api::Api,
    scheme: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    use crate::build::api::Answer;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let base = format!("{scheme}://{host}/");
    let tok = token(&req);
    let head = req.method() == Method::HEAD;
    let range = req.headers().get(header::RANGE).cloned();
    match crate::build::api::handle(api, req, &base, tok.as_deref()).await {
        Answer::Body {
            status,
            content_type,
            body,
        } => {
            let len = body.len();
            let body = if head { Vec::new() } else { body };
            let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(content_type),
            );
            r.headers_mut().insert(header::CONTENT_LENGTH, len.into());
            r
        }
        Answer::File { tree, rest } => serve_path(head, range.as_ref(), &tree, &rest).await,
        Answer::Refused { credentials } => refusal(if credentials {
            Refused::Forbidden
        } else {
            Refused::NoCredentials
        }),
    }
}

async fn handle(
    root: Arc<Root>,
    cache: Arc<Cache>,
    chain: Option<Chain>,
    builds: Option<(Arc<crate::build::api::Api>, &'static str)>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    if let Some((api, scheme)) = builds {
        let p = req.uri().path();
        if p.starts_with("/api/") || p.starts_with("/r/") {
            return handle_builds(&api, scheme, req).await;
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return empty(StatusCode::METHOD_NOT_ALLOWED);
    }
    let path = req.uri().path().to_owned();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (Some(dist_name), Some(selector)) = (segs.first(), segs.get(1)) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let token = token(&req);
    let Some(info) = cache.dist(&root, dist_name) else {
        // Answered as a distribution whose guards admit nobody would be, so
        // that an unknown name cannot be told from a guarded one.
        return refusal(Refused::for_credentials(token.as_deref(), chain.as_ref()));
    };
    // Which stages' readers may read this selector (decided before any
    // file is looked at).
    let version = match *selector {
        "dev" => info.dev.clone(),
        "release" => info.release.clone(),
        v => Some(v.to_owned()),
    };
    let released = version.as_deref().is_some_and(|v| {
        info.release.as_deref() == Some(v)
            || info
                .versions
                .iter()
                .any(|r| r.record.version == v && r.stage == dist::Stage::Release)
    });
    let stages: &[&str] = match *selector {
        "dev" => &["dev"],
        _ if released => &["release", "dev"],
        _ => &["dev"],
    };
    if let Err(refused) = admitted(
        &cache,
        &root,
        &info,
        stages,
        token.as_deref(),
        chain.as_ref(),
    ) {
        return refusal(refused);
    }
    // Only a version this distribution published is a folder to serve
    // from: a selector of `..`, `` (from `//`) or a half-written
    // `.VERSION.partial-PID` would name another folder of the publish root.
    let version = version.filter(|v| info.versions.iter().any(|r| r.record.version == *v));
    let (Some(version), Some(rest)) = (version, crate::names::clean_path(&segs[2..])) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let published = PublishRoot::new(&info.publish_root);
    let mut dir = published.version_dir(dist_name, &version);
    // A file of a shared folder is served from the generation, and only
    // if the version lists it: the generation holds other versions' files.
    // A list not cached yet is read off the async threads (it is a few
    // MB for a large version).
    let served = match cache.listed(&dir) {
        Ok(Listed::None) => Ok(None),
        Ok(Listed::Cached(served)) => Ok(Some(served)),
        Ok(Listed::Unread(ino)) => {
            let (cache, dir) = (cache.clone(), dir.clone());
            tokio::task::spawn_blocking(move || cache.read_list(&dir, ino))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        }
        Err(e) => Err(e),
    };
    let served = match served {
        Ok(served) => served,
        Err(e) => {
            tracing::warn!("cannot read the file list of {}: {e}", dir.display());
            return empty(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    if let Some(served) = served {
        let rel = rest.to_str().unwrap_or_default();
        if rel == LIST {
            return empty(StatusCode::NOT_FOUND);
        }
        if served.header.is_shared(rel) {
            if served.shared.get(rel).is_none() {
                return empty(StatusCode::NOT_FOUND);
            }
            dir = published
                .dist_dir(dist_name)
                .join(&served.header.generation);
        }
    }
    serve_path(
        req.method() == Method::HEAD,
        req.headers().get(header::RANGE),
        &dir,
        &rest,
    )
    .await
}

fn http_date(t: std::time::SystemTime) -> Option<String> {
    let ts = jiff::Timestamp::try_from(t).ok()?;
    Some(ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

/// What a `Range` header asks of a file (RFC 9110 § 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// Answer with the whole file (200): the header is malformed, names
    /// another unit, reversed bounds, or several ranges. Ignoring it is
    /// what the RFC allows, and it cannot be used to multiply one file
    /// into many parts of an answer.
    Whole,
    /// Bytes `first..=last` (206).
    Part(u64, u64),
    /// A single range starting past the end, or an empty suffix (416).
    Unsatisfiable,
}

/// Parses a `Range` value against a file of `len` bytes: one `bytes=A-B`,
/// `bytes=A-` or `bytes=-N` range is served; see [`Ranged`] for the rest.
pub fn range(value: &str, len: u64) -> Ranged {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), number(a), number(b)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(0)) => Ranged::Unsatisfiable,
        (true, _, Some(n)) if len > 0 => Ranged::Part(len.saturating_sub(n), len - 1),
        (true, _, Some(_)) => Ranged::Unsatisfiable,
        (false, Some(first), None) if b.is_empty() => {
            if first < len {
                Ranged::Part(first, len - 1)
            } else {
                Ranged::Unsatisfiable
            }
        }
        (false, Some(first), Some(last)) if first <= last => {
            if first < len {
                Ranged::Part(first, last.min(len - 1))
            } else {
                Ranged::Unsatisfiable
            }
        }
        _ => Ranged::Whole,
    }
}

async fn serve_path(
    head: bool,
    range_header: Option<&header::HeaderValue>,
    dir: &Path,
    rest: &Path,
) -> Response<Body> {
    // Metadata and small files are read directly: a trip through tokio's
    // blocking pool costs more than the read itself on a local disk.
    let (file, meta) = match conn::open_beneath(dir, rest) {
        Ok(opened) => opened,
        Err(conn::OpenError::NotFound) => return empty(StatusCode::NOT_FOUND),
        Err(conn::OpenError::Unavailable(e)) => {
            tracing::warn!("cannot open {} in {}: {e}", rest.display(), dir.display());
            return empty(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let len = meta.len();
    let whole = (StatusCode::OK, 0, len.saturating_sub(1));
    let (status, start, end) = match range_header.map(|v| v.to_str().map(|r| range(r, len))) {
        None | Some(Err(_)) | Some(Ok(Ranged::Whole)) => whole,
        Some(Ok(Ranged::Part(s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Some(Ok(Ranged::Unsatisfiable)) => {
            let mut resp = empty(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = header::HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let body: Body = if head || count == 0 {
        Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
    } else if count <= 256 * 1024 {
        let mut buf = vec![0u8; count as usize];
        if std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, start).is_err() {
            return empty(StatusCode::NOT_FOUND);
        }
        Full::new(Bytes::from(buf)).map_err(|e| match e {}).boxed()
    } else {
        let mut f = tokio::fs::File::from_std(file);
        if f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
            return empty(StatusCode::INTERNAL_SERVER_ERROR);
        }
        // Large reads: each one is a trip to tokio's blocking pool.
        let stream = tokio_util::io::ReaderStream::with_capacity(f.take(count), 256 * 1024)
            .map_ok(Frame::data);
        BodyExt::boxed(StreamBody::new(stream))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, count.into());
    h.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = header::HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Some(d) = meta.modified().ok().and_then(http_date)
        && let Ok(v) = header::HeaderValue::from_str(&d)
    {
        h.insert(header::LAST_MODIFIED, v);
    }
    resp
}

/// Build repositories served beside the publish root (`/api/…`, `/r/…`;
/// see [`crate::build`]).
#[derive(Debug, Clone)]
pub struct BuildService {
    pub builder: crate::build::BuilderOptions,
    pub distros: crate::build::DistroMap,
}

/// Starts the builder and the webhook senders; the API's shared state.
fn start_builds(
    root: &Root,
    b: BuildService,
    base_url: &str,
) -> Result<crate::build::api::Api, ServeError> {
    let public_key = match &b.builder.sign_key {
        Some(key) => {
            let signer =
                crate::signing::GpgSigner::new(key).map_err(|source| ServeError::SignKey {
                    key: key.clone(),
                    source,
                })?;
            let armored = signer
                .public_key_armored()
                .map_err(|source| ServeError::SignKey {
                    key: key.clone(),
                    source,
                })?;
            Some(String::from_utf8_lossy(&armored).into_owned())
        }
        None => None,
    };
    crate::pool::Pool::new(root).clean_stale_temp_files();
    let hooks = crate::build::Hooks::start(&b.builder.webhooks, base_url);
    let mut opts = b.builder;
    opts.base_url = base_url.to_owned();
    let builder = crate::build::Builder::new(root.clone(), opts, hooks.clone());
    tokio::spawn(builder.run());
    Ok(crate::build::api::Api {
        root: Arc::new(root.clone()),
        distros: b.distros,
        hooks,
        public_key,
    })
}

/// `depot serve --listen ADDR [--tls-cert F --tls-key F]`: binds, calls
/// `ready` with its URL, `http(s)://ADDR/` (the port may have been 0), then serves
/// until the task is dropped, within `limits` (see [`conn`]).
pub async fn serve(
    root: Root,
    listen: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    builds: Option<BuildService>,
    limits: Limits,
    ready: impl FnOnce(&str),
) -> Result<(), ServeError> {
    let acceptor = match &tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(tls_config(
            &root, cert, key,
        )?)),
        None => None,
    };
    let listener = conn::listen(listen).map_err(|source| ServeError::Bind {
        addr: listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: listen,
        source,
    })?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{addr}/");
    let builds = match builds {
        Some(b) => Some((Arc::new(start_builds(&root, b, &base_url)?), scheme)),
        None => None,
    };
    let max_connections = limits.connections();
    tracing::debug!(max_connections, idle_timeout = ?limits.idle_timeout, "serving");
    ready(&base_url);
    let root = Arc::new(root);
    let cache = Arc::new(Cache {
        dists: std::sync::Mutex::default(),
        verifiers: std::sync::Mutex::default(),
        lists: std::sync::Mutex::default(),
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::warn!(
                    "all {max_connections} connections are in use; \
                     new clients wait until one ends (--max-connections)"
                );
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return Ok(());
                };
                slot
            }
        };
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or memory: retrying at once would spin.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Headers and body go out in separate writes; without this, Nagle's
        // algorithm holds the body until the client's delayed ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        let (root, cache, acceptor) = (root.clone(), cache.clone(), acceptor.clone());
        let builds = builds.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let idle = limits.idle_timeout;
            let mut io = conn::Watchdog::new(stream, idle);
            let ended = match acceptor {
                Some(acceptor) => {
                    let Ok(Ok(tls)) = tokio::time::timeout(idle, acceptor.accept(&mut io)).await
                    else {
                        tracing::info!(target: "depot::access", "{remote} TLS handshake refused");
                        return;
                    };
                    let chain: Option<Chain> = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect()));
                    let io = hyper_util::rt::TokioIo::new(tls);
                    connection(io, root, cache, chain, builds, remote, idle).await
                }
                None => {
                    let io = hyper_util::rt::TokioIo::new(&mut io);
                    connection(io, root, cache, None, builds, remote, idle).await
                }
            };
            if !(ended.is_err_and(|e| e.is_timeout()) || io.timed_out()) {
                conn::linger_close(io.into_inner()).await;
            }
        });
    }
}

async fn connection<I>(
    io: I,
    root: Arc<Root>,
    cache: Arc<Cache>,
    chain: Option<Chain>,
    builds: Option<(Arc<crate::build::api::Api>, &'static str)>,
    remote: SocketAddr,
    idle: std::time::Duration,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (root, cache, chain) = (root.clone(), cache.clone(), chain.clone());
        let builds = builds.clone();
        async move {
            let (method, path) = (req.method().clone(), req.uri().path().to_owned());
            let resp = handle(root, cache, chain, builds, req).await;
            tracing::info!(
                target: "depot::access",
                "{remote} {method} {path} {} {}",
                resp.status().as_u16(),
                resp.headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    // Headers past hyper's read buffer (~400 KiB) or past 100 fields get 431.
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(idle)
        .serve_connection(io, service)
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_and_base64() {
        use super::{Ranged::*, range};
        assert_eq!(range("bytes=0-9", 100), Part(0, 9));
        assert_eq!(range("bytes=90-", 100), Part(90, 99));
        assert_eq!(range("bytes=-10", 100), Part(90, 99));
        assert_eq!(range("bytes=-500", 100), Part(0, 99));
        assert_eq!(range("bytes=50-500", 100), Part(50, 99));
        assert_eq!(range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(range("bytes=9-0", 100), Whole);
        assert_eq!(range("bytes=+1-2", 100), Whole);
        assert_eq!(range("bytes=1", 100), Whole);
        assert_eq!(range("items=0-1", 100), Whole);
        assert_eq!(range("bytes=99999999999999999999-", 100), Whole);
        assert_eq!(
            super::base64_decode("dXNlcjpzZWNyZXQ=").unwrap(),
            b"user:secret"
        );
        assert!(crate::names::clean_path(&["..", "x"]).is_none());
        assert!(crate::names::clean_path(&["a%2F..", "x"]).is_none());
        assert_eq!(
            crate::names::clean_path(&["dists", "a%2Bb"]).unwrap(),
            std::path::Path::new("dists/a+b")
        );
    }
}
