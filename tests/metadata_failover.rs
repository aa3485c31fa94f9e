//! The metadata store failing over under a running cluster, on PostgreSQL servers the test runs
//! itself: a primary with a synchronous standby, and gateways given libpq's multi-host URL with
//! `target_session_attrs=read-write`. Under load from several clients the primary is SIGKILLed
//! (with its backends) and the standby promoted, as an HA manager would: the gateways must
//! carry on without a restart, every request in flight must end in a retryable 503 within a
//! bound (never a 500, never a hang), writes must succeed again within a bound, and every write
//! acknowledged before or after must read back. A second test turns one server's connections
//! broken, then the server read-only and back. `bench/ha.sh` runs the same failover under
//! Patroni with etcd. Wall time: about 25 s.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_test_support::*;
use http::{Method, StatusCode};

const BUCKET: &str = "failover";
const DATABASE: &str = "cairn";
/// Client tasks, spread over the gateways.
const WORKERS: usize = 6;
/// Load before the kill, so that acknowledged writes exist on both servers.
const LOAD_BEFORE_KILL: Duration = Duration::from_secs(3);
/// Load once writes succeed again, so that both gateways are seen to be back.
const LOAD_AFTER_WRITABLE: Duration = Duration::from_secs(2);
/// The longest a failover may take, from the kill to the first acknowledged write.
const WRITABLE_BOUND: Duration = Duration::from_secs(30);
/// The longest any one request may take: the gateway's wait for a metadata connection (5 s)
/// and a margin for the data nodes and a loaded machine.
const REQUEST_BOUND: Duration = Duration::from_secs(12);
/// Object sizes: one stored in its metadata row, one in two chunks.
const SIZES: [usize; 2] = [2 * 1024, 300 * 1024];

/// One request of the load and how it ended.
#[derive(Clone, Debug)]
struct Outcome {
    put: bool,
    key: String,
    seed: u64,
    size: usize,
    started: Instant,
    ended: Instant,
    /// `None` when the request passed `REQUEST_BOUND` or its connection was cut.
    status: Option<StatusCode>,
    /// The connection broke before the whole answer arrived: a GET whose 200 and first bytes
    /// were sent before the metadata store went away ends its body short (headers sent, no
    /// status can change), which clients see as a failed transfer and retry; never wrong bytes.
    cut: bool,
    /// For a GET answered 200: whether the bytes were the ones written.
    bytes_ok: bool,
}

fn ok(o: &Outcome) -> bool {
    o.status == Some(StatusCode::OK)
}

async fn worker(
    client: S3Client,
    index: usize,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Outcome>>>,
) {
    let mut acked: Vec<(String, u64, usize)> = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let started = Instant::now();
        // Every third request reads back one of this worker's acknowledged writes.
        let outcome = if n.is_multiple_of(3) && !acked.is_empty() {
            let (key, seed, size) = acked[(n as usize / 3) % acked.len()].clone();
            let request = client.request(Method::GET, &object_path(BUCKET, &key));
            let resp = tokio::time::timeout(REQUEST_BOUND, request.try_send()).await;
            let cut = matches!(resp, Ok(Err(_)));
            let resp = resp.ok().and_then(Result::ok);
            let status = resp.as_ref().map(|r| r.status);
            let bytes_ok = resp
                .as_ref()
                .is_none_or(|r| r.status != StatusCode::OK || r.body == random_bytes(seed, size));
            Outcome {
                put: false,
                key,
                seed,
                size,
                started,
                ended: Instant::now(),
                status,
                cut,
                bytes_ok,
            }
        } else {
            let key = format!("w{index}/{n}");
            let seed = (index as u64) << 32 | n;
            let size = SIZES[n as usize % SIZES.len()];
            let body = random_bytes(seed, size);
            let request = client
                .request(Method::PUT, &object_path(BUCKET, &key))
                .payload(PayloadHash::Unsigned)
                .body(body);
            let resp = tokio::time::timeout(REQUEST_BOUND, request.try_send()).await;
            let cut = matches!(resp, Ok(Err(_)));
            let status = resp.ok().and_then(Result::ok).map(|r| r.status);
            if status == Some(StatusCode::OK) {
                acked.push((key.clone(), seed, size));
            }
            Outcome {
                put: true,
                key,
                seed,
                size,
                started,
                ended: Instant::now(),
                status,
                cut,
                bytes_ok: true,
            }
        };
        let failed = !ok(&outcome);
        log.lock().expect("outcome log").push(outcome);
        if failed {
            // A client backs off before it retries.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateways_follow_a_promoted_standby_and_lose_no_acknowledged_write() {
    let mut pg = PgCluster::replicated(DATABASE).await;
    let url = pg.multi_host_url(DATABASE);
    failover_under_load(url, "manual promotion", async {
        pg.primary.kill();
        pg.promote_standby().await;
    })
    .await;
}

/// The same failover with Patroni choosing and promoting the primary once the dead primary's
/// leader lease (10 s) expires; `bench/ha.sh` repeats it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateways_follow_patroni_to_the_new_primary_and_lose_no_acknowledged_write() {
    let mut patroni = PatroniCluster::start(DATABASE).await;
    let url = patroni.multi_host_url(DATABASE);
    failover_under_load(url, "Patroni", async {
        patroni.kill_primary().await;
    })
    .await;
}

