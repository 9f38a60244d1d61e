//! The seam between depot and whatever carries requests to workers: the
//! embedded [`spool`](super::spool) directory or a RabbitMQ broker
//! ([`amqp`](super::amqp)). Both keep autopkgtest-cloud's queue names and
//! message bodies, and both give a worker at-least-once delivery: a taken
//! request stays queued until the worker acknowledges it, so a worker that
//! dies mid-run loses nothing.
//!
//! The trait and its shared types only; each queue owns its own transport.

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::request::Request;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("invalid broker URL `{url}`: {why}")]
    InvalidBroker { url: String, why: &'static str },
    #[error("cannot connect to the broker {broker}")]
    Connect {
        broker: String,
        #[source]
        source: Box<lapin::Error>,
    },
    #[error("cannot connect to the broker {broker}: no answer within 30 s")]
    ConnectTimeout { broker: String },
    #[error("broker {broker}: cannot {action} queue `{queue}`")]
    Amqp {
        broker: String,
        action: &'static str,
        queue: String,
        #[source]
        source: Box<lapin::Error>,
    },
    #[error("broker {broker} refused request {id} for queue `{queue}` (negative confirm)")]
    Nacked {
        broker: String,
        queue: String,
        id: String,
    },
    #[error("broker {broker} could not route request {id} to queue `{queue}`")]
    Unroutable {
        broker: String,
        queue: String,
        id: String,
    },
    #[error("spool {}: cannot {action}", path.display())]
    Spool {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl QueueError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidBroker { .. } => Usage,
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Amqp { .. }
            | Self::Nacked { .. }
            | Self::Unroutable { .. }
            | Self::Spool { .. } => Failure,
        }
    }
}

/// What `depot test submit` queued.
#[derive(Debug, Clone, Serialize)]
pub struct Submitted {
    pub queue: String,
    /// Unique and sortable by submission time: the spool file's name, the
    /// AMQP `message_id` property.
    pub id: String,
    /// The exact message body.
    pub body: String,
}

/// A request taken from a queue, not yet acknowledged.
#[derive(Debug)]
pub struct Taken<H> {
    pub queue: String,
    pub id: String,
    pub body: Vec<u8>,
    pub handle: H,
}

/// A queue of test requests. The futures are not `Send`: depot drives one
/// queue from one task, and dropping the bound keeps the trait usable with
/// `async fn`.
#[allow(async_fn_in_trait)]
pub trait Queue {
    type Handle;

    /// Queues `requests` and returns once every one is durably stored (spool
    /// file synced and renamed, or confirmed by the broker). Requests are
    /// queued in order; on error, earlier ones may already be queued.
    async fn submit(&mut self, requests: &[Request]) -> Result<Vec<Submitted>, QueueError>;

    /// Takes the oldest request from any of `queues`; `None` if they are all
    /// empty. The request stays queued (invisible to other workers) until
    /// [`ack`](Self::ack) or [`reject`](Self::reject), or until this process
    /// dies, which puts it back.
    async fn take(&mut self, queues: &[String]) -> Result<Option<Taken<Self::Handle>>, QueueError>;

    /// Like [`take`](Self::take), but waits up to `patience` for a request
    /// to arrive. The default looks again after `patience`; a broker
    /// pushes instead.
    async fn next(
        &mut self,
        queues: &[String],
        patience: std::time::Duration,
    ) -> Result<Option<Taken<Self::Handle>>, QueueError> {
        match self.take(queues).await? {
            Some(t) => Ok(Some(t)),
            None => {
                tokio::time::sleep(patience).await;
                Ok(None)
            }
        }
    }

    /// The request is done: remove it for good.
    async fn ack(&mut self, taken: Taken<Self::Handle>) -> Result<(), QueueError>;

    /// The request is malformed: drop it without requeueing (the spool keeps
    /// a copy under `rejected/` for inspection).
    async fn reject(&mut self, taken: Taken<Self::Handle>) -> Result<(), QueueError>;
}

/// A new request id: UTC time to the nanosecond (so ids sort in submission
/// order), then the pid, a per-process counter and random bits (so two
/// processes in the same nanosecond still differ).
pub fn new_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = jiff::Timestamp::now();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded from the OS: good enough for uniqueness.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(seq);
    format!(
        "{}{:09}Z-{}-{}-{:06x}",
        now.strftime("%Y%m%dT%H%M%S."),
        now.subsec_nanosecond(),
        std::process::id(),
        seq,
        h.finish() & 0xff_ffff
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_sort_by_time() {
        let a = super::new_id();
        let b = super::new_id();
        assert_ne!(a, b);
        assert!(a < b || a[..25] == b[..25], "{a} {b}");
    }
}
