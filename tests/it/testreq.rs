//! Test requests: submit to a real RabbitMQ (on 127.0.0.1, or
//! `$DEPOT_TEST_AMQP_URL`) and to the spool, poll a loopback Swift-style
//! server over the fixture result trees, and the embedded
//! submit → worker → poll loop.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

use crate::support::{TestContext, copy_tree, fixtures};

pub(crate) fn amqp_url() -> String {
    std::env::var("DEPOT_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A release name no other test uses (release names have no dash).
pub(crate) fn unique_release() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("rel{:012x}", h.finish() & 0xffff_ffff_ffff)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A plain AMQP client for checking what landed on the broker, deleting
/// the test's queues when dropped.
struct Broker {
    rt: tokio::runtime::Runtime,
    channel: lapin::Channel,
    queues: Mutex<BTreeSet<String>>,
}

struct Message {
    body: Vec<u8>,
    delivery_mode: Option<u8>,
    message_id: Option<String>,
}

impl Broker {
    fn connect() -> Self {
        let rt = runtime();
        let channel = rt.block_on(async {
            let conn = lapin::Connection::connect(&amqp_url(), Default::default())
                .await
                .expect("RabbitMQ must run on 127.0.0.1:5672 (or set DEPOT_TEST_AMQP_URL)");
            let ch = conn.create_channel().await.unwrap();
            // The connection lives as long as its channels are used.
            std::mem::forget(conn);
            ch
        });
        Self {
            rt,
            channel,
            queues: Mutex::new(BTreeSet::new()),
        }
    }

    /// Messages waiting in `queue` (declaring it, durable, if needed).
    fn count(&self, queue: &str) -> u32 {
        self.queues.lock().unwrap().insert(queue.to_owned());
        self.rt
            .block_on(self.channel.queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ))
            .unwrap()
            .message_count()
    }

    fn get(&self, queue: &str) -> Option<Message> {
        self.count(queue);
        let got = self
            .rt
            .block_on(
                self.channel
                    .basic_get(queue.into(), BasicGetOptions { no_ack: true }),
            )
            .unwrap()?;
        let d = got.delivery;
        Some(Message {
            delivery_mode: *d.properties.delivery_mode(),
            message_id: d.properties.message_id().as_ref().map(|m| m.to_string()),
            body: d.data,
        })
    }

    fn publish_raw(&self, queue: &str, body: &[u8]) {
        self.count(queue);
        self.rt
            .block_on(async {
                self.channel
                    .basic_publish(
                        "".into(),
                        queue.into(),
                        Default::default(),
                        body,
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap()
                    .await
            })
            .unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        for q in self.queues.lock().unwrap().iter() {
            let _ = self.rt.block_on(
                self.channel
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
            );
        }
    }
}

/// Parses a body exactly as autopkgtest-cloud's worker does: split at the
/// first newline, the name must match `[a-zA-Z0-9.+-]+$`, the rest is a
/// JSON object.
fn parse_like_worker(body: &[u8]) -> (String, serde_json::Map<String, serde_json::Value>) {
    let text = std::str::from_utf8(body).unwrap();
    let (name, json) = text.split_once('\n').expect("a newline after the name");
    assert!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b)),
        "{name}"
    );
    let params: serde_json::Value = serde_json::from_str(json).unwrap();
    (name.to_owned(), params.as_object().unwrap().clone())
}

fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn submitted_messages_parse_as_autopkgtest_cloud_workers_parse_them() {
    let ctx = TestContext::new();
    let broker = Broker::connect();
    let rel = unique_release();
    let url = amqp_url();
    let run = ctx
        .depot(&[
            "test",
            "submit",
            "libfoo+bar",
            "--release",
            &rel,
            "--arch",
            "amd64",
            "--arch",
            "arm64",
            "--trigger",
            "glibc/2.40-1ubuntu1",
            "--trigger",
            "libfoo+bar/1:2.0~rc1-1",
            "--ppa",
            "alice/tools",
            "--env",
            "DEBUG=1",
            "--env",
            "OPTS=a b,c",
            "--test-git",
            "https://git.example.org/foo.git",
            "main",
            "--testname",
            "smoke",
            "--swiftuser",
            "bob",
            "--readable-by",
            "carol",
            "--readable-by",
            "dave",
            "--requester",
            "erin",
            "--broker",
            &url,
            "--output-format",
            "json",
        ])
        .ok();
    let out = run.json();
    assert_eq!(out.as_array().unwrap().len(), 2);
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let queue = format!("debci-{rel}-{arch}");
        assert_eq!(out[i]["queue"], queue.as_str());
        let m = broker.get(&queue).expect("one message per arch");
        assert_eq!(m.delivery_mode, Some(2), "persistent");
        assert_eq!(m.message_id.as_deref(), out[i]["id"].as_str());
        assert_eq!(out[i]["body"].as_str().unwrap().as_bytes(), &m.body[..]);
        let (name, p) = parse_like_worker(&m.body);
        assert_eq!(name, "libfoo+bar");
        assert_eq!(
            strings(&p["triggers"]),
            ["glibc/2.40-1ubuntu1", "libfoo+bar/1:2.0~rc1-1"]
        );
        assert_eq!(strings(&p["ppas"]), ["alice/tools"]);
        assert_eq!(strings(&p["env"]), ["DEBUG=1", "OPTS=a b,c"]);
        assert_eq!(p["test-git"], "https://git.example.org/foo.git main");
        assert_eq!(p["testname"], "smoke");
        assert_eq!(p["swiftuser"], "bob");
        assert_eq!(strings(&p["readable-by"]), ["carol", "dave"]);
        assert_eq!(p["requester"], "erin");
        assert!(p["submit-time"].as_str().unwrap().ends_with("+0000"));
        assert!(!p.contains_key("all-proposed"), "absent unless set: {p:?}");
        assert!(broker.get(&queue).is_none());
    }

    ctx.depot(&[
        "test",
        "submit",
        "hello",
        "--release",
        &rel,
        "--arch",
        "amd64",
        "--all-proposed",
        "--broker",
        &url,
    ])
    .ok();
    let m = broker.get(&format!("debci-{rel}-amd64")).unwrap();
    let (_, p) = parse_like_worker(&m.body);
    assert!(p.contains_key("all-proposed"), "{p:?}");
    assert!(!p.contains_key("triggers") && !p.contains_key("ppas"));
}

#[test]
fn each_queue_kind_lands_on_its_own_queue() {
    let ctx = TestContext::new();
    let broker = Broker::connect();
    let rel = unique_release();
    let url = amqp_url();
    let cases: [(&str, &[&str], String); 4] = [
        ("default", &[], format!("debci-{rel}-s390x")),
        ("huge", &[], format!("debci-huge-{rel}-s390x")),
        (
            "ppa",
            &["--ppa", "alice/tools"],
            format!("debci-ppa-{rel}-s390x"),
        ),
        (
            "upstream",
            &["--build-git", "https://git.example.org/x.git#v1.0"],
            format!("debci-upstream-{rel}-s390x"),
        ),
    ];
    for (kind, extra, _) in &cases {
        let mut args = vec![
            "test",
            "submit",
            "hello",
            "--release",
            &rel,
            "--arch",
            "s390x",
            "--queue-kind",
            kind,
            "--broker",
            &url,
        ];
        args.extend(*extra);
        ctx.depot(&args).ok();
    }
    for (_, _, queue) in &cases {
        assert_eq!(broker.count(queue), 1, "{queue}");
    }
}

