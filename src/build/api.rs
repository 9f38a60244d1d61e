//! The HTTP API of build repositories, as `depot serve` routes it:
//!
//! ```text
//! POST /api/binaries/P/R/SHA1/D/V/ARCH/[flavors/F/]   upload (upload token)
//!      body: the package (raw), or multipart with file field(s); other
//!      multipart fields become the build's `extra`. `?force=1` replaces a
//!      file of the same name with other content (else 409).
//! POST /api/extra/P/R/SHA1/D/V/[flavors/F/]           merge a JSON object
//!      into the build's `extra` (upload token)
//! GET  /api/search/?project=&ref=&sha1=latest|SHA1&distros=D/V[/A],…
//!      &flavor=&status=                               builds, newest first
//! GET  /api/repos/P/R/SHA1|latest/D/V/[flavors/F/]    one build (JSON)
//! GET  /api/repos/P/R/SHA1|latest/D/V/[flavors/F/]repo[?format=line]
//!                                                     its repo file
//! GET  /api/key                                       the publishing key
//! GET  /r/P/R/SHA1/D/V/[flavors/F/]…                  the repository
//! ```
//!
//! Reads are public, as chacra's and shaman's are; uploads need a token of
//! a token guard with scope `upload`. Every path segment is
//! percent-decoded and must be a valid name, so `..` (or `%2e%2e`) is
//! refused with 400 before anything is looked up. A refused upload stores
//! nothing.
//!
//! This module turns requests into calls of [`super`] and answers; it
//! holds no state of its own but the webhook queues and the key.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::{Method, Request, StatusCode, header};
use serde::Serialize;

use super::{BuildError, BuildKey, DistroMap, Hooks, Query, Receiver};
use crate::promote::guard::{self, GuardKind, Scope};
use crate::root::Root;

/// What the API needs, shared by every request of a server.
pub struct Api {
    pub root: Arc<Root>,
    pub distros: DistroMap,
    pub hooks: Hooks,
    /// The armoured public key repositories are signed with, if signed.
    pub public_key: Option<String>,
}

/// An answer, for `depot serve` to send.
pub enum Answer {
    /// A body with its content type.
    Body {
        status: StatusCode,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// File `rest` of a build's repository `tree` (served like a published
    /// file, never resolving outside `tree`).
    File {
        tree: std::path::PathBuf,
        rest: std::path::PathBuf,
    },
    /// 401 or 403: no or a refused upload token.
    Refused { credentials: bool },
}

fn json(status: StatusCode, value: &impl Serialize) -> Answer {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    Answer::Body {
        status,
        content_type: "application/json",
        body,
    }
}

fn text(status: StatusCode, content_type: &'static str, s: String) -> Answer {
    Answer::Body {
        status,
        content_type,
        body: s.into_bytes(),
    }
}

fn error(err: &BuildError) -> Answer {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    if status.is_server_error() {
        tracing::warn!("{}", crate::http::error_chain(err));
    }
    json(
        status,
        &serde_json::json!({ "error": crate::http::error_chain(err) }),
    )
}

fn bad(message: &str) -> Answer {
    json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": message }),
    )
}

fn not_found() -> Answer {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "error": "not found" }),
    )
}

/// Decodes every segment; `None` if one is not a valid name (`..`,
/// `%2e%2e`, empty, a `/` inside).
fn names(segs: &[&str]) -> Option<Vec<String>> {
    segs.iter()
        .map(|s| {
            let d = crate::names::percent_decode(s)?;
            crate::names::validate("path segment", &d).ok()?;
            Some(d)
        })
        .collect()
}

