//! The `tracing` side: one layer formats each event once, with otelwire's
//! [`LineFormatter`], and hands the line to every sink that takes it.

use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use otelwire::{Component, ComponentHealth, InitError, LineFormatter, LogFormat};
use tracing::dispatcher::WeakDispatch;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{Files, Mode, Resolved};
use crate::filter;
use crate::writer::{self, Msg, SINK_THREAD, Stats};

/// The variable that switches the default files on and names their directory.
pub const LOG_DIR_VAR: &str = "OTELWIRE_LOG_DIR";

struct SinkHandle {
    cfg: Resolved,
    tx: SyncSender<Msg>,
    stats: Arc<Stats>,
}

/// The layer that writes the sinks' lines. Build it with
/// [`Files::build`] (or let [`FilesExt::files`](crate::FilesExt::files) do
/// it inside `otelwire::builder()`).
pub struct FilesLayer {
    /// What the startup line says of the files.
    description: String,
    formatter: LineFormatter,
    sinks: Arc<[SinkHandle]>,
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl fmt::Debug for FilesLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilesLayer")
            .field(
                "sinks",
                &self.sinks.iter().map(|s| &s.cfg.path).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Reads the sinks' health and flushes them; cheap to clone.
#[derive(Clone)]
pub struct FilesHandle {
    sinks: Arc<[SinkHandle]>,
}

impl fmt::Debug for FilesHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilesHandle")
            .field("paths", &self.paths())
            .finish()
    }
}

impl FilesHandle {
    /// The current file of each sink.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.sinks.iter().map(|s| s.cfg.path.clone()).collect()
    }

    /// Each sink's lines written and dropped, failures, times a thread
    /// waited for room, and last error.
    pub fn health(&self) -> Vec<ComponentHealth> {
        self.sinks.iter().map(|s| s.stats.health()).collect()
    }

    /// Waits, at most `timeout`, until every line handed to the sinks so far
    /// is in its file and synced to disk, every rotated file is compressed
    /// and retention has run. Returns whether everything finished in time
    /// (a lossless sink whose disk is failing does not finish: its lines
    /// are kept and still retried).
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.sinks.iter().all(|s| flush_one(s, deadline))
    }
}

fn flush_one(s: &SinkHandle, deadline: Instant) -> bool {
    let (ack_tx, ack_rx) = mpsc::sync_channel(1);
    if s.tx.send(Msg::Flush(ack_tx)).is_err() {
        return false;
    }
    ack_rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
}

/// One sink as an otelwire health component.
struct SinkComponent {
    handle: FilesHandle,
    index: usize,
}

impl Component for SinkComponent {
    fn health(&self) -> ComponentHealth {
        self.handle.sinks[self.index].stats.health()
    }

    fn flush(&self, timeout: Duration) {
        flush_one(&self.handle.sinks[self.index], Instant::now() + timeout);
    }

    fn on_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.handle.sinks[self.index]
            .stats
            .dispatch
            .set(dispatch.downgrade());
    }
}

impl Files {
    /// Builds the layer from the process environment: creates the
    /// directory, opens every sink's file and starts its threads. With no
    /// directory (neither [`dir`](Self::dir) nor `OTELWIRE_LOG_DIR`) the
    /// layer writes nothing.
    ///
    /// A directory that cannot be created or a file that cannot be opened
    /// for writing is an [`InitError::Io`] naming it.
    pub fn build(self) -> Result<FilesLayer, InitError> {
        self.build_with_env(|k| std::env::var(k).ok())
    }

