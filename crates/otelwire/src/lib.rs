//! One call wires a service's [`tracing`] instrumentation to OpenTelemetry.
//!
//! ```no_run
//! # async fn run() -> Result<(), otelwire::InitError> {
//! let telemetry = otelwire::init()?;
//!
//! let span = tracing::info_span!("checkout", order.id = 42);
//! let _guard = span.enter();
//! tracing::info!(items = 3, "order placed");
//! let orders = telemetry.meter("shop").u64_counter("orders").build();
//! orders.add(1, &[]);
//! drop(_guard);
//!
//! telemetry.shutdown().await; // flushes everything, within a deadline
//! # Ok(()) }
//! ```
//!
//! After [`init`]:
//! - `tracing` spans are OpenTelemetry spans (tracing-opentelemetry); the
//!   fields `otel.name`, `otel.kind`, `otel.status_code` and
//!   `otel.status_description` work as that crate documents;
//! - `tracing` events are OpenTelemetry log records
//!   (opentelemetry-appender-tracing), each with the trace and span id of the
//!   span it was emitted in; ERROR events also mark their span as failed;
//! - a [`Meter`](opentelemetry::metrics::Meter) is ready
//!   ([`Telemetry::meter`] or `opentelemetry::global::meter`), with process
//!   metrics (`process.cpu.time`, `process.memory.usage`,
//!   `process.thread.count`, `process.uptime`) and the pipeline's own
//!   (`otelwire.telemetry.exported`, `otelwire.telemetry.dropped`,
//!   `otelwire.telemetry.export.failures`, by `signal`);
//! - every event is also written locally (pretty on a terminal, JSON lines
//!   otherwise) with `trace_id` and `span_id` inside spans;
//! - the W3C trace-context ([`propagation::TraceContextPropagator`], Trace
//!   Context Level 2 as its text has it) and baggage propagators are
//!   installed globally; with `OTEL_PROPAGATORS=none`, [`http::with_propagator`]
//!   neither extracts nor injects.
//!
//! Export never blocks the service: spans and log records go to bounded
//! queues; a full queue drops and counts; an unreachable collector is one
//! warning a minute, and [`Telemetry::health`] tells what was exported,
//! dropped and why.
//!
//! # Configuration
//!
//! Every setting has a [`Builder`] method and an environment variable.
//! Precedence: the builder, then the signal-specific variable, then the
//! generic one, then the default. An unusable value is an [`InitError`]
//! naming the variable and the value (header values are never shown). A
//! variable that is set to bytes that are not UTF-8 is such an error too,
//! never read as unset.
//!
//! A builder method fixes a setting: operators cannot change it. For what
//! a service only wants to *default*, the `default_*` methods lose to the
//! environment: [`Builder::default_service_name`] (so that
//! `OTEL_SERVICE_NAME=orders-eu` renames a deployment),
//! [`Builder::default_environment`], and `otelwire_files::Files::default_dir`
//! for `OTELWIRE_LOG_DIR`. The examples use them.
//!
//! Credentials in a collector URL (`http://user:pass@collector:4318`, in any
//! of the endpoint variables or [`Builder::endpoint`]) are sent as HTTP Basic
//! authorization, as curl would send them: user and password are
//! percent-decoded and sent as `authorization: Basic base64(user:password)`
//! with every export, over HTTP and gRPC alike. An `authorization` header set
//! in `OTEL_EXPORTER_OTLP_HEADERS` (or a per-signal variant, or
//! [`Builder::header`]) wins over the URL's credentials; prefer that
//! variable, which keeps the secret out of the URL. The URL itself is always
//! used, printed (the startup line, export warnings, [`InitError`]) and
//! served (`/health/telemetry`, [`Health`]) with the user info removed.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `OTEL_SERVICE_NAME` | [`Builder::default_service_name`], else the executable's name | `service.name` ([`Builder::service_name`] wins over it; a default does not) |
//! | `OTEL_RESOURCE_ATTRIBUTES` | — | extra resource attributes, `k=v,k2=v2`, percent-decoded strictly (a `%` not followed by two hex digits, or escapes that are not UTF-8, are an error: write `%` as `%25`); at most [`MAX_RESOURCE_ATTRIBUTES`] (128) pairs and [`MAX_RESOURCE_ATTRIBUTES_BYTES`] (16 KiB), with the builder's; `service.version` and `deployment.environment.name` are taken from here too; an attribute named like a secret (`db.password`) is exported as `[REDACTED]` |
//! | `OTEL_SDK_DISABLED` | `false` | `true`: no export at all (local output stays) |
//! | `OTEL_TRACES_EXPORTER`, `OTEL_LOGS_EXPORTER`, `OTEL_METRICS_EXPORTER` | `otlp` | `otlp`, `console` (stdout, for debugging) or `none`; for metrics also `prometheus` (served for scraping, see [`prometheus`]) and `otlp,prometheus` or `console,prometheus` (both at once); `none` stands alone |
//! | `OTEL_EXPORTER_PROMETHEUS_HOST` | `localhost` | with `prometheus`: the address the scrape endpoint listens on (`0.0.0.0`: every interface) |
//! | `OTEL_EXPORTER_PROMETHEUS_PORT` | `9464` | with `prometheus`: its port, path `/metrics` (`0`: a free one); a port in use is an [`InitError`] naming the address |
//! | `OTELWIRE_PROMETHEUS_LISTENER` | `true` | with `prometheus`: `false` opens no port; serve [`Telemetry::prometheus`] on the service's router instead (`otelwire_axum::metrics_router`) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `http://localhost:4318` (`:4317` for gRPC) | collector base URL; `/v1/traces` etc. are appended to its path for HTTP (a query string stays at the end); `user:pass@` in it is sent as Basic authorization (above); spaces around it are ignored |
//! | `OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_ENDPOINT` | — | full URL for one signal, used as given |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_{SIGNAL}_PROTOCOL` | `http/protobuf` | `grpc`, `http/protobuf` or `http/json` |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `…_{SIGNAL}_HEADERS` | — | `k=v` pairs sent with every export (never logged), percent-decoded strictly as above |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `…_{SIGNAL}_TIMEOUT` | `10000` | export timeout, milliseconds |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION`, `…_{SIGNAL}_COMPRESSION` | `none` | `gzip` or `none` |
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_{SIGNAL}_CERTIFICATE` | system roots | PEM file of the CA to trust for `https` endpoints |
//! | `OTEL_TRACES_SAMPLER` | `parentbased_always_on` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` |
//! | `OTEL_TRACES_SAMPLER_ARG` | `1.0` | the ratio, in `[0, 1]` |
//! | `OTEL_PROPAGATORS` | `tracecontext,baggage` | a list of `tracecontext`, `baggage`, `b3` (Zipkin B3, one header), `b3multi` (B3, `X-B3-*` headers), `jaeger` (`uber-trace-id`, `uberctx-*`), or `none`; extraction takes the parent from the first format in the list that carries one, injection writes every format ([`propagation::CompositePropagator`]); `xray` and `ottrace` are refused by name |
//! | `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BLRP_MAX_QUEUE_SIZE` | `8192` | spans / log records waiting for export before new ones are dropped (the specification's default is 2048; see [`DEFAULT_MAX_QUEUE_SIZE`] for why otelwire holds more); at most [`MAX_QUEUE_SIZE_LIMIT`] (262144) |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE` | `512` | items per export request, at most the queue size |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BLRP_SCHEDULE_DELAY` | `5000`, `1000` | milliseconds between exports |
//! | `OTEL_BSP_EXPORT_TIMEOUT`, `OTEL_BLRP_EXPORT_TIMEOUT` | `30000` | milliseconds (validated; the transport timeout applies) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | `60000` | milliseconds between metric exports |
//! | `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` | `32768` | longest string attribute value kept, in characters (the specification's default is unlimited; otelwire bounds it so that one huge value can neither fill memory nor make the collector refuse a batch); log bodies are cut too, and so are the values of local lines (the log records' limit), which are also bounded by [`MAX_LINE_BYTES`]; at most [`MAX_VALUE_LENGTH_LIMIT`] (1048576) |
//! | `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, `OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT` | the above | the same, for one signal |
//! | `RUST_LOG` | `info` | which events are logged, to every output ([`EnvFilter`](tracing_subscriber::EnvFilter) syntax; spaces around a directive and empty directives, as in `info, app=debug,`, are ignored); changed live with [`Telemetry::set_filter`] |
//! | `OTELWIRE_TRACES_FILTER` | `RUST_LOG`'s directives, each at least `info` | which spans are recorded and exported, same syntax: `RUST_LOG=warn` still records INFO spans (every request's server span), `RUST_LOG=debug` records DEBUG spans too; see [Two filters](#two-filters) |
//! | `OTELWIRE_LOG_FORMAT` | `pretty` on a terminal, else `json` | local output: `pretty`, `compact`, `json` or `none` |
//! | `OTELWIRE_ENVIRONMENT` | [`Builder::default_environment`] | `deployment.environment.name` ([`Builder::environment`] wins over it; a default does not) |
//! | `OTELWIRE_REDACT_FIELDS` | — | more secret field names, comma-separated |
//! | `OTELWIRE_SHUTDOWN_TIMEOUT` | `5000` | milliseconds [`Telemetry::shutdown`] may take |
//! | `OTELWIRE_PROCESS_METRICS` | `true` | record the process metrics |
//! | `OTELWIRE_HEALTH_FAILING_AFTER` | `60000` | milliseconds of failed exports before health says `failing` instead of `degraded` |
//! | `OTELWIRE_AUDIT_EMAIL` | `mask` | e-mail addresses in [`audit`] events: `mask` (`j***@example.com`) or `hmac` (keyed pseudonym) |
//! | `OTELWIRE_AUDIT_HMAC_KEY` | — | the pseudonymisation key for `hmac`, at least 16 bytes (never printed) |
//! | `OTELWIRE_AUDIT_CLIENT_ADDRESS` | `truncate` | client addresses in [`audit`] events: `keep`, `truncate` (IPv4 /24, IPv6 /48) or `drop` |
//! | `OTELWIRE_PANIC_HOOK` | `true` with [`init`], `false` with [`Builder::build`] | turn a panic into an ERROR log record, flushed before the previous hook runs ([Panics](#panics)) |
//!
//! Unless `RUST_LOG` names them, the transport crates (`h2`, `hyper`,
//! `tonic`, `tower`, `reqwest`, `rustls`) are limited to `warn` and the
//! OpenTelemetry SDK's own diagnostics are off; their events never become
//! log records in any case. Likewise [`audit`] and security events
//! (`otelwire::audit`, `otelwire::security`) stay at `info` whatever the
//! general level, so `RUST_LOG=warn` keeps the audit trail whole.
//!
//! # Two filters
//!
//! `RUST_LOG` decides which *events* are logged (local lines, log records,
//! files); `OTELWIRE_TRACES_FILTER` decides which *spans* are recorded and
//! exported. Left unset, the traces filter is `RUST_LOG` with every level
//! raised to at least `info` (and `info` for targets `RUST_LOG` does not
//! name), so a quiet production log level does not remove the traces:
//!
//! | `RUST_LOG` | `OTELWIRE_TRACES_FILTER` | Events logged | Spans recorded |
//! |---|---|---|---|
//! | `info` (default) | unset | INFO and above | INFO and above |
//! | `warn` | unset | WARN and above | INFO and above |
//! | `warn,orders_api=debug` | unset | WARN, and DEBUG for `orders_api` | INFO, and DEBUG for `orders_api` |
//! | `debug` | unset | DEBUG and above | DEBUG and above |
//! | `info` | `warn` | INFO and above | WARN and above |
//! | `info,otelwire_sqlx=off` | unset | INFO and above, none of `otelwire_sqlx` | INFO and above, no query spans (a target turned `off` stays off) |
//!
//! An event inside a span that only the traces filter records still carries
//! that span's `trace_id` and `span_id`, locally and on its log record;
//! ERROR events still mark their span as failed. Layers added with
//! [`Builder::with_layer`] and outputs see every recorded span and every
//! logged event. A traces filter derived from `RUST_LOG` follows
//! [`Telemetry::set_filter`]; one that was given stays as given.
//!
//! # Changing the log level live
//!
//! [`Telemetry::set_filter`] puts a new filter in force for every output at
//! once (same syntax and validation as `RUST_LOG`), and [`Telemetry::filter`]
//! tells the one in force; [`Telemetry::filter_handle`] is a cloneable handle
//! for an admin endpoint (`otelwire_axum::admin_router` serves
//! `GET`/`PUT /admin/log-level` behind a bearer token). The event path takes
//! no lock for it: the filters are swapped whole and read with an atomic
//! load, and `tracing`'s per-callsite cache is rebuilt on each change.
//!
//! # Panics
//!
//! [`init`] installs a panic hook (turn it off with
//! [`Builder::panic_hook`]`(false)` or `OTELWIRE_PANIC_HOOK=false`;
//! [`Builder::build`] installs it only when asked, since the hook is
//! process-wide). A panic becomes one ERROR log record, target
//! `otelwire::panic`, emitted inside the panicking thread's current span (so
//! it carries the trace id), with `exception.type` (`panic`),
//! `exception.message`, `code.file.path`, `code.line.number`,
//! `code.column.number`, `thread.name`, and `exception.stacktrace` when
//! `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asks for a backtrace. The hook
//! then exports the queued log records and flushes the other outputs,
//! waiting at most 2 s (or the shutdown timeout, if shorter), and calls the
//! hook that was in place before (the standard one prints the panic).
//!
//! # Spawned tasks
//!
//! A span is entered on the thread that polls it: `tokio::spawn` starts the
//! task outside the caller's span, so its events and spans lose the trace.
//! Carry the span into the task with
//! [`Instrument::in_current_span`](tracing::Instrument::in_current_span) (or
//! [`Instrument::instrument`](tracing::Instrument::instrument) with a span of
//! its own, whose parent is the current one):
//!
//! ```
//! use tracing::Instrument;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let telemetry = otelwire::builder().sdk_disabled(true).build().unwrap();
//! # let _default = tracing::dispatcher::set_default(telemetry.dispatch());
//! let request = tracing::info_span!("POST /orders");
//! let _entered = request.enter();
//!
//! // Same trace: the task runs inside the request's span...
//! let task = tokio::spawn(
//!     async { tracing::info!("order confirmation sent") }.in_current_span(),
//! );
//! // ...or inside a child span of its own.
//! let child = tokio::spawn(
//!     async { tracing::info!("stock reserved") }.instrument(tracing::info_span!("reserve")),
//! );
//! drop(_entered);
//! task.await.unwrap();
//! child.await.unwrap();
//! # }
//! ```
//!
//! The same holds for `std::thread::spawn` (enter a clone of the span in the
//! thread: `let span = tracing::Span::current(); move || { let _e = span.enter(); … }`)
//! and for work handed to a channel.
//!
//! # Integrations under `build()`
//!
//! otelwire-axum, -reqwest, -sqlx and -tonic take their meter (and
//! otelwire-sqlx its tracer) from the pipeline they are made under,
//! through [`current`]: after [`init`], the global one; with
//! [`Builder::build`] (tests, several pipelines in one process), the one
//! whose dispatcher is the default when the layer or pool is made
//! (`tracing::dispatcher::set_default(telemetry.dispatch())`). Made under
//! no otelwire pipeline at all, they say so once.
//!
//! # Redaction
//!
//! Fields named like secrets (see [`DEFAULT_SECRET_NAMES`], plus
//! `OTELWIRE_REDACT_FIELDS` and [`Builder::redact_field`]) are replaced by
//! `[REDACTED]` before the local output, the log records and the span
//! attributes see them; resource attributes named so (from
//! `OTEL_RESOURCE_ATTRIBUTES` or [`Builder::resource_attribute`]) are
//! exported as `[REDACTED]` too. Outputs added with [`Builder::with_output`] (such as
//! the `otelwire-files` files) see redacted values too; layers added with
//! [`Builder::with_layer`] see the original values: wrap them in
//! [`RedactLayer`] to redact them too.
//!
//! # Audit and security events
//!
//! [`audit::Auditor`] emits typed, masked audit and security events (a
//! login attempt, a rejected token, a denied permission, a configuration
//! change, …) as log records with an event name and an `event.category`,
//! apart from application logs.
//!
//! # Versions
//!
//! otelwire re-exports the OpenTelemetry crates it was built with
//! ([`opentelemetry`], [`opentelemetry_sdk`], [`opentelemetry_otlp`],
//! [`opentelemetry_semantic_conventions`], [`tracing_opentelemetry`], …) so
//! that a service never has to match their versions by hand.

