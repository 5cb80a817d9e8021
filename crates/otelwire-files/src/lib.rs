//! Local JSON-lines files for [otelwire], routed by category, with
//! rotation by size and time, retention by count and age, and gzip.
//!
//! ```
//! use otelwire_files::{Files, FilesExt};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("otelwire-files-doc-{}", std::process::id()));
//! let telemetry = otelwire::builder()
//!     .sdk_disabled(true) // this example exports nothing
//!     .log_format(otelwire::LogFormat::None)
//!     .files(Files::defaults().dir(&dir)) // or set OTELWIRE_LOG_DIR
//!     .build()?; // `init()` in a service
//! tracing::dispatcher::with_default(telemetry.dispatch(), || {
//!     tracing::info!(user.id = 7, "signed in");
//!     tracing::warn!(disk.used_pct = 91, "disk almost full");
//!     tracing::info!(metric.name = "checks.duration", metric.value = 12.5, "check done");
//!     // (`info!(target: …, a.b = …)` does not parse a dotted first field; `event!` does)
//!     tracing::event!(target: "otelwire::audit", tracing::Level::INFO,
//!         event.category = "audit", user.id = 7, "role granted");
//! });
//! telemetry.shutdown_blocking(); // flushes the files too
//!
//! let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
//! assert!(read("app.jsonl").contains(r#""message":"signed in","user.id":7"#));
//! assert_eq!(read("alerts.jsonl").lines().count(), 1);
//! assert!(read("metrics.jsonl").contains(r#""metric.value":12.5"#));
//! assert!(read("audit.jsonl").lines().all(|l| l.contains("role granted")));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! Without `otelwire::builder()`, [`Files::build`] gives a [`FilesLayer`]
//! for any `tracing_subscriber` registry (not redacted then: wrap it in
//! [`otelwire::RedactLayer`]), and [`FilesLayer::handle`] its health and
//! flush.
//!
//! # The default files
//!
//! [`Files::defaults`], switched on by `OTELWIRE_LOG_DIR` (or
//! [`Files::dir`]), writes four files, each rotated daily (UTC) and by size,
//! rotated files gzipped:
//!
//! | File | Takes | Rotates at | Keeps | Mode |
//! |---|---|---|---|---|
//! | `app.jsonl` | every event at INFO and above | 500 MB, daily | 30 days | lossy |
//! | `metrics.jsonl` | events with a metric field: a field named `metric` or `metric.*` ([`is_metric_field`]), such as `info!(metric.name = "orders", metric.value = 3)`; not the OpenTelemetry instruments (a `Meter`'s counters and histograms are exported as metrics, never written to a file) | 100 MB, daily | 7 days | lossy |
//! | `alerts.jsonl` | WARN and ERROR | 100 MB, daily | 90 days | lossy |
//! | `audit.jsonl` | audit and security events only: target `otelwire::audit` or `otelwire::security`, or a field `event.category` equal to `audit` or `security` ([`Filter::audit`]); never diagnostics, not even otelwire's own | 1 GB, daily | 365 days | lossless, synced per batch |
//!
//! Every line is the console's JSON line ([`otelwire::LineFormatter`]),
//! with `trace_id` and `span_id` inside spans, and fields named like secrets
//! are `[REDACTED]` as everywhere else. Files only see what `RUST_LOG`
//! lets through: with `RUST_LOG=warn`, add `otelwire::audit=info` to keep
//! INFO audit events.
//!
//! # Configuration
//!
//! Every knob has a [`Sink`] method and a variable; code wins over the
//! variable, the variable over the default. `<NAME>` is the file name before
//! its first dot, upper-cased: `APP`, `METRICS`, `ALERTS`, `AUDIT`, or that of
//! a sink of your own. A bad value is an [`otelwire::InitError`] naming the
//! variable and the value.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `OTELWIRE_LOG_DIR` | [`Files::default_dir`], else none (no files) | the directory of the files, created if missing; [`Files::dir`] wins over it, a default does not; the startup line (`outputs=`) says where the files go, or that there are none |
//! | `OTELWIRE_LOG_<NAME>_ENABLED` | `true` | `false`: no such file |
//! | `OTELWIRE_LOG_<NAME>_LEVEL` | `info` for APP, `warn` for ALERTS, `trace` otherwise | least severe level taken: `trace`, `debug`, `info`, `warn`, `error` |
//! | `OTELWIRE_LOG_<NAME>_TARGETS` | — (any) | comma-separated targets; an event's target must be one or a module below |
//! | `OTELWIRE_LOG_<NAME>_MAX_SIZE` | `500MB`, `100MB`, `100MB`, `1GB` | rotate before a file grows past this; `KB`/`MB`/`GB` (×1000), `KiB`/`MiB`/`GiB` (×1024), bare bytes; `0`: no limit |
//! | `OTELWIRE_LOG_<NAME>_ROTATE` | `daily` | also rotate at each `hourly` or `daily` UTC boundary, or `never` |
//! | `OTELWIRE_LOG_<NAME>_MAX_FILES` | `0` (no limit) | rotated files kept; the oldest beyond are deleted |
//! | `OTELWIRE_LOG_<NAME>_MAX_AGE` | `30d`, `7d`, `90d`, `365d` | rotated files older than this are deleted; `d`, `h`, `m`, `s`, `ms`, bare milliseconds; `0`: never |
//! | `OTELWIRE_LOG_<NAME>_COMPRESS` | `true` | gzip rotated files |
//! | `OTELWIRE_LOG_<NAME>_MODE` | `lossless` for AUDIT, `lossy` otherwise | full buffer or failed write: `lossy` drops and counts; `lossless` keeps the lines, retries the write and makes the emitting thread wait once the buffer is full |
//! | `OTELWIRE_LOG_<NAME>_SYNC` | `batch` for AUDIT, `none` otherwise | `batch`: `fsync` after each batch of lines written; `none`: the operating system decides (flush and shutdown sync anyway) |
//! | `OTELWIRE_LOG_<NAME>_BUFFER` | `16384` | lines waiting for the sink's writer thread |
//!
//! # How it works
//!
//! - Each event is formatted once and handed, through a bounded buffer, to
//!   each sink that takes it; a writer thread per sink writes it. In lossy
//!   mode a full buffer drops the line and counts it; in lossless mode the
//!   emitting thread waits for room.
//! - Rotation happens between two lines on the writer thread: every line
//!   is in exactly one file, whole. A rotated file is renamed with its UTC
//!   time, `app.jsonl` → `app.20261123T100000Z.jsonl` (`….1.jsonl` for a
//!   second one in the same second), then gzipped by a second thread
//!   (`….jsonl.gz`, written under a temporary name first).
//! - Retention runs after each rotation, every ten minutes and at start:
//!   rotated files beyond `MAX_FILES` or older than `MAX_AGE` (by the time
//!   in their name) are deleted. This replaces the cron clean-up script of
//!   the original design (`find logs/ -name "*.jsonl.*" -mtime +30
//!   -delete`): nothing outside the process is needed.
//! - Time-based rotation and retention read a [`Clock`]; tests can move a
//!   [`ManualClock`] instead of waiting.
//! - Failures: a directory that cannot be created, or a file that cannot be
//!   opened for writing, is an [`otelwire::InitError::Io`] naming the path.
//!   At run time a failed write (a full disk, an I/O error) is counted and
//!   warned about (target `otelwire::files`) at most once a minute per file,
//!   and the service keeps running. Then a lossy sink drops the lines
//!   concerned and counts them. A lossless sink (`audit.jsonl`) keeps them:
//!   it cuts a torn line back (or, if the disk refuses, writes only the rest
//!   later, so no line is written twice), retries after 10 ms, 20 ms, … up
//!   to 1 s, and takes no new line meanwhile, so memory stays bounded (the
//!   `BUFFER` lines and one 64 KiB batch); once its buffer is full, the
//!   threads that log to it wait (counted in `blocked`) until the disk
//!   works again. Each sink's counts and last error (with the file's name,
//!   not its directory) are in `telemetry.health().components` (`file
//!   app.jsonl`, …) and at `/health/logs` (`otelwire_axum::health_router`).
//! - Durability: a sink with `SYNC=batch` (`audit.jsonl`) calls `fsync`
//!   after each batch it writes (the lines found waiting, at most 64 KiB),
//!   so a crash or power cut loses at most the batch being written; the cost
//!   is in `cargo bench -p otelwire-files --bench throughput`.
//! - [`Telemetry::shutdown`](otelwire::Telemetry::shutdown) flushes and
//!   syncs the files first, each sink on its own thread, within
//!   `OTELWIRE_SHUTDOWN_TIMEOUT` of their own; only then do the exporters
//!   get theirs, so a collector that hangs cannot take the files' time. The
//!   pipelines' last lines (the shutdown summary) are flushed after them.
//! - What "never lost" means for `audit.jsonl`, as tested
//!   (`tests/durability.rs`, `tests/shutdown.rs`): every audit event that
//!   `RUST_LOG` lets through is in the file, whole, once and in order,
//!   across write errors that end (a disk that fails for a while, or fills
//!   in the middle of a line, then recovers) and across a shutdown with a
//!   collector that never answers; it is on disk when the batch after it is
//!   written. Not covered: a disk that never recovers before the process
//!   exits (the lines still held are lost, and the health report says so),
//!   `kill -9` (the lines not yet written), a power cut between a write and
//!   its `fsync`, or a process that exits without `shutdown` (or dropping
//!   the guard).
//! - Tests can make the disk fail and recover with [`FlakyDisk`] (or a
//!   [`Faults`] of their own) through [`Files::faults`].
//!
//! Why not file-rotate or logroller: both rotate by size *or* time, not
//! both; neither takes a clock, so time rotation and age retention cannot
//! be tested without waiting; both compress on the writing thread; and
//! file-rotate panics when its directory cannot be created and silently
//! drops writes when its file cannot be opened. What is left once those are
//! done here (renaming and calling `flate2`) is a few lines.

