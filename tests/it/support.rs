//! The test context: a temp data root, a loopback HTTP server over a copy
//! of the fixture repositories, a throwaway GnuPG home, and the real
//! `depot` binary.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copies a directory tree (files and folders; symlinks as links).
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            copy_tree(&entry.path(), &to);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

#[derive(Default)]
struct ServerState {
    log: Vec<String>,
    fail_once: HashSet<String>,
    /// Every request for a path under one of these gets a 500.
    fail_always: Vec<String>,
    /// Pause this long halfway through each body whose path ends in .deb.
    deb_stall: Option<Duration>,
    /// Stalled .deb bodies being sent now, and the most seen at once.
    debs_in_flight: usize,
    most_debs_in_flight: usize,
}

/// A minimal HTTP/1.1 static file server on 127.0.0.1 (random port), with
/// a request log and fault injection. It serves files below `root`.
pub struct Server {
    pub addr: String,
    state: Arc<Mutex<ServerState>>,
}

impl Server {
    pub fn start(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(ServerState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, st) = (root.clone(), st.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, &st);
                });
            }
        });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// The next request for `path` gets a 503.
    pub fn fail_once(&self, path: &str) {
        self.state.lock().unwrap().fail_once.insert(path.to_owned());
    }

    /// Every request for a path under `prefix` gets a 500 from now on.
    pub fn fail_always(&self, prefix: &str) {
        self.state
            .lock()
            .unwrap()
            .fail_always
            .push(prefix.to_owned());
    }

    /// Undoes [`Self::fail_always`].
    pub fn heal(&self) {
        self.state.lock().unwrap().fail_always.clear();
    }

    pub fn stall_debs(&self, d: Duration) {
        self.state.lock().unwrap().deb_stall = Some(d);
    }

    /// The most stalled .deb downloads that were in flight at once.
    pub fn most_debs_in_flight(&self) -> usize {
        self.state.lock().unwrap().most_debs_in_flight
    }
}

fn serve(stream: TcpStream, root: &Path, state: &Mutex<ServerState>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        let path = target
            .split('?')
            .next()
            .unwrap_or("")
            .trim_start_matches('/');
        let path = path
            .replace("%2B", "+")
            .replace("%2b", "+")
            .replace("%7E", "~");
        let (fail, broken, stall) = {
            let mut st = state.lock().unwrap();
            st.log.push(path.clone());
            (
                st.fail_once.remove(&path),
                st.fail_always.iter().any(|p| path.starts_with(p.as_str())),
                st.deb_stall.filter(|_| path.ends_with(".deb")),
            )
        };
        if broken {
            stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        }
        if fail {
            stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        }
        let file = root.join(&path);
        let body = if path.split('/').any(|c| c == "..") || !file.is_file() {
            None
        } else {
            let mut bytes = Vec::new();
            std::fs::File::open(&file)?.read_to_end(&mut bytes)?;
            Some(bytes)
        };
        match body {
            None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?,
            Some(bytes) => {
                stream.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len())
                        .as_bytes(),
                )?;
                if method != "HEAD" {
                    let half = bytes.len() / 2;
                    stream.write_all(&bytes[..half])?;
                    if let Some(d) = stall {
                        stream.flush()?;
                        {
                            let mut st = state.lock().unwrap();
                            st.debs_in_flight += 1;
                            st.most_debs_in_flight = st.most_debs_in_flight.max(st.debs_in_flight);
                        }
                        std::thread::sleep(d);
                        state.lock().unwrap().debs_in_flight -= 1;
                    }
                    stream.write_all(&bytes[half..])?;
                }
            }
        }
        stream.flush()?;
    }
}

/// A throwaway GnuPG home with one passphrase-less signing key.
pub struct Gpg {
    pub home: tempfile::TempDir,
    /// The public key, exported (binary), for apt's signed-by.
    pub public_key: PathBuf,
}

