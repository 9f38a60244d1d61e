//! OpenPGP signatures through GnuPG (gpgme).
//!
//! Verification is always against an explicit keyring file (binary or
//! armoured), imported into a throwaway GnuPG home so that the user's own
//! keyring never widens what a mirror trusts. Signing uses the user's GnuPG
//! home and agent (`GNUPGHOME`, smartcards, pinentry), selected by key id,
//! fingerprint or user id.

use std::path::{Path, PathBuf};

use gpgme::{Context, Protocol, SignatureSummary};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("GnuPG (gpgme) failed while {doing}")]
    Gpgme {
        doing: &'static str,
        #[source]
        source: gpgme::Error,
    },
    #[error("cannot read the keyring {}", path.display())]
    Keyring {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the keyring {} contains no OpenPGP public key", path.display())]
    EmptyKeyring { path: PathBuf },
    #[error("no good signature by a key in {}: {detail}", keyring.display())]
    BadSignature { keyring: PathBuf, detail: String },
    #[error("no secret key matches `{key}` in the GnuPG home")]
    NoSecretKey { key: String },
    #[error("`{key}` matches {count} secret keys; give a fingerprint")]
    AmbiguousKey { key: String, count: usize },
    #[error("cannot create a temporary GnuPG home")]
    TempHome(#[source] std::io::Error),
}

fn gpg(doing: &'static str) -> impl FnOnce(gpgme::Error) -> SigningError {
    move |source| SigningError::Gpgme { doing, source }
}

/// A keyring loaded into a private, temporary GnuPG home.
pub struct Verifier {
    keyring: PathBuf,
    // Dropped last: the context must go before its home directory.
    ctx: Context,
    _home: tempfile::TempDir,
}

impl Verifier {
    pub fn new(keyring: &Path) -> Result<Self, SigningError> {
        let bytes = std::fs::read(keyring).map_err(|source| SigningError::Keyring {
            path: keyring.to_owned(),
            source,
        })?;
        // GnuPG's socket paths must stay short: keep the home under /tmp.
        let home = tempfile::Builder::new()
            .prefix("depot-gpg-")
            .tempdir()
            .map_err(SigningError::TempHome)?;
        let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(gpg("starting"))?;
        ctx.set_engine_home_dir(home.path().to_string_lossy().as_ref())
            .map_err(gpg("setting the home directory"))?;
        let result = ctx.import(&bytes).map_err(gpg("importing the keyring"))?;
        if result.considered() == 0 || result.imported() + result.unchanged() == 0 {
            return Err(SigningError::EmptyKeyring {
                path: keyring.to_owned(),
            });
        }
        Ok(Self {
            keyring: keyring.to_owned(),
            ctx,
            _home: home,
        })
    }

    /// Verifies a clearsigned message (`InRelease`) and returns the signed
    /// text — the only part of the input that may be trusted.
    pub fn verify_clearsigned(&mut self, signed: &[u8]) -> Result<Vec<u8>, SigningError> {
        let mut plain = Vec::new();
        let result = self
            .ctx
            .verify_opaque(signed, &mut plain)
            .map_err(|e| self.bad(e.to_string()))?;
        self.check(&result)?;
        Ok(plain)
    }

    /// Verifies a detached signature (`Release.gpg`, `repomd.xml.asc`).
    pub fn verify_detached(&mut self, data: &[u8], signature: &[u8]) -> Result<(), SigningError> {
        let result = self
            .ctx
            .verify_detached(signature, data)
            .map_err(|e| self.bad(e.to_string()))?;
        self.check(&result)
    }

    fn bad(&self, detail: String) -> SigningError {
        SigningError::BadSignature {
            keyring: self.keyring.clone(),
            detail,
        }
    }

    fn check(&self, result: &gpgme::VerificationResult) -> Result<(), SigningError> {
        let mut problems = Vec::new();
        for sig in result.signatures() {
            let fpr = sig.fingerprint().unwrap_or("?").to_owned();
            match sig.status() {
                Ok(())
                    if !sig.summary().intersects(
                        SignatureSummary::RED
                            | SignatureSummary::KEY_REVOKED
                            | SignatureSummary::KEY_EXPIRED
                            | SignatureSummary::SIG_EXPIRED,
                    ) =>
                {
                    return Ok(());
                }
                Ok(()) => problems.push(format!("{fpr}: {:?}", sig.summary())),
                Err(e) => problems.push(format!("{fpr}: {e}")),
            }
        }
        if problems.is_empty() {
            problems.push("the data carries no signature".to_owned());
        }
        Err(self.bad(problems.join("; ")))
    }
}

/// Something that signs repository metadata. A seam for signing services
/// other than the local GnuPG agent.
pub trait Signer: Send + Sync {
    /// A clearsigned copy of `data` (apt's `InRelease`).
    fn clearsign(&self, data: &[u8]) -> Result<Vec<u8>, SigningError>;
    /// An armoured detached signature of `data` (`Release.gpg`).
    fn detach_sign(&self, data: &[u8]) -> Result<Vec<u8>, SigningError>;
}

/// Signs with a secret key from the user's GnuPG home, through gpgme.
#[derive(Debug, Clone)]
pub struct GpgSigner {
    fingerprint: String,
    /// The secret key as listed when the signer was made: each signature
    /// then costs one gpg run, not two (a key listing, then the signing).
    key: gpgme::Key,
}

impl GpgSigner {
    /// Selects the one secret key matching `key` (id, fingerprint or uid).
    pub fn new(key: &str) -> Result<Self, SigningError> {
        let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(gpg("starting"))?;
        let keys: Vec<_> = ctx
            .find_secret_keys([key])
            .map_err(gpg("listing secret keys"))?
            .filter_map(Result::ok)
            .filter(|k| k.can_sign())
            .collect();
        match keys.as_slice() {
            [] => Err(SigningError::NoSecretKey {
                key: key.to_owned(),
            }),
            [one] => Ok(Self {
                fingerprint: one.fingerprint().unwrap_or(key).to_owned(),
                key: one.clone(),
            }),
            many => Err(SigningError::AmbiguousKey {
                key: key.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// The signing key's public part, ASCII-armoured: what a client needs
    /// to verify what this signer signs.
    pub fn public_key_armored(&self) -> Result<Vec<u8>, SigningError> {
        let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(gpg("starting"))?;
        ctx.set_armor(true);
        let key = ctx
            .get_key(self.fingerprint.as_str())
            .map_err(gpg("loading the signing key"))?;
        let mut out = Vec::new();
        ctx.export_keys(&[key], gpgme::ExportMode::empty(), &mut out)
            .map_err(gpg("exporting the public key"))?;
        Ok(out)
    }

    fn context(&self) -> Result<Context, SigningError> {
        let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(gpg("starting"))?;
        ctx.set_armor(true);
        ctx.add_signer(&self.key)
            .map_err(gpg("selecting the signing key"))?;
        Ok(ctx)
    }
}

impl Signer for GpgSigner {
    fn clearsign(&self, data: &[u8]) -> Result<Vec<u8>, SigningError> {
        let mut out = Vec::new();
        self.context()?
            .sign_clear(data, &mut out)
            .map_err(gpg("clearsigning"))?;
        Ok(out)
    }

    fn detach_sign(&self, data: &[u8]) -> Result<Vec<u8>, SigningError> {
        let mut out = Vec::new();
        self.context()?
            .sign_detached(data, &mut out)
            .map_err(gpg("signing"))?;
        Ok(out)
    }
}
