//! The metadata store of a cluster test: a SQLite file in the test's directory, or a PostgreSQL
//! database made for the test from `CAIRN_TEST_POSTGRES_URL` and dropped (with whatever
//! connection a killed process left behind) when the test lets go of it.

use std::path::Path;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The admin connection the PostgreSQL variants create their databases with.
pub const POSTGRES_URL_VAR: &str = "CAIRN_TEST_POSTGRES_URL";

/// Which metadata store a cluster runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The metadata store of one test: a SQLite file in the test's directory, or a PostgreSQL
/// database of its own, dropped when this is.
pub struct MetaDb {
    pub url: String,
    /// The admin URL and the database name, for PostgreSQL.
    postgres: Option<(String, String)>,
}

/// The default collation of a PostgreSQL test database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collation {
    /// The server's default.
    Default,
    /// ICU's root locale where the server has ICU (PostgreSQL 15 on), which sorts
    /// "~" < "a" < "é" < "Z": it proves that the schema's `COLLATE "C"`, not the database,
    /// gives byte order. Other servers get their default.
    Linguistic,
}

impl MetaDb {
    pub async fn create(backend: Backend, dir: &Path) -> MetaDb {
        match backend {
            Backend::Sqlite => MetaDb {
                url: format!("sqlite://{}", dir.join("meta.db").display()),
                postgres: None,
            },
            Backend::Postgres => MetaDb::postgres(Collation::Default).await,
        }
    }

    /// A database the test runs itself (e.g. on a `PgCluster`), which this leaves alone.
    pub fn external(url: String) -> MetaDb {
        MetaDb {
            url,
            postgres: None,
        }
    }

    /// A PostgreSQL database of its own.
    pub async fn postgres(collation: Collation) -> MetaDb {
        let admin_url = postgres_admin_url();
        let name = format!("cairn_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_VAR}={admin_url}: {e}"));
        let linguistic = collation == Collation::Linguistic
            && sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' \
                 LOCALE_PROVIDER icu ICU_LOCALE 'und'"
            )))
            .execute(&mut admin)
            .await
            .is_ok();
        if !linguistic {
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        }
        let _ = admin.close().await;
        MetaDb {
            url: with_database(&admin_url, &name),
            postgres: Some((admin_url, name)),
        }
    }
}

impl Drop for MetaDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on another future: a thread
        // with a runtime of its own does the (best effort) cleanup.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    // FORCE ends whatever connection a killed process left behind.
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// The admin connection URL; the PostgreSQL variants of the tests fail (never skip) without it.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_VAR} is not set: the PostgreSQL variants of the tests need an admin \
             connection URL whose role may CREATE DATABASE, e.g. \
             {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres (tests/all.sh sets it)"
        )
    })
}

/// `url` with its database (the path) replaced by `name`, keeping any query parameters.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}