impl Gpg {
    pub fn new() -> Self {
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        let gpg = |args: &[&str]| {
            let out = Command::new("gpg")
                .env("GNUPGHOME", home.path())
                .args([
                    "--batch",
                    "--quiet",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                ])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "gpg {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        gpg(&[
            "--quick-gen-key",
            "depot test <test@depot.invalid>",
            "ed25519",
            "sign",
            "never",
        ]);
        let public_key = home.path().join("publisher.gpg");
        std::fs::write(&public_key, gpg(&["--export", "test@depot.invalid"])).unwrap();
        Self { home, public_key }
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "all"])
            .output();
    }
}

pub struct TestContext {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    /// Served over HTTP at `server`.
    pub www: PathBuf,
    pub server: Server,
    pub env: HashMap<String, String>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The result of a command the test ran itself.
    pub fn from_output(out: Output) -> Self {
        Self::from(out)
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Self {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "expected `{needle}` in stderr:\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

impl TestContext {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let www = dir.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        let server = Server::start(www.clone());
        Self {
            root,
            www,
            server,
            dir,
            env: HashMap::new(),
        }
    }

    /// Serves a copy of fixture tree `apt/NAME` at `/AS/`.
    pub fn serve_apt(&self, name: &str, as_: &str) -> String {
        let dst = self.www.join(as_);
        let _ = std::fs::remove_dir_all(&dst);
        copy_tree(&fixtures().join("apt").join(name), &dst);
        self.server.url(&format!("{as_}/"))
    }

    pub fn keyring(&self, name: &str) -> String {
        fixtures().join("apt/keys").join(name).display().to_string()
    }

    /// `mirror create NAME URL` for suite `stable`, `main`, `amd64`,
    /// verified with the good key unless `extra` has `--no-verify`.
    pub fn apt_mirror(&self, name: &str, url: &str, extra: &[&str]) {
        let keyring = self.keyring("good.gpg");
        let mut args = vec![
            "mirror",
            "create",
            name,
            url,
            "--kind",
            "apt",
            "--suite",
            "stable",
            "--component",
            "main",
            "--arch",
            "amd64",
        ];
        if !extra.contains(&"--no-verify") {
            args.extend(["--keyring", &keyring]);
        }
        args.extend(extra);
        self.depot(&args).ok();
    }

    /// `mirror create NAME URL --kind rpm`, verified with the rpm fixtures'
    /// good key.
    pub fn rpm_mirror(&self, name: &str, url: &str, extra: &[&str]) {
        let keyring = fixtures().join("rpm/keys/good.asc");
        let keyring = keyring.to_str().unwrap();
        let mut args = vec![
            "mirror",
            "create",
            name,
            url,
            "--kind",
            "rpm",
            "--keyring",
            keyring,
        ];
        args.extend(extra);
        self.depot(&args).ok();
    }

    /// Serves fixture `state1`, mirrors it as MIRROR and snapshots it as
    /// SNAPSHOT: the start of most tests past the mirror.
    pub fn apt_snapshot(&self, mirror: &str, snapshot: &str) {
        let url = self.serve_apt("state1", "up");
        self.apt_mirror(mirror, &url, &[]);
        self.depot(&["mirror", "update", mirror]).ok();
        self.depot(&["snapshot", "create", snapshot, "--mirror", mirror])
            .ok();
    }

    /// Serves a copy of fixture tree `rpm/NAME` at `/AS/`.
    /// Serves rpm fixture `state1` at `up/`, mirrors it as `r` and
    /// snapshots it as `snapshot`.
    pub fn rpm_snapshot(&self, snapshot: &str) {
        let url = self.serve_rpm("state1", "up");
        self.rpm_mirror("r", &url, &[]);
        self.depot(&["mirror", "update", "r"]).ok();
        self.depot(&["snapshot", "create", snapshot, "--mirror", "r"])
            .ok();
    }

    pub fn serve_rpm(&self, name: &str, as_: &str) -> String {
        let dst = self.www.join(as_);
        let _ = std::fs::remove_dir_all(&dst);
        copy_tree(&fixtures().join("rpm").join(name), &dst);
        self.server.url(&format!("{as_}/"))
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_depot"));
        cmd.arg("--root").arg(&self.root).arg("--no-progress");
        cmd.env_remove("DEPOT_ROOT")
            .env_remove("DEPOT_NOW")
            .env("XDG_CONFIG_HOME", self.dir.path());
        cmd.envs(&self.env);
        cmd
    }

    /// Starts `cmd` (a `depot serve --listen 127.0.0.1:0 …` command) and
    /// reads its "listening on URL" line: the child and its base URL,
    /// without the trailing slash.
    pub fn start_serve(mut cmd: Command) -> (std::process::Child, String) {
        let mut server = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve printed {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        (server, base)
    }

    pub fn depot(&self, args: &[&str]) -> Run {
        Run::from(self.command().args(args).output().unwrap())
    }

    /// The version `depot publish SNAPSHOT --dist DIST --skip-signing`
    /// made.
    pub fn published_version(&self, snapshot: &str, dist: &str) -> String {
        self.publish(snapshot, dist)["version"]
            .as_str()
            .expect("publish names its version")
            .to_owned()
    }

    /// `depot publish SNAPSHOT --dist DIST EXTRA…`, signed with `gpg`'s
    /// key (`test@depot.invalid`): its JSON summary.
    pub fn publish_signed(
        &self,
        gpg: &Gpg,
        snapshot: &str,
        dist: &str,
        extra: &[&str],
    ) -> serde_json::Value {
        let mut cmd = self.command();
        cmd.env("GNUPGHOME", gpg.home.path())
            .args(["publish", snapshot, "--dist", dist])
            .args(["--sign-key", "test@depot.invalid"])
            .args(["--output-format", "json"])
            .args(extra);
        Run::from_output(cmd.output().unwrap()).ok().json()
    }

    /// `depot publish SNAPSHOT --dist DIST --skip-signing`: its JSON summary.
    pub fn publish(&self, snapshot: &str, dist: &str) -> serde_json::Value {
        self.depot(&[
            "publish",
            snapshot,
            "--dist",
            dist,
            "--skip-signing",
            "--output-format",
            "json",
        ])
        .ok()
        .json()
    }

    /// Every blob in the pool, checked: its file name equals its SHA-256.
    pub fn assert_pool_consistent(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![self.root.join("pool")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    let bytes = std::fs::read(e.path()).unwrap();
                    let actual = const_hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
                    assert_eq!(
                        e.file_name().to_string_lossy(),
                        actual,
                        "{}",
                        e.path().display()
                    );
                    count += 1;
                }
            }
        }
        count
    }
}

/// A private nginx (the distribution's, as a release engineer would put
/// in front of a publish root) serving `root` on 127.0.0.1 at a random
/// port: one process keeping the test's uid, stopped on drop.
pub struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    pub base: String,
}

