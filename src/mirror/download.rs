//! Getting the package files an update needs into the pool: skip what is
//! pooled already (from any mirror), defer everything under the on-demand
//! policy, otherwise download with bounded concurrency. Every download is
//! attempted even after one fails, so a rerun has less left to do.

use futures_util::StreamExt;
use url::Url;

use super::{MirrorDef, MirrorError, Policy, UpdateOptions};
use crate::digest::Expected;
use crate::http::{FetchError, Fetcher};
use crate::pool::Pool;
use crate::report::{Event, Reporter};

/// A file the update needs in the pool.
pub struct Wanted {
    pub url: Url,
    pub expected: Expected,
}

pub struct Outcome {
    pub already_pooled: usize,
    pub downloaded_files: usize,
    pub downloaded_bytes: u64,
    pub deferred: usize,
}

pub async fn download_missing(
    def: &MirrorDef,
    fetcher: &Fetcher,
    pool: &Pool,
    wanted: Vec<Wanted>,
    opts: &UpdateOptions,
    reporter: &dyn Reporter,
) -> Result<Outcome, MirrorError> {
    let total = wanted.len();
    let lacking = pool.missing(wanted.iter().map(|w| &w.expected.sha256));
    let missing: Vec<Wanted> = wanted
        .into_iter()
        .zip(lacking)
        .filter_map(|(w, lacking)| lacking.then_some(w))
        .collect();
    let mut outcome = Outcome {
        already_pooled: total - missing.len(),
        downloaded_files: 0,
        downloaded_bytes: 0,
        deferred: 0,
    };
    if def.policy == Policy::OnDemand {
        outcome.deferred = missing.len();
        return Ok(outcome);
    }
    if missing.is_empty() {
        return Ok(outcome);
    }
    let bytes: u64 = missing.iter().map(|w| w.expected.size).sum();
    reporter.report(Event::DownloadsPlanned {
        subject: &def.name,
        files: missing.len() as u64,
        bytes,
    });
    let results: Vec<Result<(), FetchError>> = futures_util::stream::iter(missing.iter())
        .map(|w| async move {
            fetcher
                .download_to_pool(&w.url, &w.expected, pool, reporter)
                .await?;
            reporter.report(Event::FileDone);
            Ok(())
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    reporter.report(Event::DownloadsFinished);
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(first) = results.into_iter().find_map(Result::err) {
        return Err(MirrorError::Downloads {
            mirror: def.name.clone(),
            failed,
            total: missing.len(),
            first: Box::new(first),
        });
    }
    outcome.downloaded_files = missing.len();
    outcome.downloaded_bytes = bytes;
    Ok(outcome)
}
