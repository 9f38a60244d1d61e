//! What the `depot test` commands do, as one call each: submit to the
//! queue a caller resolved ([`QueueTarget`]), poll with the arguments
//! checked first, and run a worker on the right queues.
//!
//! Recording a request against a published version (`test submit --for`)
//! belongs to the distribution, not here: see
//! `promote::dist::submit_for`.
//!
//! It decides which queue and which checks; the wire formats stay in
//! [`super::request`], [`super::amqp`] and [`super::spool`].

use std::path::PathBuf;
use std::time::Duration;

use super::amqp::{AmqpQueue, BrokerUrl};
use super::poll::{self, PollOptions, PollReport};
use super::queue::{Queue, QueueError, Submitted};
use super::request::{Request, RequestError, is_name, is_trigger, is_word};
use super::results::{ResultsError, Store};
use super::spool::SpoolQueue;
use super::worker::{self, QueueSelection, WorkerError, WorkerEvents, WorkerSummary};

/// Where requests go: a RabbitMQ broker or a spool directory (resolved by
/// `Settings::queue` in `settings.rs`).
#[derive(Debug, Clone)]
pub enum QueueTarget {
    Broker(BrokerUrl),
    Spool(PathBuf),
}

impl QueueTarget {
    /// Queues `requests`; with a broker, returns once every publish is
    /// confirmed.
    pub async fn submit(&self, requests: &[Request]) -> Result<Vec<Submitted>, QueueError> {
        match self {
            Self::Broker(url) => AmqpQueue::connect(url).await?.submit(requests).await,
            Self::Spool(dir) => SpoolQueue::new(dir).submit(requests).await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Results(#[from] ResultsError),
}

impl PollError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Self::Request(r) => r.kind(),
            Self::Results(r) => r.kind(),
        }
    }
}

impl PollOptions {
    /// The same rules as for requests: these become URL and path parts.
    pub fn validate(&self) -> Result<(), RequestError> {
        let invalid = |field, value: &str, why| RequestError::Invalid {
            field,
            value: value.to_owned(),
            why,
        };
        if !is_name(&self.package) {
            return Err(invalid(
                "package",
                &self.package,
                "not a source package name",
            ));
        }
        if let Some(w) = std::iter::once(&self.release)
            .chain(&self.archs)
            .find(|w| !is_word(w))
        {
            return Err(invalid(
                "release/arch",
                w,
                "use lowercase letters, digits and `._+`",
            ));
        }
        if let Some(t) = self.triggers.iter().find(|t| !is_trigger(t)) {
            return Err(invalid("trigger", t, "must be SRCPKG/VERSION"));
        }
        Ok(())
    }
}

/// How long `test poll --wait` keeps polling, and how often.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub timeout: Duration,
    pub interval: Duration,
}

/// `depot test poll`: checks the arguments, then reads the results once,
/// or until nothing is pending with `wait`.
pub async fn poll(opts: &PollOptions, wait: Option<Wait>) -> Result<PollReport, PollError> {
    opts.validate()?;
    Ok(match wait {
        Some(w) => poll::poll_wait(opts, w.timeout, w.interval).await?,
        None => poll::poll(opts).await?,
    })
}

/// What `depot test worker` was told.
#[derive(Debug, Clone)]
pub struct WorkOptions {
    /// Results URL: `file://DIR` or `swift+https://HOST/v1/AUTH_ACCOUNT`.
    pub results: String,
    pub command: Vec<String>,
    pub once: bool,
    pub interval: Duration,
    /// Take requests for this release and these architectures only
    /// (required on a broker, which cannot list its queues).
    pub release: Option<String>,
    pub archs: Vec<String>,
}

/// `depot test worker`: runs queued requests from `target`.
pub async fn work(
    target: &QueueTarget,
    opts: WorkOptions,
    events: &dyn WorkerEvents,
) -> Result<WorkerSummary, WorkerError> {
    let results = Store::open(&opts.results)?;
    // Refuse at once, not after running a test whose result cannot be kept.
    results.check_writable().await?;
    let named = match (&opts.release, opts.archs.is_empty()) {
        (Some(r), false) => Some(worker::queues_for(r, &opts.archs)),
        (None, true) => None,
        _ => {
            return Err(RequestError::Combination(
                "give --release and --arch together (or neither, to take from every spooled queue)",
            )
            .into());
        }
    };
    let run = worker::WorkerOptions {
        results,
        command: opts.command,
        once: opts.once,
        interval: opts.interval,
    };
    match target {
        QueueTarget::Broker(url) => {
            let Some(queues) = named else {
                return Err(RequestError::Combination(
                    "a worker on a broker needs --release and --arch (AMQP cannot list queues)",
                )
                .into());
            };
            let mut q = AmqpQueue::connect(url).await?;
            worker::run(&mut q, &QueueSelection::Named(queues), &run, events).await
        }
        QueueTarget::Spool(dir) => {
            let mut q = SpoolQueue::new(dir);
            let selection = match named {
                Some(n) => QueueSelection::Named(n),
                None => QueueSelection::AllSpooled(q.clone()),
            };
            worker::run(&mut q, &selection, &run, events).await
        }
    }
}
