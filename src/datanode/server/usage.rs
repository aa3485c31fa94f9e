//! The node's space accounting: bytes committed and bytes reserved by uploads in flight never
//! exceed the capacity, so that a node refuses a chunk up front rather than filling its disk.

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
    pub(super) counts: Mutex<Counts>,
}

impl Usage {
    pub(super) fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counters stay meaningful even if a holder panicked.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fits(&self, counts: &Counts, extra: u64) -> bool {
        self.capacity.is_none_or(|capacity| {
            counts
                .used
                .saturating_add(counts.reserved)
                .saturating_add(extra)
                <= capacity
        })
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

    pub(super) fn free(&self, counts: &Counts) -> Option<u64> {
        self.capacity.map(|capacity| {
            capacity
                .saturating_sub(counts.used)
                .saturating_sub(counts.reserved)
        })
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
