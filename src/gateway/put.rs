//! The write path of PutObject (and of every write that stores a body: UploadPart, CopyObject):
//! the body streams through the chunker into the chunk store while it is hashed (on a thread of
//! its own for large bodies), each chunk commits in the background while the next streams in,
//! every digest the client declared is checked, and only then does one metadata transaction make
//! the object visible. A drop guard deletes the chunks of a write that never committed.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{ByteStream, Gateway, GatewayError, GatewayResult, INLINE_MAX, not_found_bucket, now};
use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumType, Checksummer, Md5};
use crate::chunk::{ChunkDigests, ChunkId, ChunkRef, Chunker};
use crate::datanode::{Caching, ChunkError, ChunkStore, ChunkWriter};
use crate::meta::{ObjectMeta, StoredHeaders, WriteCondition};

/// Where `write_body` puts a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Storage {
    Chunks,
    /// Inline when the declared length is at most `INLINE_MAX`, else chunks.
    InlineIfSmall,
}

/// A request body that sends nothing for this long is abandoned (the write fails, nothing
/// becomes visible), so a stalled client cannot hold a chunk writer forever.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

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

/// A new object's metadata as the handlers describe it.
#[derive(Clone, Debug)]
pub struct NewObject {
    pub bucket: String,
    pub key: String,
    pub headers: StoredHeaders,
    pub condition: WriteCondition,
    /// The canonical id of the writing account.
    pub owner: String,
    /// The object's ACL (JSON of an `iam::acl::Acl`); `None` is private to its owner.
    pub acl: Option<String>,
}

/// A body written to chunks but not yet committed.
pub(super) struct Written {
    pub(super) chunks: Vec<ChunkRef>,
    /// The body itself instead of chunks, for a small object.
    pub(super) inline: Option<Bytes>,
    pub(super) size: u64,
    pub(super) md5: [u8; 16],
    pub(super) checksum: Option<Checksum>,
    pub(super) guard: ChunkGuard,
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
    /// The digest of each chunk the body is cut into, recorded with the chunk map so that every
    /// read judges a replica against what this gateway received (none for an inline body).
    chunks: Option<ChunkDigests>,
}

impl Digests {
    fn update(&mut self, data: &[u8]) {
        if let Some(chunks) = self.chunks.as_mut() {
            chunks.update(data);
        }
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
pub(super) struct ChunkGuard {
    store: Arc<dyn ChunkStore>,
    chunks: Vec<ChunkId>,
    committing: Option<Committing>,
}

impl ChunkGuard {
    pub(super) fn disarm(mut self) {
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
            // Filled in once the body's hashing has finished.
            digest: None,
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

impl Gateway {
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

    /// Streams `body` into new chunks, hashing as it goes, and checks every declared digest.
    pub(super) async fn write_body(
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
        // Bounded by the declared length, which `limit` enforces as the bytes arrive.
        let mut inline = checks
            .content_length
            .filter(|&n| storage == Storage::InlineIfSmall && n > 0 && n <= INLINE_MAX)
            .map(|n| BytesMut::with_capacity(n as usize));
        let digests = Digests {
            md5: Md5::new(),
            sha256: checks.sha256.map(|_| Sha256::new()),
            summer: algorithm.map(Checksummer::new),
            chunks: inline
                .is_none()
                .then(|| ChunkDigests::new(self.config.chunk_size)),
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
            chunks: chunk_digests,
        } = hasher.finish().await?;
        let chunk_digests = chunk_digests.map(ChunkDigests::finish).unwrap_or_default();
        if chunk_digests.len() != chunks.len() {
            return Err(GatewayError::Chunk(ChunkError::Io(io::Error::other(
                format!(
                    "{} chunks written but {} digested",
                    chunks.len(),
                    chunk_digests.len()
                ),
            ))));
        }
        for (chunk, digest) in chunks.iter_mut().zip(chunk_digests) {
            chunk.digest = Some(digest);
        }
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
    pub(super) async fn commit_object(
        &self,
        new: NewObject,
        written: Written,
    ) -> GatewayResult<ObjectMeta> {
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
            owner: new.owner,
            acl: new.acl,
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
            (WriteCondition::IfNoneMatch(unwanted), Some(o)) if *unwanted == o.etag => {
                Err(GatewayError::PreconditionFailed)
            }
            _ => Ok(()),
        }
    }
}
