//! The guard returned by `init`: flushes and shuts the pipeline down.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry::trace::TracerProvider as _;
use tracing::Dispatch;

use crate::config::Signal;
use crate::health::{ComponentHealth, Health, Pipeline};
use crate::pipeline::Providers;
use crate::redact::Redactor;

/// Keeps telemetry running; [`shutdown`](Telemetry::shutdown) flushes
/// everything that was emitted and stops the exporters within a deadline.
///
/// Dropping it without calling `shutdown` does the same, best effort,
/// blocking the dropping thread for at most the shutdown deadline
/// (`OTELWIRE_SHUTDOWN_TIMEOUT`, default 5 s).
pub struct Telemetry {
    pub(crate) dispatch: Dispatch,
    pub(crate) shared: Arc<Shared>,
    pub(crate) redactor: Redactor,
    pub(crate) filter: crate::filter::FilterHandle,
}

pub(crate) struct Shared {
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) providers: Mutex<Option<Providers>>,
    pub(crate) meter_provider: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
    pub(crate) tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    pub(crate) logger_provider: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    pub(crate) exposition: Option<crate::prometheus::Exposition>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) report: Mutex<Option<ShutdownReport>>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("service", &self.shared.pipeline.service)
            .field("shutdown_timeout", &self.shared.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

/// What a shutdown achieved, per signal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShutdownReport {
    /// Per signal, in the order traces, logs, metrics.
    pub signals: Vec<SignalReport>,
    /// Whether everything finished before the deadline. When `false`, the
    /// items still in flight at the deadline are counted as dropped.
    pub completed: bool,
    /// How long the shutdown took.
    #[serde(serialize_with = "ser_duration_ms")]
    pub elapsed: Duration,
}

/// The totals of one signal at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SignalReport {
    /// The signal.
    pub signal: Signal,
    /// Items handed to the pipeline (after sampling, for spans).
    pub emitted: u64,
    /// Items the endpoint accepted.
    pub exported: u64,
    /// Items lost: the queue was full, the export failed, or the deadline passed.
    pub dropped: u64,
}

fn ser_duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl ShutdownReport {
    /// The totals of one signal.
    pub fn signal(&self, signal: Signal) -> &SignalReport {
        &self.signals[signal.index()]
    }

    /// Total items dropped across all signals.
    pub fn dropped(&self) -> u64 {
        self.signals.iter().map(|s| s.dropped).sum()
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.signals {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(
                f,
                "{} exported={} dropped={}",
                s.signal, s.exported, s.dropped
            )?;
        }
        if !self.completed {
            f.write_str(" (deadline reached)")?;
        }
        Ok(())
    }
}

/// A cheap, cloneable handle that reads the pipeline's [`Health`]; for
/// health endpoints that outlive a borrow of [`Telemetry`].
#[derive(Clone)]
pub struct HealthSource(Arc<Pipeline>);

impl fmt::Debug for HealthSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HealthSource")
            .field(&self.0.service)
            .finish()
    }
}

impl HealthSource {
    /// The pipeline's health now.
    pub fn health(&self) -> Health {
        self.0.health()
    }

    /// `service.name` of this process.
    pub fn service(&self) -> &str {
        &self.0.service
    }

    /// The health of the outputs other than the export pipelines (such as
    /// each `otelwire-files` sink): [`Health::components`] alone, without
    /// reading the signals. Empty when there are none.
    pub fn outputs(&self) -> Vec<ComponentHealth> {
        self.0.components().iter().map(|c| c.health()).collect()
    }
}

impl Telemetry {
    /// A handle for health endpoints (see [`HealthSource`]).
    pub fn health_source(&self) -> HealthSource {
        HealthSource(self.shared.pipeline.clone())
    }

    /// The pipeline's health: per signal, what was exported and dropped,
    /// the last success and the last error.
    pub fn health(&self) -> Health {
        self.shared.pipeline.health()
    }

    /// A [`Meter`] from this pipeline's meter provider (a no-op meter when
    /// metrics are off).
    pub fn meter(&self, name: &'static str) -> Meter {
        match &self.shared.meter_provider {
            Some(p) => p.meter(name),
            None => opentelemetry::metrics::noop::NoopMeterProvider::new().meter(name),
        }
    }

    /// A tracer from this pipeline's tracer provider (a no-op tracer when
    /// traces are off), for instrumentation that makes OpenTelemetry spans
    /// directly rather than through `tracing`, such as `otelwire-sqlx`'s
    /// query spans. Boxed, like the global provider's tracers.
    pub fn tracer(&self, name: &'static str) -> BoxedTracer {
        match &self.shared.tracer_provider {
            Some(p) => BoxedTracer::new(Box::new(p.tracer(name))),
            None => BoxedTracer::new(Box::new(opentelemetry::trace::noop::NoopTracer::new())),
        }
    }

