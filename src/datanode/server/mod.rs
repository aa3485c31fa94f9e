//! The data node: an HTTP/1.1 service through which gateways store chunks on this machine's disk
//! (a `LocalChunkStore` under `DIR/chunks`). Every request is authenticated with the cluster key
//! (`auth`). Uploads stream to disk while their CRC32C is computed and are committed only when it
//! matches the one the client sends as a trailer (`put`); reads stream blocks verified against
//! their on-disk CRC32C (`handlers`). Capacity is enforced by reserving space before a chunk's
//! bytes arrive (`usage`). `remote::RemoteNode` is the client side of this protocol.

mod handlers;
mod put;
mod response;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod usage;

use std::convert::Infallible;
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
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::chunk::ChunkId;
use crate::datanode::auth::{AUTH_HEADER, ClusterKey, unix_now};
use crate::datanode::local::LocalChunkStore;
use crate::datanode::{ChunkError, ChunkStore};
use response::{chunk_error_response, text};
use usage::{Counts, Usage};

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
#[derive(Debug, Clone)]
pub struct DataNodeConfig {
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// The most chunk bytes this node stores; `None` for no limit but the disk's.
    pub capacity: Option<u64>,
    pub zone: Option<String>,
    pub key: ClusterKey,
    /// Whether chunks are written past the page cache (see `LocalChunkStore::with_direct_writes`).
    pub direct_writes: bool,
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
    /// Capacity left for new chunks, uploads in flight counted at their reservation; `None`
    /// without a capacity.
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
    println!(
        "Cairn data node {} listening on http://{}",
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
        tracing::info!(node_id = %id, used = counts.used, chunks = counts.chunks, "data node ready");
        let node = Node {
            id,
            zone: config.zone,
            store,
            usage: Arc::new(Usage {
                capacity: config.capacity,
                counts: Mutex::new(counts),
            }),
            key: config.key,
            id_locks: (0..ID_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
        };
        Ok(DataNode {
            listener,
            addr,
            node: Arc::new(node),
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
        let DataNode { listener, node, .. } = self;
        crate::net::accept_until(listener, shutdown, move |stream, peer, watcher| {
            let node = node.clone();
            async move {
                if let Err(err) = serve_connection(stream, node, watcher).await {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
            }
        })
        .await
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    node: Arc<Node>,
    watcher: Watcher,
) -> hyper::Result<()> {
    let conn = http1::Builder::new().serve_connection(
        TokioIo::new(stream),
        service_fn(move |req| {
            let node = node.clone();
            async move { Ok::<_, Infallible>(node.respond(req).await) }
        }),
    );
    watcher.watch(conn).await
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

/// The operations of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    PutChunk(ChunkId),
    GetChunk(ChunkId),
    HeadChunk(ChunkId),
    DeleteChunk(ChunkId),
    ListChunks,
    Health,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteError {
    NotFound,
    MethodNotAllowed(&'static str),
    BadChunkId,
}

fn route(method: &Method, path: &str) -> Result<Route, RouteError> {
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
    id_locks: Vec<tokio::sync::Mutex<()>>,
}

impl Node {
    async fn respond(&self, req: http::Request<Incoming>) -> Response {
        let (parts, body) = req.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        // A header that is not visible ASCII is present but malformed, not missing.
        let auth = parts
            .headers
            .get(AUTH_HEADER)
            .map(|value| value.to_str().unwrap_or_default());
        if let Err(err) = self
            .key
            .verify(parts.method.as_str(), target, auth, unix_now())
        {
            tracing::debug!(method = %parts.method, %target, error = %err, "request refused");
            return text(StatusCode::FORBIDDEN, err.to_string());
        }
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
            Route::PutChunk(id) => self.put_chunk(id, &parts.headers, body).await,
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

    fn id_lock(&self, id: ChunkId) -> &tokio::sync::Mutex<()> {
        &self.id_locks[usize::from(id.0.as_bytes()[15]) % self.id_locks.len()]
    }
}