impl Nginx {
    pub fn start(root: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        // The port is free when asked; another process taking it before
        // nginx binds would fail the start below, loudly.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  default_type application/octet-stream;\n\
                 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
                 scgi_temp_path {d}/scgi;\n\
                 server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
                root.display()
            ),
        )
        .unwrap();
        let nginx = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|n| Command::new(n).arg("-v").output().is_ok())
            .expect("nginx is installed (apt-get install nginx)");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let this = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return this;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(this._dir.path().join("error.log")).unwrap_or_default();
        panic!("nginx did not come up on port {port}: {log}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A published version's layout, read the way a reader of the version
/// sees it: its own tree (the file list and the symlinks into the
/// distribution's generation left out), plus the package files its list
/// names, found in the generation.
pub struct VersionTree {
    /// The generation's folder, when the version has a file list.
    pub generation: Option<PathBuf>,
    /// Top-level folders that are symlinks into the generation.
    pub shared: Vec<String>,
    /// Relative path → the file a reader gets.
    pub files: std::collections::BTreeMap<String, PathBuf>,
}

impl VersionTree {
    pub fn read(dir: &Path) -> Self {
        let mut this = Self {
            generation: None,
            shared: Vec::new(),
            files: Default::default(),
        };
        if let Ok(list) = std::fs::read_to_string(dir.join(".depot-files")) {
            let mut lines = list.lines();
            assert_eq!(lines.next(), Some("depot-files 1"));
            let g = lines.next().unwrap().strip_prefix("generation ").unwrap();
            let generation = dir.parent().unwrap().join(g);
            this.shared = lines
                .next()
                .unwrap()
                .strip_prefix("shared")
                .unwrap()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            for line in lines {
                let (_, rel) = line.split_once(' ').unwrap();
                let top = rel.split('/').next().unwrap();
                if this.shared.iter().any(|s| s == top) {
                    this.files.insert(rel.to_owned(), generation.join(rel));
                }
            }
            this.generation = Some(generation);
        }
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                if rel == ".depot-files" || this.shared.contains(&rel) {
                    continue;
                }
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    this.files.insert(rel, e.path());
                }
            }
        }
        this
    }

    /// Relative path → bytes, of every file.
    pub fn contents(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        self.files
            .iter()
            .map(|(rel, path)| (rel.clone(), std::fs::read(path).unwrap()))
            .collect()
    }
}

