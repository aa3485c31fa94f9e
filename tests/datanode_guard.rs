//! A real `cairn datanode` process under abuse: 300 idle sockets do not stop it answering its
//! health check, and are closed once its idle timeout passes; refused requests (forged,
//! replayed, a stored id written again) leave warn lines naming the source and the reason, a
//! few a second however many arrive, and never the secret; and a gateway writes and reads
//! objects through data nodes served over HTTPS with a certificate made here.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn::datanode::auth::{AUTH_HEADER, BODY_AUTH_HEADER, ClusterKey, Signed};
use cairn_test_support::{
    Backend, CLUSTER_SECRET, Gateway, MetaDb, Proc, cairn_binary, random_bytes, read_log,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the node under test waits for a request's headers.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_SOCKETS: usize = 300;
/// The most audit lines the node writes in a second (its `RateLimitedLog`: at once, then a second).
const AUDIT_LINES_PER_SECOND: usize = 20;

fn datanode(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(cairn_binary());
    cmd.env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
        .args(["datanode", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .args(extra);
    cmd
}

/// Starts a data node and returns it with its `127.0.0.1:PORT`.
async fn start(root: &Path, name: &str, extra: &[&str]) -> (Proc, String) {
    let dir = root.join(name);
    let mut proc = Proc::spawn(
        name,
        datanode(&dir, extra),
        &root.join(format!("{name}.log")),
    );
    let line = proc.wait_line("Cairn data node ").await;
    let addr = line
        .rsplit("://")
        .next()
        .expect("an address in the banner")
        .trim()
        .to_owned();
    (proc, addr)
}

fn key() -> ClusterKey {
    ClusterKey::from_secret(CLUSTER_SECRET)
}

/// Sends one request on a fresh connection and returns the status line's code and the rest.
async fn raw(addr: &str, head: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let mut request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (line, rest) = text.split_once("\r\n")?;
    Some((line.split(' ').nth(1)?.parse().ok()?, rest.to_owned()))
}

fn signed(method: &str, target: &str) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\n{AUTH_HEADER}: {}",
        key().sign(method, target, Signed::now())
    )
}

fn signed_put(target: &str, data: &[u8]) -> String {
    let signed = Signed::now();
    let crc = crc32c::crc32c(data);
    format!(
        "PUT {target} HTTP/1.1\r\n{AUTH_HEADER}: {}\r\nContent-Length: {}\r\nx-cairn-crc32c: {crc:08x}\r\n{BODY_AUTH_HEADER}: {}",
        key().sign("PUT", target, signed),
        data.len(),
        key().sign_body("PUT", target, signed, data.len() as u64, crc)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_do_not_silence_a_data_node() {
    let root = tempfile::tempdir().expect("temp dir");
    let timeout = format!("{}s", IDLE_TIMEOUT.as_secs());
    let (node, addr) = start(
        root.path(),
        "node",
        &["--max-connections", "100", "--idle-timeout", &timeout],
    )
    .await;

    let mut idle = Vec::new();
    for _ in 0..IDLE_SOCKETS {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let opened = Instant::now();
    // Health, signed anew each try: answered well before the idle sockets time out.
    let health = loop {
        if let Some((200, text)) = raw(&addr, &signed("GET", "/health"), b"").await {
            break text;
        }
        assert!(
            opened.elapsed() < IDLE_TIMEOUT,
            "no health answer with {IDLE_SOCKETS} idle sockets open\n{}",
            read_log(&node.log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let answered_after = opened.elapsed();
    assert!(health.contains("node_id"), "{health}");
    // A request that is not a health check is served or turned away at once, never left
    // waiting.
    let started = Instant::now();
    let (status, _) = raw(&addr, &signed("GET", "/chunks?limit=1"), b"")
        .await
        .expect("an answer");
    assert!(status == 200 || status == 503, "{status}");
    assert!(started.elapsed() < Duration::from_secs(1));

    // Every idle socket is closed by the node within its idle timeout (and a margin).
    let closes = idle.into_iter().map(|mut stream| async move {
        let mut sink = Vec::new();
        tokio::time::timeout(IDLE_TIMEOUT * 3, stream.read_to_end(&mut sink))
            .await
            .is_ok()
    });
    let closed = futures_util::future::join_all(closes)
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count();
    let all_closed_after = opened.elapsed();
    assert_eq!(closed, IDLE_SOCKETS, "idle sockets left open by the node");
    let (status, _) = raw(&addr, &signed("GET", "/chunks?limit=1"), b"")
        .await
        .expect("an answer");
    assert_eq!(status, 200);
    println!(
        "{IDLE_SOCKETS} idle sockets: health answered after {answered_after:?}, all closed by the node after {all_closed_after:?} (idle timeout {IDLE_TIMEOUT:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_audited_a_few_a_second() {
    let root = tempfile::tempdir().expect("temp dir");
    let (node, addr) = start(root.path(), "node", &[]).await;
    let id = "00112233445566778899aabbccddeeff";
    let target = format!("/chunks/{id}");
    let data = b"the only copy of somebody's file".to_vec();

    // One of each kind: a stored id written again, a replay, a forgery, none at all.
    let (status, _) = raw(&addr, &signed_put(&target, &data), &data)
        .await
        .unwrap();
    assert_eq!(status, 201);
    let other = b"other bytes of the very same length!".to_vec();
    let (status, _) = raw(
        &addr,
        &signed_put(&target, &other[..data.len()]),
        &other[..data.len()],
    )
    .await
    .unwrap();
    assert_eq!(status, 409);
    let health = signed("GET", "/health");
    assert_eq!(raw(&addr, &health, b"").await.unwrap().0, 200);
    assert_eq!(raw(&addr, &health, b"").await.unwrap().0, 403);
    let forged = ClusterKey::from_secret("not the cluster secret at all");
    let head = format!(
        "DELETE {target} HTTP/1.1\r\n{AUTH_HEADER}: {}",
        forged.sign("DELETE", &target, Signed::now())
    );
    assert_eq!(raw(&addr, &head, b"").await.unwrap().0, 403);
    assert_eq!(
        raw(&addr, &format!("GET {target} HTTP/1.1"), b"")
            .await
            .unwrap()
            .0,
        403
    );
    // Wait for the audit's token bucket to refill, then a flood.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    const FLOOD: usize = 300;
    let flood_started = Instant::now();
    for _ in 0..FLOOD {
        let (status, _) = raw(&addr, "GET /chunks HTTP/1.1", b"").await.unwrap();
        assert_eq!(status, 403);
    }
    let flood_took = flood_started.elapsed();
    // The last summary line comes within a second of the flood's end.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The summary lines (one a second while lines are left out) have reported the flood's rest.
    assert_eq!(
        raw(&addr, "GET /health HTTP/1.1", b"").await.unwrap().0,
        403
    );
    // Stored bytes untouched.
    let (status, text) = raw(&addr, &signed("GET", &target), b"").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        text.ends_with(std::str::from_utf8(&data).unwrap()),
        "{text}"
    );

    let log = read_log(&node.log);
    let refused: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("data node request refused"))
        .collect();
    for (reason, path) in [
        ("immutable", target.as_str()),
        ("used before", "/health"),
        ("signature does not match", target.as_str()),
        ("missing x-cairn-auth", target.as_str()),
    ] {
        assert!(
            refused.iter().any(|line| line.contains(reason)
                && line.contains(path)
                && line.contains("WARN")
                && line.contains("127.0.0.1:")),
            "no audit line for {reason}:\n{log}"
        );
    }
    let flood_lines = refused
        .iter()
        .filter(|line| line.contains("path=\"/chunks\""))
        .count();
    let windows = flood_took.as_secs() as usize + 2;
    assert!(
        flood_lines >= AUDIT_LINES_PER_SECOND && flood_lines <= windows * AUDIT_LINES_PER_SECOND,
        "{flood_lines} lines for {FLOOD} refusals in {flood_took:?}"
    );
    let suppressed: u64 = log
        .lines()
        .filter(|line| line.contains("not logged"))
        .filter_map(|line| {
            line.split("suppressed=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(
        flood_lines as u64 + suppressed,
        FLOOD as u64,
        "every refusal is logged or counted\n{log}"
    );
    assert!(!log.contains(CLUSTER_SECRET), "the secret reached the log");
    println!(
        "{FLOOD} forged requests in {flood_took:?}: {flood_lines} audit lines, {suppressed} counted in summary lines; {} audit lines in all",
        refused.len()
    );
}

/// A CA and a certificate it signs for 127.0.0.1, made with the `openssl` command.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("the openssl command (needed to make the test's certificates)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=cairn test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("node.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.pem",
        "-days",
        "1",
        "-extfile",
        "node.ext",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_writes_and_reads_through_https_nodes() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path();
    make_certificates(dir);
    let cert = dir.join("node.pem").display().to_string();
    let tls_key = dir.join("node.key").display().to_string();
    let ca = dir.join("ca.pem").display().to_string();
    let meta = MetaDb::create(Backend::Sqlite, dir).await;
    let mut nodes = Vec::new();
    for i in 0..2 {
        let (proc, addr) = start(
            dir,
            &format!("node{i}"),
            &["--tls-cert", &cert, "--tls-key", &tls_key],
        )
        .await;
        let banner = proc
            .stdout_lines()
            .into_iter()
            .find(|l| l.starts_with("Cairn data node "))
            .unwrap();
        assert!(banner.contains("listening on https://"), "{banner}");
        // Plain HTTP gets no answer from a TLS listener.
        let plain = raw(&addr, &signed("GET", "/health"), b"").await;
        assert!(
            plain.as_ref().is_none_or(|(status, _)| *status != 200),
            "{plain:?}"
        );
        let url = format!("https://{addr}");
        let admin = |with_ca: bool| {
            let mut cmd = Command::new(cairn_binary());
            cmd.env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
                .env("CAIRN_LOG", "warn")
                .args(["admin", "--meta", &meta.url]);
            if with_ca {
                cmd.args(["--node-ca", &ca]);
            }
            cmd.args(["node", "add", &url]);
            cmd.output().expect("run cairn admin")
        };
        // Without the CA the node cannot be trusted, so not added.
        assert!(!admin(false).status.success());
        let out = admin(true);
        assert!(
            out.status.success(),
            "node add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        nodes.push(proc);
    }
    let args: Vec<String> = [
        "--replicas",
        "2",
        "--write-quorum",
        "2",
        "--chunk-size",
        "1MiB",
        "--node-ca",
        &ca,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let gateway = Gateway::start(dir, 0, &meta.url, &args).await;
    let client = gateway.client();
    client.create_bucket("tls").await;
    let data = random_bytes(16, 3 * (1 << 20) + 12_345);
    client.put_ok("tls", "object", &data).await;
    client.assert_object("tls", "object", &data).await;
    // Both nodes hold the chunks: every replica went over TLS.
    for i in 0..2 {
        let chunks = std::fs::read_dir(dir.join(format!("node{i}")).join("chunks"))
            .unwrap()
            .count();
        assert!(chunks > 0, "node {i} holds no chunk");
    }
    println!(
        "{} bytes written and read back through 2 HTTPS data nodes",
        data.len()
    );
    drop(gateway);
    drop(nodes);
}