    /// The `tracing` dispatcher that feeds this pipeline. [`init`](crate::init)
    /// installs it globally; with [`Builder::build`](crate::Builder::build)
    /// use it with [`tracing::dispatcher::with_default`] or
    /// [`tracing::dispatcher::set_default`].
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// The redactor in force (the default secret names plus
    /// `OTELWIRE_REDACT_FIELDS` and the builder's additions), for layers that
    /// want to redact the same way with [`RedactLayer`](crate::RedactLayer).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The tracer provider, to create OpenTelemetry tracers directly.
    pub fn tracer_provider(&self) -> Option<&opentelemetry_sdk::trace::SdkTracerProvider> {
        self.shared.tracer_provider.as_ref()
    }

    /// The logger provider, when logs are exported.
    pub fn logger_provider(&self) -> Option<&opentelemetry_sdk::logs::SdkLoggerProvider> {
        self.shared.logger_provider.as_ref()
    }

    /// The metrics in the Prometheus text format, when they are served for
    /// scraping (`OTEL_METRICS_EXPORTER=prometheus` or `otlp,prometheus`,
    /// [`Builder::prometheus`](crate::Builder::prometheus)): to serve on the
    /// service's own router, and to learn the address of otelwire's own
    /// endpoint. `None` otherwise. See [`crate::prometheus`].
    pub fn prometheus(&self) -> Option<crate::prometheus::Exposition> {
        self.shared.exposition.clone()
    }

    /// The meter provider, when metrics are exported.
    pub fn meter_provider(&self) -> Option<&opentelemetry_sdk::metrics::SdkMeterProvider> {
        self.shared.meter_provider.as_ref()
    }

    /// Exports everything queued so far without shutting down, and flushes
    /// the other outputs' components (such as `otelwire-files`); blocks the
    /// calling thread until done (at most the export timeouts). Prefer
    /// [`shutdown`](Self::shutdown) at exit.
    pub fn force_flush(&self) {
        if let Some(p) = &self.shared.tracer_provider {
            let _ = p.force_flush();
        }
        if let Some(p) = &self.shared.logger_provider {
            let _ = p.force_flush();
        }
        if let Some(p) = &self.shared.meter_provider {
            let _ = p.force_flush();
        }
        for c in self.shared.pipeline.components() {
            c.flush(self.shared.shutdown_timeout);
        }
    }

    /// Flushes and stops all three signals, within the shutdown deadline.
    /// Works from any async runtime (the blocking work runs on a thread of
    /// its own) and logs one line with what each signal exported and dropped.
    ///
    /// The other outputs (such as `otelwire-files`) are flushed and synced
    /// first, on a deadline of their own (the shutdown timeout too), so a
    /// collector that hangs cannot use up their time; the exporters' deadline
    /// starts when they are done. In all, at most twice the shutdown timeout.
    pub async fn shutdown(self) -> ShutdownReport {
        // Runtime-agnostic: the work runs on a thread, a second thread
        // enforces the deadlines, and the first answer wins.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        let worker = {
            let tx = tx.clone();
            spawn_shutdown(&self.shared, &self.dispatch, move |report| {
                let _ = tx.send(Some(report));
            })
        };
        let Ok(outputs_done) = worker else {
            flush_outputs(&self.shared);
            return run_shutdown(&self.shared, &self.dispatch);
        };
        let grace = self.shared.shutdown_timeout + Duration::from_millis(250);
        let _ = std::thread::Builder::new()
            .name("otelwire-deadline".into())
            .spawn(move || {
                // The outputs' deadline, then the exporters'.
                let _ = outputs_done.recv_timeout(grace);
                std::thread::sleep(grace);
                let _ = tx.send(None);
            });
        match rx.recv().await {
            Some(Some(report)) => report,
            _ => self.deadline_report(started),
        }
    }

    /// [`shutdown`](Self::shutdown) for code without an async runtime.
    /// Do not call it from inside an async task (it blocks the thread).
    pub fn shutdown_blocking(self) -> ShutdownReport {
        self.shutdown_in_place()
    }

    fn shutdown_in_place(&self) -> ShutdownReport {
        let (tx, rx) = std::sync::mpsc::channel();
        let started = Instant::now();
        let spawned = spawn_shutdown(&self.shared, &self.dispatch, move |report| {
            let _ = tx.send(report);
        });
        match spawned {
            Ok(outputs_done) => {
                let grace = self.shared.shutdown_timeout + Duration::from_millis(250);
                let _ = outputs_done.recv_timeout(grace);
                rx.recv_timeout(grace)
                    .unwrap_or_else(|_| self.deadline_report(started))
            }
            Err(_) => {
                flush_outputs(&self.shared);
                run_shutdown(&self.shared, &self.dispatch)
            }
        }
    }

    fn deadline_report(&self, started: Instant) -> ShutdownReport {
        let p = &self.shared.pipeline;
        let signals = Signal::ALL
            .iter()
            .map(|&s| {
                let st = p.stats(s);
                let in_flight = st.in_flight();
                SignalReport {
                    signal: s,
                    emitted: st.emitted(),
                    exported: st.exported.load(std::sync::atomic::Ordering::Acquire),
                    dropped: st.dropped() + in_flight,
                }
            })
            .collect();
        let report = ShutdownReport {
            signals,
            completed: false,
            elapsed: started.elapsed(),
        };
        *self.shared.report.lock().unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
        tracing::dispatcher::with_default(&self.dispatch, || {
            tracing::warn!(
                target: "otelwire::export",
                "telemetry shutdown did not finish within {:?}: {report}",
                self.shared.shutdown_timeout
            )
        });
        report
    }
}

