//! Test bytes and what tests compute over them: seeded pseudo-random data (in memory or in a
//! file), digests as S3 spells them, and two looks at the machine beneath a server (bytes in
//! flight on a socket, pages of a file in the page cache).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5_reference::Md5;
use sha2::{Digest, Sha256};

use crate::MIB;

/// Deterministic pseudo-random bytes (xorshift64), different for each seed.
pub struct RandomBytes(u64);

impl RandomBytes {
    pub fn new(seed: u64) -> RandomBytes {
        RandomBytes(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for piece in out.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            piece.copy_from_slice(&self.0.to_le_bytes()[..piece.len()]);
        }
    }
}

pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    RandomBytes::new(seed).fill(&mut out);
    out
}

/// Writes `len` pseudo-random bytes to `path`; returns their SHA-256.
pub fn write_random_file(path: &Path, seed: u64, len: usize) -> String {
    let mut file = std::io::BufWriter::new(fs::File::create(path).expect("create file"));
    let mut random = RandomBytes::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4 * MIB];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        random.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).expect("write file");
        left -= n;
    }
    file.flush().expect("flush file");
    hex_digest(hasher)
}

/// SHA-256 and length of a file.
pub fn sha256_file(path: &Path) -> (String, u64) {
    let mut file = fs::File::open(path).expect("open file");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4 * MIB];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).expect("read file");
        if n == 0 {
            return (hex_digest(hasher), len);
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

pub fn hex_digest(hasher: Sha256) -> String {
    let digest: [u8; 32] = hasher.finalize().into();
    hex::encode(digest)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex_digest(Sha256::new_with_prefix(data))
}

pub fn sha256_base64(data: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(data).into();
    BASE64.encode(digest)
}

pub fn md5_bytes(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(md5_bytes(data))
}

pub fn content_md5(data: &[u8]) -> String {
    BASE64.encode(md5_bytes(data))
}

pub fn crc32_base64(data: &[u8]) -> String {
    BASE64.encode(crc32fast::hash(data).to_be_bytes())
}

/// The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, then `-N`, quoted.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut all = Vec::with_capacity(parts.len() * 16);
    for part in parts {
        all.extend_from_slice(&md5_bytes(part));
    }
    format!("\"{}-{}\"", md5_hex(&all), parts.len())
}

/// Seconds with one decimal, for the timings the tests print.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Bytes of `path` in the page cache, as util-linux's `fincore` reports it.
pub fn cached_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Bytes of a data node's responses still on their way, from /proc/net/tcp: queued on the
/// node's sockets (local port `port`) plus received but not yet read by their clients (remote
/// port `port`). A node streaming a chunk to a gateway that does not keep up has some; an idle
/// node, or one whose response was consumed, has none.
pub fn bytes_in_flight_from(port: u16) -> u64 {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let port_of = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let queue = |queues: &str, index: usize| {
        queues
            .split(':')
            .nth(index)
            .and_then(|q| u64::from_str_radix(q, 16).ok())
            .unwrap_or(0)
    };
    let mut bytes = 0;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Established connections only.
        if fields.len() < 5 || fields[3] != "01" {
            continue;
        }
        if port_of(fields[1]) == Some(port) {
            bytes += queue(fields[4], 0);
        }
        if port_of(fields[2]) == Some(port) {
            bytes += queue(fields[4], 1);
        }
    }
    bytes
}
