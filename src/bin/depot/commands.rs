//! One handler per subcommand: clap types → core options → core call →
//! rendering. No business logic here, and no path into the data root (the
//! core's `Root` names them).
//!
//! It owns rendering (tables, text, JSON) and nothing else: whatever a
//! library call can decide is decided there, so no `if` or `match` on domain
//! values lives here.

use anyhow::Result;
use depot::mirror;
use depot::root::Root;
use depot::snapshot::{self, Store};

use crate::cli::{
    Command, DistCommand, GuardCommand, MirrorCommand, PublishArgs, ReleaseCommand, RepoCommand,
    SnapshotCommand,
};
use crate::output::{self, bytes, render, table};
use crate::progress::CliReporter;
use crate::settings::Settings;

pub async fn run(command: Command, settings: &Settings) -> Result<()> {
    let root = Root::open(&settings.core.root)?;
    match command {
        Command::Mirror(cmd) => mirror_cmd(cmd, &root, settings).await,
        Command::Snapshot(cmd) => snapshot_cmd(cmd, &root, settings),
        Command::Release(cmd) => release_cmd(cmd, &root, settings),
        Command::Repo(cmd) => repo_cmd(cmd, &root, settings),
        Command::Dist(cmd) => dist_cmd(cmd, &root, settings).await,
        Command::Guard(cmd) => guard_cmd(cmd, &root, settings),
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            sign_key,
            quiet_time,
            webhooks,
            idle_timeout,
            max_connections,
        } => {
            let builds = settings
                .core
                .build_service(sign_key, quiet_time, webhooks)?;
            let limits = depot::promote::serve::Limits {
                idle_timeout: idle_timeout
                    .unwrap_or(depot::promote::serve::Limits::DEFAULT_IDLE_TIMEOUT),
                max_connections: max_connections.map(|n| n as usize),
            };
            depot::promote::serve::serve(
                root,
                listen,
                tls_cert.zip(tls_key),
                Some(builds),
                limits,
                |url| {
                    output::print(&format!("listening on {url}\n"));
                },
            )
            .await?;
            Ok(())
        }
        Command::Build(cmd) => crate::build_cmd::run(cmd, &root, settings).await,
        Command::Promote {
            dist,
            version,
            to,
            dry_run,
            require_tests,
        } => promote_cmd(&root, settings, dist, version, to, dry_run, require_tests).await,
        Command::Publish(args) => publish_cmd(args, &root, settings).await,
        Command::Test(cmd) => crate::test_cmd::run(cmd, &root, settings).await,
        Command::Train(cmd) => crate::train_cmd::run(cmd, &root, settings).await,
        Command::Prune(args) => crate::retention_cmd::prune(&args, &root, settings),
        Command::Gc { dry_run } => crate::retention_cmd::gc(dry_run, &root, settings),
        Command::Check { full } => crate::retention_cmd::check(full, &root, settings),
        Command::Generate { .. } => unreachable!("handled before settings are resolved"),
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
    let verify = d.verification();
    format!(
        "Name:          {}\nKind:          {}\nURL:           {}\nSuite:         {}\nComponents:    {}\nArchitectures: {}\nVerify:        {verify}\nPolicy:        {}\nMode:          {}\nSources:       {}\nUdebs:         {}\nCreated:       {}\nLast update:   {}\nPackages:      {}\n",
        d.name,
        d.kind,
        d.url,
        d.suite,
        list(&d.components),
        list(&d.architectures),
        d.policy,
        d.mode,
        if d.with_sources { "yes" } else { "no" },
        if d.with_udebs { "yes" } else { "no" },
        time(d.created),
        m.last_update.map_or("never".into(), time),
        m.packages.map_or("-".into(), |p| p.to_string()),
    )
}

fn update_text(s: &mirror::UpdateSummary) -> String {
    if !s.changed {
        return format!("{}: up to date ({} packages)\n", s.mirror, s.packages);
    }
    let deferred = match s.deferred {
        0 => String::new(),
        n => format!(", {n} deferred (on-demand)"),
    };
    format!(
        "{}: {} indices, {} packages; downloaded {} files ({}), {} already pooled{deferred}\n",
        s.mirror,
        s.indices,
        s.packages,
        s.downloaded_files,
        bytes(s.downloaded_bytes),
        s.already_pooled,
    )
}

