//! The local-disk `ChunkStore`: one file per chunk at `root/<xx>/<id>`, `xx` being the id's first
//! byte in hex. A file holds the chunk's bytes, then one CRC32C per `BLOCK_SIZE` block, then a
//! fixed-size footer, so it is written in one pass as bytes stream in and is read from its end.
//! Writers fill a temp file that is renamed into place on commit and made durable: a large chunk
//! by fsyncing it and its directory (and by flushes behind the stream as it grows, so that the
//! commit waits for little), a small one together with concurrent writers by one group sync of
//! the filesystem. Past its first 256 KiB a chunk is written 512 KiB at a time, one write in
//! flight while the next buffer fills; a store with direct writes sends those past the page
//! cache (`O_DIRECT`). A large chunk written with `Caching::DropBehind` leaves the page cache as
//! each flush and the commit make it durable (a small one stays, until the kernel needs the
//! room). Readers verify every block they touch before yielding any byte of it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::num::NonZeroU64;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;
use rustix::fs::{Advice, OFlags, fadvise, fcntl_getfl, fcntl_setfl};
use rustix::io::Errno;
use tokio::task::JoinHandle;

use crate::chunk::ChunkId;
use crate::datanode::sync_group::SyncGroup;
use crate::datanode::{Caching, ChunkError, ChunkStore, ChunkStream, ChunkWriter};

/// Bytes covered by one CRC32C. Small enough that a short range read verifies at most two blocks
/// (128 KiB); large enough that the table is 1/16384 of the data (4 KiB for a 64 MiB chunk).
pub const BLOCK_SIZE: usize = 64 * 1024;

/// Bytes a writer gathers before its first write, so pieces of a few KiB from the network cost
/// one syscall per 256 KiB instead of one each; most small chunks need no more.
const FIRST_BUFFER: usize = 256 * 1024;

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
const DIRECT_BUFFER: usize = 512 * 1024;

/// `DIRECT_BUFFER`s a store keeps for its next writers. Reusing them keeps the memory of a busy
/// store flat (freed buffers otherwise linger in the allocator's per-thread heaps) and spares
/// every new writer the page faults of fresh memory.
const SPARE_BUFFERS: usize = 16;

/// What direct I/O aligns buffers, file offsets and lengths to: the logical block of 512-byte
/// and 4 KiB devices alike.
const DIRECT_ALIGN: usize = 4096;

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
const FLUSH_EVERY: u64 = 16 * 1024 * 1024;

/// Bytes (whole blocks) a reader reads and verifies per stream item: few syscalls and thread hops
/// per chunk, and little memory per open stream (a GET holds a few of these ahead of the client;
/// 1 MiB batches doubled the peak under concurrent reads at the same throughput).
const READ_BATCH: u64 = 256 * 1024;

/// Reads of at least `FETCH_AHEAD_MIN` bytes keep the kernel fetching up to `FETCH_AHEAD` bytes
/// past what they have read, asking again each time half of that is consumed. The kernel's own
/// readahead grows one window at a time behind the reader, so a single-stream GET of a chunk that is
/// not in the page cache (written directly, or long ago) would wait on the disk at every step.
const FETCH_AHEAD_MIN: u64 = 1024 * 1024;
const FETCH_AHEAD: u64 = 8 * 1024 * 1024;

/// The largest block size a footer may declare, so a damaged footer that still passes its own
/// CRC cannot make a read allocate without limit.
const MAX_BLOCK_SIZE: u64 = 16 * 1024 * 1024;

const MAGIC: [u8; 8] = *b"CAIRNCHK";
const FORMAT_VERSION: u32 = 1;
/// Magic, version u32, data length u64, block size u32, table CRC u32, then a CRC u32 of the
/// footer's first 28 bytes, all little-endian.
const FOOTER_LEN: u64 = 32;
const CRC_LEN: u64 = 4;
/// Separates a temp file's chunk id from its random suffix: `<id>.tmp.<random>`.
const TEMP_MARKER: &str = ".tmp.";

/// The fixed trailer of a chunk file. A reader trusts the data length and block size only after
/// the footer's own CRC matched and the file length agrees with them.
struct Footer {
    data_len: u64,
    block_size: u64,
    table_crc: u32,
}

