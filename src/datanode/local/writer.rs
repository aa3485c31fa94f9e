//! The write path of a local chunk: pieces gathered into buffers (the first 256 KiB, then 512 KiB
//! at a time, one write in flight on a blocking thread while the next buffer fills) into a temp
//! file written back and flushed behind the stream as it grows, so that the commit waits for
//! little. A store with direct writes sends full buffers past the page cache (`O_DIRECT`); a large
//! chunk written with `Caching::DropBehind` leaves the cache as each flush and the commit make it
//! durable. A guard removes the temp file of a writer that went away before its commit.

use std::fs::{self, File};
use std::io;
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use rustix::fs::{Advice, OFlags, fadvise, fcntl_getfl, fcntl_setfl};
use rustix::io::Errno;
use tokio::task::JoinHandle;

use crate::chunk::BlockSums;
use crate::datanode::sync_group::SyncGroup;
use crate::datanode::{Caching, ChunkError, ChunkWriter};

use super::blocking;
use super::format::{BLOCK_SIZE, CRC_LEN, FOOTER_LEN, Footer};

/// Bytes a writer gathers before its first write, so pieces of a few KiB from the network cost
/// one syscall per 256 KiB instead of one each; most small chunks need no more.
pub(super) const FIRST_BUFFER: usize = 256 * 1024;

/// Bytes per write once a chunk has outgrown its first buffer. A writer holds two: one being
/// filled while the other is written on a blocking thread. Small enough that many concurrent
/// writers stay within the memory budget, and aligned so that a store with direct writes
/// (`with_direct_writes`) can send them past the page cache (`O_DIRECT`).
///
/// Direct writes are a trade, so they are the operator's choice: they spare the CPU the copy of
/// every byte into freshly allocated cache pages (on one benchmark VM, `dd` used 6 to 20 times
/// the system time of the same write with `oflag=direct`, at the same rate, and the copy was the
/// largest cost of the loopback cluster's PUT), but one write at a time reaches only what the
/// disk does at queue depth 1 (on another VM 290 to 430 MiB/s against 540 to 590 through the
/// cache, whatever the queue depth), and a chunk read right after it was written comes from the
/// disk instead of the cache.
pub(super) const DIRECT_BUFFER: usize = 512 * 1024;

/// `DIRECT_BUFFER`s a store keeps for its next writers. Reusing them keeps the memory of a busy
/// store flat (freed buffers otherwise linger in the allocator's per-thread heaps) and spares
/// every new writer the page faults of fresh memory.
const SPARE_BUFFERS: usize = 16;

/// What direct I/O aligns buffers, file offsets and lengths to: the logical block of 512-byte
/// and 4 KiB devices alike.
pub(super) const DIRECT_ALIGN: usize = 4096;

/// Chunks of at least this many bytes are fsynced on their own (file, then directory): writing
/// their data back is the cost, and a sync of the whole filesystem would also wait for every
/// other chunk still being written. Smaller chunks share one group sync instead.
const OWN_SYNC_MIN: u64 = 1024 * 1024;

/// Bytes a writer lets pile up in the page cache (when not writing directly) before asking the
/// kernel to start writing them back. Without it nothing reaches the disk until the commit's
/// fsync (the kernel's own threshold is a share of RAM), so the disk idles while a chunk streams
/// in, then the stream waits on it.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// Bytes a writer lets pile up past its last durable point before it makes them durable in the
/// background (`fdatasync` on a thread of its own, one at a time) while the chunk keeps streaming
/// in. Data written back is not yet durable: on a VM, the host holds it in its own cache until
/// the guest asks for a flush, and that flush, not the writeback, was what a large chunk's commit
/// waited for (90 to 130 ms per 64 MiB chunk on one VM, with the disk idle). Flushing behind the
/// stream leaves the commit's fsync at most this much to wait for.
pub(super) const FLUSH_EVERY: u64 = 16 * 1024 * 1024;