async fn mirror_cmd(cmd: MirrorCommand, root: &Root, settings: &Settings) -> Result<()> {
    match cmd {
        MirrorCommand::Create(a) => {
            let def = mirror::create(
                root,
                mirror::CreateOptions {
                    name: a.name,
                    kind: a.kind,
                    url: a.url,
                    suite: a.suite,
                    components: a.components,
                    architectures: a.architectures,
                    keyring: a.keyring,
                    no_verify: a.no_verify,
                    policy: a.policy,
                    mode: a.mode,
                    with_sources: a.with_sources,
                    with_udebs: a.with_udebs,
                    filter: a.filter,
                    filter_with_deps: a.with_deps,
                    client_tls: depot::http::ClientTls {
                        cert: a.client_cert,
                        key: a.client_key,
                        ca: a.ca_cert,
                    },
                    verify_packages: a.verify_packages,
                    now: settings.core.now,
                },
            )?;
            render(settings.format, &def, || {
                format!("created mirror {} ({})\n", def.name, def.url)
            });
        }
        MirrorCommand::Update(a) => {
            let selection = if a.all {
                mirror::Selection::All
            } else {
                mirror::Selection::Names(a.names)
            };
            let opts = mirror::UpdateOptions {
                concurrency: settings.core.concurrency(a.concurrency),
                now: settings.core.now,
            };
            let reporter = CliReporter::new(settings.progress);
            let (summaries, result) = mirror::update_many(root, &selection, &opts, &reporter).await;
            for s in &summaries {
                for u in &s.unsatisfied {
                    tracing::warn!(
                        "{}: {} {} ({}): nothing satisfies `{}`",
                        s.mirror,
                        u.package,
                        u.version,
                        u.arch,
                        u.dependency
                    );
                }
            }
            render(settings.format, &summaries, || {
                summaries.iter().map(update_text).collect()
            });
            result?;
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
                policy: a.policy,
                mode: a.mode,
                with_sources: a.with_sources,
                with_udebs: a.with_udebs,
                verify_packages: a.verify_packages,
                filter: a.filter.map(|f| (!f.is_empty()).then_some(f)),
                filter_with_deps: a.with_deps,
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
        SnapshotCommand::Create { name, mirror, repo } => {
            let source = match (mirror, repo) {
                (Some(m), _) => snapshot::SnapshotSource::Mirror(m),
                (None, Some(r)) => snapshot::SnapshotSource::Repo(r),
                (None, None) => anyhow::bail!("give --mirror M or --repo R"),
            };
            let s = snapshot::create(
                root,
                snapshot::CreateOptions {
                    name,
                    source,
                    now: settings.core.now,
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
            list_manifests(root, settings, Store::Snapshot, source.as_deref())?
        }
        SnapshotCommand::Show { name, packages } => {
            show_manifest(root, settings, Store::Snapshot, &name, packages)?
        }
        SnapshotCommand::Diff { a, b } => diff_cmd(root, settings, &a, &b)?,
        SnapshotCommand::Drop { name } => drop_manifest(root, settings, Store::Snapshot, &name)?,
        SnapshotCommand::Filter {
            src,
            dest,
            query,
            with_deps,
        } => {
            let s = snapshot::ops::filter(
                root,
                &snapshot::ops::FilterOptions {
                    from: src,
                    dest,
                    query,
                    with_deps,
                    now: settings.core.now,
                },
            )?;
            for u in &s.unsatisfied {
                tracing::warn!(
                    "{} {} ({}): nothing satisfies `{}`",
                    u.package,
                    u.version,
                    u.arch,
                    u.dependency
                );
            }
            render(settings.format, &s, || {
                format!(
                    "created snapshot {} ({} packages)\n",
                    s.snapshot, s.packages
                )
            });
        }
        SnapshotCommand::Search { name, query } => {
            let rows = snapshot::ops::search(root, &name, &query)?;
            render(settings.format, &rows, || {
                table(&["PACKAGE", "VERSION", "ARCH"], &rows_text(&rows))
            });
        }
        SnapshotCommand::Verify { name } => verify_manifest(root, settings, &name)?,
    }
    Ok(())
}

fn diff_cmd(root: &Root, settings: &Settings, a: &str, b: &str) -> Result<()> {
    let d = snapshot::diff(root, a, b)?;
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
    Ok(())
}

fn list_manifests(
    root: &Root,
    settings: &Settings,
    store: Store,
    source: Option<&str>,
) -> Result<()> {
    let list = snapshot::list_in(root, store, source)?;
    render(settings.format, &list, || {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    time(s.created),
                    s.origin.describe(),
                    s.packages.to_string(),
                ]
            })
            .collect();
        table(&["NAME", "CREATED", "SOURCE", "PACKAGES"], &rows)
    });
    Ok(())
}

