//! One handler per subcommand: clap types → core options → core call →
//! rendering. No business logic here.

use anyhow::{Context as _, Result};
use depot::cli::{Command, Kind, MirrorCommand, ModeArg, PolicyArg, PublishArgs, SnapshotCommand};
use depot::content::RepoKind;
use depot::formats::compress::Compression;
use depot::mirror::{self, Mode, Policy};
use depot::root::Root;
use depot::snapshot;

use crate::output::{self, bytes, render, table};
use crate::progress::CliReporter;
use crate::settings::Settings;

pub async fn run(command: Command, settings: &Settings) -> Result<()> {
    let root = Root::open(&settings.root)?;
    match command {
        Command::Mirror(cmd) => mirror_cmd(cmd, &root, settings).await,
        Command::Snapshot(cmd) => snapshot_cmd(cmd, &root, settings),
        Command::Publish(args) => publish_cmd(args, &root, settings).await,
        Command::Test(cmd) => crate::test_cmd::run(cmd, &root, settings).await,
    }
}

fn policy(p: PolicyArg) -> Policy {
    match p {
        PolicyArg::Immediate => Policy::Immediate,
        PolicyArg::OnDemand => Policy::OnDemand,
    }
}

fn kind(k: Kind) -> RepoKind {
    match k {
        Kind::Apt => RepoKind::Apt,
        Kind::Rpm => RepoKind::Rpm,
    }
}

fn mode(m: ModeArg) -> Mode {
    match m {
        ModeArg::Mirror => Mode::Mirror,
        ModeArg::Additive => Mode::Additive,
    }
}

fn time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn mirror_text(m: &mirror::MirrorInfo) -> String {
    let d = &m.def;
    let list = |v: &[String]| {
        if v.is_empty() {
            "(all in Release)".to_owned()
        } else {
            v.join(" ")
        }
    };
    let verify = match (&d.keyring, d.no_verify) {
        (_, true) => "no (--no-verify)".to_owned(),
        (Some(k), false) => format!("keyring {}", k.display()),
        (None, false) => "?".to_owned(),
    };
    format!(
        "Name:          {}\nKind:          {}\nURL:           {}\nSuite:         {}\nComponents:    {}\nArchitectures: {}\nVerify:        {verify}\nPolicy:        {}\nMode:          {}\nSources:       {}\nUdebs:         {}\nCreated:       {}\nLast update:   {}\nPackages:      {}\n",
        d.name,
        d.kind,
        d.url,
        d.suite,
        list(&d.components),
        list(&d.architectures),
        match d.policy {
            Policy::Immediate => "immediate",
            Policy::OnDemand => "on-demand",
        },
        match d.mode {
            Mode::Mirror => "mirror",
            Mode::Additive => "additive",
        },
        if d.with_sources { "yes" } else { "no" },
        if d.with_udebs { "yes" } else { "no" },
        time(d.created),
        m.last_update.map_or("never".into(), time),
        m.packages.map_or("-".into(), |p| p.to_string()),
    )
}

