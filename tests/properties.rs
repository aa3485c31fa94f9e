//! Property tests of the pure arithmetic every read and every multipart upload relies on:
//! - a byte range of any object layout maps to chunk pieces that are contiguous, half-open,
//!   non-empty, within their chunks, and cover exactly the range; widening a piece to whole
//!   blocks keeps it inside the chunk and around the piece; cutting a stream into chunks
//!   loses, duplicates and reorders nothing whatever the buffers it arrives in;
//! - the checksums: any split of a body into parts gives, combined, the same FULL_OBJECT
//!   CRC32/CRC32C/CRC64NVME as the whole body (checked against bitwise reference CRCs written
//!   here from the algorithms' parameters), and a COMPOSITE checksum is the checksum of the
//!   parts' raw checksums concatenated, as AWS defines it.
//!
//! Pure functions only; about a second in all.

use std::ops::Range;

use bytes::Bytes;
use cairn::checksum::{self, ChecksumAlgorithm, Checksummer};
use cairn::chunk::{ChunkDigests, ChunkId, ChunkRef, Chunker, slice_in_chunk, whole_blocks};
use cairn::s3::range::RangeSpec;
use proptest::prelude::*;

/// Contiguous chunks of the given sizes, as an object (or a completed multipart upload, whose
/// parts' chunks differ in size) lays them out.
fn layout(sizes: &[u64]) -> Vec<ChunkRef> {
    let mut offset = 0;
    sizes
        .iter()
        .map(|&size| {
            let chunk = ChunkRef {
                offset,
                size,
                chunk: ChunkId::random(),
                digest: None,
            };
            offset += size;
            chunk
        })
        .collect()
}

/// Object offsets of the pieces a read of `range` takes, in chunk order.
fn pieces(chunks: &[ChunkRef], range: &Range<u64>) -> Vec<Range<u64>> {
    chunks
        .iter()
        .filter_map(|chunk| {
            let slice = slice_in_chunk(chunk, range)?;
            assert!(slice.start < slice.end, "an empty piece of {chunk:?}");
            assert!(
                slice.end <= chunk.size,
                "{slice:?} past the end of {chunk:?}"
            );
            Some(chunk.offset + slice.start..chunk.offset + slice.end)
        })
        .collect()
}

fn range_spec() -> impl Strategy<Value = RangeSpec> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| RangeSpec::FromTo(a.min(b), a.max(b))),
        (0u64..1 << 20, 0u64..1 << 20).prop_map(|(a, b)| RangeSpec::FromTo(a.min(b), a.max(b))),
        (0u64..1 << 20).prop_map(RangeSpec::From),
        any::<u64>().prop_map(RangeSpec::Suffix),
        (0u64..1 << 20).prop_map(RangeSpec::Suffix),
    ]
}

