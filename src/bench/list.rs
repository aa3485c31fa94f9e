//! The `list` workload: `--list-keys` empty objects spread over `--list-prefixes` prefixes, then
//! ListObjectsV2 timed three ways: every key in pages of 1000, the prefixes with a delimiter,
//! and the keys under one prefix. Each listing is repeated and its median reported; the counts
//! it returns are checked, so a store cannot be fast by listing less. The keys are deleted
//! afterwards, untimed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::{Conn, Error, Target};
use super::data::Payload;
use super::phase::{self, Plan};
use super::progress::Unit;
use super::stats::percentile;
use super::{BenchArgs, Report, shown};

/// S3's largest page.
const PAGE_KEYS: usize = 1000;
const ROOT: &str = "list/";

#[derive(Debug, Clone)]
pub struct Config {
    pub keys: usize,
    pub prefixes: usize,
    pub repeats: usize,
    pub concurrency: usize,
}

impl From<&BenchArgs> for Config {
    fn from(args: &BenchArgs) -> Config {
        Config {
            keys: args.list_keys,
            prefixes: args.list_prefixes,
            repeats: args.list_repeats,
            concurrency: args.concurrency,
        }
    }
}

fn prefix(index: usize) -> String {
    format!("{ROOT}p{index:03}/")
}

fn key(number: usize, prefixes: usize) -> String {
    format!("{}k{number:07}", prefix(number % prefixes))
}

/// One way of listing and what it must return.
struct Listing {
    name: &'static str,
    prefix: String,
    delimiter: Option<&'static str>,
    keys: usize,
    common_prefixes: usize,
}

/// What one complete listing (all its pages) returned.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listed {
    keys: usize,
    common_prefixes: usize,
    pages: usize,
}

async fn list_all(conn: &mut Conn, listing: &Listing) -> Result<Listed, Error> {
    let mut listed = Listed::default();
    let mut token: Option<String> = None;
    loop {
        let page = conn
            .list_objects_v2(
                &listing.prefix,
                listing.delimiter,
                token.as_deref(),
                None,
                PAGE_KEYS,
            )
            .await?;
        listed.keys += page.keys;
        listed.common_prefixes += page.common_prefixes;
        listed.pages += 1;
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(listed),
        }
    }
}

pub async fn run(target: &Arc<Target>, config: &Config) -> Result<Report, Error> {
    let mut report = Report::new("list");
    let keys = config.keys;
    let prefixes = config.prefixes.min(keys);
    report.count("keys", keys as u64);
    report.count("prefixes", prefixes as u64);
    report.count("repeats", config.repeats as u64);

    let plan = Plan {
        label: "list: creating keys",
        ops: keys,
        concurrency: config.concurrency,
        unit: Unit::Requests,
        total: keys as u64,
    };
    let created = phase::run(target, plan, move |mut conn, number, _| async move {
        let result = conn
            .put_object(&key(number, prefixes), Payload::empty())
            .await;
        (conn, result)
    })
    .await?;
    report.absorb(&created);

    let listings = [
        Listing {
            name: "flat",
            prefix: ROOT.to_owned(),
            delimiter: None,
            keys,
            common_prefixes: 0,
        },
        Listing {
            name: "delimiter",
            prefix: ROOT.to_owned(),
            delimiter: Some("/"),
            keys: 0,
            common_prefixes: prefixes,
        },
        Listing {
            name: "prefix",
            prefix: prefix(0),
            delimiter: None,
            keys: keys.div_ceil(prefixes),
            common_prefixes: 0,
        },
    ];
    let mut conn = Conn::new(target.clone());
    conn.connect().await?;
    for listing in &listings {
        let mut times: Vec<Duration> = Vec::with_capacity(config.repeats);
        let mut pages = 0;
        for _ in 0..config.repeats {
            let started = Instant::now();
            let listed = list_all(&mut conn, listing).await;
            let elapsed = started.elapsed();
            match listed {
                Ok(listed)
                    if (listed.keys, listed.common_prefixes)
                        == (listing.keys, listing.common_prefixes) =>
                {
                    times.push(elapsed);
                    pages = listed.pages;
                }
                Ok(listed) => report.failed(&Error::Protocol(format!(
                    "{} listing returned {} keys and {} prefixes, expected {} and {}",
                    listing.name,
                    listed.keys,
                    listed.common_prefixes,
                    listing.keys,
                    listing.common_prefixes
                ))),
                Err(e) => report.failed(&e),
            }
        }
        // A listing that failed even once has no time: the failures were not measured.
        times.sort_unstable();
        let median_ms = percentile(&times, 50.0)
            .filter(|_| times.len() == config.repeats)
            .map(|d| d.as_secs_f64() * 1e3);
        report.figure(&format!("{}_ms", listing.name), median_ms);
        report.count(&format!("{}_pages", listing.name), pages as u64);
        report.line(format!(
            "{} listing of {} keys and {} prefixes under {:?} ({pages} pages): {} (median of {})",
            listing.name,
            listing.keys,
            listing.common_prefixes,
            listing.prefix,
            shown(median_ms, "ms"),
            times.len()
        ));
    }
    drop(conn);

    let plan = Plan {
        label: "list: deleting keys",
        ops: keys,
        concurrency: config.concurrency,
        unit: Unit::Requests,
        total: keys as u64,
    };
    let deleted = phase::run(target, plan, move |mut conn, number, _| async move {
        let result = conn.delete_object(&key(number, prefixes)).await;
        (conn, result)
    })
    .await?;
    report.absorb(&deleted);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_evenly_over_the_prefixes() {
        assert_eq!(key(0, 10), "list/p000/k0000000");
        assert_eq!(key(13, 10), "list/p003/k0000013");
        let under_first = (0..5000).filter(|n| key(*n, 10).starts_with(&prefix(0)));
        assert_eq!(under_first.count(), 5000usize.div_ceil(10));
        let under_first = (0..7).filter(|n| key(*n, 3).starts_with(&prefix(0)));
        assert_eq!(under_first.count(), 7usize.div_ceil(3));
    }
}
