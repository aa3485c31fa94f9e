//! The starting and restarting helpers the data node's tests and `remote`'s share.

use std::path::Path;

use super::*;
use crate::datanode::auth::BODY_AUTH_HEADER;

pub const SECRET: &str = "test cluster secret, long enough";

pub fn key() -> ClusterKey {
    ClusterKey::from_secret(SECRET)
}

/// What the tests' nodes run with unless a test changes it.
pub fn config(listen: SocketAddr, data: &Path, capacity: Option<u64>) -> DataNodeConfig {
    DataNodeConfig {
        listen,
        data: data.to_path_buf(),
        capacity,
        reserve: None,
        zone: Some("zone-a".to_owned()),
        key: key(),
        // The in-process nodes cover the opt-in path; the binary's tests the default.
        direct_writes: true,
        tls: None,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
    }
}

/// A data node serving on 127.0.0.1:0 in this process until dropped or stopped.
pub struct TestNode {
    pub addr: SocketAddr,
    pub node_id: uuid::Uuid,
    pub data: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl TestNode {
    pub async fn start(data: &Path, capacity: Option<u64>) -> TestNode {
        TestNode::start_on("127.0.0.1:0".parse().unwrap(), data, capacity).await
    }

    pub async fn start_on(listen: SocketAddr, data: &Path, capacity: Option<u64>) -> TestNode {
        TestNode::start_with(config(listen, data, capacity)).await
    }

    pub async fn start_with(config: DataNodeConfig) -> TestNode {
        let data = config.data.clone();
        let node = DataNode::bind(config).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = node.local_addr();
        let node_id = node.node_id();
        let task = tokio::spawn(node.serve(async {
            let _ = stopped.await;
        }));
        TestNode {
            addr,
            node_id,
            data,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The local store under the node, to inspect or damage its files.
    pub async fn local_store(&self) -> LocalChunkStore {
        LocalChunkStore::open(self.data.join(CHUNKS_DIR))
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body` on a fresh
/// connection and returns the status and everything after the status line.
pub async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let response = raw_bytes(addr, head, body).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (status_line, rest) = response.split_once("\r\n").unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    (status, rest.to_owned())
}

/// Like `raw`, returning the bytes received until the node closed the connection, whether
/// cleanly or not.
pub async fn raw_bytes(addr: SocketAddr, head: &str, body: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return response,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
}

/// The request line and a valid `x-cairn-auth` header for `method` and `target`, signed now
/// with a fresh nonce.
pub fn signed(method: &str, target: &str) -> String {
    signed_as(method, target, Signed::now())
}

/// The request line and the `x-cairn-auth` header of a request signed as `signed`.
pub fn signed_as(method: &str, target: &str, signed: Signed) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\n{AUTH_HEADER}: {}",
        key().sign(method, target, signed)
    )
}

/// The header line (with its leading CRLF) that signs an upload's body, for a request signed as
/// `signed`.
pub fn body_auth(target: &str, signed: Signed, data: &[u8]) -> String {
    let mac = key().sign_body(
        "PUT",
        target,
        signed,
        data.len() as u64,
        crc32c::crc32c(data),
    );
    format!("\r\n{BODY_AUTH_HEADER}: {mac}")
}

/// A complete signed PUT of `data` to `target` with Content-Length and header checksums.
pub fn signed_put(target: &str, data: &[u8]) -> String {
    let signed = Signed::now();
    format!(
        "{}\r\nContent-Length: {}\r\n{CRC_HEADER}: {:08x}{}",
        signed_as("PUT", target, signed),
        data.len(),
        crc32c::crc32c(data),
        body_auth(target, signed, data)
    )
}