    /// [`build`](Self::build), reading variables through `env`.
    pub fn build_with_env(
        self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<FilesLayer, InitError> {
        let dispatch = Arc::new(OnceLock::new());
        let dir = self
            .dir
            .clone()
            .or_else(|| {
                env(LOG_DIR_VAR)
                    .filter(|v| !v.trim().is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| self.default_dir.clone());
        let mut sinks = Vec::new();
        if let Some(dir) = &dir {
            let mut resolved = Vec::new();
            for sink in &self.sinks {
                if let Some(r) = sink.resolve(dir, &env)? {
                    resolved.push(r);
                }
            }
            if resolved.len() > 64 {
                return Err(InitError::InvalidSetting {
                    setting: "Files::sink",
                    value: format!("{} sinks", resolved.len()),
                    expected: "at most 64 sinks".into(),
                });
            }
            if !resolved.is_empty() {
                std::fs::create_dir_all(dir).map_err(|source| InitError::Io {
                    what: "log directory",
                    path: dir.clone(),
                    source,
                })?;
            }
            for cfg in resolved {
                let file = writer::open(&cfg.path).map_err(|source| InitError::Io {
                    what: "log file",
                    path: cfg.path.clone(),
                    source,
                })?;
                let (tx, stats) = writer::start(
                    &cfg,
                    file,
                    self.clock.clone(),
                    self.faults.clone(),
                    dispatch.clone(),
                )
                .map_err(InitError::Runtime)?;
                sinks.push(SinkHandle { cfg, tx, stats });
            }
        }
        let description = match &dir {
            None => format!("no files ({LOG_DIR_VAR} is not set)"),
            Some(_) if sinks.is_empty() => "no files (every sink is off)".to_owned(),
            Some(dir) => {
                let names: Vec<String> = sinks
                    .iter()
                    .filter_map(|s| s.cfg.path.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect();
                format!("files in {}: {}", dir.display(), names.join(", "))
            }
        };
        Ok(FilesLayer {
            description,
            formatter: LineFormatter::new(LogFormat::Json),
            sinks: sinks.into(),
            dispatch,
        })
    }
}

impl FilesLayer {
    /// Writes the named baggage members with the span fields of every line
    /// (`otelwire::baggage`; [`FilesExt::files`](crate::FilesExt::files)
    /// passes the builder's).
    #[must_use]
    pub fn baggage_attributes(mut self, names: otelwire::baggage::BaggageAttributes) -> Self {
        self.formatter = self.formatter.baggage_attributes(names);
        self
    }

    /// A handle to the sinks' health and flush.
    pub fn handle(&self) -> FilesHandle {
        FilesHandle {
            sinks: self.sinks.clone(),
        }
    }

    /// This layer as an otelwire output: behind redaction, with each sink's
    /// health in `telemetry.health().components` and flushed at shutdown.
    pub fn into_output(self) -> otelwire::Output {
        let description = self.description.clone();
        if self.sinks.is_empty() {
            return otelwire::Output::none().described(description);
        }
        let handle = self.handle();
        let n = self.sinks.len();
        let mut output = otelwire::Output::layer(self).described(description);
        for index in 0..n {
            output = output.with_component(Arc::new(SinkComponent {
                handle: handle.clone(),
                index,
            }));
        }
        output
    }
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl<S> Layer<S> for FilesLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !self.sinks.is_empty() {
            self.formatter.on_new_span(attrs, id, &ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !self.sinks.is_empty() {
            self.formatter.on_record(id, values, &ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if self.sinks.is_empty() || SINK_THREAD.with(|t| t.get()) {
            return;
        }
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut audit: Option<bool> = None;
        let mut is_audit =
            || *audit.get_or_insert_with(|| filter::is_audit(meta, |v| event.record(v)));
        let mut chosen: u64 = 0;
        for (i, s) in self.sinks.iter().enumerate() {
            if s.cfg
                .filter
                .matches(meta, s.cfg.level, &s.cfg.targets, &mut is_audit)
            {
                chosen |= 1 << i;
            }
        }
        if chosen == 0 {
            return;
        }
        let line: Arc<[u8]> = LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                self.formatter.format_event(event, &ctx, &mut buf);
                let line = Arc::from(&buf[..]);
                if buf.capacity() > 64 * 1024 {
                    *buf = Vec::with_capacity(512);
                }
                line
            }
            Err(_) => {
                let mut buf = Vec::new();
                self.formatter.format_event(event, &ctx, &mut buf);
                buf.into()
            }
        });
        for (i, s) in self.sinks.iter().enumerate() {
            if chosen & (1 << i) == 0 {
                continue;
            }
            let msg = Msg::Line(line.clone());
            let sent = match s.cfg.mode {
                Mode::Lossless => match s.tx.try_send(msg) {
                    Ok(()) => true,
                    Err(TrySendError::Full(msg)) => {
                        // The disk is slow or failing: wait for room, and say so.
                        s.stats.blocked.fetch_add(1, Ordering::Relaxed);
                        s.tx.send(msg).is_ok()
                    }
                    Err(TrySendError::Disconnected(_)) => false,
                },
                Mode::Lossy => match s.tx.try_send(msg) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
                },
            };
            if !sent {
                s.stats.drop_lines(1);
            }
        }
    }
}