#![warn(missing_docs)]

pub mod audit;
mod config;
pub mod current;
mod endpoint;
mod error;
mod filter;
mod format;
mod health;
pub mod http;
mod layers;
mod limits;
mod local;
mod metrics;
mod panic;
mod pipeline;
pub mod prometheus;
pub mod propagation;
mod redact;
mod resource;
mod telemetry;
mod timestamp;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_sdk::propagation::BaggagePropagator;
use propagation::TraceContextPropagator;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};

pub use config::{
    Compression, DEFAULT_MAX_QUEUE_SIZE, DEFAULT_VALUE_LENGTH_LIMIT, ExporterKind, LogFormat,
    MAX_QUEUE_SIZE_LIMIT, MAX_RESOURCE_ATTRIBUTES, MAX_RESOURCE_ATTRIBUTES_BYTES,
    MAX_VALUE_LENGTH_LIMIT, Propagator, Protocol, Sampler, Signal,
};
pub use error::InitError;
pub use filter::{FilterError, FilterHandle};
pub use format::{MAX_LINE_BYTES, SHORT_VALUE_CHARS};
pub use health::{Component, ComponentHealth, Health, HealthStatus, SignalHealth};
pub use layers::{BaseSubscriber, BoxedLayer, FilterLayer};
pub use local::LineFormatter;
pub use redact::{DEFAULT_SECRET_NAMES, REDACTED, RedactLayer, Redactor};
pub use telemetry::{HealthSource, ShutdownReport, SignalReport, Telemetry};

