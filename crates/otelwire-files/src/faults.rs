//! A seam in front of the disk, so that tests (yours and ours) can make a
//! sink's writes and syncs fail for a while and then recover, without root,
//! a full disk or a special file system. The bytes that get through land in
//! the real file.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Asked before every write, sync and cut a sink makes to its file (the default
/// lets everything through). Set one with
/// [`Files::faults`](crate::Files::faults).
pub trait Faults: Send + Sync + fmt::Debug + 'static {
    /// Before writing `len` bytes to `file` (the file's name, such as
    /// `audit.jsonl`): `Ok(n)` lets at most `n` bytes through (fewer than
    /// `len`: a short write, as a filling disk makes), an error fails the
    /// write with nothing written.
    fn write(&self, file: &str, len: usize) -> io::Result<usize>;

    /// Before syncing `file` to disk: an error fails the sync.
    fn sync(&self, file: &str) -> io::Result<()> {
        let _ = file;
        Ok(())
    }

    /// Before cutting `file` back to its last whole line after a failed
    /// write: an error fails the cut.
    fn truncate(&self, file: &str) -> io::Result<()> {
        let _ = file;
        Ok(())
    }
}

/// A disk that fails when told to, then recovers; clones share the state.
///
/// ```
/// use otelwire_files::{FlakyDisk, Faults};
///
/// let disk = FlakyDisk::new();
/// disk.fail_writes(2);
/// assert!(disk.write("audit.jsonl", 10).is_err());
/// assert!(disk.write("audit.jsonl", 10).is_err());
/// assert_eq!(disk.write("audit.jsonl", 10).unwrap(), 10);
/// assert_eq!(disk.failed(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FlakyDisk(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// The one file that fails (`None`: every file).
    only: Option<String>,
    state: Mutex<State>,
    failed: AtomicU64,
    attempts: AtomicU64,
    syncs: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Writes still to fail.
    fail_writes: u64,
    /// Every write and sync fails until then.
    until: Option<Instant>,
    /// Fails until [`FlakyDisk::heal`].
    down: bool,
    /// The next write lets this many bytes through, then fails.
    short: Option<usize>,
}

impl FlakyDisk {
    /// A disk that works.
    pub fn new() -> Self {
        FlakyDisk::default()
    }

    /// A disk on which only `file` (such as `audit.jsonl`) fails when told
    /// to; the other files always work.
    pub fn only(file: impl Into<String>) -> Self {
        FlakyDisk(Arc::new(Inner {
            only: Some(file.into()),
            ..Inner::default()
        }))
    }

    fn concerns(&self, file: &str) -> bool {
        self.0.only.as_deref().is_none_or(|f| f == file)
    }

    /// The next `n` writes fail (no space left on device).
    pub fn fail_writes(&self, n: u64) {
        self.state().fail_writes = n;
    }

    /// Every write, sync and cut fails until `until`.
    pub fn fail_until(&self, until: Instant) {
        self.state().until = Some(until);
    }

    /// Every write, sync and cut fails until [`heal`](Self::heal).
    pub fn fail(&self) {
        self.state().down = true;
    }

    /// The next write lets `bytes` through, then the disk fails until
    /// [`heal`](Self::heal), cutting the file back included: a disk that
    /// fills up in the middle of a line.
    pub fn fill_after(&self, bytes: usize) {
        let mut st = self.state();
        st.short = Some(bytes);
        st.down = true;
    }

    /// Works again from now on.
    pub fn heal(&self) {
        *self.state() = State::default();
    }

    /// Writes, syncs and cuts failed so far (of the file it concerns).
    pub fn failed(&self) -> u64 {
        self.0.failed.load(Ordering::SeqCst)
    }

    /// Writes and syncs asked for so far, failed or not (of the file it
    /// concerns).
    pub fn attempts(&self) -> u64 {
        self.0.attempts.load(Ordering::SeqCst)
    }

    /// Syncs that went through so far (of the file it concerns).
    pub fn syncs(&self) -> u64 {
        self.0.syncs.load(Ordering::SeqCst)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failure(&self) -> io::Error {
        self.0.failed.fetch_add(1, Ordering::SeqCst);
        io::Error::new(
            io::ErrorKind::StorageFull,
            "no space left on device (FlakyDisk)",
        )
    }
}

impl Faults for FlakyDisk {
    fn write(&self, file: &str, len: usize) -> io::Result<usize> {
        if !self.concerns(file) {
            return Ok(len);
        }
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
        let mut st = self.state();
        if let Some(bytes) = st.short.take() {
            return Ok(bytes.min(len));
        }
        if st.fail_writes > 0 {
            st.fail_writes -= 1;
            return Err(self.failure());
        }
        if st.down || st.until.is_some_and(|t| Instant::now() < t) {
            return Err(self.failure());
        }
        Ok(len)
    }

    fn sync(&self, file: &str) -> io::Result<()> {
        if !self.concerns(file) {
            return Ok(());
        }
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.0.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn truncate(&self, file: &str) -> io::Result<()> {
        if !self.concerns(file) {
            return Ok(());
        }
        self.check()
    }
}

impl FlakyDisk {
    fn check(&self) -> io::Result<()> {
        let st = self.state();
        if st.down || st.until.is_some_and(|t| Instant::now() < t) {
            return Err(self.failure());
        }
        Ok(())
    }
}

/// Lets everything through.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoFaults;

impl Faults for NoFaults {
    fn write(&self, _file: &str, len: usize) -> io::Result<usize> {
        Ok(len)
    }
}
