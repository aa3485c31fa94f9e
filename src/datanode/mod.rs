//! Chunk storage: the `ChunkStore` trait every backend implements: the local disk (`local`), one
//! data node over HTTP (`remote`, the client of `server`), and R nodes at once (`replicated`). A
//! chunk is an immutable run of bytes named by a `ChunkId`; it becomes visible only once fully
//! written, checksummed and fsynced, and every read is verified against a CRC32C kept per block.

pub mod auth;
#[cfg(test)]
pub mod conformance;
#[cfg(test)]
pub mod fault;
pub mod local;
pub mod remote;
pub mod replicated;
pub mod server;
mod sync_group;

use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::chunk::{ChunkDigest, ChunkId};

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk {0} not found")]
    NotFound(ChunkId),
    #[error("chunk {id} is corrupt at byte {offset}")]
    Corrupt { id: ChunkId, offset: u64 },
    #[error("range {start}..{end} is outside chunk {id} of {size} bytes")]
    OutOfRange {
        id: ChunkId,
        start: u64,
        end: u64,
        size: u64,
    },
    /// Too few data nodes could take part (write quorum lost, no live replica).
    #[error("chunk storage unavailable: {0}")]
    Unavailable(String),
    /// The store has no room for the chunk (a data node past its capacity).
    #[error("chunk storage full: {0}")]
    Full(String),
    #[error("chunk storage I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What the node storing a chunk does with the chunk's pages in its page cache once they are
/// durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Keeps them, as any file written is kept: the copy that reads of the chunk go to.
    Keep,
    /// Drops them as they become durable ("drop behind"): a copy that reads go to only when the
    /// preferred one cannot serve them (a second replica, a repair), which so takes no cache
    /// from the chunks the node does serve and, as the pages are freed while the chunk streams
    /// in, lets its next pages reuse them.
    DropBehind,
}

/// The bytes of a chunk read, in order, each item verified before it is yielded.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes, ChunkError>> + Send>>;

#[async_trait]
pub trait ChunkStore: Send + Sync + 'static {
    /// Starts writing a new chunk. Nothing is visible under `id` until `ChunkWriter::commit`
    /// returns; dropping the writer before that discards what was written. `caching` is advice:
    /// a store without a page cache of its own ignores it.
    async fn create(
        &self,
        id: ChunkId,
        caching: Caching,
    ) -> Result<Box<dyn ChunkWriter>, ChunkError>;

    /// Streams the bytes `range` (half-open, within the chunk), verifying the CRC32C of every
    /// block it touches. With an `expected` digest (what the gateway recorded when it wrote the
    /// chunk) the copy's CRC table must also match it, so that a copy replaced by other bytes
    /// with valid CRCs of their own is `Corrupt`, not served.
    async fn read(
        &self,
        id: ChunkId,
        range: Range<u64>,
        expected: Option<ChunkDigest>,
    ) -> Result<ChunkStream, ChunkError>;

    /// The length in bytes of a stored chunk, or `None` when there is no such chunk.
    async fn len(&self, id: ChunkId) -> Result<Option<u64>, ChunkError>;

    /// Removes a chunk; removing a chunk that does not exist succeeds.
    async fn delete(&self, id: ChunkId) -> Result<(), ChunkError>;

    /// Up to `limit` stored chunk ids greater than `after`, in ascending order (the inventory that
    /// orphan collection and scrub walk through).
    async fn list(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<ChunkId>, ChunkError>;
}

#[async_trait]
pub trait ChunkWriter: Send {
    /// Appends bytes to the chunk being written.
    async fn write(&mut self, data: Bytes) -> Result<(), ChunkError>;

    /// Makes the chunk durable and visible: flush, fsync the file, rename it to its final name,
    /// fsync the directory. Returns the chunk's length in bytes.
    async fn commit(self: Box<Self>) -> Result<u64, ChunkError>;
}
