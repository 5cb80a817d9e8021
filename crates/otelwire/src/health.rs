//! Pipeline health: what each signal exported, failed and dropped, and when
//! export last worked. Readable in code ([`Telemetry::health`](crate::Telemetry::health)),
//! as JSON (it implements `Serialize`) and as the `otelwire.telemetry.exported`,
//! `otelwire.telemetry.dropped` and `otelwire.telemetry.export.failures` metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::{ExporterKind, Signal};
use crate::timestamp;

/// Overall state of a signal or of the whole pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Exporting normally (or nothing to export yet).
    Ok,
    /// Export is failing or items were dropped recently, for less than the
    /// failing threshold (`OTELWIRE_HEALTH_FAILING_AFTER`, default 60 s).
    Degraded,
    /// Export has failed without a success for longer than the threshold.
    Failing,
}

/// The health of one signal's export pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct SignalHealth {
    /// The signal.
    pub signal: Signal,
    /// `otlp`, `console` or `none`.
    pub exporter: &'static str,
    /// Where it exports to (OTLP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// This signal's state.
    pub status: HealthStatus,
    /// Items (spans, log records, metric data points) the exporter delivered.
    pub exported: u64,
    /// Items lost: dropped because the queue was full, or in a batch whose
    /// export failed after retries.
    pub dropped: u64,
    /// Export calls that failed.
    pub failures: u64,
    /// When an export last succeeded.
    #[serde(serialize_with = "timestamp::serialize_opt")]
    pub last_success: Option<SystemTime>,
    /// When an export last failed.
    #[serde(serialize_with = "timestamp::serialize_opt")]
    pub last_error_at: Option<SystemTime>,
    /// The last export error, with secrets removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A snapshot of the whole telemetry pipeline.
///
/// Serialises to the JSON served at `/health/telemetry` by `otelwire-axum`:
///
/// ```json
/// {"status":"ok","service":"orders-api","signals":[{"signal":"traces","exporter":"otlp",
///  "endpoint":"http://localhost:4318/v1/traces","status":"ok","exported":120,"dropped":0,
///  "failures":0,"last_success":"2026-11-22T10:00:05.000000Z","last_error_at":null}, ...]}
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The worst status of any signal.
    pub status: HealthStatus,
    /// `service.name` of this process.
    pub service: String,
    /// One entry per signal: traces, logs, metrics.
    pub signals: Vec<SignalHealth>,
    /// The other outputs' components (such as `otelwire-files` sinks),
    /// when there are any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentHealth>,
}

/// The health of an output other than the three export pipelines, such as
/// one log file of `otelwire-files`.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentHealth {
    /// What it is, for example `file app.jsonl`.
    pub name: String,
    /// `degraded` while it has lost items in the last minute or is retrying
    /// a failed write; `failing` when the retries have gone on for longer
    /// than a minute.
    pub status: HealthStatus,
    /// Items (lines) it delivered.
    pub written: u64,
    /// Items lost: a full buffer in lossy mode, or a failed write.
    pub dropped: u64,
    /// Operations that failed (writes, syncs, rotations), retries included.
    pub failures: u64,
    /// Times an emitting thread had to wait for room (lossless mode: the
    /// buffer was full because the disk was slow or failing).
    pub blocked: u64,
    /// When the last failure happened.
    #[serde(serialize_with = "timestamp::serialize_opt")]
    pub last_error_at: Option<SystemTime>,
    /// The last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// An output other than the export pipelines that reports its health in
/// [`Telemetry::health`](crate::Telemetry::health) and is flushed by
/// [`Telemetry::shutdown`](crate::Telemetry::shutdown). Added with
/// [`Output::with_component`](crate::Output::with_component).
pub trait Component: Send + Sync + 'static {
    /// Its health now.
    fn health(&self) -> ComponentHealth;

    /// Writes out what it holds (and makes it durable, for a file),
    /// waiting at most `timeout`. Called at shutdown twice: first, before
    /// the exporters, with a deadline of its own (a hung collector cannot
    /// use it up); then, after them, for the pipelines' last lines.
    fn flush(&self, timeout: Duration);

    /// Called once with the pipeline's dispatcher, where the component's own
    /// warnings belong when they are raised on a thread of its own.
    fn on_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = dispatch;
    }
}

