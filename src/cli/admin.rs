//! `cairn admin`: accounts, keys, stored policies, data nodes and fsck, straight against the
//! metadata store. Every command prints text for people, or with `--json` one JSON value for
//! scripts and the console: an object for what one command did, an array for a listing.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{CliResult, REPLICAS_SETTING, generate_account_id, generate_key};
use crate::datanode::auth::{ClusterKey, cluster_secret_from_env};
use crate::datanode::remote::{NodeTls, RemoteNode};
use crate::datanode::replicated::{ReplicatedStore, ReplicationConfig};
use crate::gateway::now;
use crate::iam::policy::{Policy, PolicyKind};
use crate::meta::{
    ADMIN_ACCOUNT, AccessKey, Account, DeleteAccount, MetaError, MetaStore, NodeInfo, NodeState,
};
use crate::s3::date::iso8601;

#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    /// The metadata store, e.g. sqlite://cairn-data/meta.db
    #[arg(long)]
    meta: String,
    /// Print one JSON value instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    node_ca: super::NodeCaArg,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Accounts, which own buckets and objects and hold keys.
    #[command(subcommand)]
    User(UserCommand),
    /// S3 access keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Stored IAM identity policies, attached to accounts.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Data nodes of a cluster (needs CAIRN_CLUSTER_SECRET).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Check every replica of every chunk; exits non-zero if an object cannot be read.
    Fsck,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create an account with a new random canonical id.
    Create {
        name: String,
        /// The name S3 shows as the owner's DisplayName (default: the name).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Accounts with their canonical ids.
    List,
    /// Delete an account with its keys and policy attachments; refused while it owns buckets.
    Delete {
        name: String,
        /// Give its buckets to the admin account instead of refusing.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Create a key and print its id and secret.
    Create {
        /// What the key is for (default: the user's name).
        name: Option<String>,
        /// The account the key acts for.
        #[arg(long, default_value = ADMIN_ACCOUNT)]
        user: String,
        /// Limit the key to a policy: readonly, readwrite, writeonly or a stored policy's name.
        #[arg(long)]
        policy: Option<String>,
    },
    /// List keys (ids, names, users and policies, never secrets).
    List {
        /// Only the keys of this account.
        #[arg(long)]
        user: Option<String>,
    },
    /// Delete a key; requests signed with it are refused from then on.
    Delete { id: String },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Store an identity policy (IAM JSON) from FILE, or from stdin for `-`; replaces one of
    /// the same name, which changes the rights of every account and key using it.
    Create { name: String, file: String },
    /// Stored policies and the accounts they are attached to.
    List,
    /// Delete a stored policy, detaching it from every account.
    Delete { name: String },
    /// Attach a stored policy to an account.
    Attach {
        name: String,
        #[arg(long)]
        user: String,
    },
    /// Detach a policy from an account.
    Detach {
        name: String,
        #[arg(long)]
        user: String,
    },
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

/// The canned policies a key may name besides stored ones (their documents are in
/// `iam::policy`); a stored policy may not take their names.
const CANNED_POLICIES: [&str; 3] = ["readonly", "readwrite", "writeonly"];

/// What a command prints: its text, or its JSON value with `--json`.
struct Output {
    json: bool,
}

impl Output {
    fn print(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            let text = text();
            if !text.is_empty() {
                println!("{}", text.trim_end_matches('\n'));
            }
        }
    }
}

pub async fn run_admin(args: AdminArgs) -> CliResult {
    let out = Output { json: args.json };
    match args.command {
        AdminCommand::Node(command) => {
            return run_node(&args.meta, args.node_ca.load()?, command, &out).await;
        }
        AdminCommand::Fsck => return run_fsck(&args.meta, args.node_ca.load()?, &out).await,
        _ => {}
    }
    let meta = crate::meta::open(&args.meta).await?;
    let meta = meta.as_ref();
    match args.command {
        AdminCommand::User(command) => run_user(meta, command, &out).await,
        AdminCommand::Key(command) => run_key(meta, command, &out).await,
        AdminCommand::Policy(command) => run_policy(meta, command, &out).await,
        AdminCommand::Node(_) | AdminCommand::Fsck => Ok(()),
    }
}

/// The account named `name`, or an error saying there is none.
async fn user(meta: &dyn MetaStore, name: &str) -> Result<Account, Box<dyn std::error::Error>> {
    match meta.account_by_name(name).await? {
        Some(account) => Ok(account),
        None => Err(format!("no user {name}").into()),
    }
}

fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "display_name": a.display_name,
        "created": iso8601(a.created),
    })
}

