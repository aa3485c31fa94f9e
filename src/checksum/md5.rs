//! MD5 (RFC 1321), for ETags and `Content-MD5`.
//!
//! Written here rather than taken from the md-5 crate because one PUT stream is bound by it: the
//! whole body passes through one MD5 on one core, and the crate's code runs about a fifth slower
//! than it could. MD5 is a chain of 64 dependent steps per 64-byte block, so its speed is the
//! length of that chain. Each step is `b + rotl(a + m + k + f(b, c, d), s)`, where only `f` waits
//! for the previous step; `a + m + k` can be summed while `f` is still waiting. LLVM folds the
//! round constant `k` in last instead, putting one more addition on the chain in every step.
//! Reading the constants through [`std::hint::black_box`] hides that they are constants, so the
//! compiler keeps the order written, and the chain is as short as in OpenSSL's assembly. The
//! rounds also use the forms of `f` with the fewest operations after `b` is known.
//!
//! `cairn bench md5` measures it; the tests check it against the RFC's examples and against the
//! md-5 crate.

use std::hint::black_box;

/// The sine-derived constant of each step (RFC 1321, 3.4).
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

const INITIAL: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

const BLOCK: usize = 64;

/// Incremental MD5.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    /// The start of a block not yet complete.
    pending: [u8; BLOCK],
    pending_len: usize,
    /// Bytes hashed so far.
    length: u64,
}

impl Default for Md5 {
    fn default() -> Self {
        Md5 {
            state: INITIAL,
            pending: [0; BLOCK],
            pending_len: 0,
            length: 0,
        }
    }
}

impl Md5 {
    pub fn new() -> Self {
        Self::default()
    }

