//! Accounts, keys and stored policies for a test, made the way an operator makes them: by
//! running `cairn admin --meta URL ... --json` against the metadata store of a running server
//! or cluster, and reading the one JSON value each command prints.

use std::path::PathBuf;
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::process::cairn_binary;
use crate::server::TestServer;

/// `cairn admin` on one metadata store.
#[derive(Clone, Debug)]
pub struct Accounts {
    meta_url: String,
    /// Where policy documents are written for `policy create NAME FILE`.
    dir: PathBuf,
}

/// An account as `user create --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The canonical id (64 lowercase hex digits).
    pub id: String,
    pub name: String,
    pub display_name: String,
}

/// A key as `key create --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub secret: String,
    /// The account's name.
    pub user: String,
    pub policy: Option<String>,
}

/// A finished `cairn admin` run.
#[derive(Debug)]
pub struct AdminRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl AdminRun {
    fn from_output(output: Output) -> AdminRun {
        AdminRun {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The JSON value printed on stdout.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "cairn admin printed no JSON value ({e}): stdout {:?}, stderr {:?}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A string field of a JSON object, which must be there.
fn field(value: &Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name:?} in {value}"))
        .to_owned()
}

impl Accounts {
    /// `cairn admin` on `meta_url`, writing policy files under `dir`.
    pub fn new(meta_url: &str, dir: PathBuf) -> Accounts {
        Accounts {
            meta_url: meta_url.to_owned(),
            dir,
        }
    }

    /// The metadata file of a `cairn server`.
    pub fn of_server(server: &TestServer) -> Accounts {
        let url = format!("sqlite://{}", server.data.join("meta.db").display());
        let dir = server.data.parent().expect("data dir has a parent").into();
        Accounts::new(&url, dir)
    }

    /// The metadata store of a cluster (SQLite or PostgreSQL).
    pub fn of_cluster(cluster: &Cluster) -> Accounts {
        Accounts::new(&cluster.meta.url, cluster.dir.clone())
    }

    pub fn meta_url(&self) -> &str {
        &self.meta_url
    }

    /// `cairn admin --meta URL ARGS... --json`, whatever its outcome.
    pub async fn run(&self, args: &[&str]) -> AdminRun {
        let mut cmd = tokio::process::Command::new(cairn_binary());
        cmd.args(["admin", "--meta", &self.meta_url])
            .args(args)
            .arg("--json")
            .env("CAIRN_LOG", "warn")
            .env_remove("CAIRN_ACCESS_KEY_ID")
            .env_remove("CAIRN_SECRET_ACCESS_KEY")
            .stdin(Stdio::null());
        AdminRun::from_output(cmd.output().await.expect("run cairn admin"))
    }

    /// As [`Accounts::run`], for a command that must succeed; returns its JSON value.
    pub async fn run_ok(&self, args: &[&str]) -> Value {
        let run = self.run(args).await;
        assert!(
            run.success,
            "cairn admin {args:?} --json failed: stdout {:?}, stderr {:?}",
            run.stdout, run.stderr
        );
        run.json()
    }

    /// `user create NAME`.
    pub async fn create_user(&self, name: &str) -> Account {
        let value = self.run_ok(&["user", "create", name]).await;
        let account = Account {
            id: field(&value, "id"),
            name: field(&value, "name"),
            display_name: field(&value, "display_name"),
        };
        assert_eq!(account.name, name, "user create printed {value}");
        assert!(
            account.id.len() == 64
                && account
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "a canonical id is 64 lowercase hex digits: {value}"
        );
        account
    }

    /// `user list`.
    pub async fn list_users(&self) -> Vec<Account> {
        let value = self.run_ok(&["user", "list"]).await;
        value
            .as_array()
            .unwrap_or_else(|| panic!("user list printed {value}"))
            .iter()
            .map(|u| Account {
                id: field(u, "id"),
                name: field(u, "name"),
                display_name: field(u, "display_name"),
            })
            .collect()
    }

    /// `key create NAME --user USER [--policy POLICY]`.
    pub async fn create_key(&self, name: &str, user: &str, policy: Option<&str>) -> Key {
        let mut args = vec!["key", "create", name, "--user", user];
        if let Some(policy) = policy {
            args.extend(["--policy", policy]);
        }
        let value = self.run_ok(&args).await;
        let key = Key {
            id: field(&value, "access_key_id"),
            secret: field(&value, "secret_access_key"),
            user: field(&value, "user"),
            policy: value["policy"].as_str().map(str::to_owned),
        };
        assert_eq!(key.user, user, "key create printed {value}");
        assert_eq!(key.policy.as_deref(), policy, "key create printed {value}");
        key
    }

    /// `key delete ID`.
    pub async fn delete_key(&self, id: &str) {
        self.run_ok(&["key", "delete", id]).await;
    }

    /// `policy create NAME FILE`, the document written to a file first.
    pub async fn create_policy(&self, name: &str, document: &str) {
        let file = self.dir.join(format!("policy-{name}.json"));
        std::fs::write(&file, document).expect("write the policy file");
        let path = file.to_str().expect("a UTF-8 path").to_owned();
        self.run_ok(&["policy", "create", name, &path]).await;
    }

    /// `policy attach NAME --user USER`.
    pub async fn attach_policy(&self, name: &str, user: &str) {
        self.run_ok(&["policy", "attach", name, "--user", user])
            .await;
    }

    /// `policy detach NAME --user USER`.
    pub async fn detach_policy(&self, name: &str, user: &str) {
        self.run_ok(&["policy", "detach", name, "--user", user])
            .await;
    }
}
