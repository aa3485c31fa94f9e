//! Chaos under load: client workers writing, overwriting, deleting and reading a fixed set of
//! keys through every gateway while a chaos loop SIGKILLs and restarts data nodes and gateways
//! and flips bits in committed chunk files; then everything restarts, the cluster must converge,
//! and every key is checked against a model of what was acknowledged.
//!
//! The model is kept simple enough to be obviously right: each key belongs to one worker, so
//! the operations on a key are sequential, and the worker alone knows, per key, the last
//! acknowledged state and the attempts since whose outcome it cannot know (see [`KeyModel`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn::client::{Client, Credentials, Endpoint, Error, PayloadHash, Request};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::cluster::{Cluster, KEY_ID, KEY_SECRET};
use crate::data::random_bytes;
use crate::s3::{complete_xml, object_path, query_string, xml_values};
use crate::{MIB, REGION};

pub const BUCKET: &str = "chaos";
/// Long enough that a request slowed by a dead node (3 s node timeout, 2 s stall timeout)
/// still finishes; a request that takes longer is counted as unknown, not failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Objects up to this size are stored in their metadata row, not in chunks.
const INLINE_MAX: u64 = 16 * 1024;
/// The smallest part S3 accepts but the last.
const MIN_PART: u64 = 5 * MIB as u64;
/// The most bytes a ranged read asks for.
const MAX_RANGE: u64 = 300 * 1024;
/// Failures described in full at the end; the rest are only counted.
const MAX_REPORTED: usize = 20;
/// How much of a transport error's text names its cause (the rest varies from one to the next).
const MAX_CAUSE: usize = 60;

/// A small, seedable PRNG (xorshift64*), so that a failing run can be replayed with its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a key holds: nothing, or the bytes `random_bytes(seed, len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Absent,
    Object { seed: u64, len: u64 },
}

impl State {
    fn bytes(self) -> Option<Vec<u8>> {
        match self {
            State::Absent => None,
            State::Object { seed, len } => Some(random_bytes(seed, len as usize)),
        }
    }
}

/// One key as its worker knows it.
///
/// `acked` is the state of the last acknowledged write or delete. `pending` holds the attempts
/// since then that ended with an error response: the request finished, but may have taken
/// effect before it failed, so the key may hold any of them; the next acknowledged write
/// supersedes them all. `unknown` holds attempts whose connection broke or timed out: the
/// gateway may still be working on them (or died), so they may take effect at any later time;
/// they are never forgotten.
#[derive(Clone, Debug)]
pub struct KeyModel {
    pub acked: State,
    pub pending: Vec<State>,
    pub unknown: Vec<State>,
}

