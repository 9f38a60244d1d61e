//! Authentication to OpenStack Swift, as python-swiftclient does it: v1
//! (tempauth, swauth, and Swift's own `/auth/v1.0`) from `ST_AUTH`,
//! `ST_USER` and `ST_KEY`, else Keystone v3 from `OS_AUTH_URL`,
//! `OS_USERNAME`, `OS_PASSWORD`, `OS_PROJECT_NAME`, `OS_USER_DOMAIN_NAME`
//! and `OS_PROJECT_DOMAIN_NAME` (both domains `Default` when unset, as the
//! OpenStack clients assume) and optionally `OS_REGION_NAME`.
//!
//! - v1: `GET ST_AUTH` with `X-Auth-User`/`X-Auth-Key`; the token is in
//!   `X-Auth-Token` (or `X-Storage-Token`), the account in `X-Storage-Url`,
//!   its lifetime in seconds in `X-Auth-Token-Expires`.
//! - v3: `POST OS_AUTH_URL/v3/auth/tokens` with the `password` method,
//!   scoped to the project; the token is in `X-Subject-Token`, its end in
//!   the body's `token.expires_at`, the account in the catalog's
//!   `object-store` entry, `public` interface.
//!
//! It owns credentials and tokens, and keeps them out of `Debug` output
//! and logs ([`Secret`]). The environment is read when a `swift+` store
//! opens ([`Credentials::from_env`]), not with the other settings, so
//! credentials are never recorded with a results URL. Keystone cannot run
//! on a test machine, so v3 is tested against a loopback stub of its one
//! endpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use crate::http::redact;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{set} is set but {missing} is not")]
    Incomplete {
        set: &'static str,
        missing: &'static str,
    },
    #[error("{var} `{value}` is not a URL")]
    InvalidUrl { var: &'static str, value: String },
    #[error("{url} would send credentials in clear: use https (http only to a loopback host)")]
    Insecure { url: String },
    #[error("authentication at {url} failed")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("authentication at {url} refused: HTTP {status}")]
    Refused { url: String, status: u16 },
    #[error("authentication at {url} answered without {what}")]
    Malformed { url: String, what: &'static str },
}

impl AuthError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::Incomplete { .. } | Self::InvalidUrl { .. } | Self::Insecure { .. } => Usage,
            Self::Network { .. } | Self::Refused { .. } | Self::Malformed { .. } => Failure,
        }
    }
}

impl AuthError {
    /// Worth another try: the auth endpoint was unreachable, timed out,
    /// or its proxy answered 502, 503 or 504.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network { source, .. } => source.is_timeout() || source.is_connect(),
            Self::Refused { status, .. } => matches!(status, 502..=504),
            Self::Incomplete { .. }
            | Self::InvalidUrl { .. }
            | Self::Insecure { .. }
            | Self::Malformed { .. } => false,
        }
    }
}

/// A password, key or token: shown as `***` by `Debug`, read only through
/// [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: &str) -> Self {
        Self(Arc::from(value))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// As an HTTP header value marked sensitive, so that HTTP-level
    /// tracing and `Debug` of the request never show it.
    pub fn header(
        &self,
    ) -> Result<reqwest::header::HeaderValue, reqwest::header::InvalidHeaderValue> {
        let mut value = reqwest::header::HeaderValue::from_str(self.expose())?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Who the store authenticates as.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Swift's v1 auth (tempauth).
    V1 {
        auth_url: Url,
        user: String,
        key: Secret,
    },
    /// Keystone v3, password method, project scope.
    V3 {
        auth_url: Url,
        username: String,
        password: Secret,
        project_name: String,
        user_domain_name: String,
        project_domain_name: String,
        region: Option<String>,
    },
}

