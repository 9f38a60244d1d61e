//! `depot test …` handlers: clap types → core options → one core call →
//! rendering. Defaults that live in the data root (the spool, the results
//! store) come from `Root`; nothing here reads or writes them itself.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use depot::cli::test::{
    PlanArgs, PollArgs, QueueArgs, QueueKindArg, SubmitArgs, TestCommand, WorkerArgs,
};
use depot::root::Root;
use depot::testreq::amqp::{AmqpQueue, BrokerUrl};
use depot::testreq::plan;
use depot::testreq::poll::{self, PollOptions, PollReport};
use depot::testreq::request::{QueueKind, Request, RequestError, RequestOptions};
use depot::testreq::results::Store;
use depot::testreq::spool::SpoolQueue;
use depot::testreq::worker::{self, QueueSelection, Run, WorkerEvents, WorkerOptions};
use depot::testreq::{Queue, Submitted};

use crate::output::{render, table};
use crate::settings::Settings;

pub async fn run(cmd: TestCommand, root: &Root, settings: &Settings) -> Result<()> {
    match cmd {
        TestCommand::Submit(a) => submit_cmd(*a, root, settings).await,
        TestCommand::Poll(a) => poll_cmd(*a, root, settings).await,
        TestCommand::Worker(a) => worker_cmd(*a, root, settings).await,
        TestCommand::Plan(a) => plan_cmd(*a, root, settings).await,
    }
}

fn queue_kind(k: QueueKindArg) -> QueueKind {
    match k {
        QueueKindArg::Default => QueueKind::Default,
        QueueKindArg::Huge => QueueKind::Huge,
        QueueKindArg::Ppa => QueueKind::Ppa,
        QueueKindArg::Upstream => QueueKind::Upstream,
    }
}

/// Where requests go: `--broker` (or `$DEPOT_BROKER`), else `--spool`, else
/// the data root's spool.
enum Target {
    Broker(BrokerUrl),
    Spool(PathBuf),
}

/// `--broker` / `$DEPOT_BROKER`, else `--spool`, else the settings file's
/// `broker`, else the data root's spool.
fn target(args: &QueueArgs, root: &Root, settings: &Settings) -> Result<Target> {
    Ok(match (&args.broker, &args.spool, &settings.config.broker) {
        (Some(url), _, _) => Target::Broker(BrokerUrl::parse(url)?),
        (None, Some(dir), _) => Target::Spool(dir.clone()),
        (None, None, Some(url)) => Target::Broker(BrokerUrl::parse(url)?),
        (None, None, None) => Target::Spool(root.spool_dir()),
    })
}

async fn submit_to(target: &Target, requests: &[Request]) -> Result<Vec<Submitted>> {
    Ok(match target {
        Target::Broker(url) => AmqpQueue::connect(url).await?.submit(requests).await?,
        Target::Spool(dir) => SpoolQueue::new(dir)
            .submit(requests)
            .await
            .with_context(|| format!("cannot queue requests in the spool {}", dir.display()))?,
    })
}

fn render_submitted(settings: &Settings, submitted: &[Submitted]) {
    render(settings.format, &submitted, || {
        submitted
            .iter()
            .map(|s| {
                let package = s.body.split('\n').next().unwrap_or_default();
                format!("queued {package} on {} (id {})\n", s.queue, s.id)
            })
            .collect()
    });
}

