//! The client of one data node (`server`): a `ChunkStore` whose chunks live on another machine,
//! which is how a gateway reads and writes replicas. Every request is signed with the cluster
//! key and a fresh nonce (`auth`). A write streams through a small bounded channel into one long
//! chunked PUT whose trailer carries the CRC32C of everything sent and an HMAC binding those
//! bytes to the request; a read is a ranged GET whose bytes the node verified block by block and,
//! when the chunk's digest is known, that this client verifies again: the node sends the chunk's
//! CRC table ahead of whole blocks, the table must match the digest and each block the table.
//! Connections (HTTPS for `https://` nodes, trusting the CA given with `--node-ca`) are pooled
//! per node; connecting and every wait on the node are bounded by timeouts, so a dead or stalled
//! node surfaces as an error the caller can fail over from.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, stream};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_rustls::{TlsConnector, rustls};

use crate::chunk::{ChunkDigest, ChunkId, ChunkTable, whole_blocks};
use crate::datanode::auth::{AUTH_HEADER, BODY_AUTH_HEADER, ClusterKey, Signed};
use crate::datanode::server::{
    BLOCK_SIZE_HEADER, CACHE_HEADER, CORRUPT, CRC_HEADER, ChunkList, DROP_BEHIND, ERROR_HEADER,
    LENGTH_HEADER, NodeHealth, OFFSET_HEADER, RESERVE_HEADER, WITH_TABLE_HEADER, parse_chunk_id,
};
use crate::datanode::{Caching, ChunkError, ChunkStore, ChunkStream, ChunkWriter};

/// Idle connections kept per node: enough for a gateway's usual parallel reads and writes to
/// one node, few enough that a node sees a bounded number of sockets per gateway.
const MAX_IDLE_CONNECTIONS: usize = 8;
/// How long a connection is kept idle: well under a node's idle timeout (30 s by default), so
/// that the node never closes a connection just as it is reused for an upload.
const MAX_IDLE_TIME: Duration = Duration::from_secs(10);
/// Pieces of an upload queued ahead of the socket: the memory one upload holds is bounded to a
/// few of the caller's buffers while the network stays busy.
const UPLOAD_QUEUE: usize = 4;
/// The largest control response read (an inventory page of 10,000 ids is about 350 KB).
const MAX_CONTROL_BODY: usize = 4 * 1024 * 1024;
/// The largest block size and CRC table a verified read accepts from a node (the chunk file
/// format's bound, and the table of a 64 GiB chunk), so that a node's answer cannot make the
/// gateway allocate without limit before the table is judged.
const MAX_BLOCK_SIZE: u64 = 16 * 1024 * 1024;
const MAX_TABLE: u64 = 4 * 1024 * 1024;
/// How much of an error body goes into an error message.
const ERROR_PREVIEW: usize = 200;

type RequestBody = UnsyncBoxBody<Bytes, io::Error>;

/// How long the client waits on a node before treating it as unreachable or stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteTimeouts {
    /// To open a TCP connection.
    pub connect: Duration,
    /// For any single step of an exchange: a response's headers, the next piece of a body, room
    /// in the upload's queue. Reads fail over to another replica after this long without data.
    pub stall: Duration,
    /// For a node to answer an upload once all of it was sent: it writes and fsyncs the chunk.
    pub commit: Duration,
}

impl Default for RemoteTimeouts {
    fn default() -> Self {
        RemoteTimeouts {
            connect: Duration::from_secs(2),
            stall: Duration::from_secs(10),
            commit: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid data node URL {url:?}: {reason}")]
pub struct InvalidNodeUrl {
    pub url: String,
    pub reason: &'static str,
}

/// What a client trusts of `https://` nodes: the CA certificates of `--node-ca`.
#[derive(Clone)]
pub struct NodeTls(TlsConnector);

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeTls(..)")
    }
}

impl NodeTls {
    /// Trusts the PEM certificates in `path` (a CA, or the nodes' own self-signed ones).
    pub fn from_ca_file(path: &Path) -> io::Result<Self> {
        let invalid = |e: &dyn fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {e}", path.display()),
            )
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| invalid(&e))? {
            roots
                .add(cert.map_err(|e| invalid(&e))?)
                .map_err(|e| invalid(&e))?;
        }
        if roots.is_empty() {
            return Err(invalid(&"no certificate in the file"));
        }
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(NodeTls(TlsConnector::from(Arc::new(config))))
    }
}

/// One data node, reached over HTTP at a base URL such as `http://10.0.0.5:7000`.
#[derive(Clone)]
pub struct RemoteNode {
    pool: Arc<Pool>,
    key: ClusterKey,
    timeouts: RemoteTimeouts,
    /// Sent as `x-cairn-reserve` with every upload: the gateway's chunk size, so the node
    /// refuses up front a chunk it could not hold.
    reserve: u64,
}

