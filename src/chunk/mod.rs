//! Pure chunk arithmetic: cutting a byte stream at chunk boundaries as it arrives, and mapping a
//! byte range of an object onto the chunks that hold it. Ranges are half-open everywhere here.

pub mod placement;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use bytes::Bytes;

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
}

impl ChunkRef {
    pub fn end(&self) -> u64 {
        self.offset + self.size
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
