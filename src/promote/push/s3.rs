//! An S3 bucket as a push target (list, get, head, put, server-side copy,
//! delete), over `rusty-s3` (SigV4 signing and the XML of listings, no
//! I/O) and the `reqwest` client depot already has.
//!
//! Why `rusty-s3`: it is a small, maintained, sans-I/O signer with no
//! runtime of its own, so it adds a few crates (hmac, md-5, an XML
//! reader) to what depot already builds; `aws-sdk-s3` pulls in the whole
//! Smithy runtime (hundreds of crates, minutes on two cores) and
//! `object_store` a generic storage layer and its own client stack, and
//! neither lets depot keep one HTTP client, one retry policy and one
//! error type. Requests are presigned (SigV4 query authentication with
//! `UNSIGNED-PAYLOAD`, signed headers included), valid for an hour.
//!
//! Keys are percent-encoded in full (`+` as `%2B`), so the signature
//! covers the key the server decodes: aptly's S3 bug #98 came from a `+`
//! that the signer and the server read differently.
//!
//! Transient failures (connection errors, timeouts, HTTP 408, 429, 5xx)
//! are retried with backoff; a refusal (HTTP 401/403: wrong keys, a bad
//! signature, no right to the bucket) fails at once.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

use super::PushError;
use super::aws::AwsConfig;
use crate::digest::Sha256Digest;
use crate::report::{Event, Reporter};

/// The metadata key under which each object's SHA-256 is stored
/// (`x-amz-meta-sha256`).
const SHA_HEADER: &str = "x-amz-meta-sha256";
const COPY_SOURCE: &str = "x-amz-copy-source";
/// `REPLACE`: a copy gets the headers sent with it, not its source's.
const METADATA_DIRECTIVE: &str = "x-amz-metadata-directive";
const SIGNED_FOR: Duration = Duration::from_secs(3600);
/// Files up to this size are read whole before they are sent; larger ones
/// are streamed.
const SMALL_FILE: u64 = 4 << 20;

