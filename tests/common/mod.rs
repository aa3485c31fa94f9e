//! Shared harness of the integration tests: `TestServer` runs the real `cairn` binary on
//! 127.0.0.1:0 in a temporary data directory (one per test), and `S3Client` is a raw S3 client
//! over reqwest that signs with Cairn's own SigV4 signer. Beside well-formed requests it sends
//! deliberately broken ones (wrong secret, skewed clock, malformed or missing Authorization, a
//! payload hash that lies), which real SDKs cannot. Every response is checked for the headers
//! S3 always sends and for the absence of a 500.

// Each tests/*.rs file is its own crate and uses a different part of this harness.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cairn::s3::sigv4::{SigningParams, UNSIGNED_PAYLOAD, presign, sign_request, uri_encode};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use md5_reference::Md5;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use time::OffsetDateTime;

pub const MIB: usize = 1 << 20;
/// The chunk size every test server runs with, so small objects span several chunks.
pub const CHUNK: usize = MIB;
/// S3's smallest part but the last.
pub const PART: usize = 5 * MIB;
pub const REGION: &str = "us-east-1";
/// The bootstrap key tests give the server through its environment.
pub const TEST_KEY_ID: &str = "CAIRNTESTKEY0000";
pub const TEST_SECRET: &str = "test/Secret+Key=with/odd chars";

/// How long a server may take to print its endpoint and answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// SIGTERM drains in-flight requests; the test servers have none left, so this is generous.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Polling interval for readiness, process exit and background cleanup.
const POLL: Duration = Duration::from_millis(25);

/// A `cairn server` child process with its own data directory, killed when dropped.
pub struct TestServer {
    child: Option<Child>,
    /// Holds the data directory and the log; removed when the server is dropped.
    _root: TempDir,
    /// The server's `--data` directory.
    pub data: PathBuf,
    /// `host:port` the server listens on.
    pub host: String,
    pub access_key_id: String,
    pub secret: String,
    /// Whether the bootstrap key comes from the environment (else the server generates one).
    env_credentials: bool,
    /// Arguments added to `cairn server`'s defaults.
    extra_args: Vec<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    log: PathBuf,
}

/// A fresh server and a client for it, with `bucket` created.
pub async fn server_with_bucket(bucket: &str) -> (TestServer, S3Client) {
    let server = TestServer::start().await;
    let client = server.client();
    client.create_bucket(bucket).await;
    (server, client)
}

impl TestServer {
    /// A fresh server whose bootstrap key is [`TEST_KEY_ID`]/[`TEST_SECRET`].
    pub async fn start() -> TestServer {
        Self::start_in(tempfile::tempdir().expect("temp dir"), true, &[]).await
    }

