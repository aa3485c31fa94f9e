//! Cluster data paths, each on SQLite and on PostgreSQL metadata: an object larger than any data
//! node spread over five of them through aws-cli, a download that survives the SIGKILL of the
//! node it streams from, a replica rotted on disk that reads and repair route around, garbage
//! collection of deleted and overwritten data down to the last chunk file, and each chunk kept
//! in the page cache only on the copy reads go to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_test_support::{
    AwsCli, Backend, Cluster, MIB, Spec, bytes_in_flight_from, cached_bytes, random_bytes, secs,
    sha256_file, sha256_hex, write_random_file,
};
use http::StatusCode;
use sha2::{Digest, Sha256};

cairn_test_support::on_sqlite_and_postgres!(
    object_larger_than_any_node_spreads_over_all_of_them,
    download_survives_sigkill_of_a_data_node,
    corrupt_replica_is_read_around_and_repaired,
    deleted_and_overwritten_chunks_leave_every_node,
    only_the_copy_reads_go_to_stays_in_the_page_cache,
);

const BUCKET: &str = "cluster";
/// The object of the first two cases: larger than any node's 128 MiB.
const BIG: usize = 200 * MIB;
const NODE_CAPACITY: &str = "128MiB";
const NODE_CAPACITY_BYTES: u64 = 128 << 20;

/// Five nodes of 128 MiB, R=2, W=2, 4 MiB chunks.
fn five_small_nodes(backend: Backend) -> Spec {
    Spec {
        capacity: Some(NODE_CAPACITY),
        chunk_size: "4MiB",
        ..Spec::new(backend, 5)
    }
}

async fn object_larger_than_any_node_spreads_over_all_of_them(backend: Backend) {
    const { assert!(BIG as u64 > NODE_CAPACITY_BYTES) };
    let cluster = Cluster::start(five_small_nodes(backend)).await;
    cluster.client().create_bucket(BUCKET).await;
    let source = cluster.dir.join("big.bin");
    let sha = write_random_file(&source, 1, BIG);
    // 8 MiB parts of 4 MiB chunks: 25 parts, 50 chunks.
    let aws = AwsCli::new(&cluster.dir, &cluster.gateways[0], "8MB");
    let expected_chunks = (BIG / (4 * MIB)) as u64;

    let started = Instant::now();
    let src = source.to_string_lossy().into_owned();
    aws.run(&[
        "s3",
        "cp",
        "--only-show-errors",
        &src,
        "s3://cluster/big.bin",
    ])
    .await;
    let upload = started.elapsed();

    let target = cluster.dir.join("big.download");
    let dst = target.to_string_lossy().into_owned();
    let started = Instant::now();
    aws.run(&[
        "s3",
        "cp",
        "--only-show-errors",
        "s3://cluster/big.bin",
        &dst,
    ])
    .await;
    let download = started.elapsed();
    assert_eq!(
        sha256_file(&target),
        (sha, BIG as u64),
        "the download differs from the upload"
    );

    // R copies of every chunk, each readable (fsck reads all of them), none elsewhere.
    let (fsck, _) = cluster
        .wait_clean(expected_chunks, Duration::from_secs(60))
        .await;
    let rows = cluster.node_list().await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    for row in &rows {
        assert_eq!(row.state, "up", "{row:?}");
        assert_eq!(row.capacity, NODE_CAPACITY_BYTES.to_string(), "{row:?}");
        assert!(row.chunks > 0, "a node holds none of the chunks: {rows:?}");
        assert!(
            row.chunks * 4 * MIB as u64 <= NODE_CAPACITY_BYTES,
            "more chunks than the node has room for: {row:?}"
        );
    }
    let total: u64 = rows.iter().map(|r| r.chunks).sum();
    assert_eq!(total, 2 * fsck.chunks, "R copies of every chunk: {rows:?}");
    let spread: Vec<u64> = rows.iter().map(|r| r.chunks).collect();
    println!(
        "[{backend:?}] 200 MiB through aws-cli: upload {}, download {}, chunks per node {spread:?}",
        secs(upload),
        secs(download)
    );
}

