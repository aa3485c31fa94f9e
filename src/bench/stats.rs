//! Figures from measured requests: throughput over a phase's wall time, and latency
//! percentiles by nearest rank over every request's own duration.

use std::time::Duration;

/// Latency figures of one phase, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The `p`-th percentile (0 < p <= 100) of `samples` by nearest rank: the smallest sample that
/// at least `p` % of the samples do not exceed. `None` without samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// p50 and p99 of `samples` (sorted in place); zero without samples.
pub fn latency(samples: &mut [Duration]) -> Latency {
    samples.sort_unstable();
    let ms = |p| percentile(samples, p).map_or(0.0, |d: Duration| d.as_secs_f64() * 1e3);
    Latency {
        p50_ms: ms(50.0),
        p99_ms: ms(99.0),
    }
}

/// A phase's figures for the summary: "N ops/s, p50 .. ms, p99 .. ms", or "failed".
pub fn summary(measured: Option<(f64, Latency)>) -> String {
    match measured {
        Some((ops_s, l)) => format!(
            "{ops_s:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
            l.p50_ms, l.p99_ms
        ),
        None => "failed".to_owned(),
    }
}

/// `count` units per second of `elapsed`.
pub fn rate(count: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count / secs } else { 0.0 }
}

/// MiB per second for `bytes` moved in `elapsed`.
pub fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    rate(bytes as f64 / (1 << 20) as f64, elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&hundred, 50.0), Some(ms(50)));
        assert_eq!(percentile(&hundred, 99.0), Some(ms(99)));
        assert_eq!(percentile(&hundred, 100.0), Some(ms(100)));
        assert_eq!(percentile(&[ms(7)], 99.0), Some(ms(7)));
        assert_eq!(percentile(&[ms(1), ms(2)], 50.0), Some(ms(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn latency_sorts_its_samples() {
        let mut samples: Vec<Duration> = (1..=200).rev().map(ms).collect();
        let l = latency(&mut samples);
        assert_eq!(l.p50_ms, 100.0);
        assert_eq!(l.p99_ms, 198.0);
        assert_eq!(latency(&mut []).p99_ms, 0.0);
    }

    #[test]
    fn rates() {
        assert_eq!(mib_per_s(10 << 20, Duration::from_secs(2)), 5.0);
        assert_eq!(rate(300.0, Duration::from_millis(1500)), 200.0);
        assert_eq!(rate(1.0, Duration::ZERO), 0.0);
    }
}
