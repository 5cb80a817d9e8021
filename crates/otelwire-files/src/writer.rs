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
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use otelwire::{ComponentHealth, HealthStatus};
use tracing::dispatcher::WeakDispatch;

use crate::clock::Clock;
use crate::config::{Period, Resolved};
use crate::names::{self, Naming, Rotated};

/// How often a failing sink warns again.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// How often retention runs without a rotation.
const KEEPER_INTERVAL: Duration = Duration::from_secs(600);
/// Bytes gathered before a write system call.
const WRITE_CHUNK: usize = 64 * 1024;

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

/// Counters of one sink, shared by the emitting threads, its threads and
/// the health report.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) name: String,
    pub(crate) written: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failures: AtomicU64,
    started: Instant,
    /// Milliseconds since `started` of the last loss, plus one (0: never).
    last_loss: AtomicU64,
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
            started: Instant::now(),
            last_loss: AtomicU64::new(0),
            last_error: Mutex::new(None),
            last_warn: Mutex::new(None),
            dispatch,
        }
    }

    pub(crate) fn drop_lines(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        let ms = self.started.elapsed().as_millis() as u64 + 1;
        self.last_loss.store(ms, Ordering::Relaxed);
    }

    /// Counts a failure and warns, at most once a minute per sink.
    fn fail(&self, what: &str, path: &Path, error: &io::Error) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let ms = self.started.elapsed().as_millis() as u64 + 1;
        self.last_loss.store(ms, Ordering::Relaxed);
        let text = format!("{what} {}: {error}", path.display());
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
            let warn = || {
                tracing::warn!(
                    target: "otelwire::files",
                    path = %path.display(),
                    "{text}; lines are dropped and counted, the service keeps running \
                     (next reminder in 60 s at the earliest)"
                )
            };
            match self.dispatch.get().and_then(WeakDispatch::upgrade) {
                Some(d) => tracing::dispatcher::with_default(&d, warn),
                None => warn(),
            }
        }
    }

    pub(crate) fn health(&self) -> ComponentHealth {
        let last_loss = self.last_loss.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let recent =
            last_loss != 0 && now.saturating_sub(last_loss) < WARN_INTERVAL.as_millis() as u64;
        let last_error = lock(&self.last_error).clone();
        ComponentHealth {
            name: self.name.clone(),
            status: if recent {
                HealthStatus::Degraded
            } else {
                HealthStatus::Ok
            },
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
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

/// Starts a sink's threads; `file` is its current file, already opened.
pub(crate) fn start(
    cfg: &Resolved,
    file: File,
    clock: Arc<dyn Clock>,
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
    let writer = Writer {
        path: cfg.path.clone(),
        naming,
        file: Some(file),
        size,
        committed: size,
        period: cfg.rotate,
        period_index: cfg.rotate.index(names::unix_secs(opened_at)),
        max_size: cfg.max_size,
        buf: Vec::with_capacity(WRITE_CHUNK * 2),
        buf_lines: 0,
        last_rotation: (0, 0),
        clock,
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
    naming: Naming,
    file: Option<File>,
    /// Bytes in the current file, buffered ones included.
    size: u64,
    /// Bytes in the current file known to be on disk.
    committed: u64,
    period: Period,
    period_index: Option<u64>,
    max_size: u64,
    buf: Vec<u8>,
    buf_lines: u64,
    /// (second, sequence) of the last rotated file's name.
    last_rotation: (u64, u64),
    clock: Arc<dyn Clock>,
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
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Line(line) => self.line(&line),
            Msg::Flush(ack) => {
                self.write_out();
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

    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if self.file.is_none() {
            match open(&self.path) {
                Ok(f) => {
                    self.committed = f.metadata().map(|m| m.len()).unwrap_or(0);
                    self.file = Some(f);
                }
                Err(e) => {
                    self.stats.fail("cannot open log file", &self.path, &e);
                    self.lose_buffer();
                    return;
                }
            }
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        match file.write_all(&self.buf) {
            Ok(()) => {
                self.committed += self.buf.len() as u64;
                self.stats
                    .written
                    .fetch_add(self.buf_lines, Ordering::Relaxed);
                self.buf.clear();
                self.buf_lines = 0;
            }
            Err(e) => {
                // No torn line stays behind: cut the file back to the last
                // complete write (best effort: the disk may refuse that too).
                let _ = file.set_len(self.committed);
                self.stats.fail("cannot write log file", &self.path, &e);
                self.lose_buffer();
            }
        }
    }

    fn lose_buffer(&mut self) {
        self.stats.drop_lines(self.buf_lines);
        self.size = self.committed;
        self.buf.clear();
        self.buf_lines = 0;
    }

    fn rotate(&mut self) {
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
            self.stats.fail("cannot rotate log file", &self.path, &e);
            return;
        }
        let _ = self.chores.send(Chore::Rotated(target));
        self.size = 0;
        self.committed = 0;
        match open(&self.path) {
            Ok(f) => self.file = Some(f),
            Err(e) => self.stats.fail("cannot create log file", &self.path, &e),
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
            self.stats.fail("cannot compress log file", path, &e);
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
                            self.stats.fail("cannot delete old log file", p, &e)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
