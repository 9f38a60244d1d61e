//! The steps of `mirror update`, shared by apt and rpm:
//!
//! 1. **fetch** the signed top-level index (apt `InRelease` or `Release` +
//!    `Release.gpg`, rpm `repomd.xml` + `repomd.xml.asc`) and check its
//!    signature; stop here when it is byte-for-byte what the last update saw;
//! 2. **verify**: fetch every index it lists that the mirror wants and check
//!    each against it (size and SHA-256, compressed and uncompressed);
//! 3. **plan**: the new content (index blobs in the pool) and the package
//!    files it names, narrowed by the mirror's filter;
//! 4. **download** the package files the pool lacks;
//! 5. **commit**: the new state and the summary, for [`super::update`] to
//!    save.
//!
//! A [`Kind`] (apt or rpm) supplies what differs between the formats;
//! [`Run`] holds what every step needs and the helpers both kinds use
//! (signature checks, checked fetches of listed indices, URLs built from
//! upstream paths). Nothing here saves state: an error at any step leaves
//! the previous state as it was.

use sha2::{Digest, Sha256};
use url::Url;

use super::download::{Outcome, Wanted};
use super::{MirrorDef, MirrorError, MirrorState, SignedIndex, UpdateOptions, UpdateSummary};
use crate::content::Content;
use crate::digest::Sha256Digest;
use crate::http::{FetchError, Fetcher, redact};
use crate::pool::{Pool, PoolError};
use crate::report::{Event, Reporter};
use crate::root::Root;
use crate::signing::Verifier;

/// The signed top-level index, once its signature is checked.
pub(super) struct Signed {
    /// The signed content (for a clearsigned InRelease, without the
    /// signature armour).
    pub trusted: Vec<u8>,
    pub url: Url,
    /// Digest of everything fetched raw (index and signature), for no-op
    /// detection.
    pub raw_digest: Sha256Digest,
}

/// What a plan names: the new content and the package files it needs.
pub(super) struct Planned<F> {
    pub content: Content,
    pub files: F,
}

/// What differs between apt and rpm mirrors, one method per step.
pub(super) trait Kind {
    /// What the verify step hands the plan step.
    type Verified;
    /// The package files a plan names, before they are URLs.
    type Files;

    async fn fetch(&self, run: &Run<'_>) -> Result<Signed, MirrorError>;

    async fn verify(&self, run: &Run<'_>, signed: &str) -> Result<Self::Verified, MirrorError>;

    fn plan(
        &self,
        run: &Run<'_>,
        verified: Self::Verified,
        previous: Option<&MirrorState>,
    ) -> Result<Planned<Self::Files>, MirrorError>;

    /// The files of `filtered` (the plan's content narrowed by the
    /// mirror's filter); `unfiltered` is the plan's list, to reuse.
    fn files_of_filtered(
        &self,
        run: &Run<'_>,
        filtered: &Content,
        unfiltered: Self::Files,
    ) -> Result<Self::Files, MirrorError>;

    async fn download(
        &self,
        run: &Run<'_>,
        content: &Content,
        files: Self::Files,
    ) -> Result<Outcome, MirrorError>;
}

/// One update in progress: the mirror, and the pool and HTTP client every
/// step uses.
pub(super) struct Run<'a> {
    pub root: &'a Root,
    pub def: &'a MirrorDef,
    pub opts: &'a UpdateOptions,
    pub reporter: &'a dyn Reporter,
    pub pool: Pool,
    pub fetcher: Fetcher,
}

impl<'a> Run<'a> {
    /// Temp files of killed runs removed, and an HTTP client.
    pub fn start(
        root: &'a Root,
        def: &'a MirrorDef,
        opts: &'a UpdateOptions,
        reporter: &'a dyn Reporter,
    ) -> Result<Self, MirrorError> {
        let pool = Pool::new(root);
        pool.clean_stale_temp_files();
        let fetcher =
            Fetcher::with_tls(&def.client_tls()).map_err(|source| MirrorError::Fetch {
                mirror: def.name.clone(),
                what: "starting".into(),
                source: Box::new(source),
            })?;
        Ok(Self {
            root,
            def,
            opts,
            reporter,
            pool,
            fetcher,
        })
    }

