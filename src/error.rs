//! How a failure is reported: every core error has a kind, and the binary
//! maps kinds to its documented exit codes.
//!
//! Each module's error type says its own kind with an exhaustive `match`
//! (a `kind()` method without a wildcard arm), so a new variant cannot
//! silently exit 1; `classify.rs` (at the top) finds the core error in a chain of
//! causes and asks it. This module sits at the bottom and imports nothing.

/// How a failure should be reported to a caller (the binary maps these to
/// its documented exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operation failed (verification, download, I/O, …).
    Failure,
    /// The request itself is invalid (bad name, contradictory options).
    Usage,
    /// Refused: the object is busy (locked by another process).
    Refused,
    /// Not a failure yet: test results are still pending.
    Pending,
}
