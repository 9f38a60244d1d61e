//! `depot serve` under abuse, on loopback: traversal out of a version and
//! out of the publish root, range abuse, huge headers, thousands of idle
//! and slowloris connections, a client that stops reading. Throughout, the
//! server keeps answering other clients with exact guards, and its memory
//! and file descriptors stay bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::promote::start_serve;
use crate::support::TestContext;

/// A published distribution `d` (dev guarded by token `dev-token`) and a
/// public one `pub` of the same snapshot: the context and their versions.
fn two_dists() -> (TestContext, String, String) {
    let ctx = TestContext::new();
    let tokens = ctx.dir.path().join("dev-tokens");
    std::fs::write(&tokens, "dev-token\n").unwrap();
    ctx.depot(&[
        "guard",
        "create",
        "devs",
        "--token-file",
        tokens.to_str().unwrap(),
    ])
    .ok();
    ctx.depot(&["dist", "create", "d", "--stage", "dev=devs"])
        .ok();
    ctx.depot(&["dist", "create", "pub", "--stage", "dev=public"])
        .ok();
    ctx.apt_snapshot("m", "s");
    let v = ctx.published_version("s", "d");
    let w = ctx.published_version("s", "pub");
    (ctx, v, w)
}

/// One raw request (`Connection: close` added) on a fresh connection:
/// status code and body. Nothing normalises the path on the way.
fn raw(base: &str, path: &str, headers: &str) -> (u16, Vec<u8>) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse(&out)
}

fn parse(out: &[u8]) -> (u16, Vec<u8>) {
    let text = String::from_utf8_lossy(out);
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| out[i + 4..].to_vec())
        .unwrap_or_default();
    (code, body)
}

