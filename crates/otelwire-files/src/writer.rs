//! One sink's threads: the writer, which owns the current file, appends
//! whole lines and rotates between them; and the keeper, which gzips
//! rotated files and applies retention, so that neither slows the writer.
//!
//! Exactly once across rotation: only the writer touches the current file;
//! it writes out its buffer, closes the file, renames it and opens a new
//! one, all between two lines. A rotated file is gzipped to `….gz.tmp`,
//! renamed to `….gz`, and only then is the plain file removed; a plain file
//! left next to its `.gz` (a crash between the two steps) is removed at the
//! next start, the `.gz` being complete.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use otelwire::{ComponentHealth, HealthStatus};
use tracing::dispatcher::WeakDispatch;

use crate::clock::Clock;
use crate::config::{Mode, Period, Resolved, SyncPolicy};
use crate::faults::Faults;
use crate::names::{self, Naming, Rotated};

/// How often a failing sink warns again.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// How often retention runs without a rotation.
const KEEPER_INTERVAL: Duration = Duration::from_secs(600);
/// Bytes gathered before a write system call.
const WRITE_CHUNK: usize = 64 * 1024;
/// The first and the longest wait before a lossless sink retries a write.
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);

thread_local! {
    /// Set on the sinks' own threads: their warnings never feed a sink.
    pub(crate) static SINK_THREAD: Cell<bool> = const { Cell::new(false) };
}

pub(crate) enum Msg {
    Line(Arc<[u8]>),
    Flush(SyncSender<()>),
}

enum Chore {
    Rotated(PathBuf),
    Flush(SyncSender<()>),
}

/// What became of the lines when an operation failed, for the warning.
#[derive(Clone, Copy)]
enum Outcome {
    /// Lossy mode: the lines were dropped (and counted).
    Dropped,
    /// Lossless mode: the lines are kept and the write is retried.
    Retried,
    /// Nothing was lost (a rotation, a sync, compression, retention).
    Kept,
}

