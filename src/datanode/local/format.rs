//! The chunk file format: the chunk's bytes, one CRC32C per `BLOCK_SIZE` block, then a fixed-size
//! footer, so a file is written in one pass as bytes stream in and is read from its end. Here are
//! the footer, the running table of block CRCs a writer keeps, and the reader that verifies every
//! block it touches before yielding any byte of it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::num::NonZeroU64;
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;
use rustix::fs::{Advice, fadvise};

pub use crate::chunk::BLOCK_SIZE;
use crate::chunk::{ChunkDigest, ChunkId, ChunkTable};
use crate::datanode::ChunkError;

/// Bytes (whole blocks) a reader reads and verifies per stream item: few syscalls and thread hops
/// per chunk, and little memory per open stream (a GET holds a few of these ahead of the client;
/// 1 MiB batches doubled the peak under concurrent reads at the same throughput).
pub(super) const READ_BATCH: u64 = 256 * 1024;

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
pub(super) const FOOTER_LEN: u64 = 32;
pub(super) const CRC_LEN: u64 = 4;

/// The fixed trailer of a chunk file. A reader trusts the data length and block size only after
/// the footer's own CRC matched and the file length agrees with them.
pub(super) struct Footer {
    pub(super) data_len: u64,
    pub(super) block_size: u64,
    pub(super) table_crc: u32,
}

impl Footer {
    pub(super) fn encode(&self) -> io::Result<[u8; FOOTER_LEN as usize]> {
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

/// An open chunk file positioned by block: the state of one read stream.
pub(super) struct BlockReader {
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
    /// for an empty range. With an `expected` digest the whole table is read and must match it
    /// before any block is trusted: a file replaced by other bytes with a valid table of their
    /// own then fails here, before a byte of it is yielded.
    pub(super) fn open(
        id: ChunkId,
        path: &Path,
        range: Range<u64>,
        expected: Option<ChunkDigest>,
    ) -> Result<Option<Self>, ChunkError> {
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
        let (table_from, table_to) = match expected {
            Some(_) => (0, footer.blocks()),
            None => (first_block, end_block),
        };
        let mut raw = vec![0u8; ((table_to - table_from) * CRC_LEN) as usize];
        file.seek(SeekFrom::Start(footer.data_len + table_from * CRC_LEN))?;
        file.read_exact(&mut raw)?;
        if let Some(expected) = expected {
            let table = ChunkTable {
                data_len: footer.data_len,
                block_size: footer.block_size,
                crcs: Bytes::from(raw),
            };
            if table.digest() != expected {
                tracing::warn!(%id, "chunk file does not match the digest recorded for it");
                return Err(ChunkError::Corrupt {
                    id,
                    offset: range.start,
                });
            }
            raw = table.crcs[(first_block * CRC_LEN) as usize..(end_block * CRC_LEN) as usize]
                .to_vec();
        } else if first_block == 0
            && end_block == footer.blocks()
            && crc32c::crc32c(&raw) != footer.table_crc
        {
            // A damaged entry shows as a mismatch of the block it covers; the table's own CRC is
            // checked whenever the whole table is read anyway (a read of the whole chunk, as scrub
            // does), so such damage is also reported where it is.
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

    pub(super) fn is_done(&self) -> bool {
        self.next_block >= self.end_block
    }

    /// Reads up to `READ_BATCH` of whole blocks into `buf`, verifies each, and returns the part
    /// of them inside the range.
    pub(super) fn next_batch(&mut self, mut buf: Vec<u8>) -> Result<Bytes, ChunkError> {
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
pub(super) fn read_footer(id: ChunkId, file: &mut File) -> Result<Footer, ChunkError> {
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

/// A chunk file's whole CRC table, checked against the footer's CRC of it: what a data node
/// sends ahead of a read so that the reader can judge the table against the chunk's digest.
pub(super) fn read_table(id: ChunkId, path: &Path) -> Result<ChunkTable, ChunkError> {
    let mut file = File::open(path).map_err(|err| not_found_or_io(id, err))?;
    let footer = read_footer(id, &mut file)?;
    let mut raw = vec![0u8; (footer.blocks() * CRC_LEN) as usize];
    file.seek(SeekFrom::Start(footer.data_len))?;
    file.read_exact(&mut raw)?;
    if crc32c::crc32c(&raw) != footer.table_crc {
        return Err(ChunkError::Corrupt {
            id,
            offset: footer.data_len,
        });
    }
    Ok(ChunkTable {
        data_len: footer.data_len,
        block_size: footer.block_size,
        crcs: Bytes::from(raw),
    })
}

fn not_found_or_io(id: ChunkId, err: io::Error) -> ChunkError {
    if err.kind() == io::ErrorKind::NotFound {
        ChunkError::NotFound(id)
    } else {
        ChunkError::Io(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datanode::conformance::{pattern, put};
    use crate::datanode::local::tests::new_store;
    use crate::datanode::local::writer::DIRECT_BUFFER;

    const BLOCK: u64 = BLOCK_SIZE as u64;

    #[tokio::test]
    async fn long_reads_ask_for_the_next_few_mib_ahead_of_the_reader() {
        let (_dir, store) = new_store().await;
        let len = 2 * FETCH_AHEAD + 12_345;
        let id = put(&store, &pattern(len as usize), &[DIRECT_BUFFER]).await;
        let path = store.path_of(id);
        let mut reader = BlockReader::open(id, &path, 100..len, None)
            .unwrap()
            .unwrap();
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
        let mut short = BlockReader::open(id, &path, 0..FETCH_AHEAD_MIN - 1, None)
            .unwrap()
            .unwrap();
        short.next_batch(Vec::new()).unwrap();
        assert_eq!(short.fetched_to, 0);
    }
}
