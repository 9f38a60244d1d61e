//! `depot build upload`: the same upload as `POST /api/binaries/…`, to a
//! `depot serve` (streamed from the file, never read whole) or, without
//! `--server`, straight into a local data root (whose `depot serve`, if
//! one runs, publishes the build after the quiet time).

use std::path::PathBuf;

use super::{BuildError, BuildKey, DistroMap, Receiver, UploadSummary};
use crate::root::Root;

/// Where uploads go.
#[derive(Clone)]
pub enum Target {
    /// A local data root.
    Local(Root),
    /// A `depot serve` at `url` (ending in `/`), with an upload token.
    Server { url: String, token: String },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(r) => write!(f, "Local({})", r.path().display()),
            Self::Server { url, .. } => write!(f, "Server({url}, token ***)"),
        }
    }
}

impl Target {
    /// A `depot serve` at `url`, with the token on the first line of
    /// `token_file`.
    pub fn server(url: &str, token_file: &std::path::Path) -> Result<Self, BuildError> {
        let text = std::fs::read_to_string(token_file).map_err(super::io("read", token_file))?;
        let token = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("")
            .to_owned();
        let mut url = url.to_owned();
        if !url.ends_with('/') {
            url.push('/');
        }
        Ok(Self::Server { url, token })
    }
}

#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub key: BuildKey,
    pub arch: String,
    pub files: Vec<PathBuf>,
    pub force: bool,
    /// Metadata for the build's `extra` (`--extra K=V`).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Uploads every file in order; stops at the first refusal.
pub async fn upload(
    target: &Target,
    distros: &DistroMap,
    opts: &UploadOptions,
) -> Result<Vec<UploadSummary>, BuildError> {
    let mut out = Vec::new();
    match target {
        Target::Local(root) => {
            for file in &opts.files {
                let (root2, distros, key, arch, file, force) = (
                    root.clone(),
                    distros.clone(),
                    opts.key.clone(),
                    opts.arch.clone(),
                    file.clone(),
                    opts.force,
                );
                let s = tokio::task::spawn_blocking(move || {
                    let received = Receiver::from_file(&root2, &file)?;
                    super::accept(
                        &root2,
                        &distros,
                        &key,
                        &arch,
                        force,
                        received,
                        jiff::Timestamp::now(),
                    )
                })
                .await
                .map_err(|e| BuildError::Io {
                    what: "upload",
                    path: PathBuf::new(),
                    source: std::io::Error::other(e),
                })??;
                out.push(s);
            }
            if !opts.extra.is_empty() {
                super::set_extra(root, &opts.key, opts.extra.clone())?;
            }
        }
        Target::Server { url, token } => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder()
                .user_agent(concat!("depot/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|source| BuildError::Http {
                    url: url.clone(),
                    source,
                })?;
            let k = &opts.key;
            let flavor = if k.flavor == super::DEFAULT_FLAVOR {
                String::new()
            } else {
                format!("flavors/{}/", k.flavor)
            };
            let endpoint = format!(
                "{url}api/binaries/{}/{}/{}/{}/{}/{}/{flavor}{}",
                k.project,
                k.reference,
                k.sha1,
                k.distro,
                k.distro_version,
                opts.arch,
                if opts.force { "?force=1" } else { "" }
            );
            for file in &opts.files {
                let f = tokio::fs::File::open(file)
                    .await
                    .map_err(super::io("read", file))?;
                let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    f,
                    256 * 1024,
                ));
                let resp = client
                    .post(&endpoint)
                    .bearer_auth(token)
                    .header("content-type", "application/octet-stream")
                    .body(body)
                    .send()
                    .await
                    .map_err(|source| BuildError::Http {
                        url: endpoint.clone(),
                        source,
                    })?;
                out.push(answer(&endpoint, resp).await?);
            }
            if !opts.extra.is_empty() {
                let endpoint = format!(
                    "{url}api/extra/{}/{}/{}/{}/{}/{flavor}",
                    k.project, k.reference, k.sha1, k.distro, k.distro_version
                );
                let resp = client
                    .post(&endpoint)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&opts.extra).unwrap_or_default())
                    .send()
                    .await
                    .map_err(|source| BuildError::Http {
                        url: endpoint.clone(),
                        source,
                    })?;
                let status = resp.status();
                if !status.is_success() {
                    let message = resp.text().await.unwrap_or_default();
                    return Err(BuildError::Server {
                        url: endpoint,
                        status: status.as_u16(),
                        message: message.trim().to_owned(),
                    });
                }
            }
        }
    }
    Ok(out)
}

async fn answer(endpoint: &str, resp: reqwest::Response) -> Result<UploadSummary, BuildError> {
    #[derive(serde::Deserialize)]
    struct Wire {
        build: String,
        file: String,
        package: String,
        sha256: crate::digest::Sha256Digest,
        outcome: String,
        status: super::Status,
    }
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let server = |message: String| BuildError::Server {
        url: endpoint.to_owned(),
        status: status.as_u16(),
        message,
    };
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.trim().to_owned());
        return Err(server(message));
    }
    let w: Wire = serde_json::from_str(&text).map_err(|e| server(e.to_string()))?;
    Ok(UploadSummary {
        build: w.build,
        file: w.file,
        package: w.package,
        sha256: w.sha256,
        outcome: match w.outcome.as_str() {
            "unchanged" => super::Outcome::Unchanged,
            "replaced" => super::Outcome::Replaced,
            _ => super::Outcome::Created,
        },
        status: w.status,
        requested: false,
    })
}
