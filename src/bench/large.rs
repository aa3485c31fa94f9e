//! The `large` workload: one object of `--large-size` (1 GiB) written with a single PutObject
//! and again as a multipart upload with parts in parallel, then read back as one stream and as
//! concurrent ranges, every byte checked. The object is generated before timing when it is at
//! most 1 GiB (`data::GENERATE_AHEAD_MAX`), and 1 MiB at a time while sending when larger, so the
//! client's memory does not grow with the object. The multipart copy holds the same bytes. The
//! single-PUT object stays for the range workload. An object over S3's 5 GiB limit for one
//! PutObject is written only by the multipart upload, under the key the single PUT would have
//! used.

use std::sync::Arc;
use std::time::Instant;

use super::client::{Conn, Error, Target};
use super::data::{Source, seed_of};
use super::phase::{self, Plan};
use super::progress::{Progress, Unit};
use super::stats::mib_per_s;
use super::{BenchArgs, Report, human};

/// The large object, which the range workload reads too.
pub const LARGE_KEY: &str = "large/object";
/// The multipart copy; deleted at the end of the workload.
const MULTIPART_KEY: &str = "large/multipart";
/// The largest object one PutObject may carry, as on S3.
const MAX_PUT_SIZE: u64 = 5 << 30;

#[derive(Debug, Clone)]
pub struct Config {
    pub size: u64,
    pub part_size: u64,
    pub part_concurrency: usize,
    pub get_range_size: u64,
    pub get_concurrency: usize,
}

impl From<&BenchArgs> for Config {
    fn from(args: &BenchArgs) -> Config {
        Config {
            size: args.large_size.0,
            part_size: args.part_size.0,
            part_concurrency: args.part_concurrency,
            get_range_size: args.get_range_size.0,
            get_concurrency: args.get_concurrency,
        }
    }
}

/// Writes `key` as the `size` bytes of `source` with one PutObject; returns MiB/s.
pub async fn put_single(
    target: &Arc<Target>,
    key: &str,
    source: &Source,
    size: u64,
    label: &str,
    report: &mut Report,
) -> Result<f64, Error> {
    let mut conn = Conn::new(target.clone());
    conn.connect().await?;
    let progress = Progress::start(label, size, Unit::Bytes);
    let body = source.payload(0, size, Some(progress.tracker()));
    let started = Instant::now();
    let result = conn.put_object(key, body).await;
    let elapsed = started.elapsed();
    progress.finish();
    if let Err(e) = result {
        report.failed(&e);
    }
    Ok(mib_per_s(size, elapsed))
}