impl fmt::Debug for RemoteNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteNode")
            .field("url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl RemoteNode {
    /// A client for the node at `base_url` (`http://host:port`); no connection is made yet.
    pub fn new(base_url: &str, key: ClusterKey) -> Result<Self, InvalidNodeUrl> {
        let invalid = |reason| InvalidNodeUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: http::Uri = base_url.parse().map_err(|_| invalid("not a URL"))?;
        let (https, default_port) = match uri.scheme_str() {
            Some("http") => (false, 80),
            Some("https") => (true, 443),
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user information is not allowed"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("a node URL has no path"));
        }
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(default_port);
        let server_name = if https {
            let name = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(name.to_owned())
                .map_err(|_| invalid("the host is not a valid TLS server name"))?;
            Some(name)
        } else {
            None
        };
        let timeouts = RemoteTimeouts::default();
        Ok(RemoteNode {
            pool: Arc::new(Pool::new(
                format!("{host}:{port}"),
                timeouts.connect,
                server_name.map(|name| (name, None)),
            )),
            key,
            timeouts,
            reserve: 0,
        })
    }

    pub fn with_timeouts(mut self, timeouts: RemoteTimeouts) -> Self {
        self.pool = Arc::new(Pool::new(
            self.pool.authority.clone(),
            timeouts.connect,
            self.pool.tls.clone(),
        ));
        self.timeouts = timeouts;
        self
    }

    /// Connects to an `https://` node trusting `tls`; without it such a node cannot be reached.
    /// A plain `http://` node ignores it.
    pub fn with_tls(mut self, tls: Option<&NodeTls>) -> Self {
        if let Some((name, _)) = &self.pool.tls {
            let tls = Some((name.clone(), tls.map(|tls| tls.0.clone())));
            self.pool = Arc::new(Pool::new(
                self.pool.authority.clone(),
                self.timeouts.connect,
                tls,
            ));
        }
        self
    }

    /// The most bytes a chunk written through this client can hold, declared to the node when
    /// each upload starts; 0 (the default) lets the node reserve space as bytes arrive.
    pub fn with_reserve(mut self, bytes: u64) -> Self {
        self.reserve = bytes;
        self
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.pool.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.pool.authority)
    }

    /// The node's identity, capacity and usage.
    pub async fn health(&self) -> Result<NodeHealth, ChunkError> {
        let (parts, body) = self
            .control(Method::GET, "/health", HeaderMap::new())
            .await?;
        if parts.status != StatusCode::OK {
            return Err(self.status_error(None, &parts, &body));
        }
        serde_json::from_slice(&body).map_err(|err| self.invalid_answer(err))
    }

    /// A request signed now with a fresh nonce; the `Signed` is what its body signature binds to.
    fn request(
        &self,
        method: Method,
        target: &str,
        headers: HeaderMap,
        body: RequestBody,
    ) -> Result<(http::Request<RequestBody>, Signed), ChunkError> {
        let signed = Signed::now();
        let auth = self.key.sign(method.as_str(), target, signed);
        let mut request = http::Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, self.pool.authority.as_str())
            .header(AUTH_HEADER, auth)
            .body(body)
            .map_err(|err| ChunkError::Io(io::Error::other(err)))?;
        request.headers_mut().extend(headers);
        Ok((request, signed))
    }

    /// Sends a request without a body and returns the response with the connection it came on,
    /// which goes back to the pool once the response body was read to its end.
    async fn exchange(
        &self,
        method: Method,
        target: &str,
        headers: HeaderMap,
    ) -> Result<(http::Response<Incoming>, SendRequest<RequestBody>), ChunkError> {
        loop {
            let mut conn = self.pool.checkout().await?;
            // Signed per attempt: a node accepts each nonce once.
            let (request, _) = self.request(
                method.clone(),
                target,
                headers.clone(),
                Empty::new().map_err(|never| match never {}).boxed_unsync(),
            )?;
            match timeout(self.timeouts.stall, conn.sender.send_request(request)).await {
                Ok(Ok(response)) => return Ok((response, conn.sender)),
                // A pooled connection the node closed while it sat idle fails before any answer.
                // Requests without a body are idempotent here, so they go again on another
                // connection; a new connection failing is the node's answer.
                Ok(Err(_)) if conn.reused => continue,
                Ok(Err(err)) => return Err(self.transport_error(err)),
                Err(_) => return Err(self.stalled("waiting for an answer")),
            }
        }
    }

    /// An exchange whose whole (small) response body is read.
    async fn control(
        &self,
        method: Method,
        target: &str,
        headers: HeaderMap,
    ) -> Result<(http::response::Parts, Bytes), ChunkError> {
        let (response, sender) = self.exchange(method, target, headers).await?;
        self.collect(response, sender).await
    }

    async fn collect(
        &self,
        response: http::Response<Incoming>,
        sender: SendRequest<RequestBody>,
    ) -> Result<(http::response::Parts, Bytes), ChunkError> {
        let (parts, mut body) = response.into_parts();
        let mut collected = Vec::new();
        loop {
            match timeout(self.timeouts.stall, body.frame()).await {
                Err(_) => return Err(self.stalled("reading an answer")),
                Ok(None) => break,
                Ok(Some(Err(err))) => return Err(self.transport_error(err)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if collected.len() + data.len() > MAX_CONTROL_BODY {
                            return Err(self.invalid_answer("the answer is too large"));
                        }
                        collected.extend_from_slice(&data);
                    }
                }
            }
        }
        self.pool.put_back(sender);
        Ok((parts, Bytes::from(collected)))
    }

    /// The error for an answer other than the success expected.
    fn status_error(
        &self,
        id: Option<ChunkId>,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> ChunkError {
        let status = parts.status;
        let mut message = String::from_utf8_lossy(body).trim().to_owned();
        if message.len() > ERROR_PREVIEW {
            let mut cut = ERROR_PREVIEW;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let node = &self.pool.authority;
        match (status, id) {
            (StatusCode::INSUFFICIENT_STORAGE, _) => {
                ChunkError::Full(format!("data node {node}: {message}"))
            }
            (StatusCode::NOT_FOUND, Some(id)) => ChunkError::NotFound(id),
            (StatusCode::INTERNAL_SERVER_ERROR, Some(id))
                if header_str(&parts.headers, ERROR_HEADER) == Some(CORRUPT) =>
            {
                ChunkError::Corrupt {
                    id,
                    offset: header_u64(&parts.headers, OFFSET_HEADER).unwrap_or(0),
                }
            }
            (StatusCode::FORBIDDEN, _) => ChunkError::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "data node {node} refused this request's authentication ({message}): \
                     check that CAIRN_CLUSTER_SECRET matches and that the clocks agree"
                ),
            )),
            // Chunks never change: the node holds a chunk of this id already.
            (StatusCode::CONFLICT, _) => ChunkError::Io(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("data node {node}: {message}"),
            )),
            _ => ChunkError::Io(io::Error::other(format!(
                "data node {node} answered {status}: {message}"
            ))),
        }
    }

    fn transport_error(&self, err: hyper::Error) -> ChunkError {
        ChunkError::Io(io::Error::other(format!(
            "data node {}: {err}",
            self.pool.authority
        )))
    }

    fn stalled(&self, doing: &str) -> ChunkError {
        stalled(&self.pool.authority, doing, self.timeouts.stall)
    }

    fn invalid_answer(&self, err: impl fmt::Display) -> ChunkError {
        ChunkError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "data node {}: unexpected answer: {err}",
                self.pool.authority
            ),
        ))
    }
}

