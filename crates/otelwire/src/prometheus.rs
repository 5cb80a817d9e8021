//! Metrics served for Prometheus to scrape, for teams without a collector.
//!
//! With `OTEL_METRICS_EXPORTER=prometheus` (or [`Builder::prometheus`](crate::Builder::prometheus)),
//! otelwire serves every metric of the pipeline in the Prometheus text
//! exposition format (0.0.4) at `http://OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT/metrics`
//! (default `localhost:9464`, the specification's). `otlp,prometheus` pushes
//! over OTLP and serves the scrape endpoint at once; `console,prometheus`
//! likewise with the console exporter.
//!
//! | Variable | Default | Builder | Meaning |
//! |---|---|---|---|
//! | `OTEL_METRICS_EXPORTER` | `otlp` | [`prometheus`](crate::Builder::prometheus), [`exporter`](crate::Builder::exporter) | `prometheus`, or a list: `otlp,prometheus`, `console,prometheus` |
//! | `OTEL_EXPORTER_PROMETHEUS_HOST` | `localhost` | [`prometheus_host`](crate::Builder::prometheus_host) | the address to listen on (`0.0.0.0` for every interface) |
//! | `OTEL_EXPORTER_PROMETHEUS_PORT` | `9464` | [`prometheus_port`](crate::Builder::prometheus_port) | the port (`0`: a free one, see [`Exposition::local_addr`]) |
//! | `OTELWIRE_PROMETHEUS_LISTENER` | `true` | [`prometheus_listener`](crate::Builder::prometheus_listener) | `false`: no port of its own; serve [`Exposition::render`] on the service's router (`otelwire_axum::metrics_router`) |
//!
//! A port in use, or a host that does not resolve, is an [`InitError`](crate::InitError)
//! naming the variables and the address. The endpoint runs on a thread of
//! its own (never on the service's runtime or request path), answers
//! `GET /metrics` (anything else: 404), and stops, freeing the port, when
//! the pipeline shuts down.
//!
//! # Names and labels
//!
//! The names and labels are those Prometheus 3's own OTLP receiver gives the
//! same metrics with `translation_strategy: UnderscoreEscapingWithSuffixes`
//! (`stack/prometheus/prometheus.yml`), so dashboards and alert rules work
//! whether the metrics are pushed through a collector or scraped:
//!
//! - dots and every character other than `[a-zA-Z0-9:]` become `_` (runs
//!   of them one `_`), then the unit's suffix (`s` → `_seconds`, `By` →
//!   `_bytes`, `By/s` → `_bytes_per_second`; a `{annotation}` unit adds
//!   nothing), then `_total` for a counter (a monotonic sum) and `_ratio`
//!   for a gauge of unit `1`: `http.server.request.duration` (s, a
//!   histogram) is `http_server_request_duration_seconds_bucket{le=…}`,
//!   `…_sum` and `…_count`;
//! - attribute keys become labels the same way (`http.route` →
//!   `http_route`), with `key_` before a leading digit;
//! - every series carries the promoted resource attributes
//!   ([`PROMOTED_RESOURCE_ATTRIBUTES`]: `service_name`, `service_namespace`,
//!   `service_instance_id`, `deployment_environment_name`), and
//!   `target_info` carries every resource attribute;
//! - no `otel_scope_*` labels (Prometheus adds none by default either).
//!
//! One difference is Prometheus's own: it stores a scraped histogram's
//! `le` as OpenMetrics writes numbers (`le="1.0"`) and an OTLP one as the
//! shortest decimal (`le="1"`). `histogram_quantile` reads both alike; a
//! query that selects one bucket by its `le` text sees only one path.
//!
//! # `job` and `instance`
//!
//! Over OTLP, Prometheus sets `job` to `service.namespace/service.name` (or
//! `service.name`) and `instance` to `service.instance.id`; a scrape sets
//! them to the scrape job's name and the target's address. These two
//! relabelling rules in the scrape job make a scraped series identical to
//! the pushed one (a test runs them in a real Prometheus):
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: otelwire
//!     static_configs:
//!       - targets: ["orders-api:9464"]
//!     metric_relabel_configs:
//!       - source_labels: [service_namespace, service_name]
//!         separator: /
//!         regex: /?(.+)
//!         target_label: job
//!       - source_labels: [service_instance_id]
//!         regex: (.+)
//!         target_label: instance
//! ```
//!
//! Without them everything else agrees, and queries that select by
//! `service_name` (as the stack's rules and dashboards do) work either way.
//!
//! # On the service's own port
//!
//! With [`prometheus_listener`](crate::Builder::prometheus_listener)`(false)`,
//! nothing listens and [`Telemetry::prometheus`](crate::Telemetry::prometheus)
//! gives the [`Exposition`] to serve wherever the service likes:
//! `otelwire_axum::metrics_router(&telemetry)` mounts `GET /metrics` on an
//! axum router.