    /// As [`TestServer::start`], with more `cairn server` arguments (e.g. `--domain`).
    pub async fn start_with_args(args: &[&str]) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("temp dir"), true, args).await
    }

    /// A fresh server without key variables in its environment: it generates its key.
    pub async fn start_with_generated_credentials() -> TestServer {
        Self::start_in(tempfile::tempdir().expect("temp dir"), false, &[]).await
    }

    async fn start_in(root: TempDir, env_credentials: bool, extra_args: &[&str]) -> TestServer {
        let data = root.path().join("data");
        let log = root.path().join("server.log");
        let mut server = TestServer {
            child: None,
            _root: root,
            data,
            host: String::new(),
            access_key_id: String::new(),
            secret: String::new(),
            env_credentials,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            stdout: Arc::new(Mutex::new(Vec::new())),
            reader: None,
            log,
        };
        server.launch().await;
        server
    }

    /// Starts the binary on the data directory and waits until it answers its health check.
    async fn launch(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open server log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(["server", "--listen", "127.0.0.1:0", "--data"])
            .arg(&self.data)
            .args(["--chunk-size", "1MiB", "--gc-grace", "0s"])
            .args(&self.extra_args)
            .env("CAIRN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        if self.env_credentials {
            // Secrets go through the environment, never argv.
            cmd.env("CAIRN_ACCESS_KEY_ID", TEST_KEY_ID)
                .env("CAIRN_SECRET_ACCESS_KEY", TEST_SECRET);
        } else {
            cmd.env_remove("CAIRN_ACCESS_KEY_ID")
                .env_remove("CAIRN_SECRET_ACCESS_KEY");
        }
        let mut child = cmd.spawn().expect("spawn cairn server");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        self.stdout = lines.clone();
        // Drains stdout for the whole life of the process so the pipe never fills.
        self.reader = Some(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().expect("stdout lock").push(line);
            }
        }));
        self.child = Some(child);

        let endpoint = self
            .wait_for_line("Cairn S3 endpoint: http://")
            .await
            .trim_start_matches("Cairn S3 endpoint: http://")
            .trim()
            .to_owned();
        self.host = endpoint;
        let key_line = self.wait_for_line("Access key id:").await;
        let key_id = key_line["Access key id:".len()..].trim().to_owned();
        if self.env_credentials {
            assert_eq!(key_id, TEST_KEY_ID);
            self.access_key_id = TEST_KEY_ID.to_owned();
            self.secret = TEST_SECRET.to_owned();
        } else {
            self.access_key_id = key_id;
        }
        self.wait_healthy().await;
    }

    /// The first stdout line starting with `prefix`, waiting for it up to the start timeout.
    async fn wait_for_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(line) = self
                .stdout_lines()
                .into_iter()
                .find(|l| l.starts_with(prefix))
            {
                return line;
            }
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                panic!(
                    "server exited with {status} before printing {prefix:?}\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server did not print {prefix:?} in time\n{}",
                self.log_text()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_healthy(&mut self) {
        let http = http_client();
        let url = format!("{}/_cairn/health", self.endpoint());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(resp) = http.get(&url).send().await
                && resp.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server never became healthy\n{}",
                self.log_text()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("server is running")
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Everything the current process printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout lock").clone()
    }

    /// The server's log (stderr), for failure messages.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client signing with the server's bootstrap key.
    pub fn client(&self) -> S3Client {
        self.client_with(&self.access_key_id, &self.secret)
    }

    pub fn client_with(&self, access_key_id: &str, secret: &str) -> S3Client {
        S3Client {
            http: http_client(),
            host: self.host.clone(),
            host_header: self.host.clone(),
            access_key_id: access_key_id.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub async fn stop_gracefully(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.wait_stopped().await
    }

    /// Sends SIGTERM without waiting for the process to exit.
    pub fn send_sigterm(&self) {
        let pid = self.pid();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit (after a signal); returns its exit status.
    pub async fn wait_stopped(&mut self) -> ExitStatus {
        let status = self.wait_exit().await;
        self.finish_reader();
        status
    }

    /// SIGKILL, as a crash would end it.
    pub async fn kill(&mut self) {
        self.child_mut().kill().expect("kill server");
        self.wait_exit().await;
        self.finish_reader();
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit in time");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for stdout to reach end of file, so `stdout_lines` holds all the process printed.
    fn finish_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stdout reader");
        }
    }

    /// Starts the server again on the same data directory, once stopped or killed.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        self.launch().await;
    }

    /// Runs `cairn admin --meta sqlite://DATA/meta.db ARGS...`.
    pub fn admin(&self, args: &[&str]) -> Output {
        let meta = format!("sqlite://{}", self.data.join("meta.db").display());
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["admin", "--meta", &meta])
            .args(args)
            .env_remove("CAIRN_ACCESS_KEY_ID")
            .env_remove("CAIRN_SECRET_ACCESS_KEY")
            .output()
            .expect("run cairn admin")
    }

    pub fn chunks_dir(&self) -> PathBuf {
        self.data.join("chunks")
    }

    /// Every file under DATA/chunks (committed chunks and temp files alike), sorted.
    pub fn chunk_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        collect_files(&self.chunks_dir(), &mut files);
        files.sort();
        files
    }

    /// Polls until DATA/chunks holds exactly `expected` files (cleanup and the GC, which runs
    /// every 2 s, work in the background); returns them, or panics with what is left.
    pub async fn wait_for_chunk_files(&self, expected: usize) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let files = self.chunk_files();
            if files.len() == expected {
                return files;
            }
            assert!(
                Instant::now() < deadline,
                "expected {expected} chunk files, found {}: {files:?}",
                files.len()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// SigV4 with the client's key, signed now.
    Signed,
    /// Signed with this secret instead of the client's.
    WrongSecret(String),
    /// Signed with the client's key but a clock this many seconds off (negative: in the past).
    Skewed(i64),
    /// Signed at this instant, so that two signings of one request agree (aws-chunked bodies
    /// chain their chunk signatures from the request's).
    SignedAt(OffsetDateTime),
    /// Signed, then the Authorization header replaced by this value.
    Authorization(String),
    /// No credentials at all.
    Anonymous,
}