fn show_manifest(
    root: &Root,
    settings: &Settings,
    store: Store,
    name: &str,
    packages: bool,
) -> Result<()> {
    let d = snapshot::show(root, store, name, packages)?;
    render(settings.format, &d, || {
        let s = &d.snapshot;
        let suite = s.content.suite().unwrap_or("-");
        let source = s.origin.detail();
        let mut text = format!(
            "Name:          {}\nCreated:       {}\nKind:          {}\nSource:        {source}\nSuite:         {suite}\nComponents:    {}\nArchitectures: {}\nPackages:      {}\n",
            s.name,
            time(s.created),
            s.kind,
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
    Ok(())
}

fn drop_manifest(root: &Root, settings: &Settings, store: Store, name: &str) -> Result<()> {
    depot::retention::drop_manifest(root, store, name)?;
    render(
        settings.format,
        &serde_json::json!({ "dropped": name }),
        || format!("dropped {} {name}\n", store.label()),
    );
    Ok(())
}

fn verify_manifest(root: &Root, settings: &Settings, name: &str) -> Result<()> {
    let missing = snapshot::ops::verify(root, name)?;
    render(settings.format, &missing, || {
        let mut text = String::new();
        for u in &missing {
            text.push_str(&format!(
                "{} {} ({}): nothing satisfies `{}`\n",
                u.package, u.version, u.arch, u.dependency
            ));
        }
        if missing.is_empty() {
            text.push_str("all dependencies are satisfied\n");
        }
        text
    });
    snapshot::ops::require_satisfied(name, &missing)?;
    Ok(())
}

fn repo_cmd(cmd: RepoCommand, root: &Root, settings: &Settings) -> Result<()> {
    use depot::repo;
    match cmd {
        RepoCommand::Create {
            name,
            kind: k,
            component,
            architectures,
        } => {
            let def = repo::create(
                root,
                &name,
                k,
                Some(component),
                architectures,
                settings.core.now,
            )?;
            render(settings.format, &def, || {
                format!("created repo {}\n", def.name)
            });
        }
        RepoCommand::Add {
            name,
            files,
            replace,
        } => {
            let s = repo::add(root, &name, &files, replace)?;
            render(settings.format, &s, || {
                let mut text = String::new();
                for (what, list) in [
                    ("added", &s.added),
                    ("replaced", &s.replaced),
                    ("unchanged", &s.unchanged),
                ] {
                    for p in list {
                        text.push_str(&format!("{what} {p}\n"));
                    }
                }
                text
            });
        }
        RepoCommand::Remove { name, query } => {
            let removed = repo::remove(root, &name, &query)?;
            render(settings.format, &removed, || {
                removed.iter().map(|p| format!("removed {p}\n")).collect()
            });
        }
        RepoCommand::List => {
            let repos = repo::list(root)?;
            let json: Vec<serde_json::Value> = repos
                .iter()
                .map(|(d, n)| serde_json::json!({ "name": d.name, "kind": d.kind, "component": d.component, "packages": n }))
                .collect();
            render(settings.format, &json, || {
                let rows: Vec<Vec<String>> = repos
                    .iter()
                    .map(|(d, n)| {
                        vec![
                            d.name.clone(),
                            d.kind.to_string(),
                            d.component.clone(),
                            n.to_string(),
                        ]
                    })
                    .collect();
                table(&["NAME", "KIND", "COMPONENT", "PACKAGES"], &rows)
            });
        }
        RepoCommand::Show { name } => {
            let (def, state) = repo::load(root, &name)?;
            let json = serde_json::json!({ "repo": def, "packages": state.packages });
            render(settings.format, &json, || {
                let rows: Vec<Vec<String>> = state
                    .packages
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.version.clone(),
                            p.arch.clone(),
                            p.sha256.to_string(),
                        ]
                    })
                    .collect();
                format!(
                    "Name:       {}\nKind:       {}\nComponent:  {}\nPackages:   {}\n\n{}",
                    def.name,
                    def.kind,
                    def.component,
                    state.packages.len(),
                    table(&["PACKAGE", "VERSION", "ARCH", "SHA256"], &rows)
                )
            });
        }
        RepoCommand::Drop { name } => {
            repo::drop_repo(root, &name)?;
            render(
                settings.format,
                &serde_json::json!({ "dropped": name }),
                || format!("dropped repo {name}\n"),
            );
        }
    }
    Ok(())
}