    /// fetch → verify → plan → download → commit. `None` as the state when
    /// upstream had not changed.
    pub async fn steps<K: Kind>(
        &self,
        kind: &K,
        previous: Option<&MirrorState>,
    ) -> Result<(Option<MirrorState>, UpdateSummary), MirrorError> {
        let signed = kind.fetch(self).await?;
        if let Some(summary) = UpdateSummary::unchanged(self.def, previous, signed.raw_digest) {
            return Ok((None, summary));
        }
        let text = String::from_utf8(signed.trusted)
            .map_err(|_| self.upstream(format!("{} is not UTF-8", redact(&signed.url))))?;
        let verified = kind.verify(self, &text).await?;
        drop(text);
        let Planned { content, files } = kind.plan(self, verified, previous)?;
        let (content, files, filtered_out, unsatisfied) =
            match super::apply_filter(self.root, self.def, &content)? {
                None => (content, files, 0, Vec::new()),
                Some((filtered, out, unsatisfied)) => {
                    let files = kind.files_of_filtered(self, &filtered, files)?;
                    (filtered, files, out, unsatisfied)
                }
            };
        let outcome = kind.download(self, &content, files).await?;
        Ok(self.commit(
            content,
            outcome,
            signed.raw_digest,
            filtered_out,
            unsatisfied,
        ))
    }

    fn commit(
        &self,
        content: Content,
        outcome: Outcome,
        release_raw: Sha256Digest,
        filtered_out: usize,
        unsatisfied: Vec<crate::packages::pkgset::Unsatisfied>,
    ) -> (Option<MirrorState>, UpdateSummary) {
        let summary = UpdateSummary {
            mirror: self.def.name.clone(),
            changed: true,
            indices: match &content {
                Content::Apt(a) => a.indices.len(),
                Content::Rpm(r) => r.metadata.len(),
            },
            packages: content.package_count(),
            downloaded_files: outcome.downloaded_files,
            downloaded_bytes: outcome.downloaded_bytes,
            already_pooled: outcome.already_pooled,
            deferred: outcome.deferred,
            filtered_out,
            unsatisfied,
        };
        let state = MirrorState {
            updated: self.opts.now,
            release_raw,
            fetch_digest: self.def.fetch_digest(),
            deferred: outcome.deferred,
            content,
        };
        (Some(state), summary)
    }

    pub fn phase(&self, message: &'static str) {
        self.reporter.report(Event::Phase {
            subject: &self.def.name,
            message,
        });
    }

    pub fn fetch_err(&self, what: String) -> impl FnOnce(FetchError) -> MirrorError + '_ {
        move |source| MirrorError::Fetch {
            mirror: self.def.name.clone(),
            what,
            source: Box::new(source),
        }
    }

    pub fn upstream(&self, problem: String) -> MirrorError {
        MirrorError::Upstream {
            mirror: self.def.name.clone(),
            problem,
        }
    }

    pub fn pool_err(&self, source: PoolError) -> MirrorError {
        MirrorError::Pool {
            mirror: self.def.name.clone(),
            source,
        }
    }

    /// The keyring's verifier, or `None` when the mirror skips signature
    /// checks.
    pub fn verifier(&self) -> Result<Option<Verifier>, MirrorError> {
        match &self.def.keyring {
            Some(k) if !self.def.no_verify => {
                Verifier::new(k)
                    .map(Some)
                    .map_err(|source| MirrorError::Signature {
                        mirror: self.def.name.clone(),
                        url: k.display().to_string(),
                        source,
                    })
            }
            _ => Ok(None),
        }
    }

