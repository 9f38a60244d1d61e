//! Content guards: who may read a stage of a distribution.
//!
//! A guard is either an x509 guard — a client certificate must chain to
//! its CA bundle (intermediates allowed), be within its validity period,
//! and optionally have a subject matching a regular expression — or a
//! token guard, whose tokens are stored only as SHA-256 digests and
//! compared in constant time. `guards/NAME.yaml` (and `NAME.ca.pem`) in the
//! data root; `depot serve` enforces them per stage.
//!
//! This module owns `guards/` (the definitions through [`crate::store`]);
//! it does not decide which stage uses which guard (`dist.rs` does) and
//! never touches published trees.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::names::InvalidName;
use crate::root::Root;
use crate::store::{Format, ObjectKind, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error("`public` means no guard; choose another name")]
    Reserved,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no token (one per line)", path.display())]
    NoToken { path: PathBuf },
    #[error("invalid --subject regex")]
    Subject(#[source] regex::Error),
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl GuardError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidName(_) | Self::Reserved | Self::Subject(_) => Usage,
            Self::Store(s) => s.kind(),
            Self::NoCertificate { .. } | Self::NoToken { .. } | Self::Io { .. } => Failure,
        }
    }
}

/// How a guard admits a reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum GuardKind {
    X509 {
        /// Number of CA certificates in `guards/NAME.ca.pem`.
        ca_certificates: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
    Token {
        /// SHA-256 of each accepted token; the tokens are not kept.
        token_sha256: Vec<Sha256Digest>,
        /// What its tokens may do; `read` (the default) for guards made
        /// before scopes existed.
        #[serde(default, skip_serializing_if = "Scope::is_read")]
        scope: Scope,
    },
}

/// What a token guard's tokens may do. `read`: read the stages the guard
/// is set on. `upload`: upload CI builds to `depot serve`'s
/// `/api/binaries/…` (see [`crate::build`]); an upload token reads
/// nothing a read guard protects unless a stage names its guard too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Read,
    Upload,
}

impl Scope {
    fn is_read(&self) -> bool {
        *self == Self::Read
    }
}