async fn run_user(meta: &dyn MetaStore, command: UserCommand, out: &Output) -> CliResult {
    match command {
        UserCommand::Create { name, display_name } => {
            if name.is_empty() {
                return Err("a user name cannot be empty".into());
            }
            let account = Account {
                id: generate_account_id(),
                display_name: display_name.unwrap_or_else(|| name.clone()),
                name,
                created: now(),
            };
            if !meta.create_account(&account).await? {
                return Err(format!("user {} already exists", account.name).into());
            }
            out.print(account_json(&account), || {
                format!(
                    "created user {}\ncanonical id: {}",
                    account.name, account.id
                )
            });
        }
        UserCommand::List => {
            let accounts = meta.list_accounts().await?;
            out.print(accounts.iter().map(account_json).collect(), || {
                let mut text = format!(
                    "{:<64}  {:<25} {:<20} DISPLAY NAME\n",
                    "ID", "CREATED", "NAME"
                );
                for a in &accounts {
                    text += &format!(
                        "{:<64}  {:<25} {:<20} {}\n",
                        a.id,
                        iso8601(a.created),
                        a.name,
                        a.display_name
                    );
                }
                text
            });
        }
        UserCommand::Delete { name, force } => {
            if name == ADMIN_ACCOUNT {
                return Err(format!("the {ADMIN_ACCOUNT} user cannot be deleted").into());
            }
            let account = user(meta, &name).await?;
            let buckets = meta.list_buckets(Some(&account.id)).await?.len();
            match meta.delete_account(&account.id, force).await? {
                DeleteAccount::Deleted => {}
                DeleteAccount::NoSuchAccount => return Err(format!("no user {name}").into()),
                DeleteAccount::OwnsBuckets => {
                    return Err(format!(
                        "user {name} owns {buckets} bucket(s): delete them first, or use --force \
                         to give them to {ADMIN_ACCOUNT}"
                    )
                    .into());
                }
            }
            let given = if force { buckets } else { 0 };
            out.print(
                json!({"ok": true, "user": name, "id": account.id, "buckets_given_to_admin": given}),
                || match given {
                    0 => format!("deleted user {name}"),
                    n => format!("deleted user {name}; its {n} bucket(s) now belong to {ADMIN_ACCOUNT}"),
                },
            );
        }
    }
    Ok(())
}

fn key_json(key: &AccessKey, user: &str) -> Value {
    json!({
        "access_key_id": key.id,
        "name": key.name,
        "user": user,
        "policy": key.policy,
        "created": iso8601(key.created),
    })
}