impl Footer {
    fn encode(&self) -> io::Result<[u8; FOOTER_LEN as usize]> {
        let block_size = u32::try_from(self.block_size).map_err(io::Error::other)?;
        let mut out = [0u8; FOOTER_LEN as usize];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..20].copy_from_slice(&self.data_len.to_le_bytes());
        out[20..24].copy_from_slice(&block_size.to_le_bytes());
        out[24..28].copy_from_slice(&self.table_crc.to_le_bytes());
        let footer_crc = crc32c::crc32c(&out[0..28]);
        out[28..32].copy_from_slice(&footer_crc.to_le_bytes());
        Ok(out)
    }

    /// `None` for anything this version did not write: wrong magic or version, a CRC mismatch, an
    /// impossible block size.
    fn decode(raw: &[u8; FOOTER_LEN as usize]) -> Option<Footer> {
        let u32_at = |at: usize| raw[at..at + 4].try_into().ok().map(u32::from_le_bytes);
        if raw[0..8] != MAGIC || u32_at(28)? != crc32c::crc32c(&raw[0..28]) {
            return None;
        }
        if u32_at(8)? != FORMAT_VERSION {
            return None;
        }
        let data_len = u64::from_le_bytes(raw[12..20].try_into().ok()?);
        let block_size = u64::from(u32_at(20)?);
        if block_size == 0 || block_size > MAX_BLOCK_SIZE {
            return None;
        }
        Some(Footer {
            data_len,
            block_size,
            table_crc: u32_at(24)?,
        })
    }

    fn blocks(&self) -> u64 {
        self.data_len.div_ceil(self.block_size)
    }

    /// The length of the file this footer describes; `None` if that would overflow.
    fn file_len(&self) -> Option<u64> {
        self.blocks()
            .checked_mul(CRC_LEN)?
            .checked_add(self.data_len)?
            .checked_add(FOOTER_LEN)
    }
}

/// The running CRC32C table of the bytes written so far.
struct BlockSums {
    table: Vec<u32>,
    current: u32,
    filled: usize,
    len: u64,
}

impl BlockSums {
    fn new() -> Self {
        BlockSums {
            table: Vec::new(),
            current: 0,
            filled: 0,
            len: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while !data.is_empty() {
            let take = (BLOCK_SIZE - self.filled).min(data.len());
            let (head, rest) = data.split_at(take);
            self.current = crc32c::crc32c_append(self.current, head);
            self.filled += take;
            if self.filled == BLOCK_SIZE {
                self.table.push(self.current);
                self.current = 0;
                self.filled = 0;
            }
            data = rest;
        }
    }

    /// The table (the last block may be short) and the data length.
    fn finish(mut self) -> (Vec<u32>, u64) {
        if self.filled > 0 {
            self.table.push(self.current);
        }
        (self.table, self.len)
    }
}

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
struct BufferPool(Arc<Mutex<Vec<Buffer>>>);

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

struct LocalChunkWriter {
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

/// An open chunk file positioned by block: the state of one read stream.
struct BlockReader {
    id: ChunkId,
    file: File,
    range: Range<u64>,
    data_len: u64,
    block_size: u64,
    /// The CRCs of blocks `first_block..end_block`, the blocks the range touches.
    crcs: Vec<u32>,
    first_block: u64,
    next_block: u64,
    end_block: u64,
    /// The file offset up to which the kernel was asked to fetch ahead.
    fetched_to: u64,
}

impl BlockReader {
    /// Checks the footer and the range and reads the CRCs of the blocks the range touches; `None`
    /// for an empty range.
    fn open(id: ChunkId, path: &Path, range: Range<u64>) -> Result<Option<Self>, ChunkError> {
        let mut file = File::open(path).map_err(|err| not_found_or_io(id, err))?;
        let footer = read_footer(id, &mut file)?;
        if range.start > range.end || range.end > footer.data_len {
            return Err(ChunkError::OutOfRange {
                id,
                start: range.start,
                end: range.end,
                size: footer.data_len,
            });
        }
        if range.is_empty() {
            return Ok(None);
        }
        let first_block = range.start / footer.block_size;
        let end_block = (range.end - 1) / footer.block_size + 1;
        let table_at = footer.data_len + first_block * CRC_LEN;
        let mut raw = vec![0u8; ((end_block - first_block) * CRC_LEN) as usize];
        file.seek(SeekFrom::Start(table_at))?;
        file.read_exact(&mut raw)?;
        // A damaged entry shows as a mismatch of the block it covers; the table's own CRC is
        // checked whenever the whole table is read anyway (a read of the whole chunk, as scrub
        // does), so such damage is also reported where it is.
        if first_block == 0
            && end_block == footer.blocks()
            && crc32c::crc32c(&raw) != footer.table_crc
        {
            return Err(ChunkError::Corrupt {
                id,
                offset: footer.data_len,
            });
        }
        let crcs = raw
            .chunks_exact(CRC_LEN as usize)
            .map(|entry| u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]))
            .collect();
        Ok(Some(BlockReader {
            fetched_to: range.start,
            id,
            file,
            range,
            data_len: footer.data_len,
            block_size: footer.block_size,
            crcs,
            first_block,
            next_block: first_block,
            end_block,
        }))
    }