/// A cluster of 3 data nodes and 2 gateways on the metadata database `url` names, under load
/// from `WORKERS` clients; `fail_over` kills the primary and (unless a manager does) promotes
/// the standby. Checks and prints what clients saw.
async fn failover_under_load(url: String, manager: &str, fail_over: impl Future<Output = ()>) {
    let mut spec = Spec::new(Backend::Postgres, 3);
    spec.gateways = 2;
    spec.chunk_size = "256KiB";
    let cluster = Cluster::start_on(spec, MetaDb::external(url)).await;
    let pids: Vec<u32> = cluster.gateways.iter().map(Gateway::pid).collect();
    cluster.client().create_bucket(BUCKET).await;

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let client = cluster.gateways[i % cluster.gateways.len()].client();
            tokio::spawn(worker(client, i, stop.clone(), log.clone()))
        })
        .collect();

    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    let killed = Instant::now();
    fail_over.await;
    let failed_over = killed.elapsed();
    // Writable again means a write begun once the kill is done succeeded: one begun while the
    // old primary was still going down may have committed there (and reached the synchronous
    // standby) without saying anything about the new primary.
    let down = Instant::now();
    let writable = loop {
        let first = log
            .lock()
            .expect("outcome log")
            .iter()
            .filter(|o| o.put && ok(o) && o.started > down)
            .map(|o| o.ended)
            .min();
        if let Some(at) = first {
            break at - killed;
        }
        assert!(
            killed.elapsed() < WRITABLE_BOUND,
            "no write succeeded within {WRITABLE_BOUND:?} of the kill\n{}",
            cluster.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(LOAD_AFTER_WRITABLE).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let outcomes = log.lock().expect("outcome log").clone();

    // Every request ended in time, in success or a retryable 503.
    let hung: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status.is_none() && !o.cut)
        .collect();
    assert!(
        hung.is_empty(),
        "requests passed {REQUEST_BOUND:?}: {hung:?}"
    );
    let other: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| {
            !o.cut
                && !matches!(
                    o.status,
                    Some(StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE)
                )
        })
        .collect();
    assert!(
        other.is_empty(),
        "answers other than 200 and 503: {other:?}"
    );
    let wrong: Vec<&Outcome> = outcomes.iter().filter(|o| !o.bytes_ok).collect();
    assert!(wrong.is_empty(), "reads served other bytes: {wrong:?}");
    assert_eq!(
        cluster
            .gateways
            .iter()
            .map(Gateway::pid)
            .collect::<Vec<_>>(),
        pids,
        "the gateways were restarted"
    );

    // Every acknowledged write reads back from every gateway; a write that failed is either
    // absent or whole (its commit may have reached the standby before the reply was lost).
    let puts: BTreeMap<&str, &Outcome> = outcomes
        .iter()
        .filter(|o| o.put)
        .map(|o| (o.key.as_str(), o))
        .collect();
    let mut lost = Vec::new();
    let mut failed_visible = 0;
    for gateway in &cluster.gateways {
        let client = gateway.client();
        for (key, o) in &puts {
            let resp = settled_get(&client, key).await;
            let whole = resp.status == StatusCode::OK && resp.body == random_bytes(o.seed, o.size);
            if ok(o) {
                if !whole {
                    lost.push(format!(
                        "{key} on gateway {}: {}",
                        gateway.index, resp.status
                    ));
                }
            } else if resp.status == StatusCode::OK {
                assert!(whole, "{key}, whose PUT failed, is visible but not whole");
                failed_visible += 1;
            } else {
                assert_eq!(resp.status, StatusCode::NOT_FOUND, "{key}: {}", resp.text());
            }
        }
    }
    let acked_before = puts.values().filter(|o| ok(o) && o.ended < killed).count();
    let acked_after = puts
        .values()
        .filter(|o| ok(o) && o.started > killed)
        .count();
    let in_flight = outcomes
        .iter()
        .filter(|o| o.started < killed && o.ended > killed)
        .collect::<Vec<_>>();
    let failed = outcomes.iter().filter(|o| !ok(o)).count();
    let cut = outcomes.iter().filter(|o| o.cut).count();
    let longest = outcomes
        .iter()
        .map(|o| o.ended - o.started)
        .max()
        .unwrap_or_default();
    report!(
        "failover ({manager}): the kill (and promotion) took {:.2} s, the first write was \
         acknowledged {:.2} s after the kill; {} requests, {failed} failed ({cut} cut \
         mid-answer, the rest 503; {} in flight at the kill, {} of them failed), 0 other \
         errors, longest request {:.2} s; acknowledged writes: {acked_before} before the kill, \
         {acked_after} after, {} lost; failed writes visible whole afterwards: {}",
        failed_over.as_secs_f64(),
        writable.as_secs_f64(),
        outcomes.len(),
        in_flight.len(),
        in_flight.iter().filter(|o| !ok(o)).count(),
        longest.as_secs_f64(),
        lost.len(),
        failed_visible / cluster.gateways.len(),
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(
        acked_before > 0,
        "no write was acknowledged before the kill"
    );
    assert!(acked_after > 0, "no write was acknowledged after the kill");
}

