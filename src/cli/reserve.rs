//! Space `cairn server` keeps back on its data directory's filesystem, so that it can start when
//! the filesystem is full. Opening SQLite in WAL mode creates its shared-memory index and, on
//! the first write, its WAL; on a full filesystem both fail (SQLITE_IOERR_SHMSIZE, SQLITE_FULL)
//! and the server could not start to let anyone delete objects. The reserve file is given back
//! at a start that finds the filesystem full, and made again at one that finds room to spare.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const RESERVE_FILE: &str = "reserve";
/// Room for SQLite's shared-memory index (32 KiB) and WAL frames for thousands of deletes.
const RESERVE_BYTES: u64 = 4 << 20;

fn path(data: &Path) -> PathBuf {
    data.join(RESERVE_FILE)
}

fn free_bytes(data: &Path) -> io::Result<u64> {
    let fs = rustix::fs::statvfs(data)?;
    Ok(fs.f_bavail.saturating_mul(fs.f_frsize))
}

/// Gives the reserve back if the filesystem has less free than the reserve holds: SQLite may
/// need that room to open (its WAL index) and to commit the first deletes.
pub fn release_if_full(data: &Path) -> io::Result<()> {
    if free_bytes(data)? >= RESERVE_BYTES {
        return Ok(());
    }
    match std::fs::remove_file(path(data)) {
        Ok(()) => {
            tracing::warn!("the filesystem is full: gave back the full-disk reserve");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the reserve whole, if the filesystem has room for it and as much again: taking the
/// last free bytes for it would refuse the very writes (WAL frames of deletes) it exists for.
pub fn refill(data: &Path) -> io::Result<()> {
    let file = path(data);
    let have = match std::fs::metadata(&file) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    if have >= RESERVE_BYTES {
        return Ok(());
    }
    let free = free_bytes(data)?;
    if free < 2 * RESERVE_BYTES {
        tracing::warn!(
            free,
            "too little free space to keep a reserve for a full disk"
        );
        return Ok(());
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&file)?;
    // Real bytes, not a sparse length: only written blocks hold space back.
    let zeros = vec![0u8; 64 * 1024];
    let mut left = RESERVE_BYTES - have;
    while left > 0 {
        let n = left.min(zeros.len() as u64);
        out.write_all(&zeros[..n as usize])?;
        left -= n;
    }
    out.sync_all()
}