/// What goes in `x-amz-content-sha256` (and the canonical request's payload line).
#[derive(Clone, Debug)]
pub enum Payload {
    /// The hex SHA-256 of the body.
    Sha256,
    Unsigned,
    /// Any value, e.g. the hash of some other body.
    Literal(String),
}

/// A raw S3 client: path-style requests to one server, signed with Cairn's own signer.
#[derive(Clone)]
pub struct S3Client {
    http: reqwest::Client,
    /// Where requests go: `127.0.0.1:port`.
    pub host: String,
    /// The `Host` header requests carry and sign; the same as `host` but for
    /// virtual-hosted-style requests (`bucket.domain:port`).
    pub host_header: String,
    pub access_key_id: String,
    pub secret: String,
}

/// A request being built: `client.request(Method::PUT, "/bucket/key").body(..).send().await`.
pub struct RequestBuilder<'a> {
    client: &'a S3Client,
    method: Method,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    payload: Payload,
    auth: Auth,
    /// Headers removed after signing, to send a request missing something SigV4 needs.
    removed: Vec<String>,
}

/// A response with its body read.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The raw (percent-encoded) path of `/bucket/key`, as an SDK would send it.
pub fn object_path(bucket: &str, key: &str) -> String {
    uri_encode(&format!("/{bucket}/{key}"), false)
}

/// A query string from already decoded pairs, each name and value percent-encoded.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", uri_encode(n, true), uri_encode(v, true)))
        .collect::<Vec<_>>()
        .join("&")
}

