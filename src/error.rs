//! How a failure is reported: every core error has a kind, and the binary
//! maps kinds to its documented exit codes.
//!
//! Each module's error type says its own kind with an exhaustive `match`
//! (a `kind()` method without a wildcard arm), so a new variant cannot
//! silently exit 1; [`error_kind`] finds the core error in a chain of
//! causes and asks it.

use crate::*;

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

/// Classifies any of the core's errors; `None` for foreign error types.
pub fn error_kind(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    use ErrorKind::*;
    if let Some(e) = err.downcast_ref::<lock::LockError>() {
        return Some(match e {
            lock::LockError::Busy { .. } => Refused,
            lock::LockError::Io { .. } => Failure,
        });
    }
    if let Some(e) = err.downcast_ref::<store::StoreError>() {
        return Some(e.kind());
    }
    if err.downcast_ref::<names::InvalidName>().is_some()
        || err
            .downcast_ref::<formats::compress::UnknownCompression>()
            .is_some()
    {
        return Some(Usage);
    }
    if let Some(e) = err.downcast_ref::<mirror::MirrorError>() {
        return Some(match e {
            mirror::MirrorError::InvalidName(_)
            | mirror::MirrorError::InvalidDefinition(_)
            | mirror::MirrorError::Query(_) => Usage,
            mirror::MirrorError::Lock(l) => error_kind(l).unwrap_or(Failure),
            // Upstream data, however malformed or hostile, fails the update;
            // it is not the user's request that is wrong.
            mirror::MirrorError::Upstream { .. }
            | mirror::MirrorError::UpstreamUrl { .. }
            | mirror::MirrorError::Malformed { .. }
            | mirror::MirrorError::IndexMismatch { .. }
            | mirror::MirrorError::Unsigned { .. }
            | mirror::MirrorError::Signature { .. }
            | mirror::MirrorError::Index { .. }
            | mirror::MirrorError::Decompress { .. }
            | mirror::MirrorError::Fetch { .. }
            | mirror::MirrorError::Downloads { .. }
            | mirror::MirrorError::PackageCheck { .. }
            | mirror::MirrorError::Filter { .. }
            | mirror::MirrorError::Pool { .. }
            | mirror::MirrorError::ReadDef { .. }
            | mirror::MirrorError::SomeFailed { .. } => Failure,
            mirror::MirrorError::Store(s) => s.kind(),
        });
    }
    if let Some(e) = err.downcast_ref::<snapshot::SnapshotError>() {
        return Some(match e {
            snapshot::SnapshotError::InvalidName(_)
            | snapshot::SnapshotError::Query(_)
            | snapshot::SnapshotError::Invalid(_) => Usage,
            snapshot::SnapshotError::Mirror(m) => error_kind(m).unwrap_or(Failure),
            snapshot::SnapshotError::Lock(l) => error_kind(l).unwrap_or(Failure),
            snapshot::SnapshotError::Served { .. } => Refused,
            snapshot::SnapshotError::Stages(d) => error_kind(d).unwrap_or(Failure),
            snapshot::SnapshotError::Store(s) => s.kind(),
            _ => Failure,
        });
    }
    if let Some(e) = err.downcast_ref::<repo::RepoError>() {
        return Some(match e {
            repo::RepoError::InvalidName(_) | repo::RepoError::Query(_) => Usage,
            repo::RepoError::Lock(l) => error_kind(l).unwrap_or(Failure),
            repo::RepoError::Store(s) => s.kind(),
            _ => Failure,
        });
    }
    if let Some(e) = err.downcast_ref::<promote::guard::GuardError>() {
        return Some(match e {
            promote::guard::GuardError::InvalidName(_)
            | promote::guard::GuardError::Reserved
            | promote::guard::GuardError::Subject(_) => Usage,
            promote::guard::GuardError::Store(s) => s.kind(),
            _ => Failure,
        });
    }
    if let Some(e) = err.downcast_ref::<promote::dist::DistError>() {
        return Some(match e {
            promote::dist::DistError::InvalidName(_) | promote::dist::DistError::Config(_) => Usage,
            promote::dist::DistError::Gate { .. } | promote::dist::DistError::Served { .. } => {
                Refused
            }
            promote::dist::DistError::Lock(l) => error_kind(l).unwrap_or(Failure),
            promote::dist::DistError::Store(s) => s.kind(),
            _ => Failure,
        });
    }
    if let Some(e) = err.downcast_ref::<promote::PublishError>() {
        return Some(match e {
            promote::PublishError::InvalidName(_) | promote::PublishError::InvalidSuite(_) => Usage,
            promote::PublishError::Lock(l) => error_kind(l).unwrap_or(Failure),
            promote::PublishError::Snapshot(s) => error_kind(s).unwrap_or(Failure),
            _ => Failure,
        });
    }
    if let Some(e) = err.downcast_ref::<retention::RetentionError>() {
        return Some(e.kind());
    }
    if let Some(e) = err.downcast_ref::<settings::SettingsError>() {
        return Some(e.kind());
    }
    if err.downcast_ref::<choice::UnknownWord>().is_some() {
        return Some(Usage);
    }
    if err.downcast_ref::<snapshot::ops::Unsatisfiable>().is_some() {
        return Some(Failure);
    }
    if let Some(e) = err.downcast_ref::<promote::dist::SubmitError>() {
        return Some(match e {
            promote::dist::SubmitError::Dist(d) => error_kind(d).unwrap_or(Failure),
            promote::dist::SubmitError::Request(r) => error_kind(r).unwrap_or(Failure),
            promote::dist::SubmitError::Queue(q) => error_kind(q).unwrap_or(Failure),
        });
    }
    if let Some(e) = err.downcast_ref::<testreq::ops::PollError>() {
        return Some(match e {
            testreq::ops::PollError::Request(r) => error_kind(r).unwrap_or(Failure),
            testreq::ops::PollError::Results(r) => error_kind(r).unwrap_or(Failure),
        });
    }
    if let Some(kind) = testreq::error_kind(err) {
        return Some(kind);
    }
    None
}