#[test]
fn invalid_requests_exit_2_naming_the_field_and_queue_nothing() {
    let ctx = TestContext::new();
    let broker = Broker::connect();
    let rel = unique_release();
    let url = amqp_url();
    let cases: &[(&[&str], &str)] = &[
        (&["--trigger", "glibc"], "trigger"),
        (&["--trigger", "Glibc/1.0"], "trigger"),
        (&["--trigger", "glibc/1.0 2"], "trigger"),
        (&["--ppa", "alice"], "ppa"),
        (&["--env", "1X=2"], "env"),
        (&["--env", "X=$(reboot)"], "env"),
        (&["--test-git", "file:///etc"], "test-git"),
        (&["--build-git", "https://x.org/a.git#b c"], "build-git"),
        (
            &["--readable-by", "carol"],
            "--readable-by needs --swiftuser",
        ),
        (&["--queue-kind", "ppa"], "--queue-kind ppa needs"),
        (&["--arch", "arm-64"], "arch"),
        (&["--testname", "Bad Name"], "testname"),
        (
            &["--trigger", "aa/1", "--trigger", "migration-reference/0"],
            "migration-reference/0",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec![
            "test",
            "submit",
            "hello",
            "--release",
            &rel,
            "--arch",
            "amd64",
            "--broker",
            &url,
        ];
        args.extend(*extra);
        ctx.depot(&args).fails(2, needle);
    }
    // A bad third arch must not leave the first two queued.
    ctx.depot(&[
        "test",
        "submit",
        "hello",
        "--release",
        &rel,
        "--arch",
        "amd64",
        "--arch",
        "arm64",
        "--arch",
        "bad-arch",
        "--broker",
        &url,
    ])
    .fails(2, "invalid arch `bad-arch`");
    ctx.depot(&[
        "test",
        "submit",
        "Hello",
        "--release",
        &rel,
        "--arch",
        "amd64",
        "--broker",
        &url,
    ])
    .fails(2, "invalid package `Hello`");
    ctx.depot(&[
        "test",
        "submit",
        "hello",
        "--release",
        "no-ble",
        "--arch",
        "amd64",
        "--broker",
        &url,
    ])
    .fails(2, "invalid release");
    for arch in ["amd64", "arm64"] {
        assert_eq!(broker.count(&format!("debci-{rel}-{arch}")), 0);
    }
}

#[test]
fn broker_passwords_never_appear_in_errors() {
    let ctx = TestContext::new();
    let rel = unique_release();
    for url in [
        "amqp://guest:hunter2secret@127.0.0.1:5672/%2f",
        "amqp://guest:hunter2secret@127.0.0.1:1/%2f",
        "http://guest:hunter2secret@127.0.0.1/",
    ] {
        let mut cmd = ctx.command();
        cmd.env("DEPOT_BROKER", url).env("RUST_LOG", "trace");
        let out = cmd
            .args([
                "test",
                "submit",
                "hello",
                "--release",
                &rel,
                "--arch",
                "amd64",
                "-vv",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2secret"), "{url}: {stderr}");
        assert!(stderr.contains("error:"), "{stderr}");
    }
}

#[test]
fn spool_submit_writes_one_file_per_request_with_the_wire_body() {
    let ctx = TestContext::new();
    let out = ctx
        .depot(&[
            "test",
            "submit",
            "hello",
            "--release",
            "noble",
            "--arch",
            "amd64",
            "--arch",
            "arm64",
            "--trigger",
            "glibc/2.40-1",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    for s in out.as_array().unwrap() {
        let path = ctx
            .root
            .join("spool")
            .join(s["queue"].as_str().unwrap())
            .join(s["id"].as_str().unwrap());
        let body = std::fs::read(&path).unwrap();
        assert_eq!(body, s["body"].as_str().unwrap().as_bytes());
        let (name, p) = parse_like_worker(&body);
        assert_eq!(name, "hello");
        assert_eq!(strings(&p["triggers"]), ["glibc/2.40-1"]);
    }
    let dir = ctx.dir.path().join("elsewhere");
    ctx.depot(&[
        "test",
        "submit",
        "hello",
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--spool",
        dir.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read_dir(dir.join("debci-noble-amd64"))
            .unwrap()
            .count(),
        1
    );
}

// ---------------------------------------------------------------------------
// A Swift-style server over directories: `GET /CONTAINER?prefix=&delimiter=@
// &marker=` lists (plain text, paged), `GET /CONTAINER/OBJECT` serves files,
// 204 for an empty listing, 401 for a container that does not exist.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct SwiftState {
    log: Vec<String>,
    /// Status lines the next listings answer with, in order.
    fail_listings: std::collections::VecDeque<&'static str>,
    /// Answer every listing as if no `marker` was given (a static copy of
    /// a listing, a proxy that drops query strings).
    ignore_marker: bool,
}

pub struct Swift {
    pub addr: String,
    state: Arc<Mutex<SwiftState>>,
}

impl Swift {
    pub fn start(root: PathBuf, page: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(SwiftState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, st) = (root.clone(), st.clone());
                std::thread::spawn(move || {
                    let _ = swift_serve(stream, &root, page, &st);
                });
            }
        });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/AUTH_test", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    fn ignore_marker(&self) {
        self.state.lock().unwrap().ignore_marker = true;
    }

    /// The next `n` listings get a 503.
    fn fail_listings(&self, n: usize) {
        self.fail_listings_with(&vec!["503 Service Unavailable"; n]);
    }

    /// The next listings answer with these status lines, one each.
    fn fail_listings_with(&self, statuses: &[&'static str]) {
        self.state.lock().unwrap().fail_listings = statuses.iter().copied().collect();
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn all_objects(dir: &Path, base: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = format!("{base}{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            all_objects(&e.path(), &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}

fn swift_serve(
    stream: TcpStream,
    root: &Path,
    page: usize,
    state: &Mutex<SwiftState>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // Head and body go out in separate writes: without this, Nagle and
    // delayed ACKs add 40 ms to every response.
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let path = percent_decode(path.trim_start_matches("/v1/AUTH_test/"));
        let reply = |stream: &mut TcpStream, status: &str, body: &[u8]| -> std::io::Result<()> {
            stream.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )?;
            stream.write_all(body)?;
            stream.flush()
        };
        if !path.contains('/') {
            // A container listing.
            {
                let mut st = state.lock().unwrap();
                st.log.push(format!("{path}?{query}"));
                if let Some(status) = st.fail_listings.pop_front() {
                    drop(st);
                    reply(&mut stream, status, b"")?;
                    continue;
                }
            }
            let dir = root.join(&path);
            if path.is_empty() || path.contains("..") || !dir.is_dir() {
                reply(&mut stream, "401 Unauthorized", b"")?;
                continue;
            }
            let param = |k: &str| {
                query
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| percent_decode(v))
                    .unwrap_or_default()
            };
            let (prefix, delim, mut marker) =
                (param("prefix"), param("delimiter"), param("marker"));
            if state.lock().unwrap().ignore_marker {
                marker.clear();
            }
            let mut objects = Vec::new();
            all_objects(&dir, "", &mut objects);
            let mut names: Vec<String> = objects
                .into_iter()
                .filter(|o| o.starts_with(&prefix))
                .map(
                    |o| match (delim.is_empty(), o[prefix.len()..].find(&delim)) {
                        (false, Some(i)) => o[..prefix.len() + i + delim.len()].to_owned(),
                        _ => o,
                    },
                )
                .filter(|n| marker.is_empty() || *n > marker)
                .collect();
            names.sort();
            names.dedup();
            names.truncate(page);
            if names.is_empty() {
                stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")?;
                stream.flush()?;
            } else {
                let body: String = names.iter().map(|n| format!("{n}\n")).collect();
                reply(&mut stream, "200 OK", body.as_bytes())?;
            }
            continue;
        }
        let file = root.join(&path);
        if path.split('/').any(|c| c == "..") || !file.is_file() {
            reply(&mut stream, "404 Not Found", b"")?;
            continue;
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&file)?.read_to_end(&mut bytes)?;
        reply(&mut stream, "200 OK", &bytes)?;
    }
}

fn fixture_swift(ctx: &TestContext) -> PathBuf {
    let dst = ctx.dir.path().join("swift");
    copy_tree(&fixtures().join("testreq/swift"), &dst);
    dst
}

fn poll(ctx: &TestContext, results: &str, package: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "test",
        "poll",
        package,
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--results",
        results,
        "--output-format",
        "json",
    ];
    args.extend(extra);
    ctx.depot(&args)
}

fn statuses(run: &crate::support::Run) -> Vec<String> {
    run.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["arch"].as_str().unwrap(),
                r["trigger"].as_str().unwrap_or("-"),
                r["status"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn poll_reads_swift_results_as_britney_does() {
    let ctx = TestContext::new();
    let swift = Swift::start(fixture_swift(&ctx), 2);
    let url = swift.url();
    let g = ["--trigger", "glibc/2.40-1"];

    let run = poll(&ctx, &url, "passpkg", &g);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let row = &run.json()["rows"][0];
    assert_eq!(row["status"], "pass");
    assert_eq!(row["version"], "1.0-1");
    assert_eq!(row["run_id"], "20261101_100000_aaaaa");
    assert_eq!(
        row["log_url"],
        format!("{url}/autopkgtest-noble/noble/amd64/p/passpkg/20261101_100000_aaaaa@/log.gz")
    );
    let log = http_get(row["log_url"].as_str().unwrap());
    assert!(!log.is_empty());

    assert_eq!(poll(&ctx, &url, "skippkg", &g).code, 0);
    let run = poll(&ctx, &url, "failpkg", &g);
    assert_eq!(
        (run.code, statuses(&run)),
        (1, vec!["amd64 glibc/2.40-1 fail".to_owned()])
    );
    assert!(run.stderr.contains("failed"), "{}", run.stderr);
    let run = poll(&ctx, &url, "neutralpkg", &g);
    assert_eq!(
        (run.code, statuses(&run)),
        (0, vec!["amd64 glibc/2.40-1 neutral".to_owned()])
    );
    let run = poll(&ctx, &url, "tmpfailpkg", &g);
    assert_eq!(
        (run.code, statuses(&run)),
        (4, vec!["amd64 glibc/2.40-1 tmpfail".to_owned()])
    );
    // lib* packages live under four-letter prefixes.
    assert_eq!(poll(&ctx, &url, "libfoo", &g).code, 0);

    // Pending: a trigger without a run, and a package without any (204).
    let run = poll(&ctx, &url, "passpkg", &["--trigger", "glibc/2.41-1"]);
    assert_eq!(
        (run.code, statuses(&run)),
        (4, vec!["amd64 glibc/2.41-1 pending".to_owned()])
    );
    assert!(run.stderr.contains("pending"), "{}", run.stderr);
    let run = poll(&ctx, &url, "nothing", &[]);
    assert_eq!(
        (run.code, statuses(&run)),
        (4, vec!["amd64 - pending".to_owned()])
    );

    // Several triggers in one run, re-runs with failures after a pass, and
    // pages of two names (marker).
    let run = poll(
        &ctx,
        &url,
        "multi",
        &[
            "--trigger",
            "glibc/2.40-1",
            "--trigger",
            "python3-defaults/3.12.3-0ubuntu1",
            "--trigger",
            "perl/5.40.0-6",
        ],
    );
    assert_eq!(
        statuses(&run),
        [
            "amd64 glibc/2.40-1 pass",
            "amd64 python3-defaults/3.12.3-0ubuntu1 pass",
            "amd64 perl/5.40.0-6 fail",
        ]
    );
    assert_eq!(run.code, 1);
    assert!(
        swift
            .requests()
            .iter()
            .any(|r| r.contains("multi") && r.contains("marker=")),
        "{:?}",
        swift.requests()
    );
    let run = poll(&ctx, &url, "flaky", &g);
    assert_eq!(
        (run.code, statuses(&run)),
        (0, vec!["amd64 glibc/2.40-1 pass".to_owned()])
    );
    assert_eq!(run.json()["rows"][0]["run_id"], "20261101_100000_ccccc");
    let run = poll(&ctx, &url, "regress", &g);
    assert_eq!(
        (run.code, statuses(&run)),
        (0, vec!["amd64 glibc/2.40-1 pass".to_owned()])
    );

    // One arch failing fails the whole poll; every trigger found when
    // none is asked for.
    let run = ctx.depot(&[
        "test",
        "poll",
        "passpkg",
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--arch",
        "arm64",
        "--results",
        &url,
        "--output-format",
        "json",
    ]);
    assert_eq!(
        statuses(&run),
        ["amd64 glibc/2.40-1 pass", "arm64 glibc/2.40-1 fail"]
    );
    assert_eq!(run.code, 1);

    // A run of the package's own older version does not count for its
    // newer trigger.
    assert_eq!(
        poll(&ctx, &url, "selfold", &["--trigger", "selfold/2.0-1"]).code,
        4
    );

    // PPA runs are in the container of the last PPA; a missing container
    // answers 401 and means nothing ran yet.
    let run = poll(&ctx, &url, "passpkg", &["--ppa", "alice/tools"]);
    assert_eq!(
        (run.code, statuses(&run)),
        (1, vec!["amd64 passpkg/1.1-1~ppa1 fail".to_owned()])
    );
    assert_eq!(
        poll(&ctx, &url, "passpkg", &["--ppa", "nobody/nothing"]).code,
        4
    );
}

/// A bare HTTP/1.0 GET: the body of a 200, else a panic.
fn http_get(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET /{path} HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    // The server keeps the connection open: read the head, then the body.
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{url}: {status}");
    let mut len = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.strip_prefix("Content-Length: ") {
            len = v.trim().parse().unwrap();
        }
    }
    reply.resize(len, 0);
    reader.read_exact(&mut reply).unwrap();
    reply
}

#[test]
fn a_corrupt_result_is_reported_not_fatal() {
    let ctx = TestContext::new();
    let swift = Swift::start(fixture_swift(&ctx), 1000);
    let run = poll(
        &ctx,
        &swift.url(),
        "corrupt",
        &["--trigger", "perl/5.40.0-6", "--trigger", "glibc/2.40-1"],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(
        statuses(&run),
        ["amd64 perl/5.40.0-6 pass", "amd64 glibc/2.40-1 pending"]
    );
    let damaged = &run.json()["damaged"];
    assert_eq!(damaged.as_array().unwrap().len(), 1, "{damaged}");
    assert_eq!(damaged[0]["run_id"], "20261102_100000_ffff2");
    assert!(run.stderr.contains("damaged result"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"));
}

/// Regression: against a server that ignores `marker`, poll re-requested
/// the same page forever, adding its names again each time.
#[test]
fn poll_ends_against_a_server_that_ignores_the_listing_marker() {
    let ctx = TestContext::new();
    let swift = Swift::start(fixture_swift(&ctx), 1000);
    swift.ignore_marker();
    let started = std::time::Instant::now();
    let run = poll(&ctx, &swift.url(), "multi", &["--trigger", "glibc/2.40-1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(statuses(&run), ["amd64 glibc/2.40-1 pass"]);
    assert_eq!(
        swift.requests().len(),
        2,
        "a page, then the same page again, which brings nothing new"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn poll_retries_unavailable_swift_and_reads_file_urls_alike() {
    let ctx = TestContext::new();
    let tree = fixture_swift(&ctx);
    let swift = Swift::start(tree.clone(), 1000);
    swift.fail_listings(2);
    let run = poll(&ctx, &swift.url(), "multi", &["--trigger", "glibc/2.40-1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(swift.requests().len(), 4, "two 503s, a page, an empty page");

    // Gateways in front of Swift answer 502 and 504 under load: retried
    // alike.
    let swift = Swift::start(tree.clone(), 1000);
    swift.fail_listings_with(&["502 Bad Gateway", "504 Gateway Timeout"]);
    let run = poll(&ctx, &swift.url(), "multi", &["--trigger", "glibc/2.40-1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        statuses(&run),
        ["amd64 glibc/2.40-1 pass"],
        "the poll read the runs after the retries"
    );
    assert_eq!(
        swift.requests().len(),
        4,
        "a 502, a 504, a page, an empty page"
    );
    // Retries are bounded: four attempts, then the last answer is the error.
    let swift = Swift::start(tree.clone(), 1000);
    swift.fail_listings(4);
    poll(&ctx, &swift.url(), "multi", &["--trigger", "glibc/2.40-1"]).fails(1, "HTTP 503");
    assert_eq!(swift.requests().len(), 4);

    let file_url = format!("file://{}", tree.display());
    for (package, code) in [
        ("passpkg", 0),
        ("failpkg", 1),
        ("tmpfailpkg", 4),
        ("nothing", 4),
    ] {
        assert_eq!(
            poll(&ctx, &file_url, package, &["--trigger", "glibc/2.40-1"]).code,
            code,
            "{package}"
        );
    }
    let run = poll(&ctx, &file_url, "corrupt", &["--trigger", "perl/5.40.0-6"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("damaged result"), "{}", run.stderr);

    // --wait gives up after --timeout, still pending.
    let started = Instant::now();
    let run = poll(
        &ctx,
        &file_url,
        "nothing",
        &["--wait", "--timeout", "1s", "--interval", "200ms"],
    );
    assert_eq!(run.code, 4);
    assert!(started.elapsed() < Duration::from_secs(20));
}

// ---------------------------------------------------------------------------
// The embedded loop: spool → worker → file:// results → poll.
// ---------------------------------------------------------------------------

fn runs_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                if e.file_name().to_string_lossy().ends_with('@') {
                    out.push(e.path());
                } else {
                    stack.push(e.path());
                }
            }
        }
    }
    out
}

fn spooled(ctx: &TestContext) -> usize {
    let mut n = 0;
    if let Ok(queues) = std::fs::read_dir(ctx.root.join("spool")) {
        for q in queues.flatten() {
            if q.file_name().to_string_lossy().starts_with("debci-") {
                n += std::fs::read_dir(q.path()).unwrap().count();
            }
        }
    }
    n
}

#[test]
fn spool_worker_poll_loop_passes_and_fails() {
    let ctx = TestContext::new();
    let submit = |pkg: &str| {
        ctx.depot(&[
            "test",
            "submit",
            pkg,
            "--release",
            "noble",
            "--arch",
            "amd64",
            "--trigger",
            "glibc/2.40-1",
            "--env",
            "MODE=ci",
        ])
        .ok();
    };
    let poll_local = |pkg: &str| {
        ctx.depot(&[
            "test",
            "poll",
            pkg,
            "--release",
            "noble",
            "--arch",
            "amd64",
            "--trigger",
            "glibc/2.40-1",
        ])
    };
    submit("good");
    assert_eq!(poll_local("good").code, 4, "pending before the worker ran");
    // The command sees the request and writes like autopkgtest -o does.
    let script = r#"test "$DEPOT_TEST_PACKAGE" = good && test "$ADT_TEST_TRIGGERS" = glibc/2.40-1 && test "$DEPOT_TEST_ENV" = MODE=ci || exit 4
echo "good 1.2-3" > "$DEPOT_TEST_OUTPUT/testpkg-version"
mkdir -p "$DEPOT_TEST_OUTPUT/artifacts" && echo hi > "$DEPOT_TEST_OUTPUT/artifacts/note"
echo all tests passed"#;
    let run = ctx
        .depot(&["test", "worker", "--once", "--", "sh", "-c", script])
        .ok();
    assert!(
        run.stdout.contains("good noble/amd64: pass"),
        "{}",
        run.stdout
    );
    assert_eq!(spooled(&ctx), 0, "acknowledged");
    let run = poll_local("good").ok();
    assert!(
        run.stdout.contains("pass") && run.stdout.contains("1.2-3"),
        "{}",
        run.stdout
    );

    let runs = runs_below(
        &ctx.root
            .join("results/autopkgtest-noble/noble/amd64/g/good"),
    );
    assert_eq!(runs.len(), 1);
    let name = runs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.len() == "20261122_102435_abcde@".len() && name.as_bytes()[8] == b'_',
        "{name}"
    );
    let tar = std::fs::read(runs[0].join("result.tar")).unwrap();
    let mut a = tar::Archive::new(&tar[..]);
    let members: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(
        members,
        ["exitcode", "testpkg-version", "duration", "testinfo.json"]
    );
    let mut log = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(runs[0].join("log.gz")).unwrap())
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(log, "all tests passed\n");
    let mut arts = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(runs[0].join("artifacts.tar.gz")).unwrap(),
    ));
    assert!(
        arts.entries()
            .unwrap()
            .any(|e| e.unwrap().path().unwrap().ends_with("artifacts/note"))
    );

    submit("bad");
    ctx.depot(&[
        "test",
        "worker",
        "--once",
        "--",
        "sh",
        "-c",
        "echo boom; exit 4",
    ])
    .ok();
    let run = poll_local("bad");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("fail"), "{}", run.stdout);

    // Nothing queued: --once returns at once.
    let run = ctx.depot(&["test", "worker", "--once", "--", "true"]).ok();
    assert_eq!(run.stdout, "no request queued\n");
}

/// Submits `args` to the spool and runs one worker with COMMAND `env`: the
/// submitted request (JSON of `submit`), and the variables the command saw,
/// read back from the run's `log.gz`.
fn env_seen_by_worker(
    ctx: &TestContext,
    args: &[&str],
) -> (
    serde_json::Value,
    std::collections::BTreeMap<String, String>,
) {
    let mut submit = vec![
        "test",
        "submit",
        "hello",
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--output-format",
        "json",
    ];
    submit.extend(args);
    let submitted = ctx.depot(&submit).ok().json()[0].clone();
    let worked = ctx
        .depot(&[
            "test",
            "worker",
            "--once",
            "--output-format",
            "json",
            "--",
            "env",
        ])
        .ok()
        .json();
    let run = Path::new(worked["runs"][0]["path"].as_str().unwrap()).to_owned();
    let mut log = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(run.join("log.gz")).unwrap())
        .read_to_string(&mut log)
        .unwrap();
    let vars = log
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (submitted, vars)
}

#[test]
fn the_worker_exposes_every_request_field_to_the_command() {
    let ctx = TestContext::new();
    let (submitted, vars) = env_seen_by_worker(
        &ctx,
        &[
            "--trigger",
            "glibc/2.40-1",
            "--trigger",
            "hello/1.0-2",
            "--ppa",
            "alice/tools",
            "--ppa",
            "bob/extra",
            "--env",
            "MODE=ci",
            "--test-git",
            "https://git.example.org/hello.git",
            "main",
            "--testname",
            "smoke",
            "--all-proposed",
            "--requester",
            "carol",
        ],
    );
    let var = |k: &str| vars.get(k).map(String::as_str);
    for (k, v) in [
        ("DEPOT_TEST_PACKAGE", "hello"),
        ("DEPOT_TEST_RELEASE", "noble"),
        ("DEPOT_TEST_ARCH", "amd64"),
        ("DEPOT_TEST_QUEUE", "debci-noble-amd64"),
        ("DEPOT_TEST_ID", submitted["id"].as_str().unwrap()),
        ("DEPOT_TEST_TRIGGERS", "glibc/2.40-1 hello/1.0-2"),
        ("ADT_TEST_TRIGGERS", "glibc/2.40-1 hello/1.0-2"),
        ("DEPOT_TEST_PPAS", "alice/tools bob/extra"),
        ("DEPOT_TEST_ENV", "MODE=ci"),
        ("DEPOT_TEST_GIT", "https://git.example.org/hello.git main"),
        ("DEPOT_TEST_NAME", "smoke"),
        ("DEPOT_TEST_ALL_PROPOSED", "1"),
    ] {
        assert_eq!(var(k), Some(v), "{k} in {vars:#?}");
    }
    // The whole request, requester and submit time included, as JSON.
    let body = submitted["body"].as_str().unwrap();
    let (_, json) = body.split_once('\n').unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(var("DEPOT_TEST_REQUEST").unwrap()).unwrap(),
        serde_json::from_str::<serde_json::Value>(json).unwrap()
    );
    assert!(json.contains("\"requester\":\"carol\""), "{json}");
    assert!(
        var("DEPOT_TEST_OUTPUT").is_some_and(|d| d.ends_with("/out")),
        "{vars:#?}"
    );
    // The request's env reaches the runner, never the host command's own
    // environment; absent fields are absent variables.
    for k in ["MODE", "DEPOT_TEST_BUILD_GIT", "DEPOT_TEST_BZR"] {
        assert_eq!(var(k), None, "{k}");
    }

    let (_, vars) = env_seen_by_worker(
        &ctx,
        &[
            "--build-git",
            "https://git.example.org/hello.git#v1.0",
            "--queue-kind",
            "upstream",
        ],
    );
    let var = |k: &str| vars.get(k).map(String::as_str);
    assert_eq!(
        var("DEPOT_TEST_BUILD_GIT"),
        Some("https://git.example.org/hello.git#v1.0")
    );
    assert_eq!(var("DEPOT_TEST_QUEUE"), Some("debci-upstream-noble-amd64"));
    assert_eq!(var("DEPOT_TEST_PPAS"), Some(""));
    for k in [
        "DEPOT_TEST_GIT",
        "DEPOT_TEST_ALL_PROPOSED",
        "DEPOT_TEST_NAME",
    ] {
        assert_eq!(var(k), None, "{k}");
    }

    let (_, vars) = env_seen_by_worker(&ctx, &["--test-bzr", "lp:hello"]);
    assert_eq!(
        vars.get("DEPOT_TEST_BZR").map(String::as_str),
        Some("lp:hello")
    );
}

#[test]
fn poll_private_lists_the_private_container() {
    let ctx = TestContext::new();
    let submit = |extra: &[&str]| {
        let mut args = vec![
            "test",
            "submit",
            "hello",
            "--release",
            "noble",
            "--arch",
            "amd64",
            "--trigger",
            "glibc/2.40-1",
            "--swiftuser",
            "alice",
            "--readable-by",
            "bob",
        ];
        args.extend(extra);
        ctx.depot(&args).ok();
        ctx.depot(&["test", "worker", "--once", "--", "true"]).ok();
    };
    submit(&[]);
    submit(&["--ppa", "alice/tools"]);
    let results = ctx.root.join("results");
    let mut containers: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    containers.sort();
    assert_eq!(
        containers,
        [
            "private-autopkgtest-noble",
            "private-autopkgtest-noble-alice-tools"
        ]
    );

    let swift = Swift::start(results, 1000);
    let url = swift.url();
    let g = ["--trigger", "glibc/2.40-1"];
    let run = poll(&ctx, &url, "hello", &[&g[..], &["--private"]].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(statuses(&run), ["amd64 glibc/2.40-1 pass"]);
    assert_eq!(run.json()["container"], "private-autopkgtest-noble");
    assert!(
        run.json()["rows"][0]["log_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "{url}/private-autopkgtest-noble/noble/amd64/h/hello/"
            )),
        "{}",
        run.stdout
    );
    let listings = swift.requests();
    assert!(
        !listings.is_empty()
            && listings
                .iter()
                .all(|r| r.starts_with("private-autopkgtest-noble?")),
        "{listings:?}"
    );
    // The last PPA names the private container too.
    let run = poll(
        &ctx,
        &url,
        "hello",
        &[&g[..], &["--private", "--ppa", "alice/tools"]].concat(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        swift
            .requests()
            .last()
            .unwrap()
            .starts_with("private-autopkgtest-noble-alice-tools?"),
        "{:?}",
        swift.requests()
    );
    // Without --private, the public container is listed: nothing there.
    let run = poll(&ctx, &url, "hello", &g);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        swift
            .requests()
            .last()
            .unwrap()
            .starts_with("autopkgtest-noble?"),
        "{:?}",
        swift.requests()
    );
}

#[test]
fn poll_wait_keeps_polling_until_the_result_arrives() {
    let ctx = TestContext::new();
    ctx.depot(&[
        "test",
        "submit",
        "hello",
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--trigger",
        "glibc/2.40-1",
    ])
    .ok();
    let results = ctx.root.join("results");
    std::fs::create_dir_all(&results).unwrap();
    let swift = Swift::start(results, 1000);
    let poller = ctx
        .command()
        .args([
            "test",
            "poll",
            "hello",
            "--release",
            "noble",
            "--arch",
            "amd64",
            "--trigger",
            "glibc/2.40-1",
            "--results",
            &swift.url(),
            "--wait",
            "--interval",
            "100ms",
            "--timeout",
            "60s",
            "--output-format",
            "json",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Two polls found nothing (the container does not exist yet) and the
    // poller is still waiting; only then does the worker run.
    let deadline = Instant::now() + Duration::from_secs(30);
    while swift.requests().len() < 2 {
        assert!(Instant::now() < deadline, "the poller stopped polling");
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.depot(&["test", "worker", "--once", "--", "true"]).ok();
    let out = poller.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["verdict"], "passed");
    assert_eq!(report["rows"][0]["status"], "pass");
    assert!(
        swift.requests().len() >= 3,
        "polled before and after the result: {:?}",
        swift.requests()
    );
}

#[test]
fn killing_the_worker_mid_run_leaves_the_request_queued() {
    let ctx = TestContext::new();
    ctx.depot(&[
        "test",
        "submit",
        "hello",
        "--release",
        "noble",
        "--arch",
        "amd64",
    ])
    .ok();
    let mark = ctx.dir.path().join("started");
    let mut worker = ctx
        .command()
        .args(["test", "worker", "--once", "--", "sh", "-c"])
        .arg(format!("touch {}; sleep 5", mark.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "the test command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(spooled(&ctx), 1, "the request is still queued");
    assert!(
        runs_below(&ctx.root.join("results")).is_empty(),
        "no partial result"
    );
    // The next worker takes it (the killed one's lock died with it).
    let run = ctx.depot(&["test", "worker", "--once", "--", "true"]).ok();
    assert!(
        run.stdout.contains("hello noble/amd64: pass"),
        "{}",
        run.stdout
    );
    assert_eq!(spooled(&ctx), 0);
}

#[test]
fn amqp_worker_acks_after_storing_and_rejects_malformed_messages() {
    let ctx = TestContext::new();
    let broker = Broker::connect();
    let rel = unique_release();
    let url = amqp_url();
    let queue = format!("debci-{rel}-amd64");
    broker.publish_raw(&queue, b"hello {\"triggers\": []}");
    ctx.depot(&[
        "test",
        "submit",
        "hello",
        "--release",
        &rel,
        "--arch",
        "amd64",
        "--trigger",
        "glibc/2.40-1",
        "--broker",
        &url,
    ])
    .ok();
    let run = ctx
        .depot(&[
            "test",
            "worker",
            "--broker",
            &url,
            "--release",
            &rel,
            "--arch",
            "amd64",
            "--once",
            "--",
            "true",
        ])
        .ok();
    assert!(run.stderr.contains("rejected request"), "{}", run.stderr);
    assert!(run.stdout.contains("hello"), "{}", run.stdout);
    assert_eq!(
        broker.count(&queue),
        0,
        "acked, and the malformed one not requeued"
    );
    for kind in ["huge-", "ppa-", "upstream-"] {
        broker.count(&format!("debci-{kind}{rel}-amd64"));
    }
    let run = ctx.depot(&[
        "test",
        "poll",
        "hello",
        "--release",
        &rel,
        "--arch",
        "amd64",
        "--trigger",
        "glibc/2.40-1",
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

/// Snapshots `s1` and `s2` of the apt fixture's two states (alpha 1.0-1 →
/// 1.1-1, delta removed, epsilon new; beta depends on alpha).
fn plan_snapshots(ctx: &TestContext) {
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &["--policy", "on-demand"]);
    ctx.depot(&["mirror", "update", "m"]).ok();
    ctx.depot(&["snapshot", "create", "s1", "--mirror", "m"])
        .ok();
    ctx.serve_apt("state2", "up");
    ctx.depot(&["mirror", "update", "m"]).ok();
    ctx.depot(&["snapshot", "create", "s2", "--mirror", "m"])
        .ok();
}

/// `depot test plan FROM TO` as (triggers, `PACKAGE ARCH TRIGGER` lines).
fn planned(ctx: &TestContext, from: &str, to: &str) -> (serde_json::Value, Vec<String>) {
    let plan = ctx
        .depot(&["test", "plan", from, to, "--output-format", "json"])
        .ok()
        .json();
    let tests = plan["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {} {}",
                t["package"].as_str().unwrap(),
                t["arch"].as_str().unwrap(),
                t["trigger"].as_str().unwrap()
            )
        })
        .collect();
    (plan["triggers"].clone(), tests)
}

#[test]
fn plan_requests_tests_of_changed_packages_and_their_reverse_dependencies() {
    let ctx = TestContext::new();
    plan_snapshots(&ctx);
    let (triggers, tests) = planned(&ctx, "s1", "s2");
    assert_eq!(
        ctx.depot(&["test", "plan", "s1", "s2", "--output-format", "json"])
            .ok()
            .json()["release"],
        "stable"
    );
    assert_eq!(
        triggers,
        serde_json::json!(["alpha/1.1-1", "epsilon/3.0-1"])
    );
    // beta depends on alpha: it is tested against the new alpha.
    assert_eq!(
        tests,
        [
            "alpha amd64 alpha/1.1-1",
            "beta amd64 alpha/1.1-1",
            "epsilon amd64 epsilon/3.0-1"
        ]
    );
    assert_eq!(
        ctx.depot(&["test", "plan", "s1", "s1"])
            .ok()
            .stdout
            .lines()
            .count(),
        1
    );

    let out = ctx
        .depot(&[
            "test",
            "plan",
            "s1",
            "s2",
            "--submit",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(out.as_array().unwrap().len(), 3);
    assert_eq!(spooled(&ctx), 3);
    let (name, p) = parse_like_worker(out[1]["body"].as_str().unwrap().as_bytes());
    assert_eq!(
        (name.as_str(), strings(&p["triggers"])),
        ("beta", vec!["alpha/1.1-1"])
    );
}

/// Regression: `test plan` loaded apt snapshots only, so two releases (or a
/// snapshot and a release) could not be planned at all.
#[test]
fn plan_takes_releases_as_well_as_snapshots_and_refuses_rpm() {
    let ctx = TestContext::new();
    plan_snapshots(&ctx);
    ctx.depot(&["release", "create", "r1", "--from", "s1"]).ok();
    ctx.depot(&["release", "create", "r2", "--from", "s2"]).ok();
    let want = [
        "alpha amd64 alpha/1.1-1",
        "beta amd64 alpha/1.1-1",
        "epsilon amd64 epsilon/3.0-1",
    ];
    for (from, to) in [("r1", "r2"), ("s1", "r2"), ("r1", "s2")] {
        let (triggers, tests) = planned(&ctx, from, to);
        assert_eq!(
            triggers,
            serde_json::json!(["alpha/1.1-1", "epsilon/3.0-1"]),
            "{from} → {to}"
        );
        assert_eq!(tests, want, "{from} → {to}");
    }
    // A release keeping only some stanzas of an index blob (epsilon
    // filtered out) is read as it is, not as the whole blob.
    ctx.depot(&["snapshot", "filter", "s2", "s2ab", "alpha | beta"])
        .ok();
    ctx.depot(&["release", "create", "r2ab", "--from", "s2ab"])
        .ok();
    let (triggers, tests) = planned(&ctx, "r1", "r2ab");
    assert_eq!(triggers, serde_json::json!(["alpha/1.1-1"]));
    assert_eq!(tests, ["alpha amd64 alpha/1.1-1", "beta amd64 alpha/1.1-1"]);
    // Nothing changed between a snapshot and the release made of it.
    let (triggers, tests) = planned(&ctx, "s2", "r2");
    assert_eq!((triggers, tests.len()), (serde_json::json!([]), 0));
    // --submit queues what a release plan names.
    let out = ctx
        .depot(&[
            "test",
            "plan",
            "r1",
            "r2",
            "--submit",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(out.as_array().unwrap().len(), 3);
    assert_eq!(spooled(&ctx), 3);

    // rpm content has no autopkgtest tests: refused, naming it, as a
    // usage error, and nothing is queued.
    let url = ctx.serve_rpm("state1", "rpmup");
    ctx.rpm_mirror("rm", &url, &[]);
    ctx.depot(&["mirror", "update", "rm"]).ok();
    ctx.depot(&["snapshot", "create", "rs1", "--mirror", "rm"])
        .ok();
    ctx.serve_rpm("state2", "rpmup");
    ctx.depot(&["mirror", "update", "rm"]).ok();
    ctx.depot(&["snapshot", "create", "rs2", "--mirror", "rm"])
        .ok();
    ctx.depot(&["release", "create", "rr2", "--from", "rs2"])
        .ok();
    ctx.depot(&["test", "plan", "rs1", "rr2", "--submit"])
        .fails(2, "snapshot `rs1` holds rpm packages");
    ctx.depot(&["test", "plan", "s1", "rr2"])
        .fails(2, "release `rr2` holds rpm packages");
    assert_eq!(spooled(&ctx), 3);
    ctx.depot(&["test", "plan", "s1", "nosuch"])
        .fails(1, "no snapshot or release named `nosuch`");
}

/// Reverse dependencies are resolved as dependencies are: through
/// `Provides`, and only where a version constraint holds; a binNMU
/// triggers its source's version, not its own.
#[test]
fn plan_resolves_reverse_dependencies_through_provides_and_versions() {
    use crate::release::{build_deb, repo_with};
    let ctx = TestContext::new();
    let dir = ctx.dir.path();
    let common = |dir: &Path| {
        vec![
            build_deb(dir, "app", "1.0", "amd64", "Depends: libfoo1 (>= 1.0)\n"),
            build_deb(dir, "plugin", "1.0", "amd64", "Depends: foo-api\n"),
            build_deb(dir, "legacy", "1.0", "amd64", "Depends: libfoo1 (<< 1.0)\n"),
            build_deb(dir, "unrelated", "1.0", "amd64", ""),
        ]
    };
    let (old, new) = (dir.join("old"), dir.join("new"));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    let mut debs = common(&old);
    debs.push(build_deb(
        &old,
        "libfoo1",
        "1.0-1",
        "amd64",
        "Source: foo\nProvides: foo-api\n",
    ));
    repo_with(&ctx, "old", &debs);
    let mut debs = common(&new);
    debs.push(build_deb(
        &new,
        "libfoo1",
        "1.0-1+b1",
        "amd64",
        "Source: foo (1.0-1)\nProvides: foo-api\n",
    ));
    repo_with(&ctx, "new", &debs);
    ctx.depot(&["release", "create", "relold", "--from", "old"])
        .ok();
    ctx.depot(&["release", "create", "relnew", "--from", "new"])
        .ok();
    let (triggers, tests) = planned(&ctx, "relold", "relnew");
    assert_eq!(triggers, serde_json::json!(["foo/1.0-1"]));
    // legacy wants libfoo1 (<< 1.0), which the new libfoo1 does not
    // satisfy; unrelated depends on nothing.
    assert_eq!(
        tests,
        [
            "app amd64 foo/1.0-1",
            "foo amd64 foo/1.0-1",
            "plugin amd64 foo/1.0-1"
        ]
    );
}

/// The benchmark behind `bench/testreq.sh` (ignored in normal runs):
/// 10,000 requests submitted to RabbitMQ on one connection with confirms,
/// and a poll of a package with 10,000 runs from the loopback Swift server.
#[test]
#[ignore = "benchmark: run bench/testreq.sh"]
fn bench_submit_and_poll() {
    use depot::testreq::Queue as _;
    let n: usize = std::env::var("DEPOT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let broker = Broker::connect();
    let rel = unique_release();
    let opts = depot::testreq::RequestOptions {
        package: "hello".into(),
        release: rel.clone(),
        archs: vec!["amd64".into()],
        triggers: vec!["glibc/2.40-1ubuntu1".into()],
        ppas: vec![],
        env: vec![],
        test_git: None,
        build_git: None,
        test_bzr: None,
        all_proposed: false,
        testname: None,
        swiftuser: None,
        readable_by: vec![],
        requester: None,
        kind: depot::testreq::QueueKind::Default,
        submit_time: jiff::Timestamp::now(),
    };
    let one = opts.build().unwrap().remove(0);
    let requests = vec![one; n];
    let queue = format!("debci-{rel}-amd64");
    broker.count(&queue);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = depot::testreq::amqp::BrokerUrl::parse(&amqp_url()).unwrap();
    let submit_secs = rt.block_on(async {
        let mut q = depot::testreq::amqp::AmqpQueue::connect(&url)
            .await
            .unwrap();
        let started = Instant::now();
        let done = q.submit(&requests).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(done.len(), n);
        secs
    });
    assert_eq!(broker.count(&queue) as usize, n);

    // n runs of one package, as a worker would have stored them.
    let tmp = tempfile::tempdir().unwrap();
    let pkg_dir = tmp.path().join("autopkgtest-noble/noble/amd64/h/hello");
    let info = serde_json::json!({"custom_environment": ["ADT_TEST_TRIGGERS=glibc/2.40-1ubuntu1"]});
    let tar = depot::testreq::results::build_result_tar(0, "hello", "1.0-1", 10, &info, 0);
    for i in 0..n {
        let d = pkg_dir.join(format!("20261101_{:06}_{:05x}@", i / 60 % 1_000_000, i));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("result.tar"), &tar).unwrap();
    }
    // Real Swift pages at 10,000 names.
    let swift = Swift::start(tmp.path().to_owned(), 10_000);
    let poll_opts = depot::testreq::PollOptions {
        package: "hello".into(),
        release: "noble".into(),
        archs: vec!["amd64".into()],
        triggers: vec!["glibc/2.40-1ubuntu1".into()],
        ppas: vec![],
        private: false,
        results: swift.url(),
        concurrency: 32,
    };
    let (poll_secs, report) = rt.block_on(async {
        let started = Instant::now();
        let r = depot::testreq::poll::poll(&poll_opts).await.unwrap();
        (started.elapsed().as_secs_f64(), r)
    });
    assert_eq!(report.runs, n);
    assert_eq!(report.rows[0].status, depot::testreq::Status::Pass);
    let cli_started = Instant::now();
    let ctx = TestContext::new();
    let run = ctx.depot(&[
        "test",
        "poll",
        "hello",
        "--release",
        "noble",
        "--arch",
        "amd64",
        "--trigger",
        "glibc/2.40-1ubuntu1",
        "--results",
        &swift.url(),
    ]);
    let cli_secs = cli_started.elapsed().as_secs_f64();
    assert_eq!(run.code, 0, "{}", run.stderr);
    println!(
        "submit: {n} requests in {submit_secs:.3} s = {:.0} requests/s (one connection, publisher confirms)",
        n as f64 / submit_secs
    );
    println!(
        "poll:   {n} results in {poll_secs:.3} s = {:.0} results/s (library); `depot test poll` {cli_secs:.3} s",
        n as f64 / poll_secs
    );
}

#[test]
fn a_long_running_amqp_worker_consumes_one_request_at_a_time() {
    let ctx = TestContext::new();
    let broker = Broker::connect();
    let rel = unique_release();
    let url = amqp_url();
    for pkg in ["one", "two"] {
        ctx.depot(&[
            "test",
            "submit",
            pkg,
            "--release",
            &rel,
            "--arch",
            "amd64",
            "--broker",
            &url,
        ])
        .ok();
    }
    let queue = format!("debci-{rel}-amd64");
    for kind in ["huge-", "ppa-", "upstream-"] {
        broker.count(&format!("debci-{kind}{rel}-amd64"));
    }
    let mut worker = ctx
        .command()
        .args([
            "test",
            "worker",
            "--broker",
            &url,
            "--release",
            &rel,
            "--arch",
            "amd64",
            "--interval",
            "200ms",
            "--",
            // Long enough that the sampling below sees the second request
            // waiting even on a loaded CI machine (0.3 s was flaky).
            "sleep",
            "1",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let results = ctx.root.join("results");
    let deadline = Instant::now() + Duration::from_secs(30);
    // While the first test runs, the second request is still queued: the
    // worker holds one message at a time (prefetch 1).
    let mut saw_one_waiting = false;
    while runs_below(&results).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the worker did not run both requests"
        );
        if runs_below(&results).is_empty() && broker.count(&queue) == 1 {
            saw_one_waiting = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert!(saw_one_waiting);
    assert_eq!(broker.count(&queue), 0);
}

#[test]
fn the_broker_url_may_come_from_the_settings_file() {
    let ctx = TestContext::new();
    let broker = Broker::connect();
    let rel = unique_release();
    // The test context points XDG_CONFIG_HOME at its temp dir.
    let config = ctx.dir.path().join("depot/config.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, format!("broker: {}\n", amqp_url())).unwrap();
    ctx.depot(&[
        "test",
        "submit",
        "hello",
        "--release",
        &rel,
        "--arch",
        "amd64",
    ])
    .ok();
    let queue = format!("debci-{rel}-amd64");
    let msg = broker.get(&queue).expect("the request reached RabbitMQ");
    assert!(msg.body.starts_with(b"hello\n"));
    assert!(!ctx.root.join("spool").join(&queue).exists());
}

// Results in OpenStack Swift: a real all-in-one Swift (scripts/swift-aio.sh,
// tempauth) on 127.0.0.1, found through `$DEPOT_TEST_SWIFT_AUTH`.

fn swift_auth_url() -> String {
    std::env::var("DEPOT_TEST_SWIFT_AUTH")
        .unwrap_or_else(|_| "http://127.0.0.1:8080/auth/v1.0".to_owned())
}

/// The tempauth users of scripts/swift-aio.sh: `test:tester` owns the
/// account the worker writes; `tester2` and `tester3` are granted private
/// runs by name (`*:tester2`).
const TESTER: (&str, &str) = ("test:tester", "testing");
const TESTER2: (&str, &str) = ("test2:tester2", "testing2");
const TESTER3: (&str, &str) = ("test3:tester3", "testing3");

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A token and the account URL of `user`, straight from tempauth.
fn swift_login((user, key): (&str, &str)) -> (String, String) {
    let rt = runtime();
    rt.block_on(async {
        let resp = http_client()
            .get(swift_auth_url())
            .header("X-Auth-User", user)
            .header("X-Auth-Key", key)
            .send()
            .await
            .expect("Swift must run on 127.0.0.1:8080 (bash scripts/swift-aio.sh), or set DEPOT_TEST_SWIFT_AUTH");
        assert!(resp.status().is_success(), "{user}: {}", resp.status());
        let header = |n| resp.headers()[n].to_str().unwrap().to_owned();
        (header("x-auth-token"), header("x-storage-url"))
    })
}

/// `swift+http://…/v1/AUTH_test`: the worker's account.
fn swift_results_url() -> String {
    format!("swift+{}", swift_login(TESTER).1)
}

/// `depot` with the credentials of `user` only (none: anonymous), whatever
/// the calling environment holds.
fn depot_as(ctx: &TestContext, user: Option<(&str, &str)>) -> std::process::Command {
    let mut cmd = ctx.command();
    for var in [
        "ST_AUTH",
        "ST_USER",
        "ST_KEY",
        "OS_AUTH_URL",
        "OS_USERNAME",
        "OS_PASSWORD",
        "OS_PROJECT_NAME",
        "OS_USER_DOMAIN_NAME",
        "OS_PROJECT_DOMAIN_NAME",
        "DEPOT_RESULTS",
    ] {
        cmd.env_remove(var);
    }
    if let Some((u, k)) = user {
        cmd.env("ST_AUTH", swift_auth_url())
            .env("ST_USER", u)
            .env("ST_KEY", k);
    }
    cmd
}

fn run_as(ctx: &TestContext, user: Option<(&str, &str)>, args: &[&str]) -> crate::support::Run {
    crate::support::Run::from_output(depot_as(ctx, user).args(args).output().unwrap())
}

/// `test worker --once --results RESULTS -- sh -c SCRIPT` as `user`.
fn worker_once(
    ctx: &TestContext,
    user: Option<(&str, &str)>,
    results: &str,
    script: &str,
) -> crate::support::Run {
    run_as(
        ctx,
        user,
        &[
            "test",
            "worker",
            "--once",
            "--results",
            results,
            "--",
            "sh",
            "-c",
            script,
        ],
    )
}

/// Swift's listing of `container` below `prefix` (no delimiter): every
/// object name, as `user` may see it; `None` when refused (403). A 401
/// logs in again: a parallel test revokes every token (the renewal test).
fn swift_objects(user: (&str, &str), container: &str, prefix: &str) -> Option<Vec<String>> {
    static ACCOUNT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let account = ACCOUNT.get_or_init(|| swift_login(TESTER).1);
    for _ in 0..3 {
        let (token, _) = swift_login(user);
        let (status, body) = runtime().block_on(async {
            let resp = http_client()
                .get(format!("{account}/{container}?prefix={prefix}"))
                .header("X-Auth-Token", token)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        });
        match status {
            200 => return Some(body.lines().map(str::to_owned).collect()),
            204 | 404 => return Some(Vec::new()),
            403 => return None,
            401 => continue,
            other => panic!("listing {container}: HTTP {other}"),
        }
    }
    panic!("listing {container}: the token was refused thrice")
}

fn submit_spooled(ctx: &TestContext, pkg: &str, rel: &str, extra: &[&str]) {
    let mut args = vec![
        "test",
        "submit",
        pkg,
        "--release",
        rel,
        "--arch",
        "amd64",
        "--trigger",
    ];
    let trigger = format!("{pkg}/1.0");
    args.push(&trigger);
    args.extend_from_slice(extra);
    ctx.depot(&args).ok();
}

/// The worker's test command: passes for packages named `good*`, fails
/// otherwise, and says which version it tested as autopkgtest does.
const PASS_GOOD: &str = r#"echo "$DEPOT_TEST_PACKAGE 1.0" > "$DEPOT_TEST_OUTPUT/testpkg-version"
echo "log of $DEPOT_TEST_PACKAGE"
case "$DEPOT_TEST_PACKAGE" in good*) exit 0 ;; *) exit 4 ;; esac"#;

fn poll_swift(
    ctx: &TestContext,
    user: Option<(&str, &str)>,
    results: &str,
    pkg: &str,
    rel: &str,
    private: bool,
) -> crate::support::Run {
    let trigger = format!("{pkg}/1.0");
    let mut args = vec![
        "--output-format",
        "json",
        "test",
        "poll",
        pkg,
        "--release",
        rel,
        "--arch",
        "amd64",
        "--trigger",
        &trigger,
        "--results",
        results,
    ];
    if private {
        args.push("--private");
    }
    run_as(ctx, user, &args)
}

#[test]
fn a_swift_worker_uploads_a_pass_and_a_fail_and_poll_reads_them_back() {
    let ctx = TestContext::new();
    let rel = unique_release();
    let results = swift_results_url();
    submit_spooled(&ctx, "goodpkg", &rel, &[]);
    submit_spooled(&ctx, "libbad", &rel, &[]);
    submit_spooled(
        &ctx,
        "goodppa",
        &rel,
        &["--ppa", "joe/one", "--ppa", "ci/tools"],
    );
    assert_eq!(
        poll_swift(&ctx, Some(TESTER), &results, "goodpkg", &rel, false).code,
        4,
        "pending before the worker ran (the container does not exist yet)"
    );
    for _ in 0..3 {
        let run = worker_once(&ctx, Some(TESTER), &results, PASS_GOOD).ok();
        assert!(
            run.stdout.contains("/v1/AUTH_test/autopkgtest-"),
            "{}",
            run.stdout
        );
    }
    assert_eq!(spooled(&ctx), 0, "all acknowledged");
    // The last PPA names the container.
    let ppa = swift_objects(TESTER, &format!("autopkgtest-{rel}-ci-tools"), "").unwrap();
    assert_eq!(ppa.len(), 3, "{ppa:?}");
    assert!(
        ppa[0].starts_with(&format!("{rel}/amd64/g/goodppa/")),
        "{ppa:?}"
    );

    let container = format!("autopkgtest-{rel}");
    let objects = swift_objects(TESTER, &container, "").unwrap();
    assert_eq!(objects.len(), 6, "{objects:?}");
    for (pkg, dir) in [("goodpkg", "g/goodpkg"), ("libbad", "libb/libbad")] {
        let prefix = format!("{rel}/amd64/{dir}/");
        let mine: Vec<&String> = objects.iter().filter(|o| o.starts_with(&prefix)).collect();
        let names: BTreeSet<&str> = mine.iter().map(|o| o.rsplit('/').next().unwrap()).collect();
        assert_eq!(
            names,
            BTreeSet::from(["artifacts.tar.gz", "log.gz", "result.tar"]),
            "{pkg}: {mine:?}"
        );
        let run_id = mine[0][prefix.len()..].split('/').next().unwrap();
        assert!(
            run_id.len() == "20261122_102435_abcde@".len() && run_id.ends_with('@'),
            "{run_id}"
        );
    }

    // Read back through the listing API, with the worker's credentials and
    // anonymously (public results containers are world-readable, as
    // britney expects).
    let good = poll_swift(&ctx, Some(TESTER), &results, "goodpkg", &rel, false).ok();
    assert_eq!(good.json()["rows"][0]["status"], "pass", "{}", good.stdout);
    assert_eq!(good.json()["rows"][0]["version"], "1.0");
    let anonymous = results.trim_start_matches("swift+");
    let good = poll_swift(&ctx, None, anonymous, "goodpkg", &rel, false).ok();
    assert_eq!(good.json()["rows"][0]["status"], "pass");
    let bad = poll_swift(&ctx, Some(TESTER), &results, "libbad", &rel, false);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert_eq!(bad.json()["rows"][0]["status"], "fail");
    let log_url = bad.json()["rows"][0]["log_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = runtime().block_on(async {
        http_client()
            .get(&log_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    let mut text = String::new();
    flate2::read::GzDecoder::new(&log[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "log of libbad\n");
}

#[test]
fn a_private_swift_run_is_readable_only_with_its_credentials() {
    let ctx = TestContext::new();
    let rel = unique_release();
    let results = swift_results_url();
    let anonymous = results.trim_start_matches("swift+").to_owned();
    submit_spooled(&ctx, "goodsecret", &rel, &["--swiftuser", "tester2"]);
    let worker = |ctx: &TestContext| {
        let mut cmd = depot_as(ctx, Some(TESTER));
        let out = cmd
            .env("RUST_LOG", "debug")
            .args([
                "test",
                "worker",
                "--once",
                "--results",
                &results,
                "--",
                "sh",
                "-c",
                PASS_GOOD,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let log = worker(&ctx);
    assert!(
        !log.contains("testing") && !log.contains("AUTH_tk"),
        "a key or token in the worker's log:\n{log}"
    );
    let private = format!("private-autopkgtest-{rel}");
    assert_eq!(swift_objects(TESTER, &private, "").unwrap().len(), 3);
    assert_eq!(
        swift_objects(TESTER, &format!("autopkgtest-{rel}"), "").unwrap(),
        Vec::<String>::new(),
        "nothing in the public container"
    );

    // Without credentials nothing is visible: still pending.
    let run = poll_swift(&ctx, None, &anonymous, "goodsecret", &rel, true);
    assert_eq!(run.code, 4, "{}", run.stderr);
    // Another user is refused; Swift does not tell it whether the
    // container exists, so that is still pending, with a warning.
    poll_swift(&ctx, Some(TESTER3), &results, "goodsecret", &rel, true).fails(4, "HTTP 403");
    assert!(swift_objects(TESTER3, &private, "").is_none());
    // The swiftuser reads it.
    let run = poll_swift(&ctx, Some(TESTER2), &results, "goodsecret", &rel, true).ok();
    assert_eq!(run.json()["rows"][0]["status"], "pass");
    assert!(!run.stderr.contains("testing2"));

    // readable-by grants the container to another user.
    submit_spooled(
        &ctx,
        "goodshared",
        &rel,
        &["--swiftuser", "tester2", "--readable-by", "tester3"],
    );
    worker(&ctx);
    let run = poll_swift(&ctx, Some(TESTER3), &results, "goodshared", &rel, true).ok();
    assert_eq!(run.json()["rows"][0]["status"], "pass");
    let run = poll_swift(&ctx, Some(TESTER2), &results, "goodshared", &rel, true).ok();
    assert_eq!(run.json()["rows"][0]["status"], "pass");
}

#[test]
fn a_swift_worker_killed_mid_upload_leaves_the_request_queued_and_no_result_tar() {
    let ctx = TestContext::new();
    let rel = unique_release();
    let results = swift_results_url();
    submit_spooled(&ctx, "goodbig", &rel, &[]);
    // 48 MiB that gzip cannot shrink: the artifacts upload takes long
    // enough to be killed in, after log.gz is stored.
    let script = format!("head -c 50331648 /dev/urandom > \"$DEPOT_TEST_OUTPUT/big\"; {PASS_GOOD}");
    let mut worker = depot_as(&ctx, Some(TESTER))
        .args([
            "test",
            "worker",
            "--once",
            "--results",
            &results,
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let container = format!("autopkgtest-{rel}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let objects = loop {
        let objects = swift_objects(TESTER, &container, "").unwrap_or_default();
        if objects.iter().any(|o| o.ends_with("/log.gz")) {
            break objects;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never uploaded log.gz"
        );
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker ended before log.gz was seen"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert!(
        !objects.iter().any(|o| o.ends_with("/result.tar")),
        "killed too late: {objects:?}"
    );
    let after = swift_objects(TESTER, &container, "").unwrap();
    assert!(
        !after.iter().any(|o| o.ends_with("/result.tar")),
        "a result.tar of a killed upload: {after:?}"
    );
    assert_eq!(spooled(&ctx), 1, "the request is still queued");
    assert_eq!(
        poll_swift(&ctx, Some(TESTER), &results, "goodbig", &rel, false).code,
        4,
        "a run without result.tar is no result"
    );
    // The next worker runs it again and stores it whole.
    worker_once(&ctx, Some(TESTER), &results, PASS_GOOD).ok();
    assert_eq!(spooled(&ctx), 0);
    poll_swift(&ctx, Some(TESTER), &results, "goodbig", &rel, false).ok();
}

#[test]
fn a_swift_upload_refused_leaves_the_request_queued() {
    let ctx = TestContext::new();
    let rel = unique_release();
    submit_spooled(&ctx, "goodpkg", &rel, &[]);
    // tester3 has no write access to the worker's account.
    let run = run_as(
        &ctx,
        Some(TESTER3),
        &[
            "test",
            "worker",
            "--once",
            "--results",
            &swift_results_url(),
            "--",
            "true",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot store the result of goodpkg"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("HTTP 403"), "{}", run.stderr);
    assert_eq!(spooled(&ctx), 1, "the request is still queued");
}

#[test]
fn swift_results_urls_without_credentials_or_over_plain_http_are_usage_errors() {
    let ctx = TestContext::new();
    let results = swift_results_url();
    let run = run_as(
        &ctx,
        None,
        &[
            "test",
            "poll",
            "hello",
            "--release",
            "noble",
            "--arch",
            "amd64",
            "--results",
            &results,
        ],
    );
    run.fails(2, "needs credentials");
    let run = run_as(
        &ctx,
        Some(TESTER),
        &[
            "test",
            "poll",
            "hello",
            "--release",
            "noble",
            "--arch",
            "amd64",
            "--results",
            "swift+http://swift.example/v1/AUTH_test",
        ],
    );
    run.fails(2, "loopback");
    // A worker refuses an anonymous Swift URL before taking a request.
    let run = run_as(
        &ctx,
        Some(TESTER),
        &[
            "test",
            "worker",
            "--once",
            "--results",
            results.trim_start_matches("swift+"),
            "--",
            "true",
        ],
    );
    run.fails(2, "storing results needs credentials");
}

/// Empties tempauth's token cache (memcached, `$DEPOT_TEST_SWIFT_MEMCACHE`,
/// else the one scripts/swift-aio.sh starts): every token is revoked, as
/// when it expires.
fn revoke_swift_tokens() {
    let addr =
        std::env::var("DEPOT_TEST_SWIFT_MEMCACHE").unwrap_or_else(|_| "127.0.0.1:11311".to_owned());
    let mut conn = TcpStream::connect(&addr).expect("the Swift AIO's memcached");
    conn.write_all(b"flush_all\r\n").unwrap();
    let mut reply = String::new();
    BufReader::new(conn).read_line(&mut reply).unwrap();
    assert_eq!(reply.trim(), "OK");
}

#[test]
fn a_long_running_swift_worker_renews_a_revoked_token() {
    let ctx = TestContext::new();
    let rel = unique_release();
    let results = swift_results_url();
    let log = ctx.dir.path().join("worker.log");
    let mut worker = depot_as(&ctx, Some(TESTER))
        .env("RUST_LOG", "depot=debug")
        .args([
            "test",
            "worker",
            "--results",
            &results,
            "--interval",
            "100ms",
            "--",
            "sh",
            "-c",
            PASS_GOOD,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let container = format!("autopkgtest-{rel}");
    let stored = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let objects = swift_objects(TESTER, &container, "").unwrap_or_default();
            if objects
                .iter()
                .filter(|o| o.ends_with("/result.tar"))
                .count()
                == n
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "run {n} was not stored: {objects:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    submit_spooled(&ctx, "goodone", &rel, &[]);
    stored(1);
    revoke_swift_tokens();
    submit_spooled(&ctx, "goodtwo", &rel, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let objects = swift_objects(TESTER, &container, "").unwrap_or_default();
        if objects
            .iter()
            .filter(|o| o.ends_with("/result.tar"))
            .count()
            == 2
        {
            break;
        }
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker died: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(Instant::now() < deadline, "the second run was not stored");
        std::thread::sleep(Duration::from_millis(50));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        log.matches("authenticated to Swift").count(),
        2,
        "one login, one renewal:\n{log}"
    );
    assert!(log.contains("token refused; authenticating again"), "{log}");
    assert!(
        !log.contains("AUTH_tk") && !log.contains("testing"),
        "{log}"
    );
}

#[test]
fn promote_require_tests_reads_private_swift_results_with_the_polling_credentials() {
    let ctx = TestContext::new();
    ctx.apt_snapshot("m", "s");
    let version = ctx.published_version("s", "d");
    let rel = unique_release();
    let results = swift_results_url();
    let for_version = format!("d/{version}");
    submit_spooled(
        &ctx,
        "goodgate",
        &rel,
        &[
            "--swiftuser",
            "tester2",
            "--for",
            &for_version,
            "--results",
            &results,
        ],
    );
    worker_once(&ctx, Some(TESTER), &results, PASS_GOOD).ok();
    let promote = [
        "promote",
        "d",
        &version,
        "--to",
        "release",
        "--require-tests",
    ];
    run_as(&ctx, None, &promote).fails(1, "needs credentials");
    run_as(&ctx, Some(TESTER3), &promote).fails(3, "pending");
    assert!(!ctx.root.join("public/d/release").exists());
    run_as(&ctx, Some(TESTER2), &promote).ok();
    assert_eq!(
        std::fs::read_link(ctx.root.join("public/d/release"))
            .unwrap()
            .to_str()
            .unwrap(),
        version
    );
}

#[test]
fn a_refused_swift_upload_leaves_the_amqp_request_queued() {
    let ctx = TestContext::new();
    let broker = Broker::connect();
    let rel = unique_release();
    let url = amqp_url();
    ctx.depot(&[
        "test",
        "submit",
        "goodpkg",
        "--release",
        &rel,
        "--arch",
        "amd64",
        "--broker",
        &url,
    ])
    .ok();
    let queue = format!("debci-{rel}-amd64");
    for kind in ["huge-", "ppa-", "upstream-"] {
        broker.count(&format!("debci-{kind}{rel}-amd64"));
    }
    // tester3 authenticates but may not write the worker's account.
    let run = run_as(
        &ctx,
        Some(TESTER3),
        &[
            "test",
            "worker",
            "--once",
            "--broker",
            &url,
            "--release",
            &rel,
            "--arch",
            "amd64",
            "--results",
            &swift_results_url(),
            "--",
            "true",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("HTTP 403"), "{}", run.stderr);
    // The broker requeues an unacknowledged message once it sees the
    // worker's connection close, a moment after the process exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.count(&queue) != 1 {
        assert!(
            Instant::now() < deadline,
            "not acknowledged, so back on the queue"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // With the account's own credentials the same request is stored and
    // acknowledged.
    let run = run_as(
        &ctx,
        Some(TESTER),
        &[
            "test",
            "worker",
            "--once",
            "--broker",
            &url,
            "--release",
            &rel,
            "--arch",
            "amd64",
            "--results",
            &swift_results_url(),
            "--",
            "sh",
            "-c",
            PASS_GOOD,
        ],
    )
    .ok();
    assert!(run.stdout.contains("goodpkg"), "{}", run.stdout);
    assert_eq!(broker.count(&queue), 0);
    assert_eq!(
        swift_objects(TESTER, &format!("autopkgtest-{rel}"), "")
            .unwrap()
            .len(),
        3
    );
}
