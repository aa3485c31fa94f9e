//! `cairn datanode` and `cairn gateway`: the two processes of a cluster. Gateways are
//! stateless (everything lives in the metadata store); data nodes keep chunk files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{
    CliResult, GC_INTERVAL, LimitArgs, NodeCaArg, REPLICAS_SETTING, TlsArgs, bootstrap_env_key,
    shutdown_signal,
};
use crate::config::{ByteSize, HumanDuration};
use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::datanode::auth::{ClusterKey, cluster_secret_from_env};
use crate::datanode::replicated::{ReplicatedStore, ReplicationConfig};
use crate::datanode::server::{DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DataNodeConfig};
use crate::gateway::{Gateway, GatewayConfig};
use crate::s3::server::{S3Service, serve};

#[derive(clap::Args, Debug)]
pub struct DataNodeArgs {
    /// Address of the internal chunk API.
    #[arg(long)]
    listen: SocketAddr,
    /// Directory for chunk files and the node's identity.
    #[arg(long)]
    data: PathBuf,
    /// The most chunk bytes to store (e.g. 500GiB); no limit but the disk's by default.
    #[arg(long)]
    capacity: Option<ByteSize>,
    /// Free space to keep on the data directory's filesystem: new chunks are refused (507) and
    /// gateways place them elsewhere rather than fill it. 1% of the filesystem (at most 1GiB)
    /// by default.
    #[arg(long)]
    reserve: Option<ByteSize>,
    /// Failure domain (rack, room, site); replicas of a chunk go to distinct zones first.
    #[arg(long)]
    zone: Option<String>,
    /// Connections served at once; 64 more are answered (a health check, else 503) and
    /// closed, any beyond those closed at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// How long a connection may take to send a request's headers, from when it opened or its
    /// last answer ended, before it is closed; keep it above 10s, how long gateways keep an
    /// idle connection [default: 30s].
    #[arg(long)]
    idle_timeout: Option<HumanDuration>,
    #[command(flatten)]
    direct: super::DirectWritesArg,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// Address to serve S3 on.
    #[arg(long)]
    listen: SocketAddr,
    /// The shared metadata store: sqlite://PATH or postgres://...
    #[arg(long)]
    meta: String,
    /// Copies of every chunk the cluster converges to.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Copies that must be durable before a write succeeds.
    #[arg(long, default_value_t = 2)]
    write_quorum: usize,
    /// Chunk size for new uploads; recorded in the store.
    #[arg(long)]
    chunk_size: Option<ByteSize>,
    /// Serve virtual-hosted-style requests (BUCKET.DOMAIN) as well as path style.
    #[arg(long)]
    domain: Option<String>,
    /// How long replaced or deleted data stays readable for downloads already under way.
    #[arg(long, default_value = "5m")]
    gc_grace: HumanDuration,
    /// Chunks stored this long ago by a write that never committed are deleted (the write's
    /// process died); keep it above the longest upload of one part.
    #[arg(long, default_value = "24h")]
    abandon_after: HumanDuration,
    /// Multipart uploads left incomplete for longer than this are aborted and their parts
    /// reclaimed; younger ones are never touched, so a client can resume them.
    #[arg(long, default_value = "7d")]
    upload_expiry: HumanDuration,
    /// A data node silent for this long is down: no longer read from or written to.
    #[arg(long, default_value = "10s")]
    node_timeout: HumanDuration,
    /// A replica that sends nothing for this long mid-read is abandoned for another.
    #[arg(long, default_value = "5s")]
    stall_timeout: HumanDuration,
    /// How often the coordinator reads every replica to find rot; 0s disables scrubbing.
    #[arg(long, default_value = "7d")]
    scrub_interval: HumanDuration,
    /// Pause between coordinator rounds (health checks, repair, GC).
    #[arg(long, default_value = "2s")]
    coordinator_interval: HumanDuration,
    /// Chunk copies repair makes at once.
    #[arg(long, default_value_t = 4)]
    repair_concurrency: usize,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    node_ca: NodeCaArg,
}

pub async fn run_datanode(args: DataNodeArgs) -> CliResult {
    let idle_timeout = args.idle_timeout.map_or(DEFAULT_IDLE_TIMEOUT, |d| d.0);
    if args.max_connections == 0 || idle_timeout.is_zero() {
        return Err("--max-connections and --idle-timeout must be above zero".into());
    }
    let key = ClusterKey::from_secret(&cluster_secret_from_env()?);
    let config = DataNodeConfig {
        listen: args.listen,
        data: args.data,
        capacity: args.capacity.map(|c| c.0),
        reserve: args.reserve.map(|r| r.0),
        zone: args.zone,
        key,
        direct_writes: args.direct.direct_writes,
        tls: args.tls.acceptor()?,
        max_connections: args.max_connections,
        idle_timeout,
    };
    crate::datanode::server::run(config, shutdown_signal()).await?;
    Ok(())
}

pub async fn run_gateway(args: GatewayArgs) -> CliResult {
    if args.replicas == 0 || args.write_quorum == 0 || args.write_quorum > args.replicas {
        return Err("need 1 <= --write-quorum <= --replicas".into());
    }
    let limits = args.limits.limits()?;
    let tls = args.tls.acceptor()?;
    let node_tls = args.node_ca.load()?;
    let key = ClusterKey::from_secret(&cluster_secret_from_env()?);
    let meta = crate::meta::open_all(&args.meta).await?;
    let chunk_size = super::resolve_chunk_size(meta.objects.as_ref(), args.chunk_size).await?;
    meta.objects
        .set_setting(REPLICAS_SETTING, &args.replicas.to_string())
        .await?;
    let bootstrap = bootstrap_env_key(meta.objects.as_ref()).await?;

    let store = Arc::new(ReplicatedStore::new(
        meta.cluster.clone(),
        key,
        node_tls,
        ReplicationConfig {
            replicas: args.replicas,
            write_quorum: args.write_quorum,
            chunk_size,
            stall_timeout: args.stall_timeout.0,
        },
    ));
    let gateway = Arc::new(Gateway::new(
        meta.objects.clone(),
        store.clone(),
        GatewayConfig {
            chunk_size,
            gc_grace: args.gc_grace.0,
        },
    ));
    let coordinator = Coordinator::new(
        gateway.clone(),
        meta.cluster.clone(),
        store,
        CoordinatorConfig {
            interval: args.coordinator_interval.0.max(GC_INTERVAL / 4),
            node_timeout: args.node_timeout.0,
            repair_concurrency: args.repair_concurrency,
            scrub_interval: (!args.scrub_interval.0.is_zero()).then_some(args.scrub_interval.0),
            abandon_after: args.abandon_after.0,
            upload_expiry: args.upload_expiry.0,
        },
    );
    let leader = coordinator.leader_flag();
    let coordinator = tokio::spawn(coordinator.run());

    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("Cairn S3 endpoint: {scheme}://{addr}");
    println!("Metadata:          {}", redact(&args.meta));
    println!("Chunk size:        {}", ByteSize(chunk_size));
    println!(
        "Replicas:          {} (write quorum {})",
        args.replicas, args.write_quorum
    );
    if let Some(id) = bootstrap {
        println!("Access key id:     {id}");
    }
    let service = S3Service {
        gateway,
        domain: args.domain,
        coordinator: Some(leader),
    };
    serve(listener, tls, service, limits, shutdown_signal()).await?;
    coordinator.abort();
    tracing::info!("stopped");
    Ok(())
}

/// A metadata URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