impl S3Client {
    /// `path` is the raw, already percent-encoded path (see [`object_path`]).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            path: path.to_owned(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            payload: Payload::Sha256,
            auth: Auth::Signed,
            removed: Vec::new(),
        }
    }

    pub fn params(&self, now: OffsetDateTime) -> SigningParams<'_> {
        SigningParams {
            access_key_id: &self.access_key_id,
            secret: &self.secret,
            region: REGION,
            now,
        }
    }

    /// A presigned URL for `method path?query`, valid for `expires_secs` from `signed_at`.
    pub fn presigned_url(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        expires_secs: u64,
        signed_at: OffsetDateTime,
    ) -> String {
        let query = presign(
            method,
            &self.host,
            path,
            query,
            expires_secs,
            &self.params(signed_at),
        );
        format!("http://{}{path}?{query}", self.host)
    }

    /// Sends a request with no credentials and no extra headers, e.g. a presigned URL.
    pub async fn send_url(&self, method: Method, url: &str, body: Vec<u8>) -> Resp {
        let resp = self
            .http
            .request(method.clone(), url)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        Resp::read(resp, &method).await
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let resp = self
            .request(Method::PUT, &format!("/{bucket}"))
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
    }

    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Resp {
        self.request(Method::PUT, &object_path(bucket, key))
            .body(body.to_vec())
            .payload(if body.len() > 64 * 1024 {
                Payload::Unsigned
            } else {
                Payload::Sha256
            })
            .send()
            .await
    }

    /// PUT that must succeed; returns the quoted ETag.
    pub async fn put_ok(&self, bucket: &str, key: &str, body: &[u8]) -> String {
        let resp = self.put(bucket, key, body).await;
        resp.assert_status(StatusCode::OK);
        resp.header("etag").expect("ETag on PUT").to_owned()
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Resp {
        self.request(Method::GET, &object_path(bucket, key))
            .send()
            .await
    }

    pub async fn head(&self, bucket: &str, key: &str) -> Resp {
        self.request(Method::HEAD, &object_path(bucket, key))
            .send()
            .await
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Resp {
        self.request(Method::DELETE, &object_path(bucket, key))
            .send()
            .await
    }

    /// CreateMultipartUpload that must succeed; returns the upload id.
    pub async fn create_upload(&self, bucket: &str, key: &str) -> String {
        let resp = self
            .request(Method::POST, &object_path(bucket, key))
            .query("uploads")
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        resp.xml_value("UploadId").expect("UploadId")
    }

    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: &[u8],
    ) -> Resp {
        self.request(Method::PUT, &object_path(bucket, key))
            .query(&query_string(&[
                ("partNumber", &number.to_string()),
                ("uploadId", upload_id),
            ]))
            .body(body.to_vec())
            .payload(Payload::Unsigned)
            .send()
            .await
    }

    /// UploadPart that must succeed; returns the part's quoted ETag.
    pub async fn upload_part_ok(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: &[u8],
    ) -> String {
        let resp = self.upload_part(bucket, key, upload_id, number, body).await;
        resp.assert_status(StatusCode::OK);
        resp.header("etag").expect("ETag on UploadPart").to_owned()
    }

    pub async fn complete(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Resp {
        self.request(Method::POST, &object_path(bucket, key))
            .query(&query_string(&[("uploadId", upload_id)]))
            .body(complete_xml(parts).into_bytes())
            .send()
            .await
    }

    /// Uploads `data` as parts of `part_size` bytes (the last one shorter) and completes the
    /// upload; returns the object's quoted ETag.
    pub async fn multipart_put(
        &self,
        bucket: &str,
        key: &str,
        data: &[u8],
        part_size: usize,
    ) -> String {
        let upload_id = self.create_upload(bucket, key).await;
        let mut parts = Vec::new();
        let pieces: Vec<&[u8]> = if data.is_empty() {
            vec![data]
        } else {
            data.chunks(part_size).collect()
        };
        for (i, piece) in pieces.into_iter().enumerate() {
            let number = i as u32 + 1;
            let etag = self
                .upload_part_ok(bucket, key, &upload_id, number, piece)
                .await;
            parts.push((number, etag));
        }
        let resp = self.complete(bucket, key, &upload_id, &parts).await;
        resp.assert_status(StatusCode::OK);
        resp.xml_value("ETag")
            .expect("ETag in CompleteMultipartUploadResult")
    }

    /// ListObjectsV2 (or v1 when `v2` is false) with the given query pairs.
    pub async fn list(&self, bucket: &str, v2: bool, pairs: &[(&str, &str)]) -> Resp {
        let mut all: Vec<(&str, &str)> = Vec::new();
        if v2 {
            all.push(("list-type", "2"));
        }
        all.extend_from_slice(pairs);
        let resp = self
            .request(Method::GET, &format!("/{bucket}"))
            .query(&query_string(&all))
            .send()
            .await;
        resp.assert_status(StatusCode::OK);
        resp
    }
}

/// The body of a CompleteMultipartUpload.
pub fn complete_xml(parts: &[(u32, String)]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
            xml_escape(etag)
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

impl RequestBuilder<'_> {
    /// The raw query string, already encoded (`uploads`, `partNumber=1&uploadId=..`).
    pub fn query(mut self, raw: &str) -> Self {
        self.query = raw.to_owned();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    pub fn payload(mut self, payload: Payload) -> Self {
        self.payload = payload;
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Drops a header after signing.
    pub fn without(mut self, name: &str) -> Self {
        self.removed.push(name.to_owned());
        self
    }

    /// The request's headers, signed as `auth` says (Host included, Content-Length not).
    pub fn signed_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::HOST,
            HeaderValue::from_str(&self.client.host_header).expect("host header"),
        );
        for (name, value) in &self.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let payload_hash = match &self.payload {
            Payload::Sha256 => sha256_hex(&self.body),
            Payload::Unsigned => UNSIGNED_PAYLOAD.to_owned(),
            Payload::Literal(v) => v.clone(),
        };
        let now = OffsetDateTime::now_utc();
        let client = self.client;
        let (secret, when) = match &self.auth {
            Auth::Anonymous => return headers,
            Auth::Signed | Auth::Authorization(_) => (client.secret.as_str(), now),
            Auth::WrongSecret(s) => (s.as_str(), now),
            Auth::Skewed(secs) => (client.secret.as_str(), now + time::Duration::seconds(*secs)),
            Auth::SignedAt(at) => (client.secret.as_str(), *at),
        };
        let params = SigningParams {
            access_key_id: &client.access_key_id,
            secret,
            region: REGION,
            now: when,
        };
        sign_request(
            &self.method,
            &self.path,
            &self.query,
            &mut headers,
            &payload_hash,
            &params,
        );
        if let Auth::Authorization(value) = &self.auth {
            headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("authorization value"),
            );
        }
        for name in &self.removed {
            headers.remove(name.as_str());
        }
        headers
    }

    fn url(&self) -> String {
        if self.query.is_empty() {
            format!("http://{}{}", self.client.host, self.path)
        } else {
            format!("http://{}{}?{}", self.client.host, self.path, self.query)
        }
    }

    pub async fn send(self) -> Resp {
        let headers = self.signed_headers();
        let url = self.url();
        let mut request = self.client.http.request(self.method.clone(), &url);
        request = request.headers(headers);
        if matches!(self.method, Method::PUT | Method::POST) || !self.body.is_empty() {
            request = request
                .header(http::header::CONTENT_LENGTH, self.body.len())
                .body(self.body);
        }
        let resp = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} {url}: {e}", self.method));
        Resp::read(resp, &self.method).await
    }

    /// The request head (request line and headers, signed), with `Content-Length` when given
    /// and `unsigned` headers added after signing (e.g. `expect`, `transfer-encoding`), for
    /// tests that write the body themselves over a raw connection.
    pub fn raw_head(&self, content_length: Option<u64>, unsigned: &[(&str, &str)]) -> String {
        let target = if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        };
        let mut head = format!("{} {target} HTTP/1.1\r\n", self.method);
        for (name, value) in &self.signed_headers() {
            head.push_str(&format!(
                "{name}: {}\r\n",
                value.to_str().expect("ASCII header")
            ));
        }
        if let Some(n) = content_length {
            head.push_str(&format!("content-length: {n}\r\n"));
        }
        for (name, value) in unsigned {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head
    }
}