/// A byte buffer whose start is aligned for direct I/O.
#[derive(Debug)]
struct Buffer {
    /// `capacity` bytes and `DIRECT_ALIGN` to spare, so that `start` can be aligned.
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buffer {
    fn new(capacity: usize) -> Self {
        let raw = vec![0u8; capacity + DIRECT_ALIGN];
        let start = aligned_start(&raw);
        Buffer { raw, start, len: 0 }
    }

    fn capacity(&self) -> usize {
        self.raw.len() - DIRECT_ALIGN
    }

    /// Appends as much of `data` as fits and returns how much that was.
    fn fill(&mut self, data: &[u8]) -> usize {
        let take = (self.capacity() - self.len).min(data.len());
        let at = self.start + self.len;
        self.raw[at..at + take].copy_from_slice(&data[..take]);
        self.len += take;
        take
    }

    fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

/// The `DIRECT_BUFFER`s a store's writers are done with, for its next writers.
#[derive(Clone, Debug, Default)]
pub(super) struct BufferPool(Arc<Mutex<Vec<Buffer>>>);

impl BufferPool {
    fn take(&self) -> Buffer {
        self.spares()
            .pop()
            .unwrap_or_else(|| Buffer::new(DIRECT_BUFFER))
    }

    /// Keeps `buf`, emptied, if it is a `DIRECT_BUFFER` and the pool has room; frees it otherwise.
    fn give(&self, mut buf: Buffer) {
        let mut spares = self.spares();
        if buf.capacity() == DIRECT_BUFFER && spares.len() < SPARE_BUFFERS {
            buf.len = 0;
            spares.push(buf);
        }
    }

    fn spares(&self) -> MutexGuard<'_, Vec<Buffer>> {
        // A panic while the lock was held leaves nothing half-done: the list is whole either way.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The open temp file and what was written to it; moved to a blocking thread for each write.
struct Sink {
    file: File,
    sums: BlockSums,
    /// Bytes written to the file so far, and where the last writeback request ended.
    written: u64,
    written_back: u64,
    /// The background flush in flight (see `FLUSH_EVERY`), and the bytes it covers.
    flushing: Option<std::thread::JoinHandle<io::Result<()>>>,
    flushing_to: u64,
    /// Whether the file is in `O_DIRECT` mode, and whether it may be put in it (not once the
    /// filesystem refused).
    direct: bool,
    direct_allowed: bool,
    /// Whether each flush drops what it made durable from the page cache (`Caching::DropBehind`).
    drop_behind: bool,
}

impl Sink {
    /// A sink that writes `DIRECT_BUFFER`s directly if `direct_allowed`, else through the cache,
    /// and keeps or drops the pages it wrote as `caching` says.
    fn new(file: File, direct_allowed: bool, caching: Caching) -> Self {
        Sink {
            file,
            sums: BlockSums::new(),
            written: 0,
            written_back: 0,
            flushing: None,
            flushing_to: 0,
            direct: false,
            direct_allowed,
            drop_behind: caching == Caching::DropBehind,
        }
    }

    /// Appends `data` and flushes behind it (see `flush_behind`).
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(data)?;
        self.flush_behind()
    }

    /// Appends `data`, checksumming the bytes in the order they land in the file: directly if
    /// the file is in `O_DIRECT` mode, else through the page cache.
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.sums.update(data);
        if self.direct {
            match self.file.write_all_at(data, self.written) {
                Ok(()) => {
                    self.written += data.len() as u64;
                    return Ok(());
                }
                // The filesystem takes the flag but not these writes: write as everyone else
                // does, over whatever part of `data` did land.
                Err(err) if is_einval(&err) => {
                    tracing::debug!(error = %err, "direct write refused; writing through the page cache");
                    self.set_direct(false)?;
                    self.direct_allowed = false;
                }
                Err(err) => return Err(err),
            }
        }
        self.file.write_all_at(data, self.written)?;
        self.written += data.len() as u64;
        self.start_writeback();
        Ok(())
    }

    /// Appends a whole `DIRECT_BUFFER`, which sits at an aligned offset, with `O_DIRECT` where
    /// the filesystem allows it.
    fn append_direct(&mut self, data: &[u8]) -> io::Result<()> {
        debug_assert_eq!(self.written % DIRECT_ALIGN as u64, 0);
        if !self.direct
            && self.direct_allowed
            && let Err(err) = self.set_direct(true)
        {
            tracing::debug!(error = %err, "no direct writes on this filesystem");
            self.direct_allowed = false;
        }
        self.append(data)
    }

    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        set_direct(&self.file, on)?;
        self.direct = on;
        Ok(())
    }

