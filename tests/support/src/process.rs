//! Child processes of a test: the `cairn` binary's commands and `cairn admin`. A [`Proc`]
//! collects its stdout lines, sends its stderr to a log file and is SIGKILLed by its own PID
//! when the test lets go of it, so no process outlives its test.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn::client::{Auth, Client, Credentials, Endpoint, Request};
use http::{Method, StatusCode};

/// How long a process may take to print its address and answer its health check.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two looks at a process that is starting or stopping.
const POLL: Duration = Duration::from_millis(20);
/// The largest body a health or statistics request reads.
const MAX_STATUS_BODY: usize = 1 << 20;

/// The `cairn` binary Cargo built beside the running test: `CARGO_BIN_EXE_cairn` is given only
/// to the test crates themselves, and they run from `target/PROFILE/deps/`.
pub fn cairn_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_cairn") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/PROFILE/deps")
        .join("cairn");
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// A running child process.
pub struct Proc {
    name: String,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with `CAIRN_LOG=info`, its stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the process log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .env("CAIRN_LOG", "info");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        // Drains stdout for the whole life of the process so the pipe never fills.
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("stdout lock").push(line);
            }
        });
        Proc {
            name: name.to_owned(),
            child: Some(child),
            lines,
            reader: Some(reader),
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process is running").id()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything the process printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.lines.lock().expect("stdout lock").clone()
    }

    /// The log (stderr) without terminal colour codes, which would split a field's name from
    /// its value.
    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }

    /// The first stdout line starting with `prefix`, waiting for it.
    pub async fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .expect("stdout lock")
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return line.clone();
            }
            let child = self.child.as_mut().expect("process is running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "{} exited with {status} before printing {prefix:?}\n{}",
                    self.name,
                    read_log(&self.log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {prefix:?} in time\n{}",
                self.name,
                read_log(&self.log)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `GET http://ADDR/_cairn/health` until it answers 200.
    pub async fn wait_healthy(&self, addr: &str) {
        let client = plain_client(addr);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if get_text(&client, "/_cairn/health").await.is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never became healthy\n{}",
                self.name,
                read_log(&self.log)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends SIGTERM without waiting for the process to exit.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends signal `name` (`KILL`, `TERM`) without waiting for the process to exit.
    pub fn signal(&self, name: &str) {
        let pid = self.pid();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} {pid} failed");
    }

    /// Waits up to `limit` for the process to exit (after a signal), then for its stdout to
    /// reach end of file, so `stdout_lines` holds all it printed; returns its exit status.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let status = loop {
            let child = self.child.as_mut().expect("process is running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit in time",
                self.name
            );
            tokio::time::sleep(POLL).await;
        };
        self.finish_reader();
        status
    }

    /// SIGKILL (`Child::kill`), as a crash would end it, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.finish_reader();
    }

    fn finish_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A log file's text without terminal colour codes.
pub fn read_log(path: &Path) -> String {
    strip_ansi(&fs::read_to_string(path).unwrap_or_default())
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A client without credentials for `addr` (`127.0.0.1:PORT`), for the open HTTP paths and the
/// data nodes' own authentication.
pub fn plain_client(addr: &str) -> Client {
    Client::new(Endpoint {
        addr: addr.parse().expect("a socket address"),
        host: addr.to_owned(),
        region: crate::REGION.to_owned(),
        credentials: Credentials {
            access_key_id: String::new(),
            secret: String::new(),
        },
        timeout: START_TIMEOUT,
    })
}

/// The body of an unauthenticated `GET path`, if it answers 200.
pub async fn get_text(client: &Client, path: &str) -> Option<String> {
    let request = Request::new(Method::GET, path).auth(Auth::Anonymous);
    match client.fetch(request, MAX_STATUS_BODY).await {
        Ok((StatusCode::OK, _, body)) => Some(String::from_utf8_lossy(&body).into_owned()),
        _ => None,
    }
}
