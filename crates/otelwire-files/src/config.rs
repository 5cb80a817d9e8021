//! The configuration: [`Files`] (the directory and the sinks) and [`Sink`]
//! (one file's filter and policies), each knob from code, else from an
//! `OTELWIRE_LOG_*` variable, else its default.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use otelwire::InitError;
use tracing::level_filters::LevelFilter;

use crate::clock::{Clock, SystemClock};
use crate::faults::{Faults, NoFaults};
use crate::filter::Filter;

/// What a sink does when its buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Drop the line and count it (never slows the service down).
    Lossy,
    /// Wait for room: the emitting thread slows down to the disk's pace and
    /// no line is lost.
    Lossless,
}

/// Whether a sink makes its lines durable (`fsync`) as it writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After each batch of lines written (the lines the writer thread found
    /// waiting, at most 64 KiB at a time): a line is on disk before the
    /// next batch starts, so a crash or power cut loses at most the batch
    /// being written. The default of `audit.jsonl`.
    Batch,
    /// Leaves it to the operating system (lines are on disk within its
    /// writeback delay, typically 30 s), except at flush and shutdown. The
    /// default of the other files.
    None,
}

/// When a sink starts a new file regardless of size (UTC boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Never by time.
    Never,
    /// At the start of every hour.
    Hourly,
    /// At midnight UTC.
    Daily,
}

impl Period {
    /// The number of the period `unix_secs` falls in (`None` for `Never`).
    pub(crate) fn index(self, unix_secs: u64) -> Option<u64> {
        match self {
            Period::Never => None,
            Period::Hourly => Some(unix_secs / 3600),
            Period::Daily => Some(unix_secs / 86_400),
        }
    }
}

/// The knobs a variable can set; `None`: not set at this level.
#[derive(Debug, Clone, Default)]
pub(crate) struct Knobs {
    pub(crate) enabled: Option<bool>,
    pub(crate) level: Option<LevelFilter>,
    pub(crate) targets: Option<Vec<String>>,
    /// Bytes; 0: no size limit.
    pub(crate) max_size: Option<u64>,
    pub(crate) rotate: Option<Period>,
    /// 0: no limit.
    pub(crate) max_files: Option<usize>,
    /// Zero: no limit.
    pub(crate) max_age: Option<Duration>,
    pub(crate) compress: Option<bool>,
    pub(crate) mode: Option<Mode>,
    pub(crate) sync: Option<SyncPolicy>,
    pub(crate) buffer: Option<usize>,
}

/// A sink's settings once code, environment and defaults are merged.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) file: String,
    pub(crate) path: PathBuf,
    pub(crate) filter: Filter,
    pub(crate) level: LevelFilter,
    pub(crate) targets: Vec<String>,
    pub(crate) max_size: u64,
    pub(crate) rotate: Period,
    pub(crate) max_files: usize,
    pub(crate) max_age: Duration,
    pub(crate) compress: bool,
    pub(crate) mode: Mode,
    pub(crate) sync: SyncPolicy,
    pub(crate) buffer: usize,
}

/// The default buffer of a sink, in lines.
pub const DEFAULT_BUFFER: usize = 16_384;

const DAY: Duration = Duration::from_secs(86_400);

/// One JSON-lines file: which events it takes and how it rotates, keeps and
/// compresses its files. Every knob set here wins over its
/// `OTELWIRE_LOG_<NAME>_*` variable (`<NAME>`: the file name before the
/// first dot, upper-cased, such as `APP` for `app.jsonl`).
///
/// ```
/// use otelwire_files::{Filter, Mode, Period, Sink};
/// use std::time::Duration;
///
/// let payments = Sink::new("payments.jsonl")
///     .filter(Filter::all().targets(["payments"]).level(tracing::Level::INFO))
///     .max_size(50_000_000)
///     .rotate(Period::Hourly)
///     .max_files(48)
///     .max_age(Duration::from_secs(7 * 86_400))
///     .mode(Mode::Lossless);
/// # let _ = payments;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Sink {
    pub(crate) file: String,
    pub(crate) filter: Filter,
    pub(crate) code: Knobs,
    pub(crate) defaults: Knobs,
}