fn stalled(node: &str, doing: &str, after: Duration) -> ChunkError {
    ChunkError::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("data node {node} stalled {doing} for {after:?}"),
    ))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)?.parse().ok()
}

fn chunk_target(id: ChunkId) -> String {
    format!("/chunks/{id}")
}

/// The trailers of an upload, declared up front.
const UPLOAD_TRAILERS: &str = "x-cairn-crc32c, x-cairn-body-auth";

#[async_trait]
impl ChunkStore for RemoteNode {
    async fn create(
        &self,
        id: ChunkId,
        caching: Caching,
    ) -> Result<Box<dyn ChunkWriter>, ChunkError> {
        // Connect now, so that an unreachable node fails the write before any byte is queued.
        let mut conn = self.pool.checkout().await?;
        let (frames, queue) = mpsc::channel(UPLOAD_QUEUE);
        let mut headers = HeaderMap::new();
        headers.insert(header::TRAILER, HeaderValue::from_static(UPLOAD_TRAILERS));
        if self.reserve > 0 {
            headers.insert(RESERVE_HEADER, HeaderValue::from(self.reserve));
        }
        if caching == Caching::DropBehind {
            headers.insert(CACHE_HEADER, HeaderValue::from_static(DROP_BEHIND));
        }
        let body = UploadBody { queue, done: false }.boxed_unsync();
        let target = chunk_target(id);
        let (request, signed) = self.request(Method::PUT, &target, headers, body)?;
        let response = Box::pin(conn.sender.send_request(request));
        Ok(Box::new(RemoteWriter {
            node: self.clone(),
            id,
            target,
            signed,
            frames: Some(frames),
            response: Some(response),
            sender: conn.sender,
            crc: 0,
            len: 0,
        }))
    }

    async fn read(
        &self,
        id: ChunkId,
        range: Range<u64>,
        expected: Option<ChunkDigest>,
    ) -> Result<ChunkStream, ChunkError> {
        // An empty range has no inclusive spelling, and a reversed one is the caller's error;
        // both only need the length to be answered as a local store would.
        if range.start >= range.end {
            let size = self.len(id).await?.ok_or(ChunkError::NotFound(id))?;
            if range.start > range.end || range.end > size {
                return Err(ChunkError::OutOfRange {
                    id,
                    start: range.start,
                    end: range.end,
                    size,
                });
            }
            return Ok(Box::pin(stream::empty()));
        }
        let mut headers = HeaderMap::new();
        let last = range.end - 1;
        let value = format!("bytes={}-{last}", range.start);
        headers.insert(
            header::RANGE,
            HeaderValue::try_from(value).map_err(|err| ChunkError::Io(io::Error::other(err)))?,
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        if expected.is_some() {
            headers.insert(WITH_TABLE_HEADER, HeaderValue::from_static("1"));
        }
        let (response, sender) = self
            .exchange(Method::GET, &chunk_target(id), headers)
            .await?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let (parts, _) = self.collect(response, sender).await?;
                return Err(ChunkError::OutOfRange {
                    id,
                    start: range.start,
                    end: range.end,
                    size: header_u64(&parts.headers, LENGTH_HEADER).unwrap_or(0),
                });
            }
            _ => {
                let (parts, body) = self.collect(response, sender).await?;
                return Err(self.status_error(Some(id), &parts, &body));
            }
        }
        let Some(expected) = expected else {
            let answered = format!("bytes {}-{last}/", range.start);
            if !header_str(response.headers(), header::CONTENT_RANGE.as_str())
                .is_some_and(|value| value.starts_with(&answered))
            {
                return Err(self.invalid_answer("Content-Range does not match the range asked"));
            }
            let read = RemoteRead {
                node: self.clone(),
                id,
                body: response.into_body(),
                sender: Some(sender),
                remaining: range.end - range.start,
            };
            return Ok(Box::pin(stream::try_unfold(read, RemoteRead::next)));
        };
        let size = header_u64(response.headers(), LENGTH_HEADER)
            .ok_or_else(|| self.invalid_answer("no x-cairn-length"))?;
        let block_size = header_u64(response.headers(), BLOCK_SIZE_HEADER)
            .filter(|&n| n > 0 && n <= MAX_BLOCK_SIZE)
            .ok_or_else(|| self.invalid_answer("no valid x-cairn-block-size"))?;
        let table_len = ChunkTable::blocks(size, block_size).saturating_mul(4);
        if range.end > size || table_len > MAX_TABLE {
            return Err(self.invalid_answer("a chunk length that does not fit the range asked"));
        }
        let sent = whole_blocks(&range, block_size, size);
        let answered = format!("bytes {}-{}/{size}", sent.start, sent.end - 1);
        if header_str(response.headers(), header::CONTENT_RANGE.as_str()) != Some(&answered) {
            return Err(self.invalid_answer("Content-Range does not match the blocks asked"));
        }
        let mut read = RemoteRead {
            node: self.clone(),
            id,
            body: response.into_body(),
            sender: Some(sender),
            remaining: table_len + (sent.end - sent.start),
        };
        // The table comes first and is judged before any byte is passed on, so that a copy that
        // is not the chunk the gateway wrote fails here, where the caller can still go elsewhere.
        let mut crcs = BytesMut::with_capacity(table_len as usize);
        let mut first = None;
        while (crcs.len() as u64) < table_len {
            let Some((mut data, rest)) = read.next().await? else {
                return Err(self.invalid_answer("the answer ended inside the CRC table"));
            };
            read = rest;
            let take = (table_len - crcs.len() as u64).min(data.len() as u64) as usize;
            crcs.extend_from_slice(&data.split_to(take));
            if !data.is_empty() {
                first = Some(data);
            }
        }
        let table = ChunkTable {
            data_len: size,
            block_size,
            crcs: crcs.freeze(),
        };
        if table.digest() != expected {
            tracing::warn!(%id, node = %self.pool.authority, "replica does not match the chunk's recorded digest");
            return Err(ChunkError::Corrupt {
                id,
                offset: range.start,
            });
        }
        let check = BlockCheck {
            id,
            table,
            wanted: range,
            pos: sent.start,
            crc: 0,
            pending: Vec::new(),
            ready: VecDeque::new(),
            first,
            read: Some(read),
        };
        Ok(Box::pin(stream::try_unfold(check, BlockCheck::next)))
    }

    async fn len(&self, id: ChunkId) -> Result<Option<u64>, ChunkError> {
        let (parts, body) = self
            .control(Method::HEAD, &chunk_target(id), HeaderMap::new())
            .await?;
        match parts.status {
            StatusCode::OK => header_u64(&parts.headers, LENGTH_HEADER)
                .map(Some)
                .ok_or_else(|| self.invalid_answer("no x-cairn-length")),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error(Some(id), &parts, &body)),
        }
    }

    async fn delete(&self, id: ChunkId) -> Result<(), ChunkError> {
        let (parts, body) = self
            .control(Method::DELETE, &chunk_target(id), HeaderMap::new())
            .await?;
        if parts.status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(Some(id), &parts, &body))
        }
    }

    async fn list(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<ChunkId>, ChunkError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let target = match after {
            Some(after) => format!("/chunks?after={after}&limit={limit}"),
            None => format!("/chunks?limit={limit}"),
        };
        let (parts, body) = self.control(Method::GET, &target, HeaderMap::new()).await?;
        if parts.status != StatusCode::OK {
            return Err(self.status_error(None, &parts, &body));
        }
        let list: ChunkList =
            serde_json::from_slice(&body).map_err(|err| self.invalid_answer(err))?;
        let ids = list
            .chunks
            .iter()
            .map(|text| parse_chunk_id(text).ok_or_else(|| self.invalid_answer("a bad chunk id")))
            .collect::<Result<Vec<_>, _>>()?;
        // A page is the node's promise of order; a caller paging on the last id relies on it.
        let ordered = ids.windows(2).all(|pair| pair[0] < pair[1])
            && ids
                .first()
                .is_none_or(|first| after.is_none_or(|after| *first > after));
        if !ordered || ids.len() > limit {
            return Err(self.invalid_answer("the inventory page is out of order"));
        }
        Ok(ids)
    }
}