impl Health {
    /// The entry for one signal.
    pub fn signal(&self, signal: Signal) -> &SignalHealth {
        &self.signals[signal.index()]
    }

    /// Whether the pipeline is fully healthy.
    pub fn is_ok(&self) -> bool {
        self.status == HealthStatus::Ok
    }
}

/// Counters for one signal, updated lock-free on the hot path.
#[derive(Debug)]
pub(crate) struct SignalStats {
    pub(crate) signal: Signal,
    pub(crate) exporter: ExporterKind,
    pub(crate) endpoint: Option<String>,
    /// Items admitted to the pipeline and not yet exported or failed (for
    /// metrics: points being exported). One atomic on the hot path: the
    /// number emitted is derived from it and the other counters.
    pub(crate) queued: AtomicU64,
    pub(crate) exported: AtomicU64,
    pub(crate) queue_dropped: AtomicU64,
    pub(crate) failed_items: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Milliseconds since the pipeline started of the last queue drop, plus one (0 = never).
    last_drop: AtomicU64,
    state: Mutex<ExportState>,
}

#[derive(Debug, Default)]
struct ExportState {
    last_success: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
    failing_since: Option<Instant>,
}

impl SignalStats {
    /// Items that are in the queue or being exported right now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    /// Items handed to the pipeline (after sampling): exported, dropped, or
    /// still in flight.
    pub(crate) fn emitted(&self) -> u64 {
        self.exported.load(Ordering::Acquire)
            + self.failed_items.load(Ordering::Acquire)
            + self.queue_dropped.load(Ordering::Acquire)
            + self.queued.load(Ordering::Acquire)
    }

    /// Admits one item unless `max` are already in flight; a refused item
    /// is counted as dropped.
    #[inline]
    pub(crate) fn admit(&self, max: u64) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) < max {
            return true;
        }
        self.queued.fetch_sub(1, Ordering::AcqRel);
        false
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.queue_dropped.load(Ordering::Relaxed) + self.failed_items.load(Ordering::Relaxed)
    }
}

/// Shared by the processors, exporters and the [`Telemetry`](crate::Telemetry) guard.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) service: String,
    started: Instant,
    signals: [SignalStats; 3],
    failing_after: Duration,
    /// Strings that must never appear in a reported error (header values).
    secrets: Vec<String>,
    endpoints: Mutex<HashMap<String, EndpointState>>,
    dispatch: OnceLock<tracing::dispatcher::WeakDispatch>,
    components: OnceLock<Vec<std::sync::Arc<dyn Component>>>,
}

impl std::fmt::Debug for dyn Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Component")
    }
}

#[derive(Debug, Default)]
struct EndpointState {
    failing_since: Option<Instant>,
    last_warn: Option<Instant>,
}

/// How often a still-unreachable endpoint is mentioned again.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(60);

impl Pipeline {
    pub(crate) fn new(
        service: String,
        signals: [(ExporterKind, Option<String>); 3],
        failing_after: Duration,
        secrets: Vec<String>,
    ) -> Self {
        let [t, l, m] = signals;
        let stats = |signal, (exporter, endpoint): (ExporterKind, Option<String>)| SignalStats {
            signal,
            exporter,
            endpoint,
            queued: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            queue_dropped: AtomicU64::new(0),
            failed_items: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_drop: AtomicU64::new(0),
            state: Mutex::new(ExportState::default()),
        };
        Pipeline {
            service,
            started: Instant::now(),
            signals: [
                stats(Signal::Traces, t),
                stats(Signal::Logs, l),
                stats(Signal::Metrics, m),
            ],
            failing_after,
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
            endpoints: Mutex::new(HashMap::new()),
            dispatch: OnceLock::new(),
            components: OnceLock::new(),
        }
    }

    pub(crate) fn stats(&self, signal: Signal) -> &SignalStats {
        &self.signals[signal.index()]
    }