    /// Fetches `url`; a 404 is the upstream error `missing` describes.
    pub async fn get_listed(
        &self,
        url: &Url,
        what: String,
        missing: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, MirrorError> {
        self.fetcher
            .get_optional(url, self.reporter)
            .await
            .map_err(self.fetch_err(what))?
            .ok_or_else(|| self.upstream(missing()))
    }

    /// Fetches `doc`'s detached signature from `sig_url` and checks it,
    /// unless the mirror skips verification; the signature joins `raw`
    /// (the no-op digest input).
    pub async fn check_detached(
        &self,
        doc: &[u8],
        doc_url: &Url,
        sig_url: &Url,
        raw: &mut Sha256,
    ) -> Result<(), MirrorError> {
        let Some(mut verifier) = self.verifier()? else {
            return Ok(());
        };
        let sig_name = sig_url.path().rsplit('/').next().unwrap_or_default();
        let sig = self
            .fetcher
            .get_optional(sig_url, self.reporter)
            .await
            .map_err(self.fetch_err(format!("fetching {sig_name}")))?
            .ok_or_else(|| MirrorError::Unsigned {
                mirror: self.def.name.clone(),
                url: redact(doc_url),
            })?;
        verifier
            .verify_detached(doc, &sig)
            .map_err(|source| MirrorError::Signature {
                mirror: self.def.name.clone(),
                url: redact(sig_url),
                source,
            })?;
        raw.update(&sig);
        Ok(())
    }

    /// Fetches an index the signed index lists, checks it (as served and,
    /// when `listed.open` is given, decompressed) and returns its text.
    pub async fn fetch_listed(&self, listed: Listed<'_>) -> Result<String, MirrorError> {
        let shown = redact(&listed.url);
        let raw = self
            .get_listed(&listed.url, format!("fetching {}", listed.name), || {
                format!("{shown} is listed in {} but missing", listed.signed)
            })
            .await?;
        let (size, sha256) = listed.expected;
        crate::pool::check_bytes(&raw, size, sha256).map_err(|source| {
            MirrorError::IndexMismatch {
                mirror: self.def.name.clone(),
                subject: shown.clone(),
                signed: listed.signed,
                source: Box::new(source),
            }
        })?;
        let plain =
            crate::formats::compress::decompress_named(listed.name, &raw).map_err(|source| {
                MirrorError::Decompress {
                    mirror: self.def.name.clone(),
                    url: shown.clone(),
                    source,
                }
            })?;
        drop(raw);
        if let Some(((size, sha256), signed)) = listed.open {
            crate::pool::check_bytes(&plain, size, sha256).map_err(|source| {
                MirrorError::IndexMismatch {
                    mirror: self.def.name.clone(),
                    subject: format!("the uncompressed content of {shown}"),
                    signed,
                    source: Box::new(source),
                }
            })?;
        }
        String::from_utf8(plain).map_err(|_| self.upstream(format!("{shown} is not UTF-8")))
    }

    /// `value`, a path from upstream metadata (`what` says which field),
    /// resolved against `base`; see [`resolve_under`].
    pub fn upstream_url(
        &self,
        base: &Url,
        what: &'static str,
        value: &str,
    ) -> Result<Url, MirrorError> {
        resolve_under(base, value).map_err(|source| MirrorError::UpstreamUrl {
            mirror: self.def.name.clone(),
            what,
            value: value.chars().take(200).collect(),
            base: redact(base),
            source,
        })
    }

    pub async fn download_missing(&self, wanted: Vec<Wanted>) -> Result<Outcome, MirrorError> {
        super::download::download_missing(
            self.def,
            &self.fetcher,
            &self.pool,
            wanted,
            self.opts,
            self.reporter,
        )
        .await
    }
}

/// Size (when listed) and SHA-256 an index must have.
pub(super) type Check = (Option<u64>, Sha256Digest);

/// An index the signed index lists, to fetch and check.
pub(super) struct Listed<'a> {
    pub url: Url,
    /// The name it is listed under; its suffix says the compression.
    pub name: &'a str,
    pub signed: SignedIndex,
    pub expected: Check,
    /// The uncompressed content's check, and where it is listed.
    pub open: Option<(Check, SignedIndex)>,
}

/// `value` resolved against `base`, which it must stay under: a path that
/// passed the syntactic checks ([`crate::formats::apt::unsafe_path_reason`])
/// can still leave it once resolved (`file:etc/passwd`, `https:host/x`,
/// `%2e%2e/x`), and upstream data must not send depot elsewhere. The error
/// is the parse error, if it was one.
fn resolve_under(base: &Url, value: &str) -> Result<Url, Option<url::ParseError>> {
    let url = base.join(value).map_err(Some)?;
    let under = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.path().starts_with(base.path());
    if under { Ok(url) } else { Err(None) }
}

/// SHA-256 of the raw bytes fetched for the signed index.
pub(super) fn raw_digest(doc: &[u8]) -> Sha256 {
    let mut h = Sha256::new();
    h.update(doc);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_paths_resolve_only_under_their_base() {
        let base = Url::parse("http://mirror.example/repo/").unwrap();
        let ok = resolve_under(&base, "Packages/a b-1.0.rpm").unwrap();
        assert_eq!(
            ok.as_str(),
            "http://mirror.example/repo/Packages/a%20b-1.0.rpm"
        );
        assert!(matches!(
            resolve_under(&base, "https:[x/a.rpm"),
            Err(Some(_))
        ));
        for escaping in [
            "file:etc/passwd",
            "https:other.example/a.rpm",
            "%2e%2e/%2e%2e/etc/passwd",
            "//other.example/repo/a.rpm",
        ] {
            assert_eq!(resolve_under(&base, escaping), Err(None), "{escaping}");
        }
    }
}
