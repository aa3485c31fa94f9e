//! The replicated store's tests: the read order and caching choice as pure functions, then
//! quorum, stand-in nodes, failover at the exact byte and the drop guard, in this process on
//! local disks behind fault-injecting stores (`fault`). The multi-process cluster tests
//! (tests/cluster_*.rs) prove the same over HTTP end to end.

use super::*;
use crate::datanode::conformance::{get, pattern};
use crate::datanode::fault::{Fault, LocalCluster, STALL_TIMEOUT};
use crate::datanode::local::BLOCK_SIZE;

const BLOCK: u64 = BLOCK_SIZE as u64;

fn up(n: u128, reading: usize) -> (Uuid, NodeState, usize) {
    (Uuid::from_u128(n), NodeState::Up, reading)
}

#[test]
fn a_chunk_is_read_from_its_preferred_replica_until_that_one_is_much_busier() {
    let mut first_choices = HashMap::new();
    for _ in 0..300 {
        let chunk = ChunkId::random();
        let idle = read_order(chunk, [up(1, 0), up(2, 0), up(3, 0)].into_iter());
        assert_eq!(idle.len(), 3);
        let preferred = idle[0];
        *first_choices.entry(preferred).or_insert(0) += 1;
        // The same choice whatever order the metadata store lists the holders in.
        let reversed = read_order(chunk, [up(3, 0), up(2, 0), up(1, 0)].into_iter());
        assert_eq!(reversed[0], 2 - preferred);
        // Busier, but within the slack: still the preferred replica.
        let mut loads = [0; 3];
        loads[preferred] = READ_AFFINITY_SLACK;
        let busy = read_order(chunk, (0..3).map(|i| up(i as u128 + 1, loads[i])));
        assert_eq!(busy[0], preferred);
        // Past the slack: another replica first, the preferred one still tried.
        loads[preferred] = READ_AFFINITY_SLACK + 1;
        let overloaded = read_order(chunk, (0..3).map(|i| up(i as u128 + 1, loads[i])));
        assert_ne!(overloaded[0], preferred);
        assert!(overloaded.contains(&preferred));
    }
    // The preference spreads chunks over every node.
    assert_eq!(first_choices.len(), 3, "{first_choices:?}");
    assert!(first_choices.values().all(|&n| n > 50), "{first_choices:?}");
}

#[test]
fn only_the_copy_reads_go_to_first_is_kept_in_the_cache() {
    let nodes: Vec<Uuid> = (1..=3).map(Uuid::from_u128).collect();
    for _ in 0..100 {
        let chunk = ChunkId::random();
        let kept: Vec<usize> = (0..nodes.len())
            .filter(|&i| caching_for(chunk, nodes[i], nodes.iter().copied()) == Caching::Keep)
            .collect();
        let first = read_order(chunk, nodes.iter().map(|&n| (n, NodeState::Up, 0)))[0];
        assert_eq!(kept, vec![first]);
        // Alone, a copy is the one reads go to.
        assert_eq!(caching_for(chunk, nodes[0], []), Caching::Keep);
    }
}

#[test]
fn draining_replicas_come_last_whatever_their_load() {
    for _ in 0..50 {
        let chunk = ChunkId::random();
        let order = read_order(
            chunk,
            [(Uuid::from_u128(1), NodeState::Draining, 0), up(2, 100)].into_iter(),
        );
        assert_eq!(order, vec![1, 0]);
    }
}

/// Writes `data` as chunk `id` in pieces of `piece` bytes and commits it.
async fn write_chunk(
    store: &dyn ChunkStore,
    id: ChunkId,
    data: &[u8],
    piece: usize,
) -> Result<u64, ChunkError> {
    let mut writer = store.create(id, Caching::Keep).await?;
    for part in data.chunks(piece) {
        writer.write(Bytes::copy_from_slice(part)).await?;
    }
    writer.commit().await
}

/// The nodes of `cluster` in the order a read of `chunk` tries them when all are idle.
fn preference(cluster: &LocalCluster, chunk: ChunkId) -> Vec<Uuid> {
    let ids: Vec<Uuid> = cluster.nodes.iter().map(|(id, _)| *id).collect();
    read_order(chunk, ids.iter().map(|&id| (id, NodeState::Up, 0)))
        .into_iter()
        .map(|i| ids[i])
        .collect()
}