/// `s3://BUCKET/PREFIX` as given to `--to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl std::str::FromStr for S3Url {
    type Err = PushError;
    fn from_str(text: &str) -> Result<Self, PushError> {
        let bad = |problem: &str| PushError::Target {
            url: text.to_owned(),
            problem: problem.to_owned(),
        };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(bad(
                "the bucket name must be 3 to 63 lowercase letters, digits, `-` or `.`",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|c| c == "." || c == ".." || (c.is_empty() && !prefix.is_empty()))
        {
            return Err(bad("the prefix has an empty, `.` or `..` component"));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// One object of a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    pub size: u64,
    /// Without quotes.
    pub etag: String,
}

/// A bucket, signed requests to it, and the retry policy.
pub struct S3Target {
    client: reqwest::Client,
    bucket: Bucket,
    credentials: Credentials,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("bucket", &self.bucket.name())
            .field("endpoint", &self.bucket.base_url().as_str())
            .finish_non_exhaustive()
    }
}

fn etag_of(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

/// What went wrong with one request, before it is named.
enum Failed {
    Status(u16, String),
    Network(reqwest::Error),
    Read(std::path::PathBuf, std::io::Error),
}

impl Failed {
    fn transient(&self) -> bool {
        match self {
            Self::Status(s, _) => *s == 408 || *s == 429 || *s >= 500,
            Self::Network(e) => e.is_timeout() || e.is_connect() || e.is_request() || e.is_body(),
            Self::Read(..) => false,
        }
    }
}

/// The text of the first `<name>` element of an S3 XML body, or "".
fn xml_field(body: &str, name: &str) -> String {
    body.split_once(&format!("<{name}>"))
        .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
        .map(|(v, _)| v.to_owned())
        .unwrap_or_default()
}

/// The `<Code>` and `<Message>` of an S3 error body.
fn s3_error(body: &str) -> (String, String) {
    (xml_field(body, "Code"), xml_field(body, "Message"))
}

/// A key as `x-amz-copy-source` wants it: percent-encoded but for
/// unreserved characters and `/` (so `+` is `%2B`, as in request paths).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3Target {
    /// A target for `url`'s bucket at `endpoint` (AWS's regional endpoint
    /// when `None`); path-style addressing when asked, or when the
    /// endpoint's host is an IP address or `localhost`.
    pub fn new(
        url: &S3Url,
        endpoint: Option<&str>,
        path_style: bool,
        config: &AwsConfig,
    ) -> Result<Self, PushError> {
        let endpoint_text = endpoint
            .map(str::to_owned)
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region));
        let bad = |problem: String| PushError::Endpoint {
            url: endpoint_text.clone(),
            problem,
        };
        let endpoint: Url = endpoint_text.parse().map_err(|e| bad(format!("{e}")))?;
        let host_is_ip = matches!(
            endpoint.host(),
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))
        ) || endpoint.host_str() == Some("localhost");
        let style = if path_style || host_is_ip {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint.clone(),
            style,
            url.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| bad(e.to_string()))?;
        let c = &config.credentials;
        let credentials = match &c.session_token {
            Some(token) => Credentials::new_with_token(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                token.clone(),
            ),
            None => Credentials::new(c.access_key_id.clone(), c.secret_access_key.clone()),
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("depot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(PushError::Client)?;
        Ok(Self {
            client,
            bucket,
            credentials,
            attempts: 5,
            backoff: Duration::from_millis(200),
        })
    }

    /// `s3://BUCKET/KEY`, how an object is named in messages (never the
    /// signed URL: it carries the access key id and any session token).
    pub fn show(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket.name())
    }

    fn failed(&self, method: &'static str, key: &str, f: Failed) -> PushError {
        match f {
            Failed::Status(status @ (401 | 403), body) => {
                let (code, message) = s3_error(&body);
                PushError::Denied {
                    method,
                    object: self.show(key),
                    status,
                    code,
                    message,
                }
            }
            Failed::Status(status, body) => {
                let (code, message) = s3_error(&body);
                PushError::Status {
                    method,
                    object: self.show(key),
                    status,
                    code,
                    message,
                }
            }
            Failed::Network(source) => PushError::Network {
                method,
                object: self.show(key),
                source,
            },
            Failed::Read(path, source) => PushError::Io { path, source },
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the attempts
    /// are spent.
    async fn retrying<T, F, Fut>(
        &self,
        method: &'static str,
        key: &str,
        reporter: &dyn Reporter,
        mut attempt: F,
    ) -> Result<T, PushError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failed>>,
    {
        let mut delay = self.backoff;
        let mut n = 1;
        loop {
            match attempt().await {
                Ok(t) => return Ok(t),
                Err(f) if f.transient() && n < self.attempts => {
                    let reason = match &f {
                        Failed::Status(s, _) => format!("HTTP {s}"),
                        Failed::Network(e) => crate::http::error_chain(e),
                        Failed::Read(_, e) => e.to_string(),
                    };
                    reporter.report(Event::Retry {
                        url: &self.show(key),
                        attempt: n,
                        reason: &reason,
                    });
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    n += 1;
                }
                Err(f) => return Err(self.failed(method, key, f)),
            }
        }
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, Failed> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Err(Failed::Status(status, body))
    }

    /// Every object under `prefix` (ListObjectsV2, 1000 a page): key
    /// relative to `prefix` → size and ETag. `bounds` (sorted keys,
    /// typically every n-th key the push expects) split the key space
    /// into ranges listed in parallel —
    /// `(b[i], b[i+1]]`, with `start-after` — since one listing is a chain
    /// of dependent requests, and a 63,000-object stage is 63 of them.
    pub async fn list(
        &self,
        prefix: &str,
        bounds: &[String],
        concurrency: usize,
        reporter: &dyn Reporter,
    ) -> Result<rustc_hash::FxHashMap<String, Listed>, PushError> {
        let mut ranges: Vec<(Option<&str>, Option<&str>)> = Vec::new();
        let mut lower = None;
        for b in bounds {
            ranges.push((lower, Some(b.as_str())));
            lower = Some(b.as_str());
        }
        ranges.push((lower, None));
        let parts: Vec<Result<Vec<(String, Listed)>, PushError>> =
            futures_util::stream::iter(ranges)
                .map(|(after, upto)| self.list_range(prefix, after, upto, reporter))
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        let mut out = rustc_hash::FxHashMap::default();
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }

    /// The keys under `prefix` after `after` (exclusive) up to `upto`
    /// (inclusive), relative to `prefix`.
    async fn list_range(
        &self,
        prefix: &str,
        after: Option<&str>,
        upto: Option<&str>,
        reporter: &dyn Reporter,
    ) -> Result<Vec<(String, Listed)>, PushError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let body = self
                .retrying("LIST", prefix, reporter, || async {
                    let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
                    action.with_prefix(prefix);
                    match (&token, after) {
                        (Some(t), _) => action.with_continuation_token(t.as_str()),
                        (None, Some(a)) => action.with_start_after(a),
                        (None, None) => {}
                    }
                    let url = action.sign(SIGNED_FOR);
                    let resp = self.client.get(url).send().await.map_err(Failed::Network)?;
                    Self::check(resp)
                        .await?
                        .text()
                        .await
                        .map_err(Failed::Network)
                })
                .await?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&body).map_err(|e| {
                PushError::Listing {
                    object: self.show(prefix),
                    problem: e.to_string(),
                }
            })?;
            for c in page.contents {
                if upto.is_some_and(|u| c.key.as_str() > u) {
                    return Ok(out);
                }
                let Some(rel) = c.key.strip_prefix(prefix) else {
                    continue;
                };
                out.push((
                    rel.to_owned(),
                    Listed {
                        size: c.size.unwrap_or(0),
                        etag: c.etag.unwrap_or_default().trim_matches('"').to_owned(),
                    },
                ));
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The SHA-256 a push recorded in an object's metadata, if any.
    pub async fn head_sha256(
        &self,
        key: &str,
        reporter: &dyn Reporter,
    ) -> Result<Option<Sha256Digest>, PushError> {
        self.retrying("HEAD", key, reporter, || async {
            let url = self
                .bucket
                .head_object(Some(&self.credentials), key)
                .sign(SIGNED_FOR);
            let resp = self
                .client
                .head(url)
                .send()
                .await
                .map_err(Failed::Network)?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            let resp = Self::check(resp).await?;
            Ok(resp
                .headers()
                .get(SHA_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()))
        })
        .await
    }

    /// A small object's bytes; `None` if it does not exist.
    pub async fn get(
        &self,
        key: &str,
        reporter: &dyn Reporter,
    ) -> Result<Option<Vec<u8>>, PushError> {
        self.retrying("GET", key, reporter, || async {
            let url = self
                .bucket
                .get_object(Some(&self.credentials), key)
                .sign(SIGNED_FOR);
            let resp = self.client.get(url).send().await.map_err(Failed::Network)?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            let bytes = Self::check(resp)
                .await?
                .bytes()
                .await
                .map_err(Failed::Network)?;
            Ok(Some(bytes.to_vec()))
        })
        .await
    }

    /// A PUT of `key` presigned with `headers`, which it also sends.
    fn signed_put(&self, key: &str, headers: &[(&'static str, &str)]) -> reqwest::RequestBuilder {
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        for &(name, value) in headers {
            action.headers_mut().insert(name, value);
        }
        let mut request = self.client.put(action.sign(SIGNED_FOR));
        for &(name, value) in headers {
            request = request.header(name, value);
        }
        request
    }

    /// Uploads `body` (a file, or bytes) as `key`, with its SHA-256 in
    /// the metadata; returns the ETag.
    pub async fn put(
        &self,
        key: &str,
        body: Body<'_>,
        meta: &Meta<'_>,
        reporter: &dyn Reporter,
    ) -> Result<String, PushError> {
        let sha = meta.sha256.to_hex();
        let headers = meta.headers(&sha);
        self.retrying("PUT", key, reporter, || async {
            let (bytes, len) = match &body {
                Body::Bytes(b) => (reqwest::Body::from(b.to_vec()), b.len() as u64),
                Body::File(path) => {
                    let read = |e| Failed::Read(path.to_path_buf(), e);
                    let mut file = std::fs::File::open(path).map_err(read)?;
                    let len = file.metadata().map_err(read)?.len();
                    if len <= SMALL_FILE {
                        // Most package files are small and in the page
                        // cache: one read beats a stream of chunks.
                        let mut bytes = Vec::with_capacity(len as usize);
                        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(read)?;
                        let len = bytes.len() as u64;
                        (reqwest::Body::from(bytes), len)
                    } else {
                        let stream = tokio_util::io::ReaderStream::with_capacity(
                            tokio::fs::File::from_std(file),
                            256 * 1024,
                        );
                        (reqwest::Body::wrap_stream(stream), len)
                    }
                }
            };
            let resp = self
                .signed_put(key, &headers)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(bytes)
                .send()
                .await
                .map_err(Failed::Network)?;
            let resp = Self::check(resp).await?;
            reporter.report(Event::Bytes(len));
            Ok(etag_of(resp.headers()))
        })
        .await
    }

    /// Copies `source` (a key of this bucket) to `key` inside the server
    /// (CopyObject), with this object's own headers and metadata; returns
    /// the new ETag.
    pub async fn copy(
        &self,
        key: &str,
        source: &str,
        meta: &Meta<'_>,
        reporter: &dyn Reporter,
    ) -> Result<String, PushError> {
        let sha = meta.sha256.to_hex();
        let from = format!("/{}/{}", self.bucket.name(), encode_key(source));
        let [a, b, c] = meta.headers(&sha);
        let headers = [
            a,
            b,
            c,
            (COPY_SOURCE, from.as_str()),
            (METADATA_DIRECTIVE, "REPLACE"),
        ];
        self.retrying("COPY", key, reporter, || async {
            let resp = self
                .signed_put(key, &headers)
                .header(reqwest::header::CONTENT_LENGTH, 0)
                .send()
                .await
                .map_err(Failed::Network)?;
            let body = Self::check(resp)
                .await?
                .text()
                .await
                .map_err(Failed::Network)?;
            // A copy can fail after its 200 has been sent: the error is
            // then the body.
            if body.contains("<Error>") {
                return Err(Failed::Status(500, body));
            }
            Ok(xml_field(&body, "ETag")
                .replace("&#34;", "")
                .replace("&quot;", "")
                .trim_matches('"')
                .to_owned())
        })
        .await
    }

    /// Deletes `keys` (DeleteObjects, 1000 a request).
    pub async fn delete(&self, keys: &[String], reporter: &dyn Reporter) -> Result<(), PushError> {
        for chunk in keys.chunks(1000) {
            let first = chunk.first().map(String::as_str).unwrap_or_default();
            let body = self
                .retrying("DELETE", first, reporter, || async {
                    let objects: Vec<_> = chunk
                        .iter()
                        .map(|k| rusty_s3::actions::ObjectIdentifier::new(k.clone()))
                        .collect();
                    let mut action = self
                        .bucket
                        .delete_objects(Some(&self.credentials), objects.iter());
                    action.set_quiet(true);
                    let url = action.sign(SIGNED_FOR);
                    let (body, md5) = action.body_with_md5();
                    let resp = self
                        .client
                        .post(url)
                        .header("content-md5", md5)
                        .body(body)
                        .send()
                        .await
                        .map_err(Failed::Network)?;
                    Self::check(resp)
                        .await?
                        .text()
                        .await
                        .map_err(Failed::Network)
                })
                .await?;
            if body.contains("<Error>") {
                let (code, message) = s3_error(&body);
                return Err(PushError::Status {
                    method: "DELETE",
                    object: self.show(first),
                    status: 200,
                    code,
                    message,
                });
            }
        }
        Ok(())
    }
}

/// What a stored object carries besides its bytes.
pub struct Meta<'a> {
    /// Kept in `x-amz-meta-sha256`.
    pub sha256: Sha256Digest,
    pub content_type: &'a str,
    pub cache_control: &'a str,
}

impl<'a> Meta<'a> {
    /// The headers that store it, given the SHA-256 in hex.
    fn headers(&self, sha: &'a str) -> [(&'static str, &'a str); 3] {
        [
            ("cache-control", self.cache_control),
            ("content-type", self.content_type),
            (SHA_HEADER, sha),
        ]
    }
}

/// What an upload sends.
pub enum Body<'a> {
    Bytes(&'a [u8]),
    /// A file: read whole when small, else streamed; its size at the
    /// time it is opened is the `Content-Length`.
    File(&'a Path),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_why() {
        let t: S3Url = "s3://depot-test/a/b/".parse().unwrap();
        assert_eq!(t.bucket, "depot-test");
        assert_eq!(t.prefix, "a/b");
        assert_eq!(t.to_string(), "s3://depot-test/a/b");
        let t: S3Url = "s3://bucket".parse().unwrap();
        assert_eq!(t.prefix, "");
        for bad in [
            "http://b/p",
            "s3://",
            "s3://Upper/x",
            "s3://bk/a/../b",
            "s3://bk/a//b",
        ] {
            assert!(bad.parse::<S3Url>().is_err(), "{bad}");
        }
    }

    #[test]
    fn copy_sources_are_percent_encoded_but_for_slashes() {
        assert_eq!(
            encode_key("p/pool/main/p/plus++_1.0+b1_amd64.deb"),
            "p/pool/main/p/plus%2B%2B_1.0%2Bb1_amd64.deb"
        );
        assert_eq!(encode_key("a b/~c"), "a%20b/~c");
    }

    #[test]
    fn s3_error_bodies_give_code_and_message() {
        let (c, m) = s3_error(
            "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature</Message></Error>",
        );
        assert_eq!(c, "SignatureDoesNotMatch");
        assert_eq!(m, "The request signature");
    }
}
