//! `cairn admin` as operators and scripts run it: every command, with its text output and with
//! `--json`, on SQLite (beside a running server, whose requests show that a new key works at
//! once and a deleted key or user is refused at once) and on PostgreSQL.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use cairn::meta::{self, REPLICAS_SETTING};
use cairn_test_support::*;
use http::{Method, StatusCode};
use serde_json::Value;

/// The cluster secret `node` and `fsck` need (no node is reached in these tests).
const CLUSTER_SECRET: &str = "admin-cli-test-cluster-secret-0123456789";

fn run(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(cairn_binary())
        .args(["admin", "--meta", url])
        .args(args)
        .env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
        .env_remove("CAIRN_ACCESS_KEY_ID")
        .env_remove("CAIRN_SECRET_ACCESS_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cairn admin");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().expect("cairn admin output")
}

/// The text a command printed; it must succeed.
fn text(url: &str, args: &[&str]) -> String {
    let out = run(url, args, None);
    assert!(
        out.status.success(),
        "cairn admin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The one JSON value a command printed with `--json`; it must succeed.
fn json(url: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = text(url, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed {out:?}: {e}"))
}

/// The error of a command that must fail.
fn fails(url: &str, args: &[&str]) -> String {
    let out = run(url, args, None);
    assert!(!out.status.success(), "cairn admin {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn array(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not an array"))
}

fn names(v: &Value, field: &str) -> Vec<String> {
    array(v)
        .iter()
        .map(|x| x[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn is_canonical_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Users, keys and deletions, text and JSON alike, on the store at `url`.
async fn users_and_keys(url: &str) {
    // The admin account exists from the first migration.
    let users = json(url, &["user", "list"]);
    assert_eq!(names(&users, "name"), ["admin"]);
    assert!(is_canonical_id(users[0]["id"].as_str().unwrap()));

    let alice = json(
        url,
        &["user", "create", "alice", "--display-name", "Alice A."],
    );
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["display_name"], "Alice A.");
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    assert!(is_canonical_id(&alice_id), "{alice_id}");
    assert!(alice["created"].as_str().unwrap().ends_with('Z'));
    let out = text(url, &["user", "create", "bob"]);
    assert!(out.contains("created user bob"), "{out}");
    let users = json(url, &["user", "list"]);
    assert_eq!(names(&users, "name"), ["admin", "alice", "bob"]);
    assert_eq!(
        users[2]["display_name"], "bob",
        "the display name defaults to the name"
    );
    let listing = text(url, &["user", "list"]);
    assert!(
        listing.contains(&alice_id) && listing.contains("Alice A."),
        "{listing}"
    );
    assert!(fails(url, &["user", "create", "alice"]).contains("already exists"));

    // Keys: of a user, with a canned policy, listed per user, never with secrets.
    let key = json(
        url,
        &[
            "key", "create", "backup", "--user", "alice", "--policy", "readonly",
        ],
    );
    assert_eq!(key["user"], "alice");
    assert_eq!(key["policy"], "readonly");
    let key_id = key["access_key_id"].as_str().unwrap().to_owned();
    let secret = key["secret_access_key"].as_str().unwrap().to_owned();
    assert!(!secret.is_empty());
    let out = text(url, &["key", "create", "--user", "bob"]);
    assert!(
        out.contains("AccessKeyId: ") && out.contains("SecretAccessKey: "),
        "{out}"
    );
    let admin_key = json(url, &["key", "create", "ops"]);
    assert_eq!(
        admin_key["user"], "admin",
        "keys belong to admin by default"
    );
    assert_eq!(admin_key["policy"], Value::Null);
    assert!(fails(url, &["key", "create", "x", "--policy", "nosuch"]).contains("no policy"));
    assert!(fails(url, &["key", "create", "x", "--user", "nobody"]).contains("no user"));

    let keys = json(url, &["key", "list"]);
    assert_eq!(array(&keys).len(), 3);
    assert!(
        !keys.to_string().contains(&secret),
        "key list must not show secrets"
    );
    let alices = json(url, &["key", "list", "--user", "alice"]);
    assert_eq!(names(&alices, "access_key_id"), [key_id.as_str()]);
    assert_eq!(alices[0]["name"], "backup");
    assert_eq!(alices[0]["policy"], "readonly");
    let bobs = json(url, &["key", "list", "--user", "bob"]);
    assert_eq!(
        bobs[0]["name"], "bob",
        "a key's name defaults to its user's"
    );
    let listing = text(url, &["key", "list", "--user", "alice"]);
    assert!(
        listing.contains(&key_id) && listing.contains("readonly"),
        "{listing}"
    );
    assert!(!listing.contains(&secret));

    let deleted = json(url, &["key", "delete", &key_id]);
    assert_eq!(deleted["ok"], true);
    assert_eq!(deleted["access_key_id"], key_id);
    assert!(fails(url, &["key", "delete", &key_id]).contains("no access key"));
    let bob_key = bobs[0]["access_key_id"].as_str().unwrap().to_owned();
    assert!(text(url, &["key", "delete", &bob_key]).contains("deleted"));

    // Users: admin is kept; one owning buckets needs --force, which gives them to admin.
    assert!(fails(url, &["user", "delete", "admin"]).contains("cannot be deleted"));
    assert!(fails(url, &["user", "delete", "nobody"]).contains("no user"));
    let store = meta::open(url).await.unwrap();
    let bucket = meta::Bucket {
        name: "alices-bucket".to_owned(),
        created: cairn::gateway::now(),
        owner: alice_id.clone(),
        access: meta::BucketAccess::default(),
    };
    assert!(store.create_bucket(&bucket).await.unwrap());
    let refused = fails(url, &["user", "delete", "alice"]);
    assert!(
        refused.contains("owns 1 bucket") && refused.contains("--force"),
        "{refused}"
    );
    json(url, &["key", "create", "--user", "alice"]);
    let deleted = json(url, &["user", "delete", "alice", "--force"]);
    assert_eq!(deleted["ok"], true);
    assert_eq!(deleted["buckets_given_to_admin"], 1);
    assert!(
        json(url, &["key", "list", "--user", "admin"])
            .to_string()
            .contains("ops")
    );
    assert_eq!(
        array(&json(url, &["key", "list"])).len(),
        1,
        "alice's keys went with her"
    );
    let admin = store.account_by_name("admin").await.unwrap().unwrap();
    let given = store.bucket("alices-bucket").await.unwrap().unwrap();
    assert_eq!(given.owner, admin.id);
    assert!(text(url, &["user", "delete", "bob"]).contains("deleted user bob"));
    assert_eq!(names(&json(url, &["user", "list"]), "name"), ["admin"]);
}

/// `node list` and `fsck` on a store without nodes or chunks, text and JSON.
async fn nodes_and_fsck(url: &str) {
    assert!(array(&json(url, &["node", "list"])).is_empty());
    assert!(text(url, &["node", "list"]).starts_with("ID"));
    let drain = fails(
        url,
        &["node", "drain", "0b7e7cf2-0a5c-4a36-9f53-0d2f4b6a7c11"],
    );
    assert!(drain.contains("no node"), "{drain}");
    // fsck needs the replica count a gateway records.
    assert!(fails(url, &["fsck"]).contains("no gateway"));
    let store = meta::open(url).await.unwrap();
    store.set_setting(REPLICAS_SETTING, "2").await.unwrap();
    let report = json(url, &["fsck"]);
    assert_eq!(report["chunks"], 0);
    assert_eq!(report["clean"], true);
    assert_eq!(report["replicas"], 2);
    assert!(array(&report["unreadable"]).is_empty());
    assert!(text(url, &["fsck"]).contains("clean"));
}

/// Stored policies: created from a file or stdin (validated as identity policies), attached,
/// listed with their users, detached and deleted, and usable as a key's policy.
async fn stored_policies(url: &str) {
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b1-read.json");
    std::fs::write(&file, doc).unwrap();
    json(url, &["user", "create", "app"]);
    let created = json(
        url,
        &["policy", "create", "b1-read", file.to_str().unwrap()],
    );
    assert_eq!(created["ok"], true);
    let out = run(url, &["policy", "create", "from-stdin", "-"], Some(doc));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"Statement":[{"Effect":"Maybe"}]}"#).unwrap();
    assert!(fails(url, &["policy", "create", "bad", bad.to_str().unwrap()]).contains("invalid"));
    assert!(
        fails(
            url,
            &["policy", "create", "readonly", file.to_str().unwrap()]
        )
        .contains("canned")
    );

    assert_eq!(
        json(url, &["policy", "attach", "b1-read", "--user", "app"])["ok"],
        true
    );
    assert!(text(url, &["policy", "attach", "from-stdin", "--user", "app"]).contains("attached"));
    assert!(fails(url, &["policy", "attach", "nosuch", "--user", "app"]).contains("no policy"));
    let listed = json(url, &["policy", "list"]);
    assert_eq!(names(&listed, "name"), ["b1-read", "from-stdin"]);
    assert_eq!(listed[0]["users"], serde_json::json!(["app"]));
    assert!(text(url, &["policy", "list"]).contains("b1-read"));
    let key = json(
        url,
        &["key", "create", "--user", "app", "--policy", "b1-read"],
    );
    assert_eq!(key["policy"], "b1-read");

    assert_eq!(
        json(url, &["policy", "detach", "b1-read", "--user", "app"])["ok"],
        true
    );
    assert!(fails(url, &["policy", "detach", "b1-read", "--user", "app"]).contains("not attached"));
    assert_eq!(json(url, &["policy", "delete", "from-stdin"])["ok"], true);
    assert!(text(url, &["policy", "delete", "b1-read"]).contains("deleted"));
    assert!(fails(url, &["policy", "delete", "b1-read"]).contains("no policy"));
    assert!(array(&json(url, &["policy", "list"])).is_empty());
}

fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("meta.db").display())
}

#[tokio::test]
async fn sqlite_users_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    users_and_keys(&sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_users_and_keys() {
    let db = MetaDb::postgres(Collation::Default).await;
    users_and_keys(&db.url).await;
}

#[tokio::test]
async fn sqlite_nodes_and_fsck() {
    let dir = tempfile::tempdir().unwrap();
    nodes_and_fsck(&sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_nodes_and_fsck() {
    let db = MetaDb::postgres(Collation::Default).await;
    nodes_and_fsck(&db.url).await;
}

#[tokio::test]
async fn sqlite_stored_policies() {
    let dir = tempfile::tempdir().unwrap();
    stored_policies(&sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_stored_policies() {
    let db = MetaDb::postgres(Collation::Default).await;
    stored_policies(&db.url).await;
}

/// Beside a running server: a user's new key works at once, and deleting the key, or the
/// user, refuses its requests at once.
#[tokio::test]
async fn keys_and_users_take_effect_on_a_running_server() {
    let server = TestServer::start().await;
    let url = sqlite_url(&server.data);
    server.client().create_bucket("shared").await;

    json(&url, &["user", "create", "robot"]);
    let key = json(&url, &["key", "create", "--user", "robot"]);
    let id = key["access_key_id"].as_str().unwrap().to_owned();
    let secret = key["secret_access_key"].as_str().unwrap().to_owned();
    let robot = server.client_with(&id, &secret);
    robot.create_bucket("robots").await;

    json(&url, &["key", "delete", &id]);
    robot.wait_key_refused("/robots", REVOCATION).await;

    let key = json(&url, &["key", "create", "--user", "robot"]);
    let again = server.client_with(
        key["access_key_id"].as_str().unwrap(),
        key["secret_access_key"].as_str().unwrap(),
    );
    again
        .request(Method::GET, "/robots")
        .send()
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        json(&url, &["user", "delete", "robot", "--force"])["ok"],
        true
    );
    again.wait_key_refused("/robots", REVOCATION).await;
}

/// How soon a deleted key or user is refused: gateways cache keys and re-read them when the
/// store's access generation moves, which they poll every second.
const REVOCATION: std::time::Duration = std::time::Duration::from_secs(5);