async fn holders(cluster: &LocalCluster, chunk: ChunkId) -> Vec<Uuid> {
    let mut ids = cluster.meta.replicas(chunk).await.unwrap();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

/// Whether no node stores `chunk`, nor anything else.
async fn stored_nowhere(cluster: &LocalCluster, chunk: ChunkId) -> bool {
    for (_, node) in &cluster.nodes {
        if node.len(chunk).await.unwrap().is_some() || !node.list(None, 1).await.unwrap().is_empty()
        {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn a_write_commits_when_the_quorum_of_copies_does() {
    let cluster = LocalCluster::start(3, 3, 2).await;
    let (broken, _) = cluster.nodes[0].clone();
    cluster.node(broken).inject(Fault::FailWrite { at: BLOCK });
    let id = ChunkId::random();
    let data = pattern(3 * BLOCK_SIZE + 5);
    assert_eq!(
        write_chunk(&cluster.store, id, &data, 4096).await.unwrap(),
        data.len() as u64
    );
    // The failed copy is no replica: repair sees the chunk one copy short and makes another.
    let healthy: Vec<Uuid> = cluster.nodes[1..].iter().map(|(id, _)| *id).collect();
    assert_eq!(holders(&cluster, id).await, sorted(healthy.clone()));
    assert_eq!(cluster.node(broken).len(id).await.unwrap(), None);
    for node in healthy {
        assert_eq!(
            cluster.node(node).len(id).await.unwrap(),
            Some(data.len() as u64)
        );
    }
    let len = data.len() as u64;
    assert_eq!(get(&cluster.store, id, 0..len).await.unwrap(), data);
}

#[tokio::test]
async fn a_write_below_quorum_fails_and_leaves_nothing() {
    let cluster = LocalCluster::start(3, 3, 2).await;
    for (node, _) in &cluster.nodes[..2] {
        cluster.node(*node).inject(Fault::FailWrite { at: BLOCK });
    }
    let id = ChunkId::random();
    let result = write_chunk(&cluster.store, id, &pattern(2 * BLOCK_SIZE), 4096).await;
    assert!(
        matches!(result, Err(ChunkError::Unavailable(_))),
        "{result:?}"
    );
    assert!(stored_nowhere(&cluster, id).await);
    assert_eq!(cluster.store.len(id).await.unwrap(), None);
}

#[tokio::test]
async fn a_commit_below_quorum_fails_and_forgets_the_failed_copies() {
    let cluster = LocalCluster::start(3, 3, 2).await;
    for (node, _) in &cluster.nodes[..2] {
        cluster.node(*node).inject(Fault::FailCommit);
    }
    let id = ChunkId::random();
    let result = write_chunk(&cluster.store, id, &pattern(BLOCK_SIZE + 1), 4096).await;
    assert!(
        matches!(result, Err(ChunkError::Unavailable(_))),
        "{result:?}"
    );
    // The one copy that committed stays recorded, so that garbage collection finds the
    // abandoned chunk; the failed ones hold nothing and are forgotten.
    let (survivor, _) = cluster.nodes[2];
    assert_eq!(holders(&cluster, id).await, vec![survivor]);
    for (node, _) in &cluster.nodes[..2] {
        assert_eq!(cluster.node(*node).len(id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_copy_that_never_answers_its_commit_is_given_up_once_the_quorum_committed() {
    let cluster = LocalCluster::start(3, 3, 2).await;
    let (silent, _) = cluster.nodes[0].clone();
    cluster.node(silent).inject(Fault::StallCommit);
    let id = ChunkId::random();
    let data = pattern(BLOCK_SIZE + 7);
    let started = std::time::Instant::now();
    let written = tokio::time::timeout(
        Duration::from_secs(30),
        write_chunk(&cluster.store, id, &data, 4096),
    )
    .await
    .expect("the commit waited for the copy that never answers");
    assert_eq!(written.unwrap(), data.len() as u64);
    // The two others answered at once, so the silent one was given the stall timeout.
    let took = started.elapsed();
    assert!(
        took >= STALL_TIMEOUT && took < 10 * STALL_TIMEOUT,
        "{took:?}"
    );
    let answered: Vec<Uuid> = cluster.nodes[1..].iter().map(|(id, _)| *id).collect();
    assert_eq!(holders(&cluster, id).await, sorted(answered));
    let len = data.len() as u64;
    assert_eq!(get(&cluster.store, id, 0..len).await.unwrap(), data);
}

#[tokio::test]
async fn the_next_node_stands_in_for_one_that_refuses_a_chunk() {
    // All three copies are needed, so the write succeeds only through the stand-in.
    let cluster = LocalCluster::start(4, 3, 3).await;
    let id = ChunkId::random();
    let ranked: Vec<Uuid> = (cluster.store.targets(id, usize::MAX, &[]).await.unwrap())
        .iter()
        .map(|node| node.info.id)
        .collect();
    assert_eq!(ranked.len(), 4);
    cluster.node(ranked[0]).inject(Fault::Refuse);
    let data = pattern(BLOCK_SIZE + 3);
    write_chunk(&cluster.store, id, &data, 1000).await.unwrap();
    assert_eq!(holders(&cluster, id).await, sorted(ranked[1..].to_vec()));
    assert_eq!(cluster.node(ranked[0]).len(id).await.unwrap(), None);
    let len = data.len() as u64;
    assert_eq!(get(&cluster.store, id, 0..len).await.unwrap(), data);
}

#[tokio::test]
async fn without_a_node_to_stand_in_a_refused_chunk_fails_and_leaves_nothing() {
    let cluster = LocalCluster::start(3, 3, 3).await;
    let (refusing, _) = cluster.nodes[1];
    cluster.node(refusing).inject(Fault::Refuse);
    let id = ChunkId::random();
    let result = write_chunk(&cluster.store, id, &pattern(10), 10).await;
    assert!(
        matches!(result, Err(ChunkError::Unavailable(_))),
        "{result:?}"
    );
    assert!(!holders(&cluster, id).await.contains(&refusing));
    assert!(stored_nowhere(&cluster, id).await);
}

/// Writes a chunk to every node, breaks the replica a read goes to first with `fault`, and
/// checks that a read from `start` serves the chunk's bytes, the second replica asked from the
/// exact byte where the first broke.
async fn fails_over_at(fault: Fault, at: u64, start: u64) -> (LocalCluster, ChunkId, Vec<Uuid>) {
    let cluster = LocalCluster::start(3, 3, 3).await;
    let id = ChunkId::random();
    let data = pattern(4 * BLOCK_SIZE + 11);
    let len = data.len() as u64;
    write_chunk(&cluster.store, id, &data, 3000).await.unwrap();
    let order = preference(&cluster, id);
    cluster.node(order[0]).inject(fault);
    let served = get(&cluster.store, id, start..len).await.unwrap();
    assert!(
        served == data[start as usize..],
        "{fault:?}: other bytes served"
    );
    assert_eq!(
        cluster.node(order[0]).reads(),
        vec![start..len],
        "{fault:?}"
    );
    assert_eq!(cluster.node(order[1]).reads(), vec![at..len], "{fault:?}");
    assert!(cluster.node(order[2]).reads().is_empty(), "{fault:?}");
    (cluster, id, order)
}

#[tokio::test]
async fn a_read_fails_over_at_the_byte_where_a_replica_failed() {
    let at = BLOCK + 17;
    fails_over_at(Fault::FailRead { at }, at, 0).await;
    fails_over_at(Fault::FailRead { at }, at, 5).await;
    // Before any byte was served.
    fails_over_at(Fault::FailRead { at: 5 }, 5, 5).await;
}

#[tokio::test]
async fn a_read_fails_over_at_the_byte_where_a_replica_ended_short() {
    let at = 3 * BLOCK;
    fails_over_at(Fault::ShortRead { at }, at, 1).await;
}

#[tokio::test]
async fn a_read_fails_over_at_the_byte_where_a_replica_stalled() {
    let at = 2 * BLOCK - 1;
    let started = Instant::now();
    fails_over_at(Fault::StallRead { at }, at, 0).await;
    assert!(started.elapsed() >= crate::datanode::fault::STALL_TIMEOUT);
}

#[tokio::test]
async fn a_corrupt_replica_is_read_past_and_removed_once_another_served_the_bytes() {
    let at = 2 * BLOCK;
    let (cluster, id, order) = fails_over_at(Fault::CorruptRead { at }, at, 0).await;
    // The read ends only after the corrupt copy was dealt with: repair makes a new one.
    assert_eq!(holders(&cluster, id).await, sorted(order[1..].to_vec()));
    assert_eq!(cluster.node(order[0]).len(id).await.unwrap(), None);
}

#[tokio::test]
async fn a_read_every_replica_fails_in_transit_is_unavailable() {
    let cluster = LocalCluster::start(2, 2, 2).await;
    let id = ChunkId::random();
    write_chunk(&cluster.store, id, &pattern(2 * BLOCK_SIZE), 4096)
        .await
        .unwrap();
    for (node, _) in &cluster.nodes {
        cluster.node(*node).inject(Fault::FailRead { at: BLOCK });
    }
    // Unavailable is a 503 the client retries; a bare I/O error would be a 500.
    let result = get(&cluster.store, id, 0..2 * BLOCK).await;
    assert!(
        matches!(result, Err(ChunkError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_last_copy_of_a_chunk_is_kept_however_corrupt() {
    let cluster = LocalCluster::start(1, 1, 1).await;
    let (node, _) = cluster.nodes[0];
    let id = ChunkId::random();
    let data = pattern(2 * BLOCK_SIZE);
    write_chunk(&cluster.store, id, &data, 4096).await.unwrap();
    cluster.node(node).inject(Fault::CorruptRead { at: BLOCK });
    let result = get(&cluster.store, id, 0..2 * BLOCK).await;
    assert!(
        matches!(result, Err(ChunkError::Corrupt { offset, .. }) if offset == BLOCK),
        "{result:?}"
    );
    assert_eq!(holders(&cluster, id).await, vec![node]);
    assert_eq!(cluster.node(node).len(id).await.unwrap(), Some(2 * BLOCK));
}

#[tokio::test]
async fn each_failing_replica_hands_over_at_its_own_byte() {
    let cluster = LocalCluster::start(3, 3, 3).await;
    let id = ChunkId::random();
    let data = pattern(3 * BLOCK_SIZE);
    let len = data.len() as u64;
    write_chunk(&cluster.store, id, &data, 5000).await.unwrap();
    let order = preference(&cluster, id);
    cluster.node(order[0]).inject(Fault::FailRead { at: 100 });
    cluster
        .node(order[1])
        .inject(Fault::ShortRead { at: BLOCK + 1 });
    assert!(get(&cluster.store, id, 0..len).await.unwrap() == data);
    assert_eq!(cluster.node(order[1]).reads(), vec![100..len]);
    assert_eq!(cluster.node(order[2]).reads(), vec![BLOCK + 1..len]);
    // Every replica failing is an error, not a short chunk.
    cluster
        .node(order[2])
        .inject(Fault::FailRead { at: 2 * BLOCK });
    assert!(get(&cluster.store, id, 0..len).await.is_err());
}

#[tokio::test]
async fn a_copy_lost_after_its_acknowledgement_is_read_from_another() {
    let cluster = LocalCluster::start(3, 3, 2).await;
    let id = ChunkId::random();
    let order = preference(&cluster, id);
    cluster.node(order[0]).inject(Fault::LoseCommitted);
    let data = pattern(BLOCK_SIZE + 100);
    let len = data.len() as u64;
    assert_eq!(
        write_chunk(&cluster.store, id, &data, 4096).await.unwrap(),
        len
    );
    // Acknowledged and recorded, but gone from the disk.
    assert!(holders(&cluster, id).await.contains(&order[0]));
    assert_eq!(cluster.node(order[0]).len(id).await.unwrap(), None);
    assert_eq!(cluster.store.len(id).await.unwrap(), Some(len));
    assert!(get(&cluster.store, id, 0..len).await.unwrap() == data);
    assert_eq!(cluster.node(order[1]).reads(), vec![0..len]);
}

#[tokio::test]
async fn a_writer_dropped_before_commit_leaves_nothing_on_any_node() {
    let cluster = LocalCluster::start(3, 3, 2).await;
    let (failing, _) = cluster.nodes[2];
    cluster.node(failing).inject(Fault::FailWrite { at: 10 });
    for size in [0, 10, 3 * BLOCK_SIZE + 1] {
        let id = ChunkId::random();
        let mut writer = cluster.store.create(id, Caching::Keep).await.unwrap();
        for part in pattern(size).chunks(4096) {
            writer.write(Bytes::copy_from_slice(part)).await.unwrap();
        }
        drop(writer);
        assert!(stored_nowhere(&cluster, id).await, "size {size}");
        assert_eq!(cluster.store.len(id).await.unwrap(), None);
        assert!(cluster.store.list(None, 10).await.unwrap().is_empty());
    }
}

#[test]
fn a_metadata_store_out_of_reach_makes_chunk_storage_unavailable_not_failed() {
    let lost = crate::meta::MetaError::Database(sqlx::Error::PoolTimedOut);
    assert!(matches!(meta_error(lost), ChunkError::Unavailable(_)));
    let corrupt = crate::meta::MetaError::Corrupt("bad row".to_owned());
    assert!(matches!(meta_error(corrupt), ChunkError::Io(_)));
}
