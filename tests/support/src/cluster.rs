//! A cluster of one test: real `cairn datanode` and `cairn gateway` processes on 127.0.0.1:0
//! around one metadata store (`postgres::MetaDb`), driven through `cairn admin`, aws-cli and the
//! tests' S3 client. When a test fails, its directory (logs, metadata) is kept and the warnings
//! of every process are printed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::REGION;
use crate::postgres::{Backend, MetaDb};
use crate::process::{Proc, cairn_binary, get_text, plain_client, read_log};
use crate::s3::S3Client;

/// Shared by every process of a test cluster (at least 16 bytes, as the binary demands).
pub const CLUSTER_SECRET: &str = "cluster-test-secret-0123456789ab";
/// The S3 key every gateway bootstraps from its environment.
pub const KEY_ID: &str = "CAIRNCLUSTERKEY0";
pub const KEY_SECRET: &str = "cluster/Test+Secret=key";

/// Pause between two looks at a condition that background work brings about.
const POLL: Duration = Duration::from_millis(100);
/// Warning lines of each process shown when a test fails.
const LOG_TAIL: usize = 25;
/// The longest one request of a test may take (a few hundred MiB through a loaded cluster).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// One `#[tokio::test]` per backend for each case (an `async fn(Backend)` of the calling file):
/// `sqlite::CASE` and `postgres::CASE`.
#[macro_export]
macro_rules! on_sqlite_and_postgres {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case($crate::postgres::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case($crate::postgres::Backend::Postgres).await;
                }
            )*
        }
    };
}

fn cairn() -> Command {
    cairn_via(&[])
}

/// `cairn` run through `wrapper` (a command and its arguments, e.g. `ip netns exec NS`), or
/// directly when it is empty.
fn cairn_via(wrapper: &[String]) -> Command {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(cairn_binary());
            cmd
        }
        None => Command::new(cairn_binary()),
    };
    cmd.env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
        .env_remove("CAIRN_ACCESS_KEY_ID")
        .env_remove("CAIRN_SECRET_ACCESS_KEY");
    cmd
}

/// A `cairn datanode` with its data directory; it can be killed and started again on the same
/// address.
pub struct DataNode {
    pub index: usize,
    pub dir: PathBuf,
    /// `127.0.0.1:PORT`, fixed at the first start.
    pub addr: String,
    /// The node id it printed.
    pub id: String,
    capacity: Option<String>,
    /// More `cairn datanode` flags.
    flags: Vec<String>,
    /// The command `cairn` runs through (see [`NodeLaunch`]).
    wrapper: Vec<String>,
    log: PathBuf,
    proc: Option<Proc>,
}

impl DataNode {
    pub async fn start(root: &Path, index: usize, capacity: Option<&str>) -> DataNode {
        let mut node = DataNode {
            index,
            log: root.join(format!("node{index}.log")),
            dir: root.join(format!("node{index}")),
            addr: "127.0.0.1:0".to_owned(),
            id: String::new(),
            capacity: capacity.map(str::to_owned),
            flags: Vec::new(),
            wrapper: Vec::new(),
            proc: None,
        };
        node.launch().await;
        node
    }

    /// As [`DataNode::start`], run and listening as `launch` says.
    pub async fn start_via(
        root: &Path,
        index: usize,
        capacity: Option<&str>,
        launch: &NodeLaunch,
    ) -> DataNode {
        let mut node = DataNode {
            index,
            log: root.join(format!("node{index}.log")),
            dir: root.join(format!("node{index}")),
            addr: launch.listen.clone(),
            id: String::new(),
            capacity: capacity.map(str::to_owned),
            flags: Vec::new(),
            wrapper: launch.wrapper.clone(),
            proc: None,
        };
        node.launch().await;
        node
    }

    /// As [`DataNode::start`], with its data directory at `data` (e.g. on a small filesystem
    /// the test mounted; the log stays under `root`) and more flags (e.g. `--reserve`).
    pub async fn start_on(root: &Path, index: usize, data: &Path, flags: &[&str]) -> DataNode {
        let mut node = DataNode {
            index,
            log: root.join(format!("node{index}.log")),
            dir: data.to_owned(),
            addr: "127.0.0.1:0".to_owned(),
            id: String::new(),
            capacity: None,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            wrapper: Vec::new(),
            proc: None,
        };
        node.launch().await;
        node
    }