    /// Starts writing back what was written since the last request, once there is enough of it.
    /// `POSIX_FADV_DONTNEED` does that without waiting (Linux starts writeback of the range's
    /// dirty pages, then drops only pages already clean), so the disk works while the chunk keeps
    /// streaming in and the commit's fsync finds little left. Only advice: an error changes
    /// nothing the commit relies on. (`sync_file_range(SYNC_FILE_RANGE_WRITE)` says this
    /// directly, but rustix does not offer it and this crate forbids `unsafe`.)
    fn start_writeback(&mut self) {
        // Not over bytes a flush behind the stream covers: those it made durable are clean, and
        // `DONTNEED` would drop them from the cache of a chunk written to be kept. (It still
        // drops the few a flush's fsync found written past where the flush began.)
        let from = self.written_back.max(self.flushing_to);
        let Some(len) = NonZeroU64::new(self.written - from) else {
            return;
        };
        if len.get() < WRITEBACK_EVERY {
            return;
        }
        if let Err(err) = fadvise(&self.file, from, Some(len), Advice::DontNeed) {
            tracing::debug!(error = %err, "could not start writeback of a chunk");
        }
        self.written_back = self.written;
    }

    /// Starts making the bytes written so far durable on a thread of its own, once `FLUSH_EVERY`
    /// of them are past the last flush and the one before has finished. A flush's error is
    /// returned here or by `seal`, never dropped: the fsync of the commit, on the same open file,
    /// would not report it again.
    fn flush_behind(&mut self) -> io::Result<()> {
        if self.written - self.flushing_to < FLUSH_EVERY
            || self.flushing.as_ref().is_some_and(|f| !f.is_finished())
        {
            return Ok(());
        }
        self.finish_flush()?;
        let (drop_behind, durable) = (self.drop_behind, self.written);
        let started = self.file.try_clone().and_then(|file| {
            std::thread::Builder::new()
                .name("cairn-flush".into())
                .spawn(move || {
                    file.sync_data()?;
                    if drop_behind {
                        drop_cached(&file, NonZeroU64::new(durable));
                    }
                    Ok(())
                })
        });
        // Only a head start: without it the commit's fsync does all the work.
        match started {
            Ok(flush) => {
                self.flushing = Some(flush);
                self.flushing_to = self.written;
            }
            Err(err) => tracing::debug!(error = %err, "could not start a chunk flush"),
        }
        Ok(())
    }

    /// Waits for the background flush, if any, and returns its result.
    fn finish_flush(&mut self) -> io::Result<()> {
        match self.flushing.take() {
            Some(flush) => flush
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a chunk flush panicked"))),
            None => Ok(()),
        }
    }

    /// Writes the `last` bytes, the CRC table and the footer (not yet durable: the commit makes
    /// it so). Returns the data length and the file.
    fn seal(mut self, last: &[u8]) -> io::Result<(u64, File)> {
        // Whole aligned blocks may still go directly; the unaligned end cannot.
        let aligned = if self.direct {
            last.len() - last.len() % DIRECT_ALIGN
        } else {
            0
        };
        // No new flush from here: the commit's fsync follows at once.
        self.write(&last[..aligned])?;
        if self.direct {
            self.set_direct(false)?;
        }
        self.write(&last[aligned..])?;
        self.finish_flush()?;
        let (table, data_len) = self.sums.finish();
        let mut tail = Vec::with_capacity(table.len() * CRC_LEN as usize + FOOTER_LEN as usize);
        for crc in &table {
            tail.extend_from_slice(&crc.to_le_bytes());
        }
        let footer = Footer {
            data_len,
            block_size: BLOCK_SIZE as u64,
            table_crc: crc32c::crc32c(&tail),
        };
        tail.extend_from_slice(&footer.encode()?);
        self.file.write_all_at(&tail, self.written)?;
        Ok((data_len, self.file))
    }
}

/// Removes the temp file when dropped unless `kept`: the guard that discards a chunk whose writer
/// was dropped, failed or cancelled before commit.
struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    /// Called once the file was renamed to its final name, which must stay.
    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Unlink is one quick metadata call; doing it in place avoids depending on a runtime that
        // may be shutting down. A write still running on a blocking thread keeps only an unlinked
        // inode alive, which disappears when that thread closes it.
        if let Err(err) = fs::remove_file(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %err, "could not remove chunk temp file");
        }
    }
}

pub(super) struct LocalChunkWriter {
    /// Bytes gathered for the next write.
    buf: Buffer,
    /// Where the buffers after the first come from, and go back to once written.
    pool: BufferPool,
    sink: SinkState,
    temp: TempFile,
    path: PathBuf,
    sync: SyncGroup,
}

/// Where a writer's file is.
enum SinkState {
    Idle(Sink),
    /// On a blocking thread, writing a full buffer; it comes back with the buffer.
    Writing(JoinHandle<io::Result<(Sink, Buffer)>>),
    /// A write failed or was cancelled mid-flight: the file's contents are unknown.
    Unusable,
}