/// `Drop` without `shutdown`: do it now, best effort.
impl Drop for Telemetry {
    fn drop(&mut self) {
        let done = self
            .shared
            .report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if !done {
            let _ = self.shutdown_in_place();
        }
    }
}

/// Starts the shutdown on a thread of its own: the outputs first, then the
/// exporters. The receiver hears when the outputs are done; `done` gets the
/// report.
fn spawn_shutdown(
    shared: &Arc<Shared>,
    dispatch: &Dispatch,
    done: impl FnOnce(ShutdownReport) + Send + 'static,
) -> std::io::Result<std::sync::mpsc::Receiver<()>> {
    let (outputs_tx, outputs_rx) = std::sync::mpsc::channel();
    let shared = shared.clone();
    let dispatch = dispatch.clone();
    std::thread::Builder::new()
        .name("otelwire-shutdown".into())
        .spawn(move || {
            flush_outputs(&shared);
            let _ = outputs_tx.send(());
            done(run_shutdown(&shared, &dispatch));
        })?;
    Ok(outputs_rx)
}

/// Flushes (and syncs) the outputs' components, each on a thread of its own
/// so that one slow disk does not take another's time, all within the
/// shutdown timeout.
fn flush_outputs(shared: &Shared) {
    let done = shared
        .report
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some();
    let components = shared.pipeline.components();
    if done || components.is_empty() {
        return;
    }
    let timeout = shared.shutdown_timeout;
    if let [only] = components {
        only.flush(timeout);
        return;
    }
    std::thread::scope(|s| {
        for c in components {
            let spawned = std::thread::Builder::new()
                .name("otelwire-flush".into())
                .spawn_scoped(s, move || c.flush(timeout));
            if spawned.is_err() {
                c.flush(timeout);
            }
        }
    });
}

fn run_shutdown(shared: &Shared, dispatch: &Dispatch) -> ShutdownReport {
    if let Some(r) = shared
        .report
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        return r;
    }
    let started = Instant::now();
    let deadline = started + shared.shutdown_timeout;
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let providers = shared
        .providers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let mut completed = true;
    if let Some(providers) = providers {
        // Spans first: ending them can emit logs; logs next; metrics last so
        // that the pipeline's own counters are final.
        // An export that failed is counted as dropped; only a timeout
        // means the deadline cut the shutdown short.
        let timed_out = |r: opentelemetry_sdk::error::OTelSdkResult| {
            matches!(r, Err(opentelemetry_sdk::error::OTelSdkError::Timeout(_)))
        };
        // The scrape endpoint first: its port is free when shutdown returns.
        if let Some(server) = &providers.prometheus {
            server.stop(remaining());
        }
        if let Some(p) = &providers.tracer {
            completed &= !timed_out(p.shutdown_with_timeout(remaining()));
        }
        if let Some(p) = &providers.logger {
            completed &= !timed_out(p.shutdown_with_timeout(remaining()));
        }
        if let Some(p) = &providers.meter {
            completed &= !timed_out(p.shutdown_with_timeout(remaining()));
        }
        // Shuts down in the background (see `GrpcRuntime`).
        drop(providers.runtime);
    }
    shared.pipeline.settle();
    let p = &shared.pipeline;
    let signals = Signal::ALL
        .iter()
        .map(|&s| {
            let st = p.stats(s);
            SignalReport {
                signal: s,
                emitted: st.emitted(),
                exported: st.exported.load(std::sync::atomic::Ordering::Acquire),
                dropped: st.dropped(),
            }
        })
        .collect();
    let report = ShutdownReport {
        signals,
        completed,
        elapsed: started.elapsed(),
    };
    *shared.report.lock().unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
    tracing::dispatcher::with_default(dispatch, || {
        tracing::info!(
            target: "otelwire::export",
            service = %shared.pipeline.service,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "telemetry shut down: {report}"
        )
    });
    // Last: the other outputs write the lines above too.
    for c in shared.pipeline.components() {
        c.flush(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100)),
        );
    }
    report
}
