//! Network faults between real hosts: every data node in a network namespace of its own
//! (`support/src/netns.rs`), the gateway, `cairn admin` and the test in the root namespace, and
//! faults put on the links between them while clients write and read: a node cut off mid-write
//! and mid-read, a slow node (200 ms, 5 % loss) whose read then stalls outright, a link that
//! flaps under writers and readers. No acknowledged write may be lost and no wrong byte served;
//! once the links heal, repair brings every chunk back to R copies within a bound. Each case
//! prints its timings. Skipped, with the reason printed, only where namespaces cannot be made
//! (not root, no `ip`). SQLite metadata: the faults are between gateway and data nodes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cairn::client::{Body, Client, Credentials, Endpoint, PayloadHash, Request};
use cairn_test_support::{
    Backend, Cluster, DataNode, Gateway, KEY_ID, KEY_SECRET, MIB, Network, NodeLaunch, REGION,
    S3Client, Spec, object_path, random_bytes, report, secs, sha256_hex,
};
use http::{Method, StatusCode};
use http_body::Frame;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

const BUCKET: &str = "partition";
/// The gateway's `--stall-timeout`: small, so that a stalled replica is given up quickly.
const STALL: Duration = Duration::from_secs(1);
const STALL_FLAG: &str = "1s";
/// How long repair may take to bring every chunk back to R copies once the links heal.
const CONVERGE_LIMIT: Duration = Duration::from_secs(90);
/// What a stall may take beyond `STALL` to be abandoned: scheduling, and the next replica's
/// first answer.
const ABANDON_SLACK: Duration = Duration::from_secs(2);
/// Bytes queued on a node's connections that mean it is sending a chunk: far more than any
/// answer to a health check or a control request.
const SENDING: u64 = 16 * 1024;

/// The namespaces of a test, or `None` after printing why they cannot be made.
fn network(test: &str, hosts: usize) -> Option<Network> {
    match Network::create(hosts) {
        Ok(network) => Some(network),
        Err(why) => {
            report!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// One gateway in the root namespace and a data node in each of `network`'s namespaces; R=3,
/// W=2, chunks of `chunk_size`; the test bucket made.
async fn start(network: &Network, chunk_size: &'static str) -> Cluster {
    let launches: Vec<NodeLaunch> = network
        .hosts
        .iter()
        .map(|host| NodeLaunch {
            wrapper: host.wrapper(),
            listen: host.listen(),
        })
        .collect();
    let spec = Spec {
        replicas: 3,
        write_quorum: 2,
        chunk_size,
        gateway_flags: vec!["--stall-timeout", STALL_FLAG],
        ..Spec::new(Backend::Sqlite, launches.len())
    };
    let cluster = Cluster::start_via(spec, &launches).await;
    for (node, host) in cluster.nodes.iter().zip(&network.hosts) {
        assert!(
            node.addr.starts_with(&format!("{}:", host.address)),
            "data node {} listens on {}, not in its namespace",
            node.index,
            node.addr
        );
    }
    cluster.client().create_bucket(BUCKET).await;
    cluster
}

/// Bytes a data node sent on its connections that have not reached their peer (or not been
/// acknowledged): its listening port's established connections, from its own namespace's
/// TCP table. Above zero while it streams a response faster than the gateway takes it in.
fn send_queue(node: &DataNode) -> u64 {
    let table =
        std::fs::read_to_string(format!("/proc/{}/net/tcp", node.pid())).unwrap_or_default();
    let port = node.port();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let established = *fields.get(3)? == "01";
            (established && u16::from_str_radix(local_port, 16).ok()? == port).then(|| {
                let queue = fields.get(4)?.split(':').next()?;
                u64::from_str_radix(queue, 16).ok()
            })?
        })
        .sum()
}

/// Copies being written on a node: its temp files (`ID.tmp.RANDOM`).
fn copies_in_flight(node: &DataNode) -> usize {
    let Ok(prefixes) = std::fs::read_dir(node.dir.join("chunks")) else {
        return 0;
    };
    prefixes
        .flatten()
        .filter_map(|prefix| std::fs::read_dir(prefix.path()).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|entry| entry.file_name().to_string_lossy().contains(".tmp."))
        .count()
}

/// The gateway's warnings about copies of chunks on `node` that could not be written.
fn failed_copies(gateway: &Gateway, node: &DataNode) -> usize {
    gateway
        .log_lines(&node.id)
        .iter()
        .filter(|line| line.contains("a copy failed") || line.contains("could not start a copy"))
        .count()
}

/// The chunk offsets at which the gateway's reads left `node` for another replica.
fn read_switches(gateway: &Gateway, node: &DataNode) -> Vec<u64> {
    gateway
        .log_lines("replica failed mid-read; switching")
        .iter()
        .filter(|line| line.contains(&node.id))
        .filter_map(|line| {
            let at = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("at="))?;
            at.parse().ok()
        })
        .collect()
}