async fn download_survives_sigkill_of_a_data_node(backend: Backend) {
    // The default 64 MiB chunks: larger than every buffer between a data node and the client
    // (socket buffers grow to several MiB on loopback), so the node streaming a chunk is still
    // sending it when it dies, and the gateway must resume that chunk from the other replica.
    let spec = Spec {
        chunk_size: "64MiB",
        ..Spec::new(backend, 5)
    };
    let mut cluster = Cluster::start(spec).await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    let data = random_bytes(2, BIG);
    let started = Instant::now();
    client.put_ok(BUCKET, "big", &data).await;
    let upload = started.elapsed();
    let expected = sha256_hex(&data);
    drop(data);

    // The client reads at a steady, modest rate, so the gateway's buffers stay full and a data
    // node is usually blocked mid-chunk on a socket it cannot write to.
    const RATE: f64 = 64.0 * MIB as f64;
    // Inside the second chunk (64..128 MiB), well past its start.
    const KILL_AT: usize = 80 * MIB;
    let mut resp = client.get_streaming(BUCKET, "big").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.content_length(), Some(BIG as u64));
    let mut hasher = Sha256::new();
    let mut received = 0usize;
    let mut killed = None;
    let mut longest_gap = Duration::ZERO;
    let started = Instant::now();
    loop {
        let waited = Instant::now();
        let piece = match resp.chunk().await {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(e) => panic!("the download failed after {received} bytes: {e}"),
        };
        longest_gap = longest_gap.max(waited.elapsed());
        hasher.update(&piece);
        received += piece.len();
        if killed.is_none() && received >= KILL_AT {
            // The node with bytes of a response still on their way is the one streaming now.
            let in_flight: Vec<u64> = cluster
                .nodes
                .iter()
                .map(|n| bytes_in_flight_from(n.port()))
                .collect();
            let victim = if in_flight.iter().any(|&b| b > 0) {
                (0..in_flight.len())
                    .max_by_key(|&i| in_flight[i])
                    .expect("a node")
            } else {
                cluster.fullest_node()
            };
            println!(
                "[{backend:?}] {received} bytes read; bytes in flight per node {in_flight:?}; \
                 SIGKILL node {victim} (pid {})",
                cluster.nodes[victim].pid()
            );
            cluster.nodes[victim].kill();
            killed = Some((victim, in_flight[victim]));
        }
        let due = Duration::from_secs_f64(received as f64 / RATE);
        if let Some(early) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(early).await;
        }
    }
    let download = started.elapsed();
    assert_eq!(received, BIG, "the download ended early");
    assert_eq!(
        hex::encode(<[u8; 32]>::from(hasher.finalize())),
        expected,
        "the download differs from the upload"
    );
    let (victim, in_flight) = killed.expect("a node was killed mid-download");
    let failovers = cluster.gateways[0].log_lines("replica failed mid-read");
    // Failovers after some bytes of the chunk came from the killed node (`at=` is the offset in
    // the chunk where the next replica took over).
    let mid_chunk = failovers
        .iter()
        .filter(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("at="))
                .is_some_and(|at| at != "0")
        })
        .count();
    let failovers = failovers.len();
    println!(
        "[{backend:?}] 200 MiB: upload {}, download {} at <= 64 MiB/s with node {victim} \
         ({in_flight} bytes in flight) killed at 80 MiB; longest wait for the next piece {} ms; \
         {failovers} replica failovers logged, {mid_chunk} of them mid-chunk",
        secs(upload),
        secs(download),
        longest_gap.as_millis(),
    );
    assert!(
        mid_chunk > 0,
        "the gateway resumed a chunk the killed node was streaming from another replica"
    );
}

async fn corrupt_replica_is_read_around_and_repaired(backend: Backend) {
    let spec = Spec {
        scrub_interval: Some("5s"),
        ..Spec::new(backend, 3)
    };
    let cluster = Cluster::start(spec).await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    // Six chunks of 1 MiB, the last one short.
    let data = random_bytes(3, 5 * MIB + 12_345);
    client.put_ok(BUCKET, "rotten", &data).await;

    // One replica of every chunk gets bytes flipped inside its first CRC block.
    let mut damaged = Vec::new();
    let mut seen = BTreeSet::new();
    for node in &cluster.nodes {
        for (id, path) in node.chunk_files() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let mut bytes = std::fs::read(&path).expect("read chunk file");
            for b in &mut bytes[100..108] {
                *b ^= 0xff;
            }
            std::fs::write(&path, &bytes).expect("write chunk file");
            damaged.push((node.index, id));
        }
    }
    assert_eq!(damaged.len(), 6, "one damaged copy per chunk: {damaged:?}");
    let started = Instant::now();

    for _ in 0..3 {
        client.assert_object(BUCKET, "rotten", &data).await;
    }
    let (_, repaired) = cluster.wait_clean(6, Duration::from_secs(60)).await;
    for (node, id) in &damaged {
        // Gone, or replaced by a good copy (fsck read every replica and found none corrupt).
        if let Some(path) = cluster.nodes[*node].chunk_files().get(id) {
            let bytes = std::fs::read(path).expect("read chunk file");
            let start = data
                .windows(8)
                .position(|w| w == &bytes[..8])
                .expect("chunk data is part of the object");
            assert_eq!(&bytes[100..108], &data[start + 100..start + 108]);
        }
    }
    client.assert_object(BUCKET, "rotten", &data).await;
    let gateway = &cluster.gateways[0];
    let by_read = gateway.log_lines("corrupt replica; removing it").len();
    let by_scrub = gateway.log_lines("scrub found a corrupt replica").len();
    println!(
        "[{backend:?}] 6 corrupt replicas: reads found {by_read}, scrub found {by_scrub}; \
         fsck clean {} after the damage ({} of polling)",
        secs(started.elapsed()),
        secs(repaired)
    );
    assert!(
        by_read + by_scrub >= damaged.len(),
        "every damaged copy was found"
    );
}