pub use opentelemetry;
pub use opentelemetry_appender_tracing;
pub use opentelemetry_http;
pub use opentelemetry_otlp;
pub use opentelemetry_sdk;
pub use opentelemetry_semantic_conventions;
pub use tracing;
pub use tracing_opentelemetry;
pub use tracing_subscriber;

use config::{CodeSettings, EnvSource, Resolved};

/// The examples of the logging guide, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/logging-guide.md")]
pub struct LoggingGuide;
use health::Pipeline;
use local::LocalLayer;

/// The span field that holds a request's id (`x-request-id`); the HTTP
/// integrations record it and every log record inside the request carries it.
pub const REQUEST_ID_FIELD: &str = "request.id";

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Sets up traces, logs, metrics and local output from the environment and
/// installs them for the whole process. Call it once, early in `main`; keep
/// the returned guard and call [`Telemetry::shutdown`] before exiting.
///
/// Equivalent to `otelwire::builder().init()`.
pub fn init() -> Result<Telemetry, InitError> {
    builder().init()
}

/// A [`Builder`] to set anything in code; everything not set is read from
/// the environment.
pub fn builder() -> Builder {
    Builder::default()
}

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
    outputs: Vec<MakeOutput>,
}

type MakeOutput = Box<dyn FnOnce(&OutputContext<'_>) -> Result<Output, InitError> + Send>;

/// What an output added with [`Builder::with_output`] is built from: the
/// builder's configuration source and redactor.
#[derive(Debug)]
pub struct OutputContext<'a> {
    env: &'a EnvSource,
    redactor: &'a Redactor,
}