impl Credentials {
    /// python-swiftclient's choice: `ST_AUTH` first, else `OS_AUTH_URL`;
    /// `None` when neither is set. `var` looks a variable up (empty counts
    /// as unset).
    /// Credentials from the process environment, read when a `swift+`
    /// results store is opened rather than resolved with the other
    /// settings: results URLs are recorded with tests and polled later
    /// (`promote --require-tests`, trains, `dist show`), and credentials
    /// must never be recorded with them.
    pub fn from_env() -> Result<Option<Self>, AuthError> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, AuthError> {
        let need = |set: &'static str, missing: &'static str| {
            var(missing).ok_or(AuthError::Incomplete { set, missing })
        };
        let url = |name: &'static str, value: String| {
            let parsed = Url::parse(&value).map_err(|_| AuthError::InvalidUrl {
                var: name,
                value: value.clone(),
            })?;
            check_transport(&parsed)?;
            Ok::<_, AuthError>(parsed)
        };
        if let Some(auth) = var("ST_AUTH") {
            return Ok(Some(Self::V1 {
                auth_url: url("ST_AUTH", auth)?,
                user: need("ST_AUTH", "ST_USER")?,
                key: Secret::new(&need("ST_AUTH", "ST_KEY")?),
            }));
        }
        if let Some(auth) = var("OS_AUTH_URL") {
            return Ok(Some(Self::V3 {
                auth_url: url("OS_AUTH_URL", auth)?,
                username: need("OS_AUTH_URL", "OS_USERNAME")?,
                password: Secret::new(&need("OS_AUTH_URL", "OS_PASSWORD")?),
                project_name: need("OS_AUTH_URL", "OS_PROJECT_NAME")?,
                user_domain_name: var("OS_USER_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
                project_domain_name: var("OS_PROJECT_DOMAIN_NAME")
                    .unwrap_or_else(|| "Default".into()),
                region: var("OS_REGION_NAME"),
            }));
        }
        Ok(None)
    }

    /// Who, for messages: `test:tester`, `alice@Default/project`.
    pub fn who(&self) -> String {
        match self {
            Self::V1 { user, .. } => user.clone(),
            Self::V3 {
                username,
                project_name,
                user_domain_name,
                ..
            } => format!("{username}@{user_domain_name}/{project_name}"),
        }
    }
}

/// Secrets go over TLS, or in clear only to this machine.
pub fn check_transport(url: &Url) -> Result<(), AuthError> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(AuthError::Insecure { url: redact(url) }),
    }
}

/// A token and what came with it.
#[derive(Debug, Clone)]
pub struct Token {
    pub token: Secret,
    /// The credentials' own account (`X-Storage-Url`, or the catalog's
    /// object-store endpoint).
    pub storage_url: Option<Url>,
    /// When to stop using it; `None` if the server did not say.
    pub renew_at: Option<Instant>,
}

impl Token {
    pub fn fresh(&self) -> bool {
        self.renew_at.is_none_or(|t| Instant::now() < t)
    }
}

/// A token is renewed this long before the server says it expires, so
/// that a request does not start with a token about to run out.
const EARLY: Duration = Duration::from_secs(60);

fn renew_at(seconds: Option<i64>) -> Option<Instant> {
    let seconds = u64::try_from(seconds?).unwrap_or(0);
    Some(Instant::now() + Duration::from_secs(seconds).saturating_sub(EARLY))
}

/// Gets a new token.
pub async fn authenticate(
    client: &reqwest::Client,
    credentials: &Credentials,
) -> Result<Token, AuthError> {
    match credentials {
        Credentials::V1 {
            auth_url,
            user,
            key,
        } => v1(client, auth_url, user, key).await,
        Credentials::V3 { auth_url, .. } => v3(client, auth_url, credentials).await,
    }
}

async fn v1(
    client: &reqwest::Client,
    auth_url: &Url,
    user: &str,
    key: &Secret,
) -> Result<Token, AuthError> {
    let shown = redact(auth_url);
    let resp = client
        .get(auth_url.clone())
        .header("X-Auth-User", user)
        .header(
            "X-Auth-Key",
            key.header().map_err(|_| AuthError::Malformed {
                url: shown.clone(),
                what: "a key that fits in a header",
            })?,
        )
        .send()
        .await
        .map_err(|source| AuthError::Network {
            url: shown.clone(),
            source,
        })?;
    if !resp.status().is_success() {
        return Err(AuthError::Refused {
            url: shown,
            status: resp.status().as_u16(),
        });
    }
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let token = header("x-auth-token")
        .or_else(|| header("x-storage-token"))
        .ok_or(AuthError::Malformed {
            url: shown.clone(),
            what: "X-Auth-Token",
        })?;
    Ok(Token {
        token: Secret::new(&token),
        storage_url: header("x-storage-url").and_then(|u| Url::parse(&u).ok()),
        renew_at: renew_at(header("x-auth-token-expires").and_then(|s| s.trim().parse().ok())),
    })
}

