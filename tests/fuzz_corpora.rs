//! Replays every committed fuzz corpus (`fuzz/corpus/TARGET/`) through its target's body on the
//! stable toolchain, so every input that once crashed a parser, and every input that reached
//! new code while fuzzing, is checked on each run. The bodies are the fuzz targets' own files
//! (`fuzz/targets/`), included by path; a missing or empty corpus fails the test, since a
//! replay of nothing proves nothing. Runs in a few seconds.

use std::path::{Path, PathBuf};

#[path = "../fuzz/targets/input.rs"]
mod input;

#[path = "../fuzz/targets/acl.rs"]
mod acl;
#[path = "../fuzz/targets/chunked.rs"]
mod chunked;
#[path = "../fuzz/targets/datanode.rs"]
mod datanode;
#[path = "../fuzz/targets/headers.rs"]
mod headers;
#[path = "../fuzz/targets/policy.rs"]
mod policy;
#[path = "../fuzz/targets/router.rs"]
mod router;
#[path = "../fuzz/targets/sigv2.rs"]
mod sigv2;
#[path = "../fuzz/targets/sigv4.rs"]
mod sigv4;
#[path = "../fuzz/targets/xml.rs"]
mod xml;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("readable corpus directory").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// Runs each input, naming the file that fails.
fn replay(target: &str, run: fn(&[u8])) {
    let files = corpus(target);
    for file in &files {
        let data = std::fs::read(file).expect("readable corpus file");
        if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
            eprintln!("fuzz target {target} failed on {}", file.display());
            std::panic::resume_unwind(panic);
        }
    }
    println!("{target}: {} inputs replayed", files.len());
}

#[test]
fn acl_corpus() {
    replay("acl", acl::run);
}

#[test]
fn chunked_corpus() {
    replay("chunked", chunked::run);
}

#[test]
fn datanode_corpus() {
    replay("datanode", datanode::run);
}

#[test]
fn headers_corpus() {
    replay("headers", headers::run);
}

#[test]
fn policy_corpus() {
    replay("policy", policy::run);
}

#[test]
fn router_corpus() {
    replay("router", router::run);
}

#[test]
fn sigv2_corpus() {
    replay("sigv2", sigv2::run);
}

#[test]
fn sigv4_corpus() {
    replay("sigv4", sigv4::run);
}

#[test]
fn xml_corpus() {
    replay("xml", xml::run);
}

/// Every target in `fuzz/Cargo.toml` is replayed here: a target added there without a replay
/// would go unchecked in CI.
#[test]
fn every_fuzz_target_is_replayed() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .expect("fuzz/Cargo.toml");
    let mut targets: Vec<&str> = manifest
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|name| *name != "cairn-fuzz")
        .collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        [
            "acl", "chunked", "datanode", "headers", "policy", "router", "sigv2", "sigv4", "xml"
        ]
    );
}
