//! Cluster failures and the coordinator, each on SQLite and on PostgreSQL metadata: repair after
//! the SIGKILL of a data node and no extra copies once it returns, writes refused with 503 below
//! the write quorum and accepted again once nodes return, a drain that empties a node while its
//! objects stay readable, and a second gateway's coordinator taking over from a killed one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_test_support::{Backend, Cluster, MIB, Spec, random_bytes, secs};
use http::StatusCode;

cairn_test_support::on_sqlite_and_postgres!(
    lost_copies_come_back_and_extra_ones_go,
    writes_below_the_write_quorum_fail_with_503,
    drain_empties_a_node_while_its_objects_stay_readable,
    another_gateway_takes_over_the_coordinator,
);

const BUCKET: &str = "cluster";

/// Puts `count` objects of four 1 MiB chunks each (the last one short); returns (key, data)
/// pairs.
async fn fill(cluster: &Cluster, count: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let client = cluster.client();
    let mut objects = Vec::new();
    for i in 0..count {
        let key = format!("object-{i}");
        let data = random_bytes(seed + i as u64, 3 * MIB + 1000 * (i + 1));
        client.put_ok(BUCKET, &key, &data).await;
        objects.push((key, data));
    }
    objects
}

async fn lost_copies_come_back_and_extra_ones_go(backend: Backend) {
    let mut cluster = Cluster::start(Spec::new(backend, 4)).await;
    cluster.client().create_bucket(BUCKET).await;
    let objects = fill(&cluster, 4, 10).await;
    let victim = cluster.fullest_node();
    let held = cluster.nodes[victim].chunk_files().len();

    let killed_at = Instant::now();
    cluster.nodes[victim].kill();
    let down = cluster
        .wait_node_state(victim, "down", Duration::from_secs(30))
        .await;
    let (fsck, _) = cluster.wait_fully_replicated(Duration::from_secs(60)).await;
    let repaired = killed_at.elapsed();
    assert_eq!(fsck.chunks, 16, "{}", fsck.stdout);
    println!(
        "[{backend:?}] node {victim} (holding {held} of 32 copies) SIGKILLed: marked down after \
         {}, fsck shows every chunk at 2 live copies after {}",
        secs(down),
        secs(repaired)
    );
    for (key, data) in &objects {
        cluster.client().assert_object(BUCKET, key, data).await;
    }

    let restarted_at = Instant::now();
    cluster.nodes[victim].restart().await;
    let up = cluster
        .wait_node_state(victim, "up", Duration::from_secs(30))
        .await;
    let (fsck, _) = cluster.wait_clean(16, Duration::from_secs(60)).await;
    let rows = cluster.node_list().await;
    let copies: u64 = rows.iter().map(|r| r.chunks).sum();
    assert_eq!(
        copies,
        2 * fsck.chunks,
        "no chunk beyond R copies: {rows:?}"
    );
    println!(
        "[{backend:?}] node {victim} restarted: up after {}, extra copies gone and fsck clean \
         after {} (copies per node {:?})",
        secs(up),
        secs(restarted_at.elapsed()),
        rows.iter().map(|r| r.chunks).collect::<Vec<_>>()
    );
    for (key, data) in &objects {
        cluster.client().assert_object(BUCKET, key, data).await;
    }
}

