//! End-to-end chunk integrity: a committed chunk's file replaced on disk by same-length bytes
//! that carry valid block CRCs and a valid footer (what a data node accepting a rewrite of a
//! chunk id would hold) is told apart from the chunk by the digest the gateway recorded when it
//! wrote it. In a cluster, with one good replica left, GETs (whole and ranged) return the
//! original bytes, `cairn admin fsck` reports the replaced replicas corrupt and repair restores
//! them; with none left, GETs fail with an error and never send a wrong byte, and scrub keeps
//! the damaged copies. On `cairn server` a replaced file fails its reads the same way.

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn::chunk::ChunkId;
use cairn::datanode::local::LocalChunkStore;
use cairn::datanode::{Caching, ChunkStore};
use cairn_test_support::*;
use http::StatusCode;

cairn_test_support::on_sqlite_and_postgres!(
    replaced_replicas_are_read_around_reported_and_repaired
);

const BUCKET: &str = "integrity";
/// Five chunks of 1 MiB (the test servers' and clusters' chunk size), the last one short.
const OBJECT_SIZE: usize = 4 * MIB + 12_345;
/// Long enough that a replacement and the fsck after it fit between two scrubs, short enough
/// that repair follows soon after.
const SCRUB_INTERVAL: &str = "10s";

/// Where the chunk file of each chunk of the object lies, by its index in the object.
type ChunkFiles = BTreeMap<usize, PathBuf>;

/// Which chunk of `data` (cut into 1 MiB chunks) a chunk file holds, from its first bytes.
fn chunk_index(path: &Path, data: &[u8]) -> usize {
    let head = fs::read(path).expect("read chunk file")[..64].to_vec();
    (0..data.len().div_ceil(MIB))
        .find(|&i| data[i * MIB..].starts_with(&head))
        .unwrap_or_else(|| panic!("{} holds no chunk of the object", path.display()))
}

fn by_index(files: BTreeMap<String, PathBuf>, data: &[u8]) -> ChunkFiles {
    files
        .into_values()
        .map(|path| (chunk_index(&path, data), path))
        .collect()
}

/// The committed chunk files under a `cairn server` data directory.
fn server_chunk_files(data_dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut files = BTreeMap::new();
    for prefix in fs::read_dir(data_dir.join("chunks")).expect("chunks directory") {
        for entry in fs::read_dir(prefix.expect("entry").path()).expect("prefix directory") {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                files.insert(name, entry.path());
            }
        }
    }
    files
}

