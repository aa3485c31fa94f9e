//! The `probe` workload: the latency of single requests against one object, one at a time:
//! HEAD, a ranged GET at its start and one at its end, and a ListObjectsV2 page starting after
//! its key. It shows whether a request's cost depends on where it lands: at the end of an object
//! of many chunks, or in the middle of a bucket of many keys. The object is written first (from
//! its key's seed) unless it already has the probed size.

use std::sync::Arc;

use super::client::{Conn, Error, Target};
use super::data::{Expected, Source, seed_of};
use super::large::put_single;
use super::phase::{self, Plan};
use super::progress::Unit;
use super::{BenchArgs, Report, human};

/// Keys per ListObjectsV2 page.
const PAGE_KEYS: usize = 1000;

#[derive(Debug, Clone)]
pub struct Config {
    pub key: String,
    pub size: u64,
    pub range_size: u64,
    pub ops: usize,
    pub generate_ahead: u64,
}

impl From<&BenchArgs> for Config {
    fn from(args: &BenchArgs) -> Config {
        Config {
            key: args.probe_key.clone(),
            size: args.probe_size.0,
            range_size: args.range_size.0,
            ops: args.probe_ops,
            generate_ahead: args.generate_ahead.0,
        }
    }
}

/// One kind of request the probe times.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Head,
    First,
    Last,
    List,
}

impl Probe {
    fn name(self) -> &'static str {
        match self {
            Probe::Head => "head",
            Probe::First => "first_range",
            Probe::Last => "last_range",
            Probe::List => "list_after",
        }
    }
}

/// Runs one probe on `conn`; returns the keys a listing returned (0 for the others).
async fn probe(conn: &mut Conn, config: &Config, kind: Probe) -> Result<usize, Error> {
    let len = config.range_size.min(config.size);
    match kind {
        Probe::Head => match conn.head_object(&config.key).await? {
            Some(size) if size == config.size => Ok(0),
            found => Err(Error::Protocol(format!(
                "HEAD {}: size {found:?}, expected {}",
                config.key, config.size
            ))),
        },
        Probe::First | Probe::Last => {
            let offset = match kind {
                Probe::Last => config.size - len,
                _ => 0,
            };
            let expected = Expected::Pattern {
                seed: seed_of(&config.key),
                offset,
            };
            let range = Some(offset..offset + len);
            conn.get_object(&config.key, range, len, expected, None)
                .await
                .map(|()| 0)
        }
        Probe::List => conn
            .list_objects_v2("", None, None, Some(&config.key), PAGE_KEYS)
            .await
            .map(|page| page.keys),
    }
}

pub async fn run(target: &Arc<Target>, config: &Config) -> Result<Report, Error> {
    let mut report = Report::new("probe");
    report.count("object_bytes", config.size);
    report.count("range_bytes", config.range_size.min(config.size));
    report.count("ops", config.ops as u64);

    let mut conn = Conn::new(target.clone());
    if conn.head_object(&config.key).await? != Some(config.size) {
        let put = put_single(
            target,
            &config.key,
            &Source::new(seed_of(&config.key), config.size, config.generate_ahead),
            "probe: writing the object",
            &mut report,
        )
        .await?;
        report.figure("put_mib_s", put);
    }
    drop(conn);

    let config = Arc::new(config.clone());
    for kind in [Probe::Head, Probe::First, Probe::Last, Probe::List] {
        let label = format!("probe: {}", kind.name());
        let plan = Plan {
            label: &label,
            ops: config.ops,
            concurrency: 1,
            unit: Unit::Requests,
            total: config.ops as u64,
        };
        let shared = config.clone();
        let mut phase = phase::run(target, plan, move |mut conn, _, _| {
            let config = shared.clone();
            async move {
                let result = probe(&mut conn, &config, kind).await;
                (conn, result)
            }
        })
        .await?;
        report.absorb(&phase);
        let measured = phase.measured();
        report.latency(kind.name(), measured.map(|m| m.1));
        let listed = match kind {
            Probe::List => {
                let keys = phase.results.first().map_or(0, |(_, keys)| *keys);
                report.count("list_keys", keys as u64);
                format!(" ({keys} keys per page)")
            }
            _ => String::new(),
        };
        let latency = match measured {
            Some((_, l)) => format!("p50 {:.2} ms, p99 {:.2} ms", l.p50_ms, l.p99_ms),
            None => "failed".to_owned(),
        };
        report.line(format!(
            "{} of {} ({}): {latency}{listed}",
            kind.name(),
            config.key,
            human(config.size)
        ));
    }
    Ok(report)
}