async fn writes_below_the_write_quorum_fail_with_503(backend: Backend) {
    let mut cluster = Cluster::start(Spec::new(backend, 3)).await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    let before = random_bytes(20, 3 * MIB + 5);
    client.put_ok(BUCKET, "before", &before).await;

    let killed_at = Instant::now();
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    cluster
        .wait_node_state(1, "down", Duration::from_secs(30))
        .await;
    cluster
        .wait_node_state(2, "down", Duration::from_secs(30))
        .await;
    println!(
        "[{backend:?}] two of three nodes SIGKILLed, both down after {}",
        secs(killed_at.elapsed())
    );

    let refused = random_bytes(21, 2 * MIB + 3);
    for (key, body) in [("refused", &refused[..]), ("one-chunk", &refused[..20_000])] {
        let resp = client.put(BUCKET, key, body).await;
        assert_eq!(
            (resp.status, resp.code().as_deref()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("ServiceUnavailable")),
            "PUT {key} with one live node: {}",
            resp.text()
        );
        client
            .head(BUCKET, key)
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
    // A small object lives in the metadata store alone, so it needs no data node.
    client.put_ok(BUCKET, "tiny", b"0123456789").await;
    assert_eq!(client.get(BUCKET, "tiny").await.body, b"0123456789");
    client
        .delete(BUCKET, "tiny")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // (Reading "before" now may fail: both copies of a chunk can be on the dead nodes.)
    assert_eq!(client.list_keys(BUCKET).await, ["before"]);
    // The live node holds the only readable copy of whatever it holds: it cannot be removed.
    let sole = cluster.nodes[0].chunk_files().len();
    if sole > 0 {
        let id = cluster.nodes[0].id.clone();
        let out = cluster.admin(&["node", "remove", &id]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("only copy"),
            "node remove of the node holding the only live copies: {} {stderr}",
            out.status
        );
        assert_eq!(cluster.node_row(0).await.state, "up");
    } else {
        println!("[{backend:?}] node 0 holds no chunk: node remove refusal not exercised");
    }

    let restarted_at = Instant::now();
    cluster.nodes[1].restart().await;
    cluster.nodes[2].restart().await;
    cluster
        .wait_node_state(1, "up", Duration::from_secs(30))
        .await;
    cluster
        .wait_node_state(2, "up", Duration::from_secs(30))
        .await;
    let up = restarted_at.elapsed();
    // The gateway reloads its node list at most a second after the metadata store changed.
    let mut refusals = 0;
    let (_, accepted) = cluster
        .wait_for(
            "a PUT accepted once the nodes are up",
            Duration::from_secs(5),
            async || {
                let resp = client.put(BUCKET, "refused", &refused).await;
                if resp.status == StatusCode::OK {
                    return Ok(());
                }
                assert_eq!(
                    resp.status,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{}",
                    resp.text()
                );
                refusals += 1;
                Err(resp.text())
            },
        )
        .await;
    client.assert_object(BUCKET, "refused", &refused).await;
    client.assert_object(BUCKET, "before", &before).await;
    assert_eq!(client.list_keys(BUCKET).await, ["before", "refused"]);
    cluster.wait_clean(4 + 3, Duration::from_secs(60)).await;
    println!(
        "[{backend:?}] nodes restarted: up after {}, PUT accepted {} later ({refusals} 503s \
         while the gateway's node list was stale)",
        secs(up),
        secs(accepted)
    );
}

async fn drain_empties_a_node_while_its_objects_stay_readable(backend: Backend) {
    let cluster = Cluster::start(Spec::new(backend, 4)).await;
    cluster.client().create_bucket(BUCKET).await;
    let objects = Arc::new(fill(&cluster, 5, 30).await);
    let victim = cluster.fullest_node();
    let held = cluster.nodes[victim].chunk_files().len();
    assert!(held > 0);

    // Readers go on through the whole drain; every read must be whole and exact.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for r in 0..2 {
        let (client, objects, stop, reads) = (
            cluster.client(),
            objects.clone(),
            stop.clone(),
            reads.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                let (key, data) = &objects[i % objects.len()];
                client.assert_object(BUCKET, key, data).await;
                reads.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }

    let id = cluster.nodes[victim].id.clone();
    let started = Instant::now();
    let out = cluster.admin_ok(&["node", "drain", &id]).await;
    assert!(out.starts_with(&format!("draining {id}")), "{out}");
    let (_, drained) = cluster
        .wait_for(
            "the drained node holds no chunk",
            Duration::from_secs(60),
            async || {
                let row = cluster.node_row(victim).await;
                let files = cluster.nodes[victim].chunk_files().len();
                if row.state == "draining" && row.chunks == 0 && files == 0 {
                    Ok(())
                } else {
                    Err(format!("{row:?}, {files} chunk files on disk"))
                }
            },
        )
        .await;
    // A few more reads after the last copy left.
    let after = reads.load(Ordering::Relaxed) + 4;
    while reads.load(Ordering::Relaxed) < after {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader
            .await
            .unwrap_or_else(|e| panic!("a read during the drain failed: {e}"));
    }
    cluster.wait_clean(20, Duration::from_secs(30)).await;

    // Empty, the node can be forgotten; nothing is lost.
    let out = cluster.admin_ok(&["node", "remove", &id]).await;
    assert!(out.starts_with(&format!("removed {id}")), "{out}");
    let rows = cluster.node_list().await;
    assert!(rows.iter().all(|r| r.id != id), "{rows:?}");
    cluster.wait_clean(20, Duration::from_secs(30)).await;
    for (key, data) in objects.iter() {
        cluster.client().assert_object(BUCKET, key, data).await;
    }
    println!(
        "[{backend:?}] node {victim} drained of {held} copies in {} ({} of polling); {} reads \
         meanwhile, all byte-exact",
        secs(started.elapsed()),
        secs(drained),
        reads.load(Ordering::Relaxed)
    );
}

async fn another_gateway_takes_over_the_coordinator(backend: Backend) {
    let spec = Spec {
        gateways: 2,
        ..Spec::new(backend, 4)
    };
    let mut cluster = Cluster::start(spec).await;
    cluster.client().create_bucket(BUCKET).await;
    let objects = fill(&cluster, 4, 40).await;

    let (leader, _) = cluster
        .wait_for(
            "exactly one gateway holding the lease",
            Duration::from_secs(15),
            async || {
                let mut flags = Vec::new();
                for g in &cluster.gateways {
                    flags.push(g.is_leader().await);
                }
                match flags[..] {
                    [Some(true), Some(false)] => Ok(0),
                    [Some(false), Some(true)] => Ok(1),
                    _ => Err(format!("coordinator_leader per gateway: {flags:?}")),
                }
            },
        )
        .await;
    let other = 1 - leader;
    let victim = cluster.fullest_node();
    let killed_at = Instant::now();
    cluster.gateways[leader].kill();
    cluster.nodes[victim].kill();

    let (_, takeover) = cluster
        .wait_for(
            "the surviving gateway takes the lease",
            Duration::from_secs(30),
            async || match cluster.gateways[other].is_leader().await {
                Some(true) => Ok(()),
                flag => Err(format!("coordinator_leader {flag:?}")),
            },
        )
        .await;
    cluster
        .wait_node_state(victim, "down", Duration::from_secs(30))
        .await;
    let (fsck, _) = cluster.wait_fully_replicated(Duration::from_secs(60)).await;
    assert_eq!(fsck.chunks, 16, "{}", fsck.stdout);
    let repaired = killed_at.elapsed();
    let copied = cluster.gateways[other].log_lines("replica copied").len();
    assert!(
        copied > 0,
        "the repair was made by the surviving gateway's coordinator"
    );
    let client = cluster.gateways[other].client();
    for (key, data) in &objects {
        client.assert_object(BUCKET, key, data).await;
    }
    println!(
        "[{backend:?}] leader gateway {leader} and node {victim} SIGKILLed: gateway {other} \
         took the lease after {}, every chunk back at 2 live copies after {} ({copied} copies \
         made by gateway {other})",
        secs(takeover),
        secs(repaired)
    );
}