async fn submit_cmd(a: SubmitArgs, root: &Root, settings: &Settings) -> Result<()> {
    let test_git = match a.test_git {
        Some(mut v) if !v.is_empty() => {
            let url = v.remove(0);
            Some((url, v.pop()))
        }
        _ => None,
    };
    let for_version = match &a.for_version {
        Some(fv) => {
            let (dist, version) = fv
                .split_once('/')
                .ok_or_else(|| anyhow::anyhow!("--for expects DIST/VERSION, got `{fv}`"))?;
            Some((dist.to_owned(), version.to_owned()))
        }
        None => None,
    };
    let record = for_version
        .as_ref()
        .map(|(_, _)| depot::promote::dist::TestRecord {
            package: a.package.clone(),
            release: a.release.clone(),
            archs: a.archs.clone(),
            triggers: a.triggers.clone(),
            ppas: a.ppas.clone(),
            private: a.swiftuser.is_some(),
            results: results_url(a.results.clone(), root),
        });
    if let Some((dist, version)) = &for_version {
        // The version must exist before anything is queued.
        let info = depot::promote::dist::show(root, dist)?;
        if !info.versions.iter().any(|v| &v.record.version == version) {
            anyhow::bail!("distribution `{dist}` has no version `{version}`");
        }
    }
    let opts = RequestOptions {
        package: a.package,
        release: a.release,
        archs: a.archs,
        triggers: a.triggers,
        ppas: a.ppas,
        env: a.env,
        test_git,
        build_git: a.build_git,
        test_bzr: a.test_bzr,
        all_proposed: a.all_proposed,
        testname: a.testname,
        swiftuser: a.swiftuser,
        readable_by: a.readable_by,
        requester: a.requester,
        kind: queue_kind(a.queue_kind),
        submit_time: settings.now,
    };
    // Everything is validated before the broker is even contacted.
    let requests = opts.build()?;
    let target = target(&a.queue, root, settings)?;
    let submitted = submit_to(&target, &requests).await?;
    for s in &submitted {
        tracing::debug!(queue = %s.queue, id = %s.id, "queued");
    }
    if let (Some((dist, version)), Some(record)) = (for_version, record) {
        depot::promote::dist::record_test(root, &dist, &version, record)?;
    }
    render_submitted(settings, &submitted);
    Ok(())
}

fn results_url(given: Option<String>, root: &Root) -> String {
    given.unwrap_or_else(|| format!("file://{}", root.results_dir().display()))
}

fn report_text(report: &PollReport) -> String {
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            vec![
                r.package.clone(),
                format!("{}/{}", r.release, r.arch),
                r.trigger.clone().unwrap_or_else(|| "-".into()),
                r.status.to_string(),
                r.version.clone().unwrap_or_else(|| "-".into()),
                r.run_id.clone().unwrap_or_else(|| "-".into()),
                r.log_url.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "PACKAGE",
            "RELEASE/ARCH",
            "TRIGGER",
            "STATUS",
            "VERSION",
            "RUN",
            "LOG",
        ],
        &rows,
    )
}

async fn poll_cmd(a: PollArgs, root: &Root, settings: &Settings) -> Result<()> {
    // The same rules as for requests: these become URL and path parts.
    let invalid = |field, value: &str, why| RequestError::Invalid {
        field,
        value: value.to_owned(),
        why,
    };
    if !depot::testreq::request::is_name(&a.package) {
        return Err(invalid("package", &a.package, "not a source package name").into());
    }
    for w in std::iter::once(&a.release).chain(&a.archs) {
        if !depot::testreq::request::is_word(w) {
            return Err(
                invalid("release/arch", w, "use lowercase letters, digits and `._+`").into(),
            );
        }
    }
    for t in &a.triggers {
        if !depot::testreq::request::is_trigger(t) {
            return Err(invalid("trigger", t, "must be SRCPKG/VERSION").into());
        }
    }
    let opts = PollOptions {
        package: a.package,
        release: a.release,
        archs: a.archs,
        triggers: a.triggers,
        ppas: a.ppas,
        private: a.private,
        results: results_url(a.results, root),
        concurrency: usize::from(a.concurrency),
    };
    let report = if a.wait {
        poll::poll_wait(&opts, a.timeout, a.interval).await?
    } else {
        poll::poll(&opts).await?
    };
    for d in &report.damaged {
        tracing::warn!(
            "damaged result {} of {} on {}: {}; ignoring it",
            d.url,
            opts.package,
            d.arch,
            d.reason
        );
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        verdict: poll::Verdict,
        #[serde(flatten)]
        report: &'a PollReport,
    }
    render(
        settings.format,
        &Out {
            verdict: report.verdict(),
            report: &report,
        },
        || report_text(&report),
    );
    report.check(&opts.package)?;
    Ok(())
}

struct LogEvents;

