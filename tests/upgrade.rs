//! Stores made by the previous release, before accounts existed, upgrade in place: a data
//! directory of `cairn server` (tests/fixtures/v0_store.tar.gz) starts under this release and
//! serves its objects, byte for byte, to its old key, which became a key of the admin account;
//! and a PostgreSQL database of a cluster of that release (tests/fixtures/v0_postgres.sql) takes
//! the same migration. tests/fixtures/README.md says how both were made.

use std::path::Path;
use std::process::Command;

use cairn::checksum::Md5;
use cairn::meta::{self, ADMIN_ACCOUNT, MetaStore};
use cairn_test_support::*;
use http::{Method, StatusCode};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The key the previous release's server and gateway were started with.
const OLD_KEY_ID: &str = "CAIRNOLDRELEASE01";
const OLD_SECRET: &str = "old/Release+Secret=key";
const BUCKET: &str = "old-bucket";
const INLINE: &[u8] = b"kept in the row by the old release\n";
/// The upload each fixture left in progress (tests/fixtures/make_v0_store.py printed them).
const PENDING_SQLITE: &str = "b6a78aeeb95949c797ce6b3c9e141806";
const PENDING_POSTGRES: &str = "4cf4c385ed254346b6c43f0da76aa674";

/// The bytes tests/fixtures/make_v0_store.py wrote.
fn pattern(seed: usize, size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 7 + seed) % 251) as u8).collect()
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn is_canonical_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What `cairn admin --meta URL ARGS --json` printed, parsed; the command must succeed.
fn admin_json(url: &str, args: &[&str]) -> Value {
    let out = Command::new(cairn_binary())
        .args(["admin", "--meta", url])
        .args(args)
        .arg("--json")
        .output()
        .expect("run cairn admin");
    assert!(
        out.status.success(),
        "cairn admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON value")
}

/// The user `key list --json` shows for a key.
fn user_of_key(url: &str, key: &str) -> String {
    let keys = admin_json(url, &["key", "list"]);
    let found = keys
        .as_array()
        .expect("an array")
        .iter()
        .find(|k| k["access_key_id"] == key)
        .unwrap_or_else(|| panic!("key {key} is not listed: {keys}"));
    found["user"].as_str().expect("user").to_owned()
}

