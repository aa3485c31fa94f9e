//! Pure chunk arithmetic: cutting a byte stream at chunk boundaries as it arrives, mapping a byte
//! range of an object onto the chunks that hold it, and the chunk's digest: what the gateway
//! records of the bytes it received, against which every replica is judged. Ranges are half-open
//! everywhere here.

pub mod placement;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The identity of one chunk: a random UUID, written as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkId(pub uuid::Uuid);

impl ChunkId {
    pub fn random() -> Self {
        ChunkId(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl FromStr for ChunkId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::try_parse(s).map(ChunkId)
    }
}

/// A chunk placed at `offset` within its owner (an object or an upload part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub offset: u64,
    pub size: u64,
    pub chunk: ChunkId,
    /// What the gateway computed of the bytes it wrote; `None` for chunks written before digests
    /// were recorded, which are verified only against their replica's own block CRCs.
    pub digest: Option<ChunkDigest>,
}

impl ChunkRef {
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// Bytes covered by one CRC32C in a chunk: the unit of verification. Small enough that a short
/// range read verifies at most two blocks (128 KiB); large enough that the table is 1/16384 of
/// the data (4 KiB for a 64 MiB chunk).
pub const BLOCK_SIZE: usize = 64 * 1024;

/// The running CRC32C table of a chunk's bytes, one entry per `BLOCK_SIZE` block: what a chunk
/// file stores beside its data, and what its digest is computed from.
pub struct BlockSums {
    table: Vec<u32>,
    current: u32,
    filled: usize,
    len: u64,
}

impl BlockSums {
    pub fn new() -> Self {
        BlockSums {
            table: Vec::new(),
            current: 0,
            filled: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
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
    pub fn finish(mut self) -> (Vec<u32>, u64) {
        if self.filled > 0 {
            self.table.push(self.current);
        }
        (self.table, self.len)
    }

    /// The digest of the bytes seen.
    pub fn digest(self) -> ChunkDigest {
        let (table, len) = self.finish();
        let raw: Vec<u8> = table.iter().flat_map(|crc| crc.to_le_bytes()).collect();
        ChunkDigest::of_table(len, BLOCK_SIZE as u64, &raw)
    }
}

impl Default for BlockSums {
    fn default() -> Self {
        BlockSums::new()
    }
}

/// SHA-256 of a chunk's length (u64), block size (u32) and CRC32C table (one u32 per block), all
/// little-endian: 32 bytes of metadata per chunk however long it is, yet any sub-range stays
/// verifiable block by block, since a reader that has the table checks it against the digest and
/// then each block it reads against the table. The table is hashed in the byte order chunk files
/// store it, so a replica's table is checked as it lies on disk or on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkDigest(pub [u8; 32]);

impl ChunkDigest {
    /// The digest of a chunk of `data_len` bytes whose table (little-endian u32s) is `table`.
    pub fn of_table(data_len: u64, block_size: u64, table: &[u8]) -> ChunkDigest {
        let mut hasher = Sha256::new();
        hasher.update(data_len.to_le_bytes());
        // Block sizes are at most 16 MiB (the chunk file format's bound), so this never wraps.
        hasher.update((block_size as u32).to_le_bytes());
        hasher.update(table);
        ChunkDigest(hasher.finalize().into())
    }

    pub fn from_slice(raw: &[u8]) -> Option<ChunkDigest> {
        raw.try_into().ok().map(ChunkDigest)
    }
}

impl fmt::Display for ChunkDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChunkDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkDigest({self})")
    }
}

/// A chunk's CRC32C table as a replica holds it: one little-endian u32 per block of
/// `block_size` bytes, the last block possibly short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkTable {
    pub data_len: u64,
    pub block_size: u64,
    pub crcs: Bytes,
}

impl ChunkTable {
    pub fn digest(&self) -> ChunkDigest {
        ChunkDigest::of_table(self.data_len, self.block_size, &self.crcs)
    }

    /// How many blocks a chunk of `data_len` bytes has, hence the table's length / 4.
    pub fn blocks(data_len: u64, block_size: u64) -> u64 {
        data_len.div_ceil(block_size)
    }

    /// The CRC of block `index`, if the table has it.
    pub fn crc(&self, index: u64) -> Option<u32> {
        let at = usize::try_from(index.checked_mul(4)?).ok()?;
        let raw = self.crcs.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }
}

/// The digest of each chunk of a stream cut as a `Chunker` with the same size cuts it, computed
/// as the bytes pass (beside the body's other digests, on the hashing thread for large bodies).
pub struct ChunkDigests {
    chunk_size: u64,
    current: BlockSums,
    done: Vec<ChunkDigest>,
}

