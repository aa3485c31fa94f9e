//! The object service: what S3 handlers call, free of HTTP. A write streams the body through the
//! chunker into the chunk store while hashing it, verifies every digest the client declared, and
//! only then commits one metadata transaction; a read streams the chunks covering a byte range.
//! Chunks written by a request that fails before its commit are deleted by a drop guard.

mod list;
pub mod multipart;

pub use list::{ListPage, ListQuery, UploadPage};

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumType, Checksummer, Md5};
use crate::chunk::ChunkId;
use crate::chunk::ChunkRef;
use crate::chunk::{Chunker, slice_in_chunk};
use crate::datanode::{Caching, ChunkError, ChunkStore, ChunkWriter};
use crate::meta::{MetaError, MetaStore, ObjectMeta, StoredHeaders, WriteCondition};

/// A body flowing in or out of the service.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// S3's limit for a single PutObject (and for one part).
pub const MAX_PUT_SIZE: u64 = 5 << 30;
/// Objects up to this size keep their bytes in their metadata row: no chunk file to create,
/// sync and open, and the one metadata transaction makes them durable.
pub const INLINE_MAX: u64 = 16 * 1024;

/// Where `write_body` puts a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    Chunks,
    /// Inline when the declared length is at most `INLINE_MAX`, else chunks.
    InlineIfSmall,
}

/// How many chunk references a read fetches from the metadata store at a time. The first page
/// is loaded when the read starts, so a read of up to this many chunks (256 GiB at 64 MiB
/// chunks) holds its whole chunk map and survives an overwrite of the object during the GC
/// grace period; a few hundred KiB at most, so an object of millions of chunks costs no more.
const CHUNK_PAGE: usize = 4096;
/// A request body that sends nothing for this long is abandoned (the write fails, nothing
/// becomes visible), so a stalled client cannot hold a chunk writer forever.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Chunk reads buffered ahead of the client: the next chunk is being read while one streams.
const READ_AHEAD_BUFFERS: usize = 4;
/// Ranges up to this long that lie in one chunk are read without reading ahead.
const DIRECT_READ_MAX: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such key")]
    NoSuchKey,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("Content-MD5 does not match the body")]
    BadDigest,
    #[error("{0} checksum does not match the body")]
    ChecksumMismatch(ChecksumAlgorithm),
    #[error("x-amz-content-sha256 does not match the body")]
    Sha256Mismatch,
    #[error("body has {got} bytes, Content-Length said {expected}")]
    IncompleteBody { expected: u64, got: u64 },
    #[error("body is larger than {0} bytes")]
    EntityTooLarge(u64),
    #[error("part {0} is not stored or its ETag differs")]
    InvalidPart(u32),
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    #[error("part {number} has {size} bytes, under the 5 MiB minimum for all but the last part")]
    EntityTooSmall { number: u32, size: u64 },
    #[error("the part list is empty")]
    NoParts,
    #[error("the write's precondition does not hold")]
    PreconditionFailed,
    #[error("part checksum is {got}, the upload uses {expected}")]
    ChecksumAlgorithmMismatch {
        expected: ChecksumAlgorithm,
        got: ChecksumAlgorithm,
    },
    #[error("the request body could not be read: {0}")]
    Body(io::Error),
    #[error("the client sent no body bytes for too long")]
    BodyTimeout,
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

pub type GatewayResult<T> = Result<T, GatewayError>;

/// What the client declared about a body, checked against what arrived before anything commits.
#[derive(Clone, Debug, Default)]
pub struct BodyChecks {
    pub content_length: Option<u64>,
    pub md5: Option<[u8; 16]>,
    pub sha256: Option<[u8; 32]>,
    pub checksum: Option<Checksum>,
    /// A checksum that arrives after the body (an aws-chunked trailer).
    pub trailing_checksum: Option<TrailingChecksum>,
    /// The most bytes this kind of write accepts.
    pub max_size: u64,
}

