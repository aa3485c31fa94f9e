//! The data node: an HTTP/1.1 service through which gateways store chunks on this machine's disk
//! (a `LocalChunkStore` under `DIR/chunks`). Every request is authenticated with the cluster key
//! (`auth`). Uploads stream to disk while their CRC32C is computed and are committed only when it
//! matches the one the client sends as a trailer; reads stream blocks verified against their
//! on-disk CRC32C. Capacity is enforced by reserving space before a chunk's bytes arrive.
//! `remote::RemoteNode` is the client side of this protocol.

use std::convert::Infallible;
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::chunk::ChunkId;
use crate::datanode::auth::{AUTH_HEADER, ClusterKey, unix_now};
use crate::datanode::local::LocalChunkStore;
use crate::datanode::{Caching, ChunkError, ChunkStore, ChunkStream};

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    used: u64,
    /// Bytes promised to uploads in flight.
    reserved: u64,
    chunks: u64,
}

/// The node's space accounting: committed bytes plus reservations never exceed the capacity.
#[derive(Debug)]
struct Usage {
    capacity: Option<u64>,
    counts: Mutex<Counts>,
}

impl Usage {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counters stay meaningful even if a holder panicked.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fits(&self, counts: &Counts, extra: u64) -> bool {
        self.capacity.is_none_or(|capacity| {
            counts
                .used
                .saturating_add(counts.reserved)
                .saturating_add(extra)
                <= capacity
        })
    }

    /// Reserves `bytes` for an upload, or `None` when they do not fit.
    fn reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        let mut counts = self.counts();
        if !self.fits(&counts, bytes) {
            return None;
        }
        counts.reserved += bytes;
        Some(Reservation {
            usage: self.clone(),
            bytes,
        })
    }

    fn removed(&self, size: u64) {
        let mut counts = self.counts();
        counts.used = counts.used.saturating_sub(size);
        counts.chunks = counts.chunks.saturating_sub(1);
    }

    fn free(&self, counts: &Counts) -> Option<u64> {
        self.capacity.map(|capacity| {
            capacity
                .saturating_sub(counts.used)
                .saturating_sub(counts.reserved)
        })
    }
}

/// Space held for one upload; released when dropped, turned into used space by `commit`.
#[derive(Debug)]
struct Reservation {
    usage: Arc<Usage>,
    bytes: u64,
}

impl Reservation {
    /// Extends the reservation to `bytes` when an upload outgrows what it declared; false when
    /// the node has no room for that.
    fn grow_to(&mut self, bytes: u64) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let mut counts = self.usage.counts();
        let extra = bytes - self.bytes;
        if !self.usage.fits(&counts, extra) {
            return false;
        }
        counts.reserved += extra;
        self.bytes = bytes;
        true
    }

    /// Accounts a committed chunk of `len` bytes that replaced `previous` (an overwrite), in the
    /// same step as the reservation is released so that no other upload can slip in between.
    fn commit(mut self, len: u64, previous: Option<u64>) {
        let mut counts = self.usage.counts();
        counts.reserved = counts.reserved.saturating_sub(self.bytes);
        self.bytes = 0;
        counts.used = counts
            .used
            .saturating_sub(previous.unwrap_or(0))
            .saturating_add(len);
        if previous.is_none() {
            counts.chunks += 1;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut counts = self.usage.counts();
            counts.reserved = counts.reserved.saturating_sub(self.bytes);
        }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeError {
    Malformed,
    Unsatisfiable,
}

/// A `Range: bytes=a-b` (inclusive) or `bytes=a-` header as a half-open range within a chunk
/// of `size` bytes. Only single ranges exist in this protocol, and a range reaching past the
/// end is the caller's error rather than something to clamp.
fn parse_range(value: &str, size: u64) -> Result<Range<u64>, RangeError> {
    let spec = value.strip_prefix("bytes=").ok_or(RangeError::Malformed)?;
    let (first, last) = spec.split_once('-').ok_or(RangeError::Malformed)?;
    let number = |text: &str| -> Result<u64, RangeError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RangeError::Malformed);
        }
        text.parse().map_err(|_| RangeError::Malformed)
    };
    let start = number(first)?;
    let end = if last.is_empty() {
        size
    } else {
        let last = number(last)?;
        if last < start {
            return Err(RangeError::Malformed);
        }
        last.checked_add(1).ok_or(RangeError::Unsatisfiable)?
    };
    if start >= size || end > size {
        return Err(RangeError::Unsatisfiable);
    }
    Ok(start..end)
}

