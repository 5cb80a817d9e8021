#![doc = include_str!("../README.md")]
//!
//! # The API
//!
//! - [`Collector`] (and [`CollectorBuilder`] for ports, TLS, mutual TLS
//!   and the initial [`Mode`]): what arrived ([`Collector::spans`], [`Collector::logs`],
//!   [`Collector::metrics`] and their filters), waits with a deadline
//!   ([`Collector::wait_for_spans`], [`Collector::wait_for_logs`],
//!   [`Collector::wait_for_metric`], and `_blocking` forms for tests
//!   without a runtime), [`Collector::drain`] for long runs;
//! - [`builder_for`] and [`builder_for_endpoint`] (feature `otelwire`, on by
//!   default): an otelwire pipeline pointed at a collector, set up for
//!   tests;
//! - [`Console`] (feature `otelwire`): otelwire's local output kept in
//!   memory, for [`Builder::writer`](otelwire::Builder::writer), read back
//!   with [`Console::text`] and [`Console::json_lines`];
//! - [`noop`]: exporters that do nothing, for benchmarks.

#[cfg(feature = "otelwire")]
mod console;
mod model;
pub mod noop;
#[cfg(feature = "otelwire")]
mod otelwire_builder;
mod server;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[cfg(feature = "otelwire")]
pub use console::Console;
#[cfg(feature = "otelwire")]
pub use otelwire_builder::{TEST_EXPORT_INTERVAL, builder_for, builder_for_endpoint};

pub use model::{
    Attributes, LogRecord, MetricKind, MetricPoint, PointValue, Scope, Span, SpanEvent, SpanKind,
    SpanLink, Status, StatusCode, Transport, Value,
};

/// How the collector answers export requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Store the data and answer OK.
    #[default]
    Accept,
    /// Answer gRPC `UNAVAILABLE` / HTTP 503 and store nothing.
    Refuse,
    /// Answer OK after this delay.
    Delay(Duration),
    /// Never answer, until the mode changes or the collector stops.
    Hang,
}

/// The collector could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The collector's runtime could not be started.
    #[error("cannot start the collector's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The TLS certificate could not be made.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// Counts of what the collector was asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// gRPC export requests accepted.
    pub grpc_requests: u64,
    /// HTTP export requests accepted.
    pub http_requests: u64,
    /// Requests refused (in [`Mode::Refuse`]).
    pub refused: u64,
    /// Spans stored.
    pub spans: u64,
    /// Log records stored.
    pub logs: u64,
    /// Metric data points stored.
    pub metric_points: u64,
}

/// What [`Collector::drain`] took out of the collector.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Received {
    /// The spans received since the start or the previous drain.
    pub spans: Vec<Span>,
    /// The log records.
    pub logs: Vec<LogRecord>,
    /// The metric data points, flattened.
    pub metrics: Vec<MetricPoint>,
    /// The request counts over the same period.
    pub requests: RequestStats,
}

/// A wait ended before enough matching data arrived.
#[derive(Debug, Clone)]
pub struct WaitError {
    /// How many matching items were wanted.
    pub wanted: usize,
    /// How many matched at the deadline.
    pub found: usize,
    /// How long the wait lasted.
    pub timeout: Duration,
    /// What was waited for (`spans`, `log records`, `points of metric x`).
    pub what: String,
    /// What had been received at all, to help read a failing test.
    pub summary: String,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {} {} matching the predicate; found {}; received so far: {}",
            self.timeout, self.wanted, self.what, self.found, self.summary
        )
    }
}

impl std::error::Error for WaitError {}

#[derive(Default)]
pub(crate) struct Data {
    spans: Vec<Span>,
    logs: Vec<LogRecord>,
    metrics: Vec<MetricPoint>,
    pub(crate) stats: RequestStats,
    pub(crate) headers: Vec<Vec<(String, String)>>,
    /// The subject common name of each client certificate presented.
    pub(crate) client_subjects: Vec<String>,
}

/// State shared by the receivers and the handle.
pub(crate) struct Shared {
    data: Mutex<Data>,
    changed: Condvar,
    notify: tokio::sync::Notify,
    mode: Mutex<Mode>,
    generation: AtomicU64,
    /// Bumped on every mode change and stop: hanging requests look again.
    pub(crate) wake: tokio::sync::watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn with_data<R>(&self, f: impl FnOnce(&mut Data) -> R) -> R {
        let r = f(&mut lock(&self.data));
        self.changed.notify_all();
        self.notify.notify_waiters();
        r
    }