/// Replaces a chunk file by a valid chunk file of the same length holding other bytes (the
/// chunk's data with eight bytes flipped), written by the library's own chunk writer so that its
/// block CRCs, table CRC and footer all check out. Returns the original file.
async fn replace_chunk_file(path: &Path) -> Vec<u8> {
    let original = fs::read(path).expect("read chunk file");
    // The footer's data length: bytes 12..20 of the last 32.
    let at = original.len() - 20;
    let data_len = u64::from_le_bytes(original[at..at + 8].try_into().unwrap()) as usize;
    let mut data = original[..data_len].to_vec();
    for b in &mut data[100..108] {
        *b ^= 0xff;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalChunkStore::open(dir.path().join("chunks"))
        .await
        .expect("local chunk store");
    let id = ChunkId::random();
    let mut writer = store.create(id, Caching::Keep).await.expect("chunk writer");
    writer.write(Bytes::from(data)).await.expect("write chunk");
    writer.commit().await.expect("commit chunk");
    let forged = fs::read(store.path_of(id)).expect("read forged chunk");
    assert_eq!(
        forged.len(),
        original.len(),
        "the forgery has the same length"
    );
    assert_ne!(forged, original);
    fs::write(path, &forged).expect("replace chunk file");
    original
}

/// How a GET that must not succeed went: its status, the bytes it sent and whether its body
/// ended in an error.
struct FailedGet {
    status: StatusCode,
    body: Vec<u8>,
    cut: bool,
}

async fn get_raw(client: &S3Client, key: &str, range: Option<Range<usize>>) -> FailedGet {
    let header = range.map(|r| format!("bytes={}-{}", r.start, r.end - 1));
    let headers: Vec<(&str, &str)> = header.iter().map(|h| ("range", h.as_str())).collect();
    let mut download = client.get_streaming_with(BUCKET, key, &headers).await;
    let status = download.status();
    let mut body = Vec::new();
    let cut = loop {
        match download.chunk().await {
            Ok(Some(piece)) => body.extend_from_slice(&piece),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    FailedGet { status, body, cut }
}

/// A GET of `range` of `data` that no good copy can serve: an error status before any byte of
/// the object, or a response cut short after only bytes that are right.
/// With chunks 0 and 3 of "precious" beyond reading: a whole GET fails before its response
/// starts, no range returns a wrong byte, and chunks 1 and 2 still serve.
async fn assert_reads_around_lost_chunks(client: &S3Client, data: &[u8]) {
    let first = get_raw(client, "precious", None).await;
    assert!(
        first.status.is_server_error(),
        "a GET whose first chunk cannot be read fails before its response: {}",
        first.status
    );
    for range in [
        0..data.len(),
        10..20,
        3 * MIB + 10..3 * MIB + 5000,
        MIB..4 * MIB,
        2 * MIB - 1..data.len(),
    ] {
        assert_never_wrong(client, "precious", data, range).await;
    }
    let resp = client
        .request(http::Method::GET, &object_path(BUCKET, "precious"))
        .header("range", &format!("bytes={}-{}", MIB + 1, 3 * MIB - 1))
        .send()
        .await;
    resp.assert_status(StatusCode::PARTIAL_CONTENT);
    assert!(resp.body == data[MIB + 1..3 * MIB], "chunks 1 and 2 intact");
}

async fn assert_never_wrong(client: &S3Client, key: &str, data: &[u8], range: Range<usize>) {
    let whole = range.start == 0 && range.end == data.len();
    let asked = (!whole).then_some(range.clone());
    let got = get_raw(client, key, asked).await;
    let want = &data[range.clone()];
    if got.status.is_success() {
        assert!(
            got.cut && got.body.len() < want.len() && want.starts_with(&got.body),
            "{range:?}: {} answered with {} bytes (cut: {}) where {} are wanted, not all right",
            got.status,
            got.body.len(),
            got.cut,
            want.len()
        );
    } else {
        assert!(
            got.status.is_server_error(),
            "{range:?}: answered {}",
            got.status
        );
        let text = String::from_utf8_lossy(&got.body);
        assert!(
            text.contains("<Error>"),
            "{range:?}: an S3 error body: {text}"
        );
    }
}

async fn assert_ranges(client: &S3Client, key: &str, data: &[u8]) {
    client.assert_object(BUCKET, key, data).await;
    for range in [
        0..10,
        MIB - 5..MIB + 5,
        MIB + 100..MIB + 108,
        2 * MIB + 77..4 * MIB + 3,
        data.len() - 1..data.len(),
    ] {
        let resp = client
            .request(http::Method::GET, &object_path(BUCKET, key))
            .header("range", &format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        resp.assert_status(StatusCode::PARTIAL_CONTENT);
        assert!(resp.body == data[range.clone()], "{range:?} differs");
    }
}

/// Waits for the coordinator to finish a scrub it starts after this call, so that what the test
/// does next has a whole scrub interval before the next one.
async fn after_next_scrub(gateway: &Gateway) {
    let before = gateway.log_lines("scrub finished").len();
    let started = Instant::now();
    while gateway.log_lines("scrub finished").len() == before {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no scrub finished within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn replaced_replicas_are_read_around_reported_and_repaired(backend: Backend) {
    // Two nodes and R=2: every chunk on both, so each node's copy is in turn the one replaced,
    // and each chunk's preferred copy is replaced in one of the two rounds.
    let spec = Spec {
        scrub_interval: Some(SCRUB_INTERVAL),
        ..Spec::new(backend, 2)
    };
    let cluster = Cluster::start(spec).await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    let data = random_bytes(16, OBJECT_SIZE);
    client.put_ok(BUCKET, "precious", &data).await;
    let chunks = data.len().div_ceil(MIB);
    let files: Vec<ChunkFiles> = cluster
        .nodes
        .iter()
        .map(|node| by_index(node.chunk_files(), &data))
        .collect();
    for (node, held) in files.iter().enumerate() {
        assert_eq!(held.len(), chunks, "node {node} holds every chunk");
    }
    let gateway = &cluster.gateways[0];

    for (node, held) in files.iter().enumerate() {
        after_next_scrub(gateway).await;
        let mut originals = Vec::new();
        for path in held.values() {
            originals.push((path, replace_chunk_file(path).await));
        }
        let fsck = cluster.fsck().await;
        assert_eq!(
            fsck.corrupt, chunks as u64,
            "[{backend:?}] fsck reports every replaced copy on node {node}:\n{}",
            fsck.stdout
        );
        assert!(fsck.success && fsck.unreadable == 0, "{}", fsck.stdout);

        assert_ranges(&client, "precious", &data).await;

        let (_, repaired) = cluster
            .wait_clean(chunks as u64, Duration::from_secs(60))
            .await;
        for (path, original) in &originals {
            let now = fs::read(path).expect("the copy is back on its node");
            assert!(now == *original, "{} holds the chunk again", path.display());
        }
        println!(
            "[{backend:?}] node {node}: {chunks} replaced copies reported by fsck, read around, \
             and repaired; fsck clean after {}",
            secs(repaired)
        );
    }
    let switched = gateway
        .log_lines("replica failed mid-read; switching")
        .len();
    let by_scrub = gateway.log_lines("scrub found a corrupt replica").len();
    println!(
        "[{backend:?}] reads switched replica {switched} times, scrub found {by_scrub} copies"
    );
    assert!(
        switched >= chunks,
        "every chunk's preferred copy was replaced in one round and read around"
    );

    // Every copy of two chunks replaced: the first (so a whole GET fails before its response
    // starts) and the fourth.
    after_next_scrub(gateway).await;
    let mut forged = Vec::new();
    for held in &files {
        for index in [0, 3] {
            replace_chunk_file(&held[&index]).await;
            forged.push((held[&index].clone(), fs::read(&held[&index]).unwrap()));
        }
    }
    assert_reads_around_lost_chunks(&client, &data).await;

    let fsck = cluster.fsck().await;
    assert_eq!(fsck.corrupt, 4, "{}", fsck.stdout);
    assert_eq!(fsck.unreadable, 2, "{}", fsck.stdout);
    assert!(!fsck.success, "fsck fails while an object is unreadable");
    // Scrub keeps copies that have no good sibling: they may be all there is to salvage.
    after_next_scrub(gateway).await;
    after_next_scrub(gateway).await;
    for (path, bytes) in &forged {
        assert!(
            fs::read(path).is_ok_and(|now| now == *bytes),
            "{} kept",
            path.display()
        );
    }
    println!(
        "[{backend:?}] with no good copy of 2 chunks: GETs fail, never a wrong byte; fsck: \
         {} corrupt, {} unreadable",
        fsck.corrupt, fsck.unreadable
    );
}

#[tokio::test]
async fn a_replaced_chunk_file_fails_reads_on_the_server() {
    let (server, client) = server_with_bucket(BUCKET).await;
    let data = random_bytes(17, OBJECT_SIZE);
    client.put_ok(BUCKET, "precious", &data).await;
    let files = by_index(server_chunk_files(&server.data), &data);
    assert_eq!(files.len(), data.len().div_ceil(CHUNK));
    for index in [0, 3] {
        replace_chunk_file(&files[&index]).await;
    }
    assert_reads_around_lost_chunks(&client, &data).await;
    println!("cairn server: 2 of 5 chunk files replaced; every read of them failed, none wrong");
}