/// A request body the test hands over piece by piece.
struct Feed(mpsc::Receiver<Bytes>);

impl http_body::Body for Feed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|data| Ok(Frame::data(data))))
    }
}

/// A PutObject under way whose body the test sends through `feed`; `done` has its status.
struct StreamedPut {
    feed: mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<StatusCode>,
}

impl StreamedPut {
    fn start(gateway: &Gateway, key: &str, len: usize) -> StreamedPut {
        let client = Client::new(Endpoint {
            addr: gateway.addr.parse().expect("a socket address"),
            host: gateway.addr.clone(),
            region: REGION.to_owned(),
            credentials: Credentials {
                access_key_id: KEY_ID.to_owned(),
                secret: KEY_SECRET.to_owned(),
            },
            timeout: Duration::from_secs(120),
        });
        let (feed, pieces) = mpsc::channel(1);
        let request = Request::new(Method::PUT, &object_path(BUCKET, key))
            .body(Body::stream(len as u64, Feed(pieces)))
            .payload(PayloadHash::Unsigned);
        let done = tokio::spawn(async move {
            let (status, _, body) = client
                .fetch(request, MIB)
                .await
                .unwrap_or_else(|e| panic!("streamed PUT: {e}"));
            assert_eq!(
                status,
                StatusCode::OK,
                "streamed PUT: {}",
                String::from_utf8_lossy(&body)
            );
            status
        });
        StreamedPut { feed, done }
    }

    async fn send(&self, data: &[u8]) {
        for piece in data.chunks(64 * 1024) {
            self.feed
                .send(Bytes::copy_from_slice(piece))
                .await
                .expect("the PUT takes its body");
        }
    }
}

/// What a whole read saw: how long the longest pause between two pieces lasted after the cut.
struct CutRead {
    /// The data node cut off while it was sending.
    cut: usize,
    cut_at: Instant,
    cut_wall: SystemTime,
    /// The longest time between two pieces of the body after the cut.
    longest_pause: Duration,
}