impl KeyModel {
    fn new() -> KeyModel {
        KeyModel {
            acked: State::Absent,
            pending: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Every state a read of the key may return.
    fn allowed(&self) -> Vec<State> {
        let mut all = vec![self.acked];
        all.extend(&self.pending);
        all.extend(&self.unknown);
        all
    }
}

/// What the workers and the chaos loop counted.
#[derive(Default)]
pub struct Counters {
    pub acked_writes: AtomicU64,
    pub acked_deletes: AtomicU64,
    pub reads_verified: AtomicU64,
    pub reads_unavailable: AtomicU64,
    /// Writes and deletes answered with an error (503) or never answered.
    pub writes_failed: AtomicU64,
    /// Of those, the ones whose connection broke or timed out.
    pub writes_unknown: AtomicU64,
    pub server_errors: AtomicU64,
    pub node_kills: AtomicU64,
    pub gateway_kills: AtomicU64,
    pub bit_flips: AtomicU64,
    /// Why requests failed without a violation (503s, broken connections), with how often.
    pub causes: Mutex<BTreeMap<String, u64>>,
    /// Wrong bytes, a lost acknowledged state, a 500, an unexpected answer.
    pub violations: Mutex<Vec<String>>,
    pub violation_count: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn violation(&self, what: String) {
        Counters::bump(&self.violation_count);
        let mut list = self.violations.lock().expect("violations lock");
        if list.len() < MAX_REPORTED {
            println!("chaos: VIOLATION {what}");
            list.push(what);
        }
    }

    /// Counts a failure that chaos may cause: `what` request, and the answer (or its absence).
    fn cause(&self, what: &str, answer: &Answer) {
        let why = match answer {
            Answer::Response(status, _, body) => {
                let text = String::from_utf8_lossy(body);
                let code = xml_values(&text, "Code").pop().unwrap_or_default();
                let message = xml_values(&text, "Message").pop().unwrap_or_default();
                format!("{status} {code}: {message}")
            }
            Answer::NotSent => "no gateway reachable".to_owned(),
            Answer::Unknown(e) => {
                let mut text = e.to_string();
                text.truncate(MAX_CAUSE);
                format!("no answer: {text}")
            }
        };
        let mut causes = self.causes.lock().expect("causes lock");
        *causes.entry(format!("{what}: {why}")).or_default() += 1;
    }

    /// The causes of failures, one a line, the most frequent first.
    pub fn causes(&self) -> String {
        let causes = self.causes.lock().expect("causes lock");
        let mut all: Vec<(&String, &u64)> = causes.iter().collect();
        all.sort_by(|a, b| b.1.cmp(a.1));
        all.iter()
            .map(|(why, n)| format!("  {n:>6} {why}\n"))
            .collect()
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The figures, one line.
    pub fn summary(&self) -> String {
        format!(
            "acked writes {}, acked deletes {}, reads verified {}, reads unavailable {}, \
             writes failed {} (unknown outcome {}), 500s {}, data node kills {}, gateway kills {}, \
             bit flips {}, violations {}",
            Counters::get(&self.acked_writes),
            Counters::get(&self.acked_deletes),
            Counters::get(&self.reads_verified),
            Counters::get(&self.reads_unavailable),
            Counters::get(&self.writes_failed),
            Counters::get(&self.writes_unknown),
            Counters::get(&self.server_errors),
            Counters::get(&self.node_kills),
            Counters::get(&self.gateway_kills),
            Counters::get(&self.bit_flips),
            Counters::get(&self.violation_count),
        )
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("violations lock").clone()
    }
}

/// How one request ended.
enum Answer {
    Response(StatusCode, HeaderMap, Bytes),
    /// Never sent (no connection could be made): it cannot have taken effect.
    NotSent,
    /// Sent, but no complete answer arrived: it may take effect at any time.
    Unknown(Error),
}

/// A client of every gateway, signing with the cluster's test key.
#[derive(Clone)]
pub struct Gateways {
    clients: Vec<Client>,
}

impl Gateways {
    pub fn new(cluster: &Cluster) -> Gateways {
        let clients = cluster
            .gateways
            .iter()
            .map(|g| {
                Client::new(Endpoint {
                    addr: g.addr.parse().expect("a socket address"),
                    host: g.addr.clone(),
                    region: REGION.to_owned(),
                    credentials: Credentials {
                        access_key_id: KEY_ID.to_owned(),
                        secret: KEY_SECRET.to_owned(),
                    },
                    timeout: REQUEST_TIMEOUT,
                })
            })
            .collect();
        Gateways { clients }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Sends `request` to `gateway`, or to the next one when it cannot be reached, as a client
    /// given several endpoints (or a load balancer) does; `NotSent` when none can be.
    async fn send(&self, gateway: usize, request: impl Fn() -> Request) -> Answer {
        for i in 0..self.clients.len() {
            let client = &self.clients[(gateway + i) % self.clients.len()];
            match client.fetch(request(), 64 * MIB).await {
                Ok((status, headers, body)) => return Answer::Response(status, headers, body),
                Err(Error::Connect { .. }) => continue,
                Err(e) => return Answer::Unknown(e),
            }
        }
        Answer::NotSent
    }

    /// Sends `request` to `gateway` only (the final check reads through each).
    async fn send_to(&self, gateway: usize, request: Request) -> Answer {
        match self.clients[gateway].fetch(request, 64 * MIB).await {
            Ok((status, headers, body)) => Answer::Response(status, headers, body),
            Err(Error::Connect { .. }) => Answer::NotSent,
            Err(e) => Answer::Unknown(e),
        }
    }
}

/// One worker: its keys and their models, a PRNG, and where it reports.
struct Worker {
    id: usize,
    keys: BTreeMap<String, KeyModel>,
    rng: Rng,
    gateways: Gateways,
    counters: Arc<Counters>,
    chunk_size: u64,
}

/// Runs `workers` workers over `keys_per_worker` keys each until `until`; returns every key's
/// model.
pub fn run_workers(
    gateways: &Gateways,
    counters: &Arc<Counters>,
    workers: usize,
    keys_per_worker: usize,
    chunk_size: u64,
    seed: u64,
    until: Instant,
) -> tokio::task::JoinHandle<BTreeMap<String, KeyModel>> {
    let mut handles = Vec::new();
    for id in 0..workers {
        let keys = (0..keys_per_worker)
            .map(|k| (format!("w{id}/key{k:03}"), KeyModel::new()))
            .collect();
        let mut worker = Worker {
            id,
            keys,
            rng: Rng::new(seed ^ ((id as u64 + 1) << 32)),
            gateways: gateways.clone(),
            counters: counters.clone(),
            chunk_size,
        };
        handles.push(tokio::spawn(async move {
            while Instant::now() < until {
                worker.step().await;
            }
            worker.keys
        }));
    }
    tokio::spawn(async move {
        let mut all = BTreeMap::new();
        for handle in handles {
            all.extend(handle.await.expect("a worker panicked"));
        }
        all
    })
}

impl Worker {
    async fn step(&mut self) {
        let index = self.rng.below(self.keys.len() as u64) as usize;
        let key = self.keys.keys().nth(index).expect("a key").clone();
        let gateway = self.rng.below(self.gateways.len() as u64) as usize;
        let roll = self.rng.below(100);
        let seed = self.rng.next_u64();
        match roll {
            0..25 => self.read(&key, gateway, None).await,
            25..45 => {
                let range = match self.keys[&key].acked {
                    State::Object { len, .. } if len > 0 => {
                        let start = self.rng.below(len);
                        let end = start + self.rng.below((len - start).min(MAX_RANGE));
                        Some((start, end))
                    }
                    _ => None,
                };
                self.read(&key, gateway, range).await
            }
            45..60 => {
                let len = self.rng.below(INLINE_MAX + 1);
                self.put(&key, gateway, State::Object { seed, len }).await
            }
            60..80 => {
                let len = self.rng.between(INLINE_MAX + 1, 8 * self.chunk_size);
                self.put(&key, gateway, State::Object { seed, len }).await
            }
            80..88 => {
                // Mostly one small part; now and then a full-size first part and a tail.
                let len = if self.rng.percent(25) {
                    MIN_PART + self.rng.between(1, 300 * 1024)
                } else {
                    self.rng.between(1, 4 * self.chunk_size)
                };
                self.multipart(&key, gateway, State::Object { seed, len })
                    .await
            }
            _ => self.delete(&key, gateway).await,
        }
    }

    fn model(&mut self, key: &str) -> &mut KeyModel {
        self.keys.get_mut(key).expect("a key of this worker")
    }

    /// Records how a write of `state` ended: `Some(true)` acknowledged, `Some(false)` failed
    /// with an answer, `None` not sent.
    fn settle(&mut self, key: &str, state: State, answer: &Answer, acked: bool) {
        let counters = self.counters.clone();
        let model = self.model(key);
        match answer {
            _ if acked => {
                model.acked = state;
                model.pending.clear();
                let counter = match state {
                    State::Absent => &counters.acked_deletes,
                    State::Object { .. } => &counters.acked_writes,
                };
                Counters::bump(counter);
            }
            Answer::Response(..) => {
                model.pending.push(state);
                Counters::bump(&counters.writes_failed);
            }
            Answer::NotSent => Counters::bump(&counters.writes_failed),
            Answer::Unknown(_) => {
                model.unknown.push(state);
                Counters::bump(&counters.writes_failed);
                Counters::bump(&counters.writes_unknown);
            }
        }
    }

    /// Whether an error answer to a write is one that chaos may cause; a violation otherwise.
    fn check_write_error(&self, what: &str, key: &str, answer: &Answer) {
        match answer {
            Answer::Response(status, _, body) if *status != StatusCode::SERVICE_UNAVAILABLE => {
                if *status == StatusCode::INTERNAL_SERVER_ERROR {
                    Counters::bump(&self.counters.server_errors);
                }
                self.counters.violation(format!(
                    "worker {}: {what} {key} answered {status}: {}",
                    self.id,
                    String::from_utf8_lossy(body)
                ));
            }
            _ => self.counters.cause(what, answer),
        }
    }

    async fn put(&mut self, key: &str, gateway: usize, state: State) {
        let body = state.bytes().expect("an object state");
        let payload = if body.len() as u64 > INLINE_MAX {
            PayloadHash::Unsigned
        } else {
            PayloadHash::Sha256
        };
        let path = object_path(BUCKET, key);
        let request = || {
            Request::new(Method::PUT, &path)
                .body(body.clone())
                .payload(payload.clone())
        };
        let answer = self.gateways.send(gateway, request).await;
        let acked = matches!(answer, Answer::Response(StatusCode::OK, ..));
        if !acked {
            self.check_write_error("PUT", key, &answer);
        }
        self.settle(key, state, &answer, acked);
    }

    async fn delete(&mut self, key: &str, gateway: usize) {
        let path = object_path(BUCKET, key);
        let request = || Request::new(Method::DELETE, &path);
        let answer = self.gateways.send(gateway, request).await;
        let acked = matches!(answer, Answer::Response(StatusCode::NO_CONTENT, ..));
        if !acked {
            self.check_write_error("DELETE", key, &answer);
        }
        self.settle(key, State::Absent, &answer, acked);
    }

    /// Create, parts, complete. Only the completion can change what the key holds, so a
    /// failure before it leaves the model as it was.
    async fn multipart(&mut self, key: &str, gateway: usize, state: State) {
        let path = object_path(BUCKET, key);
        let create = || Request::new(Method::POST, &path).query("uploads");
        let answer = self.gateways.send(gateway, create).await;
        let upload_id = match &answer {
            Answer::Response(StatusCode::OK, _, body) => {
                match xml_values(&String::from_utf8_lossy(body), "UploadId").pop() {
                    Some(id) => id,
                    None => {
                        return self.counters.violation(format!(
                            "CreateMultipartUpload {key} answered no UploadId: {}",
                            String::from_utf8_lossy(body)
                        ));
                    }
                }
            }
            _ => {
                self.check_write_error("CreateMultipartUpload", key, &answer);
                return Counters::bump(&self.counters.writes_failed);
            }
        };
        let body = state.bytes().expect("an object state");
        let mut parts = Vec::new();
        for (i, piece) in body.chunks(MIN_PART as usize).enumerate() {
            let number = i as u32 + 1;
            let query = query_string(&[
                ("partNumber", &number.to_string()),
                ("uploadId", &upload_id),
            ]);
            let request = || {
                Request::new(Method::PUT, &path)
                    .query(&query)
                    .body(piece.to_vec())
                    .payload(PayloadHash::Unsigned)
            };
            let answer = self.gateways.send(gateway, request).await;
            match &answer {
                Answer::Response(StatusCode::OK, headers, _) => {
                    let etag = headers
                        .get("etag")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    parts.push((number, etag.to_owned()));
                }
                _ => {
                    self.check_write_error("UploadPart", key, &answer);
                    return Counters::bump(&self.counters.writes_failed);
                }
            }
        }
        let query = query_string(&[("uploadId", &upload_id)]);
        let xml = complete_xml(&parts);
        let complete = || {
            Request::new(Method::POST, &path)
                .query(&query)
                .body(xml.clone().into_bytes())
        };
        let answer = self.gateways.send(gateway, complete).await;
        // CompleteMultipartUpload may fail after its 200 has begun: the error is in the body.
        let acked = match &answer {
            Answer::Response(StatusCode::OK, _, body) => {
                let text = String::from_utf8_lossy(body);
                if text.contains("<Error>") {
                    if text.contains("<Code>ServiceUnavailable</Code>")
                        || text.contains("<Code>SlowDown</Code>")
                    {
                        self.counters.cause("CompleteMultipartUpload", &answer);
                    } else {
                        self.counters
                            .violation(format!("CompleteMultipartUpload {key} failed: {text}"));
                    }
                    false
                } else {
                    true
                }
            }
            _ => {
                self.check_write_error("CompleteMultipartUpload", key, &answer);
                false
            }
        };
        self.settle(key, state, &answer, acked);
    }

    async fn read(&mut self, key: &str, gateway: usize, range: Option<(u64, u64)>) {
        let path = object_path(BUCKET, key);
        let request = || {
            let request = Request::new(Method::GET, &path);
            match range {
                Some((start, end)) => request.header(
                    http::header::RANGE,
                    HeaderValue::from_str(&format!("bytes={start}-{end}")).expect("a header value"),
                ),
                None => request,
            }
        };
        let answer = self.gateways.send(gateway, request).await;
        let allowed = self.keys[key].allowed();
        match check_read(&answer, &allowed, range) {
            ReadCheck::Verified => Counters::bump(&self.counters.reads_verified),
            ReadCheck::Unavailable => {
                Counters::bump(&self.counters.reads_unavailable);
                self.counters.cause("GET", &answer);
            }
            ReadCheck::Wrong(why) => {
                if let Answer::Response(StatusCode::INTERNAL_SERVER_ERROR, ..) = answer {
                    Counters::bump(&self.counters.server_errors);
                }
                self.counters.violation(format!(
                    "worker {}: GET {key} range {range:?} via gateway {gateway}: {why}; \
                     the key may hold {allowed:?}",
                    self.id
                ));
            }
        }
    }
}

/// The verdict on one read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadCheck {
    /// The answer is one of the states the key may hold.
    Verified,
    /// 503, or no complete answer.
    Unavailable,
    Wrong(String),
}

/// Judges a GET of a key that may hold any of `allowed`, for `range` (inclusive, as sent).
fn check_read(answer: &Answer, allowed: &[State], range: Option<(u64, u64)>) -> ReadCheck {
    let (status, headers, body) = match answer {
        Answer::Response(status, headers, body) => (*status, headers, body),
        Answer::NotSent | Answer::Unknown(_) => return ReadCheck::Unavailable,
    };
    let objects = || {
        allowed.iter().filter_map(|s| match s {
            State::Object { seed, len } => Some((*seed, *len)),
            State::Absent => None,
        })
    };
    match (status, range) {
        (StatusCode::SERVICE_UNAVAILABLE, _) => ReadCheck::Unavailable,
        (StatusCode::NOT_FOUND, _) => {
            if allowed.contains(&State::Absent) {
                ReadCheck::Verified
            } else {
                ReadCheck::Wrong(format!(
                    "404 {} for a key that must exist",
                    String::from_utf8_lossy(body)
                ))
            }
        }
        (StatusCode::OK, None) => {
            let len = body.len() as u64;
            if objects().any(|(seed, l)| l == len && random_bytes(seed, l as usize) == body[..]) {
                ReadCheck::Verified
            } else {
                ReadCheck::Wrong(format!("200 with {len} bytes that were never written"))
            }
        }
        (StatusCode::PARTIAL_CONTENT, Some((start, end))) => {
            let content_range = headers
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let matches = objects().any(|(seed, len)| {
                let last = end.min(len.saturating_sub(1));
                start < len
                    && content_range == format!("bytes {start}-{last}/{len}")
                    && random_bytes(seed, len as usize)[start as usize..=last as usize] == body[..]
            });
            if matches {
                ReadCheck::Verified
            } else {
                ReadCheck::Wrong(format!(
                    "206 {content_range} with {} bytes that were never written there",
                    body.len()
                ))
            }
        }
        (StatusCode::RANGE_NOT_SATISFIABLE, Some((start, _))) => {
            if objects().any(|(_, len)| len <= start) {
                ReadCheck::Verified
            } else {
                ReadCheck::Wrong("416 for a range inside every allowed object".to_owned())
            }
        }
        (status, _) => ReadCheck::Wrong(format!(
            "unexpected {status}: {}",
            String::from_utf8_lossy(body)
        )),
    }
}

/// Flips one bit of one of `files` (a node's committed chunk files), never of a chunk already
/// damaged once, so that every chunk keeps a good copy on disk; returns the chunk id.
fn flip_bit(
    files: &BTreeMap<String, std::path::PathBuf>,
    flipped: &BTreeSet<String>,
    rng: &mut Rng,
) -> Option<String> {
    let candidates: Vec<(&String, &std::path::PathBuf)> = files
        .iter()
        .filter(|(id, _)| !flipped.contains(*id))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let (id, path) = candidates[rng.below(candidates.len() as u64) as usize];
    flip_bit_in(path, rng).ok()?;
    Some(id.clone())
}

fn flip_bit_in(path: &Path, rng: &mut Rng) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Err(std::io::Error::other("empty chunk file"));
    }
    let offset = rng.below(len);
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut byte)?;
    byte[0] ^= 1 << rng.below(8);
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&byte)
}