type ResponseFuture = Pin<Box<dyn Future<Output = hyper::Result<http::Response<Incoming>>> + Send>>;

/// An upload in flight: the request was sent with the headers, its body follows piece by piece.
struct RemoteWriter {
    node: RemoteNode,
    id: ChunkId,
    target: String,
    /// The request's signature, which the body's signature binds to.
    signed: Signed,
    /// Taken when the trailer is queued: the body is complete.
    frames: Option<mpsc::Sender<Frame<Bytes>>>,
    /// Taken once awaited: after an answer there is nothing more to write.
    response: Option<ResponseFuture>,
    sender: SendRequest<RequestBody>,
    crc: u32,
    len: u64,
}

impl RemoteWriter {
    async fn queue(&mut self, frame: Frame<Bytes>) -> Result<(), ChunkError> {
        let frames = self.frames.as_ref().ok_or_else(writer_unusable)?;
        match timeout(self.node.timeouts.stall, frames.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            // The request ended early, usually because the node answered already (full, or
            // refusing the credentials): its answer says why.
            Ok(Err(_)) => Err(self.early_answer().await),
            Err(_) => Err(self.node.stalled("accepting an upload")),
        }
    }

    async fn early_answer(&mut self) -> ChunkError {
        self.frames = None;
        let Some(response) = self.response.take() else {
            return writer_unusable();
        };
        match timeout(self.node.timeouts.stall, response).await {
            Err(_) => self.node.stalled("answering an interrupted upload"),
            Ok(Err(err)) => self.node.transport_error(err),
            Ok(Ok(response)) => {
                let (parts, body) = response.into_parts();
                // The connection is closing; read what fits of the message and drop it.
                let body = body
                    .collect()
                    .now_or_never()
                    .and_then(Result::ok)
                    .map(|collected| collected.to_bytes())
                    .unwrap_or_default();
                self.node.status_error(Some(self.id), &parts, &body)
            }
        }
    }
}

#[async_trait]
impl ChunkWriter for RemoteWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), ChunkError> {
        if data.is_empty() {
            return Ok(());
        }
        self.crc = crc32c::crc32c_append(self.crc, &data);
        self.len += data.len() as u64;
        self.queue(Frame::data(data)).await
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, ChunkError> {
        let crc = format!("{:08x}", self.crc);
        let body_auth =
            self.node
                .key
                .sign_body("PUT", &self.target, self.signed, self.len, self.crc);
        let mut trailers = HeaderMap::new();
        for (name, value) in [(CRC_HEADER, &crc), (BODY_AUTH_HEADER, &body_auth)] {
            trailers.insert(
                name,
                HeaderValue::try_from(value.as_str())
                    .map_err(|err| ChunkError::Io(io::Error::other(err)))?,
            );
        }
        self.queue(Frame::trailers(trailers)).await?;
        self.frames = None;
        let response = self.response.take().ok_or_else(writer_unusable)?;
        let response = match timeout(self.node.timeouts.commit, response).await {
            Err(_) => {
                return Err(stalled(
                    &self.node.pool.authority,
                    "committing a chunk",
                    self.node.timeouts.commit,
                ));
            }
            Ok(Err(err)) => return Err(self.node.transport_error(err)),
            Ok(Ok(response)) => response,
        };
        let RemoteWriter {
            node,
            id,
            sender,
            len,
            ..
        } = *self;
        let (parts, body) = node.collect(response, sender).await?;
        if parts.status != StatusCode::CREATED {
            return Err(node.status_error(Some(id), &parts, &body));
        }
        if header_str(&parts.headers, CRC_HEADER) != Some(crc.as_str())
            || header_u64(&parts.headers, LENGTH_HEADER) != Some(len)
        {
            return Err(node.invalid_answer("the stored chunk differs from the one sent"));
        }
        Ok(len)
    }
}

