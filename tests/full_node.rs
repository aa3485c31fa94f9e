//! A data node on a full filesystem is a node that refuses new chunks, not a failed one: it keeps
//! its `--reserve` free, reports no room in its health, and gateways place chunks on the other
//! nodes, so writes go on while W nodes have room. The full node still serves reads and
//! deletes; once deletes free space it takes chunks again and repair brings the chunks written
//! meanwhile back to R copies. It starts on a filesystem filled to the last byte. One node of
//! three runs on a 16 MiB tmpfs the test mounts.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn::datanode::auth::ClusterKey;
use cairn::datanode::remote::RemoteNode;
use cairn_test_support::*;
use http::StatusCode;

const BUCKET: &str = "full";
/// One 1 MiB chunk per object.
const OBJECT: usize = MIB;
const FS_SIZE: &str = "16m";
const RESERVE: &str = "6MiB";
const RESERVE_BYTES: u64 = 6 << 20;
/// Far more objects than the small node has room for.
const MAX_FILL: usize = 40;
/// Writes made while the small node is full.
const WHILE_FULL: usize = 5;
/// Long enough for a coordinator round (1 s) to report the node's health and for the gateway's
/// node list (reloaded after 1 s) to carry it.
const VIEW_SETTLES: Duration = Duration::from_secs(3);
const LIMIT: Duration = Duration::from_secs(60);
/// What the gateway logs when a copy it started on a node fails.
const COPY_FAILED: [&str; 2] = ["a copy failed", "could not start a copy"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_node_is_skipped_and_still_serves_reads_and_deletes() {
    let fs = match Tmpfs::mount(FS_SIZE) {
        Ok(fs) => fs,
        Err(why) => {
            println!("SKIPPED full_node: cannot mount a tmpfs: {why}");
            return;
        }
    };
    let mut cluster = Cluster::start(Spec {
        replicas: 3,
        write_quorum: 2,
        ..Spec::new(Backend::Sqlite, 2)
    })
    .await;
    let small = DataNode::start_on(
        &cluster.dir,
        2,
        &fs.path().join("node2"),
        &["--reserve", RESERVE],
    )
    .await;
    cluster.admin_ok(&["node", "add", &small.url()]).await;
    let health = RemoteNode::new(&small.url(), ClusterKey::from_secret(CLUSTER_SECRET))
        .expect("a client of the small node");
    cluster.nodes.push(small);
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    tokio::time::sleep(VIEW_SETTLES).await;

    // Fill the small node through the API: every write succeeds, on all three nodes until the
    // small one is full, on the two others after.
    let mut objects: BTreeMap<String, (Vec<u8>, String)> = BTreeMap::new();
    let put = async |objects: &mut BTreeMap<String, (Vec<u8>, String)>| {
        let key = format!("obj-{:03}", objects.len());
        let body = random_bytes(objects.len() as u64, OBJECT);
        let before = cluster.all_chunk_ids();
        client.put_ok(BUCKET, &key, &body).await;
        let chunk = cluster
            .all_chunk_ids()
            .difference(&before)
            .next()
            .cloned()
            .expect("the write's chunk on some node");
        objects.insert(key, (body, chunk));
    };
    loop {
        put(&mut objects).await;
        let free = health.health().await.expect("health").free;
        if free.is_some_and(|f| f < OBJECT as u64) {
            println!(
                "the small node reports {free:?} bytes free after {} writes",
                objects.len()
            );
            break;
        }
        assert!(
            objects.len() < MAX_FILL,
            "the small node never reported itself full: free {free:?}"
        );
    }
    let on_small: Vec<String> = {
        let files = cluster.nodes[2].chunk_files();
        objects
            .iter()
            .filter(|(_, (_, chunk))| files.contains_key(chunk))
            .map(|(key, _)| key.clone())
            .collect()
    };
    assert!(on_small.len() >= 4, "only {} chunks fit", on_small.len());
    assert!(
        fs_free(&cluster.nodes[2]) >= RESERVE_BYTES,
        "the small node ate into its reserve: {} bytes free",
        fs_free(&cluster.nodes[2])
    );

    // Full: placement skips it, and writes go on with W=2 on the others.
    tokio::time::sleep(VIEW_SETTLES).await;
    let failed_copies = || {
        COPY_FAILED
            .iter()
            .map(|line| cluster.gateways[0].log_lines(line).len())
            .sum::<usize>()
    };
    let (failed_before, files_before) = (failed_copies(), cluster.nodes[2].chunk_files());
    for _ in 0..WHILE_FULL {
        put(&mut objects).await;
    }
    assert_eq!(
        cluster.nodes[2].chunk_files(),
        files_before,
        "the full node got new chunks"
    );
    assert_eq!(
        failed_copies(),
        failed_before,
        "the gateway still sent copies to the full node"
    );
    println!(
        "{WHILE_FULL} writes while it was full succeeded on the other two nodes, none tried on it"
    );

    // Started again on its filesystem filled to the last byte, it serves reads alone: the other
    // nodes are stopped.
    cluster.nodes[0].kill();
    cluster.nodes[1].kill();
    let filler = fill_to_the_last_byte(fs.path());
    cluster.nodes[2].kill();
    cluster.nodes[2].restart().await;
    assert_eq!(fs_free(&cluster.nodes[2]), 0, "the filesystem is full");
    for key in &on_small {
        client.assert_object(BUCKET, key, &objects[key].0).await;
    }
    println!(
        "started on a full filesystem, the node alone served all {} of its objects",
        on_small.len()
    );

    // And deletes: its files go, its room comes back.
    let deleted = &on_small[2..];
    for key in deleted {
        client
            .delete(BUCKET, key)
            .await
            .assert_status(StatusCode::NO_CONTENT);
    }
    let left = files_before.len() - deleted.len();
    cluster
        .wait_for(
            "the full node's deleted chunks removed",
            LIMIT,
            async || {
                let files = cluster.nodes[2].chunk_files().len();
                if files == left {
                    Ok(())
                } else {
                    Err(format!("{files} chunk files, {left} expected"))
                }
            },
        )
        .await;
    std::fs::remove_file(filler).expect("remove the filler");
    let free = health.health().await.expect("health").free;
    assert!(
        free.is_some_and(|f| f >= (WHILE_FULL * OBJECT) as u64),
        "deletes freed room on the full node: {free:?}"
    );
    println!("deletes on the full node left it {free:?} bytes of room");

    // With the others back, repair gives the writes made while it was full their third copy.
    cluster.nodes[0].restart().await;
    cluster.nodes[1].restart().await;
    let (_, took) = cluster.wait_fully_replicated(LIMIT).await;
    println!("every chunk back at 3 copies {took:?} after the nodes returned");
    for (key, (body, _)) in objects.iter().filter(|(k, _)| !deleted.contains(k)) {
        client.assert_object(BUCKET, key, body).await;
    }
}

/// Free bytes on the filesystem of a node's data directory.
fn fs_free(node: &DataNode) -> u64 {
    let fs = rustix::fs::statvfs(&node.dir).expect("statvfs");
    fs.f_bavail * fs.f_frsize
}
