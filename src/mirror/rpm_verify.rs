//! `--verify-packages` for rpm mirrors: every package's own signature is
//! checked against the mirror's keyring, as `rpm -K` does: the OpenPGP
//! signature in the signature header over the main header's bytes, then
//! the payload's SHA-256 against the digest that signed header records.
//! Nothing is unpacked. The check runs once the packages are pooled and
//! before the update is recorded, so a package that fails it leaves the
//! mirror's previous state in place.
//!
//! gpgme runs one `gpg` per check, a few milliseconds each, so packages
//! already verified against the same keyring (by content) are remembered
//! in `cache/rpm-verified/<keyring SHA-256>`, a list of package digests.
//! The list is derived data: a damaged or missing one only means packages
//! are checked again.
//!
//! This module owns that list (named by
//! [`crate::root::Root::rpm_verified_list`]); it reads pooled packages and
//! never changes the pool or the mirror's state.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};

use super::{MirrorDef, MirrorError};
use crate::digest::Sha256Digest;
use crate::formats::rpm_header::{self, RpmHeaderError};
use crate::pool::Pool;
use crate::root::Root;
use crate::signing::{SigningError, Verifier};

/// Why one package failed the check.
#[derive(Debug, thiserror::Error)]
pub enum PackageCheckError {
    #[error("cannot read it from the pool")]
    Io(#[source] std::io::Error),
    #[error("its header cannot be read")]
    Header(#[source] RpmHeaderError),
    #[error("it carries no OpenPGP header signature (RSAHEADER/DSAHEADER)")]
    Unsigned,
    #[error("its header signature does not verify")]
    Signature(#[source] SigningError),
    #[error("its payload does not match the digest in its signed header")]
    Payload,
}

/// Checks `packages` (upstream location, pool digest), skipping those
/// verified before with this keyring; returns how many were checked now.
pub(super) fn verify_packages(
    root: &Root,
    pool: &Pool,
    def: &MirrorDef,
    packages: &[(String, Sha256Digest)],
) -> Result<usize, MirrorError> {
    let keyring = def.keyring.as_deref().ok_or_else(|| {
        MirrorError::InvalidDefinition("--verify-packages needs --keyring".into())
    })?;
    let keyring_err = |source| MirrorError::Signature {
        mirror: def.name.clone(),
        url: keyring.display().to_string(),
        source,
    };
    let keyring_bytes = std::fs::read(keyring)
        .map_err(|source| SigningError::Keyring {
            path: keyring.to_owned(),
            source,
        })
        .map_err(keyring_err)?;
    let cache = root.rpm_verified_list(&Sha256Digest::of(&keyring_bytes).to_hex());
    let mut verified = read_list(&cache);
    let mut seen = HashSet::new();
    let todo: Vec<&(String, Sha256Digest)> = packages
        .iter()
        .filter(|(_, d)| !verified.contains(d) && seen.insert(*d))
        .collect();
    if todo.is_empty() {
        return Ok(0);
    }
    let threads = crate::fsutil::cores().min(todo.len());
    let chunk = todo.len().div_ceil(threads);
    let results: Vec<(Vec<Sha256Digest>, Option<MirrorError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = todo
            .chunks(chunk)
            .map(|mine| {
                s.spawn(move || {
                    let mut good = Vec::new();
                    let mut verifier = match Verifier::new(keyring) {
                        Ok(v) => v,
                        Err(e) => return (good, Some(keyring_err(e))),
                    };
                    for (location, digest) in mine {
                        if let Err(source) = check(&mut verifier, &pool.path(digest)) {
                            let err = MirrorError::PackageCheck {
                                mirror: def.name.clone(),
                                package: location.clone(),
                                source: Box::new(source),
                            };
                            return (good, Some(err));
                        }
                        good.push(*digest);
                    }
                    (good, None)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verification threads do not panic"))
            .collect()
    });
    let mut first_error = None;
    for (good, err) in results {
        verified.extend(good);
        first_error = first_error.or(err);
    }
    // Remember what passed even when something failed: a rerun then only
    // checks what is left.
    if let Err(e) = write_list(&cache, &verified) {
        tracing::debug!(
            "cannot record verified packages in {}: {e}",
            cache.display()
        );
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(todo.len()),
    }
}

fn check(verifier: &mut Verifier, path: &Path) -> Result<(), PackageCheckError> {
    let file = std::fs::File::open(path).map_err(PackageCheckError::Io)?;
    let mut file = BufReader::new(file);
    let signed = rpm_header::header_signatures(&mut file).map_err(PackageCheckError::Header)?;
    if signed.signatures.is_empty() {
        return Err(PackageCheckError::Unsigned);
    }
    let mut last = None;
    let good = signed.signatures.iter().any(|sig| {
        verifier
            .verify_detached(&signed.header, sig)
            .map_err(|e| last = Some(e))
            .is_ok()
    });
    if !good {
        return Err(PackageCheckError::Signature(
            last.expect("a failed check leaves its error"),
        ));
    }
    // The payload follows the header: hash the rest of the file.
    if let Some(want) = signed.payload_sha256 {
        let mut hasher = sha2::Sha256::default();
        std::io::copy(&mut file, &mut hasher).map_err(PackageCheckError::Io)?;
        if !Sha256Digest::from_hasher(hasher)
            .to_hex()
            .eq_ignore_ascii_case(&want)
        {
            return Err(PackageCheckError::Payload);
        }
    }
    Ok(())
}

fn read_list(path: &PathBuf) -> HashSet<Sha256Digest> {
    let Ok(file) = std::fs::File::open(path) else {
        return HashSet::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn write_list(path: &Path, digests: &HashSet<Sha256Digest>) -> std::io::Result<()> {
    let dir = path.parent().expect("the cache file has a folder");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    let mut out = std::io::BufWriter::new(tmp.as_file_mut());
    for d in digests {
        writeln!(out, "{d}")?;
    }
    out.flush()?;
    drop(out);
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rpm")
            .join(rel)
    }

    #[test]
    fn signed_packages_pass_and_unsigned_altered_or_foreign_ones_fail() {
        let signed = fixture("state1/Packages/alpha-1.0-1.noarch.rpm");
        let mut good = Verifier::new(&fixture("keys/good.asc")).unwrap();
        check(&mut good, &signed).unwrap();

        let mut wrong = Verifier::new(&fixture("keys/wrong.asc")).unwrap();
        let err = check(&mut wrong, &signed).unwrap_err();
        assert!(matches!(err, PackageCheckError::Signature(_)), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let altered = dir.path().join("altered.rpm");
        let mut bytes = std::fs::read(&signed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&altered, bytes).unwrap();
        let err = check(&mut good, &altered).unwrap_err();
        assert!(matches!(err, PackageCheckError::Payload), "{err}");

        let unsigned = dir.path().join("unsigned.rpm");
        rpm::PackageBuilder::new("u", "1", "MIT", "noarch", "unsigned")
            .using_config(rpm::BuildConfig::default().compression(rpm::CompressionType::None))
            .build()
            .unwrap()
            .write_file(&unsigned)
            .unwrap();
        let err = check(&mut good, &unsigned).unwrap_err();
        assert!(matches!(err, PackageCheckError::Unsigned), "{err}");
    }
}