impl crate::choice::Choice for Scope {
    const WHAT: &'static str = "scope";
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (Self::Read, "read", "read the stages that name the guard"),
        (Self::Upload, "upload", "upload CI builds to depot serve"),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guard {
    pub name: String,
    #[serde(flatten)]
    pub kind: GuardKind,
    pub created: Timestamp,
}

impl Guard {
    /// What the guard admits, in words (never a token).
    pub fn describe(&self) -> String {
        match &self.kind {
            GuardKind::X509 {
                ca_certificates,
                subject,
            } => format!(
                "x509 ({ca_certificates} CA certificate(s){})",
                subject
                    .as_ref()
                    .map(|s| format!(", subject ~ {s}"))
                    .unwrap_or_default()
            ),
            GuardKind::Token {
                token_sha256,
                scope,
            } => format!(
                "token ({} token(s), stored hashed{})",
                token_sha256.len(),
                if *scope == Scope::Upload {
                    ", scope upload"
                } else {
                    ""
                }
            ),
        }
    }
}

/// What `guard create` takes.
#[derive(Debug, Clone)]
pub enum GuardSpec {
    X509 {
        ca: PathBuf,
        subject: Option<String>,
    },
    Token {
        file: PathBuf,
        scope: Scope,
    },
}

/// `guards/NAME.yaml`.
fn guards(root: &Root) -> Store<Guard> {
    Store::files(ObjectKind::Guard, root.guards_dir(), ".yaml", Format::Yaml)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GuardError + '_ {
    move |source| GuardError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The CA bundle of an x509 guard.
pub fn ca_path(root: &Root, name: &str) -> PathBuf {
    root.guard_ca_file(name)
}

/// The subject of a DER certificate as `CN=…,O=…` (RFC 4514 order
/// reversed to the usual reading order: as the certificate lists it).
///
/// A minimal DER walk, enough for subjects of certificates webpki has
/// already verified: depot needs one field, not a general X.509 parser.
pub fn subject_of(der: &[u8]) -> Option<String> {
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = b.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut fields = tbs;
    // [0] version is optional; then serial, signature, issuer, validity.
    let (tag, _, rest) = tlv(fields)?;
    if tag == 0xa0 {
        fields = rest;
    }
    for _ in 0..4 {
        fields = tlv(fields)?.2;
    }
    let (_, mut name, _) = tlv(fields)?;
    let mut parts = Vec::new();
    while !name.is_empty() {
        let (_, set, rest) = tlv(name)?;
        name = rest;
        let (_, atv, _) = tlv(set)?;
        let (_, oid, rest) = tlv(atv)?;
        let (_, value, _) = tlv(rest)?;
        let key = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            _ => "?",
        };
        parts.push(format!("{key}={}", String::from_utf8_lossy(value)));
    }
    Some(parts.join(","))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Guard {
    /// Whether `token` is one of a token guard's tokens.
    pub fn accepts_token(&self, token: &str) -> bool {
        let GuardKind::Token { token_sha256, .. } = &self.kind else {
            return false;
        };
        let digest = Sha256Digest::of(token.as_bytes()).to_hex();
        // Every stored digest is compared, so timing says nothing about
        // which (if any) matched.
        token_sha256.iter().fold(false, |hit, d| {
            constant_time_eq(d.to_hex().as_bytes(), digest.as_bytes()) | hit
        })
    }
}

/// `depot guard create`.
pub fn create(
    root: &Root,
    name: &str,
    spec: GuardSpec,
    now: Timestamp,
) -> Result<Guard, GuardError> {
    crate::names::validate("guard", name)?;
    if name == "public" {
        return Err(GuardError::Reserved);
    }
    let store = guards(root);
    // Checked before the CA bundle is written, so a second create leaves
    // the first guard's bundle alone.
    if store.exists(name) {
        return Err(StoreError::Exists {
            kind: store.object_kind(),
            name: name.to_owned(),
        }
        .into());
    }
    let kind = match spec {
        GuardSpec::X509 { ca, subject } => {
            let pem = std::fs::read(&ca).map_err(io(&ca))?;
            let certs: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect();
            if certs.is_empty() {
                return Err(GuardError::NoCertificate { path: ca });
            }
            if let Some(s) = &subject {
                regex::Regex::new(s).map_err(GuardError::Subject)?;
            }
            let dest = ca_path(root, name);
            crate::fsutil::write_atomic(&dest, &pem).map_err(io(&dest))?;
            GuardKind::X509 {
                ca_certificates: certs.len(),
                subject,
            }
        }
        GuardSpec::Token { file, scope } => {
            let text = std::fs::read_to_string(&file).map_err(io(&file))?;
            let token_sha256: Vec<Sha256Digest> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|t| Sha256Digest::of(t.as_bytes()))
                .collect();
            if token_sha256.is_empty() {
                return Err(GuardError::NoToken { path: file });
            }
            GuardKind::Token {
                token_sha256,
                scope,
            }
        }
    };
    let guard = Guard {
        name: name.to_owned(),
        kind,
        created: now,
    };
    store.create(name, &guard)?;
    Ok(guard)
}

pub fn load(root: &Root, name: &str) -> Result<Guard, GuardError> {
    crate::names::validate("guard", name)?;
    Ok(guards(root).load(name)?)
}

/// `depot guard list`.
pub fn list(root: &Root) -> Result<Vec<Guard>, GuardError> {
    guards(root)
        .load_listed()?
        .into_iter()
        .map(|(_, g)| Ok(g?))
        .collect()
}

/// `depot guard drop`.
pub fn drop_guard(root: &Root, name: &str) -> Result<(), GuardError> {
    load(root, name)?;
    guards(root).remove_if_present(name)?;
    let ca = ca_path(root, name);
    match std::fs::remove_file(&ca) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(&ca)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_compared_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# customers\nsecret-one\n\nsecret-two\n").unwrap();
        let now: Timestamp = "2026-11-22T00:00:00Z".parse().unwrap();
        let g = create(
            &root,
            "customers",
            GuardSpec::Token {
                file,
                scope: Scope::Read,
            },
            now,
        )
        .unwrap();
        let yaml = std::fs::read_to_string(dir.path().join("guards/customers.yaml")).unwrap();
        assert!(!yaml.contains("secret"), "{yaml}");
        assert!(g.accepts_token("secret-one") && g.accepts_token("secret-two"));
        assert!(!g.accepts_token("secret-on") && !g.accepts_token(""));
        assert_eq!(load(&root, "customers").unwrap(), g);
        assert!(matches!(
            create(
                &root,
                "public",
                GuardSpec::Token {
                    file: dir.path().join("tokens"),
                    scope: Scope::Read,
                },
                now
            ),
            Err(GuardError::Reserved)
        ));
        assert!(
            constant_time_eq(b"abc", b"abc")
                && !constant_time_eq(b"abc", b"abd")
                && !constant_time_eq(b"ab", b"abc")
        );
    }
}
