//! The data node: an HTTP/1.1 service (HTTPS with `--tls-cert`) through which gateways store
//! chunks on this machine's disk (a `LocalChunkStore` under `DIR/chunks`). Every request is
//! authenticated with the cluster key and accepted once (`auth`); refusals are logged, a few a
//! second (`crate::audit`). Uploads stream to disk while their CRC32C is computed and are committed only
//! when it matches the one the client sends as a trailer and the trailer's HMAC covers the body
//! received; a chunk id already stored is refused, as chunks never change (`put`). Reads stream
//! blocks verified against their on-disk CRC32C (`handlers`). Capacity is enforced by reserving
//! space before a chunk's bytes arrive (`usage`); connections are capped and idle ones closed
//! (`crate::limits`, shared with the S3 server). `remote::RemoteNode` is the client side of this protocol.

mod handlers;
mod put;
mod response;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod usage;

use std::convert::Infallible;
use std::fmt::Display;
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::audit::RateLimitedLog;
use crate::chunk::ChunkId;
use crate::datanode::auth::{AUTH_HEADER, AuthError, ClusterKey, ReplayGuard, Signed, unix_now};
use crate::datanode::local::LocalChunkStore;
use crate::datanode::{ChunkError, ChunkStore};
use crate::limits::{ConnectionLimit, HeaderTimeouts, OVERFLOW_CONNECTIONS, Slot};
// The request parsers are pure and public so that the fuzz targets (fuzz/) reach them.
pub use handlers::{RangeError, parse_list_query, parse_range};
pub use put::parse_crc;
use response::{chunk_error_response, text};
use usage::{Counts, Disk, Usage};

/// Request (or trailer) and response header with a chunk's CRC32C as 8 lowercase hex digits.
pub const CRC_HEADER: &str = "x-cairn-crc32c";
/// Request header: the most bytes the chunk being uploaded can hold.
pub const RESERVE_HEADER: &str = "x-cairn-reserve";
/// Request header: what to do with the uploaded chunk's pages in the page cache; its only value
/// is `drop-behind` (`Caching::DropBehind`), and without it they are kept.
pub const CACHE_HEADER: &str = "x-cairn-cache";
pub const DROP_BEHIND: &str = "drop-behind";
/// Response header: a stored chunk's length in bytes.
pub const LENGTH_HEADER: &str = "x-cairn-length";
/// Response header or trailer naming a failure the client must tell apart; its only value is
/// `corrupt`, with the chunk offset of the damage in `x-cairn-offset`.
pub const ERROR_HEADER: &str = "x-cairn-error";
pub const OFFSET_HEADER: &str = "x-cairn-offset";
pub const CORRUPT: &str = "corrupt";
/// Request header of a read whose client verifies the bytes itself (its only value is `1`): the
/// node widens the range to whole blocks and sends the chunk's whole CRC table before them, with
/// the block size in `x-cairn-block-size`.
pub const WITH_TABLE_HEADER: &str = "x-cairn-with-table";
pub const BLOCK_SIZE_HEADER: &str = "x-cairn-block-size";
/// The most ids one inventory page returns, whatever the client asks: about 350 KB of JSON.
pub const MAX_LIST_LIMIT: usize = 10_000;
const DEFAULT_LIST_LIMIT: usize = 1_000;

/// How long an upload may send nothing before the node drops it and frees its reservation.
const UPLOAD_STALL: Duration = Duration::from_secs(60);
/// Connections served at once unless `--max-connections` says otherwise: far more than the
/// gateways of a cluster keep open to one node (8 idle per gateway, plus one per transfer in
/// flight), far fewer than a default limit of open files leaves room for.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// How long a connection let in beyond the cap (`OVERFLOW_CONNECTIONS`, answered its health
/// check or a 503 that sends the client elsewhere) has to send its request's headers: a health
/// check sends them at once, an idle socket loses its slot quickly.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a connection may take to send a request's headers, from when it opened or its
/// previous answer ended, unless `--idle-timeout` says otherwise: longer than a gateway keeps a
/// pooled connection idle (`remote`), so that a node never closes one a gateway is reusing.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Refusals logged a second, at once and after: enough to see who is knocking and why, few
/// enough that a flood costs kilobytes a second.
const AUDIT_LINES_PER_SECOND: u32 = 20;
/// The most of a request's path an audit line shows: the path is the requester's to choose.
const MAX_PATH_SHOWN: usize = 120;
/// Ids per page when totalling the chunks already on disk at start.
const STARTUP_PAGE: usize = 1_000;
/// Stripes of the lock that orders a commit or delete with its accounting, so two operations on
/// one id cannot count the same chunk twice, while different ids rarely wait for each other.
const ID_LOCKS: usize = 64;