mod clock;
mod config;
mod faults;
mod filter;
mod layer;
mod names;
mod writer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{DEFAULT_BUFFER, Files, Mode, Period, Sink, SyncPolicy};
pub use faults::{Faults, FlakyDisk};
pub use filter::{CATEGORY_FIELD, CATEGORY_TARGETS, Filter, is_metric_field};
pub use layer::{FilesHandle, FilesLayer, LOG_DIR_VAR};

/// Plugs [`Files`] into `otelwire::builder()`.
pub trait FilesExt {
    /// Writes `files` too: its layer sits behind otelwire's redaction, its
    /// sinks show in `telemetry.health()` and are flushed at shutdown. The
    /// builder's configuration source (the process environment, or
    /// [`env_source`](otelwire::Builder::env_source)) provides the
    /// `OTELWIRE_LOG_*` variables; errors are those of `init()`/`build()`.
    #[must_use]
    fn files(self, files: Files) -> Self;
}

impl FilesExt for otelwire::Builder {
    fn files(self, files: Files) -> Self {
        self.with_output(move |cx| {
            files.build_with_env(|k| cx.env(k)).map(|layer| {
                layer
                    .baggage_attributes(cx.baggage_attributes().clone())
                    .into_output()
            })
        })
    }
}

/// The README's examples, compiled as doctests so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