    pub(crate) fn add_spans(&self, spans: Vec<Span>) {
        self.with_data(|d| {
            d.stats.spans += spans.len() as u64;
            d.spans.extend(spans);
        })
    }

    pub(crate) fn add_logs(&self, logs: Vec<LogRecord>) {
        self.with_data(|d| {
            d.stats.logs += logs.len() as u64;
            d.logs.extend(logs);
        })
    }

    pub(crate) fn add_metrics(&self, points: Vec<MetricPoint>) {
        self.with_data(|d| {
            d.stats.metric_points += points.len() as u64;
            d.metrics.extend(points);
        })
    }

    fn bump(&self) {
        self.wake.send_modify(|n| *n += 1);
    }
}

impl Data {
    fn summary(&self) -> String {
        fn distinct<'a>(names: impl Iterator<Item = &'a str>) -> String {
            let mut seen: Vec<&str> = Vec::new();
            for n in names {
                if !seen.contains(&n) {
                    seen.push(n);
                }
            }
            let more = seen.len().saturating_sub(12);
            seen.truncate(12);
            let mut s = seen.join(", ");
            if more > 0 {
                s.push_str(&format!(", … {more} more"));
            }
            s
        }
        format!(
            "{} spans [{}], {} log records [{}], {} metric points [{}]",
            self.spans.len(),
            distinct(self.spans.iter().map(|s| s.name.as_str())),
            self.logs.len(),
            distinct(
                self.logs
                    .iter()
                    .map(|l| l.body_str().unwrap_or("<non-string body>"))
            ),
            self.metrics.len(),
            distinct(self.metrics.iter().map(|m| m.name.as_str())),
        )
    }
}

/// A client certificate and its private key, PEM, from
/// [`Collector::client_certificate`].
#[derive(Clone)]
pub struct ClientCertificate {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<hidden>")
            .finish()
    }
}

impl ClientCertificate {
    /// Writes the certificate and the key to `client.crt` and `client.key`
    /// in `dir`, returning both paths.
    pub fn write_to(
        &self,
        dir: impl AsRef<std::path::Path>,
    ) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let cert = dir.as_ref().join("client.crt");
        let key = dir.as_ref().join("client.key");
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}

/// Configures a [`Collector`] before it starts.
#[derive(Debug, Clone, Default)]
pub struct CollectorBuilder {
    mode: Mode,
    grpc_port: u16,
    http_port: u16,
    tls: bool,
    require_client_certificate: bool,
}

impl CollectorBuilder {
    /// The initial mode (default [`Mode::Accept`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The gRPC port (default 0: a free port).
    pub fn grpc_port(mut self, port: u16) -> Self {
        self.grpc_port = port;
        self
    }

    /// The HTTP port (default 0: a free port).
    pub fn http_port(mut self, port: u16) -> Self {
        self.http_port = port;
        self
    }

