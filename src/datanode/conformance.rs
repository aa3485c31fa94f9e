//! The behaviour every `ChunkStore` shares, as one suite each backend's tests run: the local
//! disk directly, a remote data node through its HTTP protocol, and the replicated store over
//! local disks in this process. `run_all` expects an empty store and leaves it empty. What a
//! second write of a stored id does differs: a data node refuses it (`Rewrite::Refused`), a
//! store on this machine's disk replaces the chunk.

use std::ops::Range;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::chunk::{BlockSums, ChunkDigest, ChunkId};
use crate::datanode::local::BLOCK_SIZE;
use crate::datanode::{Caching, ChunkError, ChunkStore};

const BLOCK: u64 = BLOCK_SIZE as u64;

/// Bytes that differ at every offset, so a misplaced byte cannot go unnoticed.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Writes `data` as a new chunk in pieces whose sizes cycle through `pieces`, and commits it.
pub async fn put(store: &dyn ChunkStore, data: &[u8], pieces: &[usize]) -> ChunkId {
    put_with(store, data, pieces, Caching::Keep).await
}

/// `put`, written as `caching` says.
pub async fn put_with(
    store: &dyn ChunkStore,
    data: &[u8],
    pieces: &[usize],
    caching: Caching,
) -> ChunkId {
    let id = ChunkId::random();
    put_as(store, id, data, pieces, caching).await;
    id
}

async fn put_as(
    store: &dyn ChunkStore,
    id: ChunkId,
    data: &[u8],
    pieces: &[usize],
    caching: Caching,
) {
    let mut writer = store.create(id, caching).await.unwrap();
    let mut at = 0;
    for size in pieces.iter().cycle() {
        if at == data.len() {
            break;
        }
        let end = (at + size).min(data.len());
        writer
            .write(Bytes::copy_from_slice(&data[at..end]))
            .await
            .unwrap();
        at = end;
    }
    assert_eq!(writer.commit().await.unwrap(), data.len() as u64);
}

/// Reads `range` of a chunk into memory.
pub async fn get(
    store: &dyn ChunkStore,
    id: ChunkId,
    range: Range<u64>,
) -> Result<Vec<u8>, ChunkError> {
    get_checked(store, id, range, None).await
}

/// Reads `range` of a chunk into memory, judged against `expected`.
pub async fn get_checked(
    store: &dyn ChunkStore,
    id: ChunkId,
    range: Range<u64>,
    expected: Option<ChunkDigest>,
) -> Result<Vec<u8>, ChunkError> {
    let mut stream = store.read(id, range, expected).await?;
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.extend_from_slice(&item?);
    }
    Ok(out)
}

/// The error of a read that is to fail, whether the store reports it when the read starts or as
/// the stream's first item (a replicated store learns it from a replica once streaming began).
async fn read_error(
    store: &dyn ChunkStore,
    id: ChunkId,
    range: Range<u64>,
    expected: Option<ChunkDigest>,
) -> Option<ChunkError> {
    match store.read(id, range, expected).await {
        Err(e) => Some(e),
        Ok(mut stream) => stream.next().await?.err(),
    }
}

/// How a store answers a read of a chunk it has no copy of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absent {
    /// It knows the chunk is not there: a single disk or data node.
    NotFound,
    /// It knows only that no node is recorded to hold a copy: the replicated store, for which
    /// a chunk an object still refers to is lost or being collected, which a client may retry.
    Unavailable,
}

/// What a store does with a write of an id it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rewrite {
    Replaces,
    /// A data node: chunks never change (the write fails with `AlreadyExists`).
    Refused,
}

pub async fn run_all(store: &dyn ChunkStore, absent: Absent, rewrite: Rewrite) {
    round_trips_every_boundary_size(store).await;
    reads_every_range_shape(store).await;
    reads_fail_against_another_digest(store).await;
    nothing_is_visible_before_commit(store).await;
    dropped_writers_leave_nothing(store).await;
    missing_chunks_are_not_found(store, absent).await;
    match rewrite {
        Rewrite::Replaces => overwrites_replace_the_chunk(store).await,
        Rewrite::Refused => rewrites_are_refused(store).await,
    }
    lists_in_id_order_page_by_page(store).await;
    assert!(store.list(None, 10).await.unwrap().is_empty());
}

async fn round_trips_every_boundary_size(store: &dyn ChunkStore) {
    for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
        let data = pattern(len as usize);
        let id = put(store, &data, &[1, 4097, 70_000, 13]).await;
        assert_eq!(store.len(id).await.unwrap(), Some(len));
        assert_eq!(get(store, id, 0..len).await.unwrap(), data, "len {len}");
        store.delete(id).await.unwrap();
    }
}

