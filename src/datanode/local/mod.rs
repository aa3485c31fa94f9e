//! The local-disk `ChunkStore`: one file per chunk at `root/<xx>/<id>`, `xx` being the id's first
//! byte in hex, in the layout of `format` (the bytes, one CRC32C per block, a footer). Writers
//! (`writer`) fill a temp file that is renamed into place on commit and made durable: a large
//! chunk by fsyncing it and its directory, a small one together with concurrent writers by one
//! group sync of the filesystem. Readers verify every block they touch before yielding any byte.

mod format;
mod writer;

use format::{BlockReader, READ_BATCH, read_footer, read_table};
use writer::{BufferPool, LocalChunkWriter};

use std::fs::{self, File, OpenOptions};
use std::io::{self};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures_util::stream;

use crate::chunk::{ChunkDigest, ChunkId, ChunkTable};
use crate::datanode::sync_group::SyncGroup;
use crate::datanode::{Caching, ChunkError, ChunkStore, ChunkStream, ChunkWriter};
use crate::net::{PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, create_private_dir, restrict_mode};

pub use format::BLOCK_SIZE;

/// Separates a temp file's chunk id from its random suffix: `<id>.tmp.<random>`.
const TEMP_MARKER: &str = ".tmp.";

fn prefix_dir(root: &Path, prefix: u8) -> PathBuf {
    root.join(format!("{prefix:02x}"))
}

fn prefix_of(id: ChunkId) -> u8 {
    id.0.as_bytes()[0]
}

/// The id a committed chunk file is named after, if `name` is exactly such a name.
fn chunk_name(name: &str) -> Option<ChunkId> {
    let id: ChunkId = name.parse().ok()?;
    (id.to_string() == name).then_some(id)
}

/// The names in one prefix directory; a missing directory is empty.
fn names_in(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ChunkError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ChunkError::Io(io::Error::other(err)))
}

/// Chunk files on one local filesystem.
#[derive(Clone, Debug)]
pub struct LocalChunkStore {
    root: PathBuf,
    sync: SyncGroup,
    buffers: BufferPool,
    /// Whether large chunks are written past the page cache (see `DIRECT_BUFFER`).
    direct_writes: bool,
}

impl LocalChunkStore {
    /// Opens (creating if needed) a store at `root` with its 256 prefix directories, all private
    /// to the owner: those of an older store are tightened (257 directories, cheap), its chunk
    /// files are not (there may be millions, and the private directories already shut them).
    pub async fn open(root: PathBuf) -> Result<Self, ChunkError> {
        let dir = root.clone();
        let opened = blocking(move || -> io::Result<File> {
            let mut tightened = 0;
            for path in std::iter::once(dir.clone())
                .chain((0..=u8::MAX).map(|prefix| prefix_dir(&dir, prefix)))
            {
                create_private_dir(&path)?;
                if restrict_mode(&path, PRIVATE_DIR_MODE)?.is_some() {
                    tightened += 1;
                }
            }
            if tightened > 0 {
                tracing::info!(
                    tightened,
                    root = %dir.display(),
                    to = format!("{PRIVATE_DIR_MODE:o}"),
                    "tightened the modes of chunk directories so other local users cannot read them"
                );
            }
            // The prefix directories must survive a crash for the chunks later synced into them.
            let opened = File::open(&dir)?;
            opened.sync_all()?;
            Ok(opened)
        })
        .await??;
        Ok(LocalChunkStore {
            root,
            sync: SyncGroup::start(opened),
            buffers: BufferPool::default(),
            direct_writes: false,
        })
    }

    /// Writes chunks past their first buffer with `O_DIRECT` where the filesystem allows it,
    /// instead of through the page cache (see `DIRECT_BUFFER` for the trade).
    pub fn with_direct_writes(mut self, on: bool) -> Self {
        self.direct_writes = on;
        self
    }

    /// Where the chunk `id` lives once committed.
    /// A stored chunk's whole CRC table, which a data node sends ahead of a read so that the
    /// gateway can check it against the digest it recorded.
    pub async fn table(&self, id: ChunkId) -> Result<ChunkTable, ChunkError> {
        let path = self.path_of(id);
        blocking(move || read_table(id, &path)).await?
    }

