//! Crash consistency of a node's disk: `cairn server` (its SQLite file and local chunk store)
//! and one data node of a cluster (its gateway keeps running) are SIGKILLed at random moments
//! while PutObject (inline, one chunk, several chunks), CompleteMultipartUpload and DeleteObject
//! are in flight, then restarted, many times; and `cairn server` runs on a disk that loses
//! whatever was not synced (`support::disk`), cut at random moments the same way, as a power
//! cut would. After each restart every acknowledged write and delete holds, byte for byte; an
//! interrupted one has either wholly happened or not at all, GET and the listing agree, and an
//! interrupted completion leaves its upload if and only if it left no object. At the end the
//! disk holds exactly the chunk files of the objects left (no temp file, no orphan, nothing
//! growing with the kills) and, in the cluster, fsck finds every chunk at R copies, none
//! missing or corrupt. Moments, sizes and keys come from a seeded generator: the seed is
//! printed, and `CAIRN_CRASH_SEED=N` runs the same choices again.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_test_support::*;
use http::{Method, StatusCode};

const BUCKET: &str = "crash";
/// Keys the rounds write to: more than one round's operations, so some keys stay untouched.
const KEYS: usize = 10;
/// SIGKILLs of the server, and of a data node.
const KILLS: usize = 40;
/// Cuts of the disk that drops unsynced writes (each also unmounts and mounts it).
const CUTS: usize = 30;
/// Largest object kept inline in its metadata row (no chunk file).
const INLINE: usize = 16 * 1024;
/// What the test waits at most for the disk to hold exactly the live objects' chunks.
const SETTLE: Duration = Duration::from_secs(60);

/// splitmix64: seeded, so a failing run's moments and sizes can be replayed.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("CAIRN_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("clock after 1970")
                    .as_nanos() as u64
            });
        report!("seed {seed} (CAIRN_CRASH_SEED={seed} replays it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    fn millis(&mut self, below: Duration) -> Duration {
        Duration::from_millis(self.next() % below.as_millis() as u64)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.range(0, i + 1));
        }
    }
}

/// One acknowledged state of a key's object.
#[derive(Clone)]
struct Version {
    data: Arc<Vec<u8>>,
    /// Quoted, as GET answers it.
    etag: String,
    /// Chunk files it owns (none when inline).
    chunks: usize,
}

/// What a key holds: an object, or nothing.
type State = Option<Version>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    PutInline,
    PutChunk,
    PutChunks,
    Complete,
    Delete,
}

const KINDS: [Kind; 5] = [
    Kind::PutInline,
    Kind::PutChunk,
    Kind::PutChunks,
    Kind::Complete,
    Kind::Delete,
];

/// One operation of a round, on a key no other operation of the round touches.
struct Op {
    kind: Kind,
    key: usize,
    /// What the key holds if the operation took effect.
    after: State,
    /// The upload a completion finishes, and its parts' numbers and ETags.
    upload: Option<(String, Vec<(u32, String)>)>,
    /// When it is sent, from the start of the round.
    start: Duration,
}

/// How the operations of one kind ended: acknowledged, or interrupted and then found done or
/// not done after the restart.
#[derive(Clone, Copy, Default)]
struct Outcomes {
    acked: usize,
    interrupted_done: usize,
    interrupted_undone: usize,
}

fn key_name(key: usize) -> String {
    format!("key-{key:02}")
}

fn chunks_of(len: usize) -> usize {
    if len <= INLINE {
        0
    } else {
        len.div_ceil(CHUNK)
    }
}

fn put_version(data: Vec<u8>) -> Version {
    Version {
        etag: format!("\"{}\"", md5_hex(&data)),
        chunks: chunks_of(data.len()),
        data: Arc::new(data),
    }
}

fn describe(state: &State) -> String {
    match state {
        None => "absent".to_owned(),
        Some(v) => format!("{} bytes, ETag {}", v.data.len(), v.etag),
    }
}

