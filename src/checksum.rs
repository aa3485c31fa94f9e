//! The integrity checksums S3 clients attach to object data: the flexible `x-amz-checksum-*`
//! algorithms and the `Content-MD5` / ETag MD5. The PUT and UploadPart paths feed every body
//! byte through a [`Checksummer`] (and [`Md5`]) as it streams by, then compare the result with
//! the [`Checksum`] the client declared before anything is committed.
//!
//! On the wire every value is the standard base64 (with padding) of the raw digest; CRCs are
//! their big-endian bytes, so CRC32 of "hello world" (0x0D4A1185) travels as `DUoRhQ==`.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest as _;

pub use self::md5::Md5;

mod md5;

/// An algorithm named by `x-amz-checksum-algorithm` / `x-amz-sdk-checksum-algorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The name as S3 spells it in headers and XML (`ChecksumCRC32C`, `CRC64NVME`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// Case-insensitive, because SDKs differ: botocore sends `crc32` in some paths and `CRC32`
    /// in others.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(s))
    }

    /// The header (or aws-chunked trailer) carrying a value of this algorithm.
    pub fn header_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Length in bytes of the raw digest.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone)]
enum HasherState {
    Crc32(crc32fast::Hasher),
    /// crc32c exposes only an append function, so the running value is the state.
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// Incremental hasher for one algorithm; feed it the body in any slicing.
#[derive(Clone)]
pub struct Checksummer {
    state: HasherState,
}

impl Checksummer {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        let state = match algorithm {
            ChecksumAlgorithm::Crc32 => HasherState::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => HasherState::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => HasherState::Crc64Nvme(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => HasherState::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => HasherState::Sha256(sha2::Sha256::new()),
        };
        Self { state }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            HasherState::Crc32(hasher) => hasher.update(data),
            HasherState::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            HasherState::Crc64Nvme(digest) => digest.write(data),
            HasherState::Sha1(hasher) => hasher.update(data),
            HasherState::Sha256(hasher) => hasher.update(data),
        }
    }

    /// The raw digest, `digest_len()` bytes; CRCs big-endian as S3 encodes them.
    pub fn finalize(self) -> Vec<u8> {
        match self.state {
            HasherState::Crc32(hasher) => hasher.finalize().to_be_bytes().to_vec(),
            HasherState::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            HasherState::Crc64Nvme(digest) => digest.sum64().to_be_bytes().to_vec(),
            HasherState::Sha1(hasher) => hasher.finalize().to_vec(),
            HasherState::Sha256(hasher) => hasher.finalize().to_vec(),
        }
    }

    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self.state {
            HasherState::Crc32(_) => ChecksumAlgorithm::Crc32,
            HasherState::Crc32c(_) => ChecksumAlgorithm::Crc32c,
            HasherState::Crc64Nvme(_) => ChecksumAlgorithm::Crc64Nvme,
            HasherState::Sha1(_) => ChecksumAlgorithm::Sha1,
            HasherState::Sha256(_) => ChecksumAlgorithm::Sha256,
        }
    }
}

impl fmt::Debug for Checksummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checksummer")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// A checksum as a client declares it: the algorithm and the raw digest bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub value: Vec<u8>,
}

impl Checksum {
    /// Accepts only canonical padded standard base64 of exactly `digest_len()` bytes; anything
    /// else is a bad header, not a mismatch (S3 answers InvalidRequest for it).
    pub fn from_base64(algorithm: ChecksumAlgorithm, s: &str) -> Option<Self> {
        let value = BASE64.decode(s).ok()?;
        (value.len() == algorithm.digest_len()).then_some(Self { algorithm, value })
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.value)
    }
}

/// Decodes a `Content-MD5` header: canonical base64 of exactly 16 bytes.
pub fn parse_content_md5(s: &str) -> Option<[u8; 16]> {
    BASE64.decode(s).ok()?.try_into().ok()
}

/// How a multipart object's checksum relates to its parts (`x-amz-checksum-type`).
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumType {
    /// The checksum of the whole object's bytes (for a multipart object, the part CRCs
    /// combined); the only type single-part objects and CRC64NVME have.
    FullObject,
    /// The checksum of the concatenated part checksums, written with a `-N` suffix.
    Composite,
}

impl ChecksumType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "FULL_OBJECT" => Some(ChecksumType::FullObject),
            "COMPOSITE" => Some(ChecksumType::Composite),
            _ => None,
        }
    }
}

/// The reflected polynomial and width of the CRC algorithms, which can be combined.
fn crc_parameters(algorithm: ChecksumAlgorithm) -> Option<(u64, usize)> {
    match algorithm {
        ChecksumAlgorithm::Crc32 => Some((0xEDB8_8320, 32)),
        ChecksumAlgorithm::Crc32c => Some((0x82F6_3B78, 32)),
        ChecksumAlgorithm::Crc64Nvme => Some((0x9A6C_9329_AC4B_C9B5, 64)),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
    }
}

