//! A small filesystem for one test: a tmpfs mounted on a temporary directory, unmounted when
//! dropped, for tests of what happens when a disk fills up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted when dropped (declare it before the processes that
/// use it, so that they are dropped, and stopped, first).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. `64m`), or says why it
    /// cannot (not root, no mount in a container), for the test to print and skip.
    pub fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes a filler file into `dir` until its filesystem refuses one more byte; returns its path.
pub fn fill_to_the_last_byte(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create filler");
    let block = vec![0xA5u8; 64 * 1024];
    for size in [block.len(), 4096, 1] {
        while file.write_all(&block[..size]).is_ok() {}
    }
    let _ = file.sync_all();
    path
}
