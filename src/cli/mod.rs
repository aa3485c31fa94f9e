//! The `cairn` command line: `server` (the embedded all-in-one store), `datanode` and
//! `gateway` (a cluster), and `admin`.
//! Secrets come from the environment or are generated; they never appear on argv or in logs.

mod admin;
mod cluster;
mod reserve;

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::config::{ByteSize, HumanDuration};
use crate::datanode::local::LocalChunkStore;
use crate::gateway::{Gateway, GatewayConfig, now};
use crate::meta::sqlite::SqliteMeta;
use crate::meta::{ADMIN_ACCOUNT, AccessKey, MetaStore};
use crate::s3::server::{Limits, S3Service, WRITE_MEMORY, serve};

/// The chunk size a new store gets when none is given.
pub const DEFAULT_CHUNK_SIZE: ByteSize = ByteSize(64 << 20);
/// Chunks smaller than this would make the chunk map larger than the data it maps.
const MIN_CHUNK_SIZE: u64 = 4 << 10;
/// How often the garbage collector looks for chunks whose grace period is over.
const GC_INTERVAL: Duration = Duration::from_secs(2);
const CHUNK_SIZE_SETTING: &str = "chunk_size";
pub use crate::meta::REPLICAS_SETTING;
const CREDENTIALS_FILE: &str = "credentials";

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "An S3-compatible object store for files too large for one machine"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The all-in-one store: S3 gateway, SQLite metadata and local chunk storage.
    Server(ServerArgs),
    /// A data node of a cluster: stores chunk files, serves them to gateways.
    Datanode(cluster::DataNodeArgs),
    /// An S3 gateway of a cluster: stateless, over a shared metadata store and data nodes.
    Gateway(cluster::GatewayArgs),
    /// Administer a store through its metadata database.
    Admin(admin::AdminArgs),
    /// Load an S3 endpoint (any S3 store) with a workload and report throughput and latency.
    Bench(crate::bench::BenchArgs),
}

#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// Address to serve S3 on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Data directory: metadata (meta.db), chunks and generated credentials.
    #[arg(long, default_value = "./cairn-data")]
    data: PathBuf,
    /// Size of the chunks new uploads are cut into (e.g. 64MiB, 1MiB); recorded in the store.
    #[arg(long)]
    chunk_size: Option<ByteSize>,
    /// Serve virtual-hosted-style requests (BUCKET.DOMAIN) as well as path style.
    #[arg(long)]
    domain: Option<String>,
    /// How long replaced or deleted data stays readable for downloads already under way.
    #[arg(long, default_value = "5m")]
    gc_grace: HumanDuration,
    /// Multipart uploads left incomplete for longer than this are aborted and their parts
    /// reclaimed; younger ones are never touched, so a client can resume them.
    #[arg(long, default_value = "7d")]
    upload_expiry: HumanDuration,
    #[command(flatten)]
    direct: DirectWritesArg,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// How chunk files are written.
#[derive(clap::Args, Debug)]
pub struct DirectWritesArg {
    /// Write large chunks with O_DIRECT, past the page cache: less CPU per byte stored, but on
    /// disks that are slow at one write at a time it stores less per second, and data read
    /// right after it was written comes from the disk. Off: writes go through the page cache.
    #[arg(long)]
    pub direct_writes: bool,
}

/// HTTPS for a listener; plain HTTP without them.
#[derive(clap::Args, Debug)]
struct TlsArgs {
    /// PEM certificate chain to serve HTTPS with (requires --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// What an S3 listener lets its clients hold at once and how long it waits for them.
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Connections served at once; one more is answered 503 SlowDown and closed (keep it below
    /// the open-file limit, `ulimit -n`).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Request body bytes buffered or being processed at once; each request counts its
    /// Content-Length, at most 8MiB (what one write holds in memory). A request past the limit
    /// is answered 503 SlowDown, which S3 clients retry after a pause.
    #[arg(long, default_value = "1GiB")]
    max_inflight_bytes: ByteSize,
    /// How long a client has to send a request's headers after connecting or after the
    /// previous response; also how long an idle keep-alive connection stays open.
    #[arg(long, default_value = "60s")]
    header_timeout: HumanDuration,
    /// How long an XML request body (CompleteMultipartUpload, DeleteObjects, CreateBucket) may
    /// send nothing before the request fails with 400 RequestTimeout.
    #[arg(long, default_value = "60s")]
    body_timeout: HumanDuration,
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits, String> {
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".to_owned());
        }
        if self.max_inflight_bytes.0 < WRITE_MEMORY {
            return Err(format!(
                "--max-inflight-bytes must be at least {}, what one write holds",
                ByteSize(WRITE_MEMORY)
            ));
        }
        for (flag, value) in [
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
        ] {
            if value.0.is_zero() {
                return Err(format!("{flag} must be more than 0s"));
            }
        }
        Ok(Limits {
            max_connections: self.max_connections,
            max_inflight_bytes: self.max_inflight_bytes.0,
            header_timeout: self.header_timeout.0,
            body_timeout: self.body_timeout.0,
        })
    }
}