impl OutputContext<'_> {
    /// A configuration variable, from the process environment or from
    /// [`Builder::env_source`]; empty values count as unset.
    pub fn env(&self, name: &str) -> Option<String> {
        self.env.get(name)
    }

    /// The redactor in force (outputs are already redacted: this is for
    /// outputs that also want to know which names are secret).
    pub fn redactor(&self) -> &Redactor {
        self.redactor
    }
}

/// An output made by an add-on crate (such as `otelwire-files`) for
/// [`Builder::with_output`]: a layer that sees events after redaction, and
/// components whose health shows in [`Telemetry::health`] and which
/// [`Telemetry::shutdown`] flushes.
#[derive(Default)]
pub struct Output {
    layer: Option<BoxedLayer>,
    components: Vec<Arc<dyn Component>>,
    description: Option<String>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("layer", &self.layer.is_some())
            .field("components", &self.components.len())
            .field("description", &self.description)
            .finish()
    }
}

impl Output {
    /// An output that adds nothing (for an add-on that is switched off).
    pub fn none() -> Self {
        Output::default()
    }

    /// An output writing through `layer`.
    pub fn layer<L>(layer: L) -> Self
    where
        L: Layer<BaseSubscriber> + Send + Sync + 'static,
    {
        Output {
            layer: Some(Box::new(layer)),
            components: Vec::new(),
            description: None,
        }
    }