/// `P/R/SHA1/D/V/[flavors/F/]` at the start of `segs` (SHA1 may be
/// `latest` when `latest_ok`); the rest after it.
fn key_prefix<'a>(segs: &'a [&'a str]) -> Option<(Vec<String>, Option<String>, &'a [&'a str])> {
    let head = names(segs.get(..5)?)?;
    let rest = &segs[5..];
    if rest.first() == Some(&"flavors") {
        let f = names(rest.get(1..2)?)?.pop()?;
        return Some((head, Some(f), &rest[2..]));
    }
    Some((head, None, rest))
}

/// The build key of a path's PROJECT/REF/SHA1/DISTRO/VERSION (`head`,
/// as [`key_prefix`] and `upload` split it) and flavor.
fn key_of(head: &[String], flavor: Option<&str>) -> Result<BuildKey, BuildError> {
    BuildKey::new(&head[0], &head[1], &head[2], &head[3], &head[4], flavor)
}

/// Whether the request carries a token of an upload-scoped guard.
fn upload_allowed(root: &Root, token: Option<&str>) -> Result<(), Answer> {
    let Some(token) = token else {
        return Err(Answer::Refused { credentials: false });
    };
    let ok = guard::list(root).unwrap_or_default().iter().any(|g| {
        matches!(
            g.kind,
            GuardKind::Token {
                scope: Scope::Upload,
                ..
            }
        ) && g.accepts_token(token)
    });
    if ok {
        Ok(())
    } else {
        Err(Answer::Refused { credentials: true })
    }
}

fn query_pairs(req: &Request<hyper::body::Incoming>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Routes a request under `/api/` or `/r/`; `base` is the server's URL as
/// the client reached it (`http://HOST/`), `token` its bearer token.
pub async fn handle(
    api: &Api,
    req: Request<hyper::body::Incoming>,
    base: &str,
    token: Option<&str>,
) -> Answer {
    let path = req.uri().path().to_owned();
    let segs: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match (segs.first().copied(), segs.get(1).copied()) {
        (Some("r"), _) if get => repo_file_path(api, &segs[1..]),
        (Some("api"), Some("binaries")) if method == Method::POST => {
            if let Err(refused) = upload_allowed(&api.root, token) {
                return refused;
            }
            upload(api, req, &segs[2..]).await
        }
        (Some("api"), Some("extra")) if method == Method::POST => {
            if let Err(refused) = upload_allowed(&api.root, token) {
                return refused;
            }
            extra(api, req, &segs[2..]).await
        }
        (Some("api"), Some("search")) if get && segs.len() == 2 => search(api, &req).await,
        (Some("api"), Some("repos")) if get => repos(api, &req, &segs[2..], base).await,
        (Some("api"), Some("key")) if get && segs.len() == 2 => match &api.public_key {
            Some(k) => text(StatusCode::OK, "application/pgp-keys", k.clone()),
            None => not_found(),
        },
        (Some("api"), _) | (Some("r"), _) => json(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({ "error": format!("{method} {path} is not an API call") }),
        ),
        _ => not_found(),
    }
}

fn repo_file_path(api: &Api, segs: &[&str]) -> Answer {
    let Some((head, flavor, rest)) = key_prefix(segs) else {
        return bad("invalid path");
    };
    let Ok(key) = key_of(&head, flavor.as_deref()) else {
        return bad("invalid path");
    };
    let Some(rest) = crate::names::clean_path(rest) else {
        return bad("invalid path");
    };
    Answer::File {
        tree: super::served_tree(&api.root, &key),
        rest,
    }
}

/// Blocking core calls run off the async workers (locks, fsync, mmap).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(BuildError::Io {
            what: "run",
            path: "a blocking task".into(),
            source: std::io::Error::other(e),
        })
    })
}

async fn upload(api: &Api, req: Request<hyper::body::Incoming>, segs: &[&str]) -> Answer {
    // P/R/SHA1/D/V/ARCH[/flavors/F]
    let Some(head) = segs.get(..6).and_then(names) else {
        return bad(
            "expected /api/binaries/PROJECT/REF/SHA1/DISTRO/VERSION/ARCH/[flavors/FLAVOR/]",
        );
    };
    let flavor = match &segs[6..] {
        [] => None,
        ["flavors", f] => match names(&[f]) {
            Some(mut f) => f.pop(),
            None => return bad("invalid flavor"),
        },
        _ => {
            return bad(
                "expected /api/binaries/PROJECT/REF/SHA1/DISTRO/VERSION/ARCH/[flavors/FLAVOR/]",
            );
        }
    };
    let key = match key_of(&head, flavor.as_deref()) {
        Ok(k) => k,
        Err(e) => return error(&e),
    };
    let arch = head[5].clone();
    let force = query_pairs(&req)
        .iter()
        .any(|(k, v)| k == "force" && matches!(v.as_str(), "1" | "true" | "yes"));
    // Refused before the body is read: an unknown distro.
    if let Err(e) = api.distros.kind(&key.distro) {
        return error(&e);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut files = Vec::new();
    let mut extra = serde_json::Map::new();
    if content_type.starts_with("multipart/form-data") {
        let Ok(boundary) = multer::parse_boundary(&content_type) else {
            return bad("multipart body without a boundary");
        };
        let stream = req.into_body().into_data_stream();
        let mut parts = multer::Multipart::new(stream, boundary);
        loop {
            let field = match parts.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return bad(&format!("malformed multipart body: {e}")),
            };
            let name = field.name().unwrap_or("").to_owned();
            let file_name = field.file_name().map(str::to_owned);
            if file_name.is_none() && name != "file" {
                match field.text().await {
                    Ok(t) if t.len() <= 64 * 1024 => {
                        extra.insert(name, serde_json::Value::String(t));
                    }
                    Ok(_) => return bad("a form field over 64 KiB"),
                    Err(e) => return bad(&format!("malformed multipart body: {e}")),
                }
                continue;
            }
            let mut rx = match Receiver::new(&api.root) {
                Ok(r) => r,
                Err(e) => return error(&e),
            };
            let mut field = field;
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        if let Err(e) = rx.write(&chunk) {
                            return error(&e);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return bad(&format!("upload cut short: {e}")),
                }
            }
            files.push(rx.finish(file_name.unwrap_or_else(|| "upload".into())));
        }
    } else {
        let mut rx = match Receiver::new(&api.root) {
            Ok(r) => r,
            Err(e) => return error(&e),
        };
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data()
                        && let Err(e) = rx.write(&data)
                    {
                        return error(&e);
                    }
                }
                Err(e) => return bad(&format!("upload cut short: {e}")),
            }
        }
        files.push(rx.finish("upload".into()));
    }
    if files.is_empty() {
        return bad("no file in the request (multipart field `file`, or a raw body)");
    }
    let mut summaries = Vec::new();
    for received in files {
        let (root, distros, key, arch) = (
            api.root.clone(),
            api.distros.clone(),
            key.clone(),
            arch.clone(),
        );
        let now = jiff::Timestamp::now();
        let result = blocking(move || {
            let s = super::accept(&root, &distros, &key, &arch, force, received, now)?;
            let b = if s.requested {
                super::load(&root, &key)?
            } else {
                None
            };
            Ok((s, b))
        })
        .await;
        match result {
            Ok((s, b)) => {
                if let Some(b) = b {
                    api.hooks.tell(&b);
                }
                summaries.push(s);
            }
            Err(e) => return error(&e),
        }
    }
    if !extra.is_empty() {
        let (root, k) = (api.root.clone(), key.clone());
        if let Err(e) = blocking(move || super::set_extra(&root, &k, extra)).await {
            return error(&e);
        }
    }
    let status = if summaries
        .iter()
        .all(|s| s.outcome == super::Outcome::Unchanged)
    {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    if summaries.len() == 1 {
        json(status, &summaries[0])
    } else {
        json(status, &summaries)
    }
}

