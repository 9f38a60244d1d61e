//! `depot dist push`: stages pushed to a real S3 server (SeaweedFS, which
//! checks SigV4, started by `.ci/run` through `scripts/s3-server.sh`), read
//! back by real apt-get and dnf over plain HTTP (anonymous read).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::release::{build_deb, repo_with};
use crate::support::{Apt, Dnf, Gpg, TestContext, fixtures};

/// The S3 endpoint of `scripts/s3-server.sh` (or `$DEPOT_TEST_S3_ENDPOINT`).
pub(crate) fn s3_endpoint() -> String {
    std::env::var("DEPOT_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:18333".into())
}

/// The test bucket, readable anonymously.
pub(crate) fn s3_bucket() -> String {
    std::env::var("DEPOT_TEST_S3_BUCKET").unwrap_or_else(|_| "depot-test".into())
}

/// A prefix no other test (or earlier run) uses.
pub(crate) fn unique_prefix(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// The admin identity of the test server: access key and secret.
fn s3_keys() -> (String, String) {
    (
        std::env::var("DEPOT_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "depot-test".into()),
        std::env::var("DEPOT_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "depot-test-secret".into()),
    )
}

/// Gives `ctx` the admin identity of the test server.
pub(crate) fn with_s3_keys(ctx: &mut TestContext) {
    let (key, secret) = s3_keys();
    ctx.env.insert("AWS_ACCESS_KEY_ID".into(), key);
    ctx.env.insert("AWS_SECRET_ACCESS_KEY".into(), secret);
    ctx.env.insert("AWS_REGION".into(), "us-east-1".into());
    // A developer's own ~/.aws must not change what the tests do.
    ctx.env
        .insert("HOME".into(), ctx.dir.path().display().to_string());
}

/// Plain, anonymous HTTP GET of `KEY` in the test bucket: status and body.
fn get(key: &str) -> (u16, Vec<u8>) {
    let url = format!("{}/{}/{key}", s3_endpoint(), s3_bucket());
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", &url])
        .output()
        .unwrap();
    let mut body = out.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap();
    let code = String::from_utf8_lossy(&body[split + 1..]).parse().unwrap();
    body.truncate(split);
    (code, body)
}

/// The response headers of an anonymous HEAD, lowercased names.
fn head(key: &str) -> String {
    let url = format!("{}/{}/{key}", s3_endpoint(), s3_bucket());
    let out = std::process::Command::new("curl")
        .args(["-s", "-I", &url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

/// A request signed with the test server's admin keys (what someone
/// other than depot does to the bucket): the HTTP status.
fn signed(method: &str, key: &str, body: Option<&Path>) -> u16 {
    let url = format!("{}/{}/{key}", s3_endpoint(), s3_bucket());
    let (key_id, secret) = s3_keys();
    let user = format!("{key_id}:{secret}");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    if let Some(body) = body {
        cmd.arg("--data-binary").arg(format!("@{}", body.display()));
    }
    let out = cmd.arg(&url).output().unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

fn push(
    ctx: &TestContext,
    dist: &str,
    prefix: &str,
    extra: &[&str],
    now: Option<&str>,
) -> crate::support::Run {
    let to = format!("s3://{}/{prefix}", s3_bucket());
    let endpoint = s3_endpoint();
    let mut args = vec![
        "dist",
        "push",
        dist,
        "--to",
        &to,
        "--endpoint",
        &endpoint,
        "--output-format",
        "json",
    ];
    args.extend(extra);
    let mut cmd = ctx.command();
    if let Some(now) = now {
        cmd.env("DEPOT_NOW", now);
    }
    crate::support::Run::from_output(cmd.args(&args).output().unwrap())
}

/// Every file of a published version: relative path → bytes.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    crate::support::VersionTree::read(dir).contents()
}

fn publish_signed(
    ctx: &TestContext,
    gpg: &Gpg,
    source: &str,
    dist: &str,
    suite: Option<&str>,
) -> String {
    let suite: Vec<&str> = suite.map(|s| vec!["--suite", s]).unwrap_or_default();
    ctx.publish_signed(gpg, source, dist, &suite)["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn an_apt_stage_pushed_to_s3_is_read_by_apt_get_with_plus_in_paths() {
    let mut ctx = TestContext::new();
    with_s3_keys(&mut ctx);
    let gpg = Gpg::new();
    let debs = vec![
        build_deb(ctx.dir.path(), "plus++", "1.0+b1", "amd64", ""),
        build_deb(ctx.dir.path(), "hello", "1.0-1", "amd64", ""),
    ];
    repo_with(&ctx, "ci", &debs);
    let version = publish_signed(&ctx, &gpg, "ci", "d", Some("stable"));
    let prefix = unique_prefix("apt");
    let s = push(&ctx, "d", &prefix, &["--stage", "dev"], None)
        .ok()
        .json();
    let stage = &s["stages"][0];
    assert_eq!(stage["stage"], "dev");
    assert_eq!(stage["version"], version.as_str());
    let published = files(&ctx.root.join("public/d").join(&version));
    assert_eq!(stage["objects"], published.len());
    assert_eq!(stage["uploaded"], published.len());
    // The bucket holds the version byte for byte (and the manifest).
    for (rel, bytes) in &published {
        let (code, body) = get(&format!("{prefix}/d/dev/{rel}"));
        assert_eq!(code, 200, "{rel}");
        assert!(body == *bytes, "{rel} differs");
    }
    let headers = head(&format!("{prefix}/d/dev/dists/stable/InRelease"));
    assert!(
        headers.contains("cache-control: public, max-age=60"),
        "{headers}"
    );
    let deb_rel = published
        .keys()
        .find(|k| k.contains("plus++"))
        .unwrap()
        .clone();
    let headers = head(&format!("{prefix}/d/dev/{}", deb_rel.replace('+', "%2B")));
    assert!(headers.contains("immutable"), "{headers}");
    assert!(
        headers.contains("content-type: application/vnd.debian.binary-package"),
        "{headers}"
    );
    assert!(headers.contains("x-amz-meta-sha256:"), "{headers}");
    // The index is a copy, inside the server, of its by-hash name sent a
    // class earlier, with headers of its own.
    let index = "dists/stable/main/binary-amd64/Packages";
    let by_hash = published
        .keys()
        .find(|k| k.contains("binary-amd64/by-hash/SHA256/") && published[*k] == published[index])
        .expect("the index has a by-hash name");
    let headers = head(&format!("{prefix}/d/dev/{index}"));
    assert!(headers.contains("content-type: text/plain"), "{headers}");
    assert!(headers.contains("max-age=60"), "{headers}");
    let sha = by_hash.rsplit('/').next().unwrap();
    assert!(
        headers.contains(&format!("x-amz-meta-sha256: {sha}")),
        "{headers}"
    );
    assert!(
        head(&format!("{prefix}/d/dev/{by_hash}")).contains("immutable"),
        "the by-hash name keeps its own headers"
    );

    let apt = Apt::new(&format!(
        "deb [signed-by={}] {}/{}/{prefix}/d/dev stable main",
        gpg.public_key.display(),
        s3_endpoint(),
        s3_bucket()
    ));
    let update = apt.run(&["update"]).ok();
    assert!(!update.stderr.contains("W:"), "{}", update.stderr);
    apt.run(&["download", "plus++", "hello"]).ok();
    for deb in &debs {
        let got = apt.dir.path().join("dl").join(
            deb.file_name()
                .unwrap()
                .to_string_lossy()
                .replace(':', "%3a"),
        );
        assert!(
            std::fs::read(&got).unwrap() == std::fs::read(deb).unwrap(),
            "{} differs from what was built",
            got.display()
        );
    }
}

#[test]
fn an_rpm_stage_pushed_to_s3_is_installed_by_dnf() {
    let mut ctx = TestContext::new();
    with_s3_keys(&mut ctx);
    let gpg = Gpg::new();
    ctx.rpm_snapshot("s1");
    let version = publish_signed(&ctx, &gpg, "s1", "el", None);
    let prefix = unique_prefix("rpm");
    let s = push(&ctx, "el", &prefix, &[], None).ok().json();
    // Only dev serves a version: only dev is pushed.
    assert_eq!(s["stages"].as_array().unwrap().len(), 1);
    let published = files(&ctx.root.join("public/el").join(&version));
    for (rel, bytes) in &published {
        let (code, body) = get(&format!("{prefix}/el/dev/{rel}"));
        assert_eq!(code, 200, "{rel}");
        assert!(body == *bytes, "{rel} differs");
    }
    let headers = head(&format!("{prefix}/el/dev/repodata/repomd.xml"));
    assert!(headers.contains("max-age=60"), "{headers}");
    assert!(
        headers.contains("content-type: application/xml"),
        "{headers}"
    );

    let dnf = Dnf::new(
        &format!("{}/{}/{prefix}/el/dev", s3_endpoint(), s3_bucket()),
        &[&gpg.public_key, &fixtures().join("rpm/keys/good.asc")],
    );
    dnf.run(&["makecache"]).ok();
    dnf.run(&["install", "beta"]).ok();
    // beta needs alpha: both came from the bucket.
    assert!(dnf.installed("usr/share/doc/alpha/README"));
}

/// A root with S3 keys whose distribution `d` serves (dev) a signed
/// version of repository `ci` holding alpha 1.0: the context, the signing
/// key, the version.
fn alpha_published() -> (TestContext, Gpg, String) {
    let mut ctx = TestContext::new();
    with_s3_keys(&mut ctx);
    let gpg = Gpg::new();
    let a = build_deb(ctx.dir.path(), "alpha", "1.0", "amd64", "");
    repo_with(&ctx, "ci", &[a]);
    let version = publish_signed(&ctx, &gpg, "ci", "d", Some("stable"));
    (ctx, gpg, version)
}

/// `(rel, bytes)` of `a` that `b` lacks or holds other bytes for.
fn changed(
    a: &std::collections::BTreeMap<String, Vec<u8>>,
    b: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    a.iter()
        .filter(|(rel, bytes)| b.get(*rel) != Some(bytes))
        .map(|(rel, _)| rel.clone())
        .collect()
}

#[test]
fn a_second_push_sends_only_new_objects_and_deletes_stale_ones_after_the_delay() {
    let mut ctx = TestContext::new();
    with_s3_keys(&mut ctx);
    let gpg = Gpg::new();
    let a = build_deb(ctx.dir.path(), "alpha", "1.0", "amd64", "");
    let b = build_deb(ctx.dir.path(), "beta", "1.0", "amd64", "");
    let b2 = build_deb(ctx.dir.path(), "beta", "2.0", "amd64", "");
    repo_with(&ctx, "ci", &[a, b]);
    let v1 = publish_signed(&ctx, &gpg, "ci", "d", Some("stable"));
    ctx.depot(&["promote", "d", &v1, "--to", "release"]).ok();
    let prefix = unique_prefix("again");
    let t0 = "2026-11-22T02:00:00Z";
    let first = push(&ctx, "d", &prefix, &["--stage", "release"], Some(t0))
        .ok()
        .json();
    let old = files(&ctx.root.join("public/d").join(&v1));
    assert_eq!(first["stages"][0]["uploaded"], old.len());
    assert_eq!(first["stages"][0]["listed"], true, "a first push lists");

    // beta 2.0 replaces 1.0: a new version, promoted, pushed again.
    ctx.depot(&["repo", "add", "ci", b2.to_str().unwrap()]).ok();
    ctx.depot(&["repo", "remove", "ci", "beta (<< 2.0)"]).ok();
    ctx.depot(&["snapshot", "create", "ci2", "--repo", "ci"])
        .ok();
    std::thread::sleep(Duration::from_millis(1100));
    let v2 = publish_signed(&ctx, &gpg, "ci2", "d", Some("stable"));
    ctx.depot(&["promote", "d", &v2, "--to", "release"]).ok();
    let new = files(&ctx.root.join("public/d").join(&v2));
    let sent = changed(&new, &old);
    let gone: Vec<String> = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    assert!(
        !gone.is_empty() && sent.len() < new.len(),
        "{sent:?} {gone:?}"
    );

    let dry = push(
        &ctx,
        "d",
        &prefix,
        &["--stage", "release", "--dry-run"],
        Some("2026-11-22T02:10:00Z"),
    )
    .ok()
    .json();
    assert_eq!(dry["stages"][0]["uploaded"], sent.len());
    let second = push(
        &ctx,
        "d",
        &prefix,
        &["--stage", "release"],
        Some("2026-11-22T02:10:00Z"),
    )
    .ok()
    .json();
    let st = &second["stages"][0];
    assert_eq!(st["listed"], false, "the first push's manifest is trusted");
    assert_eq!(st["uploaded"], sent.len(), "only what changed: {sent:?}");
    assert_eq!(st["present"], new.len() - sent.len());
    assert_eq!(st["stale_kept"], gone.len());
    assert_eq!(st["deleted"], 0);
    for rel in &gone {
        assert_eq!(
            get(&format!("{prefix}/d/release/{}", rel.replace('+', "%2B"))).0,
            200,
            "{rel}"
        );
    }
    for (rel, bytes) in &new {
        assert!(
            get(&format!("{prefix}/d/release/{rel}")).1 == *bytes,
            "{rel}"
        );
    }

    // 50 minutes after they left: still there.
    let third = push(
        &ctx,
        "d",
        &prefix,
        &["--stage", "release"],
        Some("2026-11-22T03:00:00Z"),
    )
    .ok()
    .json();
    assert_eq!(third["stages"][0]["uploaded"], 0);
    assert_eq!(third["stages"][0]["deleted"], 0);
    assert_eq!(third["stages"][0]["stale_kept"], gone.len());
    // An hour after they left: gone; nothing of the stage went with them.
    let fourth = push(
        &ctx,
        "d",
        &prefix,
        &["--stage", "release"],
        Some("2026-11-22T03:10:00Z"),
    )
    .ok()
    .json();
    assert_eq!(fourth["stages"][0]["deleted"], gone.len());
    assert_eq!(fourth["stages"][0]["stale_kept"], 0);
    for rel in &gone {
        assert_eq!(get(&format!("{prefix}/d/release/{rel}")).0, 404, "{rel}");
    }
    for (rel, bytes) in &new {
        assert!(
            get(&format!("{prefix}/d/release/{rel}")).1 == *bytes,
            "{rel}"
        );
    }
}

/// A TCP proxy to the S3 server that forwards everything until `limit`
/// bytes went from client to server, then holds every connection open
/// and silent: a push through it hangs mid-way, to be killed.
struct StallProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
}

impl StallProxy {
    fn start(limit: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = s3_endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let sent = Arc::new(AtomicUsize::new(0));
        let stalled = Arc::new(AtomicBool::new(false));
        let st = stalled.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                });
                let (sent, st) = (sent.clone(), st.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n) = client.read(&mut buf) else { return };
                        if n == 0 {
                            return;
                        }
                        let before = sent.fetch_add(n, Ordering::SeqCst);
                        let allowed = limit.saturating_sub(before).min(n);
                        if allowed > 0 && server.write_all(&buf[..allowed]).is_err() {
                            return;
                        }
                        if allowed < n {
                            st.store(true, Ordering::SeqCst);
                            // Hold the connection: the client waits forever.
                            std::thread::sleep(Duration::from_secs(600));
                            return;
                        }
                    }
                });
            }
        });
        Self { port, stalled }
    }
}