fn parse_crc(value: &HeaderValue) -> Option<u32> {
    let text = value.to_str().ok()?;
    if text.len() != 8 {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// The `after` and `limit` of an inventory request.
fn parse_list_query(query: &str) -> Option<(Option<ChunkId>, usize)> {
    let mut after = None;
    let mut limit = DEFAULT_LIST_LIMIT;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=')? {
            ("after", id) => after = Some(parse_chunk_id(id)?),
            ("limit", n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                limit = n.parse::<usize>().ok()?.min(MAX_LIST_LIMIT);
            }
            _ => return None,
        }
    }
    Some((after, limit))
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

    async fn put_chunk(
        &self,
        id: ChunkId,
        headers: &HeaderMap,
        mut body: Incoming,
    ) -> Result<Response, ChunkError> {
        let reserve = match headers.get(RESERVE_HEADER) {
            None => 0,
            Some(value) => match value.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(bytes) => bytes,
                None => return Ok(text(StatusCode::BAD_REQUEST, "malformed x-cairn-reserve")),
            },
        };
        let caching = match headers.get(CACHE_HEADER) {
            None => Caching::Keep,
            Some(value) if value == DROP_BEHIND => Caching::DropBehind,
            Some(_) => return Ok(text(StatusCode::BAD_REQUEST, "malformed x-cairn-cache")),
        };
        let mut claimed = Vec::new();
        if let Some(value) = headers.get(CRC_HEADER) {
            match parse_crc(value) {
                Some(crc) => claimed.push(crc),
                None => return Ok(text(StatusCode::BAD_REQUEST, "malformed x-cairn-crc32c")),
            }
        }
        let Some(mut reservation) = self.usage.reserve(reserve) else {
            return Ok(insufficient_storage());
        };

        let mut writer = self.store.create(id, caching).await?;
        let mut crc = 0u32;
        let mut received = 0u64;
        loop {
            let frame = match tokio::time::timeout(UPLOAD_STALL, body.frame()).await {
                Err(_) => return Ok(text(StatusCode::REQUEST_TIMEOUT, "upload stalled")),
                Ok(None) => break,
                Ok(Some(Err(err))) => {
                    // Usually the client gave up (a dropped writer): nothing is committed.
                    tracing::debug!(%id, error = %err, "upload aborted");
                    return Ok(text(StatusCode::BAD_REQUEST, "upload body ended early"));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) => {
                    received += data.len() as u64;
                    if !reservation.grow_to(received) {
                        return Ok(insufficient_storage());
                    }
                    crc = crc32c::crc32c_append(crc, &data);
                    writer.write(data).await?;
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers()
                        && let Some(value) = trailers.get(CRC_HEADER)
                    {
                        match parse_crc(value) {
                            Some(sent) => claimed.push(sent),
                            None => {
                                return Ok(text(
                                    StatusCode::BAD_REQUEST,
                                    "malformed x-cairn-crc32c trailer",
                                ));
                            }
                        }
                    }
                }
            }
        }
        if claimed.is_empty() {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "x-cairn-crc32c is required, as a header or a trailer",
            ));
        }
        if let Some(sent) = claimed.iter().find(|sent| **sent != crc) {
            tracing::warn!(%id, sent = %format!("{sent:08x}"), received = %format!("{crc:08x}"), "chunk upload failed its CRC32C");
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("x-cairn-crc32c mismatch: sent {sent:08x}, received {crc:08x}"),
            ));
        }

        let _ordered = self.id_lock(id).lock().await;
        let previous = stored_size(&self.store, id).await?;
        let len = writer.commit().await?;
        reservation.commit(len, previous);
        let mut resp = text(StatusCode::CREATED, "stored");
        insert(&mut resp, CRC_HEADER, format!("{crc:08x}"));
        insert(&mut resp, LENGTH_HEADER, len.to_string());
        Ok(resp)
    }

    async fn get_chunk(&self, id: ChunkId, headers: &HeaderMap) -> Result<Response, ChunkError> {
        let size = self.store.len(id).await?.ok_or(ChunkError::NotFound(id))?;
        let range = match headers.get(header::RANGE) {
            None => None,
            Some(value) => match parse_range(value.to_str().unwrap_or_default(), size) {
                Ok(range) => Some(range),
                Err(RangeError::Malformed) => {
                    return Ok(text(StatusCode::BAD_REQUEST, "malformed Range"));
                }
                Err(RangeError::Unsatisfiable) => {
                    let mut resp = text(StatusCode::RANGE_NOT_SATISFIABLE, "range outside chunk");
                    insert(&mut resp, LENGTH_HEADER, size.to_string());
                    insert(
                        &mut resp,
                        header::CONTENT_RANGE.as_str(),
                        format!("bytes */{size}"),
                    );
                    return Ok(resp);
                }
            },
        };
        let wanted = range.clone().unwrap_or(0..size);
        let stream = self.store.read(id, wanted.clone()).await?;
        // A client that accepts trailers learns of damage found mid-stream as a `corrupt`
        // trailer; for any other the connection is cut, which it cannot take for a whole body.
        let trailers = headers
            .get_all(header::TE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("trailers"));
        let mut resp = http::Response::new(chunk_body(id, stream, trailers));
        insert(&mut resp, LENGTH_HEADER, size.to_string());
        if trailers {
            insert(
                &mut resp,
                header::TRAILER.as_str(),
                format!("{ERROR_HEADER}, {OFFSET_HEADER}"),
            );
        } else {
            insert(
                &mut resp,
                header::CONTENT_LENGTH.as_str(),
                (wanted.end - wanted.start).to_string(),
            );
        }
        if range.is_some() {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let last = wanted.end - 1;
            insert(
                &mut resp,
                header::CONTENT_RANGE.as_str(),
                format!("bytes {}-{last}/{size}", wanted.start),
            );
        }
        Ok(resp)
    }

    async fn head_chunk(&self, id: ChunkId) -> Result<Response, ChunkError> {
        let size = self.store.len(id).await?.ok_or(ChunkError::NotFound(id))?;
        let mut resp = http::Response::new(empty());
        insert(&mut resp, LENGTH_HEADER, size.to_string());
        Ok(resp)
    }

    async fn delete_chunk(&self, id: ChunkId) -> Result<Response, ChunkError> {
        let _ordered = self.id_lock(id).lock().await;
        let previous = stored_size(&self.store, id).await?;
        self.store.delete(id).await?;
        if let Some(size) = previous {
            self.usage.removed(size);
        }
        let mut resp = http::Response::new(empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        Ok(resp)
    }

    async fn list_chunks(&self, query: &str) -> Result<Response, ChunkError> {
        let Some((after, limit)) = parse_list_query(query) else {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "expected ?after=<chunk id>&limit=<count>",
            ));
        };
        let ids = self.store.list(after, limit).await?;
        Ok(json(&ChunkList {
            chunks: ids.iter().map(ChunkId::to_string).collect(),
        }))
    }

    fn health(&self) -> Response {
        let counts = *self.usage.counts();
        json(&NodeHealth {
            node_id: self.id.hyphenated().to_string(),
            zone: self.zone.clone(),
            capacity: self.usage.capacity,
            used: counts.used,
            free: self.usage.free(&counts),
            chunk_count: counts.chunks,
        })
    }
}

