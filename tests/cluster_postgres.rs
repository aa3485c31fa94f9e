//! Several stateless gateways on one PostgreSQL metadata store: what one gateway commits the
//! next request to any other sees; concurrent writers to one key through two gateways leave
//! exactly one object and, after garbage collection, no chunk file that no live object
//! references; and with `If-None-Match: *` exactly one of them wins.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_test_support::{Backend, Cluster, MIB, Resp, Spec, random_bytes, secs};
use http::StatusCode;

const BUCKET: &str = "shared";
const WRITERS: usize = 8;
const CHUNK: usize = MIB;

/// Chunks of an object of `len` bytes.
fn chunks_of(len: usize) -> u64 {
    len.div_ceil(CHUNK) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateways_on_one_postgres_agree() {
    let spec = Spec {
        gateways: 3,
        ..Spec::new(Backend::Postgres, 3)
    };
    let cluster = Cluster::start(spec).await;
    let clients: Vec<_> = cluster.gateways.iter().map(|g| g.client()).collect();
    clients[0].create_bucket(BUCKET).await;
    // Live objects: key -> length, to know how many chunks must remain.
    let mut live: BTreeMap<String, usize> = BTreeMap::new();

    // Read-after-write across gateways, with no pause between the write and the read.
    let started = Instant::now();
    for i in 0..12 {
        let key = format!("raw-{i}");
        let (a, b, c) = (
            &clients[i % 3],
            &clients[(i + 1) % 3],
            &clients[(i + 2) % 3],
        );
        let first = random_bytes(100 + i as u64, 200_000 + 1000 * i);
        let etag = a.put_ok(BUCKET, &key, &first).await;
        let got = b.get(BUCKET, &key).await;
        got.assert_status(StatusCode::OK);
        assert!(
            got.body == first,
            "{key}: GET on another gateway right after the PUT"
        );
        assert_eq!(got.header("etag"), Some(etag.as_str()));
        assert!(
            c.list_keys(BUCKET).await.contains(&key),
            "{key} listed by a third gateway"
        );
        let second = random_bytes(200 + i as u64, MIB + 10 * i);
        let etag = c.put_ok(BUCKET, &key, &second).await;
        let got = a.get(BUCKET, &key).await;
        assert!(
            got.body == second,
            "{key}: overwrite seen by the first gateway"
        );
        assert_eq!(got.header("etag"), Some(etag.as_str()));
        if i % 2 == 0 {
            b.delete(BUCKET, &key)
                .await
                .assert_status(StatusCode::NO_CONTENT);
            c.get(BUCKET, &key)
                .await
                .assert_status(StatusCode::NOT_FOUND);
        } else {
            live.insert(key, second.len());
        }
    }
    println!(
        "[Postgres] 12 keys written, read, overwritten and deleted across 3 gateways in {}",
        secs(started.elapsed())
    );

    // Eight unconditional writers to one key through two gateways: the last commit wins.
    let bodies: Vec<Vec<u8>> = (0..WRITERS)
        .map(|w| random_bytes(300 + w as u64, 2 * MIB + 1000 * w))
        .collect();
    let started = Instant::now();
    let results = race(&clients[..2], "contended", &bodies, &[]).await;
    let etags: Vec<String> = results
        .iter()
        .map(|r| {
            r.assert_status(StatusCode::OK);
            r.header("etag").expect("ETag").to_owned()
        })
        .collect();
    let winner = winner(&clients[..2], "contended", &bodies, &etags).await;
    let listed: Vec<String> = clients[2]
        .list_keys(BUCKET)
        .await
        .into_iter()
        .filter(|k| k == "contended")
        .collect();
    assert_eq!(listed, ["contended"], "one listing entry");
    live.insert("contended".to_owned(), bodies[winner].len());
    let race_time = started.elapsed();
    let (fsck, gc) = wait_only_live_chunks(&cluster, &live).await;
    println!(
        "[Postgres] {WRITERS} concurrent writers to one key over 2 gateways: all 200 in {}, \
         writer {winner} visible; after GC ({}) {} chunks, {} orphan chunk files",
        secs(race_time),
        secs(gc),
        fsck.chunks,
        fsck.orphans
    );

    // The same race with If-None-Match: * on a new key: one winner, the others refused.
    let started = Instant::now();
    let results = race(
        &clients[..2],
        "exclusive",
        &bodies,
        &[("if-none-match", "*")],
    )
    .await;
    let statuses: Vec<(u16, Option<String>)> = results
        .iter()
        .map(|r| (r.status.as_u16(), r.code()))
        .collect();
    let winners: Vec<usize> = (0..WRITERS)
        .filter(|&w| results[w].status == StatusCode::OK)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one conditional write wins: {statuses:?}"
    );
    for (w, r) in results.iter().enumerate() {
        if w != winners[0] {
            assert!(
                matches!(
                    (r.status, r.code().as_deref()),
                    (StatusCode::PRECONDITION_FAILED, Some("PreconditionFailed"))
                        | (StatusCode::CONFLICT, Some("ConditionalRequestConflict"))
                ),
                "writer {w} lost with {} {}",
                r.status,
                r.text()
            );
        }
    }
    for client in &clients {
        client
            .assert_object(BUCKET, "exclusive", &bodies[winners[0]])
            .await;
    }
    live.insert("exclusive".to_owned(), bodies[winners[0]].len());
    let race_time = started.elapsed();
    let (fsck, gc) = wait_only_live_chunks(&cluster, &live).await;
    println!(
        "[Postgres] {WRITERS} concurrent If-None-Match: * writers: writer {} won, the others got \
         {:?} in {}; after GC ({}) {} chunks, {} orphan chunk files",
        winners[0],
        statuses.iter().map(|s| s.0).collect::<Vec<_>>(),
        secs(race_time),
        secs(gc),
        fsck.chunks,
        fsck.orphans
    );
}