async fn run_key(meta: &dyn MetaStore, command: KeyCommand, out: &Output) -> CliResult {
    match command {
        KeyCommand::Create {
            name,
            user: user_name,
            policy,
        } => {
            let account = user(meta, &user_name).await?;
            if let Some(policy) = &policy
                && !CANNED_POLICIES.contains(&policy.as_str())
                && meta.policy(policy).await?.is_none()
            {
                return Err(format!(
                    "no policy {policy}: name readonly, readwrite, writeonly or a stored policy"
                )
                .into());
            }
            let key = generate_key(&name.unwrap_or(user_name.clone()), &account.id, policy);
            match meta.create_key(&key).await {
                Err(MetaError::NoSuchAccount) => {
                    return Err(format!("no user {user_name}").into());
                }
                other => other?,
            }
            out.print(
                json!({
                    "access_key_id": key.id,
                    "secret_access_key": key.secret,
                    "user": user_name,
                    "policy": key.policy,
                }),
                || format!("AccessKeyId: {}\nSecretAccessKey: {}", key.id, key.secret),
            );
        }
        KeyCommand::List { user: only } => {
            let accounts = meta.list_accounts().await?;
            let only = match &only {
                Some(name) => Some(user(meta, name).await?.id),
                None => None,
            };
            let name_of = |id: &str| {
                accounts
                    .iter()
                    .find(|a| a.id == id)
                    .map_or_else(|| id.to_owned(), |a| a.name.clone())
            };
            let keys: Vec<(AccessKey, String)> = meta
                .list_keys()
                .await?
                .into_iter()
                .filter(|k| only.as_ref().is_none_or(|id| *id == k.account))
                .map(|k| {
                    let user = name_of(&k.account);
                    (k, user)
                })
                .collect();
            out.print(keys.iter().map(|(k, u)| key_json(k, u)).collect(), || {
                let mut text = format!(
                    "{:<22} {:<25} {:<16} {:<12} NAME\n",
                    "ACCESS KEY ID", "CREATED", "USER", "POLICY"
                );
                for (k, u) in &keys {
                    text += &format!(
                        "{:<22} {:<25} {:<16} {:<12} {}\n",
                        k.id,
                        iso8601(k.created),
                        u,
                        k.policy.as_deref().unwrap_or("-"),
                        k.name
                    );
                }
                text
            });
        }
        KeyCommand::Delete { id } => {
            if !meta.delete_key(&id).await? {
                return Err(format!("no access key {id}").into());
            }
            out.print(json!({"ok": true, "access_key_id": id}), || {
                format!("deleted {id}")
            });
        }
    }
    Ok(())
}

/// The document at `file`, or stdin for `-`.
fn read_document(file: &str) -> Result<String, Box<dyn std::error::Error>> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}").into())
}

async fn run_policy(meta: &dyn MetaStore, command: PolicyCommand, out: &Output) -> CliResult {
    match command {
        PolicyCommand::Create { name, file } => {
            if name.is_empty() || CANNED_POLICIES.contains(&name.as_str()) {
                return Err(format!("{name:?} is a canned policy's name or empty").into());
            }
            let document = read_document(&file)?;
            Policy::parse(&document, PolicyKind::Identity)
                .map_err(|e| format!("policy {name} is invalid: {e}"))?;
            meta.put_policy(&name, &document).await?;
            out.print(json!({"ok": true, "policy": name}), || {
                format!("stored policy {name}")
            });
        }
        PolicyCommand::List => {
            let accounts = meta.list_accounts().await?;
            let mut attached: Vec<(String, Vec<String>)> = Vec::new();
            for (name, _) in meta.list_policies().await? {
                attached.push((name, Vec::new()));
            }
            for account in &accounts {
                for (policy, _) in meta.account_policies(&account.id).await? {
                    if let Some((_, users)) = attached.iter_mut().find(|(n, _)| *n == policy) {
                        users.push(account.name.clone());
                    }
                }
            }
            let values = attached
                .iter()
                .map(|(name, users)| json!({"name": name, "users": users}))
                .collect();
            out.print(values, || {
                let mut text = format!("{:<24} USERS\n", "POLICY");
                for (name, users) in &attached {
                    text += &format!("{:<24} {}\n", name, users.join(","));
                }
                text
            });
        }
        PolicyCommand::Delete { name } => {
            if !meta.delete_policy(&name).await? {
                return Err(format!("no policy {name}").into());
            }
            out.print(json!({"ok": true, "policy": name}), || {
                format!("deleted policy {name}")
            });
        }
        PolicyCommand::Attach {
            name,
            user: user_name,
        } => {
            let account = user(meta, &user_name).await?;
            if !meta.attach_policy(&account.id, &name).await? {
                return Err(format!("no policy {name}").into());
            }
            out.print(
                json!({"ok": true, "policy": name, "user": user_name}),
                || format!("attached {name} to {user_name}"),
            );
        }
        PolicyCommand::Detach {
            name,
            user: user_name,
        } => {
            let account = user(meta, &user_name).await?;
            if !meta.detach_policy(&account.id, &name).await? {
                return Err(format!("policy {name} is not attached to {user_name}").into());
            }
            out.print(
                json!({"ok": true, "policy": name, "user": user_name}),
                || format!("detached {name} from {user_name}"),
            );
        }
    }
    Ok(())
}