async fn mirror_cmd(cmd: MirrorCommand, root: &Root, settings: &Settings) -> Result<()> {
    match cmd {
        MirrorCommand::Create(a) => {
            let def = mirror::create(
                root,
                mirror::CreateOptions {
                    name: a.name,
                    kind: kind(a.kind),
                    url: a.url,
                    suite: a.suite,
                    components: a.components,
                    architectures: a.architectures,
                    keyring: a.keyring,
                    no_verify: a.no_verify,
                    policy: policy(a.policy),
                    mode: mode(a.mode),
                    with_sources: a.with_sources,
                    with_udebs: a.with_udebs,
                    now: settings.now,
                },
            )?;
            render(settings.format, &def, || {
                format!("created mirror {} ({})\n", def.name, def.url)
            });
        }
        MirrorCommand::Update(a) => {
            let names = if a.all {
                mirror::list(root)?
                    .into_iter()
                    .map(|m| m.def.name)
                    .collect()
            } else {
                a.names
            };
            let concurrency = if a.concurrency == 8 {
                settings.config.concurrency.unwrap_or(8)
            } else {
                a.concurrency
            };
            let opts = mirror::UpdateOptions {
                concurrency: usize::from(concurrency),
                now: settings.now,
            };
            let reporter = CliReporter::new(settings.progress);
            let mut summaries = Vec::new();
            let mut failures: Vec<anyhow::Error> = Vec::new();
            // One failing mirror does not stop the others (a nightly cron
            // job should get as much as it can); the exit code still fails.
            for name in &names {
                match mirror::update(root, name, &opts, &reporter).await {
                    Ok(s) => {
                        if settings.format == depot::cli::OutputFormat::Text {
                            output::print(&if s.changed {
                                format!(
                                    "{}: {} indices, {} packages; downloaded {} files ({}), {} already pooled{}\n",
                                    s.mirror,
                                    s.indices,
                                    s.packages,
                                    s.downloaded_files,
                                    bytes(s.downloaded_bytes),
                                    s.already_pooled,
                                    if s.deferred > 0 {
                                        format!(", {} deferred (on-demand)", s.deferred)
                                    } else {
                                        String::new()
                                    }
                                )
                            } else {
                                format!("{}: up to date ({} packages)\n", s.mirror, s.packages)
                            });
                        }
                        summaries.push(s);
                    }
                    Err(e) => {
                        if names.len() > 1 {
                            crate::output::report_error(
                                &anyhow::Error::new(e).context(format!("updating mirror `{name}`")),
                            );
                            failures.push(anyhow::anyhow!("mirror `{name}` failed"));
                        } else {
                            return Err(e.into());
                        }
                    }
                }
            }
            if settings.format == depot::cli::OutputFormat::Json {
                output::json(&summaries);
            }
            if !failures.is_empty() {
                anyhow::bail!(
                    "{} of {} mirror updates failed",
                    failures.len(),
                    names.len()
                );
            }
        }
        MirrorCommand::List => {
            let mirrors = mirror::list(root)?;
            render(settings.format, &mirrors, || {
                let rows: Vec<Vec<String>> = mirrors
                    .iter()
                    .map(|m| {
                        vec![
                            m.def.name.clone(),
                            m.def.kind.to_string(),
                            m.def.url.clone(),
                            m.def.suite.clone(),
                            m.last_update.map_or("never".into(), time),
                            m.packages.map_or("-".into(), |p| p.to_string()),
                        ]
                    })
                    .collect();
                table(
                    &["NAME", "KIND", "URL", "SUITE", "UPDATED", "PACKAGES"],
                    &rows,
                )
            });
        }
        MirrorCommand::Show { name } => {
            let m = mirror::show(root, &name)?;
            render(settings.format, &m, || mirror_text(&m));
        }
        MirrorCommand::Edit(a) => {
            let changes = mirror::EditOptions {
                url: a.url,
                suite: a.suite,
                components: (!a.components.is_empty()).then_some(a.components),
                architectures: (!a.architectures.is_empty()).then_some(a.architectures),
                keyring: a.keyring,
                no_verify: a.no_verify.then_some(true),
                policy: a.policy.map(policy),
                mode: a.mode.map(mode),
                with_sources: a.with_sources,
                with_udebs: a.with_udebs,
            };
            let def = mirror::edit(root, &a.name, changes)?;
            let m = mirror::show(root, &def.name)?;
            render(settings.format, &m, || mirror_text(&m));
        }
        MirrorCommand::Drop { name } => {
            mirror::drop_mirror(root, &name)?;
            render(
                settings.format,
                &serde_json::json!({ "dropped": name }),
                || format!("dropped mirror {name}\n"),
            );
        }
    }
    Ok(())
}

fn rows_text(rows: &[snapshot::PackageRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| vec![r.name.clone(), r.version.clone(), r.arch.clone()])
        .collect()
}

