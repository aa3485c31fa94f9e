//! Secrets and bytes are the owner's alone: the data directories of `cairn server` and
//! `cairn datanode` and their chunk directories are 0700; `meta.db` (every secret key), its WAL
//! and shared memory, `credentials` and every chunk file are 0600, as is a `meta.db` named by a
//! `sqlite://` URL. A store made with looser modes is tightened when the server starts on it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cairn_test_support::*;

const BUCKET: &str = "modes";

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn assert_mode(path: &Path, expected: u32) {
    assert_eq!(
        mode_of(path),
        expected,
        "{} has mode {:o}, not {expected:o}",
        path.display(),
        mode_of(path)
    );
}

/// The chunk directory and its prefix directories (0700), and every file in them (0600);
/// returns how many files there were.
fn assert_chunks_private(chunks: &Path) -> usize {
    assert_mode(chunks, 0o700);
    let prefixes: Vec<PathBuf> = fs::read_dir(chunks)
        .expect("read the chunk directory")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(prefixes.len(), 256, "prefix directories");
    let mut files = 0;
    for prefix in prefixes {
        assert_mode(&prefix, 0o700);
        for entry in fs::read_dir(&prefix).expect("read a prefix directory") {
            assert_mode(&entry.expect("entry").path(), 0o600);
            files += 1;
        }
    }
    files
}

/// `meta.db` with its `-wal` and `-shm`, which exist while the server has the database open.
fn meta_files(data: &Path) -> [PathBuf; 3] {
    ["meta.db", "meta.db-wal", "meta.db-shm"].map(|name| data.join(name))
}

#[tokio::test]
async fn a_new_server_keeps_its_store_private() {
    let server = TestServer::start_with_generated_credentials().await;
    let secret = server
        .stdout_lines()
        .iter()
        .find_map(|line| line.strip_prefix("Secret access key:"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the generated secret is printed")
        .to_owned();
    let client = server.client_with(&server.access_key_id, &secret);
    client.create_bucket(BUCKET).await;
    let data = random_bytes(1, 3 * CHUNK + 1);
    client.put_ok(BUCKET, "object", &data).await;

    assert_mode(&server.data, 0o700);
    for file in meta_files(&server.data) {
        assert_mode(&file, 0o600);
    }
    assert_mode(&server.data.join("credentials"), 0o600);
    assert_mode(&server.data.join("lock"), 0o600);
    assert_eq!(
        assert_chunks_private(&server.chunks_dir()),
        4,
        "chunk files"
    );
    assert!(
        !server.log_text().contains("tightened"),
        "a new store needs no tightening: {}",
        server.log_text()
    );
    client.assert_object(BUCKET, "object", &data).await;
}

#[tokio::test]
async fn a_server_tightens_an_older_store_at_start() {
    let mut server = TestServer::start().await;
    let client = server.client();
    client.create_bucket(BUCKET).await;
    let data = random_bytes(2, CHUNK + 1);
    client.put_ok(BUCKET, "object", &data).await;
    // Killed, as a crash would end it, so that the WAL and shared memory files stay behind.
    server.kill().await;

    let [db, wal, shm] = meta_files(&server.data);
    assert!(
        wal.exists() && shm.exists(),
        "a killed server leaves its WAL"
    );
    set_mode(&server.data, 0o755);
    for file in [&db, &wal, &shm] {
        set_mode(file, 0o644);
    }
    let chunks = server.chunks_dir();
    set_mode(&chunks, 0o755);
    let prefix = server.chunk_files()[0]
        .parent()
        .expect("a chunk file's directory")
        .to_owned();
    set_mode(&prefix, 0o755);

    server.restart().await;
    let client = server.client();
    assert_mode(&server.data, 0o700);
    for file in [&db, &wal, &shm] {
        assert_mode(file, 0o600);
    }
    assert_mode(&chunks, 0o700);
    assert_mode(&prefix, 0o700);
    let log = server.log_text();
    for what in [
        "tightened the data directory's mode",
        "tightened the metadata file's mode",
        "tightened the modes of chunk directories",
    ] {
        assert!(log.contains(what), "no line {what:?} in the log: {log}");
    }
    client.assert_object(BUCKET, "object", &data).await;
}

/// A cluster of one data node (SQLite metadata) holding `BUCKET/object`: `len` random bytes of
/// `seed`, which it returns.
async fn one_node_cluster_holding(seed: u64, len: usize) -> (Cluster, Vec<u8>) {
    let spec = Spec {
        replicas: 1,
        write_quorum: 1,
        ..Spec::new(Backend::Sqlite, 1)
    };
    let cluster = Cluster::start(spec).await;
    let client = cluster.client();
    client.create_bucket(BUCKET).await;
    let data = random_bytes(seed, len);
    client.put_ok(BUCKET, "object", &data).await;
    (cluster, data)
}

#[tokio::test]
async fn a_data_node_keeps_its_store_private() {
    let (cluster, data) = one_node_cluster_holding(3, 2 * CHUNK + 1).await;
    let client = cluster.client();

    let node = &cluster.nodes[0];
    assert_mode(&node.dir, 0o700);
    assert_eq!(node.chunk_files().len(), 3, "committed chunk files");
    assert_eq!(assert_chunks_private(&node.dir.join("chunks")), 3, "files");
    client.assert_object(BUCKET, "object", &data).await;
}

/// `meta.db` named by `--meta sqlite://PATH` (a cluster's gateways, `cairn admin`) holds the
/// same secret keys as `cairn server`'s, and gets the same modes.
#[tokio::test]
async fn a_metadata_file_named_by_url_is_private() {
    let (cluster, data) = one_node_cluster_holding(4, CHUNK + 1).await;
    // The gateway holds the database open, so its WAL and shared memory exist.
    for file in meta_files(&cluster.dir) {
        assert_mode(&file, 0o600);
    }

    // `cairn admin` on a store that does not exist yet creates its directory private too.
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("new-store");
    let output = std::process::Command::new(cairn_binary())
        .args(["admin", "--meta"])
        .arg(format!("sqlite://{}", dir.join("meta.db").display()))
        .args(["key", "list"])
        .env_remove("CAIRN_ACCESS_KEY_ID")
        .env_remove("CAIRN_SECRET_ACCESS_KEY")
        .output()
        .expect("run cairn admin");
    assert!(output.status.success(), "{output:?}");
    assert_mode(&dir, 0o700);
    assert_mode(&dir.join("meta.db"), 0o600);
    cluster
        .client()
        .assert_object(BUCKET, "object", &data)
        .await;
}