impl Sink {
    /// A sink writing `file` in the log directory: everything, no rotation
    /// or retention, gzip of rotated files, lossy, no sync per batch, a
    /// buffer of [`DEFAULT_BUFFER`] lines.
    pub fn new(file: impl Into<String>) -> Self {
        Sink {
            file: file.into(),
            filter: Filter::all(),
            code: Knobs::default(),
            defaults: Knobs {
                enabled: Some(true),
                level: Some(LevelFilter::TRACE),
                targets: Some(Vec::new()),
                max_size: Some(0),
                rotate: Some(Period::Never),
                max_files: Some(0),
                max_age: Some(Duration::ZERO),
                compress: Some(true),
                mode: Some(Mode::Lossy),
                sync: Some(SyncPolicy::None),
                buffer: Some(DEFAULT_BUFFER),
            },
        }
    }

    /// `app.jsonl`: everything at INFO and above; 500 MB or daily, kept 30
    /// days; lossy.
    pub fn app() -> Self {
        Sink::new("app.jsonl")
            .default_level(LevelFilter::INFO)
            .default_policy(500_000_000, 30)
    }

    /// `metrics.jsonl`: events with a metric field (see
    /// [`is_metric_field`](crate::is_metric_field)); 100 MB or daily, kept 7
    /// days; lossy.
    pub fn metrics() -> Self {
        let mut s = Sink::new("metrics.jsonl").default_policy(100_000_000, 7);
        s.filter = Filter::metrics();
        s
    }

    /// `alerts.jsonl`: WARN and ERROR; 100 MB or daily, kept 90 days; lossy.
    pub fn alerts() -> Self {
        Sink::new("alerts.jsonl")
            .default_level(LevelFilter::WARN)
            .default_policy(100_000_000, 90)
    }

    /// `audit.jsonl`: audit and security events only (see
    /// [`Filter::audit`]), never anything else; 1 GB or daily, kept 365
    /// days; lossless, synced to disk after each batch.
    pub fn audit() -> Self {
        let mut s = Sink::new("audit.jsonl").default_policy(1_000_000_000, 365);
        s.filter = Filter::audit();
        s.defaults.mode = Some(Mode::Lossless);
        s.defaults.sync = Some(SyncPolicy::Batch);
        s
    }

    fn default_level(mut self, level: LevelFilter) -> Self {
        self.defaults.level = Some(level);
        self
    }

    fn default_policy(mut self, max_size: u64, days: u32) -> Self {
        self.defaults.max_size = Some(max_size);
        self.defaults.rotate = Some(Period::Daily);
        self.defaults.max_age = Some(DAY * days);
        self
    }

    /// The file name, relative to the log directory.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Which events the sink takes. The filter's level and targets, when
    /// set, win over `_LEVEL` and `_TARGETS`.
    pub fn filter(mut self, filter: Filter) -> Self {
        if filter.level.is_some() {
            self.code.level = filter.level;
        }
        if filter.targets.is_some() {
            self.code.targets = filter.targets.clone();
        }
        self.filter = filter;
        self
    }

    /// The least severe level taken (`_LEVEL`).
    pub fn level(mut self, level: tracing::Level) -> Self {
        self.code.level = Some(LevelFilter::from_level(level));
        self
    }

    /// Whether the sink writes at all (`_ENABLED`).
    pub fn enabled(mut self, on: bool) -> Self {
        self.code.enabled = Some(on);
        self
    }