    fn is_done(&self) -> bool {
        self.next_block >= self.end_block
    }

    /// Reads up to `READ_BATCH` of whole blocks into `buf`, verifies each, and returns the part
    /// of them inside the range.
    fn next_batch(&mut self, mut buf: Vec<u8>) -> Result<Bytes, ChunkError> {
        let per_batch = (READ_BATCH / self.block_size).max(1);
        let batch_end = (self.next_block + per_batch).min(self.end_block);
        let start = self.next_block * self.block_size;
        let end = (batch_end * self.block_size).min(self.data_len);
        self.fetch_ahead(start);
        // Read into the buffer's spare capacity, which `read_to_end` leaves unzeroed: filling it
        // with zeros first was 3 % of the loopback cluster's CPU during ranged GETs.
        buf.clear();
        self.file.seek(SeekFrom::Start(start))?;
        (&self.file).take(end - start).read_to_end(&mut buf)?;
        if buf.len() as u64 != end - start {
            return Err(ChunkError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        for (block, index) in buf
            .chunks(self.block_size as usize)
            .zip(self.next_block..batch_end)
        {
            let expected = self.crcs[(index - self.first_block) as usize];
            if crc32c::crc32c(block) != expected {
                return Err(ChunkError::Corrupt {
                    id: self.id,
                    offset: index * self.block_size,
                });
            }
        }
        self.next_block = batch_end;
        let from = self.range.start.max(start) - start;
        let to = self.range.end.min(end) - start;
        Ok(Bytes::from(buf).slice(from as usize..to as usize))
    }

    /// Asks the kernel to fetch the next part of a long range, once the reader at `pos` is
    /// within half a window of what was asked before. Only advice.
    fn fetch_ahead(&mut self, pos: u64) {
        let end = self.range.end;
        if end - self.range.start < FETCH_AHEAD_MIN || pos + FETCH_AHEAD / 2 < self.fetched_to {
            return;
        }
        let from = self.fetched_to.max(pos);
        let to = (pos + FETCH_AHEAD).min(end);
        let Some(len) = NonZeroU64::new(to.saturating_sub(from)) else {
            return;
        };
        if let Err(err) = fadvise(&self.file, from, Some(len), Advice::WillNeed) {
            tracing::debug!(error = %err, "could not ask for a chunk range ahead");
        }
        self.fetched_to = to;
    }
}

/// Reads and validates the footer. Corrupt offsets count from the start of the file, so for data
/// blocks they are offsets within the chunk.
fn read_footer(id: ChunkId, file: &mut File) -> Result<Footer, ChunkError> {
    let file_len = file.metadata()?.len();
    let Some(footer_at) = file_len.checked_sub(FOOTER_LEN) else {
        return Err(ChunkError::Corrupt { id, offset: 0 });
    };
    let mut raw = [0u8; FOOTER_LEN as usize];
    file.seek(SeekFrom::Start(footer_at))?;
    file.read_exact(&mut raw)?;
    match Footer::decode(&raw) {
        Some(footer) if footer.file_len() == Some(file_len) => Ok(footer),
        _ => Err(ChunkError::Corrupt {
            id,
            offset: footer_at,
        }),
    }
}

fn not_found_or_io(id: ChunkId, err: io::Error) -> ChunkError {
    if err.kind() == io::ErrorKind::NotFound {
        ChunkError::NotFound(id)
    } else {
        ChunkError::Io(err)
    }
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

fn prefix_dir(root: &Path, prefix: u8) -> PathBuf {
    root.join(format!("{prefix:02x}"))
}

fn prefix_of(id: ChunkId) -> u8 {
    id.0.as_bytes()[0]
}

/// The id a committed chunk file is named after, if `name` is exactly such a name.
fn chunk_name(name: &str) -> Option<ChunkId> {
    let id: ChunkId = name.parse().ok()?;
    (id.to_string() == name).then_some(id)
}

/// The names in one prefix directory; a missing directory is empty.
fn names_in(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ChunkError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ChunkError::Io(io::Error::other(err)))
}

/// Chunk files on one local filesystem.
#[derive(Clone, Debug)]
pub struct LocalChunkStore {
    root: PathBuf,
    sync: SyncGroup,
    buffers: BufferPool,
    /// Whether large chunks are written past the page cache (see `DIRECT_BUFFER`).
    direct_writes: bool,
}

impl LocalChunkStore {
    /// Opens (creating if needed) a store at `root` with its 256 prefix directories.
    pub async fn open(root: PathBuf) -> Result<Self, ChunkError> {
        let dir = root.clone();
        let opened = blocking(move || -> io::Result<File> {
            for prefix in 0..=u8::MAX {
                fs::create_dir_all(prefix_dir(&dir, prefix))?;
            }
            // The prefix directories must survive a crash for the chunks later synced into them.
            let opened = File::open(&dir)?;
            opened.sync_all()?;
            Ok(opened)
        })
        .await??;
        Ok(LocalChunkStore {
            root,
            sync: SyncGroup::start(opened),
            buffers: BufferPool::default(),
            direct_writes: false,
        })
    }

    /// Writes chunks past their first buffer with `O_DIRECT` where the filesystem allows it,
    /// instead of through the page cache (see `DIRECT_BUFFER` for the trade).
    pub fn with_direct_writes(mut self, on: bool) -> Self {
        self.direct_writes = on;
        self
    }

    /// Where the chunk `id` lives once committed.
    pub fn path_of(&self, id: ChunkId) -> PathBuf {
        prefix_dir(&self.root, prefix_of(id)).join(id.to_string())
    }

    /// Deletes the temp files a crashed process left behind and returns how many. Call it only
    /// while no writer is active, since it cannot tell theirs from abandoned ones.
    pub async fn remove_temp_files(&self) -> Result<usize, ChunkError> {
        let root = self.root.clone();
        let removed = blocking(move || -> io::Result<usize> {
            let mut removed = 0;
            for prefix in 0..=u8::MAX {
                let dir = prefix_dir(&root, prefix);
                for name in names_in(&dir)? {
                    let is_temp = name
                        .split_once(TEMP_MARKER)
                        .is_some_and(|(id, _)| chunk_name(id).is_some());
                    if !is_temp {
                        continue;
                    }
                    match fs::remove_file(dir.join(&name)) {
                        Ok(()) => removed += 1,
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                        Err(err) => return Err(err),
                    }
                }
            }
            Ok(removed)
        })
        .await??;
        if removed > 0 {
            tracing::info!(removed, root = %self.root.display(), "removed leftover chunk temp files");
        }
        Ok(removed)
    }
}

#[async_trait]
impl ChunkStore for LocalChunkStore {
    async fn create(
        &self,
        id: ChunkId,
        caching: Caching,
    ) -> Result<Box<dyn ChunkWriter>, ChunkError> {
        let path = self.path_of(id);
        let temp_path = prefix_dir(&self.root, prefix_of(id)).join(format!(
            "{id}{TEMP_MARKER}{}",
            uuid::Uuid::new_v4().simple()
        ));
        let open_path = temp_path.clone();
        let file = blocking(move || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(open_path)
        })
        .await??;
        Ok(Box::new(LocalChunkWriter {
            buf: Buffer::new(FIRST_BUFFER),
            pool: self.buffers.clone(),
            sink: SinkState::Idle(Sink::new(file, self.direct_writes, caching)),
            temp: TempFile {
                path: temp_path,
                kept: false,
            },
            path,
            sync: self.sync.clone(),
        }))
    }

    async fn read(&self, id: ChunkId, range: Range<u64>) -> Result<ChunkStream, ChunkError> {
        let path = self.path_of(id);
        // Allocated here, on a runtime thread, rather than on whichever blocking thread reads:
        // the allocator then keeps these buffers in few per-thread heaps.
        let buf = Vec::with_capacity(READ_BATCH as usize);
        // The first batch is read with the open, in one trip to a blocking thread: a small range
        // then costs one hand-off instead of two.
        let opened = blocking(move || {
            BlockReader::open(id, &path, range).map(|reader| {
                reader.map(|mut reader| {
                    let first = reader.next_batch(buf);
                    (reader, first)
                })
            })
        })
        .await??;
        let Some((reader, first)) = opened else {
            return Ok(Box::pin(stream::empty()));
        };
        // The first batch rides in the state, so that an error in it ends the stream as an error
        // in any later batch does.
        Ok(Box::pin(stream::try_unfold(
            (reader, Some(first)),
            |(mut reader, first)| async move {
                if let Some(first) = first {
                    return Ok(Some((first?, (reader, None))));
                }
                if reader.is_done() {
                    return Ok(None);
                }
                let buf = Vec::with_capacity(READ_BATCH as usize);
                let (reader, batch) = blocking(move || {
                    let batch = reader.next_batch(buf);
                    (reader, batch)
                })
                .await?;
                Ok(Some((batch?, (reader, None))))
            },
        )))
    }

    async fn len(&self, id: ChunkId) -> Result<Option<u64>, ChunkError> {
        let path = self.path_of(id);
        blocking(move || {
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            Ok(Some(read_footer(id, &mut file)?.data_len))
        })
        .await?
    }

    /// The directory is not fsynced after the unlink: a delete lost in a crash leaves an orphan
    /// that garbage collection finds and deletes again.
    async fn delete(&self, id: ChunkId) -> Result<(), ChunkError> {
        let path = self.path_of(id);
        blocking(move || match fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        })
        .await??;
        Ok(())
    }