impl TlsArgs {
    fn acceptor(&self) -> std::io::Result<Option<tokio_rustls::TlsAcceptor>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => crate::s3::server::tls_acceptor(cert, key).map(Some),
            _ => Ok(None),
        }
    }
}

/// What gateways and `cairn admin` trust of data nodes served over HTTPS.
#[derive(clap::Args, Debug)]
struct NodeCaArg {
    /// PEM CA certificate(s) that sign the certificates of `https://` data nodes.
    #[arg(long)]
    node_ca: Option<PathBuf>,
}

impl NodeCaArg {
    fn load(&self) -> std::io::Result<Option<crate::datanode::remote::NodeTls>> {
        self.node_ca
            .as_deref()
            .map(crate::datanode::remote::NodeTls::from_ca_file)
            .transpose()
    }
}

pub fn main(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => run_server(args).await,
            Command::Datanode(args) => cluster::run_datanode(args).await,
            Command::Gateway(args) => cluster::run_gateway(args).await,
            Command::Admin(args) => admin::run_admin(args).await,
            Command::Bench(args) => crate::bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// `n` random bytes from the OS's CSPRNG (through version-4 UUIDs, 122 random bits each).
fn random_bytes(n: usize) -> Vec<u8> {
    (0..n.div_ceil(16))
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .take(n)
        .collect()
}

/// A new account's canonical id: 64 lowercase hex digits, as S3's canonical user ids are.
pub fn generate_account_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A new access key of `account`: an id in AWS's style and a 40-character secret, from the
/// OS's CSPRNG.
pub fn generate_key(name: &str, account: &str, policy: Option<String>) -> AccessKey {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let id: String = random_bytes(18)
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    let secret = base64::engine::general_purpose::STANDARD_NO_PAD.encode(random_bytes(30));
    AccessKey {
        id: format!("CK{id}"),
        secret,
        name: name.to_owned(),
        created: now(),
        account: account.to_owned(),
        policy,
    }
}

/// The canonical id of the admin account, which the migration to accounts creates in every
/// store.
async fn admin_account(meta: &dyn MetaStore) -> Result<String, Box<dyn std::error::Error>> {
    match meta.account_by_name(ADMIN_ACCOUNT).await? {
        Some(admin) => Ok(admin.id),
        None => Err(format!("the metadata store has no {ADMIN_ACCOUNT} account").into()),
    }
}

/// The bootstrap key: from the environment, else from DATA/credentials, else generated and
/// written there (mode 0600). Returns the key and whether its secret should be shown.
async fn bootstrap_key(
    meta: &dyn MetaStore,
    data: &Path,
) -> Result<(AccessKey, bool), Box<dyn std::error::Error>> {
    let path = data.join(CREDENTIALS_FILE);
    let admin = admin_account(meta).await?;
    let (key, fresh) = match env_key(&admin)? {
        Some(key) => (key, false),
        None if path.exists() => {
            let text = std::fs::read_to_string(&path)?;
            let mut id = None;
            let mut secret = None;
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    match k.trim() {
                        "access_key_id" => id = Some(v.trim().to_owned()),
                        "secret_access_key" => secret = Some(v.trim().to_owned()),
                        _ => {}
                    }
                }
            }
            let (Some(id), Some(secret)) = (id, secret) else {
                return Err(format!("{} is not a credentials file", path.display()).into());
            };
            let key = AccessKey {
                id,
                secret,
                name: "bootstrap".to_owned(),
                created: now(),
                account: admin,
                policy: None,
            };
            (key, false)
        }
        None => {
            let key = generate_key("bootstrap", &admin, None);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            writeln!(file, "access_key_id = {}", key.id)?;
            writeln!(file, "secret_access_key = {}", key.secret)?;
            file.sync_all()?;
            (key, true)
        }
    };
    ensure_key(meta, &key).await?;
    Ok((key, fresh))
}