/// `OS_AUTH_URL` is the identity endpoint with or without its `/v3`.
fn v3_tokens_url(auth_url: &Url) -> Url {
    let mut url = auth_url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty();
    }
    let ends_in_v3 = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .is_some_and(|last| last == "v3");
    if let Ok(mut segments) = url.path_segments_mut() {
        if !ends_in_v3 {
            segments.push("v3");
        }
        segments.extend(["auth", "tokens"]);
    }
    url
}

async fn v3(
    client: &reqwest::Client,
    auth_url: &Url,
    credentials: &Credentials,
) -> Result<Token, AuthError> {
    let Credentials::V3 {
        username,
        password,
        project_name,
        user_domain_name,
        project_domain_name,
        region,
        ..
    } = credentials
    else {
        unreachable!("v3 is called with v3 credentials only")
    };
    let url = v3_tokens_url(auth_url);
    let shown = redact(&url);
    let body = serde_json::json!({
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": username,
                        "domain": { "name": user_domain_name },
                        "password": password.expose(),
                    }
                }
            },
            "scope": {
                "project": {
                    "name": project_name,
                    "domain": { "name": project_domain_name },
                }
            }
        }
    });
    let network = |source| AuthError::Network {
        url: shown.clone(),
        source,
    };
    let resp = client
        .post(url.clone())
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(network)?;
    if !resp.status().is_success() {
        return Err(AuthError::Refused {
            url: shown,
            status: resp.status().as_u16(),
        });
    }
    let token = resp
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(Secret::new)
        .ok_or(AuthError::Malformed {
            url: shown.clone(),
            what: "X-Subject-Token",
        })?;
    let bytes = resp.bytes().await.map_err(network)?;
    let body: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed {
            url: shown.clone(),
            what: "a JSON body",
        })?;
    let expires_in = body["token"]["expires_at"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second() - jiff::Timestamp::now().as_second());
    Ok(Token {
        token,
        storage_url: object_store_endpoint(&body, region.as_deref()),
        renew_at: renew_at(expires_in),
    })
}

