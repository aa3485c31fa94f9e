//! `cairn bench`: a load generator for any S3 endpoint (Cairn, Garage, MinIO, AWS over plain
//! HTTP). Each workload prints one JSON line on stdout (figures with their unit in the field
//! name, and an error count) and a human summary on stderr. Data is generated from seeds before
//! the clock starts, or block by block for objects too large to hold, and every byte read back
//! is checked; any error fails the run.

mod client;
mod data;
mod large;
mod list;
mod md5;
mod phase;
mod probe;
mod progress;
mod range;
mod small;
mod stats;

use std::sync::Arc;

use serde_json::Value;

use crate::config::{ByteSize, HumanDuration};
use client::{Conn, Target};

/// Parts a multipart upload may have, as on S3.
const MAX_PARTS: u64 = 10_000;

/// Which workload to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// PUT (single and multipart) and GET (single stream and concurrent ranges) of one object.
    Large,
    /// Random small ranged GETs of the large object, at each --range-concurrency.
    Range,
    /// PUT, then GET, then DELETE of many small objects.
    Small,
    /// ListObjectsV2 over many keys: flat, with a delimiter, and under one prefix.
    List,
    /// Every workload above in turn.
    All,
    /// Latency of HEAD, ranged GETs at the start and end of one object, and a ListObjectsV2
    /// page after its key, one request at a time (not part of `all`).
    Probe,
    /// One core's MD5 rate over data in memory, the ceiling of a single-stream PUT; sends no
    /// request (not part of `all`).
    Md5,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The workload to run.
    #[arg(value_enum)]
    workload: Workload,
    /// S3 endpoint, http://HOST:PORT. Credentials come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    endpoint: String,
    /// Bucket to work in; created when missing.
    #[arg(long, default_value = "cairn-bench")]
    bucket: String,
    /// Region to sign with.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Requests in flight for the small workload and for creating the list workload's keys.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Size of the large object (the range workload reads it too).
    #[arg(long, default_value = "1GiB")]
    large_size: ByteSize,
    /// Part size of the large workload's multipart upload.
    #[arg(long, default_value = "64MiB")]
    part_size: ByteSize,
    /// Parts uploaded at once.
    #[arg(long, default_value_t = 4)]
    part_concurrency: usize,
    /// Range size of the large workload's concurrent ranged GET.
    #[arg(long, default_value = "16MiB")]
    get_range_size: ByteSize,
    /// Ranges read at once by the large workload's ranged GET.
    #[arg(long, default_value_t = 8)]
    get_concurrency: usize,
    /// Ranged GETs per concurrency level of the range workload.
    #[arg(long, default_value_t = 1000)]
    range_ops: usize,
    /// Size of each random ranged GET.
    #[arg(long, default_value = "64KiB")]
    range_size: ByteSize,
    /// Concurrency levels of the range workload, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    range_concurrency: Vec<usize>,
    /// Objects of the small workload.
    #[arg(long, default_value_t = 2000)]
    small_ops: usize,
    /// Size of each small object.
    #[arg(long, default_value = "4KiB")]
    small_size: ByteSize,
    /// Keys of the list workload.
    #[arg(long, default_value_t = 5000)]
    list_keys: usize,
    /// Prefixes the list workload's keys are spread over.
    #[arg(long, default_value_t = 10)]
    list_prefixes: usize,
    /// Times each listing is repeated; the median is reported.
    #[arg(long, default_value_t = 5)]
    list_repeats: usize,
    /// Object the probe workload reads (written first unless it has --probe-size).
    #[arg(long, default_value = "probe/object")]
    probe_key: String,
    /// Size of the probe workload's object.
    #[arg(long, default_value = "4KiB")]
    probe_size: ByteSize,
    /// Requests of each kind the probe workload times.
    #[arg(long, default_value_t = 200)]
    probe_ops: usize,
    /// Objects up to this size are generated before timing and sent and checked from memory;
    /// larger ones are generated while sending, so the client does not hold them (0: always).
    #[arg(long, default_value = "1GiB")]
    generate_ahead: ByteSize,
    /// The longest one request may take, body included.
    #[arg(long, default_value = "10m")]
    timeout: HumanDuration,
}