mod names;
mod text;

use std::fmt;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use crate::config::Signal;
use crate::health;

/// Where the scrape endpoint listens when neither the builder nor
/// `OTEL_EXPORTER_PROMETHEUS_HOST` says (the specification's default).
pub const DEFAULT_HOST: &str = "localhost";

/// The port when neither the builder nor `OTEL_EXPORTER_PROMETHEUS_PORT`
/// says (the specification's default).
pub const DEFAULT_PORT: u16 = 9464;

/// The path the metrics are served at.
pub const PATH: &str = "/metrics";

/// The `Content-Type` of the exposition: the text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The resource attributes that become labels of every series, as
/// `promote_resource_attributes` in `stack/prometheus/prometheus.yml`
/// promotes them for OTLP.
pub const PROMOTED_RESOURCE_ATTRIBUTES: [&str; 4] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment.name",
];

/// How long one connection to the endpoint may take (reading the request,
/// collecting, writing the answer).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 8;

/// The most bytes of request line and headers read.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The metrics of a pipeline in the Prometheus text format, on demand: what
/// `GET /metrics` answers. Cheap to clone; from
/// [`Telemetry::prometheus`](crate::Telemetry::prometheus).
#[derive(Clone)]
pub struct Exposition {
    inner: Arc<Inner>,
}

struct Inner {
    reader: Arc<ManualReader>,
    /// Counts each scrape's points as exported, when no exporter pushes
    /// (then the scrapes are the metrics' export).
    pipeline: Option<Arc<health::Pipeline>>,
    local_addr: Mutex<Option<SocketAddr>>,
}

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exposition")
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Exposition {
    /// Collects every metric now (observable instruments' callbacks run)
    /// and writes them in the text format; `None` once the pipeline is
    /// shut down.
    pub fn render(&self) -> Option<String> {
        let mut metrics = ResourceMetrics::default();
        // Fails only once the provider is shut down.
        self.inner.reader.collect(&mut metrics).ok()?;
        let mut out = String::with_capacity(16 * 1024);
        let points = text::encode(&metrics, &mut out);
        if let Some(p) = &self.inner.pipeline {
            p.record_success(Signal::Metrics, points);
        }
        Some(out)
    }

    /// The address otelwire's own endpoint listens on (the port chosen
    /// when the configured one is 0); `None` when it does not listen
    /// ([`Builder::prometheus_listener`](crate::Builder::prometheus_listener)`(false)`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *self
            .inner
            .local_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The reader the meter provider collects into, shared with the
/// [`Exposition`] (the provider takes its readers by value).
#[derive(Debug, Clone)]
pub(crate) struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// A reader for the meter provider and the exposition that reads it.
/// `pipeline` is given when the scrapes are the metrics' only export.
pub(crate) fn reader(pipeline: Option<Arc<health::Pipeline>>) -> (SharedReader, Exposition) {
    let reader = Arc::new(
        ManualReader::builder()
            .with_temporality(Temporality::Cumulative)
            .build(),
    );
    let exposition = Exposition {
        inner: Arc::new(Inner {
            reader: reader.clone(),
            pipeline,
            local_addr: Mutex::new(None),
        }),
    };
    (SharedReader(reader), exposition)
}

/// The resolved settings of the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Whether otelwire listens itself.
    pub(crate) listen: bool,
    /// Where host and port came from, for an error that names them
    /// (`OTEL_EXPORTER_PROMETHEUS_PORT=9464`, `builder setting prometheus_port`).
    pub(crate) origin: String,
}

