//! Smoke test of `cairn bench` (CI runs no benchmarks): every workload with tiny sizes against a
//! real `cairn server`, which must succeed with one parseable JSON line per workload, positive
//! figures and no errors, and leave nothing behind but the large object the range workload
//! reads. Bad credentials must fail the run.

use std::process::Output;

use cairn_test_support::*;
use http::StatusCode;
use serde_json::Value;

const BUCKET: &str = "cairn-bench";

/// Sizes small enough for a debug build to run every workload in a few seconds, yet with a
/// multipart upload of two parts (the last one short) and listings of more than one prefix.
const TINY: &[&str] = &[
    "--large-size",
    "8MiB",
    "--part-size",
    "5MiB",
    "--get-range-size",
    "1MiB",
    "--range-ops",
    "50",
    "--small-ops",
    "100",
    "--list-keys",
    "200",
    "--list-repeats",
    "2",
];

async fn bench(endpoint: &str, key_id: &str, secret: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["bench", "--endpoint", endpoint])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env_remove("CAIRN_ACCESS_KEY_ID")
        .env_remove("CAIRN_SECRET_ACCESS_KEY")
        .output()
        .await
        .expect("run cairn bench")
}

/// The figures every workload's line must carry.
fn expected_fields(workload: &str) -> &'static [&'static str] {
    match workload {
        "large" => &[
            "put_mib_s",
            "multipart_put_mib_s",
            "get_mib_s",
            "ranged_get_mib_s",
            "object_bytes",
        ],
        "range" => &[
            "c1_ops_s",
            "c1_p50_ms",
            "c1_p99_ms",
            "c16_ops_s",
            "c16_p50_ms",
            "c16_p99_ms",
        ],
        "small" => &[
            "put_ops_s",
            "put_p50_ms",
            "put_p99_ms",
            "get_ops_s",
            "get_p50_ms",
            "get_p99_ms",
            "delete_ops_s",
            "delete_p50_ms",
            "delete_p99_ms",
        ],
        "list" => &["flat_ms", "delimiter_ms", "prefix_ms", "flat_pages"],
        other => panic!("unexpected workload {other}"),
    }
}

#[tokio::test]
async fn every_workload_runs_clean_against_cairn_server() {
    let server = TestServer::start().await;
    let mut args = vec!["all"];
    args.extend_from_slice(TINY);
    let out = bench(&server.endpoint(), TEST_KEY_ID, TEST_SECRET, &args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cairn bench failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each stdout line is one JSON object"))
        .collect();
    let workloads: Vec<&str> = lines
        .iter()
        .map(|line| line["workload"].as_str().expect("workload name"))
        .collect();
    assert_eq!(workloads, ["large", "range", "small", "list"], "{stdout}");
    for line in &lines {
        let workload = line["workload"].as_str().unwrap_or_default();
        assert_eq!(line["errors"], 0, "{line}");
        for field in expected_fields(workload) {
            assert!(
                line.get(*field).is_some(),
                "{workload}: no {field} in {line}"
            );
        }
        for (name, value) in line.as_object().expect("an object") {
            if name == "workload" || name == "errors" {
                continue;
            }
            let number = value.as_f64().unwrap_or_else(|| panic!("{name} in {line}"));
            assert!(number > 0.0, "{workload}: {name} = {number} in {line}");
        }
    }
    assert_eq!(lines[0]["object_bytes"], 8 << 20);
    assert_eq!(lines[3]["flat_pages"], 1);
    // The human summary goes to stderr, progress in plain lines since stderr is not a terminal.
    assert!(stderr.contains("large: PUT: done in"), "{stderr}");
    assert!(stderr.contains("small: 0 errors"), "{stderr}");

    // Only the large object stays, for later range runs; everything else was cleaned up.
    let client = server.client();
    let listing = client.list(BUCKET, true, &[]).await;
    listing.assert_status(StatusCode::OK);
    let body = String::from_utf8_lossy(&listing.body).into_owned();
    assert_eq!(body.matches("<Key>").count(), 1, "{body}");
    assert!(body.contains("<Key>large/object</Key>"), "{body}");

    // A second range run reuses that object instead of writing it again.
    let out = bench(
        &server.endpoint(),
        TEST_KEY_ID,
        TEST_SECRET,
        &["range", "--large-size", "8MiB", "--range-ops", "20"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("writing the object"), "{stderr}");

    // The probe writes its object, then times each request kind; its listing starts after its
    // key, so it sees exactly the large object that sorts after it.
    let probe = ["probe", "--probe-key", "a/probe", "--probe-size", "100KiB"];
    let out = bench(
        &server.endpoint(),
        TEST_KEY_ID,
        TEST_SECRET,
        &[&probe[..], &["--probe-ops", "10"]].concat(),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(line["workload"], "probe", "{line}");
    assert_eq!(line["errors"], 0, "{line}");
    assert_eq!(line["list_keys"], 1, "{line}");
    for kind in ["head", "first_range", "last_range", "list_after"] {
        for p in ["p50", "p99"] {
            let ms = line[format!("{kind}_{p}_ms")].as_f64();
            assert!(ms.is_some_and(|ms| ms > 0.0), "{kind} {p} in {line}");
        }
    }
    assert!(
        line["put_mib_s"].as_f64().is_some_and(|v| v > 0.0),
        "{line}"
    );
}

#[tokio::test]
async fn md5_reports_one_cores_rate_without_an_endpoint_or_credentials() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["bench", "md5"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .await
        .expect("run cairn bench md5");
    assert!(out.status.success(), "{out:?}");
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(line["workload"], "md5", "{line}");
    assert_eq!(line["errors"], 0, "{line}");
    // Any machine this runs on hashes more than 10 MiB/s and less than 100 GiB/s on one core.
    let rate = line["md5_mib_s"].as_f64().expect("md5_mib_s");
    assert!(rate > 10.0 && rate < 100_000.0, "{line}");
}

#[tokio::test]
async fn bad_credentials_fail_the_run() {
    let server = TestServer::start().await;
    let out = bench(&server.endpoint(), TEST_KEY_ID, "wrong secret", &["small"]).await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("403"), "{stderr}");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["bench", "--endpoint", &server.endpoint(), "small"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .await
        .expect("run cairn bench");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_SECRET_ACCESS_KEY"));
}

#[tokio::test]
async fn a_failed_phase_reports_no_figure() {
    let server = TestServer::start().await;
    // Every chunk write fails from now on: each of the store's prefix directories becomes a file.
    for prefix in 0..=u8::MAX {
        let dir = server.chunks_dir().join(format!("{prefix:02x}"));
        std::fs::remove_dir_all(&dir).expect("remove a prefix directory");
        std::fs::write(&dir, b"").expect("put a file in its place");
    }
    let args = [
        "large",
        "--large-size",
        "1MiB",
        "--part-size",
        "512KiB",
        "--get-range-size",
        "256KiB",
    ];
    let out = bench(&server.endpoint(), TEST_KEY_ID, TEST_SECRET, &args).await;
    assert!(!out.status.success(), "{out:?}");
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    // Neither upload stored a byte and nothing could be read back, so no phase has a rate: the
    // time a failure took is not one.
    for field in [
        "put_mib_s",
        "multipart_put_mib_s",
        "get_mib_s",
        "ranged_get_mib_s",
    ] {
        assert_eq!(line[field], Value::Null, "{field} in {line}");
    }
    assert!(line["errors"].as_u64().is_some_and(|n| n >= 4), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PUT failed, multipart PUT"), "{stderr}");
    assert!(stderr.contains("GET failed, ranged GET"), "{stderr}");
}