/// Sends the operation at its moment; whether it was acknowledged. An acknowledgement must say
/// what was asked (the ETag of the bytes sent); anything else (a refused or cut connection, an
/// error status) leaves the outcome to be found after the restart.
async fn run(client: S3Client, op: Arc<Op>) -> bool {
    tokio::time::sleep(op.start).await;
    let path = object_path(BUCKET, &key_name(op.key));
    let sent = match (&op.kind, &op.after, &op.upload) {
        (Kind::Delete, _, _) => client.request(Method::DELETE, &path).try_send().await,
        (Kind::Complete, _, Some((upload_id, parts))) => {
            client
                .request(Method::POST, &path)
                .query(&query_string(&[("uploadId", upload_id)]))
                .body(complete_xml(parts).into_bytes())
                .try_send()
                .await
        }
        (_, Some(version), _) => {
            client
                .request(Method::PUT, &path)
                .body(version.data.to_vec())
                .payload(if version.data.len() > 64 * 1024 {
                    PayloadHash::Unsigned
                } else {
                    PayloadHash::Sha256
                })
                .try_send()
                .await
        }
        _ => unreachable!("a write has its bytes, a completion its upload"),
    };
    let Ok(resp) = sent else { return false };
    let etag = match op.kind {
        Kind::Delete => return resp.status == StatusCode::NO_CONTENT,
        Kind::Complete => resp.xml_value("ETag"),
        _ => resp.header("etag").map(str::to_owned),
    };
    if resp.status != StatusCode::OK || etag.is_none() {
        return false;
    }
    let expected = op.after.as_ref().map(|v| v.etag.clone());
    assert_eq!(etag, expected, "{:?} acknowledged other bytes", op.kind);
    true
}

/// What is killed and restarted: the whole server, or one data node under a running gateway.
trait Victim {
    /// A client of the S3 endpoint (which may move when the server restarts).
    fn client(&self) -> S3Client;
    /// How long the round's operations take to start, and the kill may come up to twice that.
    fn window(&self) -> Duration;
    async fn kill(&mut self, rng: &mut Rng);
    /// Starts what was killed again and checks that its startup removed the temp files the
    /// kill left, before anything writes to it again, and that no chunk it holds is corrupt;
    /// returns how many temp files the kill left (writes it cut).
    async fn restart(&mut self) -> usize;
    /// Waits until the disks hold exactly `chunks` chunks (R copies in a cluster), nothing else.
    async fn settle(&self, chunks: usize);
}

/// `cairn server`, on a disk of the host (where a kill loses nothing the kernel was handed) or
/// on a [`CrashDisk`] (where it also loses whatever was not synced, as a power cut would).
struct Server {
    // Drops first, so the server is killed before its disk is unmounted.
    server: TestServer,
    disk: Option<CrashDisk>,
}

impl Victim for Server {
    fn client(&self) -> S3Client {
        self.server.client()
    }

    fn window(&self) -> Duration {
        // Writes wait longer for their fsyncs on the loop devices.
        Duration::from_millis(if self.disk.is_some() { 150 } else { 60 })
    }

    async fn kill(&mut self, _: &mut Rng) {
        match &self.disk {
            Some(disk) => {
                let frozen = disk.cut();
                self.server.send_sigkill();
                frozen.thaw();
                self.server.wait_stopped().await;
            }
            None => self.server.kill().await,
        }
    }

    async fn restart(&mut self) -> usize {
        if let Some(disk) = &mut self.disk {
            disk.remount_cut();
        }
        let left = temp_files(&self.server.chunks_dir()).len();
        self.server.restart().await;
        let temp = temp_files(&self.server.chunks_dir());
        assert!(temp.is_empty(), "temp files after a restart: {temp:?}");
        // The server has no fsck of its own: its check of a chunk is the read, which verifies
        // every block against the CRC table and the table against the recorded digest, and
        // `check_keys` reads every object in full.
        left
    }

    async fn settle(&self, chunks: usize) {
        // The startup pass removed the orphans; the collector (every 2 s) takes the chunks of
        // replaced, deleted and aborted versions.
        self.server.wait_for_chunk_files(chunks).await;
        let temp = temp_files(&self.server.chunks_dir());
        assert!(temp.is_empty(), "temp files at the end: {temp:?}");
        report!(
            "server data directory: {chunks} chunk files, {} KiB in all",
            dir_bytes(&self.server.data) / 1024
        );
        if let Some(disk) = &self.disk {
            report!("disk image: {} KiB", disk.image_bytes() / 1024);
        }
    }
}

struct NodeOfCluster {
    cluster: Cluster,
    down: Option<usize>,
}