pub async fn run(target: &Arc<Target>, config: &Config) -> Result<Report, Error> {
    let mut report = Report::new("large");
    let size = config.size;
    let source = Source::new(seed_of(LARGE_KEY), size);

    let (put, multipart_key) = if size <= MAX_PUT_SIZE {
        let put = put_single(target, LARGE_KEY, &source, size, "large: PUT", &mut report).await?;
        (Some(put), MULTIPART_KEY)
    } else {
        (None, LARGE_KEY)
    };
    let multipart = put_multipart(target, multipart_key, &source, config, &mut report).await?;

    let mut conn = Conn::new(target.clone());
    conn.connect().await?;
    let progress = Progress::start("large: GET", size, Unit::Bytes);
    let tracker = progress.tracker();
    let started = Instant::now();
    let expected = source.expected(0, size);
    let result = conn
        .get_object(LARGE_KEY, None, size, expected, Some(&tracker))
        .await;
    let elapsed = started.elapsed();
    progress.finish();
    if let Err(e) = result {
        report.failed(&e);
    }
    let get = mib_per_s(size, elapsed);

    let range_size = config.get_range_size;
    let ranges = size.div_ceil(range_size);
    let plan = Plan {
        label: "large: ranged GET",
        ops: usize::try_from(ranges).unwrap_or(usize::MAX),
        concurrency: config.get_concurrency,
        unit: Unit::Bytes,
        total: size,
    };
    let reads = source.clone();
    let ranged = phase::run(target, plan, move |mut conn, number, tracker| {
        let start = number as u64 * range_size;
        let end = (start + range_size).min(size);
        let expected = reads.expected(start, end - start);
        async move {
            let result = conn
                .get_object(
                    LARGE_KEY,
                    Some(start..end),
                    end - start,
                    expected,
                    Some(&tracker),
                )
                .await;
            (conn, result)
        }
    })
    .await?;
    report.absorb(&ranged);
    let ranged_get = mib_per_s(size, ranged.elapsed);

    if multipart_key == MULTIPART_KEY
        && let Err(e) = conn.delete_object(MULTIPART_KEY).await
    {
        report.failed(&e);
    }

    report.count("object_bytes", size);
    report.count("part_bytes", config.part_size);
    report.count("part_concurrency", config.part_concurrency as u64);
    report.count("get_range_bytes", range_size);
    report.count("get_concurrency", config.get_concurrency as u64);
    if let Some(put) = put {
        report.figure("put_mib_s", put);
    }
    report.figure("multipart_put_mib_s", multipart);
    report.figure("get_mib_s", get);
    report.figure("ranged_get_mib_s", ranged_get);
    let put = match put {
        Some(put) => format!("PUT {put:.1} MiB/s"),
        None => format!("PUT skipped (over the {} limit)", human(MAX_PUT_SIZE)),
    };
    report.line(format!(
        "{} object: {put}, multipart PUT ({} parts x{}) {multipart:.1} MiB/s",
        human(size),
        human(config.part_size),
        config.part_concurrency
    ));
    report.line(format!(
        "GET {get:.1} MiB/s, ranged GET ({} ranges x{}) {ranged_get:.1} MiB/s",
        human(range_size),
        config.get_concurrency
    ));
    Ok(report)
}

/// Writes `key` as a multipart upload, `part_concurrency` parts at a time; returns MiB/s over the
/// whole upload, creation and completion included.
async fn put_multipart(
    target: &Arc<Target>,
    key: &'static str,
    source: &Source,
    config: &Config,
    report: &mut Report,
) -> Result<f64, Error> {
    let size = config.size;
    let part_size = config.part_size;
    let parts_source = source.clone();
    let mut conn = Conn::new(target.clone());
    conn.connect().await?;
    let started = Instant::now();
    let upload_id = match conn.create_multipart_upload(key).await {
        Ok(id) => id,
        Err(e) => {
            report.failed(&e);
            return Ok(0.0);
        }
    };
    let plan = Plan {
        label: "large: multipart PUT",
        // At most MAX_PARTS, checked with the flags.
        ops: size.div_ceil(part_size) as usize,
        concurrency: config.part_concurrency,
        unit: Unit::Bytes,
        total: size,
    };
    let id = upload_id.clone();
    let parts = phase::run(target, plan, move |mut conn, number, tracker| {
        let id = id.clone();
        let start = number as u64 * part_size;
        let end = (start + part_size).min(size);
        let body = parts_source.payload(start, end, Some(tracker));
        async move {
            let part_number = u32::try_from(number + 1).unwrap_or(u32::MAX);
            let result = conn.upload_part(key, &id, part_number, body).await;
            (conn, result.map(|etag| (part_number, etag)))
        }
    })
    .await?;
    report.absorb(&parts);
    let result = if parts.errors == 0 {
        let mut list: Vec<(u32, String)> = parts.results.into_iter().map(|(_, p)| p).collect();
        list.sort_unstable_by_key(|(number, _)| *number);
        conn.complete_multipart_upload(key, &upload_id, &list).await
    } else {
        conn.abort_multipart_upload(key, &upload_id).await
    };
    let elapsed = started.elapsed();
    if let Err(e) = result {
        report.failed(&e);
    }
    Ok(mib_per_s(size, elapsed))
}