impl BenchArgs {
    /// Checks the flags once, before anything is sent.
    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--concurrency", self.concurrency as u64),
            ("--large-size", self.large_size.0),
            ("--part-size", self.part_size.0),
            ("--part-concurrency", self.part_concurrency as u64),
            ("--get-range-size", self.get_range_size.0),
            ("--get-concurrency", self.get_concurrency as u64),
            ("--range-ops", self.range_ops as u64),
            ("--range-size", self.range_size.0),
            ("--small-ops", self.small_ops as u64),
            ("--small-size", self.small_size.0),
            ("--list-keys", self.list_keys as u64),
            ("--list-prefixes", self.list_prefixes as u64),
            ("--list-repeats", self.list_repeats as u64),
            ("--probe-size", self.probe_size.0),
            ("--probe-ops", self.probe_ops as u64),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{flag} must be positive"));
        }
        if self.range_concurrency.is_empty() || self.range_concurrency.contains(&0) {
            return Err("--range-concurrency must list positive numbers".to_owned());
        }
        if self.large_size.0.div_ceil(self.part_size.0) > MAX_PARTS {
            return Err(format!(
                "--large-size over --part-size needs more than {MAX_PARTS} parts"
            ));
        }
        if self.range_size.0 > self.large_size.0 {
            return Err("--range-size must not exceed --large-size".to_owned());
        }
        if usize::try_from(self.small_size.0).is_err() {
            return Err("--small-size does not fit in memory".to_owned());
        }
        Ok(())
    }
}

/// Runs the chosen workloads against the endpoint; fails if any request failed or any byte
/// read back differed from what was written.
pub async fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    args.validate()?;
    if args.workload == Workload::Md5 {
        return Ok(tokio::task::spawn_blocking(md5::run).await?.print()?);
    }
    let credentials = match (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Ok(id), Ok(secret)) if !id.is_empty() && !secret.is_empty() => (id, secret),
        _ => return Err("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()),
    };
    let target = Arc::new(
        Target::new(
            &args.endpoint,
            &args.bucket,
            &args.region,
            credentials,
            args.timeout.0,
        )
        .await?,
    );
    let mut conn = Conn::new(target.clone());
    if !conn.head_bucket().await? {
        conn.create_bucket().await?;
    }
    drop(conn);

    let workloads = match args.workload {
        Workload::All => vec![
            Workload::Large,
            Workload::Range,
            Workload::Small,
            Workload::List,
        ],
        one => vec![one],
    };
    let mut errors = 0;
    for workload in workloads {
        let report = match workload {
            Workload::Large => large::run(&target, &large::Config::from(&args)).await?,
            Workload::Range => range::run(&target, &range::Config::from(&args)).await?,
            Workload::Small => small::run(&target, &small::Config::from(&args)).await?,
            Workload::List => list::run(&target, &list::Config::from(&args)).await?,
            Workload::Probe => probe::run(&target, &probe::Config::from(&args)).await?,
            Workload::All | Workload::Md5 => continue,
        };
        report.print()?;
        errors += report.errors;
    }
    if errors > 0 {
        return Err(format!("{errors} requests failed or read wrong data").into());
    }
    Ok(())
}

/// What one workload measured: the JSON line's fields in order, and the human summary.
#[derive(Debug)]
pub struct Report {
    workload: &'static str,
    fields: Vec<(String, Value)>,
    summary: Vec<String>,
    errors: u64,
    error_samples: Vec<String>,
}

impl Report {
    fn new(workload: &'static str) -> Report {
        Report {
            workload,
            fields: Vec::new(),
            summary: Vec::new(),
            errors: 0,
            error_samples: Vec::new(),
        }
    }

    /// A measured figure, rounded to a thousandth of its unit; `None` (JSON `null`) when what
    /// it measures failed, since the time a failure took is no rate of the store's.
    fn figure(&mut self, name: &str, value: Option<f64>) {
        let value = value.map_or(Value::Null, |v| Value::from((v * 1000.0).round() / 1000.0));
        self.fields.push((name.to_owned(), value));
    }

    /// A phase's latency figures, `PREFIX_p50_ms` and `PREFIX_p99_ms` (`null` when it failed).
    fn latency(&mut self, prefix: &str, latency: Option<stats::Latency>) {
        self.figure(&format!("{prefix}_p50_ms"), latency.map(|l| l.p50_ms));
        self.figure(&format!("{prefix}_p99_ms"), latency.map(|l| l.p99_ms));
    }