/// GETs `key` and checks every byte against `expected` as it arrives. Once `pause_at` bytes
/// arrived it stops reading for a moment (so that the gateway stops taking in what the nodes
/// send), then cuts off the first of `suspects` found with bytes queued on its connections, a
/// node in the middle of sending a chunk, and reads the rest at full speed. `None` if no
/// suspect was sending during the whole read (the caller tries another object).
async fn read_cutting_a_sender<'n>(
    client: &S3Client,
    network: &'n Network,
    cluster: &Cluster,
    key: &str,
    expected: &[u8],
    pause_at: usize,
    suspects: &[usize],
) -> (Option<CutRead>, Option<cairn_test_support::Partition<'n>>) {
    let mut download = client.get_streaming(BUCKET, key).await;
    assert_eq!(download.status(), StatusCode::OK);
    let mut got = 0usize;
    let mut cut: Option<(CutRead, cairn_test_support::Partition<'n>)> = None;
    let mut last_piece = Instant::now();
    let mut paused = false;
    loop {
        let piece = download
            .chunk()
            .await
            .unwrap_or_else(|e| panic!("GET {key} broke off after {got} bytes: {e}"));
        let Some(piece) = piece else { break };
        let now = Instant::now();
        if let Some((read, _)) = cut.as_mut() {
            read.longest_pause = read.longest_pause.max(now - last_piece);
        }
        last_piece = now;
        assert!(
            got + piece.len() <= expected.len() && piece[..] == expected[got..got + piece.len()],
            "GET {key}: wrong bytes at {got}..{} (object of {})",
            got + piece.len(),
            expected.len()
        );
        got += piece.len();
        if cut.is_some() || got < pause_at {
            continue;
        }
        if !paused {
            paused = true;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if let Some(&victim) = suspects
            .iter()
            .find(|&&i| send_queue(&cluster.nodes[i]) > SENDING)
        {
            let partition = network.hosts[victim].partition();
            let read = CutRead {
                cut: victim,
                cut_at: Instant::now(),
                cut_wall: SystemTime::now(),
                longest_pause: Duration::ZERO,
            };
            last_piece = read.cut_at;
            cut = Some((read, partition));
        }
    }
    assert_eq!(got, expected.len(), "GET {key} ended early");
    match cut {
        Some((read, partition)) => (Some(read), Some(partition)),
        None => (None, None),
    }
}

/// The time of a gateway log line (`2026-01-02T03:04:05.678901Z  WARN ...`).
fn logged_at(line: &str) -> Option<SystemTime> {
    let stamp = line.split_whitespace().next()?;
    let at =
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(at.unix_timestamp_nanos() as u64))
}

/// Heals every link (the guards are dropped by the caller first), then waits until fsck
/// reports every chunk at R copies with nothing missing, corrupt or orphaned, and every node
/// holds exactly the copies the metadata store places there; returns how long that took.
async fn converge(cluster: &Cluster) -> Duration {
    let started = Instant::now();
    let (report, _) = cluster.wait_fully_replicated(CONVERGE_LIMIT).await;
    cluster
        .wait_clean(
            report.chunks,
            CONVERGE_LIMIT.saturating_sub(started.elapsed()),
        )
        .await;
    started.elapsed()
}

/// (a) A node cut off from the gateway in the middle of a streamed multi-chunk PUT, while one
/// of its chunks is being written to it: the copy is given up, the PUT still commits every
/// chunk on W nodes and is acknowledged; writes during the partition go to stand-in nodes;
/// everything reads back whole, and repair converges once the link heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_mid_write_loses_no_acknowledged_write() {
    let Some(network) = network("a_node_cut_off_mid_write_loses_no_acknowledged_write", 5) else {
        return;
    };
    let cluster = start(&network, "256KiB").await;
    let client = cluster.client();
    let gateway = &cluster.gateways[0];

    // 2 MiB in 8 chunks; 1.5 chunks first, so that the second chunk's copies are open.
    let data = random_bytes(1, 2 * MIB);
    let put = StreamedPut::start(gateway, "streamed", data.len());
    let first = 384 * 1024;
    put.send(&data[..first]).await;
    let (victim, _) = cluster
        .wait_for("a copy in flight", Duration::from_secs(10), async || {
            (0..cluster.nodes.len())
                .find(|&i| copies_in_flight(&cluster.nodes[i]) > 0)
                .ok_or_else(|| "no temp file on any node".to_owned())
        })
        .await;
    let partition = network.hosts[victim].partition();
    let cut_at = Instant::now();
    report!("node {victim} cut off with a copy in flight, after {first} bytes of the PUT");
    put.send(&data[first..]).await;
    drop(put.feed);
    put.done.await.expect("the PUT task");
    let acked_after = cut_at.elapsed();
    assert!(
        failed_copies(gateway, &cluster.nodes[victim]) > 0,
        "the gateway never gave up a copy on node {victim}\n{}",
        cluster.diagnostics()
    );

    // Writes while the node is cut off: it is up in the node list until `--node-timeout`, then
    // down; either way each chunk's third copy goes to a stand-in or waits for repair.
    let mut objects = BTreeMap::new();
    objects.insert("streamed".to_owned(), data);
    let mut slowest = Duration::ZERO;
    for i in 0..6 {
        let key = format!("during-{i}");
        let body = random_bytes(10 + i, 600 * 1024 + i as usize * 1000);
        let started = Instant::now();
        client.put_ok(BUCKET, &key, &body).await;
        slowest = slowest.max(started.elapsed());
        objects.insert(key, body);
    }
    for (key, body) in &objects {
        client.assert_object(BUCKET, key, body).await;
    }
    report!(
        "streamed PUT acknowledged {} after the cut; 6 PUTs during the partition, slowest {}",
        secs(acked_after),
        secs(slowest)
    );

    partition.heal();
    let converged = converge(&cluster).await;
    for (key, body) in &objects {
        client.assert_object(BUCKET, key, body).await;
    }
    report!(
        "after healing: every chunk at 3 copies in {}",
        secs(converged)
    );
}