/// Counters of one sink, shared by the emitting threads, its threads and
/// the health report.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) name: String,
    pub(crate) written: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) blocked: AtomicU64,
    started: Instant,
    /// Milliseconds since `started` of the last loss or trouble, plus one
    /// (0: never).
    last_loss: AtomicU64,
    /// Milliseconds since `started` when the pending write first failed,
    /// plus one (0: not failing).
    failing_since: AtomicU64,
    last_error: Mutex<Option<(SystemTime, String)>>,
    last_warn: Mutex<Option<Instant>>,
    pub(crate) dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl Stats {
    fn new(name: String, dispatch: Arc<OnceLock<WeakDispatch>>) -> Self {
        Stats {
            name,
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            started: Instant::now(),
            last_loss: AtomicU64::new(0),
            failing_since: AtomicU64::new(0),
            last_error: Mutex::new(None),
            last_warn: Mutex::new(None),
            dispatch,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }

    pub(crate) fn drop_lines(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.last_loss.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Counts a failure and warns, at most once a minute per sink. The
    /// health report shows the file's name only, never its directory.
    fn fail(&self, what: &str, path: &Path, error: &io::Error, outcome: Outcome) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Retried => {
                let _ = self.failing_since.compare_exchange(
                    0,
                    self.now_ms(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Outcome::Kept => self.last_loss.store(self.now_ms(), Ordering::Relaxed),
            Outcome::Dropped => {}
        }
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        let text = format!("{what} {file}: {error}");
        *lock(&self.last_error) = Some((SystemTime::now(), text.clone()));
        let due = {
            let mut last = lock(&self.last_warn);
            let now = Instant::now();
            let due = last.is_none_or(|t| now.duration_since(t) >= WARN_INTERVAL);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            let then = match outcome {
                Outcome::Dropped => "lines are dropped and counted",
                Outcome::Retried => {
                    "lines are kept and the write is retried (threads that log to this file \
                     wait when its buffer is full)"
                }
                Outcome::Kept => "no line is lost",
            };
            self.emit(|| {
                tracing::warn!(
                    target: "otelwire::files",
                    path = %path.display(),
                    "{text}; {then}; the service keeps running \
                     (next reminder in 60 s at the earliest)"
                )
            });
        }
    }

    /// A failing write went through at last.
    fn recovered(&self, path: &Path) {
        let since = self.failing_since.swap(0, Ordering::Relaxed);
        if since == 0 {
            return;
        }
        let down_ms = self.now_ms().saturating_sub(since);
        self.emit(|| {
            tracing::info!(
                target: "otelwire::files",
                path = %path.display(),
                down_ms,
                "log file writable again; no line was lost"
            )
        });
    }

    fn emit(&self, f: impl FnOnce()) {
        match self.dispatch.get().and_then(WeakDispatch::upgrade) {
            Some(d) => tracing::dispatcher::with_default(&d, f),
            None => f(),
        }
    }

    pub(crate) fn health(&self) -> ComponentHealth {
        let now = self.now_ms();
        let last_loss = self.last_loss.load(Ordering::Relaxed);
        let failing_since = self.failing_since.load(Ordering::Relaxed);
        let minute = WARN_INTERVAL.as_millis() as u64;
        let status = if failing_since != 0 && now.saturating_sub(failing_since) >= minute {
            HealthStatus::Failing
        } else if failing_since != 0 || (last_loss != 0 && now.saturating_sub(last_loss) < minute) {
            HealthStatus::Degraded
        } else {
            HealthStatus::Ok
        };
        let last_error = lock(&self.last_error).clone();
        ComponentHealth {
            name: self.name.clone(),
            status,
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            blocked: self.blocked.load(Ordering::Relaxed),
            last_error_at: last_error.as_ref().map(|(t, _)| *t),
            last_error: last_error.map(|(_, e)| e),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens (creating) a sink's file for appending; the init check and the
/// writer use it.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Whether the file at `path` ends in the middle of a line (a crash while a
/// line was being written).
fn ends_torn(path: &Path, size: u64) -> bool {
    if size == 0 {
        return false;
    }
    let mut last = [0u8; 1];
    File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(size - 1))?;
            f.read_exact(&mut last)
        })
        .is_ok_and(|()| last[0] != b'\n')
}

/// Starts a sink's threads; `file` is its current file, already opened.
pub(crate) fn start(
    cfg: &Resolved,
    file: File,
    clock: Arc<dyn Clock>,
    faults: Arc<dyn Faults>,
    dispatch: Arc<OnceLock<WeakDispatch>>,
) -> io::Result<(SyncSender<Msg>, Arc<Stats>)> {
    let stats = Arc::new(Stats::new(format!("file {}", cfg.file), dispatch));
    let (tx, rx) = mpsc::sync_channel(cfg.buffer);
    let (chores_tx, chores_rx) = mpsc::channel();
    let naming = Naming::new(&cfg.file);
    let dir = cfg.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let keeper = Keeper {
        dir,
        naming: naming.clone(),
        compress: cfg.compress,
        max_files: cfg.max_files,
        max_age: cfg.max_age,
        clock: clock.clone(),
        stats: stats.clone(),
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let opened_at = if size > 0 {
        file.metadata()
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| clock.now())
    } else {
        clock.now()
    };
    let mut buf = Vec::with_capacity(WRITE_CHUNK * 2);
    if ends_torn(&cfg.path, size) {
        // The next line starts on a line of its own.
        buf.push(b'\n');
    }
    let writer = Writer {
        path: cfg.path.clone(),
        file_name: cfg.file.clone(),
        naming,
        file: Some(file),
        size: size + buf.len() as u64,
        committed: size,
        period: cfg.rotate,
        period_index: cfg.rotate.index(names::unix_secs(opened_at)),
        max_size: cfg.max_size,
        mode: cfg.mode,
        sync: cfg.sync,
        buf,
        buf_done: 0,
        buf_lines: 0,
        unsynced: false,
        last_rotation: (0, 0),
        clock,
        faults,
        stats: stats.clone(),
        chores: chores_tx,
    };
    let stem = cfg.file.split('.').next().unwrap_or("sink");
    std::thread::Builder::new()
        .name(format!("otelwire-files-keep-{stem}"))
        .spawn(move || {
            SINK_THREAD.with(|t| t.set(true));
            keeper.run(chores_rx)
        })?;
    std::thread::Builder::new()
        .name(format!("otelwire-files-{stem}"))
        .spawn(move || {
            SINK_THREAD.with(|t| t.set(true));
            writer.run(rx)
        })?;
    Ok((tx, stats))
}

struct Writer {
    path: PathBuf,
    /// The file's name in the log directory, for the fault seam.
    file_name: String,
    naming: Naming,
    file: Option<File>,
    /// Bytes in the current file, buffered ones included.
    size: u64,
    /// Bytes in the current file that end a whole line: where a failed
    /// write is cut back to.
    committed: u64,
    period: Period,
    period_index: Option<u64>,
    max_size: u64,
    mode: Mode,
    sync: SyncPolicy,
    /// Lines waiting for one write: at most one chunk and a line. While a
    /// lossless sink retries, nothing more is taken, so memory stays
    /// bounded and the emitting threads wait once the buffer is full.
    buf: Vec<u8>,
    /// Bytes at the start of `buf` already in the file (a short write that
    /// could not be cut back): a retry writes the rest, never twice.
    buf_done: usize,
    buf_lines: u64,
    /// Written since the last sync.
    unsynced: bool,
    /// (second, sequence) of the last rotated file's name.
    last_rotation: (u64, u64),
    clock: Arc<dyn Clock>,
    faults: Arc<dyn Faults>,
    stats: Arc<Stats>,
    chores: Sender<Chore>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            self.handle(msg);
            // Take what else is queued, then write it in large chunks.
            while let Ok(msg) = rx.try_recv() {
                self.handle(msg);
                if self.buf.len() >= WRITE_CHUNK {
                    self.write_out();
                }
            }
            self.write_out();
        }
        self.write_out();
        self.sync_file();
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Line(line) => self.line(&line),
            Msg::Flush(ack) => {
                self.write_out();
                // Whatever the policy: a flush means on disk.
                self.sync_file();
                let _ = self.chores.send(Chore::Flush(ack));
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        let len = line.len() as u64;
        let mut rotate = self.max_size > 0 && self.size > 0 && self.size + len > self.max_size;
        if self.period != Period::Never {
            let index = self.period.index(names::unix_secs(self.clock.now()));
            if index != self.period_index {
                rotate |= self.size > 0;
                self.period_index = index;
            }
        }
        if rotate {
            self.write_out();
            self.rotate();
        }
        self.buf.extend_from_slice(line);
        self.buf_lines += 1;
        self.size += len;
    }

    /// Writes the buffer out, then syncs it when the policy says so. Lossy:
    /// on failure the buffer's lines are dropped and counted. Lossless: the
    /// write is retried, waiting longer each time, until it goes through.
    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut wait = RETRY_FIRST;
        loop {
            match self.try_write() {
                Ok(()) => break,
                Err((what, e)) => match self.mode {
                    Mode::Lossy => {
                        self.stats.fail(what, &self.path, &e, Outcome::Dropped);
                        self.cut_back();
                        self.lose_buffer();
                        return;
                    }
                    Mode::Lossless => {
                        self.stats.fail(what, &self.path, &e, Outcome::Retried);
                        self.cut_back();
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(RETRY_MAX);
                    }
                },
            }
        }
        self.committed += self.buf.len() as u64;
        self.stats
            .written
            .fetch_add(self.buf_lines, Ordering::Relaxed);
        self.buf.clear();
        self.buf_done = 0;
        self.buf_lines = 0;
        self.unsynced = true;
        self.stats.recovered(&self.path);
        if self.sync == SyncPolicy::Batch {
            self.sync_file();
        }
    }

    /// One attempt at writing what is left of the buffer.
    fn try_write(&mut self) -> Result<(), (&'static str, io::Error)> {
        if self.file.is_none() {
            let f = open(&self.path).map_err(|e| ("cannot open log file", e))?;
            self.committed = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.buf_done = 0;
            self.file = Some(f);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        while self.buf_done < self.buf.len() {
            let rest = &self.buf[self.buf_done..];
            let write = self
                .faults
                .write(&self.file_name, rest.len())
                .and_then(|allowed| file.write(&rest[..allowed.min(rest.len())]));
            match write {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "the disk took no bytes");
                    return Err(("cannot write log file", e));
                }
                Ok(n) => self.buf_done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(("cannot write log file", e)),
            }
        }
        Ok(())
    }

    /// After a failed write: no torn line stays behind, the file is cut back
    /// to its last whole line. When the disk refuses that too, the bytes
    /// already written stay counted so that a retry does not write them twice.
    fn cut_back(&mut self) {
        if self.buf_done == 0 {
            return;
        }
        let Some(file) = self.file.as_ref() else {
            return;
        };
        let cut = self
            .faults
            .truncate(&self.file_name)
            .and_then(|()| file.set_len(self.committed));
        if cut.is_ok() {
            self.buf_done = 0;
        }
    }

    fn sync_file(&mut self) {
        if !self.unsynced {
            return;
        }
        let Some(file) = self.file.as_ref() else {
            return;
        };
        match self
            .faults
            .sync(&self.file_name)
            .and_then(|()| file.sync_data())
        {
            Ok(()) => self.unsynced = false,
            // Still unsynced: the next batch tries again.
            Err(e) => self
                .stats
                .fail("cannot sync log file", &self.path, &e, Outcome::Kept),
        }
    }

    fn lose_buffer(&mut self) {
        self.stats.drop_lines(self.buf_lines);
        self.size = self.committed;
        self.buf.clear();
        self.buf_done = 0;
        self.buf_lines = 0;
    }

    fn rotate(&mut self) {
        // The rotated file is complete and on disk before it gets its name.
        self.sync_file();
        let secs = names::unix_secs(self.clock.now());
        let mut seq = if self.last_rotation.0 == secs {
            self.last_rotation.1 + 1
        } else {
            0
        };
        let dir = self.path.parent().unwrap_or(Path::new(""));
        let target = loop {
            let name = self.naming.rotated(secs, seq);
            let candidate = dir.join(&name);
            if !candidate.exists() && !dir.join(format!("{name}.gz")).exists() {
                break candidate;
            }
            seq += 1;
        };
        self.last_rotation = (secs, seq);
        self.file = None; // closed before the rename
        if let Err(e) = fs::rename(&self.path, &target) {
            // Keep appending to the current file; the next line retries.
            self.stats
                .fail("cannot rotate log file", &self.path, &e, Outcome::Kept);
            return;
        }
        let _ = self.chores.send(Chore::Rotated(target));
        self.size = 0;
        self.committed = 0;
        match open(&self.path) {
            Ok(f) => self.file = Some(f),
            Err(e) => self
                .stats
                .fail("cannot create log file", &self.path, &e, Outcome::Kept),
        }
    }
}