impl Resp {
    async fn read(resp: reqwest::Response, method: &Method) -> Resp {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("response body").to_vec();
        let resp = Resp {
            status,
            headers,
            body,
        };
        // What every S3 response carries, errors included.
        assert!(
            resp.header("x-amz-request-id")
                .is_some_and(|v| !v.is_empty()),
            "{method} answered {status} without x-amz-request-id: {resp:?}"
        );
        assert!(
            resp.header("date")
                .and_then(cairn::s3::date::parse_http_date)
                .is_some(),
            "{method} answered {status} without a valid Date: {resp:?}"
        );
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "{method} answered 500: {}",
            resp.text()
        );
        resp
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an error body.
    pub fn code(&self) -> Option<String> {
        self.xml_value("Code")
    }

    pub fn xml_value(&self, tag: &str) -> Option<String> {
        xml_values(&self.text(), tag).into_iter().next()
    }

    pub fn xml_values(&self, tag: &str) -> Vec<String> {
        xml_values(&self.text(), tag)
    }

    pub fn assert_status(&self, expected: StatusCode) {
        assert_eq!(
            self.status,
            expected,
            "unexpected status; body: {}",
            self.text()
        );
    }

    /// Asserts an S3 error: the status, the `<Code>` (when the response has a body) and an
    /// XML content type.
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        self.assert_status(status);
        assert_eq!(
            self.code().as_deref(),
            Some(code),
            "expected {code}; body: {}",
            self.text()
        );
        assert_eq!(self.header("content-type"), Some("application/xml"));
        assert!(
            self.xml_value("RequestId")
                .is_some_and(|id| Some(id.as_str()) == self.header("x-amz-request-id")),
            "RequestId in the body must match x-amz-request-id: {}",
            self.text()
        );
    }

    pub fn content_length(&self) -> u64 {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("Content-Length")
    }
}

