//! A full disk: users can still read, open and delete their mail.
//!
//! The store keeps a reserve: a file `data_dir/disk-reserve` of `[store] disk_reserve`
//! octets (default 8M) that takes real blocks (`posix_fallocate`). Deliveries and APPENDs
//! fill the disk up to it and are then refused, temporarily (`Error::DiskFull`: SMTP/LMTP
//! `452 4.3.1`, IMAP `NO [OVERQUOTA]` as Dovecot answers for ENOSPC). The writes that
//! free space or change little — flag changes (`STORE \Deleted`), expunges, `\Recent`
//! marks, POP3 retrieval marks — first release the reserve when free space has fallen
//! below its size, so that their commit (WAL frames) always finds room. While the
//! reserve is released no delivery is accepted; each delivery attempt re-creates it as
//! soon as twice its size is free again (after expunges, whose blob files are removed at
//! once in this state), so delivery resumes without a restart.
//!
//! Dovecot has no such reserve (it relies on the filesystem's root reserve, which a
//! server not running as root cannot use); Postfix refuses mail below
//! `queue_minfree`. The reserve gives the same guarantee to deletions inside the store.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The reserve's file name in the data directory.
pub const RESERVE_FILE: &str = "disk-reserve";

#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
    size: u64,
    released: AtomicBool,
    lock: Mutex<()>,
}

/// Octets available to an unprivileged writer on the filesystem holding `dir`.
pub fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and a zeroed out-struct.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

impl Reserve {
    /// The reserve of `data_dir`, put in place now if there is room (`size` 0: none).
    pub fn open(data_dir: &Path, size: u64) -> Reserve {
        let r = Reserve {
            path: data_dir.join(RESERVE_FILE),
            size,
            released: AtomicBool::new(false),
            lock: Mutex::new(()),
        };
        if size == 0 {
            let _ = fs::remove_file(&r.path);
        } else if !r.restore() {
            tracing::warn!(
                "store: no room for the disk reserve ({} octets, config key `store.disk_reserve`) in {}: deliveries are refused until there is",
                size,
                data_dir.display()
            );
        }
        r
    }

    /// The reserve is in place (or there is none to keep): deliveries may go on.
    pub fn in_place(&self) -> bool {
        self.size == 0 || !self.released.load(Ordering::Acquire)
    }

    /// For a delivery: true when the reserve is in place, re-creating it first if it was
    /// released and twice its size is free again.
    pub fn allows_growth(&self) -> bool {
        self.in_place() || self.restore()
    }

    /// Puts the reserve file in place if it is missing and there is room; true when it
    /// is in place afterwards.
    fn restore(&self) -> bool {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.size) {
            self.released.store(false, Ordering::Release);
            return true;
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if free_space(dir).is_some_and(|f| f < self.size.saturating_mul(2)) {
            self.released.store(true, Ordering::Release);
            return false;
        }
        let tmp = self.path.with_extension("tmp");
        let made = (|| -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            allocate(&f, self.size).or_else(|_| {
                // A filesystem without fallocate: write the octets.
                let zeros = vec![0u8; 1 << 16];
                let mut left = self.size;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    f.write_all(&zeros[..n])?;
                    left -= n as u64;
                }
                Ok::<(), std::io::Error>(())
            })?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        match made {
            Ok(()) => {
                if self.released.swap(false, Ordering::AcqRel) {
                    tracing::info!("store: disk space is back; the disk reserve is in place and deliveries resume");
                }
                true
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                tracing::debug!("store: cannot put the disk reserve in place: {e}");
                self.released.store(true, Ordering::Release);
                false
            }
        }
    }

    /// Before a write that frees space or changes little: when free space has fallen
    /// below the reserve's size, release the reserve so that the write can commit.
    pub fn before_small_write(&self) {
        if self.size == 0 || !self.in_place() {
            return;
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if free_space(dir).is_some_and(|f| f < self.size) {
            self.release();
        }
    }

    /// Gives the reserve's space to the filesystem.
    pub fn release(&self) {
        if self.size == 0 {
            return;
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = fs::remove_file(&self.path);
        if !self.released.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "store: the disk is full: released the disk reserve ({} octets, `store.disk_reserve`) so that deletions and flag changes commit; deliveries are refused until space is freed",
                self.size
            );
        }
    }
}

fn allocate(f: &fs::File, size: u64) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let len = libc::off_t::try_from(size).map_err(std::io::Error::other)?;
    // SAFETY: a valid open file descriptor.
    let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// Whether an error means the disk (or the database's filesystem) is full.
pub fn is_disk_full(e: &crate::Error) -> bool {
    match e {
        crate::Error::DiskFull => true,
        crate::Error::Db(rusqlite::Error::SqliteFailure(f, _)) => {
            f.code == rusqlite::ErrorCode::DiskFull
        }
        crate::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::StorageFull
                || io.raw_os_error() == Some(libc::ENOSPC)
                || io.to_string().contains("database or disk is full")
        }
        _ => false,
    }
}

/// `e`, or [`crate::Error::DiskFull`] when it means a full disk.
pub fn classify(e: crate::Error) -> crate::Error {
    if is_disk_full(&e) {
        crate::Error::DiskFull
    } else {
        e
    }
}