impl LocalChunkWriter {
    /// A writer filling the new temp file `file` at `temp_path`, to become the chunk at `path`.
    pub(super) fn new(
        file: File,
        temp_path: PathBuf,
        path: PathBuf,
        pool: BufferPool,
        sync: SyncGroup,
        direct_writes: bool,
        caching: Caching,
    ) -> Self {
        LocalChunkWriter {
            buf: Buffer::new(FIRST_BUFFER),
            pool,
            sink: SinkState::Idle(Sink::new(file, direct_writes, caching)),
            temp: TempFile {
                path: temp_path,
                kept: false,
            },
            path,
            sync,
        }
    }

    /// Takes the file back, once the write in flight (if any) has finished.
    async fn idle_sink(&mut self) -> Result<Sink, ChunkError> {
        match std::mem::replace(&mut self.sink, SinkState::Unusable) {
            SinkState::Idle(sink) => Ok(sink),
            SinkState::Writing(task) => {
                let (sink, written) = task
                    .await
                    .map_err(|err| ChunkError::Io(io::Error::other(err)))??;
                self.pool.give(written);
                Ok(sink)
            }
            SinkState::Unusable => Err(writer_unusable()),
        }
    }

    /// Hands the full buffer to a blocking thread to write, and goes on with another.
    async fn flush(&mut self) -> Result<(), ChunkError> {
        let mut sink = self.idle_sink().await?;
        let full = std::mem::replace(&mut self.buf, self.pool.take());
        self.sink = SinkState::Writing(tokio::task::spawn_blocking(move || {
            if full.capacity() == DIRECT_BUFFER {
                sink.append_direct(full.bytes())?;
            } else {
                sink.append(full.bytes())?;
            }
            Ok((sink, full))
        }));
        Ok(())
    }
}

#[async_trait]
impl ChunkWriter for LocalChunkWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), ChunkError> {
        if matches!(self.sink, SinkState::Unusable) {
            return Err(writer_unusable());
        }
        let mut rest = &data[..];
        while !rest.is_empty() {
            let taken = self.buf.fill(rest);
            rest = &rest[taken..];
            if self.buf.is_full() {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, ChunkError> {
        let sink = self.idle_sink().await?;
        let drop_behind = sink.drop_behind;
        let LocalChunkWriter {
            buf,
            pool,
            mut temp,
            path,
            sync,
            ..
        } = *self;
        // The temp guard moves along so that a failure, or a caller that stops waiting, still
        // removes the temp file once the blocking work ends.
        // Acknowledged only once durable. A chunk that is not must not stay under its name; one
        // left by a crash or a caller that stopped waiting is an orphan, and garbage collection
        // removes it.
        let final_path = path.clone();
        let (data_len, synced) = blocking(move || {
            let sealed = sink.seal(buf.bytes());
            pool.give(buf);
            let (data_len, file) = sealed?;
            let own = data_len >= OWN_SYNC_MIN;
            if own {
                file.sync_all()?;
                if drop_behind {
                    drop_cached(&file, None);
                }
            }
            fs::rename(&temp.path, &path)?;
            temp.keep();
            if own && let Err(err) = sync_parent(&path) {
                let _ = fs::remove_file(&path);
                return Err(err);
            }
            Ok::<_, io::Error>((data_len, own))
        })
        .await??;
        if !synced && let Err(err) = sync.sync().await {
            let _ = blocking(move || fs::remove_file(final_path)).await;
            return Err(err.into());
        }
        Ok(data_len)
    }
}

fn writer_unusable() -> ChunkError {
    ChunkError::Io(io::Error::other(
        "chunk writer is unusable after a failed or interrupted write",
    ))
}

/// Drops the first `len` bytes of `file` (all of it if `None`), already durable, from the page
/// cache. Only advice: the chunk is durable either way.
fn drop_cached(file: &File, len: Option<NonZeroU64>) {
    if let Err(err) = fadvise(file, 0, len, Advice::DontNeed) {
        tracing::debug!(error = %err, "could not drop a chunk's pages from the page cache");
    }
}

/// Puts `file` in `O_DIRECT` mode, or out of it.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, flags)?;
    Ok(())
}

fn is_einval(err: &io::Error) -> bool {
    Errno::from_io_error(err) == Some(Errno::INVAL)
}

/// Where `buf`, allocated with `DIRECT_ALIGN` bytes to spare, has its first aligned byte.
fn aligned_start(buf: &[u8]) -> usize {
    (DIRECT_ALIGN - buf.as_ptr().addr() % DIRECT_ALIGN) % DIRECT_ALIGN
}

/// Makes a rename in `path`'s directory durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkId;
    use crate::datanode::ChunkStore;
    use crate::datanode::conformance::{get, pattern, put};
    use crate::datanode::local::tests::new_store;