fn writer_unusable() -> ChunkError {
    ChunkError::Io(io::Error::other(
        "chunk writer is unusable after a failed upload",
    ))
}

/// The body of an upload: what the writer queues, then the trailer. If the writer goes away
/// before queueing the trailer the body fails, so the node sees an aborted upload rather than a
/// complete one and commits nothing.
struct UploadBody {
    queue: mpsc::Receiver<Frame<Bytes>>,
    done: bool,
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.queue.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(frame)) => {
                self.done = frame.is_trailers();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "chunk writer dropped before commit",
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A ranged read in progress.
struct RemoteRead {
    node: RemoteNode,
    id: ChunkId,
    body: Incoming,
    /// Returned to the pool once the body was read to its end.
    sender: Option<SendRequest<RequestBody>>,
    remaining: u64,
}

impl RemoteRead {
    async fn next(mut self) -> Result<Option<(Bytes, Self)>, ChunkError> {
        loop {
            let Some(frame) = self.frame().await? else {
                if self.remaining > 0 {
                    return Err(ChunkError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "data node {} ended chunk {} {} bytes short",
                            self.node.pool.authority, self.id, self.remaining
                        ),
                    )));
                }
                self.release();
                return Ok(None);
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers()
                        && header_str(&trailers, ERROR_HEADER) == Some(CORRUPT)
                    {
                        return Err(ChunkError::Corrupt {
                            id: self.id,
                            offset: header_u64(&trailers, OFFSET_HEADER).unwrap_or(0),
                        });
                    }
                    continue;
                }
            };
            let len = data.len() as u64;
            if len > self.remaining {
                return Err(self.node.invalid_answer("more bytes than the range asked"));
            }
            self.remaining -= len;
            if len == 0 {
                continue;
            }
            if self.remaining == 0 {
                self.finish().await;
            }
            return Ok(Some((data, self)));
        }
    }

    async fn frame(&mut self) -> Result<Option<Frame<Bytes>>, ChunkError> {
        match timeout(self.node.timeouts.stall, self.body.frame()).await {
            Err(_) => Err(self.node.stalled("sending a chunk")),
            Ok(None) => Ok(None),
            Ok(Some(Ok(frame))) => Ok(Some(frame)),
            Ok(Some(Err(err))) => Err(self.node.transport_error(err)),
        }
    }

    /// All bytes arrived: reads the end of the body (a corrupt trailer cannot follow, as bytes
    /// are sent only once verified), so that the connection can serve another request even if
    /// the caller stops polling now.
    async fn finish(&mut self) {
        loop {
            match self.frame().await {
                Ok(Some(_)) => continue,
                Ok(None) => return self.release(),
                Err(_) => {
                    self.sender = None;
                    return;
                }
            }
        }
    }

    fn release(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.node.pool.put_back(sender);
        }
    }
}

/// A read whose bytes are checked here, block by block, against a CRC table already judged
/// against the chunk's digest; a block is passed on only once all of it matched, and only its
/// part inside the range asked.
struct BlockCheck {
    id: ChunkId,
    table: ChunkTable,
    wanted: Range<u64>,
    /// The chunk offset of the next byte to arrive.
    pos: u64,
    /// The CRC32C of the current block so far.
    crc: u32,
    /// The current block's bytes inside `wanted`, held until the block is verified.
    pending: Vec<Bytes>,
    /// Verified bytes to pass on.
    ready: VecDeque<Bytes>,
    /// Bytes that arrived with the end of the table.
    first: Option<Bytes>,
    /// `None` once the node's answer has ended.
    read: Option<RemoteRead>,
}

impl BlockCheck {
    async fn next(mut self) -> Result<Option<(Bytes, Self)>, ChunkError> {
        loop {
            if let Some(data) = self.ready.pop_front() {
                return Ok(Some((data, self)));
            }
            let data = match self.first.take() {
                Some(data) => data,
                None => {
                    let Some(read) = self.read.take() else {
                        return Ok(None);
                    };
                    match read.next().await? {
                        Some((data, read)) => {
                            self.read = Some(read);
                            data
                        }
                        None => {
                            // `RemoteRead` counted every byte of the widened range in, so the
                            // last block was complete and verified.
                            debug_assert!(self.pending.is_empty());
                            return Ok(None);
                        }
                    }
                }
            };
            self.take_in(data)?;
        }
    }

    fn take_in(&mut self, mut data: Bytes) -> Result<(), ChunkError> {
        let block_size = self.table.block_size;
        while !data.is_empty() {
            let index = self.pos / block_size;
            let block_end = ((index + 1) * block_size).min(self.table.data_len);
            let take = (block_end - self.pos).min(data.len() as u64);
            let piece = data.split_to(take as usize);
            self.crc = crc32c::crc32c_append(self.crc, &piece);
            let from = self.wanted.start.max(self.pos);
            let to = self.wanted.end.min(self.pos + take);
            if from < to {
                let at = (from - self.pos) as usize..(to - self.pos) as usize;
                self.pending.push(piece.slice(at));
            }
            self.pos += take;
            if self.pos == block_end {
                if self.table.crc(index) != Some(self.crc) {
                    return Err(ChunkError::Corrupt {
                        id: self.id,
                        offset: index * block_size,
                    });
                }
                self.crc = 0;
                self.ready.extend(self.pending.drain(..));
            }
        }
        Ok(())
    }
}

