//! The `small` workload: many small objects (4 KiB) PUT, then read back and checked, then
//! deleted, each phase at `--concurrency` requests in flight. Small-object stores live or die
//! by per-request overhead: metadata commits, fsyncs, connection handling and Nagle/delayed-ACK
//! stalls, all of which show up in these latencies.

use std::sync::Arc;

use bytes::Bytes;

use super::client::{Error, Target};
use super::data::{Expected, Payload, generate, seed_of};
use super::phase::{self, Phase, Plan};
use super::progress::Unit;
use super::stats::summary;
use super::{BenchArgs, Report, human};

#[derive(Debug, Clone)]
pub struct Config {
    pub ops: usize,
    pub size: usize,
    pub concurrency: usize,
}

impl From<&BenchArgs> for Config {
    fn from(args: &BenchArgs) -> Config {
        Config {
            ops: args.small_ops,
            // Checked to fit when the flags were validated.
            size: usize::try_from(args.small_size.0).unwrap_or(usize::MAX),
            concurrency: args.concurrency,
        }
    }
}

/// The operations, in the order they run.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Put,
    Get,
    Delete,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Put => "put",
            Operation::Get => "get",
            Operation::Delete => "delete",
        }
    }
}

pub async fn run(target: &Arc<Target>, config: &Config) -> Result<Report, Error> {
    let mut report = Report::new("small");
    report.count("ops", config.ops as u64);
    report.count("object_bytes", config.size as u64);
    report.count("concurrency", config.concurrency as u64);
    let objects: Arc<Vec<(String, Bytes)>> = Arc::new(
        (0..config.ops)
            .map(|i| {
                let key = format!("small/{i:07}");
                let body = generate(seed_of(&key), config.size);
                (key, body)
            })
            .collect(),
    );
    for operation in [Operation::Put, Operation::Get, Operation::Delete] {
        let label = format!("small: {}", operation.name());
        let plan = Plan {
            label: &label,
            ops: config.ops,
            concurrency: config.concurrency,
            unit: Unit::Requests,
            total: config.ops as u64,
        };
        let objects = objects.clone();
        let mut phase: Phase<()> = phase::run(target, plan, move |mut conn, number, _| {
            let objects = objects.clone();
            async move {
                let (key, body) = &objects[number];
                let result = match operation {
                    Operation::Put => conn.put_object(key, Payload::full(body.clone())).await,
                    Operation::Get => {
                        let expected = Expected::Bytes(body.clone());
                        let len = body.len() as u64;
                        conn.get_object(key, None, len, expected, None).await
                    }
                    Operation::Delete => conn.delete_object(key).await,
                };
                (conn, result)
            }
        })
        .await?;
        report.absorb(&phase);
        let name = operation.name();
        let measured = phase.measured();
        report.figure(&format!("{name}_ops_s"), measured.map(|m| m.0));
        report.latency(name, measured.map(|m| m.1));
        report.line(format!(
            "{} x {} {name} at c={}: {}",
            config.ops,
            human(config.size as u64),
            config.concurrency,
            summary(measured)
        ));
    }
    Ok(report)
}
