//! A disk that loses what was not synced, for crash tests: an ext4 filesystem in an image file
//! on a loop device, the image itself on a filesystem of its own (ext4 on another loop device)
//! that can be frozen. Freezing that outer filesystem stops the loop device's writes into the
//! image, so a copy of the image taken while it is frozen holds exactly what the inner
//! filesystem had handed to its device at that moment: everything a process fsynced (an fsync
//! returns only once the device has the bytes), and of the rest only what the kernel happened
//! to write back. Mounting that copy (ext4 replays its journal) is the disk after a power cut;
//! whatever sat only in the page cache is gone. Two outer filesystems take turns holding the
//! image, so the copy goes to the one that is not frozen. Needs root, loop devices, ext4 and
//! `fsfreeze` (util-linux); device-mapper's `dm-flakey` would do the same, but kernels without
//! device-mapper (as in some VMs) lack it, while loop devices are nearly everywhere.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// Size of each outer filesystem (sparse: only what is written takes room).
const OUTER_SIZE: &str = "768M";
/// The image's name in whichever outer filesystem holds it.
const IMAGE: &str = "disk.img";

/// Runs a command, or says what failed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// An ext4 filesystem in `image`, on a loop device, mounted on `dir`; unmounted and detached
/// when dropped.
struct LoopMount {
    device: String,
    dir: PathBuf,
}

impl LoopMount {
    /// Attaches `image` and mounts it on `dir`, formatting it first when `format`.
    fn mount(image: &Path, dir: &Path, format: bool) -> Result<LoopMount, String> {
        let device = run("losetup", &["--find", "--show", path_str(image)])?;
        // From here on, dropping the value detaches the device whatever fails next.
        let mut mounted = LoopMount {
            device,
            dir: PathBuf::new(),
        };
        if format {
            run("mkfs.ext4", &["-q", "-F", &mounted.device])?;
        }
        run("mount", &["-t", "ext4", &mounted.device, path_str(dir)])?;
        mounted.dir = dir.to_owned();
        Ok(mounted)
    }

    /// Unmounts and detaches it now, or says why it cannot (a file still open on it).
    fn unmount(mut self) -> Result<(), String> {
        let dir = std::mem::take(&mut self.dir);
        run("umount", &[path_str(&dir)])
            .map(drop)
            .inspect_err(|_| self.dir = dir)
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty()
            && let Err(e) = run("umount", &[path_str(&self.dir)])
        {
            eprintln!("{e}");
        }
        if let Err(e) = run("losetup", &["-d", &self.device]) {
            eprintln!("{e}");
        }
    }
}

/// One outer filesystem: a sparse file on the host's disk, formatted and mounted.
struct Outer {
    mount: LoopMount,
    _dir: TempDir,
}

impl Outer {
    fn create(backing: &Path, name: &str) -> Result<Outer, String> {
        let file = backing.join(format!("{name}.img"));
        run("truncate", &["-s", OUTER_SIZE, path_str(&file)])?;
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let mount = LoopMount::mount(&file, dir.path(), true)?;
        Ok(Outer { mount, _dir: dir })
    }

    fn image(&self) -> PathBuf {
        self.mount.dir.join(IMAGE)
    }
}

/// The disk of a crash test, mounted at [`CrashDisk::path`] until [`CrashDisk::cut`] takes
/// its image at a moment and [`CrashDisk::remount_cut`] puts that image in its place.
pub struct CrashDisk {
    // Fields drop in order: the inner filesystem before the outer ones holding its image.
    inner: Option<LoopMount>,
    mountpoint: TempDir,
    outers: [Outer; 2],
    /// The outer filesystem holding the mounted image.
    current: usize,
    /// Holds the outer filesystems' backing files.
    _backing: TempDir,
}

impl CrashDisk {
    /// Makes an ext4 disk of `size` (as `truncate -s` takes it, e.g. `256M`) and mounts it, or
    /// says why it cannot (not root, no loop device), for the test to print and skip.
    pub fn create(size: &str) -> Result<CrashDisk, String> {
        let backing = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let outers = [
            Outer::create(backing.path(), "outer-a")?,
            Outer::create(backing.path(), "outer-b")?,
        ];
        let image = outers[0].image();
        run("truncate", &["-s", size, path_str(&image)])?;
        let mountpoint = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let inner = LoopMount::mount(&image, mountpoint.path(), true)?;
        Ok(CrashDisk {
            inner: Some(inner),
            mountpoint,
            outers,
            current: 0,
            _backing: backing,
        })
    }

    /// Where the disk is mounted (the same path after [`CrashDisk::remount_cut`]).
    pub fn path(&self) -> &Path {
        self.mountpoint.path()
    }

    /// Takes the image of the disk as a power cut would leave it now, and returns with its
    /// writes frozen: whatever reaches the disk from now on is not in that image. Call
    /// [`Frozen::thaw`] once the processes writing to it are killed (without waiting for them:
    /// one in fsync waits for the thaw).
    pub fn cut(&self) -> Frozen<'_> {
        let from = &self.outers[self.current];
        let to = self.outers[1 - self.current].image();
        run("fsfreeze", &["--freeze", path_str(&from.mount.dir)]).expect("freeze the outer fs");
        let frozen = Frozen { disk: self };
        let copied = run(
            "cp",
            &["--sparse=always", path_str(&from.image()), path_str(&to)],
        );
        copied.expect("copy the frozen image");
        frozen
    }

    /// Unmounts the disk (what it still writes goes to the old image, which is then deleted)
    /// and mounts the image [`CrashDisk::cut`] took in its place.
    pub fn remount_cut(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.unmount().expect("unmount the disk");
        }
        let old = self.outers[self.current].image();
        fs::remove_file(&old).expect("delete the old image");
        self.current = 1 - self.current;
        let image = self.outers[self.current].image();
        self.inner =
            Some(LoopMount::mount(&image, self.mountpoint.path(), false).expect("mount the cut"));
    }

    /// Bytes the image takes on its outer filesystem.
    pub fn image_bytes(&self) -> u64 {
        let out = run(
            "du",
            &[
                "--block-size=1",
                path_str(&self.outers[self.current].image()),
            ],
        )
        .expect("du the image");
        out.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("du prints a size")
    }
}

/// The outer filesystem frozen by [`CrashDisk::cut`]; thawed when dropped.
pub struct Frozen<'a> {
    disk: &'a CrashDisk,
}

impl Frozen<'_> {
    /// Thaws the outer filesystem now (dropping the guard does it too, on a panic as well).
    pub fn thaw(self) {}
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let dir = &self.disk.outers[self.disk.current].mount.dir;
        let thawed = run("fsfreeze", &["--unfreeze", path_str(dir)]);
        // A second panic while unwinding would abort every test of the binary.
        if let Err(e) = thawed
            && !std::thread::panicking()
        {
            panic!("thaw the outer fs: {e}");
        }
    }
}