    async fn launch(&mut self) {
        let mut cmd = cairn_via(&self.wrapper);
        cmd.args(["datanode", "--listen", &self.addr, "--data"])
            .arg(&self.dir);
        if let Some(capacity) = &self.capacity {
            cmd.args(["--capacity", capacity]);
        }
        cmd.args(&self.flags);
        let name = format!("data node {}", self.index);
        let mut proc = Proc::spawn(&name, cmd, &self.log);
        let line = proc.wait_line("Cairn data node ").await;
        // "Cairn data node <uuid> listening on http://ADDR"
        let rest = line.trim_start_matches("Cairn data node ");
        let (id, addr) = rest
            .split_once(" listening on http://")
            .unwrap_or_else(|| panic!("unexpected data node banner {line:?}"));
        if !self.id.is_empty() {
            assert_eq!(id, self.id, "a data node keeps its id across restarts");
        }
        self.id = id.to_owned();
        self.addr = addr.trim().to_owned();
        self.proc = Some(proc);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the address")
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("data node is running").pid()
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let mut proc = self.proc.take().expect("data node is running");
        proc.kill();
    }

    /// Starts the node again on its data directory and its old address.
    pub async fn restart(&mut self) {
        assert!(self.proc.is_none(), "kill the node before restarting it");
        self.launch().await;
    }

    /// The committed chunk files under DIR/chunks (temp files left out), by chunk id.
    pub fn chunk_files(&self) -> BTreeMap<String, PathBuf> {
        let mut files = BTreeMap::new();
        let Ok(prefixes) = fs::read_dir(self.dir.join("chunks")) else {
            return files;
        };
        for prefix in prefixes.flatten() {
            let Ok(entries) = fs::read_dir(prefix.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    files.insert(name, entry.path());
                }
            }
        }
        files
    }
}

/// A `cairn gateway`; it can be killed and started again on the same address.
pub struct Gateway {
    pub index: usize,
    /// `127.0.0.1:PORT`, fixed at the first start.
    pub addr: String,
    meta_url: String,
    args: Vec<String>,
    proc: Option<Proc>,
    log: PathBuf,
}

impl Gateway {
    pub async fn start(root: &Path, index: usize, meta_url: &str, args: &[String]) -> Gateway {
        let mut gateway = Gateway {
            index,
            addr: "127.0.0.1:0".to_owned(),
            meta_url: meta_url.to_owned(),
            args: args.to_vec(),
            proc: None,
            log: root.join(format!("gateway{index}.log")),
        };
        gateway.launch().await;
        gateway
    }

    async fn launch(&mut self) {
        let mut cmd = cairn();
        cmd.args(["gateway", "--listen", &self.addr, "--meta", &self.meta_url])
            .args(&self.args)
            .env("CAIRN_ACCESS_KEY_ID", KEY_ID)
            .env("CAIRN_SECRET_ACCESS_KEY", KEY_SECRET);
        let mut proc = Proc::spawn(&format!("gateway {}", self.index), cmd, &self.log);
        let line = proc.wait_line("Cairn S3 endpoint: http://").await;
        self.addr = line
            .trim_start_matches("Cairn S3 endpoint: http://")
            .trim()
            .to_owned();
        proc.wait_healthy(&self.addr).await;
        self.proc = Some(proc);
    }

    /// Starts the gateway again on its old address.
    pub async fn restart(&mut self) {
        assert!(self.proc.is_none(), "kill the gateway before restarting it");
        self.launch().await;
    }

    pub fn client(&self) -> S3Client {
        S3Client::new(&self.addr, KEY_ID, KEY_SECRET, REQUEST_TIMEOUT)
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("gateway is running").pid()
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let mut proc = self.proc.take().expect("gateway is running");
        proc.kill();
    }