/// (b) A large multi-chunk GET whose serving node is cut off while it sends a chunk: the
/// gateway abandons it after `--stall-timeout` and continues on another replica from the exact
/// byte; the client gets every byte right, and the longest pause is about the stall timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_fails_over_at_the_exact_byte_when_its_node_is_cut_off() {
    let Some(network) = network(
        "a_read_fails_over_at_the_exact_byte_when_its_node_is_cut_off",
        4,
    ) else {
        return;
    };
    let cluster = start(&network, "1MiB").await;
    let client = cluster.client();
    let gateway = &cluster.gateways[0];
    let data = random_bytes(2, 8 * MIB + 12345);
    client.put_ok(BUCKET, "large", &data).await;
    // 40 Mbit/s links: a chunk takes a moment to arrive, as from another machine, rather than
    // sitting whole in socket buffers the instant it is asked for.
    let limits: Vec<_> = network.hosts.iter().map(|h| h.limit("40mbit")).collect();

    // A node caught with bytes queued may only be waiting for the acknowledgement of bytes the
    // gateway has: then no read leaves it, and the test heals it and reads again.
    let everyone: Vec<usize> = (0..cluster.nodes.len()).collect();
    let mut outcome = None;
    for _ in 0..3 {
        let before: Vec<usize> = (cluster.nodes.iter())
            .map(|n| read_switches(gateway, n).len())
            .collect();
        let (read, partition) = read_cutting_a_sender(
            &client,
            &network,
            &cluster,
            "large",
            &data,
            3 * MIB / 2,
            &everyone,
        )
        .await;
        let read = read.expect("no data node was sending when the client paused");
        let switches = read_switches(gateway, &cluster.nodes[read.cut]).split_off(before[read.cut]);
        if !switches.is_empty() {
            outcome = Some((read, partition, switches));
            break;
        }
        drop(partition);
    }
    let (read, partition, switches) =
        outcome.unwrap_or_else(|| panic!("no read left a cut-off node\n{}", cluster.diagnostics()));
    // Usually mid-chunk (the chunk it was sending); at 0 when the cut caught it sending the
    // chunk the gateway reads ahead, before the gateway took in any of its bytes.
    assert!(
        switches.iter().all(|&at| at < MIB as u64),
        "switches beyond a chunk: {switches:?}"
    );
    assert!(
        read.longest_pause < STALL + ABANDON_SLACK,
        "the read paused {:?} after the cut",
        read.longest_pause
    );
    report!(
        "node {} cut off while sending; the read continued elsewhere at chunk offsets {switches:?}; \
         longest pause after the cut {} (stall timeout {}), whole GET byte-exact ({} bytes, \
         sha256 {})",
        read.cut,
        secs(read.longest_pause),
        secs(STALL),
        data.len(),
        &sha256_hex(&data)[..16]
    );

    // Read again while it is still cut off, then once it is back.
    client.assert_object(BUCKET, "large", &data).await;
    drop(partition);
    drop(limits);
    let converged = converge(&cluster).await;
    client.assert_object(BUCKET, "large", &data).await;
    report!("after healing: clean in {}", secs(converged));
}