    /// Serves both endpoints over TLS with a certificate for `localhost`
    /// and `127.0.0.1`, signed by a CA made for this collector: trust
    /// [`Collector::ca_pem`] (for example through
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`) to test a client's `https` support.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Serves both endpoints over TLS (as [`tls`](Self::tls)) and demands a
    /// client certificate signed by the collector's CA (mutual TLS): a
    /// client without one fails the handshake, and nothing it sends is
    /// stored. [`Collector::client_certificate`] makes one;
    /// [`Collector::client_certificate_subjects`] tells which were presented.
    pub fn require_client_certificate(mut self) -> Self {
        self.tls = true;
        self.require_client_certificate = true;
        self
    }

    /// Starts listening.
    pub fn start(self) -> Result<Collector, StartError> {
        let tls = if self.tls {
            Some(tls::self_signed(self.require_client_certificate)?)
        } else {
            None
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("otelwire-test-collector")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let (wake, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            data: Mutex::new(Data::default()),
            changed: Condvar::new(),
            notify: tokio::sync::Notify::new(),
            mode: Mutex::new(self.mode),
            generation: AtomicU64::new(0),
            wake,
        });
        let collector = Collector {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], self.grpc_port)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], self.http_port)),
            shared,
            servers: Mutex::new(Vec::new()),
            runtime: Some(runtime),
            tls,
        };
        collector.listen(Duration::ZERO)
    }
}

/// An OTLP collector running inside the test process. Dropping it stops it.
pub struct Collector {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shared: Arc<Shared>,
    servers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    runtime: Option<tokio::runtime::Runtime>,
    tls: Option<tls::Tls>,
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector")
            .field("grpc", &self.grpc_addr)
            .field("http", &self.http_addr)
            .field("mode", &self.mode())
            .field("running", &self.is_running())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Collector {
    /// Starts a collector on two free ports of 127.0.0.1, accepting everything.
    pub fn start() -> Result<Collector, StartError> {
        CollectorBuilder::default().start()
    }

    /// A [`CollectorBuilder`] for ports and the initial mode.
    pub fn builder() -> CollectorBuilder {
        CollectorBuilder::default()
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    /// Binds both ports (the same ones after the first time) and serves.
    fn listen(mut self, patience: Duration) -> Result<Collector, StartError> {
        let (grpc, http) = self.bind_and_serve(patience)?;
        self.grpc_addr = grpc;
        self.http_addr = http;
        Ok(self)
    }

    fn bind_and_serve(&self, patience: Duration) -> Result<(SocketAddr, SocketAddr), StartError> {
        let bind =
            |addr| server::bind(addr, patience).map_err(|source| StartError::Bind { addr, source });
        let grpc = bind(self.grpc_addr)?;
        let http = bind(self.http_addr)?;
        let addrs = (
            grpc.local_addr().map_err(StartError::Runtime)?,
            http.local_addr().map_err(StartError::Runtime)?,
        );
        let _enter = self.rt().enter();
        let grpc = tokio::net::TcpListener::from_std(grpc).map_err(StartError::Runtime)?;
        let http = tokio::net::TcpListener::from_std(http).map_err(StartError::Runtime)?;
        let acceptor = self.tls.as_ref().map(|t| t.acceptor.clone());
        *lock(&self.servers) = vec![
            self.rt().spawn(server::serve(
                grpc,
                server::grpc_router(self.shared.clone()),
                acceptor.clone(),
                self.shared.clone(),
            )),
            self.rt().spawn(server::serve(
                http,
                server::http_router(self.shared.clone()),
                acceptor,
                self.shared.clone(),
            )),
        ];
        Ok(addrs)
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:PORT` (`https` with
    /// [`CollectorBuilder::tls`]).
    pub fn grpc_endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.grpc_addr)
    }

    /// The OTLP/HTTP base endpoint, `http://127.0.0.1:PORT` (clients append
    /// `/v1/traces`, `/v1/logs`, `/v1/metrics`; `https` with
    /// [`CollectorBuilder::tls`]).
    pub fn http_endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.http_addr)
    }

    /// The PEM of the CA that signed the collector's certificate, with
    /// [`CollectorBuilder::tls`].
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// A new client certificate for `common_name`, signed by the CA that
    /// signed the collector's certificate (so accepted with
    /// [`CollectorBuilder::require_client_certificate`]), with its private
    /// key; `None` without TLS.
    pub fn client_certificate(&self, common_name: &str) -> Option<ClientCertificate> {
        let (cert_pem, key_pem) = self.tls.as_ref()?.client_certificate(common_name).ok()?;
        Some(ClientCertificate { cert_pem, key_pem })
    }

    /// The subject common name of the client certificate of every TLS
    /// connection that presented one, in order of connection (with
    /// [`CollectorBuilder::require_client_certificate`], every connection
    /// that got through the handshake).
    pub fn client_certificate_subjects(&self) -> Vec<String> {
        lock(&self.shared.data).client_subjects.clone()
    }

    /// The gRPC listening address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The HTTP listening address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Changes how requests are answered, from the next request on (a
    /// request hanging in [`Mode::Hang`] is answered per the new mode).
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
        self.shared.bump();
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Whether the collector is listening.
    pub fn is_running(&self) -> bool {
        !lock(&self.servers).is_empty()
    }

    /// Stops listening and closes every open connection, so clients see an
    /// outage; what was received is kept. Returns once the ports are closed.
    /// Does nothing when already stopped.
    pub fn stop(&self) {
        let handles = std::mem::take(&mut *lock(&self.servers));
        if handles.is_empty() {
            return;
        }
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        self.shared.bump();
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt().spawn(async move {
            for h in handles {
                h.abort();
                let _ = h.await;
            }
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(Duration::from_secs(5));
    }

    /// Listens again on the same ports after [`stop`](Self::stop).
    pub fn restart(&self) -> Result<(), StartError> {
        if self.is_running() {
            return Ok(());
        }
        self.bind_and_serve(Duration::from_secs(3)).map(|_| ())
    }

    /// Every span received.
    pub fn spans(&self) -> Vec<Span> {
        lock(&self.shared.data).spans.clone()
    }

    /// Every log record received.
    pub fn logs(&self) -> Vec<LogRecord> {
        lock(&self.shared.data).logs.clone()
    }

    /// Every metric data point received, flattened.
    pub fn metrics(&self) -> Vec<MetricPoint> {
        lock(&self.shared.data).metrics.clone()
    }

    /// The spans with this name.
    pub fn spans_named(&self, name: &str) -> Vec<Span> {
        let d = lock(&self.shared.data);
        d.spans.iter().filter(|s| s.name == name).cloned().collect()
    }

    /// The log records whose string body contains `needle`.
    pub fn logs_with_body(&self, needle: &str) -> Vec<LogRecord> {
        let d = lock(&self.shared.data);
        d.logs
            .iter()
            .filter(|l| l.body_str().is_some_and(|b| b.contains(needle)))
            .cloned()
            .collect()
    }

    /// The log records emitted inside the trace `trace_id` (32 hex digits).
    pub fn logs_for_trace(&self, trace_id: &str) -> Vec<LogRecord> {
        let d = lock(&self.shared.data);
        d.logs
            .iter()
            .filter(|l| l.trace_id.as_deref() == Some(trace_id))
            .cloned()
            .collect()
    }

    /// The points of the metric `name`, in the order received.
    pub fn metric_points(&self, name: &str) -> Vec<MetricPoint> {
        let d = lock(&self.shared.data);
        d.metrics
            .iter()
            .filter(|m| m.name == name)
            .cloned()
            .collect()
    }

    /// What the collector was asked to do so far.
    pub fn requests(&self) -> RequestStats {
        lock(&self.shared.data).stats
    }

    /// The headers (gRPC metadata) of every accepted export request, in
    /// order; names are lower case.
    pub fn request_headers(&self) -> Vec<Vec<(String, String)>> {
        lock(&self.shared.data).headers.clone()
    }

    /// Forgets everything received (and the request counts).
    pub fn clear(&self) {
        self.shared.with_data(|d| *d = Data::default());
    }

    /// Takes everything received so far, and the request counts, out of the
    /// collector in one step: nothing that arrives meanwhile is lost or
    /// returned twice. A long load run that drains regularly keeps the
    /// collector's memory bounded and still counts every item.
    pub fn drain(&self) -> Received {
        self.shared.with_data(|d| {
            let d = std::mem::take(d);
            Received {
                spans: d.spans,
                logs: d.logs,
                metrics: d.metrics,
                requests: d.stats,
            }
        })
    }

    fn wait_blocking<T: Clone>(
        &self,
        count: usize,
        timeout: Duration,
        what: String,
        select: impl Fn(&Data) -> Vec<T>,
    ) -> Result<Vec<T>, WaitError> {
        let deadline = Instant::now() + timeout;
        let mut d = lock(&self.shared.data);
        loop {
            let found = select(&d);
            if found.len() >= count {
                return Ok(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError {
                    wanted: count,
                    found: found.len(),
                    timeout,
                    what,
                    summary: d.summary(),
                });
            }
            d = self
                .shared
                .changed
                .wait_timeout(d, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    async fn wait_async<T: Clone>(
        &self,
        count: usize,
        timeout: Duration,
        what: String,
        select: impl Fn(&Data) -> Vec<T>,
    ) -> Result<Vec<T>, WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let d = lock(&self.shared.data);
                let found = select(&d);
                if found.len() >= count {
                    return Ok(found);
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(WaitError {
                        wanted: count,
                        found: found.len(),
                        timeout,
                        what,
                        summary: d.summary(),
                    });
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Waits until at least `count` received spans match `pred`; returns
    /// the matching spans. Needs a tokio runtime with its time driver (as
    /// `#[tokio::test]` has).
    pub async fn wait_for_spans(
        &self,
        count: usize,
        pred: impl Fn(&Span) -> bool,
        timeout: Duration,
    ) -> Result<Vec<Span>, WaitError> {
        self.wait_async(count, timeout, "spans".into(), |d| {
            d.spans.iter().filter(|s| pred(s)).cloned().collect()
        })
        .await
    }

    /// Waits until at least `count` received log records match `pred`.
    pub async fn wait_for_logs(
        &self,
        count: usize,
        pred: impl Fn(&LogRecord) -> bool,
        timeout: Duration,
    ) -> Result<Vec<LogRecord>, WaitError> {
        self.wait_async(count, timeout, "log records".into(), |d| {
            d.logs.iter().filter(|l| pred(l)).cloned().collect()
        })
        .await
    }

    /// Waits until a point of the metric `name` matches `pred`; returns the
    /// matching points.
    pub async fn wait_for_metric(
        &self,
        name: &str,
        pred: impl Fn(&MetricPoint) -> bool,
        timeout: Duration,
    ) -> Result<Vec<MetricPoint>, WaitError> {
        self.wait_async(1, timeout, format!("points of metric {name}"), |d| {
            d.metrics
                .iter()
                .filter(|m| m.name == name && pred(m))
                .cloned()
                .collect()
        })
        .await
    }

    /// [`wait_for_spans`](Self::wait_for_spans) for code without an async
    /// runtime (it blocks the calling thread).
    pub fn wait_for_spans_blocking(
        &self,
        count: usize,
        pred: impl Fn(&Span) -> bool,
        timeout: Duration,
    ) -> Result<Vec<Span>, WaitError> {
        self.wait_blocking(count, timeout, "spans".into(), |d| {
            d.spans.iter().filter(|s| pred(s)).cloned().collect()
        })
    }

    /// [`wait_for_logs`](Self::wait_for_logs), blocking.
    pub fn wait_for_logs_blocking(
        &self,
        count: usize,
        pred: impl Fn(&LogRecord) -> bool,
        timeout: Duration,
    ) -> Result<Vec<LogRecord>, WaitError> {
        self.wait_blocking(count, timeout, "log records".into(), |d| {
            d.logs.iter().filter(|l| pred(l)).cloned().collect()
        })
    }

    /// [`wait_for_metric`](Self::wait_for_metric), blocking.
    pub fn wait_for_metric_blocking(
        &self,
        name: &str,
        pred: impl Fn(&MetricPoint) -> bool,
        timeout: Duration,
    ) -> Result<Vec<MetricPoint>, WaitError> {
        self.wait_blocking(1, timeout, format!("points of metric {name}"), |d| {
            d.metrics
                .iter()
                .filter(|m| m.name == name && pred(m))
                .cloned()
                .collect()
        })
    }

    /// Waits until the request counts satisfy `pred`, blocking.
    pub fn wait_for_requests_blocking(
        &self,
        pred: impl Fn(&RequestStats) -> bool,
        timeout: Duration,
    ) -> Result<RequestStats, WaitError> {
        self.wait_blocking(1, timeout, "request counts".into(), |d| {
            if pred(&d.stats) {
                vec![d.stats]
            } else {
                Vec::new()
            }
        })
        .map(|mut v| v.remove(0))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
        if let Some(rt) = self.runtime.take() {
            // Allowed in any context, async included.
            rt.shutdown_background();
        }
    }
}

/// The testing guide (`docs/testing.md`), compiled as doctests so that
/// its code cannot rot.
#[cfg(all(doctest, feature = "otelwire"))]
#[doc = include_str!("../../../docs/testing.md")]
struct TestingGuide;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// One OTLP/HTTP JSON export of `n` spans, over a plain socket.
    fn post_spans(collector: &Collector, n: usize) {
        let spans: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b71692033{i:02x}","name":"s{i}","startTimeUnixNano":"1","endTimeUnixNano":"2"}}"#
                )
            })
            .collect();
        let body = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        );
        let mut stream = std::net::TcpStream::connect(collector.http_addr()).unwrap();
        write!(
            stream,
            "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[test]
    fn drain_takes_what_arrived_and_leaves_the_collector_empty() {
        let collector = Collector::start().unwrap();
        post_spans(&collector, 3);
        let first = collector.drain();
        assert_eq!(first.spans.len(), 3);
        assert_eq!(first.requests.spans, 3);
        assert_eq!(first.requests.http_requests, 1);
        assert!(collector.spans().is_empty());
        assert_eq!(collector.requests(), RequestStats::default());

        post_spans(&collector, 2);
        let second = collector.drain();
        assert_eq!(second.spans.len(), 2);
        assert_eq!(second.spans[1].name, "s1");
        assert_eq!(second.requests.spans, 2);
    }
}