    /// `GET /_cairn/stats`.
    pub async fn stats(&self) -> Option<String> {
        get_text(&plain_client(&self.addr), "/_cairn/stats").await
    }

    /// The `coordinator_leader` line of the stats: whether this gateway holds the lease.
    pub async fn is_leader(&self) -> Option<bool> {
        let stats = self.stats().await?;
        let value = stats
            .lines()
            .find_map(|l| l.strip_prefix("coordinator_leader "))?;
        Some(value.trim() == "1")
    }

    /// The log lines containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        read_log(&self.log)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// What a test cluster runs with.
#[derive(Clone, Debug)]
pub struct Spec {
    pub backend: Backend,
    pub nodes: usize,
    pub capacity: Option<&'static str>,
    pub replicas: usize,
    pub write_quorum: usize,
    pub chunk_size: &'static str,
    pub gateways: usize,
    /// `--scrub-interval`; the gateway's default (a week) when `None`.
    pub scrub_interval: Option<&'static str>,
    /// More gateway flags, e.g. `["--abandon-after", "1s"]`.
    pub gateway_flags: Vec<&'static str>,
}

impl Spec {
    /// R=2, W=2, 1 MiB chunks, one gateway.
    pub fn new(backend: Backend, nodes: usize) -> Spec {
        Spec {
            backend,
            nodes,
            capacity: None,
            replicas: 2,
            write_quorum: 2,
            chunk_size: "1MiB",
            gateways: 1,
            scrub_interval: None,
            gateway_flags: Vec::new(),
        }
    }

    fn gateway_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--replicas",
            &self.replicas.to_string(),
            "--write-quorum",
            &self.write_quorum.to_string(),
            "--chunk-size",
            self.chunk_size,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Defaults `gateway_flags` may replace (a flag may be given only once).
        for (flag, value) in [
            ("--gc-grace", "0s"),
            ("--coordinator-interval", "1s"),
            ("--node-timeout", "3s"),
            ("--stall-timeout", "2s"),
        ] {
            if !self.gateway_flags.contains(&flag) {
                args.extend([flag.to_owned(), value.to_owned()]);
            }
        }
        if let Some(every) = self.scrub_interval {
            args.extend(["--scrub-interval".to_owned(), every.to_owned()]);
        }
        args.extend(self.gateway_flags.iter().map(|s| s.to_string()));
        args
    }
}

/// How a data node of [`Cluster::start_via`] is started: through `wrapper` (a command and
/// its arguments, e.g. `ip netns exec NS` to put it on a host of its own), listening on
/// `listen` (`ADDRESS:0` for a free port).
#[derive(Clone, Debug)]
pub struct NodeLaunch {
    pub wrapper: Vec<String>,
    pub listen: String,
}

/// One row of `cairn admin node list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    pub address: String,
    pub zone: String,
    pub state: String,
    pub capacity: String,
    pub used: u64,
    pub chunks: u64,
}

/// What `cairn admin fsck` printed.
#[derive(Clone, Debug, Default)]
pub struct Fsck {
    /// It exited 0 (every object readable).
    pub success: bool,
    pub chunks: u64,
    pub below: u64,
    pub missing: u64,
    pub corrupt: u64,
    pub orphans: u64,
    pub unreadable: u64,
    /// Its last line is `clean`.
    pub clean: bool,
    pub stdout: String,
}

impl Fsck {
    fn parse(output: &Output) -> Fsck {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut report = Fsck {
            success: output.status.success(),
            clean: stdout.lines().last() == Some("clean"),
            ..Fsck::default()
        };
        for line in stdout.lines() {
            let Some((label, value)) = line.split_once(':') else {
                continue;
            };
            let Ok(n) = value.trim().parse::<u64>() else {
                continue;
            };
            match label {
                "chunks" => report.chunks = n,
                "missing replicas" => report.missing = n,
                "corrupt replicas" => report.corrupt = n,
                "orphan chunk files" => report.orphans = n,
                "unreadable chunks" => report.unreadable = n,
                l if l.starts_with("below ") && l.ends_with(" live copies") => report.below = n,
                _ => {}
            }
        }
        report.stdout = stdout;
        report
    }

