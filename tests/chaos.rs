//! Chaos under load, on SQLite and on PostgreSQL: 5 data nodes, R=3, W=2, 2 gateways, client
//! workers writing, overwriting, deleting and reading (whole and ranged, every byte checked)
//! while data nodes and gateways are SIGKILLed and restarted and bits flip in chunk files.
//! Then everything restarts, fsck must report every chunk at R copies with nothing missing or
//! corrupt, and every key on every gateway and the listing must agree with what was
//! acknowledged (`cairn_test_support::chaos` keeps the model).
//!
//! `CAIRN_CHAOS_SECONDS` sets the load's duration (60 s by default, `bench/chaos.sh` runs it
//! longer), `CAIRN_CHAOS_CONVERGE_SECONDS` the bound on convergence (120 s) and
//! `CAIRN_CHAOS_SEED` replays a run. About 70 s per store; the two run one after
//! the other.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_test_support::chaos::{self, BUCKET, Counters, Gateways, Rng};
use cairn_test_support::{Backend, Cluster, Spec, on_sqlite_and_postgres, report};

/// Chunks this small make most objects span several chunks while staying small.
const CHUNK_SIZE: &str = "128KiB";
const CHUNK_BYTES: u64 = 128 * 1024;
const REPLICAS: usize = 3;
const WORKERS: usize = 5;
const KEYS_PER_WORKER: usize = 8;
/// The load's duration when `CAIRN_CHAOS_SECONDS` is not set.
const DEFAULT_SECONDS: u64 = 60;
/// How long the cluster may take to bring every chunk back to R good copies once every process
/// is back (orphan files left for collection are counted, not waited for),
/// when `CAIRN_CHAOS_CONVERGE_SECONDS` is not set.
const DEFAULT_CONVERGE_SECONDS: u64 = 120;
/// Pause between two fsck runs while waiting (each reads every replica).
const FSCK_PAUSE: Duration = Duration::from_secs(2);

/// How often the wait for convergence says where it stands.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The two stores' runs would share two cores; one at a time keeps each run's load what it says.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

async fn chaos_under_load(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let seconds = env_number("CAIRN_CHAOS_SECONDS").unwrap_or(DEFAULT_SECONDS);
    let converge_limit = Duration::from_secs(
        env_number("CAIRN_CHAOS_CONVERGE_SECONDS").unwrap_or(DEFAULT_CONVERGE_SECONDS),
    );
    let seed = env_number("CAIRN_CHAOS_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_nanos() as u64
    });
    report!("chaos: {backend:?}, {seconds} s of load, seed {seed} (CAIRN_CHAOS_SEED replays it)");

    let mut cluster = Cluster::start(Spec {
        replicas: REPLICAS,
        write_quorum: 2,
        chunk_size: CHUNK_SIZE,
        gateways: 2,
        // Scrub finds the flipped bits that no read met, so the end can wait for none corrupt.
        scrub_interval: Some("5s"),
        ..Spec::new(backend, 5)
    })
    .await;
    cluster.client().create_bucket(BUCKET).await;

    let counters = Arc::new(Counters::default());
    let gateways = Gateways::new(&cluster);
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers = chaos::run_workers(
        &gateways,
        &counters,
        WORKERS,
        KEYS_PER_WORKER,
        CHUNK_BYTES,
        seed,
        until,
    );
    let mut rng = Rng::new(seed);
    chaos::run_chaos(&mut cluster, &counters, &mut rng, REPLICAS - 1, until).await;
    let models = workers.await.expect("the workers panicked");
    report!(
        "chaos: load over: {}; failures by cause:\n{}",
        counters.summary(),
        counters.causes()
    );

    let start = Instant::now();
    let mut next_report = REPORT_EVERY;
    let fsck = loop {
        let fsck = cluster.fsck().await;
        if fsck.fully_replicated(REPLICAS)
            && fsck.missing == 0
            && fsck.corrupt == 0
            && fsck.unreadable == 0
        {
            break fsck;
        }
        if start.elapsed() >= next_report {
            next_report += REPORT_EVERY;
            report!(
                "chaos: {:>5.1} s into convergence: {} chunks, {} below {REPLICAS} copies, {} \
                 missing, {} corrupt, {} unreadable, {} orphan files",
                start.elapsed().as_secs_f64(),
                fsck.chunks,
                fsck.below,
                fsck.missing,
                fsck.corrupt,
                fsck.unreadable,
                fsck.orphans
            );
        }
        assert!(
            start.elapsed() < converge_limit,
            "no convergence within {converge_limit:?} ({}); last fsck:\n{}",
            counters.summary(),
            fsck.stdout
        );
        tokio::time::sleep(FSCK_PAUSE).await;
    };
    let converged = start.elapsed();
    report!(
        "chaos: converged in {:.1} s: {} chunks at {REPLICAS} copies, {} orphan files left",
        converged.as_secs_f64(),
        fsck.chunks,
        fsck.orphans
    );

    let failures = chaos::check_final(&gateways, &models).await;
    let present = models.len();
    report!(
        "chaos: {backend:?} {seconds} s: {}; converged in {:.1} s; final check of {present} keys \
         on {} gateways: {} failures",
        counters.summary(),
        converged.as_secs_f64(),
        gateways.len(),
        failures.len()
    );
    let violations = counters.violations();
    assert!(
        violations.is_empty() && failures.is_empty(),
        "chaos found {} violations during the load and {} failures after it:\n{}\n{}",
        violations.len(),
        failures.len(),
        violations.join("\n"),
        failures.join("\n")
    );
    assert!(
        counters
            .acked_writes
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && counters
                .reads_verified
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0,
        "the load did nothing: {}",
        counters.summary()
    );
}

on_sqlite_and_postgres!(chaos_under_load);
