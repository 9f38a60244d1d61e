//! Debian version ordering (dpkg's `verrevcmp`), without allocating.
//!
//! The `debversion` crate parses with a regular expression; comparing the
//! ~10⁶ version pairs of a dependency closure or a merge over a 63k-package
//! archive spent most of its time there. This is dpkg's algorithm on
//! borrowed strings, cross-checked against `debversion` in the tests.
//!
//! Pure comparison: no I/O.

use std::cmp::Ordering;

/// Splits `[epoch:]upstream[-revision]`.
fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), r)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// dpkg's character order: `~` first, then the end of the string, then
/// letters, then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

/// Compares two Debian versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

#[cfg(test)]
mod tests {
    use super::compare;

    #[test]
    fn agrees_with_the_debversion_crate() {
        let versions = [
            "1.0~rc1",
            "1.0",
            "1.0+b1",
            "1:0.9",
            "1.0-1",
            "1.0-1~bpo1",
            "1.0-1+deb12u1",
            "2.36-9",
            "2.36-9+deb12u4",
            "0.5",
            "0.5a",
            "0.5.1",
            "1.0~~",
            "1.0~",
            "1:1.0",
            "2:0",
            "10",
            "9",
            "1.2.3-0ubuntu1",
            "1.2.3-0ubuntu1.1",
            "20230101",
            "1.0+dfsg-1",
            "1.0.0",
            "1.0-0",
            "7.88.1-10+deb12u5",
            "1.0a~b",
            "1.0a",
        ];
        for a in versions {
            for b in versions {
                let want = a
                    .parse::<debversion::Version>()
                    .unwrap()
                    .cmp(&b.parse::<debversion::Version>().unwrap());
                assert_eq!(compare(a, b), want, "{a} vs {b}");
            }
        }
    }
}