/// PUTs `bodies[w]` to `key` from every writer `w` at once, alternating gateways.
async fn race(
    clients: &[cairn_test_support::S3Client],
    key: &str,
    bodies: &[Vec<u8>],
    headers: &'static [(&'static str, &'static str)],
) -> Vec<Resp> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let tasks: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(w, body)| {
            let client = clients[w % clients.len()].clone();
            let (key, body, barrier) = (key.to_owned(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                client.put_with(BUCKET, &key, &body, headers).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("writer task"));
    }
    results
}

/// The writer whose body every gateway now returns, with that writer's ETag.
async fn winner(
    clients: &[cairn_test_support::S3Client],
    key: &str,
    bodies: &[Vec<u8>],
    etags: &[String],
) -> usize {
    let got = clients[0].get(BUCKET, key).await;
    got.assert_status(StatusCode::OK);
    let w = bodies
        .iter()
        .position(|b| *b == got.body)
        .expect("the object is exactly one writer's body");
    assert_eq!(got.header("etag"), Some(etags[w].as_str()));
    for client in clients {
        client.assert_object(BUCKET, key, &bodies[w]).await;
    }
    w
}

/// Polls until fsck is clean and the nodes hold exactly R copies of the live objects' chunks.
async fn wait_only_live_chunks(
    cluster: &Cluster,
    live: &BTreeMap<String, usize>,
) -> (cairn_test_support::Fsck, Duration) {
    let expected: u64 = live.values().map(|&len| chunks_of(len)).sum();
    let (fsck, took) = cluster.wait_clean(expected, Duration::from_secs(60)).await;
    assert_eq!(fsck.orphans, 0);
    let files: usize = cluster.nodes.iter().map(|n| n.chunk_files().len()).sum();
    assert_eq!(files as u64, 2 * expected, "chunk files on the nodes");
    (fsck, took)
}