fn guard_cmd(cmd: GuardCommand, root: &Root, settings: &Settings) -> Result<()> {
    use depot::promote::guard::{self, GuardSpec};
    match cmd {
        GuardCommand::Create {
            name,
            x509_ca,
            subject,
            token_file,
            scope,
        } => {
            let spec = match (x509_ca, token_file) {
                (Some(ca), _) => GuardSpec::X509 { ca, subject },
                (None, Some(file)) => GuardSpec::Token {
                    file,
                    scope: scope.unwrap_or_default(),
                },
                (None, None) => anyhow::bail!("give --x509-ca FILE or --token-file FILE"),
            };
            let g = guard::create(root, &name, spec, settings.core.now)?;
            render(settings.format, &g, || {
                format!("created guard {}: {}\n", g.name, g.describe())
            });
        }
        GuardCommand::List => {
            let guards = guard::list(root)?;
            render(settings.format, &guards, || {
                let rows: Vec<Vec<String>> = guards
                    .iter()
                    .map(|g| vec![g.name.clone(), g.describe(), time(g.created)])
                    .collect();
                table(&["GUARD", "KIND", "CREATED"], &rows)
            });
        }
        GuardCommand::Show { name } => {
            let g = guard::load(root, &name)?;
            render(settings.format, &g, || {
                format!(
                    "Guard:   {}\nKind:    {}\nCreated: {}\n",
                    g.name,
                    g.describe(),
                    time(g.created)
                )
            });
        }
        GuardCommand::Drop { name } => {
            guard::drop_guard(root, &name)?;
            render(
                settings.format,
                &serde_json::json!({ "dropped": name }),
                || format!("dropped guard {name}\n"),
            );
        }
    }
    Ok(())
}