/// (c) A slow node (netem delay 200 ms and 5 % loss each way, or a 2 Mbit/s token bucket on a
/// kernel without netem): writes and reads through the cluster still succeed, byte-exact. Then
/// it stalls outright (its link cut) while it serves a read: the read is abandoned within
/// `--stall-timeout` and continued on another replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_node_is_read_around_and_its_stalled_read_abandoned() {
    let Some(network) = network(
        "a_slow_node_is_read_around_and_its_stalled_read_abandoned",
        4,
    ) else {
        return;
    };
    let cluster = start(&network, "256KiB").await;
    let client = cluster.client();
    let gateway = &cluster.gateways[0];
    let slow = 0;
    let (slowed, shape) = network.hosts[slow].slow();
    report!("node {slow}'s link: {shape}");

    let mut objects = Vec::new();
    let (mut slowest_put, mut slowest_get) = (Duration::ZERO, Duration::ZERO);
    for i in 0..8 {
        let key = format!("slow-{i}");
        let body = random_bytes(20 + i, MIB - i as usize * 1000);
        let started = Instant::now();
        client.put_ok(BUCKET, &key, &body).await;
        slowest_put = slowest_put.max(started.elapsed());
        objects.push((key, body));
    }
    for (key, body) in &objects {
        let started = Instant::now();
        client.assert_object(BUCKET, key, body).await;
        slowest_get = slowest_get.max(started.elapsed());
    }
    report!(
        "8 PUTs and 8 GETs of 1 MiB with node {slow} slow: slowest PUT {}, slowest GET {}",
        secs(slowest_put),
        secs(slowest_get)
    );

    // A read the slow node serves, cut off once it has started: only it is a suspect, so the
    // objects are read in turn (three rounds at most: on a loaded machine the moment a read
    // samples may miss the node sending) until one of its chunks comes from it.
    const ROUNDS: usize = 3;
    let mut found = None;
    for (key, body) in objects.iter().cycle().take(ROUNDS * objects.len()) {
        let (read, partition) =
            read_cutting_a_sender(&client, &network, &cluster, key, body, 0, &[slow]).await;
        if let Some(read) = read {
            found = Some((read, partition));
            break;
        }
    }
    let (read, partition) = found.unwrap_or_else(|| {
        panic!(
            "the slow node served none of {} reads of 8 objects",
            ROUNDS * objects.len()
        )
    });
    // The first stall of a read of the slow node's since the cut.
    let (abandoned, line) = gateway
        .log_lines("replica failed mid-read; switching")
        .into_iter()
        .filter(|line| line.contains(&cluster.nodes[slow].id) && line.contains("stalled"))
        .find_map(|line| {
            let after = logged_at(&line)?.duration_since(read.cut_wall).ok()?;
            Some((after, line))
        })
        .unwrap_or_else(|| {
            panic!(
                "no read of the slow node stalled after the cut\n{}",
                cluster.diagnostics()
            )
        });
    assert!(
        abandoned < STALL + ABANDON_SLACK,
        "the stalled read was abandoned {abandoned:?} after the cut: {line}"
    );
    report!(
        "stalled read abandoned {} after the cut (stall timeout {}); longest pause the client \
         saw {}; {} after the cut the GET was complete and byte-exact",
        secs(abandoned),
        secs(STALL),
        secs(read.longest_pause),
        secs(read.cut_at.elapsed())
    );

    drop(partition);
    drop(slowed);
    let converged = converge(&cluster).await;
    for (key, body) in &objects {
        client.assert_object(BUCKET, key, body).await;
    }
    report!("after healing: clean in {}", secs(converged));
}

/// What the flapping case's clients did.
#[derive(Default)]
struct Ledger {
    /// Keys whose PUT was acknowledged, with their bytes.
    acked: BTreeMap<String, Arc<Vec<u8>>>,
    /// Keys whose PUT failed: each may or may not exist, but only with these bytes.
    unacked: BTreeMap<String, Arc<Vec<u8>>>,
}