/// The raw inner text of every `<tag>...</tag>` (not nested in itself), in document order.
pub fn xml_elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// As [`xml_elements`], with entities and character references resolved.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    xml_elements(xml, tag)
        .into_iter()
        .map(xml_unescape)
        .collect()
}

pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let end = tail.find(';').expect("entity ends with ;");
        let entity = &tail[1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).expect("hex reference")
                } else {
                    entity
                        .strip_prefix('#')
                        .expect("character reference")
                        .parse()
                        .expect("decimal reference")
                };
                char::from_u32(n).expect("valid character")
            }
        };
        out.push(c);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Deterministic pseudo-random bytes (xorshift64), different for each seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn md5_bytes(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(md5_bytes(data))
}

pub fn content_md5(data: &[u8]) -> String {
    BASE64.encode(md5_bytes(data))
}

pub fn sha256_hex(data: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(data).into();
    hex::encode(digest)
}

pub fn sha256_base64(data: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(data).into();
    BASE64.encode(digest)
}

pub fn crc32_base64(data: &[u8]) -> String {
    BASE64.encode(crc32fast::hash(data).to_be_bytes())
}

/// The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, then `-N`, quoted.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut all = Vec::with_capacity(parts.len() * 16);
    for part in parts {
        all.extend_from_slice(&md5_bytes(part));
    }
    format!("\"{}-{}\"", md5_hex(&all), parts.len())
}

/// Writes a request head and `body_sent` bytes of the body over a raw connection, then shuts
/// the socket down as a client that disconnects mid-upload would. Returns whatever the server
/// answered before closing (possibly nothing).
pub fn send_truncated(host: &str, head: &str, body_sent: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    // The server may answer and close before all of the body is written; that is allowed.
    let _ = stream.write_all(body_sent);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, as received.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Splits what a server sent into head and body; `None` when it sent nothing.
    pub fn parse(bytes: &[u8]) -> Option<RawResponse> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some(RawResponse {
            status,
            head,
            body: bytes[end + 4..].to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn code(&self) -> Option<String> {
        xml_values(&String::from_utf8_lossy(&self.body), "Code")
            .into_iter()
            .next()
    }
}

/// Sends `head` and `body` on a new connection that the server is asked to close after its
/// answer, and reads that answer.
pub fn raw_exchange(host: &str, head: &str, body: &[u8]) -> RawResponse {
    let head = head.replacen("\r\n", "\r\nconnection: close\r\n", 1);
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    RawResponse::parse(&answer)
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&answer)))
}
