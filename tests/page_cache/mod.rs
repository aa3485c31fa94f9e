//! How much of a file is in the page cache, as util-linux's `fincore` reports it: shared by the
//! tests that check which chunk files a write left cached.

use std::path::Path;

/// Bytes of `path` in the page cache.
pub fn cached_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
