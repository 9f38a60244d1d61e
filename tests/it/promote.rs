//! Stages and promotion: dev → release, rollback, audit, locking.

use std::process::Command;

use crate::support::TestContext;

/// Publishes snapshot `s` to distribution `d` as two versions, a day
/// apart: their names, oldest first.
fn publish_twice(ctx: &mut TestContext) -> Vec<String> {
    let mut versions = Vec::new();
    for t in ["2026-11-20T10:00:00Z", "2026-11-21T10:00:00Z"] {
        ctx.env.insert("DEPOT_NOW".into(), t.into());
        let s = ctx.publish("s", "d");
        versions.push(s["version"].as_str().unwrap().to_owned());
    }
    ctx.env.remove("DEPOT_NOW");
    versions
}

#[test]
fn promotion_moves_the_release_pointer_and_is_audited() {
    let mut ctx = TestContext::new();
    ctx.apt_snapshot("m", "s");
    let versions = publish_twice(&mut ctx);
    let (v1, v2) = (&versions[0], &versions[1]);
    let public = ctx.root.join("public/d");
    assert_eq!(
        std::fs::read_link(public.join("dev"))
            .unwrap()
            .to_str()
            .unwrap(),
        v2
    );
    assert!(!public.join("release").exists());

    // A dry run changes nothing.
    let dry = ctx
        .depot(&["promote", "d", v2, "--to", "release", "--dry-run"])
        .ok();
    assert!(dry.stdout.contains("would move"), "{}", dry.stdout);
    assert!(!public.join("release").exists());

    ctx.depot(&["promote", "d", v2, "--to", "release"]).ok();
    assert_eq!(
        std::fs::read_link(public.join("release"))
            .unwrap()
            .to_str()
            .unwrap(),
        v2
    );
    // Rollback to the previous version; a dry run tells what it withdraws.
    let dry = ctx
        .depot(&["promote", "d", v1, "--to", "release", "--dry-run"])
        .ok();
    assert!(
        dry.stdout.contains(&format!(
            "would be withdrawn from release (back to dev): {v2}"
        )),
        "{}",
        dry.stdout
    );
    let back = ctx
        .depot(&[
            "promote",
            "d",
            v1,
            "--to",
            "release",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(back["rollback"], true);
    assert_eq!(back["from"].as_str(), Some(v2.as_str()));
    assert_eq!(
        std::fs::read_link(public.join("release"))
            .unwrap()
            .to_str()
            .unwrap(),
        v1
    );
    ctx.depot(&["promote", "d", "20990101T000000Z", "--to", "release"])
        .fails(1, "has no version");

    let show = ctx
        .depot(&["dist", "show", "d", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["release"].as_str(), Some(v1.as_str()));
    assert_eq!(show["dev"].as_str(), Some(v2.as_str()));
    assert_eq!(show["versions"].as_array().unwrap().len(), 2);
    assert_eq!(show["versions"][0]["source"], "s");
    // The rollback withdrew v2 from release: it is back at dev.
    assert_eq!(back["withdrawn"], serde_json::json!([v2]));
    assert_eq!(show["versions"][0]["stage"], "release");
    assert_eq!(show["versions"][1]["stage"], "dev");
    assert!(show["versions"][1]["released"].is_null());
    assert!(show["versions"][1]["withdrawn"].is_string());
    let text = ctx.depot(&["dist", "show", "d"]).ok().stdout;
    assert!(text.contains("dev (withdrawn from release)"), "{text}");
    // Promoted again, it is released again; v1 was released before.
    ctx.depot(&["promote", "d", v2, "--to", "release"]).ok();
    let show = ctx
        .depot(&["dist", "show", "d", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["versions"][1]["stage"], "release");
    assert!(show["versions"][1]["withdrawn"].is_null());
    let text = ctx.depot(&["dist", "show", "d"]).ok().stdout;
    assert!(text.contains("(released before)"), "{text}");

    let audit: Vec<serde_json::Value> = std::fs::read_to_string(ctx.root.join("audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["version"].as_str().unwrap(),
                e["from"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("publish", v1.as_str(), "s"),
            ("publish", v2.as_str(), "s"),
            ("promote", v2.as_str(), "-"),
            ("rollback", v1.as_str(), v2.as_str()),
            ("withdraw", v2.as_str(), "release"),
            ("promote", v2.as_str(), v1.as_str()),
        ]
    );
    assert_eq!(audit[4]["to"], "dev");
    assert!(
        audit
            .iter()
            .all(|e| e["digest"].as_str().is_some_and(|d| d.len() == 64) && e["user"].is_string())
    );

    // While another process holds the distribution, promotion refuses with
    // exit 3 and the pointer stays whole.
    let lock = ctx.root.join("locks/dist-d.lock");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "5"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    ctx.depot(&["promote", "d", v1, "--to", "release"])
        .fails(3, "is busy");
    // The gate runs under the lock too (its decision and the switch see
    // one state): refused as busy, not for lack of tests.
    ctx.depot(&["promote", "d", v1, "--to", "release", "--require-tests"])
        .fails(3, "is busy");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(
        std::fs::read_link(public.join("release"))
            .unwrap()
            .to_str()
            .unwrap(),
        v2
    );
}

#[test]
fn concurrent_promotions_of_one_distribution_never_tear_the_pointer() {
    let mut ctx = TestContext::new();
    ctx.apt_snapshot("m", "s");
    let versions = publish_twice(&mut ctx);
    let release = ctx.root.join("public/d/release");
    let audited = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(ctx.root.join("audit.log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| matches!(e["action"].as_str(), Some("promote" | "rollback")))
            .collect()
    };
    let mut won = 0;
    for round in 0..4 {
        // Two real processes, started together, each moving `release` to
        // a different version.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let children: Vec<_> = order
            .iter()
            .map(|&i| {
                ctx.command()
                    .args(["promote", "d", &versions[i], "--to", "release"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut codes = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let code = out.status.code().unwrap_or(-1);
            assert!(
                code == 0 || (code == 3 && err.contains("is busy")),
                "exit {code}: {err}"
            );
            codes.push(code);
        }
        assert!(codes.contains(&0), "round {round}: {codes:?}");
        won += codes.iter().filter(|c| **c == 0).count();
        // A whole symlink to one of the two versions, which the last
        // audited promotion names.
        let target = std::fs::read_link(&release).unwrap();
        let target = target.to_str().unwrap();
        assert!(versions.iter().any(|v| v == target), "{target}");
        assert!(release.join("dists/stable/Release").is_file());
        let audit = audited();
        assert_eq!(audit.len(), won, "one audit line per successful promotion");
        assert_eq!(audit.last().unwrap()["version"], target);
    }
}

#[test]
fn require_tests_refuses_until_the_recorded_tests_pass() {
    let mut ctx = TestContext::new();
    ctx.apt_snapshot("m", "s");
    let versions = publish_twice(&mut ctx);
    let (v1, v2) = (versions[0].clone(), versions[1].clone());
    let release = ctx.root.join("public/d/release");

    ctx.depot(&["promote", "d", &v1, "--to", "release", "--require-tests"])
        .fails(3, "no tests are recorded");
    ctx.depot(&[
        "test",
        "submit",
        "alpha",
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--trigger",
        "alpha/1.0-1",
        "--for",
        "d/nope",
    ])
    .fails(1, "has no version");
    let for_v1 = format!("d/{v1}");
    ctx.depot(&[
        "test",
        "submit",
        "alpha",
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--trigger",
        "alpha/1.0-1",
        "--for",
        &for_v1,
    ])
    .ok();
    ctx.depot(&["promote", "d", &v1, "--to", "release", "--require-tests"])
        .fails(3, "pending");
    assert!(!release.exists());
    ctx.depot(&["test", "worker", "--once", "--", "true"]).ok();
    ctx.depot(&["promote", "d", &v1, "--to", "release", "--require-tests"])
        .ok();
    let show = ctx
        .depot(&["dist", "show", "d", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["tests"][&v1], "passed");
    assert_eq!(show["tests"][&v2], "none");
    assert_eq!(std::fs::read_link(&release).unwrap().to_str().unwrap(), v1);

    let for_v2 = format!("d/{v2}");
    // A neutral result (autopkgtest exit 8) lets the version through.
    ctx.depot(&[
        "test",
        "submit",
        "gamma",
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--trigger",
        "gamma/3.0-1",
        "--for",
        &for_v2,
    ])
    .ok();
    ctx.depot(&["test", "worker", "--once", "--", "sh", "-c", "exit 8"])
        .ok();
    let poll = ctx
        .depot(&[
            "test",
            "poll",
            "gamma",
            "--release",
            "noble",
            "--arch",
            "amd64",
            "--trigger",
            "gamma/3.0-1",
            "--output-format",
            "json",
        ])
        .ok();
    assert!(poll.stdout.contains("\"neutral\""), "{}", poll.stdout);
    ctx.depot(&["promote", "d", &v2, "--to", "release", "--require-tests"])
        .ok();
    assert_eq!(std::fs::read_link(&release).unwrap().to_str().unwrap(), v2);
    ctx.depot(&["promote", "d", &v1, "--to", "release"]).ok();

    ctx.depot(&[
        "test",
        "submit",
        "beta",
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--trigger",
        "beta/2.0-1",
        "--for",
        &for_v2,
    ])
    .ok();
    ctx.depot(&["test", "worker", "--once", "--", "sh", "-c", "exit 4"])
        .ok();
    let run = ctx
        .depot(&["promote", "d", &v2, "--to", "release", "--require-tests"])
        .fails(3, "tests not passed");
    assert!(
        run.stderr.contains("beta noble/amd64 [beta/2.0-1]: fail"),
        "{}",
        run.stderr
    );
    // The neutral one is not a problem.
    assert!(!run.stderr.contains("gamma"), "{}", run.stderr);
    assert_eq!(std::fs::read_link(&release).unwrap().to_str().unwrap(), v1);
    let show = ctx
        .depot(&["dist", "show", "d", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["tests"][&v2], "failed");
}

#[test]
fn guards_and_distribution_stages_are_configured() {
    let ctx = TestContext::new();
    let d = ctx.dir.path();
    // A throwaway CA made with openssl.
    let ca_key = d.join("ca.key");
    let ca = d.join("ca.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=depot test CA",
        ])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca_s = ca.display().to_string();
    ctx.depot(&[
        "guard",
        "create",
        "devs",
        "--x509-ca",
        &ca_s,
        "--subject",
        "^CN=ci-",
    ])
    .ok();
    ctx.depot(&[
        "guard",
        "create",
        "bad",
        "--x509-ca",
        &ca_s,
        "--subject",
        "(",
    ])
    .fails(2, "regex");
    ctx.depot(&[
        "guard",
        "create",
        "nocert",
        "--x509-ca",
        ctx.keyring("good.asc").as_str(),
    ])
    .fails(1, "no PEM certificate");
    let tokens = d.join("tokens");
    std::fs::write(&tokens, "customer-token-1\ncustomer-token-2\n").unwrap();
    ctx.depot(&[
        "guard",
        "create",
        "customers",
        "--token-file",
        tokens.to_str().unwrap(),
    ])
    .ok();
    ctx.depot(&[
        "guard",
        "create",
        "public",
        "--token-file",
        tokens.to_str().unwrap(),
    ])
    .fails(2, "no guard");
    let list = ctx
        .depot(&["guard", "list", "--output-format", "json"])
        .ok();
    assert!(!list.stdout.contains("customer-token"), "{}", list.stdout);
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["kind"], "token");
    assert_eq!(list[1]["kind"], "x509");
    assert_eq!(list[1]["subject"], "^CN=ci-");

    ctx.depot(&["dist", "create", "d", "--stage", "dev=nosuch"])
        .fails(2, "no guard named `nosuch`");
    ctx.depot(&["dist", "create", "d", "--stage", "nightly=devs"])
        .fails(2, "unknown stage");
    ctx.depot(&[
        "dist",
        "create",
        "d",
        "--stage",
        "dev=devs",
        "--stage",
        "release=customers",
        "--require-tests",
    ])
    .ok();
    let show = ctx
        .depot(&["dist", "show", "d", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(
        show["stages"],
        serde_json::json!({ "dev": "devs", "release": "customers" })
    );
    assert_eq!(show["require_tests"], true);

    // The distribution's own setting gates promotion without the flag, and
    // a publish keeps the configuration.
    ctx.apt_snapshot("m", "s");
    let v = ctx.publish("s", "d");
    let v = v["version"].as_str().unwrap();
    ctx.depot(&["promote", "d", v, "--to", "release"])
        .fails(3, "no tests are recorded");
    let show = ctx
        .depot(&["dist", "show", "d", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["stages"]["release"], "customers");
    ctx.depot(&["guard", "drop", "devs"]).ok();
    ctx.depot(&["guard", "show", "devs"])
        .fails(1, "no guard named `devs`");
}

/// Starts `depot serve` on a free loopback port with `extra` arguments
/// (stderr captured when `log`); returns the child and its base URL.
pub(crate) fn start_serve(
    ctx: &TestContext,
    extra: &[&str],
    log: bool,
) -> (std::process::Child, String) {
    let mut cmd = ctx.command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(if log {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
    TestContext::start_serve(cmd)
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/stdout", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let mut body = out.stdout;
    let split = body.iter().rposition(|b| *b == b'\n').unwrap();
    let code = String::from_utf8_lossy(&body[split + 1..]).into_owned();
    body.truncate(split);
    (code, body)
}

/// The whole response to a curl GET (`args` then `url`): status line,
/// headers lowercased except their values, and body, with the `date` header
/// left out so that two responses can be compared.
fn whole_response(args: &[&str], url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-i"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let mut out = format!("{}\r\n", lines.next().unwrap_or(""));
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let name = name.to_ascii_lowercase();
        if name != "date" {
            out += &format!("{name}:{value}\r\n");
        }
    }
    out + "\r\n" + body
}

#[test]
fn serve_enforces_token_guards_per_stage_and_apt_reads_through_it() {
    let mut ctx = TestContext::new();
    let d = ctx.dir.path();
    std::fs::write(d.join("dev-tokens"), "dev-token\n").unwrap();
    std::fs::write(d.join("customer-tokens"), "customer-token\n").unwrap();
    ctx.depot(&[
        "guard",
        "create",
        "devs",
        "--token-file",
        d.join("dev-tokens").to_str().unwrap(),
    ])
    .ok();
    ctx.depot(&[
        "guard",
        "create",
        "customers",
        "--token-file",
        d.join("customer-tokens").to_str().unwrap(),
    ])
    .ok();
    ctx.depot(&[
        "dist",
        "create",
        "d",
        "--stage",
        "dev=devs",
        "--stage",
        "release=customers",
    ])
    .ok();
    ctx.apt_snapshot("m", "s");
    let versions = publish_twice(&mut ctx);
    let (v1, v2) = (versions[0].clone(), versions[1].clone());

    let (mut server, base) = start_serve(&ctx, &[], true);
    let u = |p: &str| format!("{base}/d/{p}");
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let release_file = "dists/stable/Release";
    let get = |path: String, token: Option<&str>| -> String {
        match token {
            Some(t) => curl(&["-H", &bearer(t), &path]).0,
            None => curl(&[&path]).0,
        }
    };

    // Before promotion: dev readers read everything, customers nothing, and
    // a refusal does not reveal whether the path exists.
    assert_eq!(
        get(u(&format!("dev/{release_file}")), Some("dev-token")),
        "200"
    );
    assert_eq!(
        get(u(&format!("{v1}/{release_file}")), Some("dev-token")),
        "200"
    );
    assert_eq!(get(u(&format!("dev/{release_file}")), None), "401");
    assert_eq!(
        get(u(&format!("{v1}/{release_file}")), Some("customer-token")),
        "403"
    );
    assert_eq!(
        get(
            u(&format!("release/{release_file}")),
            Some("customer-token")
        ),
        "403"
    );
    assert_eq!(
        get(u(&format!("{v1}/no/such/file")), Some("customer-token")),
        "403"
    );
    assert_eq!(
        get(u(&format!("{v1}/{release_file}")), Some("wrong")),
        "403"
    );

    // Regression: an unknown distribution got 404 before authentication,
    // which told which distribution names exist. A refusal is now the same
    // response (status, headers, empty body) for a guarded file, a missing
    // file or version in a guarded distribution, and a distribution that
    // does not exist.
    let paths = [
        format!("/d/dev/{release_file}"),
        "/d/dev/no/such/file".to_owned(),
        format!("/d/20990101T000000Z/{release_file}"),
        format!("/nosuch/dev/{release_file}"),
        format!("/nosuch/release/{release_file}"),
        "/nosuch/".to_owned(),
    ];
    let wrong_bearer = bearer("wrong");
    let customer_bearer = bearer("customer-token");
    let credentials: [(&[&str], &str); 4] = [
        (&[], "401"),
        (&["-H", &wrong_bearer], "403"),
        (&["-u", "x:wrong"], "403"),
        // Admitted by some guard, but not by the dev stage's.
        (&["-H", &customer_bearer], "403"),
    ];
    for (auth, status) in credentials {
        let responses: Vec<String> = paths
            .iter()
            .map(|p| whole_response(auth, &format!("{base}{p}")))
            .collect();
        let first = &responses[0];
        assert!(
            first.starts_with(&format!("HTTP/1.1 {status} ")),
            "{auth:?}: {first}"
        );
        assert!(first.contains("content-length: 0\r\n"), "{first}");
        assert!(first.ends_with("\r\n\r\n"), "a body: {first:?}");
        assert_eq!(
            first.contains("www-authenticate: Basic"),
            status == "401",
            "{first}"
        );
        for (p, r) in paths.iter().zip(&responses) {
            assert_eq!(r, first, "{p} with {auth:?}");
        }
    }

    ctx.depot(&["promote", "d", &v1, "--to", "release"]).ok();
    assert_eq!(
        get(
            u(&format!("release/{release_file}")),
            Some("customer-token")
        ),
        "200"
    );
    assert_eq!(
        get(u(&format!("{v1}/{release_file}")), Some("customer-token")),
        "200"
    );
    assert_eq!(
        get(u(&format!("{v2}/{release_file}")), Some("customer-token")),
        "403"
    );
    assert_eq!(
        get(u(&format!("{v1}/{release_file}")), Some("dev-token")),
        "200"
    );
    assert_eq!(
        get(u(&format!("{v1}/no/such/file")), Some("customer-token")),
        "404"
    );
    // Nothing out of the tree: curl squashes the dots (`/etc/passwd`, an
    // unknown distribution, refused), and sent as they are they match no
    // file.
    assert_eq!(
        get(u(&format!("{v1}/../../etc/passwd")), Some("customer-token")),
        "403"
    );
    assert_eq!(
        curl(&[
            "--path-as-is",
            "-H",
            &bearer("customer-token"),
            &u(&format!("{v1}/../../etc/passwd"))
        ])
        .0,
        "404"
    );

    // A rollback withdraws the newer version from release readers: it was
    // rolled back because customers must not use it.
    ctx.depot(&["promote", "d", &v2, "--to", "release"]).ok();
    for v in [&v1, &v2] {
        assert_eq!(
            get(u(&format!("{v}/{release_file}")), Some("customer-token")),
            "200"
        );
    }
    let back = ctx
        .depot(&[
            "promote",
            "d",
            &v1,
            "--to",
            "release",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(back["withdrawn"], serde_json::json!([v2]));
    assert_eq!(
        get(u(&format!("{v2}/{release_file}")), Some("customer-token")),
        "403"
    );
    assert_eq!(
        get(u(&format!("{v2}/no/such/file")), Some("customer-token")),
        "403"
    );
    assert_eq!(
        get(u(&format!("{v1}/{release_file}")), Some("customer-token")),
        "200"
    );
    assert_eq!(
        get(u(&format!("{v2}/{release_file}")), Some("dev-token")),
        "200"
    );
    let show = ctx
        .depot(&["dist", "show", "d", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["versions"][0]["stage"], "release");
    assert_eq!(show["versions"][1]["stage"], "dev");
    // Basic auth with the token as password; ranges; HEAD.
    assert_eq!(
        curl(&[
            "-u",
            "x:customer-token",
            &u(&format!("release/{release_file}"))
        ])
        .0,
        "200"
    );
    let whole = std::fs::read(ctx.root.join("public/d").join(&v1).join(release_file)).unwrap();
    let (code, part) = curl(&[
        "-H",
        &bearer("customer-token"),
        "-r",
        "5-14",
        &u(&format!("release/{release_file}")),
    ]);
    assert_eq!((code.as_str(), part.as_slice()), ("206", &whole[5..15]));
    let head = Command::new("curl")
        .args([
            "-sI",
            "-H",
            &bearer("customer-token"),
            &u(&format!("release/{release_file}")),
        ])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", whole.len())),
        "{head}"
    );
    assert!(
        head.contains("last-modified:") && head.contains("accept-ranges: bytes"),
        "{head}"
    );

    // Real apt-get reads the release stage through depot serve with the
    // customer token (auth.conf), unsigned publish so [trusted=yes].
    let apt = crate::support::Apt::new(&format!("deb [trusted=yes] {} stable main", u("release")));
    let auth = apt.dir.path().join("etc/auth.conf");
    let host = base.trim_start_matches("http://");
    std::fs::write(
        &auth,
        format!("machine http://{host}\nlogin customer\npassword customer-token\n"),
    )
    .unwrap();
    let update = apt
        .run(&[
            "-o",
            &format!("Dir::Etc::netrc={}", auth.display()),
            "update",
        ])
        .ok();
    assert!(!update.stderr.contains("E:"), "{}", update.stderr);
    apt.run(&[
        "-o",
        &format!("Dir::Etc::netrc={}", auth.display()),
        "download",
        "alpha",
    ])
    .ok();
    assert!(apt.dir.path().join("dl/alpha_1.0-1_amd64.deb").is_file());

    server.kill().unwrap();
    let out = server.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("GET /d/release/dists/stable/Release 200"),
        "no access log:\n{log}"
    );
    // The Release says Acquire-By-Hash: apt fetched the index by its hash.
    assert!(
        log.lines().any(|l| l
            .contains("/d/release/dists/stable/main/binary-amd64/by-hash/SHA256/")
            && l.contains(" 200")),
        "no by-hash request:\n{log}"
    );
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a key + certificate signed by it with `subj` (and `ext`).
fn ca_and_leaf(dir: &std::path::Path, ca: &str, leaf: &str, subj: &str, ext: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    if !dir.join(format!("{ca}.pem")).exists() {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        let (k, c, s) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN={ca}"),
        );
        args.extend(["-days", "2", "-subj", &s, "-keyout", &k, "-out", &c]);
        openssl(dir, &args);
    }
    let mut args = vec!["req", "-new"];
    args.extend(ec);
    let (k, csr) = (format!("{leaf}.key"), format!("{leaf}.csr"));
    args.extend(["-subj", subj, "-keyout", &k, "-out", &csr]);
    if !ext.is_empty() {
        args.extend(["-addext", ext]);
    }
    openssl(dir, &args);
    let (c, cak, cac) = (
        format!("{leaf}.pem"),
        format!("{ca}.key"),
        format!("{ca}.pem"),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &cac,
            "-CAkey",
            &cak,
            "-CAcreateserial",
            "-days",
            "1",
            "-copy_extensions",
            "copy",
            "-out",
            &c,
        ],
    );
}

#[test]
fn serve_over_tls_admits_client_certificates_of_the_stage_guard() {
    let ctx = TestContext::new();
    let d = ctx.dir.path().join("pki");
    std::fs::create_dir_all(&d).unwrap();
    ca_and_leaf(
        &d,
        "ca",
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1",
    );
    // An extension makes them v3 certificates (webpki refuses v1).
    ca_and_leaf(
        &d,
        "ca",
        "dev",
        "/CN=ci-runner/O=Example",
        "extendedKeyUsage=clientAuth",
    );
    ca_and_leaf(
        &d,
        "ca",
        "laptop",
        "/CN=someones-laptop",
        "extendedKeyUsage=clientAuth",
    );
    ca_and_leaf(
        &d,
        "other-ca",
        "foreign",
        "/CN=intruder",
        "extendedKeyUsage=clientAuth",
    );
    // Same CA and subject as `dev`, but it expired yesterday.
    ca_and_leaf(
        &d,
        "ca",
        "expired",
        "/CN=ci-runner/O=Example",
        "extendedKeyUsage=clientAuth",
    );
    openssl(
        &d,
        &[
            "x509",
            "-req",
            "-in",
            "expired.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "-1",
            "-copy_extensions",
            "copy",
            "-out",
            "expired.pem",
        ],
    );
    let p = |f: &str| d.join(f).display().to_string();
    ctx.depot(&[
        "guard",
        "create",
        "devs",
        "--x509-ca",
        &p("ca.pem"),
        "--subject",
        "^CN=ci-.*,O=Example$",
    ])
    .ok();
    std::fs::write(d.join("tokens"), "customer-token\n").unwrap();
    ctx.depot(&["guard", "create", "customers", "--token-file", &p("tokens")])
        .ok();
    ctx.depot(&[
        "dist",
        "create",
        "d",
        "--stage",
        "dev=devs",
        "--stage",
        "release=customers",
    ])
    .ok();
    ctx.apt_snapshot("m", "s");
    ctx.depot(&["publish", "s", "--dist", "d", "--skip-signing"])
        .ok();

    let (mut server, base) = start_serve(
        &ctx,
        &[
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
        ],
        false,
    );
    assert!(base.starts_with("https://"), "{base}");
    let release = format!("{base}/d/dev/dists/stable/Release");
    let ca = p("ca.pem");
    assert_eq!(curl(&["--cacert", &ca, &release]).0, "401");
    assert_eq!(
        curl(&[
            "--cacert",
            &ca,
            "--cert",
            &p("dev.pem"),
            "--key",
            &p("dev.key"),
            &release
        ])
        .0,
        "200"
    );
    let with_cert = |name: &str| {
        let (cert, key) = (p(&format!("{name}.pem")), p(&format!("{name}.key")));
        curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &release]).0
    };
    // Same CA, but the subject does not match the guard's pattern.
    assert_eq!(with_cert("laptop"), "403");
    // Expired, or from another CA: the handshake does not even complete.
    assert_eq!(with_cert("expired"), "000");
    assert_eq!(
        curl(&[
            "--cacert",
            &ca,
            "--cert",
            &p("foreign.pem"),
            "--key",
            &p("foreign.key"),
            &release
        ])
        .0,
        "000"
    );
    // The token guard works over TLS as well, and a dev certificate is not a
    // customer credential.
    assert_eq!(
        curl(&[
            "--cacert",
            &ca,
            "-H",
            "Authorization: Bearer customer-token",
            &release
        ])
        .0,
        "403"
    );

    // Real apt-get with the dev client certificate.
    let apt = crate::support::Apt::new(&format!("deb [trusted=yes] {base}/d/dev stable main"));
    let opts = [
        format!("Acquire::https::CaInfo={ca}"),
        format!("Acquire::https::SslCert={}", p("dev.pem")),
        format!("Acquire::https::SslKey={}", p("dev.key")),
    ];
    let mut args: Vec<&str> = Vec::new();
    for o in &opts {
        args.extend(["-o", o.as_str()]);
    }
    args.push("update");
    let update = apt.run(&args).ok();
    assert!(!update.stderr.contains("E:"), "{}", update.stderr);

    // A guard's CA bundle replaced while serving takes effect at once
    // (verifiers are cached per bundle version): `dev` no longer chains.
    let bundle = ctx.root.join("guards/devs.ca.pem");
    let tmp = bundle.with_extension("tmp");
    std::fs::copy(d.join("other-ca.pem"), &tmp).unwrap();
    std::fs::rename(&tmp, &bundle).unwrap();
    assert_eq!(with_cert("dev"), "403");
    std::fs::copy(d.join("ca.pem"), &tmp).unwrap();
    std::fs::rename(&tmp, &bundle).unwrap();
    assert_eq!(with_cert("dev"), "200");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// An intermediate CA `int` signed by the existing CA `root` (both in
/// `dir`, as `NAME.pem` and `NAME.key`).
/// The PKI the x509 tests share, in `pki/`: a server certificate for
/// 127.0.0.1 (CA `srv-ca`) and a `dev` client certificate (CA `dev-ca`).
fn pki(ctx: &TestContext) -> std::path::PathBuf {
    let d = ctx.dir.path().join("pki");
    std::fs::create_dir_all(&d).unwrap();
    ca_and_leaf(
        &d,
        "srv-ca",
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1",
    );
    ca_and_leaf(&d, "dev-ca", "dev", "/CN=ci", "extendedKeyUsage=clientAuth");
    d
}

/// Guards `devs` (certificates of `dev-ca`) and `customers` (of
/// `release_ca`), and distribution `dist` with them as its dev and release
/// guards.
fn x509_stages(ctx: &TestContext, d: &std::path::Path, dist: &str, release_ca: &str) {
    let p = |f: &str| d.join(f).display().to_string();
    ctx.depot(&["guard", "create", "devs", "--x509-ca", &p("dev-ca.pem")])
        .ok();
    let release = p(&format!("{release_ca}.pem"));
    ctx.depot(&["guard", "create", "customers", "--x509-ca", &release])
        .ok();
    ctx.depot(&[
        "dist",
        "create",
        dist,
        "--stage",
        "dev=devs",
        "--stage",
        "release=customers",
    ])
    .ok();
}

fn intermediate_ca(dir: &std::path::Path, root: &str, int: &str) {
    let (k, csr, c, s) = (
        format!("{int}.key"),
        format!("{int}.csr"),
        format!("{int}.pem"),
        format!("/CN={int}"),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &s,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &k,
            "-out",
            &csr,
        ],
    );
    let (rc, rk) = (format!("{root}.pem"), format!("{root}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &rc,
            "-CAkey",
            &rk,
            "-CAcreateserial",
            "-days",
            "2",
            "-copy_extensions",
            "copy",
            "-out",
            &c,
        ],
    );
}

#[test]
fn serve_admits_a_release_certificate_only_once_the_version_is_promoted() {
    let ctx = TestContext::new();
    let d = pki(&ctx);
    // The release guard trusts only the root; `customer` is signed by the
    // root, `chained` by an intermediate CA under it.
    ca_and_leaf(
        &d,
        "rel-root",
        "customer",
        "/CN=customer",
        "extendedKeyUsage=clientAuth",
    );
    intermediate_ca(&d, "rel-root", "rel-int");
    ca_and_leaf(
        &d,
        "rel-int",
        "chained",
        "/CN=other-customer",
        "extendedKeyUsage=clientAuth",
    );
    let mut bundle = std::fs::read(d.join("chained.pem")).unwrap();
    bundle.extend(std::fs::read(d.join("rel-int.pem")).unwrap());
    std::fs::write(d.join("chained-full.pem"), bundle).unwrap();
    x509_stages(&ctx, &d, "d", "rel-root");
    let p = |f: &str| d.join(f).display().to_string();
    ctx.apt_snapshot("m", "s");
    let v = ctx.publish("s", "d");
    let v = v["version"].as_str().unwrap().to_owned();

    let (mut server, base) = start_serve(
        &ctx,
        &[
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
        ],
        false,
    );
    let ca = p("srv-ca.pem");
    let get = |cert: &str, key: &str, path: &str| {
        let (cert, key) = (p(cert), p(key));
        curl(&[
            "--cacert",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            &format!("{base}/d/{path}"),
        ])
        .0
    };
    let file = "dists/stable/Release";
    let (by_version, by_stage) = (format!("{v}/{file}"), format!("release/{file}"));
    let customers = [
        ("customer.pem", "customer.key"),
        // Leaf, then the intermediate: the chain reaches the guard's root.
        ("chained-full.pem", "chained.key"),
    ];

    // Before promotion the release certificates open nothing.
    for (cert, key) in customers {
        assert_eq!(get(cert, key, &by_version), "403", "{cert}");
        assert_eq!(get(cert, key, &by_stage), "403", "{cert}");
        assert_eq!(get(cert, key, &format!("dev/{file}")), "403", "{cert}");
    }
    assert_eq!(get("dev.pem", "dev.key", &by_version), "200");
    // A refused certificate learns nothing about what exists.
    let unknown = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &p("customer.pem"),
        "--key",
        &p("customer.key"),
        &format!("{base}/nosuch/release/{file}"),
    ]);
    assert_eq!((unknown.0.as_str(), unknown.1.len()), ("403", 0));
    // Real apt-get with the release certificate is refused too.
    let apt = crate::support::Apt::new(&format!("deb [trusted=yes] {base}/d/release stable main"));
    let opts = [
        format!("Acquire::https::CaInfo={ca}"),
        format!("Acquire::https::SslCert={}", p("customer.pem")),
        format!("Acquire::https::SslKey={}", p("customer.key")),
    ];
    let mut args: Vec<&str> = Vec::new();
    for o in &opts {
        args.extend(["-o", o.as_str()]);
    }
    let update = |args: &[&str]| {
        let mut args = args.to_vec();
        args.push("update");
        apt.run(&args)
    };
    let refused = update(&args);
    assert!(refused.stderr.contains("403"), "{}", refused.stderr);

    ctx.depot(&["promote", "d", &v, "--to", "release"]).ok();
    for (cert, key) in customers {
        assert_eq!(get(cert, key, &by_version), "200", "{cert}");
        assert_eq!(get(cert, key, &by_stage), "200", "{cert}");
        // The dev stage stays closed to them.
        assert_eq!(get(cert, key, &format!("dev/{file}")), "403", "{cert}");
    }
    // Without the intermediate the chain does not reach the root: the
    // handshake fails.
    assert_eq!(get("chained.pem", "chained.key", &by_stage), "000");
    let fetched = update(&args).ok();
    assert!(!fetched.stderr.contains("E:"), "{}", fetched.stderr);
    args.extend(["download", "alpha"]);
    apt.run(&args).ok();
    assert!(apt.dir.path().join("dl/alpha_1.0-1_amd64.deb").is_file());
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_second_depot_mirrors_the_release_stage_with_a_client_certificate() {
    let ctx = TestContext::new();
    let d = pki(&ctx);
    ca_and_leaf(
        &d,
        "rel-ca",
        "customer",
        "/CN=customer",
        "extendedKeyUsage=clientAuth",
    );
    x509_stages(&ctx, &d, "d", "rel-ca");
    let p = |f: &str| d.join(f).display().to_string();
    ctx.apt_snapshot("m", "s");
    let v = ctx.publish("s", "d");
    ctx.depot(&[
        "promote",
        "d",
        v["version"].as_str().unwrap(),
        "--to",
        "release",
    ])
    .ok();

    let (mut server, base) = start_serve(
        &ctx,
        &[
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
        ],
        false,
    );

    // The customer's depot: its own data root.
    let other = ctx.dir.path().join("customer-root");
    let at = |root: &std::path::Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_depot"))
            .arg("--root")
            .arg(root)
            .arg("--no-progress")
            .env("XDG_CONFIG_HOME", ctx.dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let customer = |args: &[&str]| at(&other, args);
    let tls = [
        "--client-cert",
        &p("customer.pem"),
        "--client-key",
        &p("customer.key"),
        "--ca-cert",
        &p("srv-ca.pem"),
    ];
    for (name, stage) in [("rel", "release"), ("dev", "dev")] {
        let upstream = format!("{base}/d/{stage}/");
        let mut args = vec![
            "mirror",
            "create",
            name,
            upstream.as_str(),
            "--kind",
            "apt",
            "--suite",
            "stable",
            "--no-verify",
        ];
        args.extend(tls);
        assert_eq!(customer(&args).0, 0);
    }
    let (code, err) = customer(&["mirror", "update", "rel"]);
    assert_eq!(code, 0, "{err}");
    let (code, _) = customer(&["snapshot", "create", "got", "--mirror", "rel"]);
    assert_eq!(code, 0);
    {
        // On demand (in a root whose pool has none of the files), they are
        // fetched when published: through the same client certificate.
        let fresh = ctx.dir.path().join("on-demand-root");
        let customer = |args: &[&str]| at(&fresh, args);
        let upstream = format!("{base}/d/release/");
        let mut args = vec![
            "mirror",
            "create",
            "od",
            upstream.as_str(),
            "--kind",
            "apt",
            "--suite",
            "stable",
            "--no-verify",
            "--policy",
            "on-demand",
        ];
        args.extend(tls);
        assert_eq!(customer(&args).0, 0);
        assert_eq!(customer(&["mirror", "update", "od"]).0, 0);
        assert_eq!(
            customer(&["snapshot", "create", "ods", "--mirror", "od"]).0,
            0
        );
        let (code, err) = customer(&["publish", "ods", "--dist", "mine", "--skip-signing"]);
        assert_eq!(code, 0, "{err}");
        let published = std::fs::read_dir(fresh.join("public/mine/dev/pool/main"))
            .unwrap()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
            .count();
        assert!(published > 0, "no package file published");
    }
    // The release certificate does not open the dev stage.
    let (code, err) = customer(&["mirror", "update", "dev"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("HTTP 403"), "{err}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn dnf_reads_an_rpm_stage_over_mtls_with_the_right_certificate_only() {
    let ctx = TestContext::new();
    let gpg = crate::support::Gpg::new();
    let d = pki(&ctx);
    ca_and_leaf(
        &d,
        "rel-ca",
        "customer",
        "/CN=customer",
        "extendedKeyUsage=clientAuth",
    );
    x509_stages(&ctx, &d, "el", "rel-ca");
    let p = |f: &str| d.join(f).display().to_string();
    ctx.rpm_snapshot("s");
    let key = crate::support::fixtures().join("rpm/keys/good.asc");
    ctx.publish_signed(&gpg, "s", "el", &[]);

    let (mut server, base) = start_serve(
        &ctx,
        &[
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
        ],
        false,
    );
    let dnf_with = |cert: &str, stage: &str| {
        let mut dnf =
            crate::support::Dnf::new(&format!("{base}/el/{stage}"), &[&gpg.public_key, &key]);
        dnf.repo_opts = vec![
            format!("sslcacert={}", p("srv-ca.pem")),
            format!("sslclientcert={}", p(&format!("{cert}.pem"))),
            format!("sslclientkey={}", p(&format!("{cert}.key"))),
        ];
        dnf
    };
    let dev = dnf_with("dev", "dev");
    dev.run(&["makecache"]).ok();
    dev.run(&["install", "alpha"]).ok();
    assert!(dev.installed("usr/share/doc/alpha/README"));
    // The customer certificate does not open the dev stage.
    let customer = dnf_with("customer", "dev");
    let run = customer.run(&["makecache"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    // Nor the release stage before the version is promoted; then it does.
    let customer = dnf_with("customer", "release");
    let run = customer.run(&["makecache"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    let version = std::fs::read_link(ctx.root.join("public/el/dev")).unwrap();
    let version = version.to_str().unwrap();
    ctx.depot(&["promote", "el", version, "--to", "release"])
        .ok();
    let customer = dnf_with("customer", "release");
    customer.run(&["makecache"]).ok();
    customer.run(&["install", "alpha"]).ok();
    assert!(customer.installed("usr/share/doc/alpha/README"));
    server.kill().unwrap();
    server.wait().unwrap();
}