impl Settings {
    /// `host:port`, with brackets around an IPv6 address.
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL a scrape would use.
    pub(crate) fn url(&self) -> String {
        format!("http://{}{PATH}", self.address())
    }
}

/// Why the endpoint cannot listen, naming the address and the settings.
fn listen_error(settings: &Settings, why: String) -> crate::InitError {
    crate::InitError::Listen {
        address: settings.address(),
        settings: settings.origin.clone(),
        reason: why,
    }
}

/// The running endpoint: its thread and how to stop it.
#[derive(Debug)]
pub(crate) struct Server {
    stop: Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            std::sync::mpsc::Receiver<()>,
        )>,
    >,
}

impl Server {
    /// Binds `settings`' address now (so that a port in use is an init
    /// error) and serves `exposition` on a thread of its own.
    pub(crate) fn start(
        settings: &Settings,
        exposition: &Exposition,
    ) -> Result<Server, crate::InitError> {
        let addrs: Vec<SocketAddr> = (settings.host.as_str(), settings.port)
            .to_socket_addrs()
            .map_err(|e| listen_error(settings, format!("the host does not resolve: {e}")))?
            .collect();
        let mut last = None;
        let mut listener = None;
        for addr in &addrs {
            match TcpListener::bind(addr) {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let listener = listener.ok_or_else(|| {
            listen_error(
                settings,
                last.map_or_else(
                    || "the host resolves to no address".to_owned(),
                    |e| e.to_string(),
                ),
            )
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| listen_error(settings, e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| listen_error(settings, e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(crate::InitError::Runtime)?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let exposition_for_thread = exposition.clone();
        std::thread::Builder::new()
            .name("otelwire-prometheus".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::spawn(accept(listener, exposition_for_thread));
                    let _ = stop_rx.await;
                });
                // Dropping the runtime ends the accept loop and every
                // connection, and closes the listener: the port is free.
                drop(runtime);
                let _ = done_tx.send(());
            })
            .map_err(crate::InitError::Runtime)?;
        *exposition
            .inner
            .local_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(local);
        Ok(Server {
            stop: Mutex::new(Some((stop_tx, done_rx))),
        })
    }

    /// Stops the endpoint and waits, at most `timeout`, until its port is free.
    pub(crate) fn stop(&self, timeout: Duration) {
        let taken = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stop, done)) = taken {
            let _ = stop.send(());
            let _ = done.recv_timeout(timeout);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(1));
    }
}

async fn accept(listener: tokio::net::TcpListener, exposition: Exposition) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, answer(stream, &exposition)).await;
            drop(slot);
        });
    }
}

/// Reads one request and answers it; the connection is closed after.
async fn answer(mut stream: tokio::net::TcpStream, exposition: &Exposition) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD {
            let status = "431 Request Header Fields Too Large";
            return respond(&mut stream, status, "text/plain", b"", false).await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let response = match (method, path) {
        ("GET" | "HEAD", PATH) => match exposition.render() {
            Some(body) => ("200 OK", CONTENT_TYPE, body.into_bytes()),
            None => (
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                b"the telemetry pipeline is shut down\n".to_vec(),
            ),
        },
        (_, PATH) => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            b"GET /metrics\n".to_vec(),
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            b"metrics are at /metrics\n".to_vec(),
        ),
    };
    let (status, content_type, body) = response;
    respond(&mut stream, status, content_type, &body, method == "HEAD").await?;
    stream.shutdown().await
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body).await?;
    }
    stream.flush().await
}
