//! [`Builder`]: every setting in code, and the assembly of the pipeline
//! (providers, layers, the dispatcher, the globals for `init`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_sdk::propagation::BaggagePropagator;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};

use crate::config::{CodeSettings, EnvSource, Resolved};
use crate::health::Pipeline;
use crate::local::LocalLayer;
use crate::output::{MakeOutput, OutputContext};
use crate::propagation::{self, TraceContextPropagator};
use crate::{
    BaseSubscriber, BoxedLayer, Component, Compression, ExporterKind, InitError, LineFormatter,
    LogFormat, Output, Propagator, Protocol, REQUEST_ID_FIELD, RedactLayer, Redactor, Sampler,
    Signal, Telemetry, current, endpoint, filter::FilterHandle, http, layers, metrics, panic,
    pipeline, resource, telemetry,
};

/// Whether [`Builder::init`] installed a pipeline in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Configures telemetry in code. Every setting left alone comes from the
/// environment (see the [crate docs](crate#configuration)).
///
/// ```
/// # fn main() -> Result<(), otelwire::InitError> {
/// let telemetry = otelwire::builder()
///     .service_name("checkout")
///     .service_version("1.4.2")
///     .environment("staging")
///     .endpoint("http://127.0.0.1:4317")
///     .protocol(otelwire::Protocol::Grpc)
///     .log_format(otelwire::LogFormat::Compact)
///     .filter("info,checkout=debug")
///     .build()?; // not installed globally: see Telemetry::dispatch
/// tracing::dispatcher::with_default(telemetry.dispatch(), || {
///     tracing::info!("hello");
/// });
/// telemetry.shutdown_blocking();
/// # Ok(()) }
/// ```
pub struct Builder {
    code: CodeSettings,
    env: EnvSource,
    layers: Vec<BoxedLayer>,
    writer: Option<BoxMakeWriter>,
    ansi: Option<bool>,
    custom: pipeline::CustomExporters,
    log_span_fields: Vec<String>,
    baggage_attributes: Option<Vec<String>>,
    outputs: Vec<MakeOutput>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            code: CodeSettings::default(),
            env: EnvSource::process(),
            layers: Vec::new(),
            writer: None,
            ansi: None,
            custom: pipeline::CustomExporters::default(),
            log_span_fields: vec![REQUEST_ID_FIELD.to_owned()],
            baggage_attributes: None,
            outputs: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("settings", &self.code)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// `service.name`, fixed in code: it wins over `OTEL_SERVICE_NAME`, so
    /// operators cannot rename a deployment. Prefer
    /// [`default_service_name`](Self::default_service_name).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.code.service_name = Some(name.into());
        self
    }

    /// `service.name` when the environment says none: `OTEL_SERVICE_NAME`,
    /// then `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, win over it, so
    /// `OTEL_SERVICE_NAME=orders-eu` renames a deployment. Without either
    /// (and without [`service_name`](Self::service_name)), the executable's
    /// name.
    pub fn default_service_name(mut self, name: impl Into<String>) -> Self {
        self.code.default_service_name = Some(name.into());
        self
    }

    /// `service.version`, typically `env!("CARGO_PKG_VERSION")`.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.code.service_version = Some(version.into());
        self
    }

    /// `deployment.environment.name`, fixed in code: it wins over
    /// `OTELWIRE_ENVIRONMENT` and `OTEL_RESOURCE_ATTRIBUTES`. Prefer
    /// [`default_environment`](Self::default_environment).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.code.environment = Some(environment.into());
        self
    }

    /// `deployment.environment.name` when the environment says none
    /// (`OTELWIRE_ENVIRONMENT`, then `deployment.environment.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, win over it).
    pub fn default_environment(mut self, environment: impl Into<String>) -> Self {
        self.code.default_environment = Some(environment.into());
        self
    }

    /// One more resource attribute (wins over `OTEL_RESOURCE_ATTRIBUTES`).
    /// A key named like a secret is exported with the value `[REDACTED]`.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.code
            .resource_attributes
            .push((key.into(), value.into()));
        self
    }

    /// The collector's base URL for all signals (else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`). For HTTP, `/v1/traces` and the like
    /// are appended. User info (`user:pass@`) is sent as Basic
    /// authorization and removed from the URL (see the
    /// [crate docs](crate#configuration)).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.code.endpoint = Some(endpoint.into());
        self
    }

    /// The full URL for one signal, used as given.
    pub fn signal_endpoint(mut self, signal: Signal, endpoint: impl Into<String>) -> Self {
        self.code.signal_endpoint[signal.index()] = Some(endpoint.into());
        self
    }

    /// The OTLP transport for all signals (else `OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.code.protocol = Some(protocol);
        self
    }

    /// The OTLP transport for one signal.
    pub fn signal_protocol(mut self, signal: Signal, protocol: Protocol) -> Self {
        self.code.signal_protocol[signal.index()] = Some(protocol);
        self
    }

    /// Where a signal goes: OTLP, the console, or nowhere; for metrics also
    /// [`ExporterKind::Prometheus`], served for scraping only. Set here, it
    /// replaces the whole of `OTEL_{SIGNAL}_EXPORTER` (`Custom` is set by
    /// [`span_exporter`](Self::span_exporter) and friends; on its own it
    /// means no export). An exporter and the scrape endpoint together:
    /// add [`prometheus`](Self::prometheus)`(true)`.
    pub fn exporter(mut self, signal: Signal, kind: ExporterKind) -> Self {
        self.code.exporter[signal.index()] = Some(kind);
        self
    }

    /// Serves the metrics for Prometheus to scrape (`true`), beside the
    /// metrics exporter, or not (`false`), whatever `OTEL_METRICS_EXPORTER`
    /// or [`exporter`](Self::exporter) say about `prometheus`. See
    /// [`prometheus`](crate::prometheus) for the endpoint, the names and labels.
    pub fn prometheus(mut self, on: bool) -> Self {
        self.code.prometheus = Some(on);
        self
    }

    /// The address the scrape endpoint listens on (else
    /// `OTEL_EXPORTER_PROMETHEUS_HOST`, else `localhost`); `0.0.0.0` for
    /// every interface.
    pub fn prometheus_host(mut self, host: impl Into<String>) -> Self {
        self.code.prometheus_host = Some(host.into());
        self
    }

    /// The port of the scrape endpoint (else `OTEL_EXPORTER_PROMETHEUS_PORT`,
    /// else 9464); 0 picks a free one ([`prometheus::Exposition::local_addr`](crate::prometheus::Exposition::local_addr)
    /// tells which).
    pub fn prometheus_port(mut self, port: u16) -> Self {
        self.code.prometheus_port = Some(port);
        self
    }

    /// Whether otelwire listens on the scrape endpoint's address itself
    /// (else `OTELWIRE_PROMETHEUS_LISTENER`, else `true`). With `false`, no
    /// port is opened: serve [`Telemetry::prometheus`] on the service's own
    /// router (`otelwire_axum::metrics_router`).
    pub fn prometheus_listener(mut self, on: bool) -> Self {
        self.code.prometheus_listener = Some(on);
        self
    }

    /// Turns trace export off (`false`) or back to OTLP (`true`).
    pub fn traces(self, on: bool) -> Self {
        self.toggle(Signal::Traces, on)
    }

    /// Turns log export off (`false`) or back to OTLP (`true`).
    pub fn logs(self, on: bool) -> Self {
        self.toggle(Signal::Logs, on)
    }

    /// Turns metric export off (`false`) or back to OTLP (`true`).
    pub fn metrics(self, on: bool) -> Self {
        self.toggle(Signal::Metrics, on)
    }

    fn toggle(self, signal: Signal, on: bool) -> Self {
        let kind = if on {
            ExporterKind::Otlp
        } else {
            ExporterKind::None
        };
        self.exporter(signal, kind)
    }

    /// A header sent with every export request (added to, and winning over,
    /// `OTEL_EXPORTER_OTLP_HEADERS`). Its value is never printed.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.code.headers.push((name.into(), value.into()));
        self
    }

    /// The export timeout of every signal.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.code.timeout = Some(timeout);
        self
    }

    /// Payload compression for every signal.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.code.compression = Some(compression);
        self
    }

    /// A header sent with one signal's export requests (wins over
    /// [`header`](Self::header) and both `OTEL_EXPORTER_OTLP_HEADERS`
    /// variables for that name). Its value is never printed.
    pub fn signal_header(
        mut self,
        signal: Signal,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.code.signal_headers[signal.index()].push((name.into(), value.into()));
        self
    }

    /// One signal's export timeout (wins over [`timeout`](Self::timeout),
    /// `OTEL_EXPORTER_OTLP_{SIGNAL}_TIMEOUT` and `OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub fn signal_timeout(mut self, signal: Signal, timeout: Duration) -> Self {
        self.code.signal_timeout[signal.index()] = Some(timeout);
        self
    }

    /// One signal's payload compression (wins over
    /// [`compression`](Self::compression) and the `…_COMPRESSION` variables).
    pub fn signal_compression(mut self, signal: Signal, compression: Compression) -> Self {
        self.code.signal_compression[signal.index()] = Some(compression);
        self
    }

    /// The CA certificate (a PEM file) that `https` endpoints are checked
    /// against, for every signal, instead of the system's roots (wins over
    /// `OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE`). With an `http://`
    /// endpoint it would never be used: [`build`](Self::build) fails with
    /// an [`InitError`] naming the signal and the endpoint.
    pub fn certificate(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.code.certificate = Some(path.into());
        self
    }

    /// One signal's CA certificate (wins over [`certificate`](Self::certificate));
    /// an init error with an `http://` endpoint, as that one is.
    pub fn signal_certificate(
        mut self,
        signal: Signal,
        path: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.code.signal_certificate[signal.index()] = Some(path.into());
        self
    }

    /// A client certificate (mutual TLS) for every signal: the PEM file of
    /// the certificate (and any intermediates), and the PEM file of its
    /// private key (PKCS#8, PKCS#1 or SEC1), both read at init. Presented
    /// over `https` endpoints, gRPC and HTTP alike. Wins over
    /// `OTEL_EXPORTER_OTLP_[SIGNAL_]CLIENT_CERTIFICATE` and
    /// `OTEL_EXPORTER_OTLP_[SIGNAL_]CLIENT_KEY`. A file that cannot be read
    /// or is not PEM of the right kind is an [`InitError`] naming the file,
    /// never the key's contents.
    pub fn client_certificate(
        mut self,
        cert_pem_path: impl Into<std::path::PathBuf>,
        key_pem_path: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.code.client_certificate = Some((cert_pem_path.into(), key_pem_path.into()));
        self
    }

    /// A client certificate and key, as
    /// [`client_certificate`](Self::client_certificate), for one signal
    /// only (winning over the one for every signal).
    pub fn signal_client_certificate(
        mut self,
        signal: Signal,
        cert_pem_path: impl Into<std::path::PathBuf>,
        key_pem_path: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.code.signal_client_certificate[signal.index()] =
            Some((cert_pem_path.into(), key_pem_path.into()));
        self
    }

    /// Which traces are recorded.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.code.sampler = Some(sampler);
        self
    }

    /// The propagators installed globally by [`init`](crate::init) (empty: none).
    pub fn propagators(mut self, propagators: impl IntoIterator<Item = Propagator>) -> Self {
        self.code.propagators = Some(propagators.into_iter().collect());
        self
    }

    /// The local output format.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.code.log_format = Some(format);
        self
    }

    /// Where local output goes (standard output by default).
    pub fn writer<W>(mut self, writer: W) -> Self
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// Colours in the pretty format (default: when standard output is a
    /// terminal and `NO_COLOR` is unset).
    pub fn ansi(mut self, ansi: bool) -> Self {
        self.ansi = Some(ansi);
        self
    }

    /// The `RUST_LOG`-style filter (else `RUST_LOG`, else `info`): which
    /// events are logged, to every output. It can be changed later with
    /// [`Telemetry::set_filter`].
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.code.filter = Some(filter.into());
        self
    }

    /// Which spans are recorded and exported, in the same syntax (else
    /// `OTELWIRE_TRACES_FILTER`, else the log filter's directives raised to
    /// at least `info`: `RUST_LOG=warn` still records the INFO spans of
    /// every request, `RUST_LOG=debug` records the DEBUG ones too). Given
    /// here or in the variable, it stays as given when
    /// [`Telemetry::set_filter`] changes the log filter.
    pub fn traces_filter(mut self, filter: impl Into<String>) -> Self {
        self.code.traces_filter = Some(filter.into());
        self
    }

    /// Whether to install the panic hook (else `OTELWIRE_PANIC_HOOK`; by
    /// default [`init`](crate::init)(Self::init) installs it and [`build`](Self::build),
    /// which installs nothing global, does not). See the
    /// [crate docs](crate#panics).
    pub fn panic_hook(mut self, on: bool) -> Self {
        self.code.panic_hook = Some(on);
        self
    }

    /// `true` turns all export off (else `OTEL_SDK_DISABLED`).
    pub fn sdk_disabled(mut self, disabled: bool) -> Self {
        self.code.sdk_disabled = Some(disabled);
        self
    }

    /// How long [`Telemetry::shutdown`] may take.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.code.shutdown_timeout = Some(timeout);
        self
    }

    /// Spans (`Signal::Traces`) or log records (`Signal::Logs`) that may wait
    /// for export; more are dropped and counted. Ignored for metrics.
    /// Default [`DEFAULT_MAX_QUEUE_SIZE`](crate::DEFAULT_MAX_QUEUE_SIZE), or `OTEL_BSP_MAX_QUEUE_SIZE` /
    /// `OTEL_BLRP_MAX_QUEUE_SIZE`. More than [`MAX_QUEUE_SIZE_LIMIT`](crate::MAX_QUEUE_SIZE_LIMIT) is an
    /// init error.
    pub fn max_queue_size(mut self, signal: Signal, size: usize) -> Self {
        if let Some(i) = batch_index(signal) {
            self.code.max_queue_size[i] = Some(size.max(1));
        }
        self
    }

    /// Items per export request, for traces or logs (more than
    /// [`MAX_QUEUE_SIZE_LIMIT`](crate::MAX_QUEUE_SIZE_LIMIT) is an init error).
    pub fn max_export_batch_size(mut self, signal: Signal, size: usize) -> Self {
        if let Some(i) = batch_index(signal) {
            self.code.max_export_batch_size[i] = Some(size.max(1));
        }
        self
    }

    /// Time between exports, for traces or logs.
    pub fn scheduled_delay(mut self, signal: Signal, delay: Duration) -> Self {
        if let Some(i) = batch_index(signal) {
            self.code.scheduled_delay[i] = Some(delay);
        }
        self
    }

    /// Time between metric exports.
    pub fn metric_export_interval(mut self, interval: Duration) -> Self {
        self.code.metric_export_interval = Some(interval);
        self
    }

    /// One more field name to redact (same matching as the defaults).
    pub fn redact_field(mut self, name: impl Into<String>) -> Self {
        self.code.redact_fields.push(name.into());
        self
    }

    /// Whether to record process metrics (CPU, memory, threads, uptime).
    pub fn process_metrics(mut self, on: bool) -> Self {
        self.code.process_metrics = Some(on);
        self
    }

    /// How long exports may keep failing before health says `failing`.
    pub fn health_failing_after(mut self, after: Duration) -> Self {
        self.code.failing_after = Some(after);
        self
    }

    /// The longest string value, in characters, a span attribute, span
    /// event attribute, log record attribute or log body keeps; longer ones
    /// are cut (default [`DEFAULT_VALUE_LENGTH_LIMIT`](crate::DEFAULT_VALUE_LENGTH_LIMIT), or
    /// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`, `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`
    /// and `OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT`). Set in code, it
    /// applies to both signals and wins over the environment; 0 or more
    /// than [`MAX_VALUE_LENGTH_LIMIT`](crate::MAX_VALUE_LENGTH_LIMIT) is an init error.
    pub fn attribute_value_length_limit(mut self, limit: usize) -> Self {
        self.code.value_length_limit = [Some(limit); 2];
        self
    }

    /// The temporality the OTLP metrics exporter asks for (else
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else cumulative):
    /// `Delta` makes counters, asynchronous counters and histograms delta
    /// (up-down counters stay cumulative), `LowMemory` only synchronous
    /// counters and histograms, as the OTLP exporter specification says.
    /// The Prometheus scrape endpoint is always cumulative.
    pub fn metrics_temporality(
        mut self,
        temporality: opentelemetry_sdk::metrics::Temporality,
    ) -> Self {
        self.code.temporality = Some(temporality);
        self
    }

    /// The count limits of spans: attributes per span, events and links
    /// per span, attributes per event and per link; more are dropped by
    /// the SDK and counted in the span's `dropped_*_count`. Set here, they
    /// replace all of `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`,
    /// `OTEL_SPAN_EVENT_COUNT_LIMIT`, `OTEL_SPAN_LINK_COUNT_LIMIT`,
    /// `OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`, `OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`
    /// and `OTEL_ATTRIBUTE_COUNT_LIMIT` (default 128 each).
    pub fn span_limits(mut self, limits: opentelemetry_sdk::trace::SpanLimits) -> Self {
        self.code.span_limits = Some(limits);
        self
    }

    /// The most attributes a log record keeps; the first ones are kept
    /// (else `OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT`, else
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`, else 128).
    pub fn log_attribute_count_limit(mut self, limit: u32) -> Self {
        self.code.log_attribute_count_limit = Some(limit);
        self
    }

    /// Copies a field of the enclosing spans onto every log record emitted
    /// inside them (default: just [`REQUEST_ID_FIELD`], so every log record of
    /// a request carries its id). The field must be set when the span is
    /// created.
    pub fn log_span_field(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.log_span_fields.contains(&name) {
            self.log_span_fields.push(name);
        }
        self
    }

    /// The W3C baggage members copied onto every span, log record and
    /// local line of a request that carries them, under their own names
    /// (see [`crate::baggage`]); wins over `OTELWIRE_BAGGAGE_ATTRIBUTES`.
    /// Only the named members: baggage is set by whoever sent the request.
    /// A name that is not a baggage key is an [`InitError`] at build.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let telemetry = otelwire::builder()
    ///     .sdk_disabled(true)
    ///     .baggage_attributes(["tenant.id", "user.tier"])
    ///     .build()?;
    /// # drop(telemetry);
    /// let err = otelwire::builder()
    ///     .sdk_disabled(true)
    ///     .baggage_attributes(["tenant id"])
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("is not a baggage key"), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn baggage_attributes<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.baggage_attributes = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a `tracing` layer of your own to the subscriber (it sees every
    /// event `RUST_LOG` lets through and every span either filter records,
    /// unredacted unless wrapped in [`RedactLayer`]).
    pub fn with_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BaseSubscriber> + Send + Sync + 'static,
    {
        self.layers.push(Box::new(layer));
        self
    }

    /// Adds an output made when the pipeline is built, from the builder's
    /// configuration source: how add-on crates such as `otelwire-files`
    /// plug in. Unlike [`with_layer`](Self::with_layer), the output's layer
    /// sits behind redaction, next to the console output, so it never sees a
    /// secret-named field's value; an error from `make` is the error of
    /// [`init`](crate::init)(Self::init) or [`build`](Self::build).
    pub fn with_output<F>(mut self, make: F) -> Self
    where
        F: FnOnce(&OutputContext<'_>) -> Result<Output, InitError> + Send + 'static,
    {
        self.outputs.push(Box::new(make));
        self
    }

    /// Exports spans with an exporter of your own instead of OTLP (behind the
    /// same bounded queue, redaction and accounting). Also how the benches
    /// measure otelwire's own cost, with an exporter that does nothing.
    pub fn span_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::trace::SpanExporter + 'static,
    {
        self.custom.span = Some(Box::new(exporter));
        self.exporter(Signal::Traces, ExporterKind::Custom)
    }

    /// Exports log records with an exporter of your own instead of OTLP.
    pub fn log_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::logs::LogExporter + 'static,
    {
        self.custom.log = Some(Box::new(exporter));
        self.exporter(Signal::Logs, ExporterKind::Custom)
    }

    /// Exports metrics with an exporter of your own instead of OTLP.
    pub fn metric_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::metrics::exporter::PushMetricExporter + std::fmt::Debug,
    {
        self.custom.metric = Some(Box::new(exporter));
        self.exporter(Signal::Metrics, ExporterKind::Custom)
    }

    /// Reads configuration from `lookup` instead of the process environment:
    /// for tests, or for configuration that lives elsewhere. `lookup` gets a
    /// variable name and returns its value.
    pub fn env_source<F>(mut self, lookup: F) -> Self
    where
        F: Fn(&str) -> Option<String> + Send + Sync + 'static,
    {
        self.env = EnvSource::from_fn(lookup);
        self
    }

    /// Builds the pipeline and installs it for the whole process: the global
    /// `tracing` subscriber, the `log` crate bridge, and the global
    /// OpenTelemetry tracer provider, meter provider and propagator.
    ///
    /// A second call (or a global subscriber already set by someone else)
    /// returns [`InitError::AlreadyInitialized`].
    pub fn init(self) -> Result<Telemetry, InitError> {
        if INSTALLED.swap(true, Ordering::AcqRel) {
            return Err(InitError::AlreadyInitialized);
        }
        let result = self.assemble(true);
        if result.is_err() {
            INSTALLED.store(false, Ordering::Release);
        }
        result
    }

    /// Builds the pipeline without installing anything globally: use
    /// [`Telemetry::dispatch`] with [`tracing::dispatcher::with_default`].
    /// For tests and for programs that run several pipelines.
    pub fn build(self) -> Result<Telemetry, InitError> {
        self.assemble(false)
    }

    fn assemble(self, global: bool) -> Result<Telemetry, InitError> {
        let cfg = Resolved::resolve(&self.code, &self.env)?;
        let redactor = Redactor::new(&cfg.redact_fields);
        let baggage =
            crate::baggage::resolve(self.baggage_attributes.as_deref(), &self.env, &redactor)?;
        let secrets: Vec<String> = cfg
            .otlp
            .iter()
            .flat_map(|o| o.headers.iter().map(|(_, v)| v.clone()))
            .chain(
                cfg.otlp
                    .iter()
                    .flat_map(|o| endpoint::query_values(&o.endpoint)),
            )
            .collect();
        let endpoints = Signal::ALL.map(|s| {
            let kind = cfg.effective_exporter(s);
            let endpoint = (kind == ExporterKind::Otlp).then(|| {
                endpoint::without_query_values(&cfg.otlp[s.index()].endpoint).into_owned()
            });
            match (s, kind, cfg.effective_prometheus()) {
                // Scraped only: health reports the scrapes.
                (Signal::Metrics, ExporterKind::None, Some(p)) => {
                    (ExporterKind::Prometheus, Some(p.url()))
                }
                _ => (kind, endpoint),
            }
        });
        let pipeline = Arc::new(Pipeline::new(
            cfg.service_name.clone(),
            endpoints,
            cfg.failing_after,
            secrets,
        ));
        let resource = resource::build(&cfg, &redactor);
        let providers =
            pipeline::build(&cfg, &resource, &pipeline, &redactor, self.custom, &baggage)?;

        if let Some(mp) = &providers.meter {
            use opentelemetry::metrics::MeterProvider as _;
            let meter = mp.meter("otelwire");
            metrics::register_pipeline(&meter, &pipeline);
            if cfg.process_metrics {
                metrics::register_process(&meter);
            }
        }

        let filters = layers::FilterState::new(layers::Filters::new(
            &cfg.filter,
            cfg.traces_filter.as_deref(),
        ));
        let mut layers: Vec<BoxedLayer> = Vec::new();
        if let Some(tp) = &providers.tracer {
            layers.push(Box::new(layers::trace_layer(tp, &filters)));
        }
        let bridge = providers
            .logger
            .as_ref()
            .map(|p| layers::Bridge::new(p, &self.log_span_fields));
        let local = (cfg.log_format != LogFormat::None).then(|| {
            let to_stdout = self.writer.is_none();
            let ansi = self.ansi.unwrap_or_else(|| {
                use std::io::IsTerminal;
                to_stdout && std::io::stdout().is_terminal() && self.env.get("NO_COLOR").is_none()
            });
            let writer = self
                .writer
                .unwrap_or_else(|| BoxMakeWriter::new(std::io::stdout));
            LocalLayer::new(
                LineFormatter::with_options(cfg.log_format, ansi, providers.tracer.is_some())
                    .value_length_limit(cfg.value_length_limit[1])
                    .baggage_attributes(baggage.clone()),
                writer,
            )
        });
        let cx = OutputContext {
            env: &self.env,
            redactor: &redactor,
            baggage: &baggage,
        };
        let mut outputs: Vec<BoxedLayer> = Vec::new();
        let mut components: Vec<Arc<dyn Component>> = Vec::new();
        let mut described: Vec<String> = Vec::new();
        for make in self.outputs {
            let output = make(&cx)?;
            described.extend(output.description);
            outputs.extend(output.layer);
            components.extend(output.components);
        }
        pipeline.set_components(components);
        layers.push(Box::new(RedactLayer::new(
            Layer::<BaseSubscriber>::and_then(bridge, local)
                .and_then((!outputs.is_empty()).then_some(outputs)),
            redactor.clone(),
        )));
        layers.extend(self.layers);

        let subscriber = tracing_subscriber::registry()
            .with(filters.gate(Arc::new(current::Providers {
                meter: providers.meter.clone(),
                tracer: providers.tracer.clone(),
            })))
            .with(layers);
        let dispatch = tracing::Dispatch::new(subscriber);
        pipeline.set_dispatch(&dispatch);

        let shared = Arc::new(telemetry::Shared {
            pipeline: pipeline.clone(),
            meter_provider: providers.meter.clone(),
            tracer_provider: providers.tracer.clone(),
            logger_provider: providers.logger.clone(),
            exposition: providers.exposition.clone(),
            providers: std::sync::Mutex::new(Some(providers)),
            shutdown_timeout: cfg.shutdown_timeout,
            report: std::sync::Mutex::new(None),
        });
        let telemetry = Telemetry {
            filter: FilterHandle::new(filters, &dispatch),
            dispatch: dispatch.clone(),
            shared,
            redactor,
        };
        if cfg.panic_hook.unwrap_or(global) {
            panic::install(
                Arc::downgrade(&telemetry.shared),
                dispatch.downgrade(),
                cfg.shutdown_timeout.min(panic::MAX_FLUSH),
            );
        }

        if global {
            if tracing::dispatcher::set_global_default(dispatch.clone()).is_err() {
                return Err(InitError::AlreadyInitialized);
            }
            // `log` records become tracing events (ignored if a logger exists).
            let _ = tracing_log::LogTracer::init();
            if let Some(tp) = telemetry.tracer_provider() {
                opentelemetry::global::set_tracer_provider(tp.clone());
            }
            if let Some(mp) = telemetry.meter_provider() {
                opentelemetry::global::set_meter_provider(mp.clone());
            }
            current::set_global();
            opentelemetry::global::set_text_map_propagator(propagator(&cfg.propagators));
            http::propagators_installed(!cfg.propagators.is_empty());
        }

        let traces_filter = telemetry.traces_filter();
        tracing::dispatcher::with_default(&dispatch, || {
            startup_line(&cfg, &traces_filter, &described)
        });
        Ok(telemetry)
    }
}

fn batch_index(signal: Signal) -> Option<usize> {
    match signal {
        Signal::Traces => Some(0),
        Signal::Logs => Some(1),
        Signal::Metrics => None,
    }
}

/// The composite propagator for `OTEL_PROPAGATORS`.
fn propagator(list: &[Propagator]) -> propagation::CompositePropagator {
    use propagation::{B3Encoding, B3Propagator, JaegerPropagator};
    let mut out: Vec<Box<dyn opentelemetry::propagation::TextMapPropagator + Send + Sync>> =
        Vec::new();
    for p in list {
        match p {
            Propagator::TraceContext => out.push(Box::new(TraceContextPropagator::new())),
            Propagator::Baggage => out.push(Box::new(BaggagePropagator::new())),
            Propagator::B3 => out.push(Box::new(B3Propagator::new())),
            Propagator::B3Multi => {
                out.push(Box::new(B3Propagator::with_encoding(B3Encoding::Multi)))
            }
            Propagator::Jaeger => out.push(Box::new(JaegerPropagator::new())),
        }
    }
    propagation::CompositePropagator::new(out)
}

/// The one INFO line at init: what was resolved, with no secret in it.
fn startup_line(cfg: &Resolved, traces_filter: &str, outputs: &[String]) {
    let outputs = match outputs {
        [] => "none".to_owned(),
        some => some.join("; "),
    };
    let describe = |s: Signal| -> String {
        let kind = cfg.effective_exporter(s);
        let scrape = match (s, cfg.effective_prometheus()) {
            (Signal::Metrics, Some(p)) if p.listen => Some(format!("prometheus {}", p.url())),
            (Signal::Metrics, Some(_)) => Some("prometheus (served by the service)".to_owned()),
            _ => None,
        };
        if let (ExporterKind::None, Some(scrape)) = (kind, &scrape) {
            return scrape.clone();
        }
        let pushed = match kind {
            ExporterKind::Otlp => {
                let o = &cfg.otlp[s.index()];
                let mut d = format!(
                    "otlp {} {}",
                    o.protocol.as_str(),
                    endpoint::without_query_values(&o.endpoint)
                );
                if o.compression == Compression::Gzip {
                    d.push_str(" gzip");
                }
                if !o.headers.is_empty() {
                    d.push_str(&format!(" ({} header(s), values hidden)", o.headers.len()));
                }
                d
            }
            other => other.as_str().to_owned(),
        };
        match scrape {
            Some(scrape) => format!("{pushed}, {scrape}"),
            None => pushed,
        }
    };
    let propagators: Vec<&str> = cfg.propagators.iter().map(|p| p.as_str()).collect();
    tracing::info!(
        target: "otelwire",
        service = %cfg.service_name,
        version = cfg.service_version.as_deref().unwrap_or(""),
        environment = cfg.environment.as_deref().unwrap_or(""),
        traces = %describe(Signal::Traces),
        logs = %describe(Signal::Logs),
        metrics = %describe(Signal::Metrics),
        sampler = %cfg.sampler.describe(),
        propagators = %propagators.join(","),
        log_format = cfg.log_format.as_str(),
        outputs = %outputs,
        filter = %cfg.filter,
        traces_filter = %traces_filter,
        sdk_disabled = cfg.sdk_disabled,
        "telemetry initialised for {}",
        cfg.service_name
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::TextMapPropagator;

    #[test]
    fn propagators_follow_the_list() {
        let fields = |list: &[Propagator]| -> Vec<String> {
            let mut f: Vec<String> = propagator(list).fields().map(str::to_owned).collect();
            f.sort();
            f
        };
        assert_eq!(
            fields(&[Propagator::TraceContext, Propagator::Baggage]),
            ["baggage", "traceparent", "tracestate"]
        );
        assert_eq!(fields(&[Propagator::Baggage]), ["baggage"]);
        assert_eq!(fields(&[Propagator::B3]), ["b3"]);
        assert_eq!(
            fields(&[Propagator::B3Multi, Propagator::Jaeger]),
            [
                "uber-trace-id",
                "x-b3-flags",
                "x-b3-sampled",
                "x-b3-spanid",
                "x-b3-traceid"
            ]
        );
        assert!(fields(&[]).is_empty());
    }

    #[test]
    fn builder_settings_win_over_the_environment() {
        let out = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let telemetry = crate::builder()
            .env_source(|k| match k {
                "OTEL_SERVICE_NAME" => Some("from-env".into()),
                "OTEL_TRACES_SAMPLER" => Some("always_off".into()),
                "OTEL_SDK_DISABLED" => Some("true".into()),
                _ => None,
            })
            .service_name("from-code")
            .sampler(Sampler::AlwaysOn)
            .log_format(LogFormat::Json)
            .writer(move || SinkWriter(sink.clone()))
            .build()
            .unwrap();
        assert_eq!(telemetry.health().service, "from-code");
        drop(telemetry);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let startup: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(startup["service"], "from-code");
        assert_eq!(startup["sampler"], "always_on");
        assert_eq!(startup["traces"], "none");
    }

    struct SinkWriter(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SinkWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
