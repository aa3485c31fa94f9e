//! `cairn admin`: keys, data nodes and fsck, straight against the metadata store.

use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use uuid::Uuid;

use super::{CliResult, REPLICAS_SETTING, generate_key};
use crate::datanode::auth::{ClusterKey, cluster_secret_from_env};
use crate::datanode::remote::{NodeTls, RemoteNode};
use crate::datanode::replicated::{ReplicatedStore, ReplicationConfig};
use crate::gateway::now;
use crate::meta::{NodeInfo, NodeState};

#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    /// The metadata store, e.g. sqlite://cairn-data/meta.db
    #[arg(long)]
    meta: String,
    #[command(flatten)]
    node_ca: super::NodeCaArg,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// S3 access keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Data nodes of a cluster (needs CAIRN_CLUSTER_SECRET).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Check every replica of every chunk; exits non-zero if an object cannot be read.
    Fsck,
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Register a running data node by the URL of its internal API.
    Add {
        url: String,
        /// Failure domain (rack, room, site) for spreading replicas.
        #[arg(long)]
        zone: Option<String>,
    },
    /// Nodes with their state, capacity, use and chunk count.
    List,
    /// Move every chunk off a node; it stays readable meanwhile.
    Drain { id: Uuid },
    /// Forget a node; refused while it holds the only copy of a chunk.
    Remove { id: Uuid },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Create a key and print its id and secret.
    Create { name: String },
    /// List keys (ids and names, never secrets).
    List,
    /// Delete a key.
    Delete { id: String },
}

pub async fn run_admin(args: AdminArgs) -> CliResult {
    let meta = crate::meta::open(&args.meta).await?;
    match args.command {
        AdminCommand::Key(KeyCommand::Create { name }) => {
            let key = generate_key(&name);
            meta.create_key(&key).await?;
            println!("AccessKeyId: {}", key.id);
            println!("SecretAccessKey: {}", key.secret);
        }
        AdminCommand::Key(KeyCommand::List) => {
            println!("{:<22} {:<25} NAME", "ACCESS KEY ID", "CREATED");
            for key in meta.list_keys().await? {
                println!(
                    "{:<22} {:<25} {}",
                    key.id,
                    crate::s3::date::iso8601(key.created),
                    key.name
                );
            }
        }
        AdminCommand::Key(KeyCommand::Delete { id }) => {
            if !meta.delete_key(&id).await? {
                return Err(format!("no access key {id}").into());
            }
            println!("deleted {id}");
        }
        AdminCommand::Node(command) => run_node(&args.meta, args.node_ca.load()?, command).await?,
        AdminCommand::Fsck => run_fsck(&args.meta, args.node_ca.load()?).await?,
    }
    Ok(())
}

/// How long an admin command waits for a data node.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

fn cluster_key() -> Result<ClusterKey, String> {
    Ok(ClusterKey::from_secret(&cluster_secret_from_env()?))
}

async fn run_node(url: &str, tls: Option<NodeTls>, command: NodeCommand) -> CliResult {
    let meta = crate::meta::open_all(url).await?;
    let cluster = meta.cluster;
    match command {
        NodeCommand::Add { url, zone } => {
            let url = url.trim_end_matches('/').to_owned();
            let health = RemoteNode::new(&url, cluster_key()?)?
                .with_tls(tls.as_ref())
                .health()
                .await?;
            let id: Uuid = health
                .node_id
                .parse()
                .map_err(|_| format!("{url} sent an invalid node id {:?}", health.node_id))?;
            cluster
                .add_node(&NodeInfo {
                    id,
                    address: url.clone(),
                    zone: zone.or(health.zone),
                    state: NodeState::Up,
                    capacity: health.capacity,
                    used: health.used,
                    free: health.free,
                    last_seen: Some(now()),
                    added: now(),
                })
                .await?;
            println!("added node {id} at {url}");
        }
        NodeCommand::List => {
            let counts = cluster.replica_counts().await?;
            println!(
                "{:<36}  {:<24} {:<8} {:<9} {:>14} {:>14} {:>8}",
                "ID", "ADDRESS", "ZONE", "STATE", "CAPACITY", "USED", "CHUNKS"
            );
            for n in cluster.nodes().await? {
                let chunks = counts.iter().find(|(id, _)| *id == n.id).map_or(0, |c| c.1);
                println!(
                    "{:<36}  {:<24} {:<8} {:<9} {:>14} {:>14} {:>8}",
                    n.id,
                    n.address,
                    n.zone.as_deref().unwrap_or("-"),
                    n.state.as_str(),
                    n.capacity.map_or("-".to_owned(), |c| c.to_string()),
                    n.used,
                    chunks
                );
            }
        }
        NodeCommand::Drain { id } => {
            if !cluster.set_node_state(id, NodeState::Draining).await? {
                return Err(format!("no node {id}").into());
            }
            println!("draining {id}: the coordinator moves its chunks to other nodes");
        }
        NodeCommand::Remove { id } => {
            let nodes = cluster.nodes().await?;
            let readable = |n: &Uuid| {
                *n != id
                    && nodes
                        .iter()
                        .any(|x| x.id == *n && x.state != NodeState::Down)
            };
            let mut only_copies = 0u64;
            let mut after = None;
            loop {
                let page = cluster.node_chunks(id, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = Some(*last);
                for chunk in page {
                    if !cluster.replicas(chunk).await?.iter().any(readable) {
                        only_copies += 1;
                    }
                }
            }
            if only_copies > 0 {
                return Err(format!(
                    "node {id} holds the only copy of {only_copies} chunks; drain it first"
                )
                .into());
            }
            if !cluster.remove_node(id).await? {
                return Err(format!("no node {id}").into());
            }
            println!("removed {id}");
        }
    }
    Ok(())
}

async fn run_fsck(url: &str, tls: Option<NodeTls>) -> CliResult {
    let meta = crate::meta::open_all(url).await?;
    let replicas = match meta.objects.setting(REPLICAS_SETTING).await? {
        Some(r) => r
            .parse()
            .map_err(|_| format!("stored replica count {r:?} is invalid"))?,
        None => {
            return Err("no gateway has used this store yet (no replica count recorded)".into());
        }
    };
    let store = ReplicatedStore::new(
        meta.cluster.clone(),
        cluster_key()?,
        tls,
        ReplicationConfig {
            replicas,
            write_quorum: 1,
            chunk_size: 0,
            stall_timeout: NODE_TIMEOUT,
        },
    );
    let cluster: Arc<dyn crate::meta::ClusterMeta> = meta.cluster;
    let report = crate::coordinator::fsck::fsck(&cluster, &store).await?;
    println!("chunks:                {}", report.chunks);
    println!(
        "below {replicas} live copies:    {}",
        report.under_replicated
    );
    println!("missing replicas:      {}", report.missing);
    println!("corrupt replicas:      {}", report.corrupt);
    println!("orphan chunk files:    {}", report.orphans);
    println!("unreadable chunks:     {}", report.unreadable.len());
    for (chunk, object) in &report.unreadable {
        println!(
            "  {chunk}  {}",
            object
                .as_deref()
                .unwrap_or("(part of an upload in progress)")
        );
    }
    if !report.unreadable.is_empty() {
        return Err("some objects cannot be read".into());
    }
    println!(
        "{}",
        if report.clean() {
            "clean"
        } else {
            "readable, repairs pending"
        }
    );
    Ok(())
}
