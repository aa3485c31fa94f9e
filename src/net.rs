//! The accept loop every listener of Cairn shares (the S3 server and the data node): set
//! TCP_NODELAY, serve each connection on its own task, and on shutdown stop accepting and let
//! in-flight requests finish within a deadline. And the data directory's lock, which keeps one
//! process per directory, and its modes: the directory holds every secret key (in `meta.db`)
//! and every object's bytes, so it is the owner's alone (0700, its files 0600).

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};

/// The mode of every directory Cairn keeps data in: the owner's alone.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// The mode of every file Cairn keeps data or secrets in: the owner's alone.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Takes the data directory for this process: a second process on the same directory would
/// clean up the first one's writes in progress as leftovers of a crash. The lock lasts as long
/// as the returned file is open (the OS drops it if the process dies). The directory is created
/// private, and an existing one made private (a store made before modes were set, or by hand).
pub fn lock_data_dir(dir: &Path) -> io::Result<std::fs::File> {
    create_private_dir(dir)?;
    if let Some(from) = restrict_mode(dir, PRIVATE_DIR_MODE)? {
        tracing::info!(
            dir = %dir.display(),
            from = format!("{from:o}"),
            to = format!("{PRIVATE_DIR_MODE:o}"),
            "tightened the data directory's mode so other local users cannot read the store"
        );
    }
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(PRIVATE_FILE_MODE)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by another cairn process", dir.display()),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Creates `dir` with mode 0700 unless it exists; missing parents get the default mode, since
/// they are not Cairn's.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match DirBuilder::new().mode(PRIVATE_DIR_MODE).create(dir) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        result => result,
    }
}

/// Clears the read, write and execute bits of `path` that `mode` does not grant (it never adds
/// any), as a store made before its files were private has them. Returns the old bits if it
/// changed them; a missing path is left alone.
pub fn restrict_mode(path: &Path, mode: u32) -> io::Result<Option<u32>> {
    let full = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let excess = full & 0o777 & !mode;
    if excess == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, Permissions::from_mode(full & !excess))?;
    Ok(Some(full & 0o777))
}

/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Accepts connections on `listener` until `shutdown` completes, running `serve` for each on
/// its own task; `serve` registers its connection with the watcher so shutdown can drain it.
pub async fn accept_until<F, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    serve: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, SocketAddr, Watcher) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Running out of file descriptors must not end the server.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small responses must not wait for a delayed ACK.
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, peer, graceful.watcher()));
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(DRAIN_DEADLINE) => tracing::warn!("drain deadline passed"),
    }
    Ok(())
}
