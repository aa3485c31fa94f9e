//! The `range` workload: random small ranged GETs (64 KiB) of the large object, at each
//! concurrency level in turn. It measures how much a store reads for a small range of a big
//! object (a store that reads whole blocks pays for it here). Offsets are arbitrary bytes, not
//! block-aligned, and the same for every store since they come from a fixed seed.

use std::sync::Arc;

use super::client::{Conn, Error, Target};
use super::data::{Expected, Source, seed_of, word};
use super::large::{LARGE_KEY, put_single};
use super::phase::{self, Plan};
use super::progress::Unit;
use super::stats::summary;
use super::{BenchArgs, Report, human};

/// Seed of the offsets' sequence, so runs against different stores read the same ranges.
const OFFSETS_SEED: u64 = 0x5EED_0F0F_F5E7;

#[derive(Debug, Clone)]
pub struct Config {
    pub object_size: u64,
    pub range_size: u64,
    pub ops: usize,
    pub concurrency: Vec<usize>,
    pub generate_ahead: u64,
}

impl From<&BenchArgs> for Config {
    fn from(args: &BenchArgs) -> Config {
        Config {
            object_size: args.large_size.0,
            range_size: args.range_size.0,
            ops: args.range_ops,
            concurrency: args.range_concurrency.clone(),
            generate_ahead: args.generate_ahead.0,
        }
    }
}

pub async fn run(target: &Arc<Target>, config: &Config) -> Result<Report, Error> {
    let mut report = Report::new("range");
    let size = config.object_size;
    let range_size = config.range_size;
    report.count("object_bytes", size);
    report.count("range_bytes", range_size);
    report.count("ops", config.ops as u64);

    // The large workload leaves its object behind; the same key and size mean the same bytes.
    let mut conn = Conn::new(target.clone());
    if conn.head_object(LARGE_KEY).await? != Some(size) {
        put_single(
            target,
            LARGE_KEY,
            &Source::new(seed_of(LARGE_KEY), size, config.generate_ahead),
            "range: writing the object",
            &mut report,
        )
        .await?;
    }
    drop(conn);

    let seed = seed_of(LARGE_KEY);
    let span = size - range_size + 1;
    for &concurrency in &config.concurrency {
        let offsets: Arc<Vec<u64>> = Arc::new(
            (0..config.ops as u64)
                .map(|i| word(OFFSETS_SEED ^ concurrency as u64, i) % span)
                .collect(),
        );
        let label = format!("range: c={concurrency}");
        let plan = Plan {
            label: &label,
            ops: config.ops,
            concurrency,
            unit: Unit::Requests,
            total: config.ops as u64,
        };
        let mut phase = phase::run(target, plan, move |mut conn, number, _| {
            let offsets = offsets.clone();
            async move {
                let start = offsets[number];
                let expected = Expected::Pattern {
                    seed,
                    offset: start,
                };
                let range = start..start + range_size;
                let result = conn
                    .get_object(LARGE_KEY, Some(range), range_size, expected, None)
                    .await;
                (conn, result)
            }
        })
        .await?;
        report.absorb(&phase);
        let measured = phase.measured();
        report.figure(&format!("c{concurrency}_ops_s"), measured.map(|m| m.0));
        report.latency(&format!("c{concurrency}"), measured.map(|m| m.1));
        report.line(format!(
            "{} ranges of a {} object at c={concurrency}: {}",
            human(range_size),
            human(size),
            summary(measured)
        ));
    }
    Ok(report)
}