/// Idle HTTP/1.1 connections to one node.
struct Pool {
    /// `host:port`, also sent as the `Host` header.
    authority: String,
    connect_timeout: Duration,
    /// For an `https://` node: the name its certificate must carry, and what the client trusts
    /// (`None` until `with_tls`, and then connecting fails).
    tls: Option<(ServerName<'static>, Option<TlsConnector>)>,
    /// Each with the moment it became idle.
    idle: Mutex<Vec<(SendRequest<RequestBody>, Instant)>>,
}

struct Connection {
    sender: SendRequest<RequestBody>,
    /// Taken from the pool rather than opened for this request.
    reused: bool,
}

impl Pool {
    fn new(
        authority: String,
        connect_timeout: Duration,
        tls: Option<(ServerName<'static>, Option<TlsConnector>)>,
    ) -> Self {
        Pool {
            authority,
            connect_timeout,
            tls,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(SendRequest<RequestBody>, Instant)>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn checkout(&self) -> Result<Connection, ChunkError> {
        loop {
            let Some((mut sender, since)) = self.idle().pop() else {
                break;
            };
            if sender.is_closed() || since.elapsed() > MAX_IDLE_TIME {
                continue;
            }
            // A connection only returns to the pool after a complete exchange, so it is ready
            // at once unless the node has closed it.
            if let Ok(Ok(())) = timeout(self.connect_timeout, sender.ready()).await {
                return Ok(Connection {
                    sender,
                    reused: true,
                });
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<Connection, ChunkError> {
        let node = &self.authority;
        let stream = timeout(self.connect_timeout, TcpStream::connect(node))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to data node {node} timed out"),
                )
            })?
            .map_err(|err| io::Error::new(err.kind(), format!("data node {node}: {err}")))?;
        // Requests are small and answers latency-bound; do not wait for a delayed ACK.
        stream.set_nodelay(true)?;
        let sender = match &self.tls {
            None => handshake(stream, node).await?,
            Some((_, None)) => {
                return Err(ChunkError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("data node https://{node}: no CA to trust it (--node-ca)"),
                )));
            }
            Some((name, Some(connector))) => {
                let stream = timeout(
                    self.connect_timeout,
                    connector.connect(name.clone(), stream),
                )
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("TLS handshake with data node {node} timed out"),
                    )
                })?
                .map_err(|err| {
                    io::Error::new(err.kind(), format!("data node https://{node}: {err}"))
                })?;
                handshake(stream, node).await?
            }
        };
        Ok(Connection {
            sender,
            reused: false,
        })
    }

    fn put_back(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push((sender, Instant::now()));
        }
    }
}