    /// A parameter of the run (sizes, counts).
    fn count(&mut self, name: &str, value: u64) {
        self.fields.push((name.to_owned(), Value::from(value)));
    }

    fn line(&mut self, line: String) {
        self.summary.push(line);
    }

    /// Counts a failed operation outside a phase.
    fn failed(&mut self, error: &client::Error) {
        self.errors += 1;
        self.error_samples.push(error.to_string());
    }

    fn absorb<T>(&mut self, phase: &phase::Phase<T>) {
        self.errors += phase.errors;
        self.error_samples
            .extend(phase.error_samples.iter().cloned());
    }

    /// The machine-readable line, fields in the order they were recorded (serde_json's map
    /// would sort them, scattering a workload's figures).
    fn json(&self) -> String {
        let workload = ("workload".to_owned(), Value::from(self.workload));
        let errors = ("errors".to_owned(), Value::from(self.errors));
        let fields: Vec<String> = std::iter::once(&workload)
            .chain(&self.fields)
            .chain(std::iter::once(&errors))
            .map(|(name, value)| format!("{}:{value}", Value::from(name.as_str())))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    fn print(&self) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", self.json())?;
        out.flush()?;
        for line in &self.summary {
            eprintln!("{}: {line}", self.workload);
        }
        for sample in &self.error_samples {
            eprintln!("{}: error: {sample}", self.workload);
        }
        eprintln!("{}: {} errors", self.workload, self.errors);
        Ok(())
    }
}

/// A figure for the summary, or "failed" where there is none.
fn shown(value: Option<f64>, unit: &str) -> String {
    match value {
        Some(value) => format!("{value:.1} {unit}"),
        None => "failed".to_owned(),
    }
}

/// `bytes` as a human-readable size.
fn human(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, String> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.bench.validate()?;
        Ok(cli.bench)
    }

    #[test]
    fn defaults_are_the_documented_workloads() {
        let args = parse(&["all"]).unwrap();
        assert_eq!(args.workload, Workload::All);
        assert_eq!(args.endpoint, "http://127.0.0.1:9000");
        assert_eq!(args.bucket, "cairn-bench");
        assert_eq!(args.large_size.0, 1 << 30);
        assert_eq!(args.part_size.0, 64 << 20);
        assert_eq!(args.part_concurrency, 4);
        assert_eq!(args.get_range_size.0, 16 << 20);
        assert_eq!(args.get_concurrency, 8);
        assert_eq!(args.range_ops, 1000);
        assert_eq!(args.range_size.0, 64 << 10);
        assert_eq!(args.range_concurrency, vec![1, 16]);
        assert_eq!((args.small_ops, args.small_size.0), (2000, 4096));
        assert_eq!(args.concurrency, 32);
        assert_eq!((args.list_keys, args.list_prefixes), (5000, 10));
    }

    #[test]
    fn flags_are_validated() {
        let args = parse(&[
            "range",
            "--range-concurrency",
            "2,4,8",
            "--large-size",
            "8MiB",
        ]);
        assert_eq!(args.unwrap().range_concurrency, vec![2, 4, 8]);
        assert!(parse(&["small", "--concurrency", "0"]).is_err());
        assert!(parse(&["range", "--range-concurrency", "1,0"]).is_err());
        assert!(parse(&["large", "--large-size", "1GiB", "--part-size", "4KiB"]).is_err());
        assert!(parse(&["range", "--large-size", "1KiB"]).is_err());
        assert!(parse(&["everything"]).is_err());
    }

    #[test]
    fn report_line_is_one_json_object_with_errors() {
        let mut report = Report::new("small");
        report.count("ops", 100);
        report.figure("put_ops_s", Some(1234.56789));
        report.figure("get_ops_s", None);
        report.errors = 2;
        let line = report.json();
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with(r#"{"workload":"small","ops":100,"put_ops_s":"#),
            "{line}"
        );
        assert!(line.ends_with(r#","errors":2}"#), "{line}");
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["workload"], "small");
        assert_eq!(value["ops"], 100);
        assert_eq!(value["put_ops_s"], 1234.568);
        assert_eq!(value["get_ops_s"], Value::Null);
        assert_eq!(value["errors"], 2);
    }
}