/// Compression and retention, off the writer's thread.
struct Keeper {
    dir: PathBuf,
    naming: Naming,
    compress: bool,
    max_files: usize,
    max_age: Duration,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
}

impl Keeper {
    fn run(self, chores: Receiver<Chore>) {
        self.tidy();
        loop {
            match chores.recv_timeout(KEEPER_INTERVAL) {
                Ok(Chore::Rotated(path)) => {
                    if self.compress {
                        self.gzip(&path);
                    }
                    // Take further rotations before the directory scan.
                    let mut acks = Vec::new();
                    while let Ok(chore) = chores.try_recv() {
                        match chore {
                            Chore::Rotated(p) if self.compress => self.gzip(&p),
                            Chore::Rotated(_) => {}
                            Chore::Flush(ack) => acks.push(ack),
                        }
                    }
                    self.retain();
                    for ack in acks {
                        let _ = ack.send(());
                    }
                }
                Ok(Chore::Flush(ack)) => {
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => self.retain(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// At start: finish what a previous run left (plain rotated files not
    /// yet compressed, partial `.gz.tmp`), then retention.
    fn tidy(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(plain) = name.strip_suffix(".gz.tmp")
                && self.naming.parse(&self.dir, plain).is_some()
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        for r in self.rotated() {
            let plain = r.path.with_extension("");
            if r.gz && plain.exists() {
                // The .gz was complete before it got its name.
                let _ = fs::remove_file(plain);
            } else if !r.gz && self.compress {
                self.gzip(&r.path);
            }
        }
        self.retain();
    }

    fn rotated(&self) -> Vec<Rotated> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<Rotated> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                self.naming.parse(&self.dir, name.to_str()?)
            })
            .collect();
        // A plain file next to its .gz (see the module docs): one file.
        out.sort_by_key(|r| (r.secs, r.seq, !r.gz));
        out.dedup_by(|b, a| (a.secs, a.seq) == (b.secs, b.seq));
        out
    }

    fn gzip(&self, path: &Path) {
        let gz = PathBuf::from(format!("{}.gz", path.display()));
        let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
        let result = (|| -> io::Result<()> {
            let mut src = File::open(path)?;
            let out = File::create(&tmp)?;
            let mut enc = flate2::write::GzEncoder::new(
                io::BufWriter::with_capacity(WRITE_CHUNK, out),
                flate2::Compression::default(),
            );
            io::copy(&mut src, &mut enc)?;
            enc.finish()?.into_inner().map_err(|e| e.into_error())?;
            fs::rename(&tmp, &gz)?;
            fs::remove_file(path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            self.stats
                .fail("cannot compress log file", path, &e, Outcome::Kept);
        }
    }

    /// Deletes rotated files beyond `max_files` (oldest first) or older
    /// than `max_age` by the clock.
    fn retain(&self) {
        if self.max_files == 0 && self.max_age.is_zero() {
            return;
        }
        let mut files = self.rotated();
        files.reverse(); // newest first
        let now = self.clock.now();
        for (i, r) in files.iter().enumerate() {
            let too_many = self.max_files > 0 && i >= self.max_files;
            let too_old = !self.max_age.is_zero()
                && now
                    .duration_since(names::from_secs(r.secs))
                    .is_ok_and(|age| age > self.max_age);
            if too_many || too_old {
                let mut doomed = vec![r.path.clone()];
                if r.gz {
                    doomed.push(r.path.with_extension(""));
                }
                for p in &doomed {
                    match fs::remove_file(p) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            self.stats
                                .fail("cannot delete old log file", p, &e, Outcome::Kept)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