/// A checksum declared before the body and sent after it: its algorithm is known up front so
/// the body is hashed with it; its value can be read once the body stream has ended.
#[derive(Clone)]
pub struct TrailingChecksum {
    pub algorithm: ChecksumAlgorithm,
    pub value: Arc<dyn Fn() -> Option<Checksum> + Send + Sync>,
}

impl std::fmt::Debug for TrailingChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrailingChecksum({})", self.algorithm.as_str())
    }
}

#[derive(Clone, Copy, Debug)]
pub struct GatewayConfig {
    pub chunk_size: u64,
    /// How long chunks of replaced or deleted data stay readable for reads already under way.
    pub gc_grace: Duration,
}

pub struct Gateway {
    meta: Arc<dyn MetaStore>,
    store: Arc<dyn ChunkStore>,
    config: GatewayConfig,
    /// Bodies being hashed on threads of their own (see `Hasher`).
    hash_threads: Arc<AtomicUsize>,
    /// At most this many at once: the cores a single stream's hashing may take without
    /// slowing the streams already running.
    max_hash_threads: usize,
}

/// A body written to chunks but not yet committed.
struct Written {
    chunks: Vec<ChunkRef>,
    /// The body itself instead of chunks, for a small object.
    inline: Option<Bytes>,
    size: u64,
    md5: [u8; 16],
    checksum: Option<Checksum>,
    guard: ChunkGuard,
}

/// Bodies of at least this declared length (or of none) are hashed on a thread of their own,
/// beside the task that receives and stores them: MD5 alone keeps a core busy at a stream's rate,
/// so hashing in line would make receiving and writing wait for it.
const HASH_THREAD_MIN: u64 = 1024 * 1024;
/// Bytes of body handed to the hashing thread at a time, so that it wakes once per batch
/// rather than once per network read.
const HASH_BATCH: usize = 256 * 1024;
/// Batches queued for the hashing thread: a few MiB at most.
const HASH_QUEUE: usize = 8;

/// Everything a body is hashed with while it streams.
struct Digests {
    md5: Md5,
    sha256: Option<Sha256>,
    summer: Option<Checksummer>,
}

impl Digests {
    fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(h) = self.sha256.as_mut() {
            h.update(data);
        }
        if let Some(s) = self.summer.as_mut() {
            s.update(data);
        }
    }
}

/// One of the gateway's hashing threads in use; given back when dropped.
struct HashThreadSlot(Arc<AtomicUsize>);

impl Drop for HashThreadSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Hashes a body in the receiving task, or on a blocking thread fed through a bounded queue so
/// that hashing overlaps receiving and writing: for a large body, while a core is to spare
/// (with every core busy, the hand-offs would only add work).
enum Hasher {
    InPlace(Box<Digests>),
    Thread {
        queue: mpsc::Sender<Vec<Bytes>>,
        /// Pieces not yet handed over, and their length.
        batch: Vec<Bytes>,
        batched: usize,
        task: JoinHandle<Digests>,
    },
}

impl Hasher {
    fn start(mut digests: Digests, slot: HashThreadSlot) -> Hasher {
        let (queue, mut batches) = mpsc::channel::<Vec<Bytes>>(HASH_QUEUE);
        let task = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            while let Some(batch) = batches.blocking_recv() {
                for data in batch {
                    digests.update(&data);
                }
            }
            digests
        });
        Hasher::Thread {
            queue,
            batch: Vec::new(),
            batched: 0,
            task,
        }
    }

    async fn update(&mut self, data: &Bytes) -> GatewayResult<()> {
        match self {
            Hasher::InPlace(digests) => digests.update(data),
            Hasher::Thread {
                queue,
                batch,
                batched,
                ..
            } => {
                batch.push(data.clone());
                *batched += data.len();
                if *batched >= HASH_BATCH {
                    *batched = 0;
                    let full = std::mem::take(batch);
                    queue.send(full).await.map_err(|_| hashing_stopped())?;
                }
            }
        }
        Ok(())
    }

    async fn finish(self) -> GatewayResult<Digests> {
        match self {
            Hasher::InPlace(digests) => Ok(*digests),
            Hasher::Thread {
                queue, batch, task, ..
            } => {
                if !batch.is_empty() {
                    queue.send(batch).await.map_err(|_| hashing_stopped())?;
                }
                drop(queue);
                task.await.map_err(|_| hashing_stopped())
            }
        }
    }
}

