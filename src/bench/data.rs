//! The bytes `cairn bench` writes and expects back. Every object's content is a pure function
//! of a 64-bit seed: word `i` (bytes `8i..8i+8`) is SplitMix64's `i`-th output, so any range of
//! a 1 GiB object can be generated, streamed and re-generated for verification without keeping
//! the object in memory. The content is random-looking (never zeros) and differs per seed, so a
//! store that deduplicates or compresses blocks gains nothing.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Bodies are handed over one block at a time, aligned to the object's 1 MiB blocks; one too
/// large to generate up front is generated block by block, so a PUT holds at most one block of it.
pub const BLOCK_BYTES: u64 = 1 << 20;

/// The content of one seeded object of `size` bytes: generated before the clock starts when it
/// is at most `--generate-ahead` (1 GiB, the default large object among them), so that timing
/// measures the store and not the generator, and held in memory; larger objects are generated
/// while sending, keeping the client's memory bounded.
#[derive(Debug, Clone)]
pub struct Source {
    seed: u64,
    size: u64,
    whole: Option<Bytes>,
}

impl Source {
    /// Generates the object now if it is at most `ahead` bytes.
    pub fn new(seed: u64, size: u64, ahead: u64) -> Source {
        let whole = usize::try_from(size)
            .ok()
            .filter(|_| size <= ahead)
            .map(|len| generate(seed, len));
        Source { seed, size, whole }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// A body of bytes `start..end` of the object (clamped to it); `tracker` counts the bytes
    /// handed over.
    pub fn payload(&self, start: u64, end: u64, tracker: Option<Tracker>) -> Payload {
        let end = end.min(self.size);
        Payload(Inner::Generated {
            seed: self.seed,
            whole: self.whole.clone(),
            next: start.min(end),
            end,
            tracker,
        })
    }

    /// What a read of `len` bytes from object offset `offset` must return; past the object's
    /// end, nothing.
    pub fn expected(&self, offset: u64, len: u64) -> Expected {
        match &self.whole {
            Some(whole) => {
                // The whole object is in memory, so its offsets fit in usize.
                let start = offset.min(self.size) as usize;
                let end = offset.saturating_add(len).min(self.size) as usize;
                Expected::Bytes(whole.slice(start..end))
            }
            None => Expected::Pattern {
                seed: self.seed,
                offset,
            },
        }
    }
}

/// SplitMix64's increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Word `index` of the object with `seed`; also a random number generator indexed by `index`.
pub fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of the object stored under `key` (FNV-1a), so that re-running a workload writes
/// the same bytes under the same key and a reader needs only the key to check them.
pub fn seed_of(key: &str) -> u64 {
    key.bytes().fold(0xCBF2_9CE4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Fills `buf` with the bytes at `offset..offset + buf.len()` of the object with `seed`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let skip = (offset % 8) as usize;
    let mut index = offset / 8;
    let mut rest = buf;
    if skip != 0 {
        let bytes = word(seed, index).to_le_bytes();
        let n = (8 - skip).min(rest.len());
        rest[..n].copy_from_slice(&bytes[skip..skip + n]);
        rest = &mut rest[n..];
        index += 1;
    }
    let mut words = rest.chunks_exact_mut(8);
    for chunk in &mut words {
        chunk.copy_from_slice(&word(seed, index).to_le_bytes());
        index += 1;
    }
    let tail = words.into_remainder();
    if !tail.is_empty() {
        let bytes = word(seed, index).to_le_bytes();
        tail.copy_from_slice(&bytes[..tail.len()]);
    }
}

/// The whole object of `len` bytes with `seed`, for objects small enough to generate up front.
pub fn generate(seed: u64, len: usize) -> Bytes {
    let mut buf = vec![0; len];
    fill(seed, 0, &mut buf);
    Bytes::from(buf)
}

/// What a GET must return, checked as the body streams in.
#[derive(Debug, Clone)]
pub enum Expected {
    /// The bytes of the object with `seed`, starting at object offset `offset`.
    Pattern { seed: u64, offset: u64 },
    /// Exactly these bytes.
    Bytes(Bytes),
}

/// Compares a body frame by frame with what was written.
#[derive(Debug)]
pub struct Verifier {
    expected: Expected,
    /// How many bytes of the body have been checked so far.
    position: u64,
    scratch: Vec<u8>,
}

impl Verifier {
    pub fn new(expected: Expected) -> Verifier {
        Verifier {
            expected,
            position: 0,
            scratch: Vec::new(),
        }
    }

    /// Checks the next `data` of the body; `false` if any byte differs from what was written.
    pub fn check(&mut self, data: &[u8]) -> bool {
        let start = self.position;
        self.position += data.len() as u64;
        match &self.expected {
            Expected::Pattern { seed, offset } => {
                self.scratch.resize(data.len(), 0);
                fill(*seed, offset + start, &mut self.scratch);
                self.scratch == data
            }
            Expected::Bytes(bytes) => {
                let Ok(start) = usize::try_from(start) else {
                    return false;
                };
                bytes.get(start..start + data.len()) == Some(data)
            }
        }
    }

    /// Bytes checked so far.
    pub fn position(&self) -> u64 {
        self.position
    }
}

/// A shared counter of work done, which the progress display reads.
#[derive(Debug, Clone, Default)]
pub struct Tracker(Arc<AtomicU64>);

impl Tracker {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request body: nothing, bytes generated before timing, or a range of a seeded object
/// handed over block by block as the connection asks for it (from memory when the object was
/// generated ahead, generated on the spot otherwise).
#[derive(Debug)]
pub struct Payload(Inner);

#[derive(Debug)]
enum Inner {
    Empty,
    Full(Option<Bytes>),
    Generated {
        seed: u64,
        /// The whole object, when it was generated ahead.
        whole: Option<Bytes>,
        /// Object offset of the next byte to send.
        next: u64,
        end: u64,
        tracker: Option<Tracker>,
    },
}

impl Payload {
    pub fn empty() -> Payload {
        Payload(Inner::Empty)
    }

    pub fn full(bytes: Bytes) -> Payload {
        Payload(Inner::Full(Some(bytes)))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> u64 {
        match &self.0 {
            Inner::Empty | Inner::Full(None) => 0,
            Inner::Full(Some(bytes)) => bytes.len() as u64,
            Inner::Generated { next, end, .. } => end - next,
        }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match &mut self.get_mut().0 {
            Inner::Empty => None,
            Inner::Full(bytes) => bytes.take().filter(|b| !b.is_empty()),
            Inner::Generated {
                seed,
                whole,
                next,
                end,
                tracker,
            } => {
                if next == end {
                    None
                } else {
                    let block_end = (*next / BLOCK_BYTES + 1) * BLOCK_BYTES;
                    let stop = block_end.min(*end);
                    let data = match whole {
                        // Within the object, which is in memory, so the offsets fit in usize.
                        Some(whole) => whole.slice(*next as usize..stop as usize),
                        None => {
                            // Bounded by BLOCK_BYTES, so it fits in usize.
                            let mut buf = vec![0; (stop - *next) as usize];
                            fill(*seed, *next, &mut buf);
                            Bytes::from(buf)
                        }
                    };
                    if let Some(tracker) = tracker {
                        tracker.add(stop - *next);
                    }
                    *next = stop;
                    Some(data)
                }
            }
        };
        Poll::Ready(frame.map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn fill_at_any_offset_agrees_with_the_whole_object() {
        let seed = seed_of("some/key");
        let whole = generate(seed, 1000);
        for start in [0usize, 1, 7, 8, 9, 15, 16, 500, 999] {
            for len in [0usize, 1, 3, 8, 9, 17, 1000 - start] {
                let len = len.min(1000 - start);
                let mut part = vec![0; len];
                fill(seed, start as u64, &mut part);
                assert_eq!(part, whole[start..start + len], "start {start} len {len}");
            }
        }
    }

    #[test]
    fn content_is_random_looking_and_differs_per_seed() {
        let a = generate(seed_of("a"), 4096);
        let b = generate(seed_of("b"), 4096);
        assert_ne!(a, b);
        // Roughly uniform bytes: every value appears, none dominates.
        let mut counts = [0u32; 256];
        for byte in a.iter() {
            counts[*byte as usize] += 1;
        }
        assert!(counts.iter().filter(|c| **c == 0).count() < 8);
        assert!(counts.iter().all(|c| *c < 64));
        // Blocks of one object differ from each other, so block-level dedup finds nothing.
        let mut first = vec![0; 4096];
        let mut second = vec![0; 4096];
        fill(1, 0, &mut first);
        fill(1, BLOCK_BYTES, &mut second);
        assert_ne!(first, second);
    }

    #[test]
    fn verifier_accepts_the_pattern_and_catches_one_flipped_byte() {
        let seed = 42;
        let mut good = Verifier::new(Expected::Pattern { seed, offset: 13 });
        let mut body = vec![0; 300];
        fill(seed, 13, &mut body);
        assert!(good.check(&body[..100]));
        assert!(good.check(&body[100..]));
        assert_eq!(good.position(), 300);

        let mut bad = Verifier::new(Expected::Pattern { seed, offset: 13 });
        body[250] ^= 1;
        assert!(bad.check(&body[..200]));
        assert!(!bad.check(&body[200..]));
    }

    #[test]
    fn verifier_of_bytes_refuses_extra_data() {
        let mut v = Verifier::new(Expected::Bytes(Bytes::from_static(b"hello")));
        assert!(v.check(b"hel"));
        assert!(v.check(b"lo"));
        assert!(!v.check(b"!"));
    }

    #[tokio::test]
    async fn payload_streams_block_aligned_frames_whether_generated_ahead_or_not() {
        let seed = 7;
        let start = BLOCK_BYTES - 10;
        let end = 2 * BLOCK_BYTES + 5;
        let mut expected = vec![0; (end - start) as usize];
        fill(seed, start, &mut expected);
        let ahead = Source::new(seed, end, end);
        let streamed = Source::new(seed, end, end - 1);
        assert!(ahead.whole.is_some() && streamed.whole.is_none());
        for source in [ahead, streamed] {
            let tracker = Tracker::default();
            let mut payload = source.payload(start, end, Some(tracker.clone()));
            assert_eq!(payload.size_hint().exact(), Some(end - start));
            let mut sizes = Vec::new();
            let mut body = Vec::new();
            while let Some(frame) = payload.frame().await {
                let data = frame.unwrap().into_data().unwrap();
                sizes.push(data.len() as u64);
                body.extend_from_slice(&data);
            }
            assert_eq!(sizes, vec![10, BLOCK_BYTES, 5]);
            assert_eq!(tracker.get(), end - start);
            assert_eq!(body, expected);
            assert!(payload.is_end_stream());
            let mut verifier = Verifier::new(source.expected(start, end - start));
            assert!(verifier.check(&body));
            assert_eq!(verifier.position(), end - start);
        }
    }
}