/// (d) A link that goes down and up every second for a while, under three writers and two
/// readers: no byte served is wrong, no acknowledged write is lost, and (e) repair converges
/// once the link stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flapping_link_loses_nothing_and_serves_no_wrong_byte() {
    const FLAPS: usize = 12;
    const MAX_FLAPS: usize = 40;
    const WRITERS: usize = 3;
    const READERS: usize = 2;
    let Some(network) = network("a_flapping_link_loses_nothing_and_serves_no_wrong_byte", 5) else {
        return;
    };
    let cluster = start(&network, "64KiB").await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
    const PUT_FAILED: usize = 0;
    const READ_OK: usize = 1;
    const READ_UNAVAILABLE: usize = 2;
    const PUT_OK: usize = 3;

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (client, ledger, stop, counts) = (
            cluster.client(),
            ledger.clone(),
            stop.clone(),
            counts.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}-{n}");
                // Inline, one chunk, several chunks.
                let len = [1000, 50_000, 300_000][(n % 3) as usize] + w * 7;
                let body = Arc::new(random_bytes(1000 * w as u64 + n, len));
                let resp = client.put(BUCKET, &key, &body).await;
                let mut ledger = ledger.lock().expect("ledger");
                if resp.status == StatusCode::OK {
                    counts[PUT_OK].fetch_add(1, Ordering::Relaxed);
                    ledger.acked.insert(key, body);
                } else {
                    assert_eq!(
                        resp.status,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "PUT {key}: {}",
                        resp.text()
                    );
                    counts[PUT_FAILED].fetch_add(1, Ordering::Relaxed);
                    ledger.unacked.insert(key, body);
                }
                n += 1;
            }
        }));
    }
    for r in 0..READERS {
        let (client, ledger, stop, counts) = (
            cluster.client(),
            ledger.clone(),
            stop.clone(),
            counts.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = r;
            while !stop.load(Ordering::Relaxed) {
                let pick = {
                    let ledger = ledger.lock().expect("ledger");
                    let len = ledger.acked.len();
                    (len > 0).then(|| {
                        let (key, body) =
                            ledger.acked.iter().nth(n * 7919 % len).expect("in range");
                        (key.clone(), body.clone())
                    })
                };
                n += 1;
                let Some((key, body)) = pick else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let outcome = if read_checked(&client, &key, &body).await {
                    READ_OK
                } else {
                    READ_UNAVAILABLE
                };
                counts[outcome].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let flapping = 0;
    let started = Instant::now();
    // At least FLAPS flaps, and more (up to MAX_FLAPS) until the flapping has disturbed a write
    // or a read: on a loaded machine a few cuts may fall between requests to the node.
    let disturbed = || {
        failed_copies(&cluster.gateways[0], &cluster.nodes[flapping]) > 0
            || !read_switches(&cluster.gateways[0], &cluster.nodes[flapping]).is_empty()
    };
    let mut flaps = 0;
    while flaps < FLAPS || (flaps < MAX_FLAPS && !disturbed()) {
        let partition = network.hosts[flapping].partition();
        tokio::time::sleep(Duration::from_millis(500)).await;
        partition.heal();
        tokio::time::sleep(Duration::from_millis(500)).await;
        flaps += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a client task failed");
    }
    let load = started.elapsed();

    let client = cluster.client();
    let ledger = Arc::try_unwrap(ledger)
        .unwrap_or_else(|_| panic!("tasks ended"))
        .into_inner()
        .expect("ledger");
    let converged = converge(&cluster).await;
    for (key, body) in &ledger.acked {
        client.assert_object(BUCKET, key, body).await;
    }
    let mut unacked_present = 0;
    for (key, body) in &ledger.unacked {
        let resp = client.get(BUCKET, key).await;
        match resp.status {
            StatusCode::NOT_FOUND => {}
            StatusCode::OK => {
                assert!(resp.body == **body, "{key}: bytes never written");
                unacked_present += 1;
            }
            other => panic!("GET {key} after healing: {other} {}", resp.text()),
        }
    }
    let listed = client.list_keys(BUCKET).await;
    for key in ledger.acked.keys() {
        assert!(listed.contains(key), "{key} acknowledged but not listed");
    }
    let c = |i: usize| counts[i].load(Ordering::Relaxed);
    assert!(c(PUT_OK) > 0 && c(READ_OK) > 0, "no load ran");
    let node = &cluster.nodes[flapping];
    let (copies_given_up, reads_moved) = (
        failed_copies(&cluster.gateways[0], node),
        read_switches(&cluster.gateways[0], node).len(),
    );
    assert!(
        copies_given_up + reads_moved > 0,
        "the flapping link never disturbed a write or a read"
    );
    report!(
        "{flaps} flaps of node {flapping}'s link in {}: {} PUTs acknowledged ({} failed, {} of \
         those visible afterwards), {} GETs byte-exact, {} unavailable; {copies_given_up} copies \
         given up and {reads_moved} reads moved off the node; every acknowledged object intact; \
         every chunk back at 3 copies {} after the last flap",
        secs(load),
        c(PUT_OK),
        c(PUT_FAILED),
        unacked_present,
        c(READ_OK),
        c(READ_UNAVAILABLE),
        secs(converged)
    );
}

/// GETs `key`, checking each byte against `expected` as it arrives: true when all came, false
/// when the gateway could not serve it (503 or a response cut short); panics on a wrong byte.
async fn read_checked(client: &S3Client, key: &str, expected: &[u8]) -> bool {
    let mut download = client.get_streaming(BUCKET, key).await;
    match download.status() {
        StatusCode::OK => {}
        StatusCode::SERVICE_UNAVAILABLE => return false,
        other => panic!("GET {key}: {other}"),
    }
    let mut hasher = Sha256::new();
    let mut got = 0usize;
    loop {
        match download.chunk().await {
            Ok(Some(piece)) => {
                assert!(
                    got + piece.len() <= expected.len()
                        && piece[..] == expected[got..got + piece.len()],
                    "GET {key}: wrong bytes at {got}..{}",
                    got + piece.len()
                );
                hasher.update(&piece);
                got += piece.len();
            }
            Ok(None) => break,
            Err(_) => return false,
        }
    }
    if got < expected.len() {
        return false;
    }
    let digest: [u8; 32] = hasher.finalize().into();
    assert_eq!(hex::encode(digest), sha256_hex(expected), "GET {key}");
    true
}