async fn reads_every_range_shape(store: &dyn ChunkStore) {
    let len = 3 * BLOCK + 5;
    let data = pattern(len as usize);
    let id = put(store, &data, &[9999]).await;
    for expected in [None, Some(digest_of(&data))] {
        for range in [
            0..1,
            10..20,
            BLOCK - 3..BLOCK + 4,
            BLOCK - 1..BLOCK,
            BLOCK..BLOCK + 1,
            2 * BLOCK..3 * BLOCK,
            len - 1..len,
            3 * BLOCK..len,
            0..len,
        ] {
            let want = &data[range.start as usize..range.end as usize];
            assert_eq!(
                get_checked(store, id, range.clone(), expected)
                    .await
                    .unwrap(),
                want,
                "{range:?} {expected:?}"
            );
        }
    }
    for empty in [0..0, BLOCK..BLOCK, len..len] {
        assert!(
            get(store, id, empty.clone()).await.unwrap().is_empty(),
            "{empty:?}"
        );
    }
    // A reversed range is what a caller's bad arithmetic produces; it must not read.
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 20..10;
    for outside in [0..len + 1, len + 1..len + 1, len..len + 7, reversed] {
        let result = read_error(store, id, outside.clone(), None).await;
        assert!(
            matches!(
                result,
                Some(ChunkError::OutOfRange { id: at, start, end, size })
                    if at == id && start == outside.start && end == outside.end && size == len
            ),
            "{outside:?}"
        );
    }
    store.delete(id).await.unwrap();
}

/// The digest the gateway records for a chunk of `data`.
pub fn digest_of(data: &[u8]) -> ChunkDigest {
    let mut sums = BlockSums::new();
    sums.update(data);
    sums.digest()
}

/// A copy judged against the digest of other bytes (as when a copy was replaced by same-length
/// bytes with valid CRCs of their own) is corrupt, whatever range is read, and no byte of it
/// is yielded.
async fn reads_fail_against_another_digest(store: &dyn ChunkStore) {
    let len = 2 * BLOCK + 5;
    let data = pattern(len as usize);
    let id = put(store, &data, &[BLOCK_SIZE]).await;
    let mut other = data.clone();
    other[(BLOCK + 2) as usize] ^= 0x01;
    for expected in [digest_of(&other), digest_of(&data[..len as usize - 1])] {
        for range in [0..1, BLOCK + 2..BLOCK + 3, 2 * BLOCK..len, 0..len] {
            match store.read(id, range.clone(), Some(expected)).await {
                Err(e) => assert!(
                    matches!(e, ChunkError::Corrupt { id: at, .. } if at == id),
                    "{range:?}: {e}"
                ),
                Ok(mut stream) => match stream.next().await {
                    Some(Err(ChunkError::Corrupt { id: at, .. })) if at == id => {}
                    other => panic!("{range:?}: {other:?}"),
                },
            }
        }
    }
    // The copy itself is intact, and still served against its own digest.
    let right = Some(digest_of(&data));
    assert_eq!(get_checked(store, id, 0..len, right).await.unwrap(), data);
    store.delete(id).await.unwrap();
}

async fn nothing_is_visible_before_commit(store: &dyn ChunkStore) {
    let id = ChunkId::random();
    let data = pattern(2 * BLOCK_SIZE + 1);
    let mut writer = store.create(id, Caching::Keep).await.unwrap();
    writer.write(Bytes::from(data.clone())).await.unwrap();
    assert_eq!(store.len(id).await.unwrap(), None);
    assert!(store.list(None, 10).await.unwrap().is_empty());
    assert!(matches!(
        read_error(store, id, 0..1, None).await,
        Some(ChunkError::NotFound(missing)) if missing == id
    ));
    assert_eq!(writer.commit().await.unwrap(), data.len() as u64);
    assert_eq!(store.list(None, 10).await.unwrap(), vec![id]);
    assert_eq!(get(store, id, 0..data.len() as u64).await.unwrap(), data);
    store.delete(id).await.unwrap();
}

async fn dropped_writers_leave_nothing(store: &dyn ChunkStore) {
    for size in [0, 10, 3 * BLOCK_SIZE] {
        let id = ChunkId::random();
        let mut writer = store.create(id, Caching::Keep).await.unwrap();
        if size > 0 {
            writer.write(Bytes::from(pattern(size))).await.unwrap();
        }
        drop(writer);
        assert_eq!(store.len(id).await.unwrap(), None, "size {size}");
        assert!(store.list(None, 10).await.unwrap().is_empty());
    }
}