async fn dist_cmd(cmd: DistCommand, root: &Root, settings: &Settings) -> Result<()> {
    use depot::promote::dist;
    match cmd {
        DistCommand::Create {
            dist: name,
            stages,
            require_tests,
            to,
        } => {
            let d = dist::create(
                root,
                &dist::CreateOptions {
                    dist: name,
                    stages,
                    require_tests,
                    publish_root: to,
                },
            )?;
            render(settings.format, &d, || {
                let stages: Vec<String> =
                    d.stages.iter().map(|(s, g)| format!("{s}={g}")).collect();
                format!(
                    "distribution {}: stages {}{}\n",
                    d.name,
                    stages.join(" "),
                    if d.require_tests {
                        ", tests required for release"
                    } else {
                        ""
                    }
                )
            });
        }
        DistCommand::Push(a) => {
            let reporter = CliReporter::new(settings.progress);
            let s = depot::promote::push::push(
                root,
                &depot::promote::push::PushOptions {
                    dist: a.dist,
                    stages: a.stages,
                    to: a.to,
                    endpoint: a.endpoint,
                    path_style: a.path_style,
                    delete_after: a.delete_after,
                    concurrency: usize::from(a.concurrency),
                    verify: a.verify,
                    dry_run: a.dry_run,
                    aws: settings.core.aws_env(),
                    now: settings.core.now,
                },
                &reporter,
            )
            .await?;
            render(settings.format, &s, || {
                let rows: Vec<Vec<String>> = s
                    .stages
                    .iter()
                    .map(|p| {
                        vec![
                            p.stage.clone(),
                            p.version.clone(),
                            p.objects.to_string(),
                            if p.listed { "yes" } else { "no" }.to_owned(),
                            format!("{} ({})", p.uploaded, bytes(p.uploaded_bytes)),
                            p.present.to_string(),
                            p.deleted.to_string(),
                            p.stale_kept.to_string(),
                            format!("{:.1}s", p.seconds),
                        ]
                    })
                    .collect();
                format!(
                    "{}{}\n{}",
                    if s.dry_run {
                        "dry run, nothing changed: "
                    } else {
                        ""
                    },
                    s.target,
                    table(
                        &[
                            "STAGE", "VERSION", "OBJECTS", "LISTED", "UPLOADED", "PRESENT",
                            "DELETED", "STALE", "TIME"
                        ],
                        &rows
                    )
                )
            });
        }
        DistCommand::Drop { dist: d, version } => {
            let dropped = dist::drop_version(root, &d, &version, settings.core.now)?;
            render(settings.format, &dropped, || {
                format!(
                    "dropped {}/{} (published from {})\n",
                    dropped.dist, dropped.version, dropped.source
                )
            });
        }
        DistCommand::List => {
            let dists = dist::list(root)?;
            render(settings.format, &dists, || {
                let rows: Vec<Vec<String>> = dists
                    .iter()
                    .map(|d| {
                        vec![
                            d.name.clone(),
                            d.versions.len().to_string(),
                            d.dev.clone().unwrap_or_else(|| "-".into()),
                            d.release.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                table(&["DIST", "VERSIONS", "DEV", "RELEASE"], &rows)
            });
        }
        DistCommand::Show { dist: name } => {
            let d = dist::show_with_tests(root, &name).await?;
            render(settings.format, &d, || {
                let rows: Vec<Vec<String>> = d
                    .versions
                    .iter()
                    .map(|v| {
                        let v = &v.record;
                        let stages = d.stage_labels(v);
                        vec![
                            v.version.clone(),
                            time(v.published),
                            v.source.clone(),
                            if stages.is_empty() {
                                "-".into()
                            } else {
                                stages.join(" ")
                            },
                            d.tests
                                .get(&v.version)
                                .copied()
                                .unwrap_or(dist::TestState::None)
                                .to_string(),
                        ]
                    })
                    .collect();
                let stages: Vec<String> =
                    d.stages.iter().map(|(s, g)| format!("{s}={g}")).collect();
                format!(
                    "Distribution: {}\nPublished in: {}\nStages:       {}{}\n\n{}",
                    d.name,
                    depot::root::PublishRoot::new(&d.publish_root)
                        .dist_dir(&d.name)
                        .display(),
                    stages.join(" "),
                    if d.require_tests {
                        " (tests required for release)"
                    } else {
                        ""
                    },
                    table(&["VERSION", "PUBLISHED", "SOURCE", "STAGE", "TESTS"], &rows)
                )
            });
        }
    }
    Ok(())
}

async fn promote_cmd(
    root: &Root,
    settings: &Settings,
    dist: String,
    version: String,
    to: depot::promote::dist::Stage,
    dry_run: bool,
    require_tests: bool,
) -> Result<()> {
    use depot::promote::dist;
    let s = dist::promote(
        root,
        &dist::PromoteOptions {
            dist,
            version,
            to,
            dry_run,
            require_tests,
            now: settings.core.now,
        },
    )
    .await?;
    render(settings.format, &s, || {
        let mut text = format!(
            "{}{} {}: {} -> {}{}\n",
            if s.dry_run { "would move " } else { "" },
            s.dist,
            s.stage.name(),
            s.from.as_deref().unwrap_or("(none)"),
            s.to,
            if s.rollback { " (rollback)" } else { "" }
        );
        if !s.withdrawn.is_empty() {
            text += &format!(
                "{}withdrawn from release (back to dev): {}\n",
                if s.dry_run { "would be " } else { "" },
                s.withdrawn.join(" ")
            );
        }
        text
    });
    Ok(())
}

fn release_cmd(cmd: ReleaseCommand, root: &Root, settings: &Settings) -> Result<()> {
    match cmd {
        ReleaseCommand::Create {
            name,
            from,
            policy,
            components,
        } => {
            let r = snapshot::ops::create_release(
                root,
                &snapshot::ops::ReleaseOptions {
                    name,
                    from,
                    components,
                    policy,
                    now: settings.core.now,
                },
            )?;
            let summary = serde_json::json!({
                "name": r.name,
                "created": r.created,
                "packages": r.content.package_count(),
                "origin": r.origin,
            });
            render(settings.format, &summary, || {
                format!(
                    "created release {} ({} packages, {})\n",
                    r.name,
                    r.content.package_count(),
                    r.origin.describe()
                )
            });
        }
        ReleaseCommand::List => list_manifests(root, settings, Store::Release, None)?,
        ReleaseCommand::Show { name, packages } => {
            show_manifest(root, settings, Store::Release, &name, packages)?
        }
        ReleaseCommand::Diff { a, b } => diff_cmd(root, settings, &a, &b)?,
        ReleaseCommand::Drop { name } => drop_manifest(root, settings, Store::Release, &name)?,
        ReleaseCommand::Verify { name } => verify_manifest(root, settings, &name)?,
    }
    Ok(())
}

async fn publish_cmd(a: PublishArgs, root: &Root, settings: &Settings) -> Result<()> {
    let signer = settings.core.signer(a.sign_key, a.skip_signing)?;
    let opts = depot::promote::PublishOptions {
        snapshot: a.snapshot,
        dist: a.dist,
        suite: a.suite,
        compress: settings.core.compress(a.compress)?,
        to: a.to,
        version: a.as_version,
        adopt: false,
        now: settings.core.now,
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