    /// The digest of `data` alone.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut md5 = Md5::new();
        md5.update(data);
        md5.finalize()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.pending_len > 0 {
            let take = (BLOCK - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < BLOCK {
                return;
            }
            let block = self.pending;
            compress(&mut self.state, &block);
            self.pending_len = 0;
        }
        let whole = data.len() - data.len() % BLOCK;
        compress(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    pub fn finalize(mut self) -> [u8; 16] {
        // A one bit, zeros up to 8 bytes short of a block end, then the length in bits.
        let bits = self.length.wrapping_mul(8);
        let mut tail = [0u8; 2 * BLOCK];
        tail[0] = 0x80;
        let padding = if self.pending_len < BLOCK - 8 {
            BLOCK - self.pending_len
        } else {
            2 * BLOCK - self.pending_len
        };
        tail[padding - 8..padding].copy_from_slice(&bits.to_le_bytes());
        self.update(&tail[..padding]);
        debug_assert_eq!(self.pending_len, 0);
        let mut out = [0u8; 16];
        for (o, word) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

// One step of each round: `$a` becomes `$b + rotl($a + m + k + f($b, $c, $d), s)`, summed so that
// `f`, the only part waiting for `$b`, is added last.
macro_rules! step_f {
    ($a:ident, $b:ident, $c:ident, $d:ident, $mk:expr, $s:literal) => {
        $a = $a
            .wrapping_add($mk)
            .wrapping_add($d ^ ($b & ($c ^ $d)))
            .rotate_left($s)
            .wrapping_add($b)
    };
}
macro_rules! step_g {
    // (b & d) | (c & !d): the two halves never share a bit, so `|` may be `+`, and `c & !d`
    // joins the early sum.
    ($a:ident, $b:ident, $c:ident, $d:ident, $mk:expr, $s:literal) => {
        $a = $a
            .wrapping_add($mk)
            .wrapping_add($c & !$d)
            .wrapping_add($b & $d)
            .rotate_left($s)
            .wrapping_add($b)
    };
}
macro_rules! step_h {
    ($a:ident, $b:ident, $c:ident, $d:ident, $mk:expr, $s:literal) => {
        $a = $a
            .wrapping_add($mk)
            .wrapping_add($b ^ ($c ^ $d))
            .rotate_left($s)
            .wrapping_add($b)
    };
}
macro_rules! step_i {
    ($a:ident, $b:ident, $c:ident, $d:ident, $mk:expr, $s:literal) => {
        $a = $a
            .wrapping_add($mk)
            .wrapping_add($c ^ ($b | !$d))
            .rotate_left($s)
            .wrapping_add($b)
    };
}

/// Runs the compression function over `blocks`, a whole number of 64-byte blocks.
fn compress(state: &mut [u32; 4], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % BLOCK, 0);
    // Through `black_box` the constants are loaded, not folded into the code (see the module
    // documentation).
    let k: &[u32; 64] = black_box(&K);
    for block in blocks.chunks_exact(BLOCK) {
        let mut m = [0u32; 16];
        for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let mk = |i: usize, j: usize| m[i].wrapping_add(k[j]);
        let [mut a, mut b, mut c, mut d] = *state;

        step_f!(a, b, c, d, mk(0, 0), 7);
        step_f!(d, a, b, c, mk(1, 1), 12);
        step_f!(c, d, a, b, mk(2, 2), 17);
        step_f!(b, c, d, a, mk(3, 3), 22);
        step_f!(a, b, c, d, mk(4, 4), 7);
        step_f!(d, a, b, c, mk(5, 5), 12);
        step_f!(c, d, a, b, mk(6, 6), 17);
        step_f!(b, c, d, a, mk(7, 7), 22);
        step_f!(a, b, c, d, mk(8, 8), 7);
        step_f!(d, a, b, c, mk(9, 9), 12);
        step_f!(c, d, a, b, mk(10, 10), 17);
        step_f!(b, c, d, a, mk(11, 11), 22);
        step_f!(a, b, c, d, mk(12, 12), 7);
        step_f!(d, a, b, c, mk(13, 13), 12);
        step_f!(c, d, a, b, mk(14, 14), 17);
        step_f!(b, c, d, a, mk(15, 15), 22);

        step_g!(a, b, c, d, mk(1, 16), 5);
        step_g!(d, a, b, c, mk(6, 17), 9);
        step_g!(c, d, a, b, mk(11, 18), 14);
        step_g!(b, c, d, a, mk(0, 19), 20);
        step_g!(a, b, c, d, mk(5, 20), 5);
        step_g!(d, a, b, c, mk(10, 21), 9);
        step_g!(c, d, a, b, mk(15, 22), 14);
        step_g!(b, c, d, a, mk(4, 23), 20);
        step_g!(a, b, c, d, mk(9, 24), 5);
        step_g!(d, a, b, c, mk(14, 25), 9);
        step_g!(c, d, a, b, mk(3, 26), 14);
        step_g!(b, c, d, a, mk(8, 27), 20);
        step_g!(a, b, c, d, mk(13, 28), 5);
        step_g!(d, a, b, c, mk(2, 29), 9);
        step_g!(c, d, a, b, mk(7, 30), 14);
        step_g!(b, c, d, a, mk(12, 31), 20);

        step_h!(a, b, c, d, mk(5, 32), 4);
        step_h!(d, a, b, c, mk(8, 33), 11);
        step_h!(c, d, a, b, mk(11, 34), 16);
        step_h!(b, c, d, a, mk(14, 35), 23);
        step_h!(a, b, c, d, mk(1, 36), 4);
        step_h!(d, a, b, c, mk(4, 37), 11);
        step_h!(c, d, a, b, mk(7, 38), 16);
        step_h!(b, c, d, a, mk(10, 39), 23);
        step_h!(a, b, c, d, mk(13, 40), 4);
        step_h!(d, a, b, c, mk(0, 41), 11);
        step_h!(c, d, a, b, mk(3, 42), 16);
        step_h!(b, c, d, a, mk(6, 43), 23);
        step_h!(a, b, c, d, mk(9, 44), 4);
        step_h!(d, a, b, c, mk(12, 45), 11);
        step_h!(c, d, a, b, mk(15, 46), 16);
        step_h!(b, c, d, a, mk(2, 47), 23);

        step_i!(a, b, c, d, mk(0, 48), 6);
        step_i!(d, a, b, c, mk(7, 49), 10);
        step_i!(c, d, a, b, mk(14, 50), 15);
        step_i!(b, c, d, a, mk(5, 51), 21);
        step_i!(a, b, c, d, mk(12, 52), 6);
        step_i!(d, a, b, c, mk(3, 53), 10);
        step_i!(c, d, a, b, mk(10, 54), 15);
        step_i!(b, c, d, a, mk(1, 55), 21);
        step_i!(a, b, c, d, mk(8, 56), 6);
        step_i!(d, a, b, c, mk(15, 57), 10);
        step_i!(c, d, a, b, mk(6, 58), 15);
        step_i!(b, c, d, a, mk(13, 59), 21);
        step_i!(a, b, c, d, mk(4, 60), 6);
        step_i!(d, a, b, c, mk(11, 61), 10);
        step_i!(c, d, a, b, mk(2, 62), 15);
        step_i!(b, c, d, a, mk(9, 63), 21);

        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
}

#[cfg(test)]
mod tests {
    use super::Md5;
    use md5_reference::Digest as _;

    #[test]
    fn matches_the_examples_of_rfc_1321() {
        let examples: [(&[u8], &str); 7] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"a", "0cc175b9c0f1b6a831c399e269772661"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, expected) in examples {
            assert_eq!(hex::encode(Md5::digest(input)), expected, "{input:?}");
        }
    }

    #[test]
    fn matches_the_md5_crate_at_every_length_and_split() {
        let data: Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        // Every length across the padding's edges (55, 56, 63, 64, 119, 120 ...), each fed
        // whole and in two pieces split at several places.
        for len in 0..=300 {
            let input = &data[..len];
            let expected: [u8; 16] = md5_reference::Md5::digest(input).into();
            assert_eq!(Md5::digest(input), expected, "length {len}");
            for split in [1, 3, 55, 64, 65, 128, 200] {
                if split > len {
                    continue;
                }
                let mut md5 = Md5::new();
                md5.update(&input[..split]);
                md5.update(&input[split..]);
                assert_eq!(md5.finalize(), expected, "length {len} split at {split}");
            }
        }
        // Byte by byte, and in uneven pieces over many blocks.
        let mut bytewise = Md5::new();
        data.iter().for_each(|b| bytewise.update(&[*b]));
        let expected: [u8; 16] = md5_reference::Md5::digest(&data).into();
        assert_eq!(bytewise.finalize(), expected);
        let mut uneven = Md5::new();
        data.chunks(37).for_each(|piece| uneven.update(piece));
        assert_eq!(uneven.finalize(), expected);
    }
}
