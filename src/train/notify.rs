//! Webhooks: one JSON POST per event of a run (started, finished, step
//! failed, published, promoted, tests pending) to each `notify:` URL.
//!
//! A POST is retried with backoff on a connection error or a non-2xx
//! answer, a bounded number of times; then the event is dropped with a
//! warning. A webhook never fails or stalls the run for long: each
//! attempt has a short timeout.
//!
//! Build repositories ([`crate::build`]) post their state changes through
//! the same [`Notifier`].
//!
//! This module sends; it reads and writes nothing in the data root.

use std::time::Duration;

use serde::Serialize;

use crate::report::{Event, Reporter};

/// Attempts per event and URL.
const ATTEMPTS: u32 = 3;
/// Wait before the second attempt; doubled for each one after.
const BACKOFF: Duration = Duration::from_millis(200);
/// The longest one attempt may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What a webhook receives.
#[derive(Debug, Clone, Serialize)]
pub struct Notice<'a> {
    /// `run-started`, `run-finished`, `step-failed`, `published`,
    /// `promoted`, `tests-pending`.
    pub event: &'a str,
    pub train: &'a str,
    pub run: &'a str,
    /// The step it is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<&'a str>,
    /// Event-specific details (the error, the version, the outcome).
    pub detail: serde_json::Value,
}

pub struct Notifier {
    urls: Vec<String>,
    client: Option<reqwest::Client>,
    attempts: u32,
}

impl Notifier {
    pub fn new(urls: Vec<String>) -> Self {
        // A client costs tens of milliseconds (TLS roots): only if needed.
        let client = (!urls.is_empty())
            .then(|| {
                // The provider may already be installed by another client.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .user_agent(concat!("depot/", env!("CARGO_PKG_VERSION")))
                    .timeout(TIMEOUT)
                    .build()
                    .ok()
            })
            .flatten();
        Self {
            urls,
            client,
            attempts: ATTEMPTS,
        }
    }

    /// Tries each POST `attempts` times (at least once) instead of
    /// [`ATTEMPTS`].
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// POSTs `notice` to every URL, retrying each a bounded number of
    /// times; failures are reported, never returned.
    pub async fn send(&self, notice: &Notice<'_>, reporter: &dyn Reporter) {
        self.post(notice, reporter).await;
    }

    /// POSTs any JSON body (a build's state, [`crate::build`]) the same
    /// way as [`Notifier::send`].
    pub async fn post(&self, body: &impl Serialize, reporter: &dyn Reporter) {
        if self.urls.is_empty() {
            return;
        }
        let Some(client) = &self.client else {
            return;
        };
        let body = serde_json::to_vec(body).unwrap_or_default();
        for url in &self.urls {
            let mut wait = BACKOFF;
            for attempt in 1..=self.attempts {
                let sent = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let reason = match sent {
                    Ok(r) if r.status().is_success() => break,
                    Ok(r) => format!("HTTP {}", r.status()),
                    Err(e) => crate::http::error_chain(&e),
                };
                if attempt == self.attempts {
                    let message = format!("webhook unreachable ({reason}); event dropped");
                    reporter.report(Event::Phase {
                        subject: url,
                        message: &message,
                    });
                } else {
                    reporter.report(Event::Retry {
                        url,
                        attempt,
                        reason: &reason,
                    });
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
}