const NODE_ID_FILE: &str = "node-id";
const CHUNKS_DIR: &str = "chunks";

type Body = UnsyncBoxBody<Bytes, io::Error>;
type Response = http::Response<Body>;

/// What `cairn datanode` is started with.
#[derive(Clone)]
pub struct DataNodeConfig {
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// The most chunk bytes this node stores; `None` for no limit but the disk's.
    pub capacity: Option<u64>,
    /// Free space kept on the data directory's filesystem; `None` for the default (see `usage`).
    pub reserve: Option<u64>,
    pub zone: Option<String>,
    pub key: ClusterKey,
    /// Whether chunks are written past the page cache (see `LocalChunkStore::with_direct_writes`).
    pub direct_writes: bool,
    /// Serves HTTPS with this certificate when given.
    pub tls: Option<TlsAcceptor>,
    /// Connections served at once; `OVERFLOW_CONNECTIONS` more are answered 503 (or their
    /// health check), any beyond those closed at once.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers (see `DEFAULT_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
}

/// The body of `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// The node's identity (a hyphenated UUID), stable across restarts and address changes.
    pub node_id: String,
    pub zone: Option<String>,
    pub capacity: Option<u64>,
    /// Bytes of committed chunk data.
    pub used: u64,
    /// Room left for new chunks: the capacity left or the filesystem's free space above the
    /// node's reserve, whichever is less, uploads in flight counted at their reservation.
    /// Placement skips a node with less than a chunk's room.
    pub free: Option<u64>,
    pub chunk_count: u64,
}

/// The body of `GET /chunks`: ids in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    pub chunks: Vec<String>,
}

/// The id in a URL or an inventory: exactly 32 lowercase hex digits, the only spelling a node
/// writes, so that no other string ever reaches a file name.
pub fn parse_chunk_id(text: &str) -> Option<ChunkId> {
    let id: ChunkId = text.parse().ok()?;
    (id.to_string() == text).then_some(id)
}

/// Runs a data node until `shutdown` completes, then drains.
pub async fn run(config: DataNodeConfig, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let node = DataNode::bind(config).await?;
    let scheme = if node.https { "https" } else { "http" };
    println!(
        "Cairn data node {} listening on {scheme}://{}",
        node.node_id(),
        node.local_addr()
    );
    node.serve(shutdown).await
}

/// A data node with its store opened and its port bound, not yet serving.
pub struct DataNode {
    listener: TcpListener,
    addr: SocketAddr,
    node: Arc<Node>,
    https: bool,
    limit: ConnectionLimit,
    /// Held while the node runs: one process per data directory.
    _lock: std::fs::File,
}