    /// Starts a new file before one would grow past `bytes` (`_MAX_SIZE`;
    /// 0: no size limit). A line is never split: a line longer than the
    /// limit gets a file of its own.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.code.max_size = Some(bytes);
        self
    }

    /// Starts a new file at every hour or day boundary (`_ROTATE`).
    pub fn rotate(mut self, period: Period) -> Self {
        self.code.rotate = Some(period);
        self
    }

    /// Keeps at most `n` rotated files, deleting the oldest (`_MAX_FILES`;
    /// 0: no limit).
    pub fn max_files(mut self, n: usize) -> Self {
        self.code.max_files = Some(n);
        self
    }

    /// Deletes rotated files older than `age` (`_MAX_AGE`; zero: never).
    pub fn max_age(mut self, age: Duration) -> Self {
        self.code.max_age = Some(age);
        self
    }

    /// Gzips rotated files (`_COMPRESS`).
    pub fn compress(mut self, on: bool) -> Self {
        self.code.compress = Some(on);
        self
    }

    /// Lossy or lossless when the buffer is full or a write fails
    /// (`_MODE`).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.code.mode = Some(mode);
        self
    }

    /// Syncs the file to disk after each batch of lines, or leaves it to the
    /// operating system (`_SYNC`: `batch` or `none`).
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.code.sync = Some(policy);
        self
    }

    /// Lines that may wait for the writer thread (`_BUFFER`).
    pub fn buffer(mut self, lines: usize) -> Self {
        self.code.buffer = Some(lines.max(1));
        self
    }

    /// The variables' prefix: `OTELWIRE_LOG_APP_` for `app.jsonl`.
    pub fn env_prefix(&self) -> String {
        let stem = self.file.split('.').next().unwrap_or(&self.file);
        let name: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("OTELWIRE_LOG_{name}_")
    }

    pub(crate) fn resolve(
        &self,
        dir: &std::path::Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Resolved>, InitError> {
        if self.file.is_empty()
            || self.file.contains(['/', '\\'])
            || self.file.starts_with('.')
            || self.file.ends_with(".gz")
        {
            return Err(InitError::InvalidSetting {
                setting: "Sink::new",
                value: self.file.clone(),
                expected: "a plain file name such as app.jsonl (no directory, not hidden, not .gz)"
                    .into(),
            });
        }
        let from_env = self.env_knobs(env)?;
        macro_rules! pick {
            ($k:ident) => {
                self.code
                    .$k
                    .clone()
                    .or(from_env.$k.clone())
                    .or(self.defaults.$k.clone())
                    .unwrap_or_default()
            };
        }
        if !pick!(enabled) {
            return Ok(None);
        }
        Ok(Some(Resolved {
            file: self.file.clone(),
            path: dir.join(&self.file),
            filter: self.filter.clone(),
            level: self
                .code
                .level
                .or(from_env.level)
                .or(self.defaults.level)
                .unwrap_or(LevelFilter::TRACE),
            targets: pick!(targets),
            max_size: pick!(max_size),
            rotate: self
                .code
                .rotate
                .or(from_env.rotate)
                .or(self.defaults.rotate)
                .unwrap_or(Period::Never),
            max_files: pick!(max_files),
            max_age: pick!(max_age),
            compress: pick!(compress),
            mode: self
                .code
                .mode
                .or(from_env.mode)
                .or(self.defaults.mode)
                .unwrap_or(Mode::Lossy),
            sync: self
                .code
                .sync
                .or(from_env.sync)
                .or(self.defaults.sync)
                .unwrap_or(SyncPolicy::None),
            buffer: self
                .code
                .buffer
                .or(from_env.buffer)
                .or(self.defaults.buffer)
                .unwrap_or(DEFAULT_BUFFER),
        }))
    }

    fn env_knobs(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Knobs, InitError> {
        let prefix = self.env_prefix();
        let get = |knob: &str| {
            let var = format!("{prefix}{knob}");
            env(&var).filter(|v| !v.trim().is_empty()).map(|v| (var, v))
        };
        let bad = |var: &str, value: &str, expected: &str| InitError::InvalidEnv {
            var: var.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        };
        let mut k = Knobs::default();
        if let Some((var, v)) = get("ENABLED") {
            k.enabled =
                Some(parse_bool(&v).ok_or_else(|| bad(&var, &v, "expected true or false"))?);
        }
        if let Some((var, v)) = get("LEVEL") {
            k.level =
                Some(parse_level(&v).ok_or_else(|| {
                    bad(&var, &v, "expected one of trace, debug, info, warn, error")
                })?);
        }
        if let Some((_, v)) = get("TARGETS") {
            k.targets = Some(
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        if let Some((var, v)) = get("MAX_SIZE") {
            k.max_size = Some(parse_size(&v).ok_or_else(|| {
                bad(
                    &var,
                    &v,
                    "expected a size such as 500MB, 64KiB or 1048576 (bytes); 0 for no limit",
                )
            })?);
        }
        if let Some((var, v)) = get("ROTATE") {
            k.rotate = Some(match v.trim().to_ascii_lowercase().as_str() {
                "never" | "none" => Period::Never,
                "hourly" => Period::Hourly,
                "daily" => Period::Daily,
                _ => return Err(bad(&var, &v, "expected hourly, daily or never")),
            });
        }
        if let Some((var, v)) = get("MAX_FILES") {
            k.max_files =
                Some(v.trim().parse().map_err(|_| {
                    bad(&var, &v, "expected a whole number of files; 0 for no limit")
                })?);
        }
        if let Some((var, v)) = get("MAX_AGE") {
            k.max_age = Some(parse_duration(&v).ok_or_else(|| {
                bad(
                    &var,
                    &v,
                    "expected a duration such as 30d, 12h, 90m or 3600s; 0 for no limit",
                )
            })?);
        }
        if let Some((var, v)) = get("COMPRESS") {
            k.compress =
                Some(parse_bool(&v).ok_or_else(|| bad(&var, &v, "expected true or false"))?);
        }
        if let Some((var, v)) = get("MODE") {
            k.mode = Some(match v.trim().to_ascii_lowercase().as_str() {
                "lossy" => Mode::Lossy,
                "lossless" => Mode::Lossless,
                _ => return Err(bad(&var, &v, "expected lossy or lossless")),
            });
        }
        if let Some((var, v)) = get("SYNC") {
            k.sync = Some(match v.trim().to_ascii_lowercase().as_str() {
                "batch" => SyncPolicy::Batch,
                "none" => SyncPolicy::None,
                _ => return Err(bad(&var, &v, "expected batch or none")),
            });
        }
        if let Some((var, v)) = get("BUFFER") {
            k.buffer = Some(
                v.trim()
                    .parse()
                    .ok()
                    .filter(|n: &usize| *n > 0)
                    .ok_or_else(|| bad(&var, &v, "expected a positive whole number of lines"))?,
            );
        }
        Ok(k)
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_level(v: &str) -> Option<LevelFilter> {
    match v.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(LevelFilter::TRACE),
        "debug" => Some(LevelFilter::DEBUG),
        "info" => Some(LevelFilter::INFO),
        "warn" | "warning" => Some(LevelFilter::WARN),
        "error" => Some(LevelFilter::ERROR),
        _ => None,
    }
}

/// `500MB`, `64KiB`, `1GB`, `1048576`: KB/MB/GB are powers of 1000,
/// KiB/MiB/GiB powers of 1024, a bare number is bytes.
pub(crate) fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `30d`, `12h`, `90m`, `3600s`, `500ms`; a bare number is milliseconds,
/// as for otelwire's other durations.
pub(crate) fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = |m: u64| n.checked_mul(m).map(Duration::from_secs);
    match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => None,
    }
}

/// Local files: a directory and the sinks written in it.
///
/// [`Files::defaults`] is the default set, switched on by
/// `OTELWIRE_LOG_DIR` (or [`dir`](Self::dir)): `app.jsonl`,
/// `metrics.jsonl`, `alerts.jsonl` and `audit.jsonl`.
#[derive(Debug, Clone)]
#[must_use]
pub struct Files {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) default_dir: Option<PathBuf>,
    pub(crate) sinks: Vec<Sink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) faults: Arc<dyn Faults>,
}