fn hashing_stopped() -> GatewayError {
    GatewayError::Chunk(ChunkError::Io(io::Error::other(
        "the hashing thread stopped",
    )))
}

/// A chunk whose commit (its fsync, or its replicas' acknowledgements) runs in the background
/// while the next chunk is received: its id, its length and the commit's task.
type Committing = (ChunkId, u64, JoinHandle<Result<u64, ChunkError>>);

/// Deletes chunks of a write that never committed, when dropped without `disarm`.
struct ChunkGuard {
    store: Arc<dyn ChunkStore>,
    chunks: Vec<ChunkId>,
    committing: Option<Committing>,
}

impl ChunkGuard {
    fn disarm(mut self) {
        self.chunks.clear();
    }

    /// Commits `writer` in the background, after the chunk committing before it has finished
    /// and been recorded in `chunks`, so that one chunk's commit overlaps the next one's bytes.
    async fn commit_behind(
        &mut self,
        chunks: &mut Vec<ChunkRef>,
        (id, filled, writer): (ChunkId, u64, Box<dyn ChunkWriter>),
    ) -> GatewayResult<()> {
        self.settle(chunks).await?;
        let task = tokio::spawn(async move { writer.commit().await });
        self.committing = Some((id, filled, task));
        Ok(())
    }

    /// Waits for the chunk committing in the background, if any, and records it in `chunks`.
    async fn settle(&mut self, chunks: &mut Vec<ChunkRef>) -> GatewayResult<()> {
        let Some((id, filled, task)) = self.committing.take() else {
            return Ok(());
        };
        let size = task
            .await
            .map_err(|e| ChunkError::Io(io::Error::other(e)))??;
        debug_assert_eq!(size, filled);
        let offset = chunks.last().map_or(0, ChunkRef::end);
        chunks.push(ChunkRef {
            offset,
            size,
            chunk: id,
        });
        Ok(())
    }
}

impl Drop for ChunkGuard {
    fn drop(&mut self) {
        if self.chunks.is_empty() {
            return;
        }
        let chunks = std::mem::take(&mut self.chunks);
        let committing = self.committing.take();
        let store = self.store.clone();
        // Dropped inside the runtime (a request task); if the runtime is going away the files
        // are found as orphans at the next start.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                // A commit still running would otherwise put back a file deleted under it.
                if let Some((_, _, task)) = committing {
                    let _ = task.await;
                }
                for id in chunks {
                    if let Err(e) = store.delete(id).await {
                        tracing::warn!(chunk = %id, error = %e, "could not delete uncommitted chunk");
                    }
                }
            });
        }
    }
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A new object's metadata as the handlers describe it.
#[derive(Clone, Debug)]
pub struct NewObject {
    pub bucket: String,
    pub key: String,
    pub headers: StoredHeaders,
    pub condition: WriteCondition,
}