#[test]
fn a_push_killed_mid_way_completes_when_run_again_and_a_concurrent_one_exits_3() {
    let mut ctx = TestContext::new();
    with_s3_keys(&mut ctx);
    let gpg = Gpg::new();
    let debs: Vec<PathBuf> = (0..12)
        .map(|i| build_deb(ctx.dir.path(), &format!("pkg{i}"), "1.0", "amd64", ""))
        .collect();
    repo_with(&ctx, "ci", &debs);
    let version = publish_signed(&ctx, &gpg, "ci", "d", Some("stable"));
    let prefix = unique_prefix("killed");
    push_killed_mid_way(&ctx, &StallProxy::start(9000), &prefix, || {
        // The same stage, same target: busy.
        push(&ctx, "d", &prefix, &["--stage", "dev"], None).fails(3, "busy");
    });

    // Half a push: some packages, no Release, no manifest.
    assert_eq!(
        get(&format!("{prefix}/d/dev/dists/stable/InRelease")).0,
        404
    );
    assert_eq!(get(&format!("{prefix}/d/dev/.depot-push.json.zst")).0, 404);

    let s = push(&ctx, "d", &prefix, &["--stage", "dev"], None)
        .ok()
        .json();
    let st = &s["stages"][0];
    let published = files(&ctx.root.join("public/d").join(&version));
    assert!(st["checked"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(
        st["uploaded"].as_u64().unwrap() + st["present"].as_u64().unwrap(),
        published.len() as u64
    );
    for (rel, bytes) in &published {
        assert!(get(&format!("{prefix}/d/dev/{rel}")).1 == *bytes, "{rel}");
    }
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {}/{}/{prefix}/d/dev stable main",
        gpg.public_key.display(),
        s3_endpoint(),
        s3_bucket()
    ));
    apt.run(&["update"]).ok();
    apt.run(&["download", "pkg7"]).ok();
}

