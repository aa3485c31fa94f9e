//! The object service: what S3 handlers call, free of HTTP. A write streams the body through the
//! chunker into the chunk store while hashing it, verifies every digest the client declared, and
//! only then commits one metadata transaction; a read streams the chunks covering a byte range.
//! Chunks written by a request that fails before its commit are deleted by a drop guard.

pub mod access;
mod copy;
pub mod gc;
mod get;
mod list;
pub mod multipart;
mod put;

pub use list::{ListPage, ListQuery, UploadPage};
pub use put::{BodyChecks, NewObject, TrailingChecksum};

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use time::OffsetDateTime;

use crate::checksum::ChecksumAlgorithm;
use crate::datanode::{ChunkError, ChunkStore};
use crate::meta::{MetaError, MetaStore, ObjectMeta};

/// A body flowing in or out of the service.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// S3's limit for a single PutObject (and for one part).
pub const MAX_PUT_SIZE: u64 = 5 << 30;
/// Objects up to this size keep their bytes in their metadata row: no chunk file to create,
/// sync and open, and the one metadata transaction makes them durable.
pub const INLINE_MAX: u64 = 16 * 1024;

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

#[derive(Clone, Copy, Debug)]
pub struct GatewayConfig {
    pub chunk_size: u64,
    /// How long chunks of replaced or deleted data stay readable for reads already under way.
    pub gc_grace: Duration,
}

pub struct Gateway {
    meta: Arc<dyn MetaStore>,
    /// What access decisions read, cached.
    access: Arc<access::AccessCache>,
    store: Arc<dyn ChunkStore>,
    config: GatewayConfig,
    /// Bodies being hashed on threads of their own (see `Hasher`).
    hash_threads: Arc<AtomicUsize>,
    /// At most this many at once: the cores a single stream's hashing may take without
    /// slowing the streams already running.
    max_hash_threads: usize,
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl Gateway {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        store: Arc<dyn ChunkStore>,
        config: GatewayConfig,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Gateway {
            access: access::AccessCache::start(meta.clone()),
            meta,
            store,
            config,
            hash_threads: Arc::new(AtomicUsize::new(0)),
            max_hash_threads: cores / 2,
        }
    }

    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    pub fn access(&self) -> &access::AccessCache {
        &self.access
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

    pub async fn object(&self, bucket: &str, key: &str) -> GatewayResult<ObjectMeta> {
        match self.meta.object(bucket, key).await? {
            Some(o) => Ok(o),
            None => {
                self.require_bucket(bucket).await?;
                Err(GatewayError::NoSuchKey)
            }
        }
    }

    /// Returns whether an object was deleted (S3 answers 204 either way).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> GatewayResult<bool> {
        self.require_bucket(bucket).await?;
        Ok(self.meta.delete_object(bucket, key, self.gc_due()).await?)
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
