//! The `large` workload: one object of `--large-size` (1 GiB) written with a single PutObject,
//! read back as one stream and as concurrent ranges, every byte checked; then a second object of
//! the same size, with its own bytes, written as a multipart upload with parts in parallel. Each
//! object is generated before timing when it is at most `--generate-ahead` (1 GiB) and while
//! sending when larger, and only one is held at a time. The copy's bytes differ so that a store
//! which deduplicates (Garage names its blocks by their hash) must store it all. The single-PUT
//! object stays for the range workload. An object over S3's 5 GiB limit for one PutObject is
//! written only by the multipart upload, under the key the single PUT would have used, and read
//! back after it.

use std::sync::Arc;
use std::time::Instant;

use super::client::{Conn, Error, Target};
use super::data::{Source, seed_of};
use super::phase::{self, Plan};
use super::progress::{Progress, Unit};
use super::stats::mib_per_s;
use super::{BenchArgs, Report, human, shown};

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
    pub generate_ahead: u64,
}

impl From<&BenchArgs> for Config {
    fn from(args: &BenchArgs) -> Config {
        Config {
            size: args.large_size.0,
            part_size: args.part_size.0,
            part_concurrency: args.part_concurrency,
            get_range_size: args.get_range_size.0,
            get_concurrency: args.get_concurrency,
            generate_ahead: args.generate_ahead.0,
        }
    }
}

/// Writes `key` as the bytes of `source` with one PutObject; returns MiB/s, or `None` when the
/// PUT failed (its error goes to `report`).
pub async fn put_single(
    target: &Arc<Target>,
    key: &str,
    source: &Source,
    label: &str,
    report: &mut Report,
) -> Result<Option<f64>, Error> {
    let size = source.size();
    let mut conn = Conn::new(target.clone());
    conn.connect().await?;
    let progress = Progress::start(label, size, Unit::Bytes);
    let body = source.payload(0, size, Some(progress.tracker()));
    let started = Instant::now();
    let result = conn.put_object(key, body).await;
    let elapsed = started.elapsed();
    progress.finish();
    Ok(succeeded(result, report).map(|()| mib_per_s(size, elapsed)))
}

/// `Some` for a successful operation; a failed one goes to `report`.
fn succeeded<T>(result: Result<T, Error>, report: &mut Report) -> Option<T> {
    result.map_err(|e| report.failed(&e)).ok()
}

pub async fn run(target: &Arc<Target>, config: &Config) -> Result<Report, Error> {
    let mut report = Report::new("large");
    let size = config.size;
    let ahead = config.generate_ahead;
    let (put, multipart, (get, ranged_get)) = if size <= MAX_PUT_SIZE {
        let source = Source::new(seed_of(LARGE_KEY), size, ahead);
        let put = put_single(target, LARGE_KEY, &source, "large: PUT", &mut report).await?;
        let reads = read_back(target, &source, config, &mut report).await?;
        drop(source);
        let copy = Source::new(seed_of(MULTIPART_KEY), size, ahead);
        let multipart = put_multipart(target, MULTIPART_KEY, &copy, config, &mut report).await?;
        let mut conn = Conn::new(target.clone());
        if let Err(e) = conn.delete_object(MULTIPART_KEY).await {
            report.failed(&e);
        }
        (Some(put), multipart, reads)
    } else {
        let source = Source::new(seed_of(LARGE_KEY), size, ahead);
        let multipart = put_multipart(target, LARGE_KEY, &source, config, &mut report).await?;
        let reads = read_back(target, &source, config, &mut report).await?;
        (None, multipart, reads)
    };

    let range_size = config.get_range_size;
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
        Some(put) => format!("PUT {}", shown(put, "MiB/s")),
        None => format!("PUT skipped (over the {} limit)", human(MAX_PUT_SIZE)),
    };
    report.line(format!(
        "{} object: {put}, multipart PUT ({} parts x{}) {}",
        human(size),
        human(config.part_size),
        config.part_concurrency,
        shown(multipart, "MiB/s")
    ));
    report.line(format!(
        "GET {}, ranged GET ({} ranges x{}) {}",
        shown(get, "MiB/s"),
        human(range_size),
        config.get_concurrency,
        shown(ranged_get, "MiB/s")
    ));
    Ok(report)
}

/// Reads `LARGE_KEY` back as one stream, then as `get_range_size` ranges `get_concurrency` at a
/// time, checking it against `source`; returns both rates in MiB/s (`None` for a read that
/// failed or returned wrong bytes).
async fn read_back(
    target: &Arc<Target>,
    source: &Source,
    config: &Config,
    report: &mut Report,
) -> Result<(Option<f64>, Option<f64>), Error> {
    let size = source.size();
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
    let get = succeeded(result, report).map(|()| mib_per_s(size, elapsed));

    let range_size = config.get_range_size;
    let plan = Plan {
        label: "large: ranged GET",
        ops: usize::try_from(size.div_ceil(range_size)).unwrap_or(usize::MAX),
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
    let ranged_get = (ranged.errors == 0).then(|| mib_per_s(size, ranged.elapsed));
    Ok((get, ranged_get))
}

/// Writes `key` as a multipart upload, `part_concurrency` parts at a time; returns MiB/s over the
/// whole upload, creation and completion included, or `None` when any step failed.
async fn put_multipart(
    target: &Arc<Target>,
    key: &'static str,
    source: &Source,
    config: &Config,
    report: &mut Report,
) -> Result<Option<f64>, Error> {
    let size = source.size();
    let part_size = config.part_size;
    let parts_source = source.clone();
    let mut conn = Conn::new(target.clone());
    conn.connect().await?;
    let started = Instant::now();
    let upload_id = match conn.create_multipart_upload(key).await {
        Ok(id) => id,
        Err(e) => {
            report.failed(&e);
            return Ok(None);
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
    if parts.errors > 0 {
        succeeded(conn.abort_multipart_upload(key, &upload_id).await, report);
        return Ok(None);
    }
    let mut list: Vec<(u32, String)> = parts.results.into_iter().map(|(_, p)| p).collect();
    list.sort_unstable_by_key(|(number, _)| *number);
    let result = conn.complete_multipart_upload(key, &upload_id, &list).await;
    let elapsed = started.elapsed();
    Ok(succeeded(result, report).map(|()| mib_per_s(size, elapsed)))
}