async fn extra(api: &Api, req: Request<hyper::body::Incoming>, segs: &[&str]) -> Answer {
    let Some((head, flavor, rest)) = key_prefix(segs) else {
        return bad("expected /api/extra/PROJECT/REF/SHA1/DISTRO/VERSION/[flavors/FLAVOR/]");
    };
    if !rest.is_empty() {
        return bad("expected /api/extra/PROJECT/REF/SHA1/DISTRO/VERSION/[flavors/FLAVOR/]");
    }
    let key = match key_of(&head, flavor.as_deref()) {
        Ok(k) => k,
        Err(e) => return error(&e),
    };
    let body = match http_body_util::Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return bad("the body must be a JSON object of at most 64 KiB"),
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(&body)
    else {
        return bad("the body must be a JSON object");
    };
    let root = api.root.clone();
    match blocking(move || super::set_extra(&root, &key, map)).await {
        Ok(info) => json(StatusCode::OK, &info),
        Err(e) => error(&e),
    }
}

async fn search(api: &Api, req: &Request<hyper::body::Incoming>) -> Answer {
    let mut q = Query::default();
    for (k, v) in query_pairs(req) {
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "project" => q.project = Some(v),
            "ref" => q.reference = Some(v),
            "sha1" => q.sha1 = Some(v),
            "flavor" => q.flavor = Some(v),
            "status" => match v.parse() {
                Ok(s) => q.status = Some(s),
                Err(e) => return bad(&e),
            },
            "distros" => {
                for d in v.split(',').filter(|d| !d.is_empty()) {
                    match d.parse() {
                        Ok(d) => q.distros.push(d),
                        Err(e) => return error(&e),
                    }
                }
            }
            other => return bad(&format!("unknown search parameter `{other}`")),
        }
    }
    let root = api.root.clone();
    match blocking(move || super::search(&root, &q)).await {
        Ok(found) => json(StatusCode::OK, &found),
        // No SHA1 is ready everywhere yet: an empty answer, not an error.
        Err(BuildError::NoneReady { .. }) => json(StatusCode::OK, &Vec::<()>::new()),
        Err(e) => error(&e),
    }
}

async fn repos(
    api: &Api,
    req: &Request<hyper::body::Incoming>,
    segs: &[&str],
    base: &str,
) -> Answer {
    let Some((head, flavor, rest)) = key_prefix(segs) else {
        return bad(
            "expected /api/repos/PROJECT/REF/SHA1|latest/DISTRO/VERSION/[flavors/FLAVOR/][repo]",
        );
    };
    let want_file = match rest {
        [] => false,
        ["repo"] => true,
        _ => return not_found(),
    };
    let root = api.root.clone();
    let flavor2 = flavor.clone();
    let build = match blocking(move || {
        super::resolve(
            &root,
            &head[0],
            &head[1],
            &head[2],
            &head[3],
            &head[4],
            flavor2.as_deref(),
        )
    })
    .await
    {
        Ok(b) => b,
        Err(e) => return error(&e),
    };
    if !want_file {
        return json(StatusCode::OK, &super::BuildInfo::from(&build));
    }
    let one_line = query_pairs(req)
        .iter()
        .any(|(k, v)| k == "format" && v == "line");
    let body = super::repo_file(&build, base, api.public_key.as_deref(), one_line);
    text(StatusCode::OK, "text/plain; charset=utf-8", body)
}
