//! Progress as events.
//!
//! Long operations report what they do through a [`Reporter`]; the binary
//! turns events into progress bars (on a TTY) or log lines, and library
//! users may ignore them with [`NoReporter`]. The core never prints.

/// Something worth telling the person or log watching a long operation.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A new phase of work on `subject` (a mirror, a distribution) began.
    Phase { subject: &'a str, message: &'a str },
    /// `files` downloads totalling `bytes` are about to start.
    DownloadsPlanned {
        subject: &'a str,
        files: u64,
        bytes: u64,
    },
    /// `bytes` more bytes arrived.
    Bytes(u64),
    /// One planned download finished (verified and pooled).
    FileDone,
    /// All planned downloads of the current phase finished or were abandoned.
    DownloadsFinished,
    /// Work on `subject` failed, and the operation goes on with the rest
    /// (one mirror of several); the operation's own error says how many.
    Failed {
        subject: &'a str,
        error: &'a (dyn std::error::Error + 'static),
    },
    /// A transient failure that will be retried.
    Retry {
        url: &'a str,
        attempt: u32,
        reason: &'a str,
    },
}

pub trait Reporter: Send + Sync {
    fn report(&self, event: Event<'_>);
}

/// A reporter that drops every event.
pub struct NoReporter;

impl Reporter for NoReporter {
    fn report(&self, _: Event<'_>) {}
}