async fn deleted_and_overwritten_chunks_leave_every_node(backend: Backend) {
    let mut cluster = Cluster::start(Spec::new(backend, 3)).await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    let first = random_bytes(4, 3 * MIB + MIB / 2);
    let doomed = random_bytes(5, 2 * MIB + MIB / 2);
    client.put_ok(BUCKET, "kept", &first).await;
    client.put_ok(BUCKET, "doomed", &doomed).await;
    let old = cluster.all_chunk_ids();
    let files: usize = cluster.nodes.iter().map(|n| n.chunk_files().len()).sum();
    assert_eq!(old.len(), 4 + 3, "chunk ids of both objects: {old:?}");
    assert_eq!(files, 2 * (4 + 3), "two copies of each chunk");

    let started = Instant::now();
    let second = random_bytes(6, 2 * MIB + 7);
    client.put_ok(BUCKET, "kept", &second).await;
    client
        .delete(BUCKET, "doomed")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let (_, gone) = cluster
        .wait_for(
            "no chunk of the old data on any node",
            Duration::from_secs(30),
            async || cluster.old_chunks_gone(&old, 2 * 3),
        )
        .await;
    client.assert_object(BUCKET, "kept", &second).await;
    client
        .get(BUCKET, "doomed")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    cluster.wait_clean(3, Duration::from_secs(30)).await;
    println!(
        "[{backend:?}] old chunks gone from every node {} after the overwrite and delete \
         (grace 0s; {} of polling)",
        secs(started.elapsed()),
        secs(gone)
    );

    // A node that is down while data is deleted or overwritten drops its copies once back.
    let kept_ids = cluster.all_chunk_ids();
    let late = random_bytes(7, 3 * MIB + 11);
    client.put_ok(BUCKET, "late", &late).await;
    let old: BTreeSet<String> = cluster
        .all_chunk_ids()
        .into_iter()
        .chain(kept_ids)
        .collect();
    let victim = cluster.fullest_node();
    let held = cluster.nodes[victim].chunk_files().len();
    cluster.nodes[victim].kill();
    cluster
        .wait_node_state(victim, "down", Duration::from_secs(30))
        .await;
    client
        .delete(BUCKET, "late")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let third = random_bytes(8, MIB + 1);
    client.put_ok(BUCKET, "kept", &third).await;
    let restarted = Instant::now();
    cluster.nodes[victim].restart().await;
    cluster
        .wait_for(
            "no chunk of deleted or replaced data on any node, the returned one included",
            Duration::from_secs(30),
            async || cluster.old_chunks_gone(&old, 2 * 2),
        )
        .await;
    let back = restarted.elapsed();
    cluster.wait_clean(2, Duration::from_secs(30)).await;
    client.assert_object(BUCKET, "kept", &third).await;
    assert_eq!(client.list_keys(BUCKET).await, ["kept"]);
    println!(
        "[{backend:?}] node {victim} down (holding {held} copies) while data was deleted and \
         overwritten: its stale copies gone {} after its restart",
        secs(back)
    );
}

async fn only_the_copy_reads_go_to_stays_in_the_page_cache(backend: Backend) {
    const CHUNK: u64 = 2 << 20;
    let cluster = Cluster::start(Spec {
        chunk_size: "2MiB",
        ..Spec::new(backend, 3)
    })
    .await;
    // The coordinator's first scrub, which reads every copy, runs at start: not while checking.
    cluster
        .wait_for("the first scrub", Duration::from_secs(30), async || {
            if cluster.gateways[0].log_lines("scrub finished").is_empty() {
                Err("not yet".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    let data = random_bytes(11, 6 * CHUNK as usize);
    client.put_ok(BUCKET, "cached", &data).await;

    let mut copies: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for node in &cluster.nodes {
        for (id, path) in node.chunk_files() {
            copies.entry(id).or_default().push(path);
        }
    }
    assert_eq!(copies.len(), 6, "{copies:?}");
    let mut dropped = Vec::new();
    for (id, paths) in &copies {
        assert_eq!(paths.len(), 2, "chunk {id}: {paths:?}");
        let cached: Vec<u64> = paths.iter().map(|p| cached_bytes(p)).collect();
        // One copy whole in the cache, the other not at all.
        let other = match cached.iter().position(|&c| c >= CHUNK) {
            Some(kept) => 1 - kept,
            None => panic!("chunk {id}: no copy whole in the cache: {cached:?} bytes cached"),
        };
        assert_eq!(cached[other], 0, "chunk {id}: {cached:?} bytes cached");
        dropped.push(paths[other].clone());
    }

    // Reads go to the copies in the cache: the others stay out of it.
    for _ in 0..2 {
        client.assert_object(BUCKET, "cached", &data).await;
    }
    for path in &dropped {
        assert_eq!(cached_bytes(path), 0, "{} was read", path.display());
    }
    println!(
        "[{backend:?}] each of 6 chunks cached on one of its 2 copies, before and after reads"
    );
}
