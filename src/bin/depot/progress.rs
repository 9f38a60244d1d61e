//! Turns the core's progress events into an indicatif bar (files, bytes,
//! rate, ETA) on a TTY, or into plain log lines otherwise.
//!
//! It is the only user of indicatif; the core only emits events.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use depot::report::{Event, Reporter};
use indicatif::{ProgressBar, ProgressStyle};

pub struct CliReporter {
    bars: bool,
    bar: Mutex<Option<ProgressBar>>,
    files_total: AtomicU64,
    files_done: AtomicU64,
}

impl CliReporter {
    pub fn new(bars: bool) -> Self {
        Self {
            bars,
            bar: Mutex::new(None),
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Ok(guard) = self.bar.lock()
            && let Some(bar) = guard.as_ref()
        {
            f(bar);
        }
    }
}

impl Reporter for CliReporter {
    fn report(&self, event: Event<'_>) {
        match event {
            Event::Phase { subject, message } => tracing::info!("{subject}: {message}"),
            Event::DownloadsPlanned {
                subject,
                files,
                bytes,
            } => {
                tracing::info!(
                    "{subject}: transferring {files} files ({})",
                    indicatif::HumanBytes(bytes)
                );
                self.files_total.store(files, Ordering::Relaxed);
                self.files_done.store(0, Ordering::Relaxed);
                if self.bars {
                    let bar = ProgressBar::new(bytes);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                        )
                        .expect("the template is valid")
                        .progress_chars("=> "),
                    );
                    bar.set_message(format!("0/{files} files"));
                    if let Ok(mut guard) = self.bar.lock() {
                        *guard = Some(bar);
                    }
                }
            }
            Event::Failed { subject, error } => {
                self.with_bar(|b| b.suspend(|| ()));
                let mut text = format!("error: {subject} failed\n  Caused by: {error}\n");
                let mut cause = error.source();
                while let Some(c) = cause {
                    text.push_str(&format!("  Caused by: {c}\n"));
                    cause = c.source();
                }
                eprint!("{text}");
            }
            Event::Bytes(n) => self.with_bar(|b| b.inc(n)),
            Event::FileDone => {
                let done = self.files_done.fetch_add(1, Ordering::Relaxed) + 1;
                let total = self.files_total.load(Ordering::Relaxed);
                self.with_bar(|b| b.set_message(format!("{done}/{total} files")));
            }
            Event::DownloadsFinished => {
                if let Ok(mut guard) = self.bar.lock()
                    && let Some(bar) = guard.take()
                {
                    bar.finish_and_clear();
                }
            }
            Event::Retry {
                url,
                attempt,
                reason,
            } => tracing::warn!("retrying {url} (attempt {attempt} failed: {reason})"),
        }
    }
}