    /// Where pipeline warnings go when they are raised on an export thread.
    pub(crate) fn set_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
        for c in self.components() {
            c.on_dispatch(dispatch);
        }
    }

    pub(crate) fn set_components(&self, components: Vec<std::sync::Arc<dyn Component>>) {
        let _ = self.components.set(components);
    }

    pub(crate) fn components(&self) -> &[std::sync::Arc<dyn Component>] {
        self.components.get().map(Vec::as_slice).unwrap_or(&[])
    }

    /// Counts an item dropped before export because the queue was full.
    pub(crate) fn record_queue_drop(&self, signal: Signal) {
        let s = self.stats(signal);
        s.queue_dropped.fetch_add(1, Ordering::Relaxed);
        let ms = self.started.elapsed().as_millis() as u64 + 1;
        s.last_drop.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn record_success(&self, signal: Signal, items: u64) {
        let s = self.stats(signal);
        s.exported.fetch_add(items, Ordering::AcqRel);
        s.queued.fetch_sub(
            items.min(s.queued.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        {
            let mut st = lock(&s.state);
            st.last_success = Some(SystemTime::now());
            st.failing_since = None;
        }
        if let Some(endpoint) = &s.endpoint {
            let endpoint = origin(endpoint);
            let recovered_after = {
                let mut eps = lock(&self.endpoints);
                eps.get_mut(endpoint)
                    .and_then(|e| e.failing_since.take().map(|since| since.elapsed()))
            };
            if let Some(after) = recovered_after {
                let endpoint = endpoint.to_owned();
                self.emit(|| {
                    tracing::info!(
                        target: "otelwire::export",
                        down_for_s = after.as_secs(),
                        "telemetry export to {endpoint} recovered"
                    )
                });
            }
        }
    }

    pub(crate) fn record_failure(&self, signal: Signal, items: u64, error: &str) {
        let s = self.stats(signal);
        s.failed_items.fetch_add(items, Ordering::AcqRel);
        s.queued.fetch_sub(
            items.min(s.queued.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        s.failures.fetch_add(1, Ordering::Relaxed);
        let error = self.sanitize(error);
        {
            let mut st = lock(&s.state);
            st.last_error = Some((SystemTime::now(), error.clone()));
            st.failing_since.get_or_insert_with(Instant::now);
        }
        let Some(endpoint) = &s.endpoint else { return };
        let endpoint = origin(endpoint);
        let warn = {
            let mut eps = lock(&self.endpoints);
            let e = eps.entry(endpoint.to_owned()).or_default();
            let now = Instant::now();
            e.failing_since.get_or_insert(now);
            let due = e
                .last_warn
                .is_none_or(|t| now.duration_since(t) >= WARN_INTERVAL);
            if due {
                e.last_warn = Some(now);
            }
            due
        };
        if warn {
            let endpoint = endpoint.to_owned();
            self.emit(|| {
                tracing::warn!(
                    target: "otelwire::export",
                    signal = signal.as_str(),
                    "cannot export telemetry to {endpoint}: {error}; the service keeps running, \
                     the batch is dropped after up to 3 retries (next reminder in 60 s)"
                )
            });
        }
    }

    fn emit(&self, f: impl FnOnce()) {
        match self.dispatch.get().and_then(|d| d.upgrade()) {
            Some(d) => tracing::dispatcher::with_default(&d, f),
            None => f(),
        }
    }

    fn sanitize(&self, error: &str) -> String {
        let mut out = error.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), crate::redact::REDACTED);
            }
        }
        // One line, bounded: errors from transports can be long.
        let mut out: String = out.replace(['\n', '\r'], " ");
        if out.len() > 512 {
            let mut cut = 512;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
        }
        out
    }

    pub(crate) fn health(&self) -> Health {
        let signals: Vec<SignalHealth> =
            self.signals.iter().map(|s| self.signal_health(s)).collect();
        let components: Vec<ComponentHealth> =
            self.components().iter().map(|c| c.health()).collect();
        let status = signals
            .iter()
            .map(|s| s.status)
            .chain(components.iter().map(|c| c.status))
            .max()
            .unwrap_or(HealthStatus::Ok);
        Health {
            status,
            service: self.service.clone(),
            signals,
            components,
        }
    }

    fn signal_health(&self, s: &SignalStats) -> SignalHealth {
        let st = lock(&s.state);
        let status = if s.exporter == ExporterKind::None {
            HealthStatus::Ok
        } else if let Some(since) = st.failing_since {
            if since.elapsed() >= self.failing_after {
                HealthStatus::Failing
            } else {
                HealthStatus::Degraded
            }
        } else {
            let last_drop = s.last_drop.load(Ordering::Relaxed);
            let now_ms = self.started.elapsed().as_millis() as u64 + 1;
            if last_drop != 0 && now_ms.saturating_sub(last_drop) < WARN_INTERVAL.as_millis() as u64
            {
                HealthStatus::Degraded
            } else {
                HealthStatus::Ok
            }
        };
        SignalHealth {
            signal: s.signal,
            exporter: s.exporter.as_str(),
            endpoint: s.endpoint.clone(),
            status,
            exported: s.exported.load(Ordering::Relaxed),
            dropped: s.dropped(),
            failures: s.failures.load(Ordering::Relaxed),
            last_success: st.last_success,
            last_error_at: st.last_error.as_ref().map(|(t, _)| *t),
            last_error: st.last_error.as_ref().map(|(_, e)| e.clone()),
        }
    }

    /// At shutdown: whatever never reached the exporter is lost, and is
    /// counted so that exported + dropped == emitted.
    pub(crate) fn settle(&self) {
        for s in &self.signals {
            let lost = s.queued.swap(0, Ordering::AcqRel);
            if lost > 0 {
                s.queue_dropped.fetch_add(lost, Ordering::AcqRel);
            }
        }
    }
}