    /// Every chunk at R live copies and readable (other findings may be pending).
    pub fn fully_replicated(&self, replicas: usize) -> bool {
        self.success
            && self.below == 0
            && self.unreadable == 0
            && self
                .stdout
                .contains(&format!("below {replicas} live copies:    0\n"))
    }

    /// Nothing to repair or collect.
    pub fn is_clean(&self, replicas: usize) -> bool {
        self.fully_replicated(replicas)
            && self.clean
            && self.missing == 0
            && self.corrupt == 0
            && self.orphans == 0
    }
}

/// Data nodes, gateways and the metadata store of one test.
pub struct Cluster {
    // Fields drop in order: processes first, then the database, then the directory.
    pub gateways: Vec<Gateway>,
    pub nodes: Vec<DataNode>,
    pub meta: MetaDb,
    pub spec: Spec,
    root: Option<TempDir>,
    pub dir: PathBuf,
}

impl Cluster {
    /// Starts the data nodes, registers them with `cairn admin node add`, then starts the
    /// gateways.
    pub async fn start(spec: Spec) -> Cluster {
        let root = Self::root();
        let meta = MetaDb::create(spec.backend, root.path()).await;
        Self::start_in(spec, root, meta, &[]).await
    }

    /// Starts a cluster, as `start` does, on a metadata store the test runs itself.
    pub async fn start_on(spec: Spec, meta: MetaDb) -> Cluster {
        Self::start_in(spec, Self::root(), meta, &[]).await
    }

    /// As [`Cluster::start`], each data node started as `launches` says (one per node).
    pub async fn start_via(spec: Spec, launches: &[NodeLaunch]) -> Cluster {
        assert_eq!(spec.nodes, launches.len(), "one launch per data node");
        let root = Self::root();
        let meta = MetaDb::create(spec.backend, root.path()).await;
        Self::start_in(spec, root, meta, launches).await
    }

    fn root() -> TempDir {
        tempfile::Builder::new()
            .prefix("cairn-cluster-")
            .tempdir()
            .expect("temp dir")
    }

    async fn start_in(spec: Spec, root: TempDir, meta: MetaDb, launches: &[NodeLaunch]) -> Cluster {
        let dir = root.path().to_owned();
        let mut nodes = Vec::new();
        for index in 0..spec.nodes {
            nodes.push(match launches.get(index) {
                Some(launch) => DataNode::start_via(&dir, index, spec.capacity, launch).await,
                None => DataNode::start(&dir, index, spec.capacity).await,
            });
        }
        let mut cluster = Cluster {
            gateways: Vec::new(),
            nodes,
            meta,
            spec,
            root: Some(root),
            dir,
        };
        // Nodes first: a gateway caches the node list for a moment, so one started before
        // `node add` could refuse the first writes for lack of nodes.
        for i in 0..cluster.nodes.len() {
            let url = cluster.nodes[i].url();
            let out = cluster.admin_ok(&["node", "add", &url]).await;
            assert!(
                out.starts_with(&format!("added node {} at {url}", cluster.nodes[i].id)),
                "node add printed {out:?}"
            );
        }
        for _ in 0..cluster.spec.gateways {
            cluster.start_gateway().await;
        }
        cluster
    }

    /// Starts one more gateway on the cluster's metadata store.
    pub async fn start_gateway(&mut self) -> usize {
        let index = self.gateways.len();
        let gateway =
            Gateway::start(&self.dir, index, &self.meta.url, &self.spec.gateway_args()).await;
        self.gateways.push(gateway);
        index
    }

    /// A client of the first gateway.
    pub fn client(&self) -> S3Client {
        self.gateways[0].client()
    }

    /// `cairn admin --meta URL ARGS...`.
    pub async fn admin(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::from(cairn());
        cmd.args(["admin", "--meta", &self.meta.url])
            .args(args)
            .env("CAIRN_LOG", "warn")
            .stdin(Stdio::null());
        cmd.output().await.expect("run cairn admin")
    }