/// PUTs until one is answered `want`, each within `REQUEST_BOUND` and answered 200 or 503;
/// returns how long it took and the keys of the PUTs answered otherwise.
async fn put_until(client: &S3Client, want: StatusCode, tag: &str) -> (Duration, Vec<String>) {
    let start = Instant::now();
    let mut others = Vec::new();
    for n in 0.. {
        let key = format!("{tag}/{n}");
        let resp = tokio::time::timeout(REQUEST_BOUND, client.put(BUCKET, &key, b"bytes"))
            .await
            .unwrap_or_else(|_| panic!("PUT {key} passed {REQUEST_BOUND:?}"));
        assert!(
            matches!(
                resp.status,
                StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE
            ),
            "PUT {key}: {} {}",
            resp.status,
            resp.text()
        );
        if resp.status == want {
            if want == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(resp.code().as_deref(), Some("ServiceUnavailable"));
            }
            return (start.elapsed(), others);
        }
        others.push(key);
        assert!(
            start.elapsed() < WRITABLE_BOUND,
            "PUTs were not answered {want} within {WRITABLE_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!("the loop returns or panics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_survives_broken_connections_and_a_read_only_server() {
    let pg = PgCluster::single(DATABASE).await;
    let url = pg.primary.url(DATABASE);
    let cluster = Cluster::start_on(Spec::new(Backend::Postgres, 2), MetaDb::external(url)).await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    client.put_ok(BUCKET, "before", b"before").await;

    // Every connection of the gateways broken at once: the pool drops them and the next
    // requests get new ones, without a failed request.
    pg.primary
        .execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{DATABASE}' AND pid <> pg_backend_pid()"
        ))
        .await;
    client.put_ok(BUCKET, "after-reset", b"after").await;
    let resp = client.get(BUCKET, "before").await;
    resp.assert_status(StatusCode::OK);
    assert_eq!(resp.body, b"before");

    // The server turns read-only under the gateway's connections (as a primary demoted in
    // place would): writes are answered 503, never 500, and nothing of them is visible.
    pg.primary
        .execute("ALTER SYSTEM SET default_transaction_read_only = on")
        .await;
    pg.primary.execute("SELECT pg_reload_conf()").await;
    let (refused_in, written) = put_until(&client, StatusCode::SERVICE_UNAVAILABLE, "ro").await;
    let (_, also_refused) = put_until(&client, StatusCode::SERVICE_UNAVAILABLE, "ro2").await;
    assert!(
        also_refused.is_empty(),
        "a write succeeded on a read-only server"
    );

    // Writable again: the gateway writes again within a bound, without a restart.
    pg.primary
        .execute("ALTER SYSTEM RESET default_transaction_read_only")
        .await;
    pg.primary.execute("SELECT pg_reload_conf()").await;
    let (writable_in, refused) = put_until(&client, StatusCode::OK, "rw").await;
    // The PUTs answered 503: "ro2/0" on the read-only server, and those refused after the
    // switch back while the gateway's connections were still stale.
    for key in refused.iter().map(String::as_str).chain(["ro2/0"]) {
        client
            .get(BUCKET, key)
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
    let log = cluster.gateways[0].log_lines("metadata server is down or read-only");
    report!(
        "read-only server: first write refused with 503 {:.2} s after the switch ({} written \
         before the reload reached the connections); writable again {:.2} s after the switch \
         back ({} writes refused meanwhile); the watcher logged the server {} time(s)",
        refused_in.as_secs_f64(),
        written.len(),
        writable_in.as_secs_f64(),
        refused.len(),
        log.len()
    );
}

/// How long after a failover a gateway may still answer 503 while its connections move to the
/// new primary (the watcher's second, then stale pooled connections failing one by one).
const SETTLE: Duration = Duration::from_secs(30);

/// A GET of `key` once the gateway answers it: 503 means the metadata store is not reachable
/// yet, which says nothing about the object, so it is asked again, up to [`SETTLE`].
async fn settled_get(client: &S3Client, key: &str) -> Resp {
    let start = Instant::now();
    loop {
        let resp = client.get(BUCKET, key).await;
        if resp.status != StatusCode::SERVICE_UNAVAILABLE || start.elapsed() > SETTLE {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