async fn missing_chunks_are_not_found(store: &dyn ChunkStore, absent: Absent) {
    let id = put(store, &pattern(10), &[3]).await;
    store.delete(id).await.unwrap();
    store.delete(id).await.unwrap();
    assert_eq!(store.len(id).await.unwrap(), None);
    for range in [0..1, 0..0] {
        let error = read_error(store, id, range.clone(), None).await;
        let answered = match absent {
            Absent::NotFound => {
                matches!(error, Some(ChunkError::NotFound(missing)) if missing == id)
            }
            Absent::Unavailable => matches!(error, Some(ChunkError::Unavailable(_))),
        };
        assert!(answered, "{range:?}: {error:?}");
    }
    let never = ChunkId::random();
    assert_eq!(store.len(never).await.unwrap(), None);
    store.delete(never).await.unwrap();
}

async fn overwrites_replace_the_chunk(store: &dyn ChunkStore) {
    let id = put(store, &pattern(BLOCK_SIZE + 9), &[BLOCK_SIZE]).await;
    let shorter: Vec<u8> = pattern(100).into_iter().rev().collect();
    put_as(store, id, &shorter, &[7], Caching::Keep).await;
    assert_eq!(store.len(id).await.unwrap(), Some(100));
    assert_eq!(get(store, id, 0..100).await.unwrap(), shorter);
    assert_eq!(store.list(None, 10).await.unwrap(), vec![id]);
    store.delete(id).await.unwrap();
}

async fn rewrites_are_refused(store: &dyn ChunkStore) {
    let data = pattern(BLOCK_SIZE + 9);
    let id = put(store, &data, &[BLOCK_SIZE]).await;
    for other in [pattern(100), vec![0u8; BLOCK_SIZE + 9]] {
        let result = async {
            let mut writer = store.create(id, Caching::Keep).await?;
            writer.write(Bytes::from(other)).await?;
            writer.commit().await
        };
        let result = result.await;
        assert!(
            matches!(&result, Err(ChunkError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists),
            "{result:?}"
        );
    }
    assert_eq!(get(store, id, 0..data.len() as u64).await.unwrap(), data);
    assert_eq!(store.list(None, 10).await.unwrap(), vec![id]);
    store.delete(id).await.unwrap();
}

async fn lists_in_id_order_page_by_page(store: &dyn ChunkStore) {
    let mut ids = vec![
        ChunkId(uuid::Uuid::from_u128(0)),
        ChunkId(uuid::Uuid::from_u128(u128::MAX)),
        ChunkId(uuid::Uuid::from_u128(0x42 << 120)),
        ChunkId(uuid::Uuid::from_u128((0x42 << 120) | 1)),
        ChunkId(uuid::Uuid::from_u128((0x42 << 120) | (1 << 64))),
    ];
    ids.extend((0..12).map(|_| ChunkId::random()));
    for id in &ids {
        put_as(store, *id, b"x", &[1], Caching::Keep).await;
    }
    // An upload in progress is not part of the inventory.
    let _open_writer = store
        .create(ChunkId::random(), Caching::Keep)
        .await
        .unwrap();
    ids.sort();

    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(after, 4).await.unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = Some(*last);
        listed.extend(page);
    }
    assert_eq!(listed, ids);
    assert_eq!(store.list(Some(ids[2]), 2).await.unwrap(), &ids[3..5]);
    assert_eq!(store.list(None, 1).await.unwrap(), &ids[..1]);
    assert!(
        store
            .list(Some(ids[ids.len() - 1]), 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list(None, 0).await.unwrap().is_empty());
    for id in &ids {
        store.delete(*id).await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datanode::fault::LocalCluster;
    use crate::datanode::local::LocalChunkStore;

    #[tokio::test]
    async fn local_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalChunkStore::open(dir.path().join("chunks"))
            .await
            .unwrap();
        run_all(&store, Absent::NotFound, Rewrite::Replaces).await;
        assert_eq!(store.remove_temp_files().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn replicated_store_over_local_disks_conforms() {
        // More nodes than replicas, so that chunks land on different nodes and listing merges.
        let cluster = LocalCluster::start(4, 2, 2).await;
        run_all(&cluster.store, Absent::Unavailable, Rewrite::Replaces).await;
        for (_, node) in &cluster.nodes {
            assert!(node.list(None, 10).await.unwrap().is_empty());
        }
    }
}