/// The catalog's public object-store endpoint (in `region`, if given).
fn object_store_endpoint(body: &serde_json::Value, region: Option<&str>) -> Option<Url> {
    body["token"]["catalog"]
        .as_array()?
        .iter()
        .filter(|service| service["type"] == "object-store")
        .flat_map(|service| service["endpoints"].as_array().into_iter().flatten())
        .filter(|e| e["interface"] == "public")
        .find(|e| region.is_none_or(|r| e["region"] == r || e["region_id"] == r))
        .and_then(|e| e["url"].as_str())
        .and_then(|u| Url::parse(u).ok())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn st_auth_comes_before_os_auth_url_as_in_swiftclient() {
        let c = Credentials::from_vars(vars(&[
            ("ST_AUTH", "http://127.0.0.1:8080/auth/v1.0"),
            ("ST_USER", "test:tester"),
            ("ST_KEY", "testing"),
            ("OS_AUTH_URL", "https://keystone.example/v3"),
        ]))
        .unwrap()
        .unwrap();
        assert!(matches!(c, Credentials::V1 { .. }));
        assert_eq!(c.who(), "test:tester");
        assert!(Credentials::from_vars(vars(&[])).unwrap().is_none());
    }

    #[test]
    fn incomplete_or_clear_text_credentials_are_usage_errors() {
        let e =
            Credentials::from_vars(vars(&[("ST_AUTH", "http://127.0.0.1/auth/v1.0")])).unwrap_err();
        assert_eq!(e.to_string(), "ST_AUTH is set but ST_USER is not");
        let e = Credentials::from_vars(vars(&[
            ("OS_AUTH_URL", "http://keystone.example:5000/v3"),
            ("OS_USERNAME", "u"),
            ("OS_PASSWORD", "p"),
            ("OS_PROJECT_NAME", "x"),
        ]))
        .unwrap_err();
        assert!(matches!(e, AuthError::Insecure { .. }), "{e}");
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage);
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let c = Credentials::from_vars(vars(&[
            ("OS_AUTH_URL", "https://keystone.example/v3"),
            ("OS_USERNAME", "alice"),
            ("OS_PASSWORD", "hunter2-password"),
            ("OS_PROJECT_NAME", "ci"),
        ]))
        .unwrap()
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
        let t = Token {
            token: Secret::new("gAAAAsecret-token"),
            storage_url: None,
            renew_at: None,
        };
        assert!(!format!("{t:?}").contains("secret-token"));
    }

    #[test]
    fn the_tokens_url_gets_v3_once() {
        for (given, want) in [
            ("https://k.example/v3", "https://k.example/v3/auth/tokens"),
            ("https://k.example/v3/", "https://k.example/v3/auth/tokens"),
            (
                "https://k.example/identity",
                "https://k.example/identity/v3/auth/tokens",
            ),
            ("https://k.example", "https://k.example/v3/auth/tokens"),
        ] {
            assert_eq!(
                v3_tokens_url(&Url::parse(given).unwrap()).as_str(),
                want,
                "{given}"
            );
        }
    }

    /// What the Keystone stub saw of one request.
    struct Seen {
        request_line: String,
        body: serde_json::Value,
    }

    /// A loopback stand-in for Keystone's `POST /v3/auth/tokens` (Keystone
    /// itself cannot run here): answers each connection with `reply` and
    /// hands back what it was sent.
    fn keystone_stub(reply: String) -> (Url, std::sync::mpsc::Receiver<Seen>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let _ = tx.send(Seen {
                    request_line,
                    body: serde_json::from_slice(&body).unwrap_or_default(),
                });
                let mut stream = stream;
                stream.write_all(reply.as_bytes()).unwrap();
            }
        });
        (Url::parse(&format!("http://{addr}/v3")).unwrap(), rx)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn v3_credentials(auth_url: Url) -> Credentials {
        Credentials::V3 {
            auth_url,
            username: "alice".into(),
            password: Secret::new("s3cret"),
            project_name: "ci".into(),
            user_domain_name: "users".into(),
            project_domain_name: "projects".into(),
            region: Some("two".into()),
        }
    }

    #[test]
    fn keystone_v3_password_auth_scopes_to_the_project_and_reads_the_catalog() {
        let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let body = serde_json::json!({ "token": {
            "expires_at": expires.to_string(),
            "catalog": [
                { "type": "identity", "endpoints": [
                    { "interface": "public", "region": "two", "url": "https://k.example/v3" } ] },
                { "type": "object-store", "endpoints": [
                    { "interface": "internal", "region": "two", "url": "http://10.0.0.1/v1/AUTH_p" },
                    { "interface": "public", "region": "one", "url": "https://one.example/v1/AUTH_p" },
                    { "interface": "public", "region": "two", "url": "https://two.example/v1/AUTH_p" } ] }
            ] } })
        .to_string();
        let reply = format!(
            "HTTP/1.1 201 Created\r\nX-Subject-Token: gAAAAtoken\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (url, seen) = keystone_stub(reply);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let token = runtime()
            .block_on(authenticate(&client, &v3_credentials(url)))
            .unwrap();
        assert_eq!(token.token.expose(), "gAAAAtoken");
        assert_eq!(
            token.storage_url.unwrap().as_str(),
            "https://two.example/v1/AUTH_p"
        );
        let left = token.renew_at.unwrap() - Instant::now();
        assert!(
            left > Duration::from_secs(3000) && left < Duration::from_secs(3600),
            "{left:?}"
        );
        let seen = seen.recv().unwrap();
        assert!(
            seen.request_line.starts_with("POST /v3/auth/tokens "),
            "{}",
            seen.request_line
        );
        let auth = &seen.body["auth"];
        assert_eq!(auth["identity"]["methods"], serde_json::json!(["password"]));
        let user = &auth["identity"]["password"]["user"];
        assert_eq!(user["name"], "alice");
        assert_eq!(user["password"], "s3cret");
        assert_eq!(user["domain"]["name"], "users");
        assert_eq!(auth["scope"]["project"]["name"], "ci");
        assert_eq!(auth["scope"]["project"]["domain"]["name"], "projects");
    }

    #[test]
    fn a_keystone_refusal_names_the_endpoint_and_status() {
        let (url, _seen) = keystone_stub(
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        );
        let _ = rustls::crypto::ring::default_provider().install_default();
        let e = runtime()
            .block_on(authenticate(&reqwest::Client::new(), &v3_credentials(url)))
            .unwrap_err();
        assert!(matches!(e, AuthError::Refused { status: 401, .. }), "{e}");
        assert!(e.to_string().contains("/v3/auth/tokens"), "{e}");
        assert!(!format!("{e:?}").contains("s3cret"));
    }
}