impl Gateway {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        store: Arc<dyn ChunkStore>,
        config: GatewayConfig,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Gateway {
            meta,
            store,
            config,
            hash_threads: Arc::new(AtomicUsize::new(0)),
            max_hash_threads: cores / 2,
        }
    }

    /// A slot for hashing a body on its own thread, if one is free.
    fn hash_thread(&self) -> Option<HashThreadSlot> {
        let taken = self
            .hash_threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_hash_threads).then_some(n + 1)
            });
        taken
            .ok()
            .map(|_| HashThreadSlot(self.hash_threads.clone()))
    }

    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// When chunks replaced or deleted now may be removed from storage.
    pub fn gc_due(&self) -> OffsetDateTime {
        now() + self.config.gc_grace
    }

    pub async fn require_bucket(&self, bucket: &str) -> GatewayResult<()> {
        match self.meta.bucket(bucket).await? {
            Some(_) => Ok(()),
            None => Err(GatewayError::NoSuchBucket),
        }
    }

    /// Streams `body` into new chunks, hashing as it goes, and checks every declared digest.
    async fn write_body(
        &self,
        body: &mut ByteStream,
        checks: &BodyChecks,
        compute: Option<ChecksumAlgorithm>,
        storage: Storage,
    ) -> GatewayResult<Written> {
        let mut guard = ChunkGuard {
            store: self.store.clone(),
            chunks: Vec::new(),
            committing: None,
        };
        let mut chunks = Vec::new();
        let mut chunker = Chunker::new(self.config.chunk_size);
        let mut writer: Option<(ChunkId, u64, Box<dyn ChunkWriter>)> = None;
        let algorithm = checks
            .checksum
            .as_ref()
            .map(|c| c.algorithm)
            .or(checks.trailing_checksum.as_ref().map(|t| t.algorithm))
            .or(compute);
        let digests = Digests {
            md5: Md5::new(),
            sha256: checks.sha256.map(|_| Sha256::new()),
            summer: algorithm.map(Checksummer::new),
        };
        let large = checks.content_length.is_none_or(|n| n >= HASH_THREAD_MIN);
        let mut hasher = match large.then(|| self.hash_thread()).flatten() {
            Some(slot) => Hasher::start(digests, slot),
            None => Hasher::InPlace(Box::new(digests)),
        };
        let limit = checks
            .content_length
            .unwrap_or(checks.max_size)
            .min(checks.max_size);
        let mut size = 0u64;
        // Bounded by the declared length, which `limit` enforces as the bytes arrive.
        let mut inline = checks
            .content_length
            .filter(|&n| storage == Storage::InlineIfSmall && n > 0 && n <= INLINE_MAX)
            .map(|n| BytesMut::with_capacity(n as usize));

        loop {
            let next = tokio::time::timeout(BODY_IDLE_TIMEOUT, body.next()).await;
            let Some(data) = next.map_err(|_| GatewayError::BodyTimeout)? else {
                break;
            };
            let data = data.map_err(GatewayError::Body)?;
            size += data.len() as u64;
            if size > limit {
                return Err(match checks.content_length {
                    Some(expected) if expected <= checks.max_size => GatewayError::IncompleteBody {
                        expected,
                        got: size,
                    },
                    _ => GatewayError::EntityTooLarge(checks.max_size),
                });
            }
            hasher.update(&data).await?;
            if let Some(buf) = inline.as_mut() {
                buf.extend_from_slice(&data);
                continue;
            }
            for piece in chunker.split(data) {
                let (_, filled, w) = match writer.as_mut() {
                    Some(w) => w,
                    None => {
                        let id = ChunkId::random();
                        guard.chunks.push(id);
                        let w = self.store.create(id, Caching::Keep).await?;
                        writer.insert((id, 0, w))
                    }
                };
                *filled += piece.data.len() as u64;
                w.write(piece.data).await?;
                if piece.ends_chunk
                    && let Some(ended) = writer.take()
                {
                    guard.commit_behind(&mut chunks, ended).await?;
                }
            }
        }
        if let Some(last) = writer.take() {
            guard.commit_behind(&mut chunks, last).await?;
        }
        guard.settle(&mut chunks).await?;
        if let Some(expected) = checks.content_length
            && size != expected
        {
            return Err(GatewayError::IncompleteBody {
                expected,
                got: size,
            });
        }
        let Digests {
            md5,
            sha256,
            summer,
        } = hasher.finish().await?;
        let md5 = md5.finalize();
        if checks.md5.is_some_and(|m| m != md5) {
            return Err(GatewayError::BadDigest);
        }
        if let (Some(h), Some(expected)) = (sha256, checks.sha256) {
            let got: [u8; 32] = h.finalize().into();
            if got != expected {
                return Err(GatewayError::Sha256Mismatch);
            }
        }
        let checksum = summer.map(|s| Checksum {
            algorithm: s.algorithm(),
            value: s.finalize(),
        });
        let declared = checks
            .checksum
            .clone()
            .or_else(|| checks.trailing_checksum.as_ref().and_then(|t| (t.value)()));
        if let (Some(declared), Some(got)) = (&declared, &checksum)
            && declared != got
        {
            return Err(GatewayError::ChecksumMismatch(declared.algorithm));
        }
        Ok(Written {
            chunks,
            inline: inline.map(BytesMut::freeze),
            size,
            md5,
            checksum,
            guard,
        })
    }

    /// PutObject: the body becomes the key's visible object only once it is all stored and
    /// verified.
    pub async fn put_object(
        &self,
        new: NewObject,
        checks: &BodyChecks,
        body: &mut ByteStream,
    ) -> GatewayResult<ObjectMeta> {
        self.require_bucket(&new.bucket).await?;
        // Fail fast before reading the body; the commit checks again, atomically.
        self.check_condition(&new.bucket, &new.key, &new.condition)
            .await?;
        // Like S3, objects uploaded without a checksum get a CRC64NVME.
        let written = self
            .write_body(
                body,
                checks,
                Some(ChecksumAlgorithm::Crc64Nvme),
                Storage::InlineIfSmall,
            )
            .await?;
        self.commit_object(new, written).await
    }

    /// Makes a body written by `write_body` the key's visible object, in one transaction.
    async fn commit_object(&self, new: NewObject, written: Written) -> GatewayResult<ObjectMeta> {
        let object = ObjectMeta {
            id: Uuid::new_v4(),
            bucket: new.bucket,
            key: new.key,
            size: written.size,
            etag: hex::encode(written.md5),
            last_modified: now(),
            headers: new.headers,
            checksum: written.checksum,
            checksum_type: ChecksumType::FullObject,
            parts_count: None,
            inline: written.inline,
        };
        self.meta
            .put_object(&object, &written.chunks, &new.condition, self.gc_due())
            .await
            .map_err(not_found_bucket)?;
        written.guard.disarm();
        Ok(object)
    }

    /// Evaluates a conditional write against the key's current object.
    pub async fn check_condition(
        &self,
        bucket: &str,
        key: &str,
        condition: &WriteCondition,
    ) -> GatewayResult<()> {
        let current = match condition {
            WriteCondition::Always => return Ok(()),
            _ => self.meta.object(bucket, key).await?,
        };
        match (condition, current) {
            (WriteCondition::IfAbsent, Some(_)) => Err(GatewayError::PreconditionFailed),
            (WriteCondition::IfMatch(_), None) => Err(GatewayError::NoSuchKey),
            (WriteCondition::IfMatch(want), Some(o)) if want != "*" && *want != o.etag => {
                Err(GatewayError::PreconditionFailed)
            }
            _ => Ok(()),
        }
    }

    pub async fn object(&self, bucket: &str, key: &str) -> GatewayResult<ObjectMeta> {
        match self.meta.object(bucket, key).await? {
            Some(o) => Ok(o),
            None => {
                self.require_bucket(bucket).await?;
                Err(GatewayError::NoSuchKey)
            }
        }
    }

    /// The byte range an object's part `number` occupies, if it has such a part. An object
    /// stored by one PutObject is its own part 1.
    pub async fn part_range(
        &self,
        object: &ObjectMeta,
        number: u32,
    ) -> GatewayResult<Option<Range<u64>>> {
        if object.parts_count.is_none() {
            return Ok((number == 1).then_some(0..object.size));
        }
        Ok(self
            .meta
            .object_part(object.id, number)
            .await?
            .map(|p| p.offset..p.offset + p.size))
    }

    /// Streams the bytes `range` of `object`, reading ahead while the client consumes. The
    /// first chunk is opened before this returns, so an object that cannot be read at all is
    /// an error the client gets instead of a response cut short.
    pub async fn read(&self, object: &ObjectMeta, range: Range<u64>) -> GatewayResult<ByteStream> {
        if let Some(data) = &object.inline {
            let (start, end) = (range.start as usize, range.end as usize);
            if start > end || end > data.len() {
                return Err(MetaError::Corrupt(format!(
                    "object {} has {} inline bytes, not {}",
                    object.id,
                    data.len(),
                    object.size
                ))
                .into());
            }
            let piece = data.slice(start..end);
            return Ok(Box::pin(futures_util::stream::iter([Ok(piece)])));
        }
        let mut cursor = ChunkCursor {
            meta: self.meta.clone(),
            store: self.store.clone(),
            owner: object.id,
            pos: range.start,
            end: range.end,
            page: std::collections::VecDeque::new(),
        };
        let first = cursor.next_chunk().await?;
        let owner = object.id;
        if range.end - range.start <= DIRECT_READ_MAX && cursor.pos >= cursor.end {
            // A small range inside one chunk: the chunk's stream is the body, with no task and
            // no channel between them, which at one request at a time is a noticeable share of
            // its latency.
            let Some(data) = first else {
                return Ok(Box::pin(futures_util::stream::empty()));
            };
            return Ok(Box::pin(
                data.map(move |item| item.map_err(|e| read_failed(owner, e.into()))),
            ));
        }
        let (tx, mut rx) = mpsc::channel::<Result<Bytes, io::Error>>(READ_AHEAD_BUFFERS);
        tokio::spawn(async move {
            if let Err(e) = cursor.stream(first, &tx).await {
                let _ = tx.send(Err(read_failed(owner, e))).await;
            }
        });
        Ok(Box::pin(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }

    /// Returns whether an object was deleted (S3 answers 204 either way).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> GatewayResult<bool> {
        self.require_bucket(bucket).await?;
        Ok(self.meta.delete_object(bucket, key, self.gc_due()).await?)
    }

    /// CopyObject: streams the source's bytes into new chunks of the destination.
    pub async fn copy_object(
        &self,
        source: &ObjectMeta,
        new: NewObject,
    ) -> GatewayResult<ObjectMeta> {
        self.require_bucket(&new.bucket).await?;
        let mut body = self.read(source, 0..source.size).await?;
        let checks = BodyChecks {
            content_length: Some(source.size),
            max_size: MAX_PUT_SIZE,
            ..BodyChecks::default()
        };
        let compute = source
            .checksum
            .as_ref()
            .map_or(ChecksumAlgorithm::Crc64Nvme, |c| c.algorithm);
        let written = self
            .write_body(&mut body, &checks, Some(compute), Storage::InlineIfSmall)
            .await?;
        // A copy of a multipart object is a single-part object: its ETag is its MD5.
        self.commit_object(new, written).await
    }

    /// Aborts multipart uploads initiated longer than `max_age` ago; returns how many.
    pub async fn expire_uploads(&self, max_age: Duration) -> GatewayResult<usize> {
        let mut aborted = 0;
        loop {
            let stale = self
                .meta
                .uploads_initiated_before(now() - max_age, 100)
                .await?;
            if stale.is_empty() {
                return Ok(aborted);
            }
            for id in &stale {
                if self.meta.abort_upload(id, self.gc_due()).await? {
                    tracing::info!(upload = %id, "aborted an expired multipart upload");
                    aborted += 1;
                }
            }
        }
    }

    /// Removes from storage the chunks whose grace period is over; returns how many.
    pub async fn collect_garbage(&self) -> GatewayResult<usize> {
        let mut removed = 0;
        loop {
            let due = self.meta.gc_due(now(), 1000).await?;
            if due.is_empty() {
                return Ok(removed);
            }
            let mut done = Vec::with_capacity(due.len());
            for id in &due {
                match self.store.delete(*id).await {
                    Ok(()) => done.push(*id),
                    // One chunk that cannot be deleted now must not hold up the others; it
                    // stays queued for the next pass.
                    Err(e) => {
                        tracing::warn!(chunk = %id, error = %e, "could not delete a collected chunk")
                    }
                }
            }
            if done.is_empty() {
                return Ok(removed);
            }
            self.meta.gc_done(&done).await?;
            removed += done.len();
        }
    }

    /// Deletes chunk files the metadata store does not know: writes cut off by a crash before
    /// their commit. Only safe while no write is in flight (at startup).
    pub async fn remove_orphans(&self) -> GatewayResult<usize> {
        let mut removed = 0;
        let mut after = None;
        loop {
            let page = self.store.list(after, 1000).await?;
            let Some(last) = page.last().copied() else {
                return Ok(removed);
            };
            let known = self.meta.known_chunks(&page).await?;
            for id in page.iter().filter(|id| !known.contains(id)) {
                self.store.delete(*id).await?;
                removed += 1;
            }
            after = Some(last);
        }
    }
}