/// Everything the old store held belongs to the admin account, whose id is canonical.
async fn owned_by_admin(store: &dyn MetaStore, pending: &str) {
    let admin = store
        .account_by_name(ADMIN_ACCOUNT)
        .await
        .unwrap()
        .expect("the migration made the admin account");
    assert!(is_canonical_id(&admin.id), "{}", admin.id);
    let key = store.key(OLD_KEY_ID).await.unwrap().expect("old key kept");
    assert_eq!(
        (key.account.as_str(), key.policy),
        (admin.id.as_str(), None)
    );
    assert_eq!(key.secret, OLD_SECRET);
    let bucket = store
        .bucket(BUCKET)
        .await
        .unwrap()
        .expect("old bucket kept");
    assert_eq!(bucket.owner, admin.id);
    assert_eq!(bucket.access, meta::BucketAccess::default());
    for key in ["inline.txt", "dir/chunked.bin", "multipart.bin"] {
        let object = store
            .object(BUCKET, key)
            .await
            .unwrap()
            .expect("object kept");
        assert_eq!(object.owner, admin.id, "{key}");
        assert_eq!(object.acl, None, "{key}");
    }
    let multipart = store
        .object(BUCKET, "multipart.bin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(multipart.parts_count, Some(2));
    let upload = store.upload(pending).await.unwrap().expect("upload kept");
    assert_eq!(
        (upload.owner.as_str(), upload.acl),
        (admin.id.as_str(), None)
    );
    assert!(store.access_generation().await.unwrap() >= 1);
}

#[tokio::test]
async fn a_data_directory_of_the_previous_release_keeps_its_keys_and_objects() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let unpacked = Command::new("tar")
        .arg("-xzf")
        .arg(fixture("v0_store.tar.gz"))
        .arg("-C")
        .arg(&data)
        .status()
        .expect("run tar");
    assert!(unpacked.success());

    let server = TestServer::start_on(data.clone()).await;
    let old = server.client_with(OLD_KEY_ID, OLD_SECRET);
    old.assert_object(BUCKET, "inline.txt", INLINE).await;
    old.assert_object(BUCKET, "dir/chunked.bin", &pattern(1, 200_000))
        .await;
    let mut multipart = pattern(2, 5 << 20);
    multipart.extend(pattern(3, 100_000));
    old.assert_object(BUCKET, "multipart.bin", &multipart).await;

    // The upload left in progress completes under the new release.
    let part = pattern(4, 70_000);
    let etag = format!("\"{}\"", hex::encode(Md5::digest(&part)));
    old.complete(BUCKET, "pending.bin", PENDING_SQLITE, &[(1, etag)])
        .await
        .assert_status(StatusCode::OK);
    old.assert_object(BUCKET, "pending.bin", &part).await;

    // The old key is an admin key: listed under admin, it creates buckets and sees them all.
    let url = format!("sqlite://{}", data.join("meta.db").display());
    assert_eq!(user_of_key(&url, OLD_KEY_ID), ADMIN_ACCOUNT);
    old.create_bucket("made-after-upgrade").await;
    let listing = old.request(Method::GET, "/").send().await;
    listing.assert_status(StatusCode::OK);
    let text = String::from_utf8_lossy(&listing.body);
    for name in [BUCKET, "made-after-upgrade"] {
        assert!(text.contains(&format!("<Name>{name}</Name>")), "{text}");
    }
    old.put_ok(BUCKET, "written-after-upgrade", b"new").await;

    let store = meta::open(&url).await.unwrap();
    // The completed upload is gone from the store; its object keeps the initiator.
    let admin = store.account_by_name(ADMIN_ACCOUNT).await.unwrap().unwrap();
    let completed = store.object(BUCKET, "pending.bin").await.unwrap().unwrap();
    assert_eq!(completed.owner, admin.id);
    assert!(store.upload(PENDING_SQLITE).await.unwrap().is_none());
    let key = store.key(OLD_KEY_ID).await.unwrap().unwrap();
    assert_eq!(key.account, admin.id);
    let bucket = store.bucket(BUCKET).await.unwrap().unwrap();
    assert_eq!(bucket.owner, admin.id);
}

/// The SQLite fixture, migrated without a server: the same checks on the rows themselves.
#[tokio::test]
async fn the_sqlite_migration_gives_everything_to_admin() {
    let root = tempfile::tempdir().unwrap();
    let unpacked = Command::new("tar")
        .arg("-xzf")
        .arg(fixture("v0_store.tar.gz"))
        .arg("-C")
        .arg(root.path())
        .status()
        .expect("run tar");
    assert!(unpacked.success());
    let url = format!("sqlite://{}", root.path().join("meta.db").display());
    let store = meta::open(&url).await.unwrap();
    owned_by_admin(store.as_ref(), PENDING_SQLITE).await;
}

/// A cluster's PostgreSQL database of the previous release: the dump is loaded into a new
/// database, which this release opens (and so migrates) as a gateway would.
#[tokio::test]
async fn a_postgres_store_of_the_previous_release_migrates() {
    let db = MetaDb::postgres(Collation::Default).await;
    let dump = std::fs::read_to_string(fixture("v0_postgres.sql")).unwrap();
    // A connection of its own: the dump empties its search_path.
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(dump))
        .execute(&mut conn)
        .await
        .expect("load the previous release's dump");
    conn.close().await.unwrap();

    let store = meta::open(&db.url).await.expect("migrate");
    owned_by_admin(store.as_ref(), PENDING_POSTGRES).await;
    assert_eq!(user_of_key(&db.url, OLD_KEY_ID), ADMIN_ACCOUNT);
    let buckets = store.list_buckets(None).await.unwrap();
    assert_eq!(buckets.len(), 1);
    drop(store);
}