/// The verified bytes of a read as a response body. Damage found mid-stream ends the body with
/// a `corrupt` trailer when the client accepts trailers, and with an error (the connection is
/// cut) otherwise; either way the client never mistakes a cut body for a whole one.
fn chunk_body(id: ChunkId, stream: ChunkStream, trailers: bool) -> Body {
    let frames = stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match stream.next().await? {
            Ok(data) => Some((Ok(Frame::data(data)), Some(stream))),
            Err(err) => {
                let item = match err {
                    ChunkError::Corrupt { offset, .. } if trailers => {
                        tracing::warn!(%id, offset, "corrupt block found while serving a read");
                        let mut fields = HeaderMap::new();
                        fields.insert(ERROR_HEADER, HeaderValue::from_static(CORRUPT));
                        fields.insert(OFFSET_HEADER, HeaderValue::from(offset));
                        Ok(Frame::trailers(fields))
                    }
                    err => {
                        tracing::warn!(%id, error = %err, "read failed mid-stream");
                        Err(io::Error::other(err.to_string()))
                    }
                };
                Some((item, None))
            }
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

/// The one place chunk-store errors become responses.
fn chunk_error_response(method: &Method, target: &str, err: ChunkError) -> Response {
    match err {
        ChunkError::NotFound(_) => text(StatusCode::NOT_FOUND, "chunk not found"),
        ChunkError::Corrupt { id, offset } => {
            tracing::warn!(%id, offset, "corrupt chunk");
            let mut resp = text(StatusCode::INTERNAL_SERVER_ERROR, "chunk is corrupt");
            insert(&mut resp, ERROR_HEADER, CORRUPT.to_owned());
            insert(&mut resp, OFFSET_HEADER, offset.to_string());
            resp
        }
        ChunkError::OutOfRange { size, .. } => {
            let mut resp = text(StatusCode::RANGE_NOT_SATISFIABLE, "range outside chunk");
            insert(&mut resp, LENGTH_HEADER, size.to_string());
            resp
        }
        ChunkError::Full(_) => insufficient_storage(),
        ChunkError::Unavailable(reason) => {
            tracing::warn!(%method, %target, %reason, "chunk storage unavailable");
            text(StatusCode::SERVICE_UNAVAILABLE, "chunk storage unavailable")
        }
        ChunkError::Io(err) if err.kind() == io::ErrorKind::StorageFull => {
            tracing::warn!(%method, %target, error = %err, "disk full");
            insufficient_storage()
        }
        err @ ChunkError::Io(_) => {
            tracing::error!(%method, %target, error = %err, "chunk storage failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "chunk storage failed")
        }
    }
}

fn insufficient_storage() -> Response {
    text(
        StatusCode::INSUFFICIENT_STORAGE,
        "not enough capacity left on this data node",
    )
}

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    full(Bytes::new())
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    let mut resp = http::Response::new(full(message));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = http::Response::new(full(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(err) => {
            tracing::error!(error = %err, "could not encode a response");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not encode response",
            )
        }
    }
}

/// Sets a header whose value this module formats itself (digits, hex, fixed words).
fn insert(resp: &mut Response, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        resp.headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

/// The starting and restarting helpers the tests of this module and `remote` share.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    use super::*;

    pub const SECRET: &str = "test cluster secret, long enough";

    pub fn key() -> ClusterKey {
        ClusterKey::from_secret(SECRET)
    }

    /// A data node serving on 127.0.0.1:0 in this process until dropped or stopped.
    pub struct TestNode {
        pub addr: SocketAddr,
        pub node_id: uuid::Uuid,
        pub data: PathBuf,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<io::Result<()>>>,
    }

    impl TestNode {
        pub async fn start(data: &Path, capacity: Option<u64>) -> TestNode {
            TestNode::start_on("127.0.0.1:0".parse().unwrap(), data, capacity).await
        }

        pub async fn start_on(listen: SocketAddr, data: &Path, capacity: Option<u64>) -> TestNode {
            let node = DataNode::bind(DataNodeConfig {
                listen,
                data: data.to_path_buf(),
                capacity,
                zone: Some("zone-a".to_owned()),
                key: key(),
                // The in-process nodes cover the opt-in path; the binary's tests the default.
                direct_writes: true,
            })
            .await
            .unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let addr = node.local_addr();
            let node_id = node.node_id();
            let task = tokio::spawn(node.serve(async {
                let _ = stopped.await;
            }));
            TestNode {
                addr,
                node_id,
                data: data.to_path_buf(),
                stop: Some(stop),
                task: Some(task),
            }
        }

        pub fn url(&self) -> String {
            format!("http://{}", self.addr)
        }

        /// The local store under the node, to inspect or damage its files.
        pub async fn local_store(&self) -> LocalChunkStore {
            LocalChunkStore::open(self.data.join(CHUNKS_DIR))
                .await
                .unwrap()
        }

        pub async fn stop(mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(task) = self.task.take() {
                task.await.unwrap().unwrap();
            }
        }
    }

    impl Drop for TestNode {
        fn drop(&mut self) {
            if let Some(task) = self.task.take() {
                task.abort();
            }
        }
    }

    /// Sends `head` (request line and headers, without the blank line) and `body` on a fresh
    /// connection and returns the status and everything after the status line.
    pub async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
        let response = raw_bytes(addr, head, body).await;
        let response = String::from_utf8_lossy(&response).into_owned();
        let (status_line, rest) = response.split_once("\r\n").unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        (status, rest.to_owned())
    }

    /// Like `raw`, returning the bytes received until the node closed the connection, whether
    /// cleanly or not.
    pub async fn raw_bytes(addr: SocketAddr, head: &str, body: &[u8]) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut request =
            format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).await.unwrap();
        let mut response = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return response,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// The request line and a valid `x-cairn-auth` header for `method` and `target`.
    pub fn signed(method: &str, target: &str) -> String {
        format!(
            "{method} {target} HTTP/1.1\r\n{AUTH_HEADER}: {}",
            key().sign(method, target, unix_now())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn id() -> ChunkId {
        parse_chunk_id(ID).unwrap()
    }

    #[test]
    fn routes_every_operation() {
        let chunk = format!("/chunks/{ID}");
        let cases: &[(Method, &str, Result<Route, RouteError>)] = &[
            (Method::PUT, &chunk, Ok(Route::PutChunk(id()))),
            (Method::GET, &chunk, Ok(Route::GetChunk(id()))),
            (Method::HEAD, &chunk, Ok(Route::HeadChunk(id()))),
            (Method::DELETE, &chunk, Ok(Route::DeleteChunk(id()))),
            (
                Method::POST,
                &chunk,
                Err(RouteError::MethodNotAllowed("GET, HEAD, PUT, DELETE")),
            ),
            (Method::GET, "/chunks", Ok(Route::ListChunks)),
            (
                Method::PUT,
                "/chunks",
                Err(RouteError::MethodNotAllowed("GET")),
            ),
            (Method::GET, "/health", Ok(Route::Health)),
            (
                Method::DELETE,
                "/health",
                Err(RouteError::MethodNotAllowed("GET")),
            ),
            (Method::GET, "/", Err(RouteError::NotFound)),
            (Method::GET, "/chunks/", Err(RouteError::BadChunkId)),
            (Method::GET, "/health/", Err(RouteError::NotFound)),
            (Method::GET, "/chunk/x", Err(RouteError::NotFound)),
            (
                Method::GET,
                "/chunks/0123456789ABCDEF0123456789abcdef",
                Err(RouteError::BadChunkId),
            ),
            (
                Method::GET,
                "/chunks/01234567-89ab-cdef-0123-456789abcdef",
                Err(RouteError::BadChunkId),
            ),
            (
                Method::GET,
                "/chunks/../../etc/passwd",
                Err(RouteError::BadChunkId),
            ),
            (
                Method::GET,
                &format!("/chunks/{ID}/x"),
                Err(RouteError::BadChunkId),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(method, path), *expected, "{method} {path}");
        }
    }

    #[test]
    fn parses_single_inclusive_ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Ok(0..1));
        assert_eq!(parse_range("bytes=3-9", 10), Ok(3..10));
        assert_eq!(parse_range("bytes=9-", 10), Ok(9..10));
        assert_eq!(parse_range("bytes=0-", 10), Ok(0..10));
        for unsatisfiable in ["bytes=3-10", "bytes=10-", "bytes=10-12", "bytes=0-0"] {
            let size = if unsatisfiable == "bytes=0-0" { 0 } else { 10 };
            assert_eq!(
                parse_range(unsatisfiable, size),
                Err(RangeError::Unsatisfiable),
                "{unsatisfiable}"
            );
        }
        assert_eq!(
            parse_range("bytes=0-18446744073709551615", u64::MAX),
            Err(RangeError::Unsatisfiable)
        );
        for malformed in [
            "",
            "bytes=",
            "bytes=-5",
            "bytes=5-3",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(
                parse_range(malformed, 10),
                Err(RangeError::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn parses_inventory_queries() {
        assert_eq!(parse_list_query(""), Some((None, DEFAULT_LIST_LIMIT)));
        assert_eq!(
            parse_list_query(&format!("after={ID}&limit=5")),
            Some((Some(id()), 5))
        );
        assert_eq!(
            parse_list_query("limit=99999999"),
            Some((None, MAX_LIST_LIMIT))
        );
        for bad in [
            "after=xyz",
            "limit=-1",
            "limit=",
            "limit",
            "other=1",
            "limit=1e3",
        ] {
            assert_eq!(parse_list_query(bad), None, "{bad}");
        }
    }

    #[test]
    fn reservations_never_overshoot_capacity() {
        let usage = Arc::new(Usage {
            capacity: Some(1000),
            counts: Mutex::new(Counts::default()),
        });
        let first = usage.reserve(600).unwrap();
        assert!(usage.reserve(401).is_none());
        let mut second = usage.reserve(400).unwrap();
        assert_eq!(usage.free(&usage.counts()), Some(0));
        assert!(!second.grow_to(401));
        drop(first);
        assert!(second.grow_to(900));
        assert!(second.grow_to(10));
        second.commit(850, None);
        assert_eq!(
            *usage.counts(),
            Counts {
                used: 850,
                reserved: 0,
                chunks: 1
            }
        );
        assert_eq!(usage.free(&usage.counts()), Some(150));

        // An overwrite replaces the old length instead of adding a chunk.
        let third = usage.reserve(100).unwrap();
        third.commit(100, Some(850));
        assert_eq!(
            *usage.counts(),
            Counts {
                used: 100,
                reserved: 0,
                chunks: 1
            }
        );
        usage.removed(100);
        assert_eq!(*usage.counts(), Counts::default());

        let unlimited = Arc::new(Usage {
            capacity: None,
            counts: Mutex::new(Counts::default()),
        });
        let mut huge = unlimited.reserve(u64::MAX).unwrap();
        assert!(huge.grow_to(u64::MAX));
        assert_eq!(unlimited.free(&unlimited.counts()), None);
    }

    #[test]
    fn accepts_only_canonical_chunk_ids() {
        assert_eq!(parse_chunk_id(ID), Some(id()));
        for bad in [
            "",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789ABCDEF",
            "{01234567-89ab-cdef-0123-456789abcdef}",
            "urn:uuid:01234567-89ab-cdef-0123-456789abcdef",
        ] {
            assert_eq!(parse_chunk_id(bad), None, "{bad}");
        }
    }

    /// Every route, with what a well-formed request to it needs besides authentication.
    fn all_routes() -> Vec<(&'static str, String, String, &'static [u8])> {
        let chunk = format!("/chunks/{ID}");
        vec![
            (
                "PUT",
                chunk.clone(),
                format!(
                    "\r\nContent-Length: 1\r\n{CRC_HEADER}: {:08x}",
                    crc32c::crc32c(b"x")
                ),
                b"x",
            ),
            ("GET", chunk.clone(), String::new(), b""),
            ("HEAD", chunk.clone(), String::new(), b""),
            ("DELETE", chunk, String::new(), b""),
            ("GET", "/chunks?limit=5".to_owned(), String::new(), b""),
            ("GET", "/health".to_owned(), String::new(), b""),
            ("GET", "/nowhere".to_owned(), String::new(), b""),
        ]
    }

    #[tokio::test]
    async fn refuses_unauthenticated_requests_on_every_route() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), None).await;
        let wrong_key = ClusterKey::from_secret("some other cluster's secret");
        let now = unix_now();
        for (method, target, extra, body) in all_routes() {
            let line = format!("{method} {target} HTTP/1.1");
            let headers = [
                String::new(),
                format!("\r\n{AUTH_HEADER}: garbage"),
                format!(
                    "\r\n{AUTH_HEADER}: {}",
                    wrong_key.sign(method, &target, now)
                ),
                format!(
                    "\r\n{AUTH_HEADER}: {}",
                    key().sign(method, &target, now - 600)
                ),
                // Signed for another target.
                format!(
                    "\r\n{AUTH_HEADER}: {}",
                    key().sign(method, "/elsewhere", now)
                ),
            ];
            for auth in headers {
                let (status, rest) = raw(node.addr, &format!("{line}{auth}{extra}"), body).await;
                assert_eq!(status, 403, "{method} {target} {auth:?}: {rest}");
            }
        }
        // Nothing was stored by any of them.
        assert_eq!(node.local_store().await.len(id()).await.unwrap(), None);

        // The same requests, signed, get past authentication.
        let expected = [201, 200, 200, 204, 200, 200, 404];
        for ((method, target, extra, body), want) in all_routes().into_iter().zip(expected) {
            let (status, rest) = raw(
                node.addr,
                &format!("{}{extra}", signed(method, &target)),
                body,
            )
            .await;
            assert_eq!(status, want, "{method} {target}: {rest}");
        }
        node.stop().await;
    }

    #[tokio::test]
    async fn answers_bad_requests_with_client_errors() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), None).await;
        let chunk = format!("/chunks/{ID}");
        let cases = [
            (signed("GET", "/chunks/ABC"), 400),
            (signed("GET", "/chunks/../node-id"), 400),
            (signed("GET", "/chunks?after=zz"), 400),
            (signed("POST", &chunk), 405),
            (signed("PUT", "/health"), 405),
            (signed("GET", &chunk), 404),
            (signed("HEAD", &chunk), 404),
            (signed("DELETE", &chunk), 204),
        ];
        for (head, want) in cases {
            let (status, rest) = raw(node.addr, &head, b"").await;
            assert_eq!(status, want, "{head}: {rest}");
        }

        let put = |extra: &str| format!("{}{extra}", signed("PUT", &chunk));
        let (status, rest) = raw(node.addr, &put("\r\nContent-Length: 1"), b"x").await;
        assert_eq!(status, 400, "{rest}");
        assert!(rest.contains("x-cairn-crc32c is required"), "{rest}");
        let (status, _) = raw(
            node.addr,
            &put("\r\nContent-Length: 1\r\nx-cairn-crc32c: nothex!!"),
            b"x",
        )
        .await;
        assert_eq!(status, 400);
        let crc = format!(
            "\r\nContent-Length: 1\r\n{CRC_HEADER}: {:08x}",
            crc32c::crc32c(b"x")
        );
        let (status, _) = raw(
            node.addr,
            &put(&format!("{crc}\r\n{RESERVE_HEADER}: lots")),
            b"x",
        )
        .await;
        assert_eq!(status, 400);
        let (status, rest) = raw(
            node.addr,
            &put(&format!("{crc}\r\n{CACHE_HEADER}: never")),
            b"x",
        )
        .await;
        assert_eq!(status, 400);
        assert!(rest.contains("malformed x-cairn-cache"), "{rest}");
        // The one value it takes; the chunk is then stored like any other (and overwritten
        // below, as chunks with the same id and bytes are).
        let (status, rest) = raw(
            node.addr,
            &put(&format!("{crc}\r\n{CACHE_HEADER}: {DROP_BEHIND}")),
            b"x",
        )
        .await;
        assert_eq!(status, 201, "{rest}");

        // Range errors on a stored chunk.
        let (status, _) = raw(node.addr, &put(&crc), b"x").await;
        assert_eq!(status, 201);
        let get = |range: &str| format!("{}\r\nRange: {range}", signed("GET", &chunk));
        let (status, rest) = raw(node.addr, &get("bytes=1-1"), b"").await;
        assert_eq!(status, 416);
        assert!(rest.contains("content-range: bytes */1"), "{rest}");
        assert!(rest.contains("x-cairn-length: 1"), "{rest}");
        let (status, _) = raw(node.addr, &get("bytes=1-0"), b"").await;
        assert_eq!(status, 400);
        let (status, rest) = raw(node.addr, &get("bytes=0-0"), b"").await;
        assert_eq!(status, 206);
        assert!(rest.contains("content-range: bytes 0-0/1"), "{rest}");
        assert!(rest.ends_with("\r\n\r\nx"), "{rest:?}");
        node.stop().await;
    }

    /// Sends `data` as a chunked PUT whose trailer claims `crc`.
    async fn put_with_trailer(
        node: &TestNode,
        id: ChunkId,
        data: &[u8],
        crc: &str,
    ) -> (u16, String) {
        let head = format!(
            "{}\r\nTransfer-Encoding: chunked\r\nTrailer: {CRC_HEADER}",
            signed("PUT", &format!("/chunks/{id}"))
        );
        let mut body = Vec::new();
        for piece in data.chunks(1000) {
            body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            body.extend_from_slice(piece);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("0\r\n{CRC_HEADER}: {crc}\r\n\r\n").as_bytes());
        raw(node.addr, &head, &body).await
    }

    #[tokio::test]
    async fn commits_only_when_the_trailer_crc_matches() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), None).await;
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let crc = crc32c::crc32c(&data);
        let id = ChunkId::random();

        let wrong = format!("{:08x}", crc ^ 1);
        let (status, rest) = put_with_trailer(&node, id, &data, &wrong).await;
        assert_eq!(status, 400, "{rest}");
        assert!(rest.contains("mismatch"), "{rest}");
        let store = node.local_store().await;
        assert_eq!(store.len(id).await.unwrap(), None);
        let prefix = store.path_of(id).parent().unwrap().to_path_buf();
        assert_eq!(fs::read_dir(&prefix).unwrap().count(), 0);

        let right = format!("{crc:08x}");
        let (status, rest) = put_with_trailer(&node, id, &data, &right).await;
        assert_eq!(status, 201, "{rest}");
        assert!(rest.contains(&format!("x-cairn-crc32c: {right}")), "{rest}");
        assert!(rest.contains("x-cairn-length: 5000"), "{rest}");
        assert_eq!(store.len(id).await.unwrap(), Some(5000));
        node.stop().await;
    }

    #[tokio::test]
    async fn cuts_a_read_short_at_damage_found_mid_stream() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), None).await;
        // Large enough that the store reads it in several batches, the damage in a later one.
        let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let crc = format!("{:08x}", crc32c::crc32c(&data));
        let id = ChunkId::random();
        let head = format!(
            "{}\r\nContent-Length: {}\r\n{CRC_HEADER}: {crc}",
            signed("PUT", &format!("/chunks/{id}")),
            data.len()
        );
        assert_eq!(raw(node.addr, &head, &data).await.0, 201);
        let path = node.local_store().await.path_of(id);
        let mut file = fs::read(&path).unwrap();
        let damaged_at = 5 * 1024 * 1024 / 2;
        file[damaged_at] ^= 0x10;
        fs::write(&path, &file).unwrap();
        let block = crate::datanode::local::BLOCK_SIZE;
        let damaged_block = (damaged_at / block * block).to_string();

        // Without trailers: the body stops before its Content-Length, with none of the bad bytes.
        let get = signed("GET", &format!("/chunks/{id}"));
        let response = raw_bytes(node.addr, &get, b"").await;
        let end_of_head = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&response[..end_of_head]);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", data.len())),
            "{head}"
        );
        let body = &response[end_of_head..];
        assert!(body.len() <= damaged_at, "{} bytes arrived", body.len());
        assert_eq!(body, &data[..body.len()]);

        // With trailers: a chunked body that ends with the damage's place.
        let (status, rest) = raw(node.addr, &format!("{get}\r\nTE: trailers"), b"").await;
        assert_eq!(status, 200);
        assert!(
            rest.contains("transfer-encoding: chunked"),
            "{}",
            &rest[..200]
        );
        assert!(
            rest.ends_with(&format!(
                "0\r\n{ERROR_HEADER}: {CORRUPT}\r\n{OFFSET_HEADER}: {damaged_block}\r\n\r\n"
            )),
            "{:?}",
            &rest[rest.len() - 100..]
        );
        node.stop().await;
    }

    #[tokio::test]
    async fn keeps_its_identity_and_usage_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), Some(10_000)).await;
        let first_id = node.node_id;
        for size in [1000usize, 2345] {
            let data = vec![7u8; size];
            let crc = format!("{:08x}", crc32c::crc32c(&data));
            let (status, _) = put_with_trailer(&node, ChunkId::random(), &data, &crc).await;
            assert_eq!(status, 201);
        }
        node.stop().await;
        let text = fs::read_to_string(dir.path().join(NODE_ID_FILE)).unwrap();
        assert_eq!(text, format!("{}\n", first_id.hyphenated()));
        // The identity went through a temp file, renamed into place.
        assert!(!dir.path().join("node-id.tmp").exists());

        let node = TestNode::start(dir.path(), Some(10_000)).await;
        assert_eq!(node.node_id, first_id);
        let (status, rest) = raw(node.addr, &signed("GET", "/health"), b"").await;
        assert_eq!(status, 200);
        let body = rest.split_once("\r\n\r\n").unwrap().1;
        let health: NodeHealth = serde_json::from_str(body).unwrap();
        assert_eq!(
            health,
            NodeHealth {
                node_id: first_id.hyphenated().to_string(),
                zone: Some("zone-a".to_owned()),
                capacity: Some(10_000),
                used: 3345,
                free: Some(6655),
                chunk_count: 2,
            }
        );
        node.stop().await;

        fs::write(dir.path().join(NODE_ID_FILE), "not a uuid\n").unwrap();
        let config = DataNodeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data: dir.path().to_path_buf(),
            capacity: None,
            zone: None,
            key: key(),
            direct_writes: false,
        };
        let err = DataNode::bind(config).await.err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
