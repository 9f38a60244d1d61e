//! Fetching from upstream: `http://`, `https://` and `file://` URLs, with
//! retries and backoff for transient failures, straight into the pool.
//!
//! Transient means: connection refused or reset, timeouts, a body cut short
//! (the connection closed before `Content-Length` bytes), HTTP 408, 429 and
//! 5xx. Everything else — 404, a checksum or size mismatch of a complete
//! transfer — fails at once: retrying a tampered file does not fix it.
//!
//! It owns HTTP(S) and `file://` fetching (retries, backoff, client
//! certificates); it writes only into the pool, through
//! [`crate::pool::Pool`], and knows nothing of mirrors or repository formats.

use std::io::Read;
use std::time::Duration;

use url::Url;

use crate::digest::{Expected, Sha256Digest};
use crate::pool::{Pool, PoolError};
use crate::report::{Event, Reporter};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url} failed: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url} failed")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot read {url}")]
    File {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} does not match the signed index")]
    Verify {
        url: String,
        #[source]
        source: PoolError,
    },
    #[error("cannot store {url} in the pool")]
    Pool {
        url: String,
        #[source]
        source: PoolError,
    },
    #[error("unsupported URL scheme in {url} (use http, https or file)")]
    Scheme { url: String },
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl FetchError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            Self::Network { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_body()
                    || source.is_request()
            }
            _ => false,
        }
    }
}

/// A URL as it may be shown to people: any password replaced by `***`.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    attempts: u32,
    backoff: Duration,
}

/// TLS material for talking to a guarded upstream (another depot's
/// `serve` behind an x509 guard): a client certificate and key, and a CA
/// bundle to trust besides the system's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    pub ca: Option<std::path::PathBuf>,
}

impl Fetcher {
    pub fn new() -> Result<Self, FetchError> {
        Self::with_tls(&ClientTls::default())
    }

    pub fn with_tls(tls: &ClientTls) -> Result<Self, FetchError> {
        // Several tests and library users may race to install it; losing the
        // race is fine, one ring provider is as good as another.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| FetchError::File {
                url: p.display().to_string(),
                source,
            })
        };
        let mut builder = reqwest::Client::builder();
        if let Some(ca) = &tls.ca {
            for cert in
                reqwest::Certificate::from_pem_bundle(&read(ca)?).map_err(FetchError::Client)?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            let mut pem = read(key)?;
            pem.extend_from_slice(&read(cert)?);
            builder =
                builder.identity(reqwest::Identity::from_pem(&pem).map_err(FetchError::Client)?);
        }
        let client = builder
            .user_agent(concat!("depot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build()
            .map_err(FetchError::Client)?;
        Ok(Self {
            client,
            attempts: 4,
            backoff: Duration::from_millis(250),
        })
    }

    /// Fetches a whole (small) file into memory; `Ok(None)` if it does not
    /// exist (HTTP 404/410, or a missing local file).
    pub async fn get_optional(
        &self,
        url: &Url,
        reporter: &dyn Reporter,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        self.retrying(url, reporter, || async {
            if url.scheme() == "file" {
                return match read_file_url(url) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(FetchError::File { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(e),
                };
            }
            let resp = self.send(url).await?;
            if matches!(resp.status().as_u16(), 404 | 410) {
                return Ok(None);
            }
            let resp = check_status(url, resp)?;
            let bytes = resp.bytes().await.map_err(|source| FetchError::Network {
                url: redact(url),
                source,
            })?;
            Ok(Some(bytes.to_vec()))
        })
        .await
    }

    /// Downloads `url` into the pool, checking size and SHA-256 against
    /// `expected` before the blob becomes visible.
    pub async fn download_to_pool(
        &self,
        url: &Url,
        expected: &Expected,
        pool: &Pool,
        reporter: &dyn Reporter,
    ) -> Result<Sha256Digest, FetchError> {
        self.retrying(url, reporter, || async {
            let pool_err = |source| FetchError::Pool {
                url: redact(url),
                source,
            };
            let mut staging = pool.stage().map_err(pool_err)?;
            if url.scheme() == "file" {
                let path = file_url_path(url)?;
                let mut file = std::fs::File::open(&path).map_err(|source| FetchError::File {
                    url: redact(url),
                    source,
                })?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = file.read(&mut buf).map_err(|source| FetchError::File {
                        url: redact(url),
                        source,
                    })?;
                    if n == 0 {
                        break;
                    }
                    staging.write(&buf[..n]).map_err(pool_err)?;
                    reporter.report(Event::Bytes(n as u64));
                }
            } else {
                let mut resp = check_status(url, self.send(url).await?)?;
                while let Some(chunk) =
                    resp.chunk().await.map_err(|source| FetchError::Network {
                        url: redact(url),
                        source,
                    })?
                {
                    // A server sending more than promised is cut off early.
                    if staging.size() + chunk.len() as u64 > expected.size {
                        staging.write(&chunk).map_err(pool_err)?;
                        break;
                    }
                    staging.write(&chunk).map_err(pool_err)?;
                    reporter.report(Event::Bytes(chunk.len() as u64));
                }
            }
            staging
                .commit(pool, Some(expected))
                .map_err(|source| match source {
                    PoolError::Io { .. } => FetchError::Pool {
                        url: redact(url),
                        source,
                    },
                    _ => FetchError::Verify {
                        url: redact(url),
                        source,
                    },
                })
        })
        .await
    }

    async fn send(&self, url: &Url) -> Result<reqwest::Response, FetchError> {
        match url.scheme() {
            "http" | "https" => {}
            _ => return Err(FetchError::Scheme { url: redact(url) }),
        }
        self.client
            .get(url.clone())
            .send()
            .await
            .map_err(|source| FetchError::Network {
                url: redact(url),
                source,
            })
    }

    async fn retrying<T, F, Fut>(
        &self,
        url: &Url,
        reporter: &dyn Reporter,
        mut attempt: F,
    ) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, FetchError>>,
    {
        let mut delay = self.backoff;
        for n in 1.. {
            match attempt().await {
                Err(e) if e.is_transient() && n < self.attempts => {
                    let reason = error_chain(&e);
                    reporter.report(Event::Retry {
                        url: &redact(url),
                        attempt: n,
                        reason: &reason,
                    });
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        unreachable!("the retry loop only ends by returning")
    }
}

fn check_status(url: &Url, resp: reqwest::Response) -> Result<reqwest::Response, FetchError> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(FetchError::Status {
            url: redact(url),
            status: resp.status().as_u16(),
        })
    }
}

fn file_url_path(url: &Url) -> Result<std::path::PathBuf, FetchError> {
    url.to_file_path()
        .map_err(|()| FetchError::Scheme { url: redact(url) })
}

fn read_file_url(url: &Url) -> Result<Vec<u8>, FetchError> {
    let path = file_url_path(url)?;
    std::fs::read(path).map_err(|source| FetchError::File {
        url: redact(url),
        source,
    })
}

/// `error: cause: cause` on one line, for log messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let url = Url::parse("https://user:secret@example.org/debian").unwrap();
        let shown = redact(&url);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("user:***@"));
    }
}
