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
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `…_{SIGNAL}_HEADERS` | — | `k=v` pairs sent with every export (never logged), percent-decoded strictly as above; [`Builder::header`], [`Builder::signal_header`] |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `…_{SIGNAL}_TIMEOUT` | `10000` | export timeout, milliseconds; [`Builder::timeout`], [`Builder::signal_timeout`] |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION`, `…_{SIGNAL}_COMPRESSION` | `none` | `gzip` or `none`; [`Builder::compression`], [`Builder::signal_compression`] |
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_{SIGNAL}_CERTIFICATE` | system roots | PEM file of the CA to trust for `https` endpoints (with an `http://` endpoint it would never be used, so that is an [`InitError`] naming the setting, the signal and the endpoint); [`Builder::certificate`], [`Builder::signal_certificate`] |
//! | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY`, `…_{SIGNAL}_CLIENT_CERTIFICATE`, `…_{SIGNAL}_CLIENT_KEY` | none | PEM files of a client certificate and its private key (mutual TLS), both or neither, read at init and presented to `https` endpoints (gRPC and HTTP; with an `http://` endpoint it would never be presented, so that is an [`InitError`]); [`Builder::client_certificate`] wins |
//! | `OTEL_EXPORTER_OTLP_INSECURE`, `…_{SIGNAL}_INSECURE` | `false` | `true` or `false`, validated; it only concerns an endpoint without a scheme, which otelwire refuses, so the scheme (`http://` or `https://`) decides |
//! | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | `cumulative` | `cumulative`, `delta` (counters, asynchronous counters and histograms delta; up-down counters cumulative) or `lowmemory` (synchronous counters and histograms delta), any case ([`Builder::metrics_temporality`]) |
//! | `OTEL_TRACES_SAMPLER` | `parentbased_always_on` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` |
//! | `OTEL_TRACES_SAMPLER_ARG` | `1.0` | the ratio, in `[0, 1]` |
//! | `OTEL_PROPAGATORS` | `tracecontext,baggage` | a list of `tracecontext`, `baggage`, `b3` (Zipkin B3, one header), `b3multi` (B3, `X-B3-*` headers), `jaeger` (`uber-trace-id`, `uberctx-*`), or `none`; extraction takes the parent from the first format in the list that carries one, injection writes every format ([`propagation::CompositePropagator`]); `xray` and `ottrace` are refused by name |
//! | `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BLRP_MAX_QUEUE_SIZE` | `8192` | spans / log records waiting for export before new ones are dropped (the specification's default is 2048; see [`DEFAULT_MAX_QUEUE_SIZE`] for why otelwire holds more); at most [`MAX_QUEUE_SIZE_LIMIT`] (262144) |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE` | `512` | items per export request, at most the queue size |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BLRP_SCHEDULE_DELAY` | `5000`, `1000` | milliseconds between exports |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | `60000` | milliseconds between metric exports |
//! | `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` | `32768` | longest string attribute value kept, in characters (the specification's default is unlimited; otelwire bounds it so that one huge value can neither fill memory nor make the collector refuse a batch); log bodies are cut too, and so are the values of local lines (the log records' limit), which are also bounded by [`MAX_LINE_BYTES`]; at most [`MAX_VALUE_LENGTH_LIMIT`] (1048576) |
//! | `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, `OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT` | the above | the same, for one signal |
//! | `OTEL_ATTRIBUTE_COUNT_LIMIT` | `128` | most attributes per span, span event, link and log record, where no specific limit is set; more are dropped (spans count them in `dropped_attributes_count`) |
//! | `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, `OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`, `OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`, `OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT` | the above | the same, for one kind ([`Builder::span_limits`], [`Builder::log_attribute_count_limit`]) |
//! | `OTEL_SPAN_EVENT_COUNT_LIMIT`, `OTEL_SPAN_LINK_COUNT_LIMIT` | `128` | most events, links per span |
//! | `RUST_LOG` | `info` | which events are logged, to every output ([`EnvFilter`](tracing_subscriber::EnvFilter) syntax; spaces around a directive and empty directives, as in `info, app=debug,`, are ignored); changed live with [`Telemetry::set_filter`] |
//! | `OTELWIRE_TRACES_FILTER` | `RUST_LOG`'s directives, each at least `info` | which spans are recorded and exported, same syntax: `RUST_LOG=warn` still records INFO spans (every request's server span), `RUST_LOG=debug` records DEBUG spans too; see [Two filters](#two-filters) |
//! | `OTELWIRE_LOG_FORMAT` | `pretty` on a terminal, else `json` | local output: `pretty`, `compact`, `json` or `none` |
//! | `OTELWIRE_ENVIRONMENT` | [`Builder::default_environment`] | `deployment.environment.name` ([`Builder::environment`] wins over it; a default does not) |
//! | `OTELWIRE_REDACT_FIELDS` | — | more secret field names, comma-separated |
//! | `OTELWIRE_BAGGAGE_ATTRIBUTES` | — | W3C baggage members copied, under their own names, onto the spans, log records and local lines of a request that carries them: comma-separated names ([`baggage`], [`Builder::baggage_attributes`] wins over it); never all members, since baggage is set by whoever sent the request |
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
//! # Every OpenTelemetry SDK variable
//!
//! Every variable of the OpenTelemetry SDK environment specification (and
//! of the OTLP exporter specification) for traces, logs, metrics and OTLP,
//! with what otelwire does with it: `supported` (read, validated and
//! honoured, as in the table above; set in code, the builder's value wins,
//! also over the copy opentelemetry-otlp reads from the process
//! environment itself), or `refused` (set, it is an [`InitError`] that
//! names it and says otelwire does not support it, rather than a setting
//! that silently does nothing). A test checks this table against the
//! names the configuration parser knows.
//!
//! | Variable | Status | Note |
//! |---|---|---|
//! | `OTEL_SDK_DISABLED` | supported | |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | supported | |
//! | `OTEL_PROPAGATORS` | supported | `xray`, `ottrace` refused by name |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | supported | |
//! | `OTEL_TRACES_EXPORTER`, `OTEL_LOGS_EXPORTER`, `OTEL_METRICS_EXPORTER` | supported | `otlp`, `console`, `none`, `prometheus` (metrics) |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | supported | |
//! | `OTEL_BLRP_SCHEDULE_DELAY`, `OTEL_BLRP_MAX_QUEUE_SIZE`, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE` | supported | |
//! | `OTEL_BSP_EXPORT_TIMEOUT`, `OTEL_BLRP_EXPORT_TIMEOUT`, `OTEL_METRIC_EXPORT_TIMEOUT` | refused | opentelemetry_sdk 0.33's batch processors and periodic reader have no export deadline; `OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT` bounds each request |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | supported | |
//! | `OTEL_METRICS_EXEMPLAR_FILTER` | refused | no exemplars |
//! | `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`, `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, `OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT` | supported | |
//! | `OTEL_ATTRIBUTE_COUNT_LIMIT`, `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, `OTEL_SPAN_EVENT_COUNT_LIMIT`, `OTEL_SPAN_LINK_COUNT_LIMIT`, `OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`, `OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`, `OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT` | supported | |
//! | `OTEL_EXPORTER_PROMETHEUS_HOST`, `OTEL_EXPORTER_PROMETHEUS_PORT` | supported | |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` | supported | |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_LOGS_PROTOCOL`, `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` | supported | |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, `OTEL_EXPORTER_OTLP_LOGS_HEADERS`, `OTEL_EXPORTER_OTLP_METRICS_HEADERS` | supported | |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_EXPORTER_OTLP_LOGS_TIMEOUT`, `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT` | supported | |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION`, `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, `OTEL_EXPORTER_OTLP_LOGS_COMPRESSION`, `OTEL_EXPORTER_OTLP_METRICS_COMPRESSION` | supported | `gzip` or `none`; [`Compression::None`] in code against `gzip` in the process environment is an [`InitError`] (opentelemetry-otlp would gzip anyway) |
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE`, `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, `OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE`, `OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE` | supported | the CA for `https` endpoints; with `http://`, an init error |
//! | `OTEL_EXPORTER_OTLP_INSECURE`, `OTEL_EXPORTER_OTLP_TRACES_INSECURE`, `OTEL_EXPORTER_OTLP_LOGS_INSECURE`, `OTEL_EXPORTER_OTLP_METRICS_INSECURE` | supported | validated; the endpoint's scheme decides |
//! | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE` | supported | mutual TLS, gRPC and HTTP: a PEM certificate (chain) read at init, presented over `https`; needs the key; [`Builder::client_certificate`] |
//! | `OTEL_EXPORTER_OTLP_CLIENT_KEY`, `OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY`, `OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY`, `OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY` | supported | the certificate's unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1), read at init; needs the certificate; its contents never appear in an error |
//! | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | supported | |
//! | `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION` | refused | explicit bucket histograms only |
//! | `OTEL_LOG_LEVEL` | refused | the SDK's diagnostics follow `RUST_LOG` |
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
//! # Baggage on spans and logs
//!
//! `OTELWIRE_BAGGAGE_ATTRIBUTES=tenant.id` (or
//! [`Builder::baggage_attributes`]) copies the named W3C baggage members
//! of a request onto its spans, log records and local lines, never the
//! others; see [`baggage`].
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
pub mod baggage;
mod builder;
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
mod output;
mod panic;
mod pipeline;
pub mod prometheus;
pub mod propagation;
mod redact;
mod resource;
mod sdk_env;
mod telemetry;
mod timestamp;

pub use builder::Builder;
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
pub use output::{Output, OutputContext};
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

/// The examples of the logging guide, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/logging-guide.md")]
pub struct LoggingGuide;

/// The span field that holds a request's id (`x-request-id`); the HTTP
/// integrations record it and every log record inside the request carries it.
pub const REQUEST_ID_FIELD: &str = "request.id";

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
