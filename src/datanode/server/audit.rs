//! The audit trail of refused requests: a warn line for each (source address, method, path,
//! reason; never a header's value), at most `MAX_LINES_PER_SECOND` a second, so that a flood of
//! forged requests cannot fill the disk; the lines a second did not take are counted and
//! reported in one line when the next refusal comes.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::Method;

/// Enough to see who is knocking and why; few enough that a flood costs kilobytes a second.
const MAX_LINES_PER_SECOND: u32 = 20;
const WINDOW: Duration = Duration::from_secs(1);
/// The most of a request's path a line shows: the path is the requester's to choose.
const MAX_PATH_SHOWN: usize = 120;

#[derive(Debug)]
pub(super) struct Audit {
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

/// What to do with one refusal.
#[derive(Debug, PartialEq, Eq)]
struct Decision {
    log: bool,
    /// Refusals of the window just ended that were not logged.
    suppressed_before: Option<u64>,
}

impl Window {
    fn decide(&mut self, now: Instant) -> Decision {
        let mut suppressed_before = None;
        if now.duration_since(self.started) >= WINDOW {
            suppressed_before = (self.suppressed > 0).then_some(self.suppressed);
            *self = Window {
                started: now,
                logged: 0,
                suppressed: 0,
            };
        }
        let log = self.logged < MAX_LINES_PER_SECOND;
        if log {
            self.logged += 1;
        } else {
            self.suppressed += 1;
        }
        Decision {
            log,
            suppressed_before,
        }
    }
}

impl Audit {
    pub(super) fn new() -> Self {
        Audit {
            window: Mutex::new(Window {
                started: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    pub(super) fn refused(
        &self,
        peer: SocketAddr,
        method: &Method,
        target: &str,
        reason: &dyn Display,
    ) {
        let decision = self
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .decide(Instant::now());
        if let Some(count) = decision.suppressed_before {
            tracing::warn!(
                suppressed = count,
                "more refused data node requests than {MAX_LINES_PER_SECOND} a second: {count} not logged"
            );
        }
        if decision.log {
            let mut cut = target.len().min(MAX_PATH_SHOWN);
            while !target.is_char_boundary(cut) {
                cut -= 1;
            }
            let path = &target[..cut];
            tracing::warn!(%peer, %method, path, %reason, "data node request refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_a_few_lines_a_second_and_counts_the_rest() {
        let start = Instant::now();
        let mut window = Window {
            started: start,
            logged: 0,
            suppressed: 0,
        };
        let logged = (0..100)
            .filter(|_| window.decide(start + Duration::from_millis(500)).log)
            .count();
        assert_eq!(logged, MAX_LINES_PER_SECOND as usize);
        assert_eq!(window.suppressed, 100 - u64::from(MAX_LINES_PER_SECOND));
        // The next window reports the count once, and logs again.
        assert_eq!(
            window.decide(start + WINDOW),
            Decision {
                log: true,
                suppressed_before: Some(80)
            }
        );
        assert_eq!(
            window.decide(start + WINDOW),
            Decision {
                log: true,
                suppressed_before: None
            }
        );
        // A quiet window reports nothing.
        assert_eq!(
            window.decide(start + 5 * WINDOW),
            Decision {
                log: true,
                suppressed_before: None
            }
        );
    }
}
