//! One measured phase of a workload: `concurrency` workers, each on its own connection opened
//! before the clock starts, take operation numbers from a shared counter until every operation
//! has run. Each operation's latency is measured on its own; the phase's wall time gives the
//! throughput. Failed operations are counted, not timed, and a phase with any has no figures.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::client::{Conn, Error, Target};
use super::data::Tracker;
use super::progress::{Progress, Unit};
use super::stats::{Latency, latency, rate};

/// Error messages kept per phase for the summary; the count covers the rest.
const ERROR_SAMPLES: usize = 3;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub label: &'a str,
    pub ops: usize,
    pub concurrency: usize,
    /// Progress is counted in bytes (the operations add what they move) or in requests (the
    /// phase adds one per operation).
    pub unit: Unit,
    /// The progress total in `unit`.
    pub total: u64,
}

/// What a phase measured.
#[derive(Debug)]
pub struct Phase<T> {
    pub elapsed: Duration,
    /// One per successful operation, unordered.
    pub latencies: Vec<Duration>,
    /// Each successful operation's number and result, unordered.
    pub results: Vec<(usize, T)>,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

impl<T> Phase<T> {
    fn empty() -> Phase<T> {
        Phase {
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
            results: Vec::new(),
            errors: 0,
            error_samples: Vec::new(),
        }
    }

    fn merge(&mut self, other: Phase<T>) {
        self.latencies.extend(other.latencies);
        self.results.extend(other.results);
        self.errors += other.errors;
        for sample in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(sample);
            }
        }
    }

    /// Successful operations per second and their latency; `None` when any operation failed,
    /// as a store that fails quickly would otherwise look fast.
    pub fn measured(&mut self) -> Option<(f64, Latency)> {
        if self.errors > 0 {
            return None;
        }
        Some((
            rate(self.latencies.len() as f64, self.elapsed),
            latency(&mut self.latencies),
        ))
    }
}

/// Runs operations `0..plan.ops`; `op` gets a connection, the operation's number and the
/// progress tracker, and hands the connection back with its result.
pub async fn run<T, F, Fut>(target: &Arc<Target>, plan: Plan<'_>, op: F) -> Result<Phase<T>, Error>
where
    T: Send + 'static,
    F: Fn(Conn, usize, Tracker) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (Conn, Result<T, Error>)> + Send + 'static,
{
    let workers = plan.concurrency.clamp(1, plan.ops.max(1));
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut conn = Conn::new(target.clone());
        conn.connect().await?;
        conns.push(conn);
    }
    let progress = Progress::start(plan.label, plan.total, plan.unit);
    let next = Arc::new(AtomicUsize::new(0));
    let op = Arc::new(op);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for conn in conns {
        let next = next.clone();
        let op = op.clone();
        let tracker = progress.tracker();
        let ops = plan.ops;
        let per_request = plan.unit == Unit::Requests;
        tasks.spawn(async move {
            let mut conn = conn;
            let mut done = Phase::empty();
            loop {
                let number = next.fetch_add(1, Ordering::Relaxed);
                if number >= ops {
                    break;
                }
                let start = Instant::now();
                let (back, result) = op(conn, number, tracker.clone()).await;
                conn = back;
                match result {
                    Ok(value) => {
                        done.latencies.push(start.elapsed());
                        done.results.push((number, value));
                    }
                    Err(e) => {
                        done.errors += 1;
                        if done.error_samples.len() < ERROR_SAMPLES {
                            done.error_samples.push(e.to_string());
                        }
                    }
                }
                if per_request {
                    tracker.add(1);
                }
            }
            done
        });
    }
    let mut phase = Phase::empty();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => phase.merge(done),
            Err(e) => {
                progress.finish();
                return Err(Error::Protocol(format!("a worker failed: {e}")));
            }
        }
    }
    phase.elapsed = started.elapsed();
    progress.finish();
    Ok(phase)
}