impl Victim for NodeOfCluster {
    fn client(&self) -> S3Client {
        self.cluster.client()
    }

    fn window(&self) -> Duration {
        Duration::from_millis(100)
    }

    async fn kill(&mut self, rng: &mut Rng) {
        let index = rng.range(0, self.cluster.nodes.len());
        // Most moments of a round find the node between writes (the gateway's streams to it
        // are short), so the kill waits a little for one of its writes to be under way.
        let chunks = self.cluster.nodes[index].dir.join("chunks");
        let deadline = Instant::now() + self.window();
        while temp_files(&chunks).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.cluster.nodes[index].kill();
        self.down = Some(index);
    }

    async fn restart(&mut self) -> usize {
        let index = self.down.take().expect("a node was killed");
        let chunks = self.cluster.nodes[index].dir.join("chunks");
        let left = temp_files(&chunks).len();
        self.cluster.nodes[index].restart().await;
        // Repair may copy to the node as soon as it listens, so its temp files are looked at
        // here, before it is back in the gateway's view.
        let temp = temp_files(&chunks);
        assert!(temp.is_empty(), "temp files after a restart: {temp:?}");
        // Copies may be missing until repair runs; none may be corrupt.
        let fsck = self.cluster.fsck().await;
        assert!(
            fsck.corrupt == 0 && fsck.unreadable == 0,
            "fsck after a restart: {}",
            fsck.stdout
        );
        left
    }

    async fn settle(&self, chunks: usize) {
        let (fsck, took) = self.cluster.wait_clean(chunks as u64, SETTLE).await;
        report!(
            "cluster clean after {}: {} chunks, {} missing, {} corrupt, {} orphans",
            secs(took),
            fsck.chunks,
            fsck.missing,
            fsck.corrupt,
            fsck.orphans
        );
        for node in &self.cluster.nodes {
            let temp = temp_files(&node.dir.join("chunks"));
            assert!(temp.is_empty(), "node {} temp files: {temp:?}", node.index);
        }
    }
}

