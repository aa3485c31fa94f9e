//! PostgreSQL servers a test runs itself, from the postgresql package's binaries: one server, or
//! a primary with a synchronous streaming standby, each on a free loopback port in the test's
//! directory. PostgreSQL refuses to run as root, so as root (CI) they run as the `postgres` OS
//! user. Each server is its own process group, so a kill takes its backends too, as a crash of
//! its host would.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tempfile::TempDir;

use crate::process::Proc;

/// The standby's name, which the primary's `synchronous_standby_names` waits for.
const STANDBY_NAME: &str = "standby";
/// How long a server may take to accept connections, and the standby to become synchronous.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(50);

/// The newest `/usr/lib/postgresql/VERSION/bin`.
pub fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no /usr/lib/postgresql/*/bin/initdb: install the postgresql package \
             (tests/all.sh does)"
        )
    })
}

/// The `postgres` user's uid and gid, when this process is root and must hand the servers to it.
fn postgres_user() -> Option<(u32, u32)> {
    let me = fs::metadata("/proc/self").expect("stat /proc/self").uid();
    if me != 0 {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("as root the servers run as the postgres user, which /etc/passwd lacks");
    let fields: Vec<&str> = line.split(':').collect();
    Some((
        fields[2].parse().expect("uid"),
        fields[3].parse().expect("gid"),
    ))
}

/// `program` run as the `postgres` user when this process is root.
fn as_postgres(program: &Path, dir: &Path) -> Command {
    let mut cmd = match postgres_user() {
        Some(_) => {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(program);
            cmd
        }
        None => Command::new(program),
    };
    cmd.current_dir(dir);
    cmd
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// One PostgreSQL server (its postmaster and backends).
pub struct PgServer {
    pub name: String,
    pub port: u16,
    pub data: PathBuf,
    dir: PathBuf,
    bin: PathBuf,
    proc: Option<Proc>,
}

impl PgServer {
    fn new(name: &str, dir: &Path, bin: &Path) -> PgServer {
        PgServer {
            name: name.to_owned(),
            port: free_port(),
            data: dir.join(name),
            dir: dir.to_owned(),
            bin: bin.to_owned(),
            proc: None,
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name))
    }

    /// Runs one statement as the superuser.
    pub async fn execute(&self, sql: &str) {
        let mut conn = self.connect().await;
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql} on {}: {e}", self.name));
        let _ = conn.close().await;
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start(&mut self) {
        let mut cmd = as_postgres(&self.bin.join("postgres"), &self.dir);
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .process_group(0);
        let log = self.dir.join(format!("{}.log", self.name));
        self.proc = Some(Proc::spawn(&self.name, cmd, &log));
        let deadline = Instant::now() + READY_TIMEOUT;
        while PgConnection::connect(&self.url("postgres")).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not accept connections in time\n{}",
                self.name,
                crate::process::read_log(&log)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL to the postmaster and every backend at once, as a crash of the host would end
    /// them: killing the postmaster alone leaves backends serving their connections a moment.
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", proc.pid())])
                .status();
            proc.kill();
        }
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One server, or a primary and its synchronous standby, in a directory of their own.
pub struct PgCluster {
    pub primary: PgServer,
    pub standby: Option<PgServer>,
    // Dropped last: the servers are killed before their files go.
    _root: TempDir,
}

impl PgCluster {
    /// One server with a database named `database`.
    pub async fn single(database: &str) -> PgCluster {
        let (root, bin) = Self::root();
        let mut primary = PgServer::new("primary", root.path(), &bin);
        Self::initdb(&primary, &[]);
        primary.start().await;
        primary
            .execute(&format!("CREATE DATABASE {database}"))
            .await;
        PgCluster {
            primary,
            standby: None,
            _root: root,
        }
    }

    /// A primary whose commits wait for the standby's flush (`synchronous_standby_names`), so
    /// that every acknowledged commit survives a promotion of the standby, and the standby,
    /// made with `pg_basebackup`; with a database named `database` on both.
    pub async fn replicated(database: &str) -> PgCluster {
        let (root, bin) = Self::root();
        let mut primary = PgServer::new("primary", root.path(), &bin);
        Self::initdb(
            &primary,
            &[
                "wal_level = replica",
                "max_wal_senders = 4",
                &format!("synchronous_standby_names = '{STANDBY_NAME}'"),
                "synchronous_commit = on",
            ],
        );
        primary.start().await;
        let mut standby = PgServer::new(STANDBY_NAME, root.path(), &bin);
        let mut basebackup = as_postgres(&bin.join("pg_basebackup"), root.path());
        basebackup
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(&standby.data)
            .args(["-X", "stream", "--checkpoint=fast", "-R"]);
        run(basebackup, "pg_basebackup");
        // Later lines of postgresql.auto.conf win: the standby names itself for the primary's
        // synchronous_standby_names, and once promoted it has no standby to wait for.
        Self::append_conf(
            &standby.data.join("postgresql.auto.conf"),
            &[
                &format!(
                    "primary_conninfo = 'host=127.0.0.1 port={} user=postgres \
                     application_name={STANDBY_NAME}'",
                    primary.port
                ),
                "synchronous_standby_names = ''",
            ],
        );
        standby.start().await;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut conn = primary.connect().await;
        loop {
            let sync: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_replication \
                 WHERE application_name = $1 AND sync_state = 'sync'",
            )
            .bind(STANDBY_NAME)
            .fetch_one(&mut conn)
            .await
            .expect("read pg_stat_replication");
            if sync == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the standby did not become synchronous in time"
            );
            tokio::time::sleep(POLL).await;
        }
        let _ = conn.close().await;
        // Only now: the primary's commits wait for the standby.
        primary
            .execute(&format!("CREATE DATABASE {database}"))
            .await;
        PgCluster {
            primary,
            standby: Some(standby),
            _root: root,
        }
    }

    /// libpq's multi-host URL over the primary and the standby, asking for the one that
    /// accepts writes.
    pub fn multi_host_url(&self, database: &str) -> String {
        let standby = self.standby.as_ref().expect("a replicated cluster");
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}\
             ?target_session_attrs=read-write",
            self.primary.port, standby.port
        )
    }

    /// Promotes the standby (`pg_promote()`, which waits until it accepts writes).
    pub async fn promote_standby(&self) {
        let standby = self.standby.as_ref().expect("a replicated cluster");
        let mut conn = standby.connect().await;
        let promoted: bool = sqlx::query_scalar("SELECT pg_promote(true, 30)")
            .fetch_one(&mut conn)
            .await
            .expect("pg_promote");
        assert!(promoted, "pg_promote did not finish in 30 s");
        let _ = conn.close().await;
    }

    fn root() -> (TempDir, PathBuf) {
        let bin = postgres_bin();
        let root = tempfile::Builder::new()
            .prefix("cairn-pg-")
            .tempdir()
            .expect("temp dir");
        if let Some((uid, gid)) = postgres_user() {
            std::os::unix::fs::chown(root.path(), Some(uid), Some(gid))
                .expect("hand the directory to the postgres user");
        }
        (root, bin)
    }

    fn initdb(server: &PgServer, conf: &[&str]) {
        let mut initdb = as_postgres(&server.bin.join("initdb"), &server.dir);
        initdb.arg("-D").arg(&server.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        Self::append_conf(&server.data.join("postgresql.conf"), conf);
    }

    fn append_conf(path: &Path, lines: &[&str]) {
        let mut text = fs::read_to_string(path).unwrap_or_default();
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// A primary and a synchronous standby managed by Patroni, with a one-member etcd as its
/// consensus store: what a production deployment runs, on one machine. Patroni elects the
/// primary through an etcd lease and promotes the standby when the primary's node dies.
pub struct PatroniCluster {
    pub nodes: Vec<PatroniNode>,
    etcd: Option<Proc>,
    _root: TempDir,
}

/// One Patroni member: the manager and the PostgreSQL server it runs.
pub struct PatroniNode {
    pub name: String,
    pub port: u16,
    pub api_port: u16,
    data: PathBuf,
    proc: Option<Proc>,
}

/// The leader lease: how long the primary's node may be silent before the standby takes over.
/// Patroni renews it every `PATRONI_LOOP_WAIT` and must be able to retry within it.
const PATRONI_TTL: u32 = 10;
const PATRONI_LOOP_WAIT: u32 = 1;
const PATRONI_RETRY_TIMEOUT: u32 = 4;

impl PatroniCluster {
    /// etcd, then two Patroni members; returns once one is the primary, the other streams from
    /// it synchronously, and the database `database` exists.
    pub async fn start(database: &str) -> PatroniCluster {
        let (root, bin) = PgCluster::root();
        let dir = &root.path().to_owned();
        let etcd_client = free_port();
        let etcd_peer = free_port();
        let mut etcd_cmd = as_postgres(Path::new("etcd"), dir);
        etcd_cmd
            .args(["--name", "etcd0", "--data-dir"])
            .arg(dir.join("etcd"))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{etcd_client}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{etcd_client}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{etcd_peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{etcd_peer}"),
                "--initial-cluster",
                &format!("etcd0=http://127.0.0.1:{etcd_peer}"),
            ]);
        let etcd = Proc::spawn("etcd", etcd_cmd, &dir.join("etcd.log"));
        let mut cluster = PatroniCluster {
            nodes: Vec::new(),
            etcd: Some(etcd),
            _root: root,
        };
        for i in 0..2 {
            let node = PatroniNode {
                name: format!("pg{i}"),
                port: free_port(),
                api_port: free_port(),
                data: dir.join(format!("pg{i}")),
                proc: None,
            };
            let config = dir.join(format!("pg{i}.yml"));
            fs::write(&config, node.config(dir, &bin, etcd_client)).expect("write patroni.yml");
            cluster.nodes.push(node);
        }
        for node in &mut cluster.nodes {
            let mut cmd = as_postgres(Path::new("patroni"), dir);
            cmd.arg(dir.join(format!("{}.yml", node.name)));
            node.proc = Some(Proc::spawn(
                &node.name,
                cmd,
                &dir.join(format!("{}.log", node.name)),
            ));
        }
        let primary = cluster.wait_primary(READY_TIMEOUT).await;
        cluster.nodes[primary]
            .server()
            .execute(&format!("CREATE DATABASE {database}"))
            .await;
        cluster.wait_synchronous().await;
        cluster
    }

    /// The members' URL in libpq's multi-host form, asking for the one that accepts writes.
    pub fn multi_host_url(&self, database: &str) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!(
            "postgres://postgres@{}/{database}?target_session_attrs=read-write",
            hosts.join(",")
        )
    }

    /// The index of the member whose REST API answers `GET /primary` with 200, waiting for one.
    pub async fn wait_primary(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            for (i, node) in self.nodes.iter().enumerate() {
                if node.proc.is_some() && node.is_primary().await {
                    return i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Patroni elected no primary in time"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_synchronous(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let primary = self.wait_primary(READY_TIMEOUT).await;
            let mut conn = self.nodes[primary].server().connect().await;
            let sync: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
            )
            .fetch_one(&mut conn)
            .await
            .expect("read pg_stat_replication");
            let _ = conn.close().await;
            if sync == 1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no standby became synchronous in time"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL to the primary's node: Patroni and PostgreSQL with its backends, as a crash of
    /// the host would end them. Returns the index of the member killed.
    pub async fn kill_primary(&mut self) -> usize {
        let primary = self.wait_primary(READY_TIMEOUT).await;
        self.nodes[primary].kill();
        primary
    }
}

impl PatroniNode {
    fn config(&self, dir: &Path, bin: &Path, etcd_port: u16) -> String {
        format!(
            "scope: cairn\n\
             name: {name}\n\
             restapi:\n  listen: 127.0.0.1:{api}\n  connect_address: 127.0.0.1:{api}\n\
             etcd3:\n  hosts: 127.0.0.1:{etcd_port}\n\
             bootstrap:\n  dcs:\n    ttl: {PATRONI_TTL}\n    loop_wait: {PATRONI_LOOP_WAIT}\n\
             \x20   retry_timeout: {PATRONI_RETRY_TIMEOUT}\n    synchronous_mode: true\n\
             \x20   postgresql:\n      use_pg_rewind: false\n      parameters:\n\
             \x20       wal_level: replica\n        max_wal_senders: 4\n\
             \x20 initdb:\n    - encoding: UTF8\n    - no-sync\n\
             \x20 pg_hba:\n    - local all all trust\n    - host replication all 127.0.0.1/32 trust\n\
             \x20   - host all all 127.0.0.1/32 trust\n\
             postgresql:\n  listen: 127.0.0.1:{port}\n  connect_address: 127.0.0.1:{port}\n\
             \x20 data_dir: {data}\n  bin_dir: {bin}\n  pgpass: {dir}/{name}.pgpass\n\
             \x20 authentication:\n    superuser:\n      username: postgres\n\
             \x20   replication:\n      username: postgres\n\
             \x20 parameters:\n    unix_socket_directories: {dir}\n",
            name = self.name,
            api = self.api_port,
            port = self.port,
            data = self.data.display(),
            bin = bin.display(),
            dir = dir.display(),
        )
    }

    /// A handle on the member's server for statements (not for starting or killing it).
    fn server(&self) -> PgServer {
        PgServer {
            name: self.name.clone(),
            port: self.port,
            data: self.data.clone(),
            dir: PathBuf::new(),
            bin: PathBuf::new(),
            proc: None,
        }
    }

    async fn is_primary(&self) -> bool {
        let client = crate::process::plain_client(&format!("127.0.0.1:{}", self.api_port));
        crate::process::get_text(&client, "/primary")
            .await
            .is_some()
    }

    /// SIGKILL to the server's process group (Patroni starts the postmaster in a session of its
    /// own), then to Patroni. The server goes first: it holds Patroni's stdout, whose end the
    /// `Proc` waits for.
    fn kill(&mut self) {
        if self.proc.is_none() {
            return;
        }
        let postmaster = fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|pid| pid.lines().next().map(str::to_owned));
        if let Some(postmaster) = postmaster {
            let group = fs::read_to_string(format!("/proc/{postmaster}/stat"))
                .ok()
                .and_then(|stat| {
                    let after_name = stat.rsplit_once(')')?.1.to_owned();
                    after_name.split_whitespace().nth(2).map(str::to_owned)
                });
            let target = match group {
                Some(group) => format!("-{group}"),
                None => postmaster,
            };
            let _ = Command::new("kill").args(["-KILL", "--", &target]).status();
        }
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }
}

impl Drop for PatroniNode {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        if let Some(mut etcd) = self.etcd.take() {
            etcd.kill();
        }
    }
}