/// Starts HTTP/1.1 on a connection to `node`, its driver on a task of its own.
async fn handshake<IO>(io: IO, node: &str) -> Result<SendRequest<RequestBody>, ChunkError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|err| ChunkError::Io(io::Error::other(format!("data node {node}: {err}"))))?;
    let node = node.to_owned();
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%node, error = %err, "data node connection ended");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::BlockSums;
    use crate::datanode::conformance::{self, digest_of, get, get_checked, pattern, put};
    use crate::datanode::local::BLOCK_SIZE;
    use crate::datanode::server::testing::{TestNode, key};

    const BLOCK: u64 = BLOCK_SIZE as u64;

    async fn node(capacity: Option<u64>) -> (tempfile::TempDir, TestNode, RemoteNode) {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), capacity).await;
        let remote = RemoteNode::new(&node.url(), key()).unwrap();
        (dir, node, remote)
    }

    /// Waits until the node's chunk directory holds no temp file of an abandoned upload.
    async fn wait_for_no_temp_files(node: &TestNode) {
        let chunks = node.data.join("chunks");
        for _ in 0..500 {
            let mut temp = 0;
            for prefix in std::fs::read_dir(&chunks).unwrap() {
                for entry in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
                    let name = entry.unwrap().file_name().into_string().unwrap();
                    temp += usize::from(name.contains(".tmp."));
                }
            }
            if temp == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the node kept the temp file of an abandoned upload");
    }

    #[tokio::test]
    async fn remote_node_conforms() {
        let (_dir, node, remote) = node(None).await;
        conformance::run_all(
            &remote,
            conformance::Absent::NotFound,
            conformance::Rewrite::Refused,
        )
        .await;
        wait_for_no_temp_files(&node).await;
        node.stop().await;
    }

    #[tokio::test]
    async fn streams_large_chunks_and_reuses_connections() {
        let (_dir, node, remote) = node(None).await;
        let data = pattern(4 * 1024 * 1024 + 3);
        let id = put(&remote, &data, &[65_536, 1, 100_000]).await;
        let len = data.len() as u64;
        for range in [
            0..len,
            1..len - 1,
            1024 * 1024 - 1..2 * 1024 * 1024 + 1,
            len - 1..len,
        ] {
            let want = &data[range.start as usize..range.end as usize];
            assert!(
                get(&remote, id, range.clone()).await.unwrap() == want,
                "{range:?}"
            );
        }
        // Everything so far ran on a few pooled connections.
        assert!(!remote.pool.idle().is_empty());
        assert!(remote.pool.idle().len() <= 2);

        // A caller that stops reading once it has every byte still leaves the connection usable.
        let mut stream = remote.read(id, 0..10, None).await.unwrap();
        use futures_util::StreamExt;
        assert_eq!(stream.next().await.unwrap().unwrap(), &data[..10]);
        drop(stream);
        assert_eq!(remote.pool.idle().len(), 1);
        assert_eq!(remote.len(id).await.unwrap(), Some(len));
        node.stop().await;
    }

    #[tokio::test]
    async fn reports_health() {
        let (_dir, node, remote) = node(Some(1_000_000)).await;
        put(&remote, &pattern(1234), &[100]).await;
        let health = remote.health().await.unwrap();
        assert_eq!(
            health,
            NodeHealth {
                node_id: node.node_id.hyphenated().to_string(),
                zone: Some("zone-a".to_owned()),
                capacity: Some(1_000_000),
                used: 1234,
                free: Some(1_000_000 - 1234),
                chunk_count: 1,
            }
        );
        node.stop().await;
    }

    #[tokio::test]
    async fn refuses_chunks_beyond_capacity() {
        let (_dir, node, remote) = node(Some(10_000)).await;
        // Declared too large up front.
        let reserving = remote.clone().with_reserve(10_001);
        let mut writer = reserving
            .create(ChunkId::random(), Caching::Keep)
            .await
            .unwrap();
        let result = match writer.write(Bytes::from(pattern(10))).await {
            Ok(()) => writer.commit().await.map(|_| ()),
            Err(err) => Err(err),
        };
        assert!(matches!(result, Err(ChunkError::Full(_))), "{result:?}");

        // Fits as declared, then fills the node.
        let reserving = remote.clone().with_reserve(8_000);
        let first = put(&reserving, &pattern(7_000), &[1000]).await;

        // Declared nothing, outgrows what is left while streaming.
        let mut writer = remote
            .create(ChunkId::random(), Caching::Keep)
            .await
            .unwrap();
        let mut result = Ok(());
        for _ in 0..4 {
            result = writer.write(Bytes::from(pattern(1000))).await;
            if result.is_err() {
                break;
            }
        }
        let result = match result {
            Ok(()) => writer.commit().await.map(|_| ()),
            Err(err) => Err(err),
        };
        assert!(matches!(result, Err(ChunkError::Full(_))), "{result:?}");

        // What is left still takes a smaller chunk; a delete gives the space back.
        put(&remote, &pattern(3_000), &[3_000]).await;
        let health = remote.health().await.unwrap();
        assert_eq!(
            (health.used, health.free, health.chunk_count),
            (10_000, Some(0), 2)
        );
        remote.delete(first).await.unwrap();
        let health = remote.health().await.unwrap();
        assert_eq!(
            (health.used, health.free, health.chunk_count),
            (3_000, Some(7_000), 1)
        );
        wait_for_no_temp_files(&node).await;
        node.stop().await;
    }

    #[tokio::test]
    async fn never_returns_bytes_of_a_damaged_chunk() {
        let (_dir, node, remote) = node(None).await;
        let data = pattern(3 * BLOCK_SIZE + 5);
        let len = data.len() as u64;
        let id = put(&remote, &data, &[50_000]).await;
        let local = node.local_store().await;
        let path = local.path_of(id);
        let mut file = std::fs::read(&path).unwrap();
        file[BLOCK_SIZE + 7] ^= 0x01;
        std::fs::write(&path, &file).unwrap();

        // Damage in the second block: the first block arrives, then the error, never the bad
        // block's bytes; the same when the gateway checks the blocks against the chunk's digest.
        use futures_util::StreamExt;
        for expected in [None, Some(digest_of(&data))] {
            let mut stream = remote.read(id, 0..len, expected).await.unwrap();
            let mut received = Vec::new();
            let error = loop {
                match stream.next().await.unwrap() {
                    Ok(bytes) => received.extend_from_slice(&bytes),
                    Err(err) => break err,
                }
            };
            assert!(
                matches!(error, ChunkError::Corrupt { id: bad, offset } if bad == id && offset == BLOCK),
                "{error:?}"
            );
            assert!(stream.next().await.is_none());
            assert!(received.len() as u64 <= BLOCK);
            assert_eq!(received, &data[..received.len()]);
            assert!(matches!(
                get_checked(&remote, id, BLOCK + 7..BLOCK + 8, expected).await,
                Err(ChunkError::Corrupt { .. })
            ));
            // Other blocks still read.
            assert_eq!(
                get_checked(&remote, id, 0..BLOCK, expected).await.unwrap(),
                &data[..BLOCK_SIZE]
            );
            assert_eq!(
                get_checked(&remote, id, 2 * BLOCK..len, expected)
                    .await
                    .unwrap(),
                &data[2 * BLOCK_SIZE..]
            );
        }

        // A damaged footer: the node cannot open the chunk at all.
        let last = file.len() - 1;
        file[last] ^= 0x01;
        std::fs::write(&path, &file).unwrap();
        assert!(matches!(
            remote.len(id).await,
            Err(ChunkError::Corrupt { .. })
        ));
        assert!(matches!(
            remote.read(id, 0..1, None).await.err(),
            Some(ChunkError::Corrupt { .. })
        ));
        // It can still be deleted, and its bytes stop counting.
        remote.delete(id).await.unwrap();
        assert_eq!(remote.health().await.unwrap().used, 0);
        node.stop().await;
    }

    /// The gateway's own check of the blocks a node sends, which catches a node that sends bytes
    /// other than those its table (already judged against the digest) describes.
    #[test]
    fn blocks_are_passed_on_only_once_they_match_the_table() {
        let data = pattern(3 * BLOCK_SIZE + 5);
        let len = data.len() as u64;
        let mut sums = BlockSums::new();
        sums.update(&data);
        let (crcs, _) = sums.finish();
        let table = ChunkTable {
            data_len: len,
            block_size: BLOCK,
            crcs: crcs.iter().flat_map(|c| c.to_le_bytes()).collect(),
        };
        let id = ChunkId::random();
        let check = |wanted: Range<u64>, start: u64| BlockCheck {
            id,
            table: table.clone(),
            wanted,
            pos: start,
            crc: 0,
            pending: Vec::new(),
            ready: VecDeque::new(),
            first: None,
            read: None,
        };
        for wanted in [0..1, BLOCK - 1..BLOCK + 1, 2 * BLOCK + 3..len, 0..len] {
            let sent = whole_blocks(&wanted, BLOCK, len);
            let mut check = check(wanted.clone(), sent.start);
            for piece in data[sent.start as usize..sent.end as usize].chunks(7_777) {
                check.take_in(Bytes::copy_from_slice(piece)).unwrap();
            }
            let got: Vec<u8> = check.ready.iter().flatten().copied().collect();
            assert_eq!(got, &data[wanted.start as usize..wanted.end as usize]);
        }
        // A byte changed in the second block: the first block passes, nothing of the second.
        let mut bad = data.clone();
        bad[BLOCK_SIZE + 9] ^= 0x10;
        let mut check = check(0..len, 0);
        let mut result = Ok(());
        for piece in bad.chunks(10_000) {
            result = check.take_in(Bytes::copy_from_slice(piece));
            if result.is_err() {
                break;
            }
        }
        assert!(
            matches!(result, Err(ChunkError::Corrupt { offset, .. }) if offset == BLOCK),
            "{result:?}"
        );
        let got: Vec<u8> = check.ready.iter().flatten().copied().collect();
        assert_eq!(got, &data[..BLOCK_SIZE]);
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_on_every_operation() {
        let (_dir, node, remote) = node(None).await;
        let id = put(&remote, &pattern(10), &[10]).await;
        let stranger = RemoteNode::new(
            &node.url(),
            ClusterKey::from_secret("not this cluster's secret"),
        )
        .unwrap();
        let refused = |result: Result<(), ChunkError>| matches!(result, Err(ChunkError::Io(err)) if err.kind() == io::ErrorKind::PermissionDenied);
        assert!(refused(stranger.len(id).await.map(|_| ())));
        assert!(refused(stranger.read(id, 0..5, None).await.map(|_| ())));
        assert!(refused(stranger.delete(id).await));
        assert!(refused(stranger.list(None, 5).await.map(|_| ())));
        assert!(refused(stranger.health().await.map(|_| ())));
        let mut writer = stranger
            .create(ChunkId::random(), Caching::Keep)
            .await
            .unwrap();
        let result = match writer.write(Bytes::from_static(b"abc")).await {
            Ok(()) => writer.commit().await.map(|_| ()),
            Err(err) => Err(err),
        };
        assert!(refused(result));
        assert_eq!(remote.list(None, 10).await.unwrap(), vec![id]);
        node.stop().await;
    }

    #[tokio::test]
    async fn gives_up_on_a_node_that_does_not_answer() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let timeouts = RemoteTimeouts {
            connect: Duration::from_millis(500),
            stall: Duration::from_millis(200),
            commit: Duration::from_millis(300),
        };
        let remote = RemoteNode::new(&format!("http://{addr}"), key())
            .unwrap()
            .with_timeouts(timeouts);
        let started = std::time::Instant::now();
        let result = remote.len(ChunkId::random()).await;
        assert!(
            matches!(&result, Err(ChunkError::Io(err)) if err.kind() == io::ErrorKind::TimedOut),
            "{result:?}"
        );
        let mut writer = remote
            .create(ChunkId::random(), Caching::Keep)
            .await
            .unwrap();
        let mut result = Ok(());
        // The socket buffers take some megabytes before the queue fills and the stall shows;
        // should they take everything, the commit waits in vain for an answer instead.
        let piece = Bytes::from(pattern(65_536));
        for _ in 0..2000 {
            result = writer.write(piece.clone()).await;
            if result.is_err() {
                break;
            }
        }
        let result = match result {
            Ok(()) => writer.commit().await.map(|_| ()),
            Err(err) => Err(err),
        };
        assert!(
            matches!(&result, Err(ChunkError::Io(err)) if err.kind() == io::ErrorKind::TimedOut),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        held.abort();

        // Nothing listens: connecting fails at once.
        drop(held);
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let remote = RemoteNode::new(&format!("http://{addr}"), key()).unwrap();
        assert!(matches!(
            remote.create(ChunkId::random(), Caching::Keep).await.err(),
            Some(ChunkError::Io(_))
        ));
    }

    #[tokio::test]
    async fn reconnects_after_the_node_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), None).await;
        let first_id = node.node_id;
        let remote = RemoteNode::new(&node.url(), key()).unwrap();
        let id = put(&remote, &pattern(100), &[100]).await;
        assert_eq!(remote.pool.idle().len(), 1);
        node.stop().await;
        assert!(matches!(remote.len(id).await, Err(ChunkError::Io(_))));

        // The same address again, as a restarted node would have.
        let addr = remote.pool.authority.parse().unwrap();
        let restarted = TestNode::start_on(addr, dir.path(), None).await;
        assert_eq!(restarted.node_id, first_id);
        assert_eq!(remote.len(id).await.unwrap(), Some(100));
        restarted.stop().await;
    }

    #[test]
    fn validates_node_urls() {
        for good in [
            "http://127.0.0.1:7000",
            "http://node-1:7000/",
            "http://[::1]:7000",
            "https://node-1:7000",
            "https://[::1]:7000",
        ] {
            assert!(RemoteNode::new(good, key()).is_ok(), "{good}");
        }
        assert_eq!(
            RemoteNode::new("http://node-1", key()).unwrap().base_url(),
            "http://node-1:80"
        );
        assert_eq!(
            RemoteNode::new("https://node-1", key())
                .unwrap()
                .with_timeouts(RemoteTimeouts::default())
                .base_url(),
            "https://node-1:443"
        );
        for bad in [
            "",
            "node-1:7000",
            "ftp://node-1:7000",
            "http://node-1:7000/chunks",
            "http://node-1:7000/?x=1",
            "http://user@node-1:7000",
        ] {
            assert!(RemoteNode::new(bad, key()).is_err(), "{bad}");
        }
    }
}