/// Files under `dir` named as a writer's temp file.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(prefixes) = fs::read_dir(dir) else {
        return out;
    };
    for prefix in prefixes.flatten() {
        for entry in fs::read_dir(prefix.path()).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().contains(".tmp.") {
                out.push(entry.path());
            }
        }
    }
    out
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Plans one operation of `kind` on `key`, doing beforehand (acknowledged, nothing killed
/// yet) what it needs: a completion's upload and parts, an object for a delete to remove.
async fn plan(
    client: &S3Client,
    rng: &mut Rng,
    model: &mut [State],
    kind: Kind,
    key: usize,
    window: Duration,
) -> Op {
    let mut upload = None;
    let after = match kind {
        Kind::PutInline => Some(put_version(random_bytes(rng.next(), rng.range(1, INLINE)))),
        Kind::PutChunk => Some(put_version(random_bytes(
            rng.next(),
            rng.range(INLINE + 1, CHUNK + 1),
        ))),
        Kind::PutChunks => Some(put_version(random_bytes(
            rng.next(),
            rng.range(CHUNK + 1, 4 * CHUNK),
        ))),
        Kind::Complete => {
            let name = key_name(key);
            let first = random_bytes(rng.next(), PART);
            let last = random_bytes(rng.next(), rng.range(1, CHUNK));
            let upload_id = client.create_upload(BUCKET, &name).await;
            let mut parts = Vec::new();
            for (number, part) in [(1, &first), (2, &last)] {
                let etag = client
                    .upload_part_ok(BUCKET, &name, &upload_id, number, part)
                    .await;
                parts.push((number, etag));
            }
            upload = Some((upload_id, parts));
            let etag = multipart_etag(&[&first, &last]);
            // Only a whole object can be inline: parts always go to chunks.
            let chunks = first.len().div_ceil(CHUNK) + last.len().div_ceil(CHUNK);
            Some(Version {
                data: Arc::new([first, last].concat()),
                etag,
                chunks,
            })
        }
        Kind::Delete => {
            if model[key].is_none() {
                let version = put_version(random_bytes(rng.next(), rng.range(1, 2 * CHUNK)));
                client.put_ok(BUCKET, &key_name(key), &version.data).await;
                model[key] = Some(version);
            }
            None
        }
    };
    Op {
        kind,
        key,
        after,
        upload,
        start: rng.millis(window),
    }
}

/// Whether the GET of a key shows `state`.
fn shows(resp: &Resp, state: &State) -> bool {
    match state {
        None => resp.status == StatusCode::NOT_FOUND,
        Some(v) => {
            resp.status == StatusCode::OK
                && resp.header("etag") == Some(v.etag.as_str())
                && resp.body.len() == v.data.len()
                && resp.body == *v.data
        }
    }
}

/// Checks every key after a restart against what it may hold, and makes what it holds the
/// model's state.
async fn check_keys(
    client: &S3Client,
    model: &mut [State],
    ops: &[Arc<Op>],
    acked: &[bool],
    outcomes: &mut [Outcomes; 5],
    round: usize,
) {
    let listed: BTreeSet<String> = client.list_keys(BUCKET).await.into_iter().collect();
    for (key, state) in model.iter_mut().enumerate() {
        let name = key_name(key);
        let resp = client.get(BUCKET, &name).await;
        let op = ops.iter().zip(acked).find(|(op, _)| op.key == key);
        let before = state.clone();
        let found = match op {
            None => shows(&resp, &before).then_some(before.clone()),
            Some((op, &true)) => shows(&resp, &op.after).then(|| op.after.clone()),
            Some((op, &false)) => [&op.after, &before]
                .into_iter()
                .find(|s| shows(&resp, s))
                .cloned(),
        };
        let Some(found) = found else {
            panic!(
                "round {round}: {name} after {:?} shows {} (status {}, {} bytes, sha256 {}, \
                 ETag {:?}); before the round: {}, the operation's: {}",
                op.map(|(op, acked)| (op.kind, if *acked { "acked" } else { "interrupted" })),
                if resp.status == StatusCode::OK {
                    "an object"
                } else {
                    "no object"
                },
                resp.status,
                resp.body.len(),
                sha256_hex(&resp.body),
                resp.header("etag"),
                describe(&before),
                op.map_or("none".to_owned(), |(op, _)| describe(&op.after)),
            )
        };
        assert_eq!(
            listed.contains(&name),
            found.is_some(),
            "round {round}: the listing and GET disagree on {name}: listed {listed:?}"
        );
        if let Some((op, &was_acked)) = op {
            let slot = &mut outcomes[KINDS.iter().position(|k| *k == op.kind).expect("a kind")];
            let done = found.as_ref().map(|v| &v.etag) == op.after.as_ref().map(|v| &v.etag);
            match (was_acked, done) {
                (true, _) => slot.acked += 1,
                (false, true) => slot.interrupted_done += 1,
                (false, false) => slot.interrupted_undone += 1,
            }
            if let Some((upload_id, _)) = &op.upload {
                // Completion is one transaction: the upload is gone exactly when its object
                // is there. Aborting what is left gives its parts' chunks to the collector.
                let abort = client
                    .request(Method::DELETE, &object_path(BUCKET, &name))
                    .query(&query_string(&[("uploadId", upload_id)]))
                    .send()
                    .await;
                if done {
                    abort.assert_error(StatusCode::NOT_FOUND, "NoSuchUpload");
                } else {
                    abort.assert_status(StatusCode::NO_CONTENT);
                }
            }
        }
        *state = found;
    }
    let present = model.iter().flatten().count();
    assert_eq!(listed.len(), present, "round {round}: listed {listed:?}");
}

/// `kills` rounds: each plans one operation of every kind on distinct keys, sends them at
/// random moments of the victim's window, kills it at a random moment of twice that window,
/// restarts it and checks every key; then waits for the disk to settle on the live chunks.
async fn crash_rounds(victim: &mut impl Victim, rng: &mut Rng, kills: usize) {
    let began = Instant::now();
    let mut model: Vec<State> = vec![None; KEYS];
    let mut outcomes = [Outcomes::default(); 5];
    // Kills that left temp files (writes cut on the disk), and how many files.
    let mut cut_writes = (0, 0);
    for round in 0..kills {
        let client = victim.client();
        let mut keys: Vec<usize> = (0..KEYS).collect();
        rng.shuffle(&mut keys);
        let mut ops = Vec::new();
        for (&kind, &key) in KINDS.iter().zip(&keys) {
            let op = plan(&client, rng, &mut model, kind, key, victim.window()).await;
            ops.push(Arc::new(op));
        }
        let tasks: Vec<_> = ops
            .iter()
            .map(|op| tokio::spawn(run(client.clone(), op.clone())))
            .collect();
        tokio::time::sleep(rng.millis(2 * victim.window())).await;
        victim.kill(rng).await;
        let mut acked = Vec::new();
        for task in tasks {
            acked.push(task.await.expect("operation task"));
        }
        let left = victim.restart().await;
        if left > 0 {
            cut_writes.0 += 1;
            cut_writes.1 += left;
        }
        let client = victim.client();
        check_keys(&client, &mut model, &ops, &acked, &mut outcomes, round).await;
    }
    for (kind, o) in KINDS.iter().zip(&outcomes) {
        report!(
            "{kind:?}: {} acknowledged, {} interrupted and found done, {} interrupted and found \
             not done",
            o.acked,
            o.interrupted_done,
            o.interrupted_undone
        );
    }
    let interrupted: usize = outcomes
        .iter()
        .map(|o| o.interrupted_done + o.interrupted_undone)
        .sum();
    let present = model.iter().flatten().count();
    let chunks: usize = model.iter().flatten().map(|v| v.chunks).sum();
    report!(
        "{kills} kills in {}: {interrupted} operations interrupted, {} kills cut writes on the \
         disk ({} temp files left, all removed at restart); {present} objects ({chunks} \
         chunks) left, every one byte-exact",
        secs(began.elapsed()),
        cut_writes.0,
        cut_writes.1
    );
    assert!(
        interrupted > 0 || cut_writes.0 > 0,
        "no kill interrupted an operation or cut a write"
    );
    victim.settle(chunks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_killed_mid_write() {
    let mut rng = Rng::from_env_or_clock();
    let (server, _) = server_with_bucket(BUCKET).await;
    let mut victim = Server { server, disk: None };
    crash_rounds(&mut victim, &mut rng, KILLS).await;
}

/// The disk's own proof that it has teeth: a cut keeps a file that was fsynced (and its
/// directory) and loses one that was only written.
fn assert_cut_drops_unsynced(disk: &mut CrashDisk) {
    let data = random_bytes(1, MIB);
    let synced = disk.path().join("synced");
    let mut file = File::create(&synced).expect("create a file");
    file.write_all(&data).expect("write it");
    file.sync_all().expect("fsync it");
    drop(file);
    File::open(disk.path())
        .and_then(|dir| dir.sync_all())
        .expect("fsync its directory");
    let unsynced = disk.path().join("unsynced");
    fs::write(&unsynced, &data).expect("write a file without fsync");
    disk.cut().thaw();
    disk.remount_cut();
    assert!(
        fs::read(&synced).is_ok_and(|read| read == data),
        "the cut lost a synced file"
    );
    // Its name may have reached the journal before the cut; its bytes cannot have.
    let kept = fs::metadata(&unsynced).map_or(0, |m| m.len());
    assert_eq!(kept, 0, "the cut kept {kept} bytes that were never synced");
    report!("a cut keeps a synced file and loses an unsynced one");
    fs::remove_file(&synced).expect("remove the synced file");
    let _ = fs::remove_file(&unsynced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_on_a_disk_cut_mid_write() {
    let mut disk = match CrashDisk::create("256M") {
        Ok(disk) => disk,
        Err(reason) => {
            report!("skipped: no disk that drops unsynced writes can be made here: {reason}");
            return;
        }
    };
    assert_cut_drops_unsynced(&mut disk);
    let mut rng = Rng::from_env_or_clock();
    let server = TestServer::start_on(disk.path().join("data")).await;
    server.client().create_bucket(BUCKET).await;
    let mut victim = Server {
        server,
        disk: Some(disk),
    };
    crash_rounds(&mut victim, &mut rng, CUTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_node_killed_mid_write() {
    let mut rng = Rng::from_env_or_clock();
    let cluster = Cluster::start(Spec::new(Backend::Sqlite, 3)).await;
    cluster.client().create_bucket(BUCKET).await;
    let mut victim = NodeOfCluster {
        cluster,
        down: None,
    };
    crash_rounds(&mut victim, &mut rng, KILLS).await;
}