    /// What the startup line says of this output (its `outputs` field),
    /// such as `files in logs: app.jsonl, audit.jsonl`, or why it writes
    /// nothing (`no files: OTELWIRE_LOG_DIR is not set`).
    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds a component reported by [`Telemetry::health`] and flushed at
    /// shutdown.
    pub fn with_component(mut self, component: Arc<dyn Component>) -> Self {
        self.components.push(component);
        self
    }
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
    /// [`prometheus`] for the endpoint, the names and labels.
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
    /// else 9464); 0 picks a free one ([`prometheus::Exposition::local_addr`]
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

    /// Which traces are recorded.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.code.sampler = Some(sampler);
        self
    }

    /// The propagators installed globally by [`init`] (empty: none).
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
    /// default [`init`](Self::init) installs it and [`build`](Self::build),
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
    /// Default [`DEFAULT_MAX_QUEUE_SIZE`], or `OTEL_BSP_MAX_QUEUE_SIZE` /
    /// `OTEL_BLRP_MAX_QUEUE_SIZE`. More than [`MAX_QUEUE_SIZE_LIMIT`] is an
    /// init error.
    pub fn max_queue_size(mut self, signal: Signal, size: usize) -> Self {
        if let Some(i) = batch_index(signal) {
            self.code.max_queue_size[i] = Some(size.max(1));
        }
        self
    }

    /// Items per export request, for traces or logs (more than
    /// [`MAX_QUEUE_SIZE_LIMIT`] is an init error).
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
    /// are cut (default [`DEFAULT_VALUE_LENGTH_LIMIT`], or
    /// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`, `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`
    /// and `OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT`). Set in code, it
    /// applies to both signals and wins over the environment; 0 or more
    /// than [`MAX_VALUE_LENGTH_LIMIT`] is an init error.
    pub fn attribute_value_length_limit(mut self, limit: usize) -> Self {
        self.code.value_length_limit = [Some(limit); 2];
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
    /// [`init`](Self::init) or [`build`](Self::build).
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
        let providers = pipeline::build(&cfg, &resource, &pipeline, &redactor, self.custom)?;

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
                    .value_length_limit(cfg.value_length_limit[1]),
                writer,
            )
        });
        let cx = OutputContext {
            env: &self.env,
            redactor: &redactor,
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
        let telemetry = builder()
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