/// Multiplies a GF(2) matrix (one column per bit) by a vector.
fn gf2_times(matrix: &[u64; 64], mut vector: u64) -> u64 {
    let mut sum = 0;
    let mut column = 0;
    while vector != 0 {
        if vector & 1 == 1 {
            sum ^= matrix[column];
        }
        vector >>= 1;
        column += 1;
    }
    sum
}

fn gf2_square(square: &mut [u64; 64], matrix: &[u64; 64], width: usize) {
    for n in 0..width {
        square[n] = gf2_times(matrix, matrix[n]);
    }
}

/// The CRC of `a ‖ b` from `crc(a)`, `crc(b)` and the length of `b`, without the data (zlib's
/// `crc32_combine` method: apply the operator "append `len_b` zero bytes" to `crc(a)` by
/// repeated squaring, then xor). How a full-object checksum of a multipart upload is built from
/// its parts. `None` for algorithms that are not CRCs.
pub fn combine(
    algorithm: ChecksumAlgorithm,
    crc_a: &[u8],
    crc_b: &[u8],
    len_b: u64,
) -> Option<Vec<u8>> {
    let (poly, width) = crc_parameters(algorithm)?;
    let bytes = width / 8;
    if crc_a.len() != bytes || crc_b.len() != bytes {
        return None;
    }
    let read = |b: &[u8]| b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x));
    let (mut a, b) = (read(crc_a), read(crc_b));
    let mut len = len_b;
    if len > 0 {
        let mut odd = [0u64; 64];
        let mut even = [0u64; 64];
        // The operator for one zero bit, then two, then four.
        odd[0] = poly;
        for (n, row) in odd.iter_mut().enumerate().take(width).skip(1) {
            *row = 1 << (n - 1);
        }
        gf2_square(&mut even, &odd, width);
        gf2_square(&mut odd, &even, width);
        loop {
            gf2_square(&mut even, &odd, width);
            if len & 1 == 1 {
                a = gf2_times(&even, a);
            }
            len >>= 1;
            if len == 0 {
                break;
            }
            gf2_square(&mut odd, &even, width);
            if len & 1 == 1 {
                a = gf2_times(&odd, a);
            }
            len >>= 1;
            if len == 0 {
                break;
            }
        }
    }
    let combined = a ^ b;
    Some(combined.to_be_bytes()[8 - bytes..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
        let mut checksummer = Checksummer::new(algorithm);
        checksummer.update(data);
        checksummer.finalize()
    }

    fn digest_base64(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
        Checksum {
            algorithm,
            value: digest(algorithm, data),
        }
        .to_base64()
    }

    #[test]
    fn crc_check_values_of_123456789() {
        // The "check" column of the CRC catalogue (reveng.sourceforge.io/crc-catalogue).
        let check = b"123456789";
        assert_eq!(
            digest(ChecksumAlgorithm::Crc32, check),
            0xCBF4_3926u32.to_be_bytes()
        );
        assert_eq!(
            digest(ChecksumAlgorithm::Crc32c, check),
            0xE306_9283u32.to_be_bytes()
        );
        assert_eq!(
            digest(ChecksumAlgorithm::Crc64Nvme, check),
            0xAE8B_1486_0A79_9888u64.to_be_bytes()
        );
    }

    #[test]
    fn sha_of_abc() {
        // FIPS 180-2 appendix examples.
        assert_eq!(
            hex::encode(digest(ChecksumAlgorithm::Sha1, b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(digest(ChecksumAlgorithm::Sha256, b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn base64_of_hello_world_matches_botocore() {
        // botocore tests/unit/test_httpchecksum.py, TestChecksumImplementations.
        let cases = [
            (ChecksumAlgorithm::Crc32, "DUoRhQ=="),
            (ChecksumAlgorithm::Crc32c, "yZRlqg=="),
            (ChecksumAlgorithm::Crc64Nvme, "jSnVw/bqjr4="),
            (ChecksumAlgorithm::Sha1, "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            (
                ChecksumAlgorithm::Sha256,
                "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
            ),
        ];
        for (algorithm, expected) in cases {
            assert_eq!(
                digest_base64(algorithm, b"hello world"),
                expected,
                "{algorithm}"
            );
        }
    }

    #[test]
    fn base64_of_empty_body() {
        let cases = [
            (ChecksumAlgorithm::Crc32, "AAAAAA=="),
            (ChecksumAlgorithm::Crc32c, "AAAAAA=="),
            (ChecksumAlgorithm::Crc64Nvme, "AAAAAAAAAAA="),
            (ChecksumAlgorithm::Sha1, "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
            (
                ChecksumAlgorithm::Sha256,
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            ),
        ];
        for (algorithm, expected) in cases {
            assert_eq!(digest_base64(algorithm, b""), expected, "{algorithm}");
        }
    }

    #[test]
    fn split_updates_match_one_shot() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        for algorithm in ChecksumAlgorithm::ALL {
            let whole = digest(algorithm, &data);
            assert_eq!(whole.len(), algorithm.digest_len(), "{algorithm}");
            for split in [0, 1, 3, 63, 64, 65, 1000, 4095, 4999, 5000] {
                let mut checksummer = Checksummer::new(algorithm);
                checksummer.update(&data[..split]);
                checksummer.update(&[]);
                checksummer.update(&data[split..]);
                assert_eq!(
                    checksummer.finalize(),
                    whole,
                    "{algorithm} split at {split}"
                );
            }
            let mut bytewise = Checksummer::new(algorithm);
            for byte in &data {
                bytewise.update(std::slice::from_ref(byte));
            }
            assert_eq!(bytewise.finalize(), whole, "{algorithm} byte by byte");
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for algorithm in ChecksumAlgorithm::ALL {
            assert_eq!(
                ChecksumAlgorithm::parse(algorithm.as_str()),
                Some(algorithm)
            );
            let lower = algorithm.as_str().to_ascii_lowercase();
            assert_eq!(ChecksumAlgorithm::parse(&lower), Some(algorithm));
            assert_eq!(algorithm.header_name(), format!("x-amz-checksum-{lower}"));
            assert_eq!(Checksummer::new(algorithm).algorithm(), algorithm);
        }
        assert_eq!(
            ChecksumAlgorithm::parse("Crc64Nvme"),
            Some(ChecksumAlgorithm::Crc64Nvme)
        );
        for bad in ["", "CRC", "CRC64", "MD5", "SHA512", " CRC32", "crc32 "] {
            assert_eq!(ChecksumAlgorithm::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn from_base64_checks_encoding_and_length() {
        let crc = Checksum::from_base64(ChecksumAlgorithm::Crc32, "DUoRhQ==").unwrap();
        assert_eq!(crc.value, 0x0D4A_1185u32.to_be_bytes());
        assert_eq!(crc.to_base64(), "DUoRhQ==");

        // Right base64, wrong length for the algorithm.
        assert_eq!(
            Checksum::from_base64(ChecksumAlgorithm::Crc64Nvme, "DUoRhQ=="),
            None
        );
        assert_eq!(
            Checksum::from_base64(ChecksumAlgorithm::Sha256, "DUoRhQ=="),
            None
        );
        assert_eq!(Checksum::from_base64(ChecksumAlgorithm::Crc32, ""), None);
        // Missing padding, bad alphabet, URL-safe alphabet, whitespace, non-canonical bits.
        for bad in [
            "DUoRhQ",
            "DUoRhQ=",
            "DUo*hQ==",
            " DUoRhQ==",
            "DUoRhQ==\n",
            "DUoRhR==",
        ] {
            assert_eq!(
                Checksum::from_base64(ChecksumAlgorithm::Crc32, bad),
                None,
                "{bad:?}"
            );
        }
        assert_eq!(
            Checksum::from_base64(ChecksumAlgorithm::Crc64Nvme, "jSnVw_bqjr4="),
            None
        );
        assert!(Checksum::from_base64(ChecksumAlgorithm::Crc64Nvme, "jSnVw/bqjr4=").is_some());
    }

    #[test]
    fn md5_of_known_inputs() {
        let mut empty = Md5::new();
        empty.update(b"");
        assert_eq!(
            hex::encode(empty.finalize()),
            "d41d8cd98f00b204e9800998ecf8427e"
        );

        let mut split = Md5::new();
        split.update(b"hello");
        split.update(b" world");
        assert_eq!(
            hex::encode(split.finalize()),
            "5eb63bbbe01eeed093cb22bb8f5acdc3"
        );

        // The Content-MD5 S3 expects for an empty body.
        assert_eq!(
            parse_content_md5("1B2M2Y8AsgTpgAmY7PhCfg==").map(hex::encode),
            Some("d41d8cd98f00b204e9800998ecf8427e".to_string())
        );
        assert_eq!(parse_content_md5("DUoRhQ=="), None);
        assert_eq!(parse_content_md5("not base64"), None);
    }

    #[test]
    fn crcs_combine_like_the_concatenation() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        for alg in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            let sum = |d: &[u8]| {
                let mut s = Checksummer::new(alg);
                s.update(d);
                s.finalize()
            };
            for split in [0usize, 1, 7, 64, 4999, 5000] {
                let (a, b) = data.split_at(split);
                let combined = combine(alg, &sum(a), &sum(b), b.len() as u64).unwrap();
                assert_eq!(combined, sum(&data), "{alg:?} split at {split}");
            }
        }
        assert!(combine(ChecksumAlgorithm::Sha256, &[0; 32], &[0; 32], 1).is_none());
        assert!(combine(ChecksumAlgorithm::Crc32, &[0; 3], &[0; 4], 1).is_none());
    }
}