proptest! {
    #[test]
    fn a_range_maps_to_contiguous_pieces_covering_it(
        sizes in prop::collection::vec(1u64..200_000, 0..12),
        spec in range_spec(),
    ) {
        let chunks = layout(&sizes);
        let size: u64 = sizes.iter().sum();
        let Ok(Some(range)) = spec.resolve(size) else {
            return Ok(());
        };
        let got = pieces(&chunks, &range);
        prop_assert!(!got.is_empty());
        prop_assert_eq!(got.first().map(|p| p.start), Some(range.start));
        prop_assert_eq!(got.last().map(|p| p.end), Some(range.end));
        for pair in got.windows(2) {
            prop_assert_eq!(pair[0].end, pair[1].start, "a gap or an overlap");
        }
        let covered: u64 = got.iter().map(|p| p.end - p.start).sum();
        prop_assert_eq!(covered, range.end - range.start);
    }

    #[test]
    fn any_range_within_an_object_maps_exactly(
        sizes in prop::collection::vec(1u64..5_000, 1..20),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let chunks = layout(&sizes);
        let size: u64 = sizes.iter().sum();
        let (a, b) = (a % (size + 1), b % (size + 1));
        let range = a.min(b)..a.max(b);
        let got = pieces(&chunks, &range);
        let covered: u64 = got.iter().map(|p| p.end - p.start).sum();
        prop_assert_eq!(covered, range.end - range.start);
        if let (Some(first), Some(last)) = (got.first(), got.last()) {
            prop_assert_eq!(first.start, range.start);
            prop_assert_eq!(last.end, range.end);
        }
        for pair in got.windows(2) {
            prop_assert_eq!(pair[0].end, pair[1].start);
        }
    }

    #[test]
    fn whole_blocks_contain_the_piece_within_the_chunk(
        size in 1u64..1 << 24,
        block in prop_oneof![Just(65_536u64), 1u64..10_000],
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let (a, b) = (a % (size + 1), b % (size + 1));
        let range = a.min(b)..a.max(b);
        let wide = whole_blocks(&range, block, size);
        if range.is_empty() {
            prop_assert!(wide.is_empty());
            return Ok(());
        }
        prop_assert!(wide.start <= range.start && range.end <= wide.end && wide.end <= size);
        prop_assert!(wide.start.is_multiple_of(block));
        prop_assert!(wide.end.is_multiple_of(block) || wide.end == size);
        prop_assert!(range.start - wide.start < block && wide.end - range.end < block);
    }

    #[test]
    fn chunking_any_buffers_cuts_at_multiples_of_the_chunk_size(
        chunk_size in 1u64..300,
        buffers in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..12),
    ) {
        let mut chunker = Chunker::new(chunk_size);
        let mut digests = ChunkDigests::new(chunk_size);
        let mut chunks: Vec<Vec<u8>> = vec![Vec::new()];
        for buffer in &buffers {
            digests.update(buffer);
            for piece in chunker.split(Bytes::copy_from_slice(buffer)) {
                prop_assert!(!piece.data.is_empty());
                let current = chunks.last_mut().expect("one chunk at least");
                current.extend_from_slice(&piece.data);
                prop_assert!(current.len() as u64 <= chunk_size);
                prop_assert_eq!(piece.ends_chunk, current.len() as u64 == chunk_size);
                if piece.ends_chunk {
                    chunks.push(Vec::new());
                }
            }
        }
        if chunks.last().is_some_and(Vec::is_empty) {
            chunks.pop();
        }
        let whole: Vec<u8> = buffers.concat();
        prop_assert_eq!(chunks.concat(), whole.clone());
        let expected: Vec<Vec<u8>> = whole.chunks(chunk_size as usize).map(<[u8]>::to_vec).collect();
        prop_assert_eq!(&chunks, &expected);
        // The digests of the chunks as cut, computed as the bytes streamed by.
        let mut alone = Vec::new();
        for chunk in &expected {
            let mut one = ChunkDigests::new(chunk_size);
            one.update(chunk);
            alone.extend(one.finish());
        }
        prop_assert_eq!(digests.finish(), alone);
    }

    #[test]
    fn parts_combine_to_the_whole_body_crc(
        body in prop::collection::vec(any::<u8>(), 0..4_000),
        cuts in prop::collection::vec(any::<u16>(), 0..8),
    ) {
        let parts = split(&body, &cuts);
        for algorithm in CRCS {
            let mut combined = digest(algorithm, parts[0]);
            for part in &parts[1..] {
                combined = checksum::combine(algorithm, &combined, &digest(algorithm, part), part.len() as u64)
                    .expect("a CRC combines");
            }
            prop_assert_eq!(&combined, &digest(algorithm, &body), "{:?}", algorithm);
            prop_assert_eq!(combined, reference_crc(algorithm, &body), "{:?}", algorithm);
        }
    }

    #[test]
    fn streaming_any_slicing_gives_the_same_checksum(
        body in prop::collection::vec(any::<u8>(), 0..4_000),
        cuts in prop::collection::vec(any::<u16>(), 0..8),
    ) {
        for algorithm in ChecksumAlgorithm::ALL {
            let mut summer = Checksummer::new(algorithm);
            for part in split(&body, &cuts) {
                summer.update(part);
            }
            let streamed = summer.finalize();
            prop_assert_eq!(streamed.len(), algorithm.digest_len());
            prop_assert_eq!(streamed, digest(algorithm, &body));
        }
    }

    #[test]
    fn a_composite_checksum_is_the_checksum_of_the_part_checksums(
        parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..500), 1..6),
    ) {
        for algorithm in ChecksumAlgorithm::ALL {
            let mut composite = Checksummer::new(algorithm);
            let mut concatenated = Vec::new();
            for part in &parts {
                let sum = digest(algorithm, part);
                composite.update(&sum);
                concatenated.extend_from_slice(&sum);
            }
            let composite = composite.finalize();
            prop_assert_eq!(&composite, &digest(algorithm, &concatenated));
            if CRCS.contains(&algorithm) {
                prop_assert_eq!(composite, reference_crc(algorithm, &concatenated));
            }
        }
    }
}

const CRCS: [ChecksumAlgorithm; 3] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32c,
    ChecksumAlgorithm::Crc64Nvme,
];

/// `body` cut at the given offsets (taken modulo its length), into at least one part.
fn split<'a>(body: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (body.len() + 1))
        .collect();
    at.sort_unstable();
    let mut parts = Vec::new();
    let mut start = 0;
    for cut in at {
        parts.push(&body[start..cut]);
        start = cut;
    }
    parts.push(&body[start..]);
    parts
}

fn digest(algorithm: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
    let mut summer = Checksummer::new(algorithm);
    summer.update(data);
    summer.finalize()
}

/// A reflected CRC with all-ones initial value and final xor, bit by bit: the definition of
/// CRC-32 (ISO-HDLC), CRC-32C (Castagnoli) and CRC-64/NVME, big-endian as S3 writes them.
fn reference_crc(algorithm: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
    let (poly, width): (u64, usize) = match algorithm {
        ChecksumAlgorithm::Crc32 => (0xEDB8_8320, 32),
        ChecksumAlgorithm::Crc32c => (0x82F6_3B78, 32),
        ChecksumAlgorithm::Crc64Nvme => (0x9A6C_9329_AC4B_C9B5, 64),
        other => panic!("{other:?} is not a CRC"),
    };
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1 << width) - 1
    };
    let mut crc = mask;
    for &byte in data {
        crc ^= u64::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
        }
    }
    ((crc ^ mask) & mask).to_be_bytes()[8 - width / 8..].to_vec()
}

#[test]
fn the_reference_crcs_give_the_published_check_values() {
    // The check value of each CRC is its CRC of "123456789" (the catalogue of parametrised
    // CRC algorithms lists them).
    let check = b"123456789";
    assert_eq!(
        reference_crc(ChecksumAlgorithm::Crc32, check),
        0xCBF4_3926u32.to_be_bytes()
    );
    assert_eq!(
        reference_crc(ChecksumAlgorithm::Crc32c, check),
        0xE306_9283u32.to_be_bytes()
    );
    assert_eq!(
        reference_crc(ChecksumAlgorithm::Crc64Nvme, check),
        0xAE8B_1486_0A79_9888u64.to_be_bytes()
    );
}
