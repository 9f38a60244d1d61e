//! `depot test …` handlers: clap types → core options → one core call →
//! rendering. The checks, queue and results selection (`Settings`) and
//! recording against a version live in the library.

use anyhow::Result;
use depot::root::Root;
use depot::testreq::Submitted;
use depot::testreq::ops::{self, Wait, WorkOptions};
use depot::testreq::plan;
use depot::testreq::poll::{self, PollOptions, PollReport};
use depot::testreq::request::{Request, RequestError, RequestOptions};
use depot::testreq::worker::{Run, WorkerEvents};

use crate::cli::test::{PlanArgs, PollArgs, SubmitArgs, TestCommand, WorkerArgs};
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
    let test_git = a.test_git.and_then(|mut v| {
        let branch = (v.len() > 1).then(|| v.pop()).flatten();
        v.pop().map(|url| (url, branch))
    });
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
        kind: a.queue_kind,
        submit_time: settings.core.now,
    };
    let queue = settings.core.queue(root, a.queue.broker, a.queue.spool)?;
    let record = a
        .for_version
        .map(|at| (at, settings.core.results(root, a.results)));
    let submitted = depot::promote::dist::submit_for(root, opts, &queue, record).await?;
    for s in &submitted {
        tracing::debug!(queue = %s.queue, id = %s.id, "queued");
    }
    render_submitted(settings, &submitted);
    Ok(())
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
    let opts = PollOptions {
        package: a.package,
        release: a.release,
        archs: a.archs,
        triggers: a.triggers,
        ppas: a.ppas,
        private: a.private,
        results: settings.core.results(root, a.results),
        concurrency: usize::from(a.concurrency),
    };
    let wait = a.wait.then_some(Wait {
        timeout: a.timeout,
        interval: a.interval,
    });
    let report = ops::poll(&opts, wait).await?;
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
    let queue = settings.core.queue(root, a.queue.broker, a.queue.spool)?;
    let opts = WorkOptions {
        results: settings.core.results(root, a.results),
        command: a.command,
        once: a.once,
        interval: a.interval,
        release: a.release,
        archs: a.archs,
    };
    let summary = ops::work(&queue, opts, &LogEvents).await?;
    render(settings.format, &summary, || {
        if summary.runs.is_empty() && summary.rejected == 0 {
            return "no request queued\n".to_owned();
        }
        let mut text: String = summary
            .runs
            .iter()
            .map(|r| {
                format!(
                    "{} {}/{}: {} (exit {}) -> {}\n",
                    r.package,
                    r.release,
                    r.arch,
                    format!("{:?}", r.outcome).to_lowercase(),
                    r.exitcode,
                    r.path
                )
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
    let requests = p.requests(a.queue_kind, settings.core.now)?;
    let queue = settings.core.queue(root, a.queue.broker, a.queue.spool)?;
    let submitted = queue.submit(&requests).await?;
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