/// A process the chaos loop killed, and when it comes back.
struct Down {
    gateway: bool,
    index: usize,
    back_at: Instant,
}

/// Until `until`, once a second: brings back the processes whose downtime is over, then may
/// SIGKILL a data node (at most `max_nodes_down` down at once), a gateway (never the last one
/// up) and flip a bit in a chunk file. Everything is running again when it returns.
pub async fn run_chaos(
    cluster: &mut Cluster,
    counters: &Counters,
    rng: &mut Rng,
    max_nodes_down: usize,
    until: Instant,
) {
    let start = Instant::now();
    let mut down: Vec<Down> = Vec::new();
    let mut flipped = BTreeSet::new();
    let log = |what: String| println!("chaos: {:>6.1}s {what}", start.elapsed().as_secs_f64());
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        for d in down.iter().filter(|d| d.back_at <= now) {
            if d.gateway {
                cluster.gateways[d.index].restart().await;
                log(format!("gateway {} back", d.index));
            } else {
                cluster.nodes[d.index].restart().await;
                log(format!("data node {} back", d.index));
            }
        }
        down.retain(|d| d.back_at > now);
        let nodes_down = down.iter().filter(|d| !d.gateway).count();
        if nodes_down < max_nodes_down && rng.percent(30) {
            let up: Vec<usize> = (0..cluster.nodes.len())
                .filter(|i| cluster.nodes[*i].is_running())
                .collect();
            let victim = up[rng.below(up.len() as u64) as usize];
            cluster.nodes[victim].kill();
            let back_in = Duration::from_millis(rng.between(1_000, 8_000));
            down.push(Down {
                gateway: false,
                index: victim,
                back_at: now + back_in,
            });
            Counters::bump(&counters.node_kills);
            log(format!("SIGKILL data node {victim} for {back_in:?}"));
        }
        let gateways_up = cluster.gateways.iter().filter(|g| g.is_running()).count();
        if gateways_up > 1 && rng.percent(15) {
            let victim = rng.below(cluster.gateways.len() as u64) as usize;
            cluster.gateways[victim].kill();
            let back_in = Duration::from_millis(rng.between(500, 5_000));
            down.push(Down {
                gateway: true,
                index: victim,
                back_at: now + back_in,
            });
            Counters::bump(&counters.gateway_kills);
            log(format!("SIGKILL gateway {victim} for {back_in:?}"));
        }
        if rng.percent(40) {
            let node = rng.below(cluster.nodes.len() as u64) as usize;
            let files = cluster.nodes[node].chunk_files();
            if let Some(id) = flip_bit(&files, &flipped, rng) {
                Counters::bump(&counters.bit_flips);
                log(format!("flipped a bit of chunk {id} on data node {node}"));
                flipped.insert(id);
            }
        }
    }
    for d in down {
        if d.gateway {
            cluster.gateways[d.index].restart().await;
        } else {
            cluster.nodes[d.index].restart().await;
        }
    }
    log("everything running again".to_owned());
}