impl DataNode {
    /// Loads (or creates) the node's identity, opens its chunk store, removes what a crash left
    /// half-written, totals the stored bytes, and binds the listening socket.
    pub async fn bind(config: DataNodeConfig) -> io::Result<DataNode> {
        let lock = crate::net::lock_data_dir(&config.data)?;
        let id = load_or_create_node_id(config.data.clone()).await?;
        let store = LocalChunkStore::open(config.data.join(CHUNKS_DIR))
            .await
            .map_err(io::Error::other)?
            .with_direct_writes(config.direct_writes);
        store.remove_temp_files().await.map_err(io::Error::other)?;
        let counts = count_stored(&store).await.map_err(io::Error::other)?;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let usage = Arc::new(Usage {
            capacity: config.capacity,
            disk: Some(Disk::new(config.data.join(CHUNKS_DIR), config.reserve)?),
            counts: Mutex::new(counts),
        });
        let free = usage.free(&counts);
        tracing::info!(node_id = %id, used = counts.used, chunks = counts.chunks, free, "data node ready");
        if free == Some(0) {
            tracing::warn!("no room for new chunks: this node serves reads and deletes only");
        }
        let node = Node {
            id,
            zone: config.zone,
            store,
            usage,
            key: config.key,
            replays: ReplayGuard::default(),
            audit: RateLimitedLog::new(
                "refused data node requests",
                AUDIT_LINES_PER_SECOND,
                AUDIT_LINES_PER_SECOND,
            ),
            id_locks: (0..ID_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
        };
        Ok(DataNode {
            listener,
            addr,
            node: Arc::new(node),
            https: config.tls.is_some(),
            limit: ConnectionLimit::new(
                config.max_connections,
                OVERFLOW_CONNECTIONS,
                config.tls,
                HeaderTimeouts {
                    served: config.idle_timeout,
                    overflow: OVERFLOW_HEADER_TIMEOUT,
                },
            ),
            _lock: lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn node_id(&self) -> uuid::Uuid {
        self.node.id
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish within a deadline.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let DataNode {
            listener,
            node,
            limit,
            ..
        } = self;
        crate::net::accept_until(listener, shutdown, move |stream, peer, watcher| {
            let node = node.clone();
            let admission = limit.admit();
            limit.serve(admission, stream, peer, watcher, move |req, slot| {
                let node = node.clone();
                async move {
                    let resp = match slot {
                        Slot::Served => node.respond(req, peer).await,
                        Slot::Overflow => node.respond_saturated(req, peer).await,
                    };
                    Ok::<_, Infallible>(resp)
                }
            })
        })
        .await
    }
}

/// The identity in `DIR/node-id`, created and made durable on first start.
async fn load_or_create_node_id(dir: PathBuf) -> io::Result<uuid::Uuid> {
    tokio::task::spawn_blocking(move || {
        fs::create_dir_all(&dir)?;
        let path = dir.join(NODE_ID_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => uuid::Uuid::try_parse(text.trim()).map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not a node id: {err}", path.display()),
                )
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let id = uuid::Uuid::new_v4();
                // Written whole or not at all: a crash must not leave a half-written identity.
                let temp = dir.join(format!("{NODE_ID_FILE}.tmp"));
                let mut file = File::create(&temp)?;
                file.write_all(format!("{}\n", id.hyphenated()).as_bytes())?;
                file.sync_all()?;
                fs::rename(&temp, &path)?;
                File::open(&dir)?.sync_all()?;
                Ok(id)
            }
            Err(err) => Err(err),
        }
    })
    .await
    .map_err(io::Error::other)?
}

/// Totals the chunks already stored, as the starting point of the usage counters.
async fn count_stored(store: &LocalChunkStore) -> Result<Counts, ChunkError> {
    let mut counts = Counts::default();
    let mut after = None;
    loop {
        let page = store.list(after, STARTUP_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(counts);
        };
        after = Some(*last);
        for id in page {
            if let Some(size) = stored_size(store, id).await? {
                counts.used = counts.used.saturating_add(size);
                counts.chunks += 1;
            }
        }
    }
}

/// The bytes a stored chunk counts for: its data length, or for a chunk too damaged to tell,
/// its file's length, so that it still counts until deleted.
async fn stored_size(store: &LocalChunkStore, id: ChunkId) -> Result<Option<u64>, ChunkError> {
    match store.len(id).await {
        Err(ChunkError::Corrupt { .. }) => match tokio::fs::metadata(store.path_of(id)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        },
        other => other,
    }
}

/// What an upload's body is checked against: the request it came with.
struct Upload<'a> {
    peer: SocketAddr,
    target: &'a str,
    signed: Signed,
}

/// The operations of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    PutChunk(ChunkId),
    GetChunk(ChunkId),
    HeadChunk(ChunkId),
    DeleteChunk(ChunkId),
    ListChunks,
    Health,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed(&'static str),
    BadChunkId,
}

/// The operation a method and path (without the query) ask for.
pub fn route(method: &Method, path: &str) -> Result<Route, RouteError> {
    const CHUNK_METHODS: &str = "GET, HEAD, PUT, DELETE";
    match path {
        "/health" if method == Method::GET => Ok(Route::Health),
        "/health" => Err(RouteError::MethodNotAllowed("GET")),
        "/chunks" if method == Method::GET => Ok(Route::ListChunks),
        "/chunks" => Err(RouteError::MethodNotAllowed("GET")),
        _ => {
            let raw = path.strip_prefix("/chunks/").ok_or(RouteError::NotFound)?;
            let id = parse_chunk_id(raw).ok_or(RouteError::BadChunkId)?;
            match *method {
                Method::PUT => Ok(Route::PutChunk(id)),
                Method::GET => Ok(Route::GetChunk(id)),
                Method::HEAD => Ok(Route::HeadChunk(id)),
                Method::DELETE => Ok(Route::DeleteChunk(id)),
                _ => Err(RouteError::MethodNotAllowed(CHUNK_METHODS)),
            }
        }
    }
}

struct Node {
    id: uuid::Uuid,
    zone: Option<String>,
    store: LocalChunkStore,
    usage: Arc<Usage>,
    key: ClusterKey,
    replays: ReplayGuard,
    /// Refused requests, logged a few a second (`audit_refusal`).
    audit: RateLimitedLog,
    id_locks: Vec<tokio::sync::Mutex<()>>,
}

impl Node {
    async fn respond(&self, req: http::Request<Incoming>, peer: SocketAddr) -> Response {
        let (parts, body) = req.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        // A header that is not visible ASCII is present but malformed, not missing.
        let auth = parts
            .headers
            .get(AUTH_HEADER)
            .map(|value| value.to_str().unwrap_or_default());
        let now = unix_now();
        let signed = self
            .key
            .verify(parts.method.as_str(), target, auth, now)
            .and_then(|signed| self.replays.remember(signed, now).map(|()| signed));
        let signed = match signed {
            Ok(signed) => signed,
            Err(err) => return self.refuse(peer, &parts.method, target, err),
        };
        let route = match route(&parts.method, parts.uri.path()) {
            Ok(route) => route,
            Err(RouteError::NotFound) => return text(StatusCode::NOT_FOUND, "no such route"),
            Err(RouteError::BadChunkId) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "a chunk id is 32 lowercase hex digits",
                );
            }
            Err(RouteError::MethodNotAllowed(allow)) => {
                let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                return resp;
            }
        };
        let result = match route {
            Route::PutChunk(id) => {
                let request = Upload {
                    peer,
                    target,
                    signed,
                };
                self.put_chunk(id, request, &parts.headers, body).await
            }
            Route::GetChunk(id) => self.get_chunk(id, &parts.headers).await,
            Route::HeadChunk(id) => self.head_chunk(id).await,
            Route::DeleteChunk(id) => self.delete_chunk(id).await,
            Route::ListChunks => {
                self.list_chunks(parts.uri.query().unwrap_or_default())
                    .await
            }
            Route::Health => Ok(self.health()),
        };
        result.unwrap_or_else(|err| chunk_error_response(&parts.method, target, err))
    }

    /// The answer to a connection beyond the cap: its health check, so the coordinator keeps
    /// seeing the node up while clients are turned away, or a 503.
    async fn respond_saturated(&self, req: http::Request<Incoming>, peer: SocketAddr) -> Response {
        if req.method() == Method::GET && req.uri().path() == "/health" {
            return self.respond(req, peer).await;
        }
        tracing::debug!(%peer, method = %req.method(), "request refused: too many connections");
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "data node busy: too many connections",
        )
    }

    /// The answer to a request whose authentication failed, logged for the audit trail.
    fn refuse(&self, peer: SocketAddr, method: &Method, target: &str, err: AuthError) -> Response {
        self.audit_refusal(peer, method, target, &err);
        let status = match err {
            AuthError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        };
        text(status, err.to_string())
    }

    /// Logs a refused request at warn (rate-limited): its source address, method, path (cut
    /// short) and the reason; never a header's value, which may carry a signature.
    fn audit_refusal(&self, peer: SocketAddr, method: &Method, target: &str, reason: &dyn Display) {
        self.audit.log(|| {
            let mut cut = target.len().min(MAX_PATH_SHOWN);
            while !target.is_char_boundary(cut) {
                cut -= 1;
            }
            let path = &target[..cut];
            tracing::warn!(
                target: "cairn::audit",
                %peer,
                %method,
                path,
                %reason,
                "data node request refused"
            );
        });
    }

    fn id_lock(&self, id: ChunkId) -> &tokio::sync::Mutex<()> {
        &self.id_locks[usize::from(id.0.as_bytes()[15]) % self.id_locks.len()]
    }
}