/// Runs real `apt-get` with a private root against `sources_line`.
pub struct Apt {
    pub dir: tempfile::TempDir,
}

impl Apt {
    pub fn new(sources_line: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["etc", "state/lists/partial", "cache/archives/partial", "dl"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(
            dir.path().join("etc/sources.list"),
            format!("{sources_line}\n"),
        )
        .unwrap();
        Self { dir }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let d = self.dir.path().display();
        let opts = [
            format!("Dir::Etc::SourceList={d}/etc/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".into(),
            format!("Dir::State={d}/state"),
            format!("Dir::Cache={d}/cache"),
            "Dir::State::status=/dev/null".into(),
            "Debug::NoLocking=1".into(),
            "APT::Sandbox::User=root".into(),
            "APT::Architecture=amd64".into(),
            "Acquire::Languages=none".into(),
        ];
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(self.dir.path().join("dl"));
        for o in &opts {
            cmd.arg("-o").arg(o);
        }
        Run::from(cmd.args(args).output().unwrap())
    }
}

/// Runs real `dnf` with a private installroot against one repository.
pub struct Dnf {
    pub dir: tempfile::TempDir,
    repo_url: String,
    gpgkeys: Vec<String>,
    /// Extra `--setopt=fx.KEY=VALUE` options (TLS client certificates, …).
    pub repo_opts: Vec<String>,
}

impl Dnf {
    pub fn new(repo_url: &str, gpgkeys: &[&std::path::Path]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dnf.conf"), "[main]\n").unwrap();
        Self {
            dir,
            repo_url: repo_url.to_owned(),
            gpgkeys: gpgkeys
                .iter()
                .map(|k| format!("file://{}", k.display()))
                .collect(),
            repo_opts: Vec::new(),
        }
    }

    /// `repoquery -a` over the test repository, each package as `qf`:
    /// the output.
    pub fn query_all(&self, qf: &str) -> String {
        self.run(&["repoquery", "--repo", "fx", "-a", "--qf", qf])
            .ok()
            .stdout
    }

    /// Whether `path` (relative to `/`) is a file in the install root.
    pub fn installed(&self, path: &str) -> bool {
        self.dir.path().join("root").join(path).is_file()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let d = self.dir.path().display();
        let out = Command::new("dnf")
            .args(["-y", "-q", "--noplugins", "--releasever=1"])
            .arg(format!("--config={d}/dnf.conf"))
            .arg(format!("--installroot={d}/root"))
            .args([
                "--setopt=reposdir=/dev/null",
                &format!("--setopt=cachedir={d}/cache"),
                "--setopt=skip_if_unavailable=False",
                "--setopt=install_weak_deps=False",
                &format!("--repofrompath=fx,{}", self.repo_url),
                "--setopt=fx.gpgcheck=1",
                "--setopt=fx.repo_gpgcheck=1",
                &format!("--setopt=fx.gpgkey={}", self.gpgkeys.join(" ")),
            ])
            .args(self.repo_opts.iter().map(|o| format!("--setopt=fx.{o}")))
            .args(args)
            .output()
            .unwrap();
        Run::from(out)
    }
}

impl Drop for Dnf {
    fn drop(&mut self) {
        // dnf leaves a gpg-agent behind for its private key directory.
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("cache")) {
            for e in entries.flatten() {
                let _ = Command::new("gpgconf")
                    .arg("--homedir")
                    .arg(e.path().join("pubring"))
                    .args(["--kill", "all"])
                    .output();
            }
        }
    }
}
