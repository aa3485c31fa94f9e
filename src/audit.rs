//! Warnings an attacker can provoke (failed authentication, refused connections), logged at a
//! bounded rate: each event gets its own line with who, from where and why until a token
//! bucket runs dry; after that events are only counted, and one line a second says how many
//! were left out. A flood of forged requests therefore costs the log a few lines a second, never
//! the disk. Used by the S3 server; meant for every listener that logs such events.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often the count of left-out lines is reported while events are being left out.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(1);

/// A rate limit on one kind of warning. Cloning shares the limit. Must be used inside a Tokio
/// runtime: the summary of left-out lines is written by a task of its own, so it appears even
/// when the flood stops and no later event would carry it.
#[derive(Clone)]
pub struct RateLimitedLog {
    /// Names the left-out events in the summary line, e.g. "failed authentication".
    what: &'static str,
    burst: f64,
    per_second: f64,
    bucket: Arc<Mutex<Bucket>>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Events left out since the last summary.
    suppressed: u64,
    /// Whether a summary task is waiting to report `suppressed`.
    summary_due: bool,
}

impl RateLimitedLog {
    /// Allows `burst` lines at once and `per_second` lines a second after that.
    pub fn new(what: &'static str, burst: u32, per_second: u32) -> RateLimitedLog {
        RateLimitedLog {
            what,
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_second),
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: f64::from(burst.max(1)),
                refilled: Instant::now(),
                suppressed: 0,
                summary_due: false,
            })),
        }
    }

    /// Calls `log`, which writes the event's line, if the rate allows it; otherwise counts
    /// the event for the next summary. Returns whether `log` was called.
    pub fn log(&self, log: impl FnOnce()) -> bool {
        self.log_at(Instant::now(), log)
    }

    fn log_at(&self, now: Instant, log: impl FnOnce()) -> bool {
        let schedule_summary = {
            let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
            let earned = now.duration_since(bucket.refilled).as_secs_f64() * self.per_second;
            bucket.tokens = (bucket.tokens + earned).min(self.burst);
            bucket.refilled = bucket.refilled.max(now);
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                None
            } else {
                bucket.suppressed += 1;
                let first = !bucket.summary_due;
                bucket.summary_due = true;
                Some(first)
            }
        };
        match schedule_summary {
            None => {
                log();
                true
            }
            Some(first) => {
                if first {
                    tokio::spawn(self.clone().summarise());
                }
                false
            }
        }
    }

    /// Waits a summary interval, then reports the events left out meanwhile; once more if
    /// more were left out while it waited.
    async fn summarise(self) {
        loop {
            tokio::time::sleep(SUMMARY_INTERVAL).await;
            let suppressed = {
                let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
                let n = std::mem::take(&mut bucket.suppressed);
                if n == 0 {
                    bucket.summary_due = false;
                }
                n
            };
            if suppressed == 0 {
                return;
            }
            tracing::warn!(
                suppressed,
                "{}: {suppressed} more not logged (rate limit)",
                self.what
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(log: &RateLimitedLog, at: Instant, events: usize) -> usize {
        (0..events).filter(|_| log.log_at(at, || {})).count()
    }

    fn suppressed(log: &RateLimitedLog) -> u64 {
        log.bucket.lock().unwrap().suppressed
    }

    #[tokio::test]
    async fn a_burst_then_the_rate_then_a_summary() {
        let log = RateLimitedLog::new("test events", 5, 2);
        let start = Instant::now();
        assert_eq!(logged(&log, start, 100), 5, "the burst");
        let later = start + Duration::from_millis(500);
        assert_eq!(logged(&log, later, 100), 1, "half a second at 2 a second");
        assert_eq!(suppressed(&log), 194);
        // The summary task reports and clears the count after its interval, then ends once a
        // whole interval passed without a left-out event.
        tokio::time::sleep(SUMMARY_INTERVAL + SUMMARY_INTERVAL / 4).await;
        assert_eq!(suppressed(&log), 0);
        tokio::time::sleep(SUMMARY_INTERVAL).await;
        assert!(!log.bucket.lock().unwrap().summary_due, "the task ended");
        // A quiet spell refills the bucket to its burst, never beyond.
        assert_eq!(logged(&log, later + Duration::from_secs(3600), 100), 5);
    }
}