fn not_found_bucket(e: MetaError) -> GatewayError {
    match e {
        MetaError::ChunkCollected(id) => GatewayError::Chunk(ChunkError::Unavailable(format!(
            "chunk {id} was collected as abandoned; retry the write"
        ))),
        MetaError::NoSuchBucket => GatewayError::NoSuchBucket,
        MetaError::NoSuchUpload => GatewayError::NoSuchUpload,
        MetaError::NoSuchKey => GatewayError::NoSuchKey,
        MetaError::PreconditionFailed => GatewayError::PreconditionFailed,
        e => GatewayError::Meta(e),
    }
}

/// Logs a read of `object` that failed after its response began, and turns the error into the
/// body stream's.
fn read_failed(object: Uuid, e: GatewayError) -> io::Error {
    tracing::error!(object = %object, error = %e, "read failed mid-stream");
    io::Error::other(e)
}

/// Walks the chunks covering a byte range of one owner, a page of chunk references at a time.
struct ChunkCursor {
    meta: Arc<dyn MetaStore>,
    store: Arc<dyn ChunkStore>,
    owner: Uuid,
    /// The next byte to read.
    pos: u64,
    end: u64,
    page: std::collections::VecDeque<ChunkRef>,
}

impl ChunkCursor {
    /// Opens the chunk holding the next byte, or None at the end of the range.
    async fn next_chunk(&mut self) -> GatewayResult<Option<crate::datanode::ChunkStream>> {
        while self.pos < self.end {
            if self.page.is_empty() {
                let page = self
                    .meta
                    .chunks(self.owner, self.pos..self.end, CHUNK_PAGE)
                    .await?;
                if page.is_empty() {
                    let why = format!("object {} has no chunk at byte {}", self.owner, self.pos);
                    return Err(MetaError::Corrupt(why).into());
                }
                self.page.extend(page);
            }
            let Some(chunk) = self.page.pop_front() else {
                continue;
            };
            let Some(slice) = slice_in_chunk(&chunk, &(self.pos..self.end)) else {
                continue;
            };
            if chunk.offset + slice.start != self.pos {
                let why = format!("object {} has a gap at byte {}", self.owner, self.pos);
                return Err(MetaError::Corrupt(why).into());
            }
            self.pos = chunk.offset + slice.end;
            return Ok(Some(self.store.read(chunk.chunk, slice).await?));
        }
        Ok(None)
    }

    /// Sends `first` and every following chunk into `tx`, until the range ends or the client
    /// goes away.
    async fn stream(
        mut self,
        first: Option<crate::datanode::ChunkStream>,
        tx: &mpsc::Sender<Result<Bytes, io::Error>>,
    ) -> GatewayResult<()> {
        let mut current = first;
        while let Some(mut data) = current {
            while let Some(buf) = data.next().await {
                if tx.send(Ok(buf?)).await.is_err() {
                    // The client went away.
                    return Ok(());
                }
            }
            current = self.next_chunk().await?;
        }
        Ok(())
    }
}