impl WorkerEvents for LogEvents {
    fn rejected(&self, queue: &str, id: &str, error: &RequestError) {
        tracing::warn!("rejected request {id} from {queue} (not requeued): {error}");
    }
    fn started(&self, r: &Request, id: &str) {
        tracing::info!(
            "running {} on {}/{} for {} (request {id})",
            r.package,
            r.release,
            r.arch,
            if r.params.triggers.is_empty() {
                "no trigger".to_owned()
            } else {
                r.params.triggers.join(" ")
            }
        );
    }
    fn finished(&self, run: &Run) {
        tracing::info!(
            "{} on {}/{}: {:?} (exit {}) in {} s",
            run.package,
            run.release,
            run.arch,
            run.outcome,
            run.exitcode,
            run.duration
        );
    }
}

async fn worker_cmd(a: WorkerArgs, root: &Root, settings: &Settings) -> Result<()> {
    let results = results_url(a.results, root);
    let dir = match Store::open(&results)? {
        Store::File(dir) => dir,
        Store::Swift(_) => return Err(worker::WorkerError::ResultsUrl(results).into()),
    };
    let opts = WorkerOptions {
        results: dir,
        command: a.command,
        once: a.once,
        interval: a.interval,
    };
    let named = match (&a.release, a.archs.is_empty()) {
        (Some(r), false) => Some(worker::queues_for(r, &a.archs)),
        (None, true) => None,
        _ => bail!(RequestError::Combination(
            "give --release and --arch together (or neither, to take from every spooled queue)"
        )),
    };
    let summary = match target(&a.queue, root, settings)? {
        Target::Broker(url) => {
            let Some(queues) = named else {
                bail!(RequestError::Combination(
                    "a worker on a broker needs --release and --arch (AMQP cannot list queues)"
                ));
            };
            let mut q = AmqpQueue::connect(&url).await?;
            worker::run(&mut q, &QueueSelection::Named(queues), &opts, &LogEvents).await?
        }
        Target::Spool(dir) => {
            let mut q = SpoolQueue::new(&dir);
            let selection = match named {
                Some(n) => QueueSelection::Named(n),
                None => QueueSelection::AllSpooled(q.clone()),
            };
            worker::run(&mut q, &selection, &opts, &LogEvents).await?
        }
    };
    render(settings.format, &summary, || {
        if summary.runs.is_empty() && summary.rejected == 0 {
            return "no request queued\n".to_owned();
        }
        let mut text: String = summary
            .runs
            .iter()
            .map(|r| {
                format!(
                    "{} {}/{}: {:?} (exit {}) -> {}\n",
                    r.package,
                    r.release,
                    r.arch,
                    r.outcome,
                    r.exitcode,
                    r.path.display()
                )
                .to_lowercase()
            })
            .collect();
        if summary.rejected > 0 {
            text.push_str(&format!(
                "{} malformed requests rejected\n",
                summary.rejected
            ));
        }
        text
    });
    Ok(())
}

async fn plan_cmd(a: PlanArgs, root: &Root, settings: &Settings) -> Result<()> {
    let p = plan::plan(
        root,
        &plan::PlanOptions {
            from: a.from,
            to: a.to,
            release: a.release,
            archs: a.archs,
        },
    )?;
    if !a.submit {
        render(settings.format, &p, || plan_text(&p));
        return Ok(());
    }
    let requests = p.requests(queue_kind(a.queue_kind), settings.now)?;
    let target = target(&a.queue, root, settings)?;
    let submitted = submit_to(&target, &requests).await?;
    render_submitted(settings, &submitted);
    Ok(())
}

fn plan_text(p: &plan::Plan) -> String {
    if p.tests.is_empty() {
        return format!(
            "no tests to run: no binary package changed from {} to {}\n",
            p.from, p.to
        );
    }
    let rows: Vec<Vec<String>> = p
        .tests
        .iter()
        .map(|t| {
            vec![
                t.package.clone(),
                format!("{}/{}", p.release, t.arch),
                t.trigger.clone(),
            ]
        })
        .collect();
    table(&["PACKAGE", "RELEASE/ARCH", "TRIGGER"], &rows)
}
