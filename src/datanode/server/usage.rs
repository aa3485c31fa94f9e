//! The node's space accounting: bytes committed and bytes reserved by uploads in flight never
//! exceed the capacity, and reservations never eat into the free space the node keeps on its
//! filesystem (`--reserve`), so that a node refuses a chunk up front (507) rather than filling
//! its disk, and a full node still starts and serves reads and deletes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) used: u64,
    /// Bytes promised to uploads in flight.
    pub(super) reserved: u64,
    pub(super) chunks: u64,
}

/// The node's space accounting: committed bytes plus reservations never exceed the capacity.
#[derive(Debug)]
pub(super) struct Usage {
    pub(super) capacity: Option<u64>,
    /// The filesystem chunks are written to, and the free space kept on it.
    pub(super) disk: Option<Disk>,
    pub(super) counts: Mutex<Counts>,
}

/// Free space a node leaves on its filesystem, so that a full node stays one that serves.
#[derive(Debug)]
pub(super) struct Disk {
    /// A directory on the filesystem (the chunk directory).
    pub(super) dir: PathBuf,
    pub(super) reserve: u64,
}

/// The reserve of a node started without `--reserve`: 1 % of its filesystem, at most 1 GiB (as
/// Ceph refuses writes at a full ratio and MinIO keeps a minimum of free space per drive).
const DEFAULT_RESERVE_SHARE: u64 = 100;
const DEFAULT_RESERVE_MAX: u64 = 1 << 30;

impl Disk {
    /// The disk under `dir`, keeping `reserve` free, or the default share of the filesystem.
    pub(super) fn new(dir: PathBuf, reserve: Option<u64>) -> std::io::Result<Disk> {
        let reserve = match reserve {
            Some(bytes) => bytes,
            None => {
                let fs = rustix::fs::statvfs(&dir)?;
                let size = fs.f_blocks.saturating_mul(fs.f_frsize);
                (size / DEFAULT_RESERVE_SHARE).min(DEFAULT_RESERVE_MAX)
            }
        };
        Ok(Disk { dir, reserve })
    }

    /// Bytes new chunks may still take: the filesystem's free space above the reserve. A
    /// filesystem that cannot be asked offers nothing, so that nothing is promised blindly.
    fn room(&self) -> u64 {
        rustix::fs::statvfs(&self.dir).map_or(0, |fs| {
            fs.f_bavail
                .saturating_mul(fs.f_frsize)
                .saturating_sub(self.reserve)
        })
    }
}

impl Usage {
    pub(super) fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counters stay meaningful even if a holder panicked.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fits(&self, counts: &Counts, extra: u64) -> bool {
        let under_capacity = self.capacity.is_none_or(|capacity| {
            counts
                .used
                .saturating_add(counts.reserved)
                .saturating_add(extra)
                <= capacity
        });
        // Uploads in flight count at their whole reservation, though part of it is on disk
        // already: this errs towards refusing.
        under_capacity
            && self
                .disk
                .as_ref()
                .is_none_or(|disk| counts.reserved.saturating_add(extra) <= disk.room())
    }

    /// Reserves `bytes` for an upload, or `None` when they do not fit.
    pub(super) fn reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        let mut counts = self.counts();
        if !self.fits(&counts, bytes) {
            return None;
        }
        counts.reserved += bytes;
        Some(Reservation {
            usage: self.clone(),
            bytes,
        })
    }

    pub(super) fn removed(&self, size: u64) {
        let mut counts = self.counts();
        counts.used = counts.used.saturating_sub(size);
        counts.chunks = counts.chunks.saturating_sub(1);
    }

    /// Room left for new chunks, what the node reports to placement: the capacity left and the
    /// filesystem's room above the reserve, whichever is less, uploads in flight deducted.
    pub(super) fn free(&self, counts: &Counts) -> Option<u64> {
        let capacity = self
            .capacity
            .map(|capacity| capacity.saturating_sub(counts.used));
        let disk = self.disk.as_ref().map(Disk::room);
        let room = match (capacity, disk) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        room.map(|room| room.saturating_sub(counts.reserved))
    }
}

/// Space held for one upload; released when dropped, turned into used space by `commit`.
#[derive(Debug)]
pub(super) struct Reservation {
    usage: Arc<Usage>,
    bytes: u64,
}

impl Reservation {
    /// Extends the reservation to `bytes` when an upload outgrows what it declared; false when
    /// the node has no room for that.
    pub(super) fn grow_to(&mut self, bytes: u64) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let mut counts = self.usage.counts();
        let extra = bytes - self.bytes;
        if !self.usage.fits(&counts, extra) {
            return false;
        }
        counts.reserved += extra;
        self.bytes = bytes;
        true
    }

    /// Accounts a committed chunk of `len` bytes (never one replacing another: a node refuses
    /// ids it holds), in the same step as the reservation is released so that no other upload
    /// can slip in between.
    pub(super) fn commit(mut self, len: u64) {
        let mut counts = self.usage.counts();
        counts.reserved = counts.reserved.saturating_sub(self.bytes);
        self.bytes = 0;
        counts.used = counts.used.saturating_add(len);
        counts.chunks += 1;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut counts = self.usage.counts();
            counts.reserved = counts.reserved.saturating_sub(self.bytes);
        }
    }
}
