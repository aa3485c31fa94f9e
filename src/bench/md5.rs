//! The `md5` workload: how fast one core computes MD5 with the server's own implementation,
//! over data in memory. No request is sent. A single-stream PUT cannot beat it (the ETag is the
//! MD5 of the body), so it is the CPU reference a PUT's throughput is judged against.

use std::time::Instant;

use crate::checksum::Md5;

use super::Report;
use super::data::{generate, seed_of};

/// Bytes hashed per pass: large enough to leave the caches, small enough to hold.
const BUFFER: usize = 64 * 1024 * 1024;
/// Passes over the buffer; the fastest is reported, as the others lost time to the machine.
const PASSES: usize = 5;

/// Hashes the buffer PASSES times on one thread and reports the best rate in MiB/s.
pub fn run() -> Report {
    let data = generate(seed_of("md5"), BUFFER);
    let mut best = f64::MAX;
    for _ in 0..PASSES {
        let start = Instant::now();
        let mut hasher = Md5::new();
        // The server feeds MD5 in pieces of this order too.
        for piece in data.chunks(256 * 1024) {
            hasher.update(piece);
        }
        std::hint::black_box(hasher.finalize());
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mib = BUFFER as f64 / (1024.0 * 1024.0);
    let rate = mib / best;
    let mut report = Report::new("md5");
    report.count("bytes", BUFFER as u64);
    report.figure("md5_mib_s", Some(rate));
    report.line(format!(
        "one core hashes {rate:.1} MiB/s (best of {PASSES} passes over {mib:.0} MiB)"
    ));
    report
}