    /// `cairn admin` that must succeed; returns its stdout.
    pub async fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args).await;
        assert!(
            out.status.success(),
            "cairn admin {args:?} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn node_list(&self) -> Vec<NodeRow> {
        let out = self.admin_ok(&["node", "list"]).await;
        let mut lines = out.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(
            header,
            [
                "ID", "ADDRESS", "ZONE", "STATE", "CAPACITY", "USED", "CHUNKS"
            ],
            "node list header"
        );
        lines
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(f.len(), 7, "node list row {line:?}");
                NodeRow {
                    id: f[0].to_owned(),
                    address: f[1].to_owned(),
                    zone: f[2].to_owned(),
                    state: f[3].to_owned(),
                    capacity: f[4].to_owned(),
                    used: f[5].parse().expect("USED is a number"),
                    chunks: f[6].parse().expect("CHUNKS is a number"),
                }
            })
            .collect()
    }

    /// The row of data node `index`.
    pub async fn node_row(&self, index: usize) -> NodeRow {
        let id = &self.nodes[index].id;
        self.node_list()
            .await
            .into_iter()
            .find(|r| &r.id == id)
            .unwrap_or_else(|| panic!("node {id} missing from node list"))
    }

    pub async fn fsck(&self) -> Fsck {
        Fsck::parse(&self.admin(&["fsck"]).await)
    }

    /// Polls `check` until it returns `Ok`, at most `limit`; panics with the last `Err`.
    /// Returns the value and how long it took.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl AsyncFnMut() -> Result<T, String>,
    ) -> (T, Duration) {
        let start = Instant::now();
        loop {
            match check().await {
                Ok(value) => return (value, start.elapsed()),
                Err(last) => assert!(
                    start.elapsed() < limit,
                    "{what}: not reached within {limit:?}; last seen: {last}"
                ),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls fsck until every chunk is back at R live copies.
    pub async fn wait_fully_replicated(&self, limit: Duration) -> (Fsck, Duration) {
        let r = self.spec.replicas;
        self.wait_for("fsck: every chunk at R live copies", limit, async || {
            let f = self.fsck().await;
            if f.fully_replicated(r) {
                Ok(f)
            } else {
                Err(f.stdout)
            }
        })
        .await
    }

    /// Polls fsck until it reports nothing to do for exactly `chunks` referenced chunks, and
    /// every node holds on disk exactly the chunks `node list` counts for it, R copies of each
    /// chunk in all (no copy beyond R, no leftover file, nothing left for GC).
    pub async fn wait_clean(&self, chunks: u64, limit: Duration) -> (Fsck, Duration) {
        let r = self.spec.replicas;
        self.wait_for(
            &format!("fsck clean with {chunks} chunks, {r} copies of each on disk"),
            limit,
            async || {
                let f = self.fsck().await;
                if !f.is_clean(r) || f.chunks != chunks {
                    return Err(f.stdout);
                }
                let rows = self.node_list().await;
                let total: u64 = rows.iter().map(|n| n.chunks).sum();
                if total != r as u64 * f.chunks {
                    return Err(format!(
                        "node list counts {total} replicas of {} chunks: {rows:?}",
                        f.chunks
                    ));
                }
                for node in self.nodes.iter().filter(|n| n.is_running()) {
                    let files = node.chunk_files().len() as u64;
                    let row = rows.iter().find(|row| row.id == node.id);
                    // A removed node has no row and must hold nothing.
                    if row.map_or(0, |row| row.chunks) != files {
                        return Err(format!(
                            "node {} has {files} chunk files, node list says {row:?}",
                            node.index
                        ));
                    }
                }
                Ok(f)
            },
        )
        .await
    }

    /// Polls `node list` until data node `index` is in `state`.
    pub async fn wait_node_state(&self, index: usize, state: &str, limit: Duration) -> Duration {
        let what = format!("node {index} {state}");
        self.wait_for(&what, limit, async || {
            let row = self.node_row(index).await;
            if row.state == state {
                Ok(())
            } else {
                Err(format!("{row:?}"))
            }
        })
        .await
        .1
    }

    /// Chunk files on every running data node, by node index.
    pub fn chunk_files(&self) -> BTreeMap<usize, BTreeMap<String, PathBuf>> {
        self.nodes
            .iter()
            .map(|n| (n.index, n.chunk_files()))
            .collect()
    }

    /// Whether no node holds any of the chunks `old` any more and `total` chunk files remain;
    /// otherwise what is left, for `wait_for`.
    pub fn old_chunks_gone(&self, old: &BTreeSet<String>, total: usize) -> Result<(), String> {
        let files = self.chunk_files();
        let left: Vec<(usize, &String)> = files
            .iter()
            .flat_map(|(node, ids)| ids.keys().map(move |id| (*node, id)))
            .filter(|(_, id)| old.contains(*id))
            .collect();
        let found: usize = files.values().map(|f| f.len()).sum();
        if left.is_empty() && found == total {
            Ok(())
        } else {
            Err(format!("{found} chunk files, old ones left: {left:?}"))
        }
    }

    /// Every chunk id on any node's disk.
    pub fn all_chunk_ids(&self) -> BTreeSet<String> {
        self.nodes
            .iter()
            .flat_map(|n| n.chunk_files().into_keys())
            .collect()
    }

    /// The index of the data node holding the most chunk files.
    pub fn fullest_node(&self) -> usize {
        self.nodes
            .iter()
            .max_by_key(|n| n.chunk_files().len())
            .map(|n| n.index)
            .expect("a data node")
    }

    /// The warnings and errors of every process, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut out = format!("cluster directory: {}\n", self.dir.display());
        let logs = self
            .nodes
            .iter()
            .map(|n| (format!("data node {}", n.index), n.log.clone()))
            .chain(
                self.gateways
                    .iter()
                    .map(|g| (format!("gateway {}", g.index), g.log.clone())),
            );
        for (name, log) in logs {
            let text = read_log(&log);
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            let from = lines.len().saturating_sub(LOG_TAIL);
            out.push_str(&format!("--- {name} ({} warnings)\n", lines.len()));
            for line in &lines[from..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for g in &mut self.gateways {
            if let Some(mut p) = g.proc.take() {
                p.kill();
            }
        }
        for n in &mut self.nodes {
            if let Some(mut p) = n.proc.take() {
                p.kill();
            }
        }
        if std::thread::panicking()
            && let Some(root) = self.root.take()
        {
            // Logs and metadata stay for a post-mortem; chunk data (up to 400 MiB a test) and
            // large test files go, so that failing runs do not fill a CI machine's disk.
            let kept = root.keep();
            for node in &self.nodes {
                let _ = fs::remove_dir_all(node.dir.join("chunks"));
            }
            if let Ok(entries) = fs::read_dir(&kept) {
                for entry in entries.flatten() {
                    if entry
                        .metadata()
                        .is_ok_and(|m| m.is_file() && m.len() > 16 << 20)
                    {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
            eprintln!(
                "test failed: cluster logs and metadata kept in {}\n{}",
                kept.display(),
                self.diagnostics()
            );
        }
    }
}

/// aws-cli pointed at one gateway, with the test key in its environment and path-style
/// addressing in a config file of its own.
pub struct AwsCli {
    endpoint: String,
    config: PathBuf,
}

impl AwsCli {
    /// `multipart_chunksize` fixes the part size, so the chunk count of an upload is known.
    pub fn new(dir: &Path, gateway: &Gateway, part_size: &str) -> AwsCli {
        let config = dir.join("aws-config");
        let mut file = fs::File::create(&config).expect("write aws config");
        write!(
            file,
            "[default]\ns3 =\n    addressing_style = path\n    multipart_threshold = {part_size}\n    \
             multipart_chunksize = {part_size}\n"
        )
        .expect("write aws config");
        AwsCli {
            endpoint: format!("http://{}", gateway.addr),
            config,
        }
    }

    /// Runs `aws --endpoint-url ... ARGS...`; panics with its output when it fails.
    pub async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new("aws")
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", KEY_SECRET)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", &self.config)
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.config.with_extension("none"),
            )
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!("cannot run aws-cli ({e}); install it (tests/all.sh does) to run this test")
            });
        assert!(
            out.status.success(),
            "aws {args:?} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}