/// `depot dist push` through `proxy`, killed once the proxy stalls it
/// (after `while_stalled`).
fn push_killed_mid_way(
    ctx: &TestContext,
    proxy: &StallProxy,
    prefix: &str,
    while_stalled: impl FnOnce(),
) {
    let to = format!("s3://{}/{prefix}", s3_bucket());
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let mut child = ctx
        .command()
        .args(["dist", "push", "d", "--stage", "dev", "--to", &to])
        .args(["--endpoint", &endpoint, "--concurrency", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if proxy.stalled.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        proxy.stalled.load(Ordering::SeqCst),
        "the push never reached the limit"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the push ended on its own"
    );
    while_stalled();
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_push_after_one_that_did_not_finish_lists_the_bucket_and_verify_repairs_it() {
    let (ctx, gpg, _) = alpha_published();
    let prefix = unique_prefix("pending");
    let pending = format!("{prefix}/d/dev/.depot-push.pending");
    push(&ctx, "d", &prefix, &["--stage", "dev"], None).ok();
    assert_eq!(get(&pending).0, 404, "a complete push leaves no marker");

    // Twelve new packages; their push stalls mid-way and is killed.
    for i in 0..12 {
        let deb = build_deb(ctx.dir.path(), &format!("pkg{i}"), "1.0", "amd64", "");
        ctx.depot(&["repo", "add", "ci", deb.to_str().unwrap()])
            .ok();
    }
    ctx.depot(&["snapshot", "create", "ci2", "--repo", "ci"])
        .ok();
    std::thread::sleep(Duration::from_millis(1100));
    let v2 = publish_signed(&ctx, &gpg, "ci2", "d", Some("stable"));
    push_killed_mid_way(&ctx, &StallProxy::start(9000), &prefix, || {});
    assert_eq!(get(&pending).0, 200, "the killed push left its marker");

    // The manifest is the first push's, and the bucket no longer matches
    // it: the rerun lists instead of trusting it.
    let s = push(&ctx, "d", &prefix, &["--stage", "dev"], None)
        .ok()
        .json();
    assert_eq!(s["stages"][0]["listed"], true, "{s}");
    assert_eq!(get(&pending).0, 404);
    let published = files(&ctx.root.join("public/d").join(&v2));
    for (rel, bytes) in &published {
        assert!(get(&format!("{prefix}/d/dev/{rel}")).1 == *bytes, "{rel}");
    }

    // Someone else deletes a package. A push that trusts the manifest does
    // not see it; --verify lists the bucket and restores it.
    let victim = published.keys().find(|k| k.contains("pkg7")).unwrap();
    let key = format!("{prefix}/d/dev/{victim}");
    assert_eq!(signed("DELETE", &key, None), 204);
    let trusted = push(&ctx, "d", &prefix, &["--stage", "dev"], None)
        .ok()
        .json();
    assert_eq!(trusted["stages"][0]["listed"], false);
    assert_eq!(trusted["stages"][0]["uploaded"], 0);
    assert_eq!(get(&key).0, 404);
    let verified = push(&ctx, "d", &prefix, &["--stage", "dev", "--verify"], None)
        .ok()
        .json();
    assert_eq!(verified["stages"][0]["listed"], true);
    assert_eq!(verified["stages"][0]["uploaded"], 1, "{verified}");
    assert!(get(&key).1 == published[victim]);
}

#[test]
fn a_stage_pushed_with_a_gzip_manifest_is_trusted_and_moved_to_zstd() {
    let (ctx, _, _) = alpha_published();
    let prefix = unique_prefix("legacy");
    let first = push(&ctx, "d", &prefix, &["--stage", "dev"], None)
        .ok()
        .json();
    // What a depot before zstd left: the same JSON, gzipped, under the
    // old name.
    let zst = format!("{prefix}/d/dev/.depot-push.json.zst");
    let gz = format!("{prefix}/d/dev/.depot-push.json.gz");
    let (code, bytes) = get(&zst);
    assert_eq!(code, 200);
    let json = zstd::decode_all(&bytes[..]).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&json).unwrap();
    let legacy = ctx.dir.path().join("legacy.json.gz");
    std::fs::write(&legacy, enc.finish().unwrap()).unwrap();
    assert_eq!(signed("PUT", &gz, Some(&legacy)), 200);
    assert_eq!(signed("DELETE", &zst, None), 204);

    let again = push(&ctx, "d", &prefix, &["--stage", "dev"], None)
        .ok()
        .json();
    let st = &again["stages"][0];
    assert_eq!(st["listed"], false, "{again}");
    assert_eq!(st["uploaded"], 0, "{again}");
    assert_eq!(st["present"], first["stages"][0]["objects"]);
    assert_eq!(get(&zst).0, 200);
    assert_eq!(get(&gz).0, 404, "the old manifest is removed once replaced");
}

#[test]
fn wrong_credentials_exit_1_with_a_clear_message_and_change_nothing() {
    let (mut ctx, gpg, v1) = alpha_published();
    let prefix = unique_prefix("creds");
    push(&ctx, "d", &prefix, &[], None).ok();
    let release_key = format!("{prefix}/d/dev/dists/stable/Release");
    let before = get(&release_key).1;
    let manifest_before = get(&format!("{prefix}/d/dev/.depot-push.json.zst")).1;

    // A new version, pushed with a wrong secret, then an unknown key.
    std::thread::sleep(Duration::from_millis(1100));
    let v2 = publish_signed(&ctx, &gpg, "ci", "d", Some("stable"));
    assert_ne!(v1, v2);
    ctx.env
        .insert("AWS_SECRET_ACCESS_KEY".into(), "wrong".into());
    let run = push(&ctx, "d", &prefix, &[], None).fails(1, "refused (HTTP 403");
    assert!(
        run.stderr.contains("SignatureDoesNotMatch"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("wrong"),
        "the secret is shown: {}",
        run.stderr
    );
    ctx.env.insert("AWS_ACCESS_KEY_ID".into(), "nobody".into());
    push(&ctx, "d", &prefix, &[], None).fails(1, "refused (HTTP 403");
    assert!(get(&release_key).1 == before);
    assert!(get(&format!("{prefix}/d/dev/.depot-push.json.zst")).1 == manifest_before);

    // No credentials at all: a message saying where they are looked for.
    ctx.env.remove("AWS_ACCESS_KEY_ID");
    ctx.env.remove("AWS_SECRET_ACCESS_KEY");
    let mut cmd = ctx.command();
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE");
    let run = crate::support::Run::from_output(
        cmd.args([
            "dist",
            "push",
            "d",
            "--to",
            &format!("s3://{}/{prefix}", s3_bucket()),
            "--endpoint",
            &s3_endpoint(),
        ])
        .output()
        .unwrap(),
    );
    let run = run.fails(1, "no AWS credentials");
    assert!(run.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", run.stderr);
}

#[test]
fn bad_push_arguments_are_usage_errors() {
    let mut ctx = TestContext::new();
    with_s3_keys(&mut ctx);
    ctx.depot(&["dist", "push", "d", "--to", "http://bucket/x"])
        .fails(2, "s3://BUCKET/PREFIX");
    ctx.depot(&["dist", "push", "d", "--to", "s3://bkt/x", "--stage", "../x"])
        .fails(2, "version");
    ctx.depot(&[
        "dist",
        "push",
        "d",
        "--to",
        "s3://bkt/x",
        "--delete-after",
        "soon",
    ])
    .fails(2, "duration");
}

#[test]
fn a_train_pushes_dev_after_publishing_and_release_after_promoting() {
    let mut ctx = TestContext::new();
    with_s3_keys(&mut ctx);
    let deb = build_deb(ctx.dir.path(), "tool", "1.0", "amd64", "");
    ctx.depot(&["repo", "create", "ci", "--kind", "apt", "--arch", "amd64"])
        .ok();
    ctx.depot(&["repo", "add", "ci", deb.to_str().unwrap()])
        .ok();
    let prefix = unique_prefix("train");
    let file = ctx.dir.path().join("nightly.yaml");
    std::fs::write(
        &file,
        format!(
            "train: night\nrepos: [ci]\n\
             publish:\n  d:\n    from: ci\n    suite: stable\n    skip-signing: true\n    push:\n      - to: s3://{b}/{prefix}\n        endpoint: {e}\n\
             promote:\n  d:\n    to: release\n    push:\n      - to: s3://{b}/{prefix}\n        endpoint: {e}\n        path-style: true\n        delete-after: 2h\n        verify: true\n",
            b = s3_bucket(),
            e = s3_endpoint()
        ),
    )
    .unwrap();
    let plan = ctx
        .depot(&["train", "run", file.to_str().unwrap(), "--dry-run"])
        .ok();
    assert!(
        plan.stdout
            .contains(&format!("push to s3://{}/{prefix}", s3_bucket())),
        "{}",
        plan.stdout
    );
    ctx.depot(&["train", "run", file.to_str().unwrap()]).ok();
    for stage in ["dev", "release"] {
        let (code, body) = get(&format!("{prefix}/d/{stage}/dists/stable/Release"));
        assert_eq!(code, 200, "{stage}");
        assert!(String::from_utf8_lossy(&body).contains("Suite: stable"));
        assert_eq!(
            get(&format!("{prefix}/d/{stage}/.depot-push.json.zst")).0,
            200
        );
    }
    // A bad target is refused with the file's place, before anything runs.
    std::fs::write(
        &file,
        "train: night\nrepos: [ci]\npublish:\n  d:\n    from: ci\n    push:\n      - to: http://x/y\n",
    )
    .unwrap();
    ctx.depot(&["train", "run", file.to_str().unwrap()])
        .fails(2, "s3://BUCKET/PREFIX");
}