/// `scheme://host:port` of an endpoint: the signals of one collector share
/// one warning.
fn origin(endpoint: &str) -> &str {
    let after_scheme = endpoint.find("://").map(|i| i + 3).unwrap_or(0);
    match endpoint[after_scheme..].find('/') {
        Some(i) => &endpoint[..after_scheme + i],
        None => endpoint,
    }
}

/// Poisoning only means another thread panicked mid-update of counters that
/// stay meaningful; never let it take the host down.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> Pipeline {
        Pipeline::new(
            "svc".into(),
            [
                (ExporterKind::Otlp, Some("http://x:4318/v1/traces".into())),
                (ExporterKind::Otlp, Some("http://x:4318/v1/logs".into())),
                (ExporterKind::None, None),
            ],
            Duration::from_millis(50),
            vec!["sekrit-token".into()],
        )
    }

    #[test]
    fn status_goes_degraded_then_failing_then_ok() {
        let p = pipeline();
        assert_eq!(p.health().status, HealthStatus::Ok);
        p.record_failure(Signal::Traces, 3, "connection refused for sekrit-token");
        let h = p.health();
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(h.signal(Signal::Traces).dropped, 3);
        let err = h.signal(Signal::Traces).last_error.clone().unwrap();
        assert!(!err.contains("sekrit-token"), "{err}");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(p.health().status, HealthStatus::Failing);
        p.record_success(Signal::Traces, 5);
        let h = p.health();
        assert_eq!(h.status, HealthStatus::Ok);
        assert_eq!(h.signal(Signal::Traces).exported, 5);
    }

    #[test]
    fn queue_drops_degrade_and_settle_counts_the_rest() {
        let p = pipeline();
        let s = p.stats(Signal::Logs);
        s.queued.fetch_add(9, Ordering::Relaxed);
        p.record_queue_drop(Signal::Logs);
        assert_eq!(s.emitted(), 10);
        p.record_success(Signal::Logs, 6);
        assert_eq!(p.health().status, HealthStatus::Degraded);
        p.settle();
        let h = p.health();
        assert_eq!(
            h.signal(Signal::Logs).exported + h.signal(Signal::Logs).dropped,
            10
        );
    }
}
