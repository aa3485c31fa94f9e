//! Admission of connections to a listener: up to a cap they are served as usual; a few more are
//! let in to be answered quickly (a health check, or a 503 that tells a client to back off)
//! under a short header timeout and closed; beyond those, a connection is closed as soon as it
//! is accepted. Idle sockets so cost a bounded number of slots, and only for a while.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection let in beyond the cap has to send its request's headers: a health
/// check sends them at once, an idle socket loses its slot quickly.
pub const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Concurrent connections, counted by permits held for each connection's life.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    served: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
}

/// How one accepted connection is to be handled; it holds its slot until dropped.
#[derive(Debug)]
pub enum Admission {
    /// Within the cap: serve it as usual.
    Served(OwnedSemaphorePermit),
    /// Beyond the cap: answer one request quickly, then close.
    Overflow(OwnedSemaphorePermit),
    /// Beyond the cap and the overflow: close it now.
    Refused,
}

impl ConnectionLimit {
    /// At most `max` connections served and `overflow` more answered quickly.
    pub fn new(max: usize, overflow: usize) -> Self {
        ConnectionLimit {
            served: Arc::new(Semaphore::new(max)),
            overflow: Arc::new(Semaphore::new(overflow)),
        }
    }

    pub fn admit(&self) -> Admission {
        if let Ok(permit) = self.served.clone().try_acquire_owned() {
            return Admission::Served(permit);
        }
        match self.overflow.clone().try_acquire_owned() {
            Ok(permit) => Admission::Overflow(permit),
            Err(_) => Admission::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_up_to_the_cap_then_overflows_then_refuses() {
        let limit = ConnectionLimit::new(2, 1);
        let first = limit.admit();
        let second = limit.admit();
        assert!(matches!(first, Admission::Served(_)));
        assert!(matches!(second, Admission::Served(_)));
        let third = limit.admit();
        assert!(matches!(third, Admission::Overflow(_)));
        assert!(matches!(limit.admit(), Admission::Refused));
        // Slots come back when connections end.
        drop(third);
        assert!(matches!(limit.admit(), Admission::Overflow(_)));
        drop(first);
        assert!(matches!(limit.admit(), Admission::Served(_)));
    }
}