fn header_of(base: &str, path: &str, headers: &str, name: &str) -> Option<String> {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

const AUTH: &str = "Authorization: Bearer dev-token\r\n";

#[test]
fn serve_refuses_traversal_out_of_a_version_and_out_of_the_publish_root() {
    let (ctx, v, w) = two_dists();
    let public = ctx.root.join("public");
    // Symlinks planted in a published tree: out of the publish root, into
    // the guarded distribution, and one that stays inside (followed).
    std::fs::write(ctx.dir.path().join("secret"), "secret").unwrap();
    let pub_v = public.join("pub").join(&w);
    std::os::unix::fs::symlink(ctx.dir.path().join("secret"), pub_v.join("abs")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../d/{v}/dists/stable/Release"),
        pub_v.join("guarded"),
    )
    .unwrap();
    std::os::unix::fs::symlink("dists/stable/Release", pub_v.join("inside")).unwrap();

    let (mut server, base) = start_serve(&ctx, &[], false);
    let release = std::fs::read(public.join("d").join(&v).join("dists/stable/Release")).unwrap();
    // The guarded file, read the honest way.
    let honest = format!("/d/{v}/dists/stable/Release");
    assert_eq!(raw(&base, &honest, "").0, 401);
    assert_eq!(raw(&base, &honest, AUTH), (200, release.clone()));
    let pub_release = std::fs::read(pub_v.join("dists/stable/Release")).unwrap();
    assert_ne!(pub_release, release);
    assert_eq!(
        raw(&base, &format!("/pub/{w}/inside"), ""),
        (200, pub_release)
    );

    // Through the public distribution, without a token: never the guarded
    // file, never a file outside the publish root.
    for path in [
        format!("/pub/../d/{v}/dists/stable/Release"),
        format!("/pub/%2e%2e/d/{v}/dists/stable/Release"),
        format!("/pub/{w}/..%2f..%2fd%2f{v}%2fdists%2fstable%2fRelease"),
        format!("/pub/{w}/%2e%2e/%2e%2e/d/{v}/dists/stable/Release"),
        format!("/pub/{w}/dists/%2e%2e/%2e%2e/%2e%2e/d/{v}/dists/stable/Release"),
        format!("/pub//d/{v}/dists/stable/Release"),
        format!("/pub/{w}//dists/stable/Release"),
        format!("/pub/{w}/guarded"),
        format!("/pub/{w}/abs"),
        "/pub/dev/../../../secret".to_owned(),
        "/../secret".to_owned(),
        "/%2e%2e/secret".to_owned(),
    ] {
        let (code, body) = raw(&base, &path, "");
        assert!(
            matches!(code, 400 | 401 | 404),
            "{path}: {code} {}",
            String::from_utf8_lossy(&body)
        );
        assert!(!body.starts_with(b"secret") && body != release, "{path}");
    }
    // With the guarded distribution's token, a symlink in the public one
    // still does not lead out of its version.
    assert_eq!(raw(&base, &format!("/pub/{w}/guarded"), AUTH).0, 404);
    // A half-written version is not a version.
    let partial = format!(".{v}.partial-1");
    std::fs::create_dir_all(public.join("pub").join(&partial)).unwrap();
    std::fs::write(public.join("pub").join(&partial).join("x"), "x").unwrap();
    assert_eq!(raw(&base, &format!("/pub/{partial}/x"), "").0, 404);
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A value of `/proc/PID/status` in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Waits up to `limit` for `done`, polling.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

#[test]
fn serve_keeps_answering_under_ranges_huge_headers_slowloris_and_10k_connections() {
    let (ctx, v, _) = two_dists();
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(ctx.root.join("public/d").join(&v).join("big.bin"), &big).unwrap();
    let release = std::fs::read(
        ctx.root
            .join("public/d")
            .join(&v)
            .join("dists/stable/Release"),
    )
    .unwrap();
    let (mut server, base) = start_serve(&ctx, &["--idle-timeout", "8s"], false);
    let pid = server.id();
    let honest = format!("/d/{v}/dists/stable/Release");
    let big_path = format!("/d/{v}/big.bin");
    // The guards stay exact, and answer promptly.
    let still_exact = |when: &str| {
        let start = Instant::now();
        assert_eq!(raw(&base, &honest, "").0, 401, "{when}");
        assert_eq!(raw(&base, &honest, AUTH), (200, release.clone()), "{when}");
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "{when}: {took:?}");
    };
    still_exact("at start");
    let base_fds = open_fds(pid);

    // Ranges: one is served; several, reversed or malformed ones get the
    // whole file once (never a multiplied answer); past the end is 416.
    let range = |spec: &str| raw(&base, &big_path, &format!("{AUTH}Range: {spec}\r\n"));
    assert_eq!(range("bytes=-5"), (206, big[big.len() - 5..].to_vec()));
    assert_eq!(range("bytes=10-19"), (206, big[10..20].to_vec()));
    let many: Vec<String> = (0..3000).map(|i| format!("{i}-{i}")).collect();
    let (code, body) = range(&format!("bytes={}", many.join(",")));
    assert_eq!((code, body.len()), (200, big.len()));
    assert_eq!(range("bytes=0-0,0-0,0-0").1.len(), big.len());
    let (code, body) = range("bytes=9-0");
    assert_eq!((code, body.len()), (200, big.len()));
    assert_eq!(range("bytes=99999999-").0, 416);
    assert_eq!(
        header_of(
            &base,
            &big_path,
            &format!("{AUTH}Range: bytes=99999999-\r\n"),
            "content-range"
        )
        .as_deref(),
        Some(format!("bytes */{}", big.len()).as_str())
    );

    // Huge headers and huge numbers of headers: 431, nothing more.
    let huge = format!("X-Huge: {}\r\n", "a".repeat(1 << 20));
    assert_eq!(raw(&base, &honest, &huge).0, 431);
    let numerous: String = (0..10_000).map(|i| format!("X-{i}: b\r\n")).collect();
    assert_eq!(raw(&base, &honest, &numerous).0, 431);
    still_exact("after huge headers");

    // 10k connections at once: idle ones, slowloris ones trickling a
    // header a byte at a time, and a client that asked for 8 MiB and reads
    // none of it.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let hard = limit.maximum.unwrap_or(1 << 20) as usize;
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(hard as u64),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let n = 10_000.min(hard.saturating_sub(1_000));
    assert!(
        n >= 2_000,
        "the open-file limit ({hard}) is too low for this test"
    );
    let addr = base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&addr).unwrap();
    write!(slow, "GET {big_path} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n").unwrap();
    let mut idle: Vec<TcpStream> = (0..n - 500)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let loris: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            write!(s, "GET {honest} HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    let trickle = std::thread::spawn(move || {
        let mut loris = loris;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(14) {
            for s in &mut loris {
                let _ = s.write_all(b"X");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        loris
    });
    assert!(
        eventually(Duration::from_secs(6), || open_fds(pid) >= base_fds + n),
        "serve holds {} descriptors beside its {base_fds} for {n} connections",
        open_fds(pid)
    );
    let rss_mb = status_kb(pid, "VmRSS:") / 1024;
    let fds = open_fds(pid);
    eprintln!("{n} connections held: serve has {fds} descriptors and {rss_mb} MB resident");
    assert!(
        fds <= base_fds + n + 16,
        "{fds} descriptors for {n} connections"
    );
    assert!(rss_mb < 400, "{rss_mb} MB resident with {n} connections");
    still_exact("with 10k connections held");

    // Past the idle timeout every one of them is let go, the slowloris
    // ones still trickling, and the reader that stopped reading.
    assert!(
        eventually(Duration::from_secs(20), || open_fds(pid) <= base_fds + 2),
        "{} descriptors left after the idle timeout",
        open_fds(pid)
    );
    let peak_mb = status_kb(pid, "VmHWM:") / 1024;
    eprintln!("peak resident {peak_mb} MB");
    assert!(peak_mb < 400, "peak resident {peak_mb} MB");
    for s in idle.iter_mut().step_by(997).chain([&mut slow]) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sink = Vec::new();
        let read = s.read_to_end(&mut sink);
        assert!(
            !matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a connection is still open: {read:?}"
        );
    }
    assert!(trickle.join().is_ok());
    still_exact("after the idle timeout");
    server.kill().unwrap();
    server.wait().unwrap();
}