impl Files {
    /// The four default sinks ([`Sink::app`], [`Sink::metrics`],
    /// [`Sink::alerts`], [`Sink::audit`]) in `OTELWIRE_LOG_DIR`; no files
    /// when neither that variable nor [`dir`](Self::dir) is set.
    pub fn defaults() -> Self {
        Files {
            dir: None,
            default_dir: None,
            sinks: vec![Sink::app(), Sink::metrics(), Sink::alerts(), Sink::audit()],
            clock: Arc::new(SystemClock),
            faults: Arc::new(NoFaults),
        }
    }

    /// No sinks: add your own with [`sink`](Self::sink).
    pub fn empty() -> Self {
        Files {
            sinks: Vec::new(),
            ..Files::defaults()
        }
    }

    /// The log directory, fixed in code: it wins over `OTELWIRE_LOG_DIR`,
    /// so operators cannot move the files; created if missing. Prefer
    /// [`default_dir`](Self::default_dir).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The log directory when `OTELWIRE_LOG_DIR` says none (the variable
    /// wins over it; an empty variable still means this default). With it,
    /// the files are on unless the operator turns each off
    /// (`OTELWIRE_LOG_<NAME>_ENABLED=false`).
    pub fn default_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.default_dir = Some(dir.into());
        self
    }

    /// Adds a sink, or replaces the one writing the same file.
    pub fn sink(mut self, sink: Sink) -> Self {
        match self.sinks.iter_mut().find(|s| s.file == sink.file) {
            Some(s) => *s = sink,
            None => self.sinks.push(sink),
        }
        self
    }

    /// Changes the sink writing `file` (no effect when there is none).
    ///
    /// ```
    /// let files = otelwire_files::Files::defaults()
    ///     .configure("app.jsonl", |s| s.max_size(64 << 20).max_files(10));
    /// # let _ = files;
    /// ```
    pub fn configure(mut self, file: &str, change: impl FnOnce(Sink) -> Sink) -> Self {
        if let Some(i) = self.sinks.iter().position(|s| s.file == file) {
            let s = self.sinks.remove(i);
            self.sinks.insert(i, change(s));
        }
        self
    }

    /// Removes the sink writing `file`.
    pub fn without(mut self, file: &str) -> Self {
        self.sinks.retain(|s| s.file != file);
        self
    }

    /// The clock of time-based rotation and retention by age (default: the
    /// system clock); for tests, see [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Asks `faults` before every write and sync of every sink (default:
    /// none), so that a test can make the disk fail and recover; see
    /// [`FlakyDisk`](crate::FlakyDisk).
    pub fn faults(mut self, faults: impl Faults) -> Self {
        self.faults = Arc::new(faults);
        self
    }

    /// The sinks configured so far.
    pub fn sinks(&self) -> &[Sink] {
        &self.sinks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("500MB"), Some(500_000_000));
        assert_eq!(parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_size("1048576"), Some(1_048_576));
        assert_eq!(parse_size("5 parsecs"), None);
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn code_wins_over_env_which_wins_over_defaults() {
        let env = |k: &str| match k {
            "OTELWIRE_LOG_APP_MAX_SIZE" => Some("1MB".to_owned()),
            "OTELWIRE_LOG_APP_MAX_FILES" => Some("3".to_owned()),
            "OTELWIRE_LOG_APP_ROTATE" => Some("hourly".to_owned()),
            _ => None,
        };
        let r = Sink::app()
            .max_files(5)
            .resolve(std::path::Path::new("logs"), &env)
            .unwrap()
            .unwrap();
        assert_eq!(r.max_size, 1_000_000, "env over default");
        assert_eq!(r.max_files, 5, "code over env");
        assert_eq!(r.rotate, Period::Hourly);
        assert_eq!(r.max_age, DAY * 30, "default");
        assert_eq!(r.level, LevelFilter::INFO);
        assert_eq!(r.path, std::path::Path::new("logs/app.jsonl"));
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let env = |k: &str| (k == "OTELWIRE_LOG_AUDIT_MODE").then(|| "sometimes".to_owned());
        let e = Sink::audit()
            .resolve(std::path::Path::new("logs"), &env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "OTELWIRE_LOG_AUDIT_MODE=sometimes: expected lossy or lossless"
        );
    }

    #[test]
    fn audit_syncs_per_batch_unless_told_otherwise() {
        let dir = std::path::Path::new("logs");
        let none = |_: &str| None;
        let audit = Sink::audit().resolve(dir, &none).unwrap().unwrap();
        assert_eq!(audit.sync, SyncPolicy::Batch);
        let app = Sink::app().resolve(dir, &none).unwrap().unwrap();
        assert_eq!(app.sync, SyncPolicy::None);
        let env = |k: &str| (k == "OTELWIRE_LOG_AUDIT_SYNC").then(|| "None".to_owned());
        let r = Sink::audit().resolve(dir, &env).unwrap().unwrap();
        assert_eq!(r.sync, SyncPolicy::None, "env over default");
        let r = Sink::audit()
            .sync(SyncPolicy::Batch)
            .resolve(dir, &env)
            .unwrap()
            .unwrap();
        assert_eq!(r.sync, SyncPolicy::Batch, "code over env");
        let env = |k: &str| (k == "OTELWIRE_LOG_AUDIT_SYNC").then(|| "always".to_owned());
        let e = Sink::audit().resolve(dir, &env).unwrap_err().to_string();
        assert_eq!(e, "OTELWIRE_LOG_AUDIT_SYNC=always: expected batch or none");
    }
}
