//! The read path of GetObject and HeadObject: a byte range of an object is mapped onto the chunks
//! that hold it, a page of chunk references at a time, and streamed to the client while the next
//! chunk is read ahead. Small objects are served from their metadata row.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{ByteStream, Gateway, GatewayError, GatewayResult};
use crate::chunk::{ChunkRef, slice_in_chunk};
use crate::datanode::{ChunkStore, ChunkStream};
use crate::meta::{MetaError, MetaStore, ObjectMeta};

/// How many chunk references a read fetches from the metadata store at a time: a few hundred
/// KiB at most, so an object of millions of chunks costs no more. A page loaded after the
/// object was deleted or replaced comes from the GC queue, which keeps the chunk map until the
/// grace period ends (`MetaStore::queued_chunks`).
const CHUNK_PAGE: usize = 4096;
/// Chunk reads buffered ahead of the client: the next chunk is being read while one streams.
const READ_AHEAD_BUFFERS: usize = 4;
/// Ranges up to this long that lie in one chunk are read without reading ahead.
const DIRECT_READ_MAX: u64 = 1024 * 1024;

impl Gateway {
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
    async fn next_chunk(&mut self) -> GatewayResult<Option<ChunkStream>> {
        while self.pos < self.end {
            if self.page.is_empty() {
                let range = self.pos..self.end;
                let mut page = self
                    .meta
                    .chunks(self.owner, range.clone(), CHUNK_PAGE)
                    .await?;
                if page.is_empty() {
                    // The object was deleted or replaced since the read began; its chunks are
                    // queued, and readable, until its grace period ends.
                    page = self
                        .meta
                        .queued_chunks(self.owner, range, CHUNK_PAGE)
                        .await?;
                }
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
            return Ok(Some(
                self.store.read(chunk.chunk, slice, chunk.digest).await?,
            ));
        }
        Ok(None)
    }

    /// Sends `first` and every following chunk into `tx`, until the range ends or the client
    /// goes away.
    async fn stream(
        mut self,
        first: Option<ChunkStream>,
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