    async fn list(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<ChunkId>, ChunkError> {
        let root = self.root.clone();
        blocking(move || -> io::Result<Vec<ChunkId>> {
            let mut found = Vec::new();
            if limit == 0 {
                return Ok(found);
            }
            // Hex names sort like the ids' bytes, and the prefix directory is the first byte, so
            // walking the directories in order and sorting each one yields ids in order.
            for prefix in after.map_or(0, prefix_of)..=u8::MAX {
                let mut ids: Vec<ChunkId> = names_in(&prefix_dir(&root, prefix))?
                    .iter()
                    .filter_map(|name| chunk_name(name))
                    .filter(|id| prefix_of(*id) == prefix && after.is_none_or(|after| *id > after))
                    .collect();
                ids.sort_unstable();
                ids.truncate(limit - found.len());
                found.extend(ids);
                if found.len() == limit {
                    break;
                }
            }
            Ok(found)
        })
        .await?
        .map_err(ChunkError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datanode::conformance::{get, pattern, put, put_with};
    use futures_util::StreamExt;
    use std::io::Write;

    const BLOCK: u64 = BLOCK_SIZE as u64;

    async fn new_store() -> (tempfile::TempDir, LocalChunkStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalChunkStore::open(dir.path().join("chunks"))
            .await
            .unwrap();
        (dir, store)
    }

    fn flip(path: &Path, offset: u64) {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.read_exact(&mut byte).unwrap();
        byte[0] ^= 0x20;
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&byte).unwrap();
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    fn is_corrupt_at<T>(result: Result<T, ChunkError>, at: u64) -> bool {
        matches!(result, Err(ChunkError::Corrupt { offset, .. }) if offset == at)
    }

    #[tokio::test]
    async fn round_trips_every_boundary_size() {
        let (_dir, store) = new_store().await;
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
            let data = pattern(len as usize);
            let id = put(&store, &data, &[1, 4097, 70_000, 13]).await;
            assert_eq!(store.len(id).await.unwrap(), Some(len));
            assert_eq!(get(&store, id, 0..len).await.unwrap(), data, "len {len}");
            let blocks = len.div_ceil(BLOCK);
            assert_eq!(
                file_len(&store.path_of(id)),
                len + CRC_LEN * blocks + FOOTER_LEN
            );
        }
    }

    #[tokio::test]
    async fn round_trips_pieces_around_the_write_buffers() {
        let (_dir, store) = new_store().await;
        let data = pattern(FIRST_BUFFER + 2 * DIRECT_BUFFER + 3 * DIRECT_ALIGN + 5);
        for pieces in [
            &[FIRST_BUFFER + 1, 3, FIRST_BUFFER - 2][..],
            &[FIRST_BUFFER][..],
            &[FIRST_BUFFER - 1, DIRECT_BUFFER + 2, 4095][..],
            &[FIRST_BUFFER + DIRECT_BUFFER][..],
            &[data.len()][..],
        ] {
            let id = put(&store, &data, pieces).await;
            assert_eq!(get(&store, id, 0..data.len() as u64).await.unwrap(), data);
        }
    }

    #[tokio::test]
    async fn reads_every_range_shape() {
        let (_dir, store) = new_store().await;
        let len = 3 * BLOCK + 5;
        let data = pattern(len as usize);
        let id = put(&store, &data, &[9999]).await;
        for range in [
            10..20,
            BLOCK - 3..BLOCK + 4,
            BLOCK - 1..BLOCK,
            BLOCK..BLOCK + 1,
            2 * BLOCK..3 * BLOCK,
            len - 1..len,
            3 * BLOCK..len,
            0..len,
        ] {
            let want = &data[range.start as usize..range.end as usize];
            assert_eq!(
                get(&store, id, range.clone()).await.unwrap(),
                want,
                "{range:?}"
            );
        }
        for empty in [0..0, BLOCK..BLOCK, len..len] {
            let mut stream = store.read(id, empty).await.unwrap();
            assert!(stream.next().await.is_none());
        }
        // A reversed range is what a caller's bad arithmetic produces; it must not read.
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 20..10;
        for outside in [0..len + 1, len + 1..len + 1, len..len + 7, reversed] {
            assert!(
                matches!(
                    store.read(id, outside.clone()).await,
                    Err(ChunkError::OutOfRange { start, end, size, .. })
                        if start == outside.start && end == outside.end && size == len
                ),
                "{outside:?}"
            );
        }
    }

    #[tokio::test]
    async fn streams_large_reads_in_bounded_pieces() {
        let (_dir, store) = new_store().await;
        let len = 2 * READ_BATCH + READ_BATCH / 2 + 7;
        let data = pattern(len as usize);
        let id = put(&store, &data, &[100_000]).await;

        let mut stream = store.read(id, 1..len).await.unwrap();
        let mut items = 0;
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let item = item.unwrap();
            assert!(item.len() as u64 <= READ_BATCH);
            out.extend_from_slice(&item);
            items += 1;
        }
        assert_eq!(items, 3);
        assert_eq!(out, &data[1..]);

        // Damage in the second batch: the first batch still arrives, then the error ends the stream.
        let bad_block = READ_BATCH / BLOCK + 2;
        flip(&store.path_of(id), bad_block * BLOCK + 17);
        let mut stream = store.read(id, 0..len).await.unwrap();
        assert_eq!(
            stream.next().await.unwrap().unwrap().len() as u64,
            READ_BATCH
        );
        assert!(is_corrupt_at(
            stream.next().await.unwrap(),
            bad_block * BLOCK
        ));
        assert!(stream.next().await.is_none());

        // Damage in the first batch, which is read with the open: the error alone, then the end.
        flip(&store.path_of(id), 17);
        let mut stream = store.read(id, 0..len).await.unwrap();
        assert!(is_corrupt_at(stream.next().await.unwrap(), 0));
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn flipped_data_byte_fails_only_its_block() {
        let (_dir, store) = new_store().await;
        let len = 4 * BLOCK;
        let data = pattern(len as usize);
        let id = put(&store, &data, &[50_000]).await;
        flip(&store.path_of(id), BLOCK + 100);

        for touching in [
            BLOCK..BLOCK + 1,
            BLOCK + 100..BLOCK + 101,
            BLOCK - 1..BLOCK + 1,
            0..len,
        ] {
            assert!(
                is_corrupt_at(get(&store, id, touching.clone()).await, BLOCK),
                "{touching:?}"
            );
        }
        for clean in [0..BLOCK, 2 * BLOCK..len, BLOCK - 10..BLOCK] {
            let want = &data[clean.start as usize..clean.end as usize];
            assert_eq!(get(&store, id, clean).await.unwrap(), want);
        }
        assert_eq!(store.len(id).await.unwrap(), Some(len));
    }

    #[tokio::test]
    async fn damaged_table_entry_fails_its_block_and_whole_reads() {
        let (_dir, store) = new_store().await;
        let len = 3 * BLOCK;
        let data = pattern(len as usize);
        let id = put(&store, &data, &[BLOCK_SIZE]).await;
        let path = store.path_of(id);
        flip(&path, len + CRC_LEN + 2);

        assert!(is_corrupt_at(
            get(&store, id, BLOCK..BLOCK + 5).await,
            BLOCK
        ));
        assert!(is_corrupt_at(get(&store, id, 0..len).await, len));
        assert_eq!(
            get(&store, id, 2 * BLOCK..len).await.unwrap(),
            &data[2 * BLOCK as usize..]
        );
    }

    #[tokio::test]
    async fn damaged_footer_is_corrupt() {
        let (_dir, store) = new_store().await;
        let data = pattern(BLOCK_SIZE + 10);
        // Magic, version, data length, block size, table CRC, footer CRC.
        for field_at in [0, 8, 12, 20, 24, 28] {
            let id = put(&store, &data, &[1000]).await;
            let path = store.path_of(id);
            let footer_at = file_len(&path) - FOOTER_LEN;
            flip(&path, footer_at + field_at);
            assert!(
                is_corrupt_at(store.len(id).await, footer_at),
                "field {field_at}"
            );
            assert!(is_corrupt_at(get(&store, id, 0..1).await, footer_at));
        }

        let id = put(&store, &data, &[1000]).await;
        let path = store.path_of(id);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(FOOTER_LEN - 1)
            .unwrap();
        assert!(is_corrupt_at(store.len(id).await, 0));

        // A file cut short by whole bytes disagrees with the length its footer declares.
        let id = put(&store, &data, &[1000]).await;
        let path = store.path_of(id);
        let intact = fs::read(&path).unwrap();
        let mut cut = intact[..BLOCK_SIZE].to_vec();
        cut.extend_from_slice(&intact[intact.len() - FOOTER_LEN as usize..]);
        fs::write(&path, &cut).unwrap();
        assert!(is_corrupt_at(
            store.len(id).await,
            cut.len() as u64 - FOOTER_LEN
        ));
    }

    #[tokio::test]
    async fn dropped_writer_leaves_no_file() {
        let (_dir, store) = new_store().await;
        // One writer still holds everything in its buffer, the others have writes in flight.
        for size in [10, 2 * FIRST_BUFFER, FIRST_BUFFER + 2 * DIRECT_BUFFER] {
            let id = ChunkId::random();
            let mut writer = store.create(id, Caching::Keep).await.unwrap();
            writer.write(Bytes::from(pattern(size))).await.unwrap();
            let dir = store.path_of(id).parent().unwrap().to_path_buf();
            assert_eq!(names_in(&dir).unwrap().len(), 1);
            drop(writer);
            assert!(names_in(&dir).unwrap().is_empty());
            assert_eq!(store.len(id).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn nothing_is_visible_before_commit() {
        let (_dir, store) = new_store().await;
        let id = ChunkId::random();
        let mut writer = store.create(id, Caching::Keep).await.unwrap();
        writer
            .write(Bytes::from(pattern(FIRST_BUFFER * 2)))
            .await
            .unwrap();
        assert_eq!(store.len(id).await.unwrap(), None);
        assert!(store.list(None, 10).await.unwrap().is_empty());
        assert_eq!(writer.commit().await.unwrap(), 2 * FIRST_BUFFER as u64);
        assert_eq!(store.list(None, 10).await.unwrap(), vec![id]);
    }

    #[tokio::test]
    async fn removes_temp_files_of_a_crashed_writer() {
        let (_dir, store) = new_store().await;
        let kept = put(&store, &pattern(100), &[100]).await;
        for _ in 0..2 {
            let mut writer = store
                .create(ChunkId::random(), Caching::Keep)
                .await
                .unwrap();
            writer.write(Bytes::from(pattern(10))).await.unwrap();
            // A crash: the drop guard never runs.
            std::mem::forget(writer);
        }
        let stray = store.path_of(kept).with_file_name("notes.tmp.txt");
        fs::write(&stray, b"not ours").unwrap();

        assert_eq!(store.remove_temp_files().await.unwrap(), 2);
        assert_eq!(store.remove_temp_files().await.unwrap(), 0);
        assert!(stray.exists());
        assert_eq!(get(&store, kept, 0..100).await.unwrap(), pattern(100));
    }

    /// Listing order and paging are the conformance suite's; here, files that are not chunks.
    #[tokio::test]
    async fn lists_only_committed_chunk_files() {
        let (_dir, store) = new_store().await;
        let ids = [
            ChunkId(uuid::Uuid::from_u128(0x42 << 120)),
            ChunkId(uuid::Uuid::from_u128((0x42 << 120) | 1)),
        ];
        for id in ids {
            let mut writer = store.create(id, Caching::Keep).await.unwrap();
            writer.write(Bytes::from_static(b"x")).await.unwrap();
            writer.commit().await.unwrap();
        }
        let _open_writer = store
            .create(ChunkId::random(), Caching::Keep)
            .await
            .unwrap();
        fs::write(store.root.join("42").join("README"), b"x").unwrap();
        assert_eq!(store.list(None, 10).await.unwrap(), ids);
    }

    #[tokio::test]
    async fn delete_is_idempotent_and_missing_is_not_found() {
        let (_dir, store) = new_store().await;
        let id = put(&store, &pattern(10), &[3]).await;
        store.delete(id).await.unwrap();
        store.delete(id).await.unwrap();
        assert_eq!(store.len(id).await.unwrap(), None);
        assert!(
            matches!(store.read(id, 0..1).await, Err(ChunkError::NotFound(missing)) if missing == id)
        );
        assert!(matches!(
            store.read(id, 0..0).await,
            Err(ChunkError::NotFound(_))
        ));
        assert!(store.list(None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn reopening_keeps_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("chunks");
        let store = LocalChunkStore::open(root.clone()).await.unwrap();
        let data = pattern(BLOCK_SIZE + 1);
        let id = put(&store, &data, &[777]).await;
        assert_eq!(fs::read_dir(&root).unwrap().count(), 256);

        let store: Box<dyn ChunkStore> = Box::new(LocalChunkStore::open(root).await.unwrap());
        let mut stream = store.read(id, 0..data.len() as u64).await.unwrap();
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            out.extend_from_slice(&item.unwrap());
        }
        assert_eq!(out, data);
    }

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

    /// Bytes of `path` in the page cache, as util-linux's `fincore` reports them.
    fn cached_bytes(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux) runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    #[tokio::test]
    async fn chunks_go_past_the_page_cache_only_in_a_store_with_direct_writes() {
        let data = pattern(FIRST_BUFFER + 6 * DIRECT_BUFFER + DIRECT_ALIGN + 9);
        let len = data.len() as u64;
        for direct in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let store = LocalChunkStore::open(dir.path().join("chunks"))
                .await
                .unwrap()
                .with_direct_writes(direct);
            let id = put(&store, &data, &[DIRECT_BUFFER / 3, 7]).await;
            let cached = cached_bytes(&store.path_of(id));
            if direct {
                // The first buffer and the unaligned end went through the cache, no more.
                assert!(cached < len / 2, "direct: {cached} of {len} bytes cached");
            } else {
                assert!(cached >= len, "buffered: {cached} of {len} bytes cached");
            }
            assert_eq!(get(&store, id, 0..len).await.unwrap(), data);
            assert_eq!(
                get(&store, id, 1000..len - 3).await.unwrap(),
                &data[1000..data.len() - 3]
            );
        }
    }

    #[tokio::test]
    async fn chunks_written_to_drop_behind_leave_the_page_cache_as_they_become_durable() {
        // Past two flushes behind the stream, with an unaligned end.
        let data = pattern(2 * FLUSH_EVERY as usize + 3 * BLOCK_SIZE + 11);
        let len = data.len() as u64;
        let (_dir, store) = new_store().await;
        for caching in [Caching::Keep, Caching::DropBehind] {
            let id = put_with(&store, &data, &[BLOCK_SIZE + 3], caching).await;
            let cached = cached_bytes(&store.path_of(id));
            match caching {
                // All but the pages written while a flush ran, which it may have cleaned before
                // the next writeback request (`start_writeback`) dropped them.
                Caching::Keep => {
                    assert!(
                        cached >= len - len / 4,
                        "kept: {cached} of {len} bytes cached"
                    )
                }
                Caching::DropBehind => assert_eq!(cached, 0, "dropped: {cached} bytes cached"),
            }
            assert_eq!(get(&store, id, 0..len).await.unwrap(), data);
            assert_eq!(
                get(&store, id, FLUSH_EVERY - 5..len - 7).await.unwrap(),
                &data[FLUSH_EVERY as usize - 5..data.len() - 7]
            );
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
    async fn long_reads_ask_for_the_next_few_mib_ahead_of_the_reader() {
        let (_dir, store) = new_store().await;
        let len = 2 * FETCH_AHEAD + 12_345;
        let id = put(&store, &pattern(len as usize), &[DIRECT_BUFFER]).await;
        let path = store.path_of(id);
        let mut reader = BlockReader::open(id, &path, 100..len).unwrap().unwrap();
        let mut asked = Vec::new();
        while !reader.is_done() {
            let at = reader.next_block * BLOCK;
            reader.next_batch(Vec::new()).unwrap();
            let read_to = (reader.next_block * BLOCK).min(len);
            // Always ahead of what was read, never more than a window past where it started.
            assert!(reader.fetched_to >= read_to && reader.fetched_to <= at + FETCH_AHEAD);
            asked.push(reader.fetched_to);
        }
        asked.dedup();
        // Asked again every half window or so, up to the end of the range.
        assert_eq!(asked.last(), Some(&len));
        assert!((4..=6).contains(&asked.len()), "{asked:?}");
        // A short read asks for nothing.
        let mut short = BlockReader::open(id, &path, 0..FETCH_AHEAD_MIN - 1)
            .unwrap()
            .unwrap();
        short.next_batch(Vec::new()).unwrap();
        assert_eq!(short.fetched_to, 0);
    }

    #[tokio::test]
    async fn a_refused_direct_write_lands_through_the_page_cache() {
        let (direct, allowed) = write_direct(2, 4097, true).await;
        assert!(!direct && !allowed);
    }
}