/// The bootstrap key named by CAIRN_ACCESS_KEY_ID and CAIRN_SECRET_ACCESS_KEY, if set: a key of
/// the admin account `admin`.
fn env_key(admin: &str) -> Result<Option<AccessKey>, String> {
    let id = std::env::var("CAIRN_ACCESS_KEY_ID").ok();
    let secret = std::env::var("CAIRN_SECRET_ACCESS_KEY").ok();
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(AccessKey {
            id,
            secret,
            name: "bootstrap (environment)".to_owned(),
            created: now(),
            account: admin.to_owned(),
            policy: None,
        })),
        (None, None) => Ok(None),
        _ => Err("set both CAIRN_ACCESS_KEY_ID and CAIRN_SECRET_ACCESS_KEY, or neither".to_owned()),
    }
}

/// Stores `key`, replacing a stored key of the same id with another secret, account or policy.
async fn ensure_key(meta: &dyn MetaStore, key: &AccessKey) -> Result<(), crate::meta::MetaError> {
    match meta.key(&key.id).await? {
        Some(stored)
            if stored.secret == key.secret
                && stored.account == key.account
                && stored.policy == key.policy =>
        {
            Ok(())
        }
        Some(_) => {
            meta.delete_key(&key.id).await?;
            meta.create_key(key).await
        }
        None => meta.create_key(key).await,
    }
}

/// A gateway's bootstrap key from the environment, if given; gateways keep no files, so
/// other keys come from `cairn admin key create`. Returns its id.
async fn bootstrap_env_key(
    meta: &dyn MetaStore,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    match env_key(&admin_account(meta).await?)? {
        Some(key) => {
            ensure_key(meta, &key).await?;
            Ok(Some(key.id))
        }
        None => Ok(None),
    }
}

async fn run_server(args: ServerArgs) -> CliResult {
    let limits = args.limits.limits()?;
    let tls = args.tls.acceptor()?;
    let _lock = crate::net::lock_data_dir(&args.data)?;
    reserve::release_if_full(&args.data)?;
    let meta = Arc::new(SqliteMeta::open_path(&args.data.join("meta.db")).await?);
    if let Err(e) = reserve::refill(&args.data) {
        tracing::warn!(error = %e, "could not keep a reserve for a full disk");
    }
    let chunk_size = resolve_chunk_size(meta.as_ref(), args.chunk_size).await?;
    let (key, fresh) = bootstrap_key(meta.as_ref(), &args.data).await?;

    let store = Arc::new(
        LocalChunkStore::open(args.data.join("chunks"))
            .await?
            .with_direct_writes(args.direct.direct_writes),
    );
    let temp = store.remove_temp_files().await?;
    let gateway = Arc::new(Gateway::new(
        meta,
        store,
        GatewayConfig {
            chunk_size,
            gc_grace: args.gc_grace.0,
        },
    ));
    let orphans = gateway.remove_orphans().await?;
    let collected = gateway.collect_garbage().await?;
    tracing::info!(temp, orphans, collected, "startup cleanup done");

    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("Cairn S3 endpoint: {scheme}://{addr}");
    println!("Data directory:    {}", args.data.display());
    println!("Chunk size:        {}", ByteSize(chunk_size));
    println!("Access key id:     {}", key.id);
    if fresh {
        println!(
            "Secret access key: {} (shown once; also in {})",
            key.secret,
            args.data.join(CREDENTIALS_FILE).display()
        );
    }
    std::io::stdout().flush()?;

    let gc = tokio::spawn(
        gateway
            .clone()
            .run_collector(GC_INTERVAL, args.upload_expiry.0),
    );
    let service = S3Service {
        gateway,
        domain: args.domain,
        coordinator: None,
    };
    serve(listener, tls, service, limits, shutdown_signal()).await?;
    gc.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The chunk size for new writes: `--chunk-size` if given (and then recorded), else the one
/// the store recorded, else the default for a new store.
async fn resolve_chunk_size(
    meta: &dyn MetaStore,
    flag: Option<ByteSize>,
) -> Result<u64, Box<dyn std::error::Error>> {
    let stored = meta.setting(CHUNK_SIZE_SETTING).await?;
    let size = match (flag, &stored) {
        (Some(size), _) => size.0,
        (None, Some(stored)) => stored
            .parse()
            .map_err(|_| format!("stored chunk size {stored:?} is invalid"))?,
        (None, None) => DEFAULT_CHUNK_SIZE.0,
    };
    if size < MIN_CHUNK_SIZE {
        return Err(format!("--chunk-size must be at least {}", ByteSize(MIN_CHUNK_SIZE)).into());
    }
    // Written only when it changes, so a start on a full filesystem need not write.
    let recorded = size.to_string();
    if stored.as_deref() != Some(recorded.as_str()) {
        meta.set_setting(CHUNK_SIZE_SETTING, &recorded).await?;
    }
    Ok(size)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