    #[test]
    fn asks_for_writeback_and_flushes_every_few_mib_as_the_chunk_streams_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::new(
            File::create(dir.path().join("chunk")).unwrap(),
            false,
            Caching::Keep,
        );
        let piece = pattern(3 * 1024 * 1024);
        let (mut asked, mut flushed) = (Vec::new(), Vec::new());
        for _ in 0..12 {
            sink.append(&piece).unwrap();
            asked.push(sink.written_back / (1024 * 1024));
            flushed.push(sink.flushing_to / (1024 * 1024));
            // Waiting here makes the test independent of the disk's speed: a flush still running
            // would only postpone the next one.
            sink.finish_flush().unwrap();
        }
        // 36 MiB in 3 MiB writes: a writeback request once 8 MiB are pending, and a flush once
        // 16 MiB are past the last one, each covering all that was written.
        assert_eq!(asked, [0, 0, 9, 9, 9, 18, 18, 18, 27, 27, 27, 36]);
        assert_eq!(flushed, [0, 0, 0, 0, 0, 18, 18, 18, 18, 18, 18, 36]);
        sink.append(&piece).unwrap();
        let (len, _) = sink.seal(&[]).unwrap();
        assert_eq!(len, 39 * 1024 * 1024);
    }

    /// Writes `whole` full direct buffers after a first buffer, then seals with `last` bytes;
    /// checks the chunk reads back whole through a store, and returns the sink's mode before
    /// sealing: whether it was direct, and whether it still might be.
    async fn write_direct(whole: usize, last: usize, misaligned: bool) -> (bool, bool) {
        let (_dir, store) = new_store().await;
        let id = ChunkId::random();
        let path = store.path_of(id);
        let data = pattern(FIRST_BUFFER + whole * DIRECT_BUFFER + last);
        let mut sink = Sink::new(File::create(&path).unwrap(), true, Caching::Keep);
        sink.append(&data[..FIRST_BUFFER]).unwrap();
        for piece in data[FIRST_BUFFER..].chunks(DIRECT_BUFFER).take(whole) {
            let mut buf = Buffer::new(DIRECT_BUFFER);
            // One byte past the aligned start, a direct write is refused.
            buf.start += usize::from(misaligned);
            assert_eq!(buf.fill(piece), DIRECT_BUFFER);
            sink.append_direct(buf.bytes()).unwrap();
        }
        let mode = (sink.direct, sink.direct_allowed);
        sink.seal(&data[FIRST_BUFFER + whole * DIRECT_BUFFER..])
            .unwrap();
        let len = data.len() as u64;
        assert_eq!(store.len(id).await.unwrap(), Some(len));
        assert_eq!(get(&store, id, 0..len).await.unwrap(), data);
        mode
    }

    #[tokio::test]
    async fn full_buffers_are_written_directly_and_the_unaligned_end_through_the_cache() {
        for last in [0, 1, DIRECT_ALIGN, DIRECT_ALIGN + 7, DIRECT_BUFFER - 1] {
            let (direct, allowed) = write_direct(2, last, false).await;
            assert!(direct && allowed, "last {last}");
        }
    }

    #[tokio::test]
    async fn writers_reuse_the_stores_direct_buffers() {
        let (_dir, store) = new_store().await;
        let store = store.with_direct_writes(true);
        let data = pattern(FIRST_BUFFER + 3 * DIRECT_BUFFER + 5);
        for _ in 0..3 {
            // Each chunk ends holding two: the one filled last and the one written before it.
            let id = put(&store, &data, &[DIRECT_BUFFER / 3]).await;
            assert_eq!(store.buffers.spares().len(), 2);
            assert_eq!(get(&store, id, 0..data.len() as u64).await.unwrap(), data);
        }
        // Concurrent writers take what is there and allocate the rest; the store keeps at most
        // SPARE_BUFFERS of them.
        let writers = (0..SPARE_BUFFERS).map(|_| put(&store, &data, &[DIRECT_BUFFER]));
        futures_util::future::join_all(writers).await;
        assert_eq!(store.buffers.spares().len(), SPARE_BUFFERS);
    }

    #[tokio::test]
    async fn a_refused_direct_write_lands_through_the_page_cache() {
        let (direct, allowed) = write_direct(2, 4097, true).await;
        assert!(!direct && !allowed);
    }
}
