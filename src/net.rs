//! The accept loop every listener of Cairn shares (the S3 server and the data node): set
//! TCP_NODELAY, serve each connection on its own task, and on shutdown stop accepting and let
//! in-flight requests finish within a deadline. And the lock that keeps one process per data
//! directory.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};

/// Takes the data directory for this process: a second process on the same directory would
/// clean up the first one's writes in progress as leftovers of a crash. The lock lasts as long
/// as the returned file is open (the OS drops it if the process dies).
pub fn lock_data_dir(dir: &std::path::Path) -> io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
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