fn snapshot_cmd(cmd: SnapshotCommand, root: &Root, settings: &Settings) -> Result<()> {
    match cmd {
        SnapshotCommand::Create { name, mirror } => {
            let s = snapshot::create(
                root,
                snapshot::CreateOptions {
                    name,
                    mirror,
                    now: settings.now,
                },
            )?;
            let summary = serde_json::json!({
                "name": s.name,
                "created": s.created,
                "packages": s.content.package_count(),
            });
            render(settings.format, &summary, || {
                format!(
                    "created snapshot {} ({} packages)\n",
                    s.name,
                    s.content.package_count()
                )
            });
        }
        SnapshotCommand::List { source } => {
            let list = snapshot::list(root, source.as_deref())?;
            render(settings.format, &list, || {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        let snapshot::Origin::Mirror { name, .. } = &s.origin;
                        vec![
                            s.name.clone(),
                            time(s.created),
                            format!("mirror {name}"),
                            s.packages.to_string(),
                        ]
                    })
                    .collect();
                table(&["NAME", "CREATED", "SOURCE", "PACKAGES"], &rows)
            });
        }
        SnapshotCommand::Show { name, packages } => {
            let d = snapshot::show(root, &name, packages)?;
            render(settings.format, &d, || {
                let s = &d.snapshot;
                let snapshot::Origin::Mirror {
                    name: m,
                    url,
                    updated,
                } = &s.origin;
                let suite = match &s.content {
                    depot::content::Content::Apt(a) => a.suite.clone(),
                    depot::content::Content::Rpm(_) => "-".to_owned(),
                };
                let mut text = format!(
                    "Name:          {}\nCreated:       {}\nKind:          {}\nSource:        mirror {m} ({url}, updated {})\nSuite:         {suite}\nComponents:    {}\nArchitectures: {}\nPackages:      {}\n",
                    s.name,
                    time(s.created),
                    s.kind,
                    time(*updated),
                    s.content.components().join(" "),
                    s.content.architectures().join(" "),
                    d.package_count,
                );
                if let Some(rows) = &d.packages {
                    text.push('\n');
                    text.push_str(&table(&["PACKAGE", "VERSION", "ARCH"], &rows_text(rows)));
                }
                text
            });
        }
        SnapshotCommand::Diff { a, b } => {
            let d = snapshot::diff(root, &a, &b)?;
            render(settings.format, &d, || {
                let mut text = String::new();
                for r in &d.added {
                    text.push_str(&format!("+ {} {} {}\n", r.name, r.version, r.arch));
                }
                for r in &d.removed {
                    text.push_str(&format!("- {} {} {}\n", r.name, r.version, r.arch));
                }
                for c in &d.changed {
                    text.push_str(&format!(
                        "~ {} {} -> {} {}\n",
                        c.name,
                        c.old.join(","),
                        c.new.join(","),
                        c.arch
                    ));
                }
                if text.is_empty() {
                    text.push_str("no differences\n");
                }
                text
            });
        }
        SnapshotCommand::Drop { name } => {
            snapshot::drop_snapshot(root, &name)?;
            render(
                settings.format,
                &serde_json::json!({ "dropped": name }),
                || format!("dropped snapshot {name}\n"),
            );
        }
    }
    Ok(())
}

async fn publish_cmd(a: PublishArgs, root: &Root, settings: &Settings) -> Result<()> {
    let compress_words = if a.compress.is_empty() {
        settings.config.compress.clone().unwrap_or_default()
    } else {
        a.compress
    };
    let compress = compress_words
        .iter()
        .map(|w| w.parse::<Compression>())
        .collect::<Result<Vec<_>, _>>()?;
    let sign_key = a.sign_key.or_else(|| {
        (!a.skip_signing)
            .then(|| settings.config.sign_key.clone())
            .flatten()
    });
    let signer = match &sign_key {
        Some(key) if !a.skip_signing => Some(
            depot::signing::GpgSigner::new(key)
                .with_context(|| format!("cannot use signing key `{key}`"))?,
        ),
        _ => None,
    };
    let opts = depot::promote::PublishOptions {
        snapshot: a.snapshot,
        dist: a.dist,
        suite: a.suite,
        compress,
        to: a.to,
        now: settings.now,
    };
    let reporter = CliReporter::new(settings.progress);
    let s = depot::promote::publish(
        root,
        &opts,
        signer.as_ref().map(|s| s as &dyn depot::signing::Signer),
        &reporter,
    )
    .await?;
    render(settings.format, &s, || {
        format!(
            "published {} as {}/{} ({} packages{}, {}); dev -> {}\n",
            opts.snapshot,
            s.dist,
            s.version,
            s.packages,
            s.suite
                .as_ref()
                .map(|s| format!(", suite {s}"))
                .unwrap_or_default(),
            if s.signed { "signed" } else { "unsigned" },
            s.version
        )
    });
    Ok(())
}
