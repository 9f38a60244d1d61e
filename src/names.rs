//! Names of depot's objects (mirrors, snapshots, distributions, …).
//!
//! Names become file names inside the data root, so they are restricted to
//! a safe alphabet: no `/`, no leading dot, nothing a shell would mangle.
//!
//! It owns the rules for names, and for the names a URL path carries
//! (percent-decoded segments that must stay inside a tree); no I/O.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid {what} name `{name}`: use letters, digits and `._+-`, starting with a letter or digit (at most 128 characters)"
)]
pub struct InvalidName {
    pub what: &'static str,
    pub name: String,
}

impl InvalidName {
    /// A name the user gave: a usage error.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

/// Checks that `name` is usable as the name of a `what` (e.g. "mirror").
pub fn validate(what: &'static str, name: &str) -> Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

/// The path `rest` names below a tree, each segment percent-decoded;
/// `None` if a segment is empty, `.`, `..` or holds a `/`.
pub fn clean_path(rest: &[&str]) -> Option<PathBuf> {
    let mut p = PathBuf::new();
    for seg in rest {
        let decoded = percent_decode(seg)?;
        let c = Path::new(&decoded);
        if decoded.is_empty()
            || decoded.contains('/')
            || !matches!(c.components().next(), Some(Component::Normal(_)))
        {
            return None;
        }
        p.push(decoded);
    }
    Some(p)
}

pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rejects_paths_and_dots() {
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(super::validate("mirror", bad).is_err(), "{bad}");
        }
        for good in ["debian", "bookworm-main", "x86_64.v2", "a+b"] {
            assert!(super::validate("mirror", good).is_ok(), "{good}");
        }
    }
}