impl ChunkDigests {
    pub fn new(chunk_size: u64) -> Self {
        assert!(chunk_size > 0, "chunk size is validated at startup");
        ChunkDigests {
            chunk_size,
            current: BlockSums::new(),
            done: Vec::new(),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.chunk_size - self.current.len();
            let take = room.min(data.len() as u64) as usize;
            let (head, rest) = data.split_at(take);
            self.current.update(head);
            if self.current.len() == self.chunk_size {
                let full = std::mem::take(&mut self.current);
                self.done.push(full.digest());
            }
            data = rest;
        }
    }

    /// One digest per chunk, in order; none for an empty stream.
    pub fn finish(mut self) -> Vec<ChunkDigest> {
        if !self.current.is_empty() {
            self.done.push(self.current.digest());
        }
        self.done
    }
}

/// Cuts a stream of buffers into pieces that never cross a multiple of `chunk_size`, counting
/// from the start of the stream.
#[derive(Debug)]
pub struct Chunker {
    chunk_size: u64,
    /// Bytes already placed in the current chunk.
    filled: u64,
}

/// A piece of input that belongs to one chunk; `ends_chunk` is set when it fills that chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct Piece {
    pub data: Bytes,
    pub ends_chunk: bool,
}

impl Chunker {
    pub fn new(chunk_size: u64) -> Self {
        assert!(chunk_size > 0, "chunk size is validated at startup");
        Chunker {
            chunk_size,
            filled: 0,
        }
    }

    /// Splits `data` at chunk boundaries without copying.
    pub fn split(&mut self, mut data: Bytes) -> Vec<Piece> {
        let mut pieces = Vec::new();
        while !data.is_empty() {
            let room = self.chunk_size - self.filled;
            let take = room.min(data.len() as u64) as usize;
            let piece = data.split_to(take);
            self.filled += take as u64;
            let ends_chunk = self.filled == self.chunk_size;
            if ends_chunk {
                self.filled = 0;
            }
            pieces.push(Piece {
                data: piece,
                ends_chunk,
            });
        }
        pieces
    }
}

/// The part of `range` (object offsets) that falls in `chunk`, as offsets within the chunk.
pub fn slice_in_chunk(chunk: &ChunkRef, range: &Range<u64>) -> Option<Range<u64>> {
    let start = range.start.max(chunk.offset);
    let end = range.end.min(chunk.end());
    (start < end).then(|| start - chunk.offset..end - chunk.offset)
}