    pub fn path_of(&self, id: ChunkId) -> PathBuf {
        prefix_dir(&self.root, prefix_of(id)).join(id.to_string())
    }

    /// Deletes the temp files a crashed process left behind and returns how many. Call it only
    /// while no writer is active, since it cannot tell theirs from abandoned ones.
    pub async fn remove_temp_files(&self) -> Result<usize, ChunkError> {
        let root = self.root.clone();
        let removed = blocking(move || -> io::Result<usize> {
            let mut removed = 0;
            for prefix in 0..=u8::MAX {
                let dir = prefix_dir(&root, prefix);
                for name in names_in(&dir)? {
                    let is_temp = name
                        .split_once(TEMP_MARKER)
                        .is_some_and(|(id, _)| chunk_name(id).is_some());
                    if !is_temp {
                        continue;
                    }
                    match fs::remove_file(dir.join(&name)) {
                        Ok(()) => removed += 1,
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                        Err(err) => return Err(err),
                    }
                }
            }
            Ok(removed)
        })
        .await??;
        if removed > 0 {
            tracing::info!(removed, root = %self.root.display(), "removed leftover chunk temp files");
        }
        Ok(removed)
    }
}

#[async_trait]
impl ChunkStore for LocalChunkStore {
    async fn create(
        &self,
        id: ChunkId,
        caching: Caching,
    ) -> Result<Box<dyn ChunkWriter>, ChunkError> {
        let path = self.path_of(id);
        let temp_path = prefix_dir(&self.root, prefix_of(id)).join(format!(
            "{id}{TEMP_MARKER}{}",
            uuid::Uuid::new_v4().simple()
        ));
        let open_path = temp_path.clone();
        let file = blocking(move || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(PRIVATE_FILE_MODE)
                .open(open_path)
        })
        .await??;
        Ok(Box::new(LocalChunkWriter::new(
            file,
            temp_path,
            path,
            self.buffers.clone(),
            self.sync.clone(),
            self.direct_writes,
            caching,
        )))
    }

    async fn read(
        &self,
        id: ChunkId,
        range: Range<u64>,
        expected: Option<ChunkDigest>,
    ) -> Result<ChunkStream, ChunkError> {
        let path = self.path_of(id);
        // Allocated here, on a runtime thread, rather than on whichever blocking thread reads:
        // the allocator then keeps these buffers in few per-thread heaps.
        let buf = Vec::with_capacity(READ_BATCH as usize);
        // The first batch is read with the open, in one trip to a blocking thread: a small range
        // then costs one hand-off instead of two.
        let opened = blocking(move || {
            BlockReader::open(id, &path, range, expected).map(|reader| {
                reader.map(|mut reader| {
                    let first = reader.next_batch(buf);
                    (reader, first)
                })
            })
        })
        .await??;
        let Some((reader, first)) = opened else {
            return Ok(Box::pin(stream::empty()));
        };
        // The first batch rides in the state, so that an error in it ends the stream as an error
        // in any later batch does.
        Ok(Box::pin(stream::try_unfold(
            (reader, Some(first)),
            |(mut reader, first)| async move {
                if let Some(first) = first {
                    return Ok(Some((first?, (reader, None))));
                }
                if reader.is_done() {
                    return Ok(None);
                }
                let buf = Vec::with_capacity(READ_BATCH as usize);
                let (reader, batch) = blocking(move || {
                    let batch = reader.next_batch(buf);
                    (reader, batch)
                })
                .await?;
                Ok(Some((batch?, (reader, None))))
            },
        )))
    }

    async fn len(&self, id: ChunkId) -> Result<Option<u64>, ChunkError> {
        let path = self.path_of(id);
        blocking(move || {
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            Ok(Some(read_footer(id, &mut file)?.data_len))
        })
        .await?
    }

    /// The directory is not fsynced after the unlink: a delete lost in a crash leaves an orphan
    /// that garbage collection finds and deletes again.
    async fn delete(&self, id: ChunkId) -> Result<(), ChunkError> {
        let path = self.path_of(id);
        blocking(move || match fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        })
        .await??;
        Ok(())
    }

    async fn list(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<ChunkId>, ChunkError> {
        let root = self.root.clone();
        blocking(move || -> io::Result<Vec<ChunkId>> {
            let mut found = Vec::new();
            if limit == 0 {
                return Ok(found);
            }
            // Hex names sort like the ids' bytes, and the prefix directory is the first byte, so
            // walking the directories in order and sorting each one yields ids in order.
            for prefix in after.map_or(0, prefix_of)..=u8::MAX {
                let mut ids: Vec<ChunkId> = names_in(&prefix_dir(&root, prefix))?
                    .iter()
                    .filter_map(|name| chunk_name(name))
                    .filter(|id| prefix_of(*id) == prefix && after.is_none_or(|after| *id > after))
                    .collect();
                ids.sort_unstable();
                ids.truncate(limit - found.len());
                found.extend(ids);
                if found.len() == limit {
                    break;
                }
            }
            Ok(found)
        })
        .await?
        .map_err(ChunkError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::format::{CRC_LEN, FOOTER_LEN};
    use super::writer::{DIRECT_ALIGN, DIRECT_BUFFER, FIRST_BUFFER, FLUSH_EVERY};
    use super::*;
    use crate::datanode::conformance::{get, pattern, put, put_with};
    use bytes::Bytes;
    use futures_util::StreamExt;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::PermissionsExt;

    const BLOCK: u64 = BLOCK_SIZE as u64;

    pub(super) async fn new_store() -> (tempfile::TempDir, LocalChunkStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalChunkStore::open(dir.path().join("chunks"))
            .await
            .unwrap();
        (dir, store)
    }

    fn flip(path: &Path, offset: u64) {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.read_exact(&mut byte).unwrap();
        byte[0] ^= 0x20;
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&byte).unwrap();
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    fn is_corrupt_at<T>(result: Result<T, ChunkError>, at: u64) -> bool {
        matches!(result, Err(ChunkError::Corrupt { offset, .. }) if offset == at)
    }

    #[tokio::test]
    async fn round_trips_every_boundary_size() {
        let (_dir, store) = new_store().await;
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
            let data = pattern(len as usize);
            let id = put(&store, &data, &[1, 4097, 70_000, 13]).await;
            assert_eq!(store.len(id).await.unwrap(), Some(len));
            assert_eq!(get(&store, id, 0..len).await.unwrap(), data, "len {len}");
            let blocks = len.div_ceil(BLOCK);
            assert_eq!(
                file_len(&store.path_of(id)),
                len + CRC_LEN * blocks + FOOTER_LEN
            );
        }
    }

    #[tokio::test]
    async fn round_trips_pieces_around_the_write_buffers() {
        let (_dir, store) = new_store().await;
        let data = pattern(FIRST_BUFFER + 2 * DIRECT_BUFFER + 3 * DIRECT_ALIGN + 5);
        for pieces in [
            &[FIRST_BUFFER + 1, 3, FIRST_BUFFER - 2][..],
            &[FIRST_BUFFER][..],
            &[FIRST_BUFFER - 1, DIRECT_BUFFER + 2, 4095][..],
            &[FIRST_BUFFER + DIRECT_BUFFER][..],
            &[data.len()][..],
        ] {
            let id = put(&store, &data, pieces).await;
            assert_eq!(get(&store, id, 0..data.len() as u64).await.unwrap(), data);
        }
    }

    #[tokio::test]
    async fn streams_large_reads_in_bounded_pieces() {
        let (_dir, store) = new_store().await;
        let len = 2 * READ_BATCH + READ_BATCH / 2 + 7;
        let data = pattern(len as usize);
        let id = put(&store, &data, &[100_000]).await;

        let mut stream = store.read(id, 1..len, None).await.unwrap();
        let mut items = 0;
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let item = item.unwrap();
            assert!(item.len() as u64 <= READ_BATCH);
            out.extend_from_slice(&item);
            items += 1;
        }
        assert_eq!(items, 3);
        assert_eq!(out, &data[1..]);

        // Damage in the second batch: the first batch still arrives, then the error ends the stream.
        let bad_block = READ_BATCH / BLOCK + 2;
        flip(&store.path_of(id), bad_block * BLOCK + 17);
        let mut stream = store.read(id, 0..len, None).await.unwrap();
        assert_eq!(
            stream.next().await.unwrap().unwrap().len() as u64,
            READ_BATCH
        );
        assert!(is_corrupt_at(
            stream.next().await.unwrap(),
            bad_block * BLOCK
        ));
        assert!(stream.next().await.is_none());

        // Damage in the first batch, which is read with the open: the error alone, then the end.
        flip(&store.path_of(id), 17);
        let mut stream = store.read(id, 0..len, None).await.unwrap();
        assert!(is_corrupt_at(stream.next().await.unwrap(), 0));
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn flipped_data_byte_fails_only_its_block() {
        let (_dir, store) = new_store().await;
        let len = 4 * BLOCK;
        let data = pattern(len as usize);
        let id = put(&store, &data, &[50_000]).await;
        flip(&store.path_of(id), BLOCK + 100);

        for touching in [
            BLOCK..BLOCK + 1,
            BLOCK + 100..BLOCK + 101,
            BLOCK - 1..BLOCK + 1,
            0..len,
        ] {
            assert!(
                is_corrupt_at(get(&store, id, touching.clone()).await, BLOCK),
                "{touching:?}"
            );
        }
        for clean in [0..BLOCK, 2 * BLOCK..len, BLOCK - 10..BLOCK] {
            let want = &data[clean.start as usize..clean.end as usize];
            assert_eq!(get(&store, id, clean).await.unwrap(), want);
        }
        assert_eq!(store.len(id).await.unwrap(), Some(len));
    }

    #[tokio::test]
    async fn damaged_table_entry_fails_its_block_and_whole_reads() {
        let (_dir, store) = new_store().await;
        let len = 3 * BLOCK;
        let data = pattern(len as usize);
        let id = put(&store, &data, &[BLOCK_SIZE]).await;
        let path = store.path_of(id);
        flip(&path, len + CRC_LEN + 2);

        assert!(is_corrupt_at(
            get(&store, id, BLOCK..BLOCK + 5).await,
            BLOCK
        ));
        assert!(is_corrupt_at(get(&store, id, 0..len).await, len));
        assert_eq!(
            get(&store, id, 2 * BLOCK..len).await.unwrap(),
            &data[2 * BLOCK as usize..]
        );
    }

    #[tokio::test]
    async fn damaged_footer_is_corrupt() {
        let (_dir, store) = new_store().await;
        let data = pattern(BLOCK_SIZE + 10);
        // Magic, version, data length, block size, table CRC, footer CRC.
        for field_at in [0, 8, 12, 20, 24, 28] {
            let id = put(&store, &data, &[1000]).await;
            let path = store.path_of(id);
            let footer_at = file_len(&path) - FOOTER_LEN;
            flip(&path, footer_at + field_at);
            assert!(
                is_corrupt_at(store.len(id).await, footer_at),
                "field {field_at}"
            );
            assert!(is_corrupt_at(get(&store, id, 0..1).await, footer_at));
        }

        let id = put(&store, &data, &[1000]).await;
        let path = store.path_of(id);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(FOOTER_LEN - 1)
            .unwrap();
        assert!(is_corrupt_at(store.len(id).await, 0));

        // A file cut short by whole bytes disagrees with the length its footer declares.
        let id = put(&store, &data, &[1000]).await;
        let path = store.path_of(id);
        let intact = fs::read(&path).unwrap();
        let mut cut = intact[..BLOCK_SIZE].to_vec();
        cut.extend_from_slice(&intact[intact.len() - FOOTER_LEN as usize..]);
        fs::write(&path, &cut).unwrap();
        assert!(is_corrupt_at(
            store.len(id).await,
            cut.len() as u64 - FOOTER_LEN
        ));
    }

    #[tokio::test]
    async fn dropped_writer_leaves_no_file() {
        let (_dir, store) = new_store().await;
        // One writer still holds everything in its buffer, the others have writes in flight.
        for size in [10, 2 * FIRST_BUFFER, FIRST_BUFFER + 2 * DIRECT_BUFFER] {
            let id = ChunkId::random();
            let mut writer = store.create(id, Caching::Keep).await.unwrap();
            writer.write(Bytes::from(pattern(size))).await.unwrap();
            let dir = store.path_of(id).parent().unwrap().to_path_buf();
            assert_eq!(names_in(&dir).unwrap().len(), 1);
            drop(writer);
            assert!(names_in(&dir).unwrap().is_empty());
            assert_eq!(store.len(id).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn nothing_is_visible_before_commit() {
        let (_dir, store) = new_store().await;
        let id = ChunkId::random();
        let mut writer = store.create(id, Caching::Keep).await.unwrap();
        writer
            .write(Bytes::from(pattern(FIRST_BUFFER * 2)))
            .await
            .unwrap();
        assert_eq!(store.len(id).await.unwrap(), None);
        assert!(store.list(None, 10).await.unwrap().is_empty());
        assert_eq!(writer.commit().await.unwrap(), 2 * FIRST_BUFFER as u64);
        assert_eq!(store.list(None, 10).await.unwrap(), vec![id]);
    }

    #[tokio::test]
    async fn removes_temp_files_of_a_crashed_writer() {
        let (_dir, store) = new_store().await;
        let kept = put(&store, &pattern(100), &[100]).await;
        for _ in 0..2 {
            let mut writer = store
                .create(ChunkId::random(), Caching::Keep)
                .await
                .unwrap();
            writer.write(Bytes::from(pattern(10))).await.unwrap();
            // A crash: the drop guard never runs.
            std::mem::forget(writer);
        }
        let stray = store.path_of(kept).with_file_name("notes.tmp.txt");
        fs::write(&stray, b"not ours").unwrap();

        assert_eq!(store.remove_temp_files().await.unwrap(), 2);
        assert_eq!(store.remove_temp_files().await.unwrap(), 0);
        assert!(stray.exists());
        assert_eq!(get(&store, kept, 0..100).await.unwrap(), pattern(100));
    }

    /// Listing order and paging are the conformance suite's; here, files that are not chunks.
    #[tokio::test]
    async fn lists_only_committed_chunk_files() {
        let (_dir, store) = new_store().await;
        let ids = [
            ChunkId(uuid::Uuid::from_u128(0x42 << 120)),
            ChunkId(uuid::Uuid::from_u128((0x42 << 120) | 1)),
        ];
        for id in ids {
            let mut writer = store.create(id, Caching::Keep).await.unwrap();
            writer.write(Bytes::from_static(b"x")).await.unwrap();
            writer.commit().await.unwrap();
        }
        let _open_writer = store
            .create(ChunkId::random(), Caching::Keep)
            .await
            .unwrap();
        fs::write(store.root.join("42").join("README"), b"x").unwrap();
        assert_eq!(store.list(None, 10).await.unwrap(), ids);
    }

    #[tokio::test]
    async fn delete_is_idempotent_and_missing_is_not_found() {
        let (_dir, store) = new_store().await;
        let id = put(&store, &pattern(10), &[3]).await;
        store.delete(id).await.unwrap();
        store.delete(id).await.unwrap();
        assert_eq!(store.len(id).await.unwrap(), None);
        assert!(
            matches!(store.read(id, 0..1, None).await, Err(ChunkError::NotFound(missing)) if missing == id)
        );
        assert!(matches!(
            store.read(id, 0..0, None).await,
            Err(ChunkError::NotFound(_))
        ));
        assert!(store.list(None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn reopening_keeps_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("chunks");
        let store = LocalChunkStore::open(root.clone()).await.unwrap();
        let data = pattern(BLOCK_SIZE + 1);
        let id = put(&store, &data, &[777]).await;
        assert_eq!(fs::read_dir(&root).unwrap().count(), 256);

        let store: Box<dyn ChunkStore> = Box::new(LocalChunkStore::open(root).await.unwrap());
        let mut stream = store.read(id, 0..data.len() as u64, None).await.unwrap();
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            out.extend_from_slice(&item.unwrap());
        }
        assert_eq!(out, data);
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Chunk bytes are the owner's alone, in new stores and, for the directories, older ones.
    #[tokio::test]
    async fn directories_and_chunk_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("chunks");
        let store = LocalChunkStore::open(root.clone()).await.unwrap();
        let id = put(&store, &pattern(BLOCK_SIZE + 1), &[777]).await;
        let _open_writer = store
            .create(ChunkId::random(), Caching::Keep)
            .await
            .unwrap();
        // The committed chunk and the open writer's temp file.
        let files: Vec<PathBuf> = (0..=u8::MAX)
            .flat_map(|prefix| {
                let dir = prefix_dir(&root, prefix);
                names_in(&dir)
                    .unwrap()
                    .into_iter()
                    .map(move |name| dir.join(name))
            })
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        for file in &files {
            assert_eq!(mode_of(file), 0o600, "{}", file.display());
        }
        assert_eq!(mode_of(&root), 0o700);
        for prefix in 0..=u8::MAX {
            assert_eq!(mode_of(&prefix_dir(&root, prefix)), 0o700);
        }

        let prefix = prefix_dir(&root, prefix_of(id));
        for path in [root.clone(), prefix.clone()] {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        drop(store);
        let store = LocalChunkStore::open(root.clone()).await.unwrap();
        assert_eq!(mode_of(&root), 0o700);
        assert_eq!(mode_of(&prefix), 0o700);
        assert_eq!(get(&store, id, 0..1).await.unwrap(), pattern(1));
    }

    /// Bytes of `path` in the page cache, as util-linux's `fincore` reports them.
    fn cached_bytes(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux) runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    #[tokio::test]
    async fn chunks_go_past_the_page_cache_only_in_a_store_with_direct_writes() {
        let data = pattern(FIRST_BUFFER + 6 * DIRECT_BUFFER + DIRECT_ALIGN + 9);
        let len = data.len() as u64;
        for direct in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let store = LocalChunkStore::open(dir.path().join("chunks"))
                .await
                .unwrap()
                .with_direct_writes(direct);
            let id = put(&store, &data, &[DIRECT_BUFFER / 3, 7]).await;
            let cached = cached_bytes(&store.path_of(id));
            if direct {
                // The first buffer and the unaligned end went through the cache, no more.
                assert!(cached < len / 2, "direct: {cached} of {len} bytes cached");
            } else {
                assert!(cached >= len, "buffered: {cached} of {len} bytes cached");
            }
            assert_eq!(get(&store, id, 0..len).await.unwrap(), data);
            assert_eq!(
                get(&store, id, 1000..len - 3).await.unwrap(),
                &data[1000..data.len() - 3]
            );
        }
    }

    #[tokio::test]
    async fn chunks_written_to_drop_behind_leave_the_page_cache_as_they_become_durable() {
        // Past two flushes behind the stream, with an unaligned end.
        let data = pattern(2 * FLUSH_EVERY as usize + 3 * BLOCK_SIZE + 11);
        let len = data.len() as u64;
        let (_dir, store) = new_store().await;
        for caching in [Caching::Keep, Caching::DropBehind] {
            let id = put_with(&store, &data, &[BLOCK_SIZE + 3], caching).await;
            let cached = cached_bytes(&store.path_of(id));
            match caching {
                // All but the pages written while a flush ran, which it may have cleaned before
                // the next writeback request (`start_writeback`) dropped them.
                Caching::Keep => {
                    assert!(
                        cached >= len - len / 4,
                        "kept: {cached} of {len} bytes cached"
                    )
                }
                Caching::DropBehind => assert_eq!(cached, 0, "dropped: {cached} bytes cached"),
            }
            assert_eq!(get(&store, id, 0..len).await.unwrap(), data);
            assert_eq!(
                get(&store, id, FLUSH_EVERY - 5..len - 7).await.unwrap(),
                &data[FLUSH_EVERY as usize - 5..data.len() - 7]
            );
        }
    }
}
