//! The harness of Cairn's integration tests, one crate that every `tests/*.rs` file uses as a
//! dev-dependency: `server` runs `cairn server` for a test, `cluster` runs data nodes and
//! gateways around a metadata store from `postgres` (or servers of the test's own from
//! `pg_cluster`), `accounts` makes users, keys and policies in either through
//! `cairn admin --json`, `process` owns the child processes, `s3`
//! drives them through the library's own client (`cairn::client`), well-formed requests and
//! deliberately broken ones alike, `data` makes and checks test bytes, `mount` gives a
//! test a small filesystem, `disk` one that loses what was not synced when it is cut,
//! `netns` gives data nodes hosts of their own, whose links a test can cut or slow, and
//! `chaos` runs client workers, a model of what they were acknowledged and a chaos loop of
//! kills and bit flips against a cluster.

pub mod accounts;
pub mod chaos;
pub mod cluster;
pub mod data;
pub mod disk;
pub mod mount;
pub mod netns;
pub mod pg_cluster;
pub mod postgres;
pub mod process;
pub mod s3;
pub mod server;

pub use accounts::*;
pub use cairn::client::{Auth, PayloadHash};
pub use cluster::*;
pub use data::*;
pub use disk::*;
pub use mount::*;
pub use netns::*;
pub use pg_cluster::*;
pub use postgres::*;
pub use process::*;
pub use s3::*;
pub use server::*;

pub const MIB: usize = 1 << 20;
pub const REGION: &str = "us-east-1";

/// Prints a line past libtest's output capture, so a test's figures and the reason for a skip
/// stand in the `cargo test` log (CI's included) when the test passes too.
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