/// How long an admin command waits for a data node.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

fn cluster_key() -> Result<ClusterKey, String> {
    Ok(ClusterKey::from_secret(&cluster_secret_from_env()?))
}

async fn run_node(
    url: &str,
    tls: Option<NodeTls>,
    command: NodeCommand,
    out: &Output,
) -> CliResult {
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
            out.print(
                json!({"ok": true, "id": id.to_string(), "address": url}),
                || format!("added node {id} at {url}"),
            );
        }
        NodeCommand::List => {
            let counts = cluster.replica_counts().await?;
            let nodes: Vec<(NodeInfo, u64)> = cluster
                .nodes()
                .await?
                .into_iter()
                .map(|n| {
                    let chunks = counts.iter().find(|(id, _)| *id == n.id).map_or(0, |c| c.1);
                    (n, chunks)
                })
                .collect();
            let values = nodes
                .iter()
                .map(|(n, chunks)| {
                    json!({
                        "id": n.id.to_string(),
                        "address": n.address,
                        "zone": n.zone,
                        "state": n.state.as_str(),
                        "capacity": n.capacity,
                        "used": n.used,
                        "free": n.free,
                        "chunks": chunks,
                        "last_seen": n.last_seen.map(iso8601),
                        "added": iso8601(n.added),
                    })
                })
                .collect();
            out.print(values, || {
                let mut text = format!(
                    "{:<36}  {:<24} {:<8} {:<9} {:>14} {:>14} {:>8}\n",
                    "ID", "ADDRESS", "ZONE", "STATE", "CAPACITY", "USED", "CHUNKS"
                );
                for (n, chunks) in &nodes {
                    text += &format!(
                        "{:<36}  {:<24} {:<8} {:<9} {:>14} {:>14} {:>8}\n",
                        n.id,
                        n.address,
                        n.zone.as_deref().unwrap_or("-"),
                        n.state.as_str(),
                        n.capacity.map_or("-".to_owned(), |c| c.to_string()),
                        n.used,
                        chunks
                    );
                }
                text
            });
        }
        NodeCommand::Drain { id } => {
            if !cluster.set_node_state(id, NodeState::Draining).await? {
                return Err(format!("no node {id}").into());
            }
            out.print(
                json!({"ok": true, "id": id.to_string(), "state": "draining"}),
                || format!("draining {id}: the coordinator moves its chunks to other nodes"),
            );
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
            out.print(json!({"ok": true, "id": id.to_string()}), || {
                format!("removed {id}")
            });
        }
    }
    Ok(())
}

async fn run_fsck(url: &str, tls: Option<NodeTls>, out: &Output) -> CliResult {
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
    let unreadable: Vec<Value> = report
        .unreadable
        .iter()
        .map(|(chunk, object)| json!({"chunk": chunk.to_string(), "object": object}))
        .collect();
    let value = json!({
        "replicas": replicas,
        "chunks": report.chunks,
        "under_replicated": report.under_replicated,
        "missing": report.missing,
        "corrupt": report.corrupt,
        "orphans": report.orphans,
        "unreadable": unreadable,
        "clean": report.clean(),
    });
    out.print(value, || {
        let mut text = format!("chunks:                {}\n", report.chunks);
        text += &format!(
            "below {replicas} live copies:    {}\n",
            report.under_replicated
        );
        text += &format!("missing replicas:      {}\n", report.missing);
        text += &format!("corrupt replicas:      {}\n", report.corrupt);
        text += &format!("orphan chunk files:    {}\n", report.orphans);
        text += &format!("unreadable chunks:     {}\n", report.unreadable.len());
        for (chunk, object) in &report.unreadable {
            text += &format!(
                "  {chunk}  {}\n",
                object
                    .as_deref()
                    .unwrap_or("(part of an upload in progress)")
            );
        }
        if report.unreadable.is_empty() {
            text += if report.clean() {
                "clean"
            } else {
                "readable, repairs pending"
            };
        }
        text
    });
    if !report.unreadable.is_empty() {
        return Err("some objects cannot be read".into());
    }
    Ok(())
}