/// After the chaos, with every process up: reads every key whole through every gateway and
/// lists the bucket through each; any unavailability, any state the model does not allow, and
/// any disagreement between the listing and the reads is a failure. Returns the failures.
pub async fn check_final(gateways: &Gateways, models: &BTreeMap<String, KeyModel>) -> Vec<String> {
    let mut failures = Vec::new();
    for gateway in 0..gateways.len() {
        let mut present = BTreeSet::new();
        for (key, model) in models {
            let request = Request::new(Method::GET, &object_path(BUCKET, key));
            let answer = gateways.send_to(gateway, request).await;
            match check_read(&answer, &model.allowed(), None) {
                ReadCheck::Verified => {
                    if let Answer::Response(StatusCode::OK, ..) = answer {
                        present.insert(key.clone());
                    }
                }
                verdict => failures.push(format!(
                    "gateway {gateway}: GET {key} after convergence: {verdict:?}; the key may \
                     hold {:?}",
                    model.allowed()
                )),
            }
        }
        let listed = list_all(gateways, gateway).await;
        match listed {
            Ok(listed) if listed == present => {}
            Ok(listed) => failures.push(format!(
                "gateway {gateway}: the listing disagrees with the reads: listed only {:?}, \
                 read only {:?}",
                listed.difference(&present).collect::<Vec<_>>(),
                present.difference(&listed).collect::<Vec<_>>()
            )),
            Err(e) => failures.push(format!("gateway {gateway}: listing failed: {e}")),
        }
    }
    failures
}

/// Every key ListObjectsV2 returns, page after page.
async fn list_all(gateways: &Gateways, gateway: usize) -> Result<BTreeSet<String>, String> {
    let mut keys = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut pairs = vec![("list-type", "2"), ("max-keys", "100")];
        if let Some(token) = &token {
            pairs.push(("continuation-token", token));
        }
        let request = Request::new(Method::GET, &format!("/{BUCKET}")).query(&query_string(&pairs));
        let body = match gateways.send_to(gateway, request).await {
            Answer::Response(StatusCode::OK, _, body) => {
                String::from_utf8_lossy(&body).into_owned()
            }
            Answer::Response(status, _, body) => {
                return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
            }
            Answer::NotSent => return Err("no connection".to_owned()),
            Answer::Unknown(e) => return Err(e.to_string()),
        };
        keys.extend(xml_values(&body, "Key"));
        token = xml_values(&body, "NextContinuationToken").pop();
        if token.is_none() {
            return Ok(keys);
        }
    }
}