/// `range` widened to the blocks of `block_size` it touches, within a chunk of `size` bytes:
/// what a reader that checks each block's CRC itself must receive.
pub fn whole_blocks(range: &Range<u64>, block_size: u64, size: u64) -> Range<u64> {
    if range.is_empty() {
        return range.clone();
    }
    let start = range.start / block_size * block_size;
    let end = range
        .end
        .div_ceil(block_size)
        .saturating_mul(block_size)
        .min(size);
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays out the chunks of an object stored as parts of the given sizes: each part is cut into
    /// `chunk_size` chunks, its last one possibly short. Used to reason about multipart objects.
    fn layout(part_sizes: &[u64], chunk_size: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut offset = 0;
        for &size in part_sizes {
            let mut left = size;
            while left > 0 {
                let len = left.min(chunk_size);
                out.push((offset, len));
                offset += len;
                left -= len;
            }
        }
        out
    }

    fn refs(layout: &[(u64, u64)]) -> Vec<ChunkRef> {
        layout
            .iter()
            .map(|&(offset, size)| ChunkRef {
                offset,
                size,
                chunk: ChunkId::random(),
                digest: None,
            })
            .collect()
    }

    /// Which chunks (by index) and sub-ranges a read of `range` touches.
    fn map(chunks: &[ChunkRef], range: Range<u64>) -> Vec<(usize, Range<u64>)> {
        chunks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| slice_in_chunk(c, &range).map(|r| (i, r)))
            .collect()
    }

    #[test]
    fn chunker_cuts_at_every_boundary() {
        const C: u64 = 4;
        for total in [0u64, 1, C - 1, C, C + 1, 3 * C + 2] {
            for step in [1usize, 3, 4, 5, 100] {
                let data: Vec<u8> = (0..total as u8).collect();
                let mut chunker = Chunker::new(C);
                let mut chunks: Vec<Vec<u8>> = vec![Vec::new()];
                for piece in data.chunks(step) {
                    for p in chunker.split(Bytes::copy_from_slice(piece)) {
                        chunks.last_mut().unwrap().extend_from_slice(&p.data);
                        if p.ends_chunk {
                            chunks.push(Vec::new());
                        }
                    }
                }
                if chunks.last().unwrap().is_empty() {
                    chunks.pop();
                }
                let expect: Vec<Vec<u8>> = data.chunks(C as usize).map(<[u8]>::to_vec).collect();
                assert_eq!(chunks, expect, "total {total} step {step}");
            }
        }
    }

    #[test]
    fn chunk_digests_cover_what_the_chunker_cuts() {
        const C: u64 = 3 * BLOCK_SIZE as u64 + 5;
        let data: Vec<u8> = (0..2 * C + 7).map(|i| (i * 31 % 251) as u8).collect();
        let whole = |bytes: &[u8]| {
            let mut sums = BlockSums::new();
            sums.update(bytes);
            sums.digest()
        };
        let want: Vec<ChunkDigest> = data.chunks(C as usize).map(whole).collect();
        for step in [1000usize, BLOCK_SIZE, BLOCK_SIZE + 1, data.len()] {
            let mut digests = ChunkDigests::new(C);
            data.chunks(step).for_each(|piece| digests.update(piece));
            assert_eq!(digests.finish(), want, "step {step}");
        }
        assert_eq!(ChunkDigests::new(C).finish(), vec![]);
        // The length, the table and each byte are all covered.
        let first = &data[..C as usize];
        let mut changed = first.to_vec();
        changed[BLOCK_SIZE + 1] ^= 1;
        assert_ne!(whole(&changed), want[0]);
        assert_ne!(whole(&first[..first.len() - 1]), want[0]);
        let raw_table = |bytes: &[u8]| -> Vec<u8> {
            let mut sums = BlockSums::new();
            sums.update(bytes);
            sums.finish()
                .0
                .iter()
                .flat_map(|c| c.to_le_bytes())
                .collect()
        };
        assert_eq!(
            ChunkDigest::of_table(C, BLOCK_SIZE as u64, &raw_table(first)),
            want[0]
        );
        assert_ne!(
            ChunkDigest::of_table(C, 2 * BLOCK_SIZE as u64, &raw_table(first)),
            want[0]
        );
    }

    #[test]
    fn whole_blocks_widen_to_block_boundaries() {
        assert_eq!(whole_blocks(&(0..1), 4, 10), 0..4);
        assert_eq!(whole_blocks(&(3..4), 4, 10), 0..4);
        assert_eq!(whole_blocks(&(3..5), 4, 10), 0..8);
        assert_eq!(whole_blocks(&(4..8), 4, 10), 4..8);
        assert_eq!(whole_blocks(&(9..10), 4, 10), 8..10);
        assert_eq!(whole_blocks(&(0..10), 4, 10), 0..10);
        assert_eq!(whole_blocks(&(5..5), 4, 10), 5..5);
    }

    #[test]
    fn layout_of_parts() {
        assert_eq!(layout(&[], 4), vec![]);
        assert_eq!(layout(&[0], 4), vec![]);
        assert_eq!(layout(&[4], 4), vec![(0, 4)]);
        assert_eq!(layout(&[5, 3], 4), vec![(0, 4), (4, 1), (5, 3)]);
        assert_eq!(
            layout(&[8, 9], 4),
            vec![(0, 4), (4, 4), (8, 4), (12, 4), (16, 1)]
        );
    }

    #[test]
    fn range_inside_one_chunk() {
        let c = refs(&layout(&[10], 4));
        assert_eq!(map(&c, 0..1), vec![(0, 0..1)]);
        assert_eq!(map(&c, 1..3), vec![(0, 1..3)]);
        assert_eq!(map(&c, 0..4), vec![(0, 0..4)]);
        assert_eq!(map(&c, 3..4), vec![(0, 3..4)]);
        assert_eq!(map(&c, 4..5), vec![(1, 0..1)]);
        assert_eq!(map(&c, 9..10), vec![(2, 1..2)]);
    }

    #[test]
    fn range_across_chunk_boundaries() {
        let c = refs(&layout(&[10], 4));
        assert_eq!(map(&c, 3..5), vec![(0, 3..4), (1, 0..1)]);
        assert_eq!(map(&c, 0..10), vec![(0, 0..4), (1, 0..4), (2, 0..2)]);
        assert_eq!(map(&c, 2..9), vec![(0, 2..4), (1, 0..4), (2, 0..1)]);
        assert_eq!(map(&c, 5..5), vec![]);
        assert_eq!(map(&c, 10..12), vec![]);
    }

    #[test]
    fn range_across_part_boundaries() {
        // Parts of 5 and 6 bytes with 4-byte chunks: chunks at 0..4, 4..5 | 5..9, 9..11.
        let c = refs(&layout(&[5, 6], 4));
        assert_eq!(map(&c, 4..5), vec![(1, 0..1)]);
        assert_eq!(map(&c, 4..6), vec![(1, 0..1), (2, 0..1)]);
        assert_eq!(
            map(&c, 3..10),
            vec![(0, 3..4), (1, 0..1), (2, 0..4), (3, 0..1)]
        );
        assert_eq!(map(&c, 5..9), vec![(2, 0..4)]);
        assert_eq!(map(&c, 10..11), vec![(3, 1..2)]);
    }
}
