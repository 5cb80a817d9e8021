//! The export side: exporters per signal, the processors in front of them,
//! and the accounting that makes `exported + dropped == emitted` hold.
//!
//! Every span and log record passes a *gate* on the emitting thread. The gate
//! counts it, drops it (and counts the drop) when the signal already has
//! `max_queue_size` items in flight, redacts span attributes, and hands it to
//! the SDK's batch processor, whose own queue is made larger than the gate's
//! limit so that the SDK never drops anything silently. The exporter is
//! wrapped so that every batch is counted as exported or failed when its
//! export ends (or is cancelled).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::Severity;
use opentelemetry::trace::{SpanContext, TraceFlags};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchLogProcessor, LogBatch, LogExporter, LogProcessor, SdkLogRecord, SdkLogger,
    SdkLoggerProvider,
};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};

use crate::baggage::BaggageAttributes;
use crate::config::{
    ClientIdentity, Compression, ExporterKind, OtlpConfig, Protocol, Resolved, Sampler, Signal,
};
use crate::error::InitError;
use crate::health::Pipeline;
use crate::limits;
use crate::propagation::random_ids::{self, RANDOM_FLAG};
use crate::redact::Redactor;
use crate::sdk_env;

/// Room above the gate's limit in the SDK's queue, for items admitted by
/// threads racing past the gate at the same moment.
const QUEUE_SLACK: usize = 4096;

/// The providers that were built, and the runtime the gRPC transport runs on.
#[derive(Debug, Default)]
pub(crate) struct Providers {
    pub(crate) tracer: Option<SdkTracerProvider>,
    pub(crate) logger: Option<SdkLoggerProvider>,
    pub(crate) meter: Option<SdkMeterProvider>,
    pub(crate) runtime: Option<GrpcRuntime>,
    /// The metrics for Prometheus to scrape, when served.
    pub(crate) exposition: Option<crate::prometheus::Exposition>,
    /// The scrape endpoint's own listener, when otelwire listens.
    pub(crate) prometheus: Option<crate::prometheus::Server>,
}

/// otelwire's private runtime for the gRPC transport. Dropping a tokio
/// runtime blocks, which panics inside an async context ("Cannot drop a
/// runtime in a context where blocking is not allowed"); this one shuts
/// down in the background instead, so it may be dropped anywhere: on an
/// init error inside `#[tokio::main]`, or with the guard.
#[derive(Debug)]
pub(crate) struct GrpcRuntime(Option<tokio::runtime::Runtime>);

impl GrpcRuntime {
    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for GrpcRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Exporters given in code, one per signal at most.
#[derive(Default)]
pub(crate) struct CustomExporters {
    pub(crate) span: Option<Box<dyn DynSpanExporter>>,
    pub(crate) log: Option<Box<dyn DynLogExporter>>,
    pub(crate) metric: Option<Box<dyn DynMetricExporter>>,
}

/// Builds the providers on a thread of its own, outside any async context
/// of the caller: the HTTP transport's blocking client and the gRPC
/// runtime may neither be built nor dropped inside one, and an error
/// half-way must come back as the [`InitError`], never as a panic, whatever
/// runtime (current-thread, multi-thread, none) `init` is called from.
pub(crate) fn build(
    cfg: &Resolved,
    resource: &Resource,
    pipeline: &Arc<Pipeline>,
    redactor: &Redactor,
    custom: CustomExporters,
    baggage: &BaggageAttributes,
) -> Result<Providers, InitError> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("otelwire-init".into())
            .spawn_scoped(scope, || {
                build_here(cfg, resource, pipeline, redactor, custom, baggage)
            })
            .map_err(InitError::Runtime)?
            .join()
            .unwrap_or_else(|_| {
                Err(InitError::Runtime(std::io::Error::other(
                    "building the exporters panicked",
                )))
            })
    })
}

fn build_here(
    cfg: &Resolved,
    resource: &Resource,
    pipeline: &Arc<Pipeline>,
    redactor: &Redactor,
    mut custom: CustomExporters,
    baggage: &BaggageAttributes,
) -> Result<Providers, InitError> {
    let mut out = Providers::default();
    if cfg.sdk_disabled {
        return Ok(out);
    }
    let needs_grpc = Signal::ALL.iter().any(|&s| {
        cfg.effective_exporter(s) == ExporterKind::Otlp
            && cfg.otlp[s.index()].protocol == Protocol::Grpc
    });
    if needs_grpc {
        // tonic's channel needs a tokio reactor for as long as it lives; the
        // host may have none (or several), so otelwire brings its own.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otelwire-grpc")
            .enable_all()
            .build()
            .map_err(InitError::Runtime)?;
        out.runtime = Some(GrpcRuntime(Some(rt)));
    }
    let rt = out.runtime.as_ref().and_then(GrpcRuntime::handle);

    // Traces: the provider exists even with exporter `none`, so local lines
    // still carry trace ids.
    {
        let mut b = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler(cfg.sampler))
            .with_id_generator(crate::propagation::RandomIds::default())
            .with_span_limits(cfg.span_limits);
        let batch = cfg.batch[0];
        let exporter = match cfg.effective_exporter(Signal::Traces) {
            ExporterKind::None | ExporterKind::Prometheus => None,
            ExporterKind::Console => Some(SpanSink::Console(
                opentelemetry_stdout::SpanExporter::default(),
            )),
            ExporterKind::Custom => custom.span.take().map(SpanSink::Custom),
            ExporterKind::Otlp => Some(SpanSink::Otlp(Box::new(span_exporter(
                &cfg.otlp[0],
                rt.as_ref(),
            )?))),
        };
        if let Some(exporter) = exporter {
            let processor =
                BatchSpanProcessor::builder(Monitored::new(exporter, pipeline, Signal::Traces))
                    .with_batch_config(
                        opentelemetry_sdk::trace::BatchConfigBuilder::default()
                            .with_max_queue_size(batch.max_queue_size + QUEUE_SLACK)
                            .with_max_export_batch_size(batch.max_export_batch_size)
                            .with_scheduled_delay(batch.scheduled_delay)
                            .build(),
                    )
                    .build();
            b = b.with_span_processor(SpanGate {
                inner: processor,
                pipeline: pipeline.clone(),
                redactor: redactor.clone(),
                max_in_flight: batch.max_queue_size as u64,
                value_limit: cfg.value_length_limit[0],
                baggage: baggage.clone(),
            });
        }
        out.tracer = Some(b.build());
    }

    // Logs.
    let log_exporter = match cfg.effective_exporter(Signal::Logs) {
        ExporterKind::None | ExporterKind::Prometheus => None,
        ExporterKind::Console => Some(LogSink::Console(
            opentelemetry_stdout::LogExporter::default(),
        )),
        ExporterKind::Custom => custom.log.take().map(LogSink::Custom),
        ExporterKind::Otlp => Some(LogSink::Otlp(Box::new(log_exporter(
            &cfg.otlp[1],
            rt.as_ref(),
        )?))),
    };
    if let Some(exporter) = log_exporter {
        let batch = cfg.batch[1];
        let processor =
            BatchLogProcessor::builder(Monitored::new(exporter, pipeline, Signal::Logs))
                .with_batch_config(
                    opentelemetry_sdk::logs::BatchConfigBuilder::default()
                        .with_max_queue_size(batch.max_queue_size + QUEUE_SLACK)
                        .with_max_export_batch_size(batch.max_export_batch_size)
                        .with_scheduled_delay(batch.scheduled_delay)
                        .build(),
                )
                .build();
        out.logger = Some(
            SdkLoggerProvider::builder()
                .with_resource(resource.clone())
                .with_log_processor(LogGate {
                    inner: processor,
                    pipeline: pipeline.clone(),
                    max_in_flight: batch.max_queue_size as u64,
                    value_limit: cfg.value_length_limit[1],
                    count_limit: cfg.log_attribute_count_limit,
                    baggage: baggage.clone(),
                    template: {
                        use opentelemetry::logs::LoggerProvider as _;
                        SdkLoggerProvider::builder().build().logger("otelwire")
                    },
                })
                .build(),
        );
    }

    // Metrics.
    let metric_exporter = match cfg.effective_exporter(Signal::Metrics) {
        ExporterKind::None | ExporterKind::Prometheus => None,
        ExporterKind::Console => Some(MetricSink::Console(
            opentelemetry_stdout::MetricExporter::default(),
        )),
        ExporterKind::Custom => custom.metric.take().map(MetricSink::Custom),
        ExporterKind::Otlp => Some(MetricSink::Otlp(Box::new(metric_exporter(
            &cfg.otlp[2],
            cfg.temporality,
            rt.as_ref(),
        )?))),
    };
    // Pushed by a periodic reader, served for scraping, or both (each
    // reader aggregates on its own).
    let scrape = cfg.effective_prometheus();
    if metric_exporter.is_none() && scrape.is_none() {
        return Ok(out);
    }
    let mut b = SdkMeterProvider::builder().with_resource(resource.clone());
    // Without a push exporter, the scrapes are what health counts as exported.
    let only = metric_exporter.is_none().then(|| pipeline.clone());
    let scraping = scrape.map(|settings| (settings, crate::prometheus::reader(only)));
    if let Some(exporter) = metric_exporter {
        let reader = PeriodicReader::builder(Monitored::new(exporter, pipeline, Signal::Metrics))
            .with_interval(cfg.metric_export_interval)
            .build();
        b = b.with_reader(reader);
    }
    let served = match scraping {
        Some((settings, (reader, exposition))) => {
            b = b.with_reader(reader);
            Some((settings, exposition))
        }
        None => None,
    };
    out.meter = Some(b.build());
    if let Some((settings, exposition)) = served {
        // Listening last: the reader is registered before the first scrape.
        if settings.listen {
            out.prometheus = Some(crate::prometheus::Server::start(settings, &exposition)?);
        }
        out.exposition = Some(exposition);
    }
    Ok(out)
}

fn sampler(s: Sampler) -> opentelemetry_sdk::trace::Sampler {
    use opentelemetry_sdk::trace::Sampler as S;
    match s {
        Sampler::AlwaysOn => S::AlwaysOn,
        Sampler::AlwaysOff => S::AlwaysOff,
        Sampler::TraceIdRatio(r) => S::TraceIdRatioBased(r),
        Sampler::ParentBasedAlwaysOn => S::ParentBased(Box::new(S::AlwaysOn)),
        Sampler::ParentBasedAlwaysOff => S::ParentBased(Box::new(S::AlwaysOff)),
        Sampler::ParentBasedTraceIdRatio(r) => S::ParentBased(Box::new(S::TraceIdRatioBased(r))),
    }
}

// ---------------------------------------------------------------------------
// OTLP exporters

/// Everything both transports need, read once.
struct Transport<'a> {
    cfg: &'a OtlpConfig,
    signal: Signal,
    certificate: Option<Vec<u8>>,
    /// The client certificate chain and private key (mutual TLS), PEM.
    identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Headers opentelemetry-otlp adds from the process environment that
    /// otelwire's resolved configuration does not have (when the
    /// configuration came from [`Builder::env_source`](crate::Builder::env_source)):
    /// removed from every request.
    stray_headers: Vec<http::HeaderName>,
}

impl<'a> Transport<'a> {
    fn new(cfg: &'a OtlpConfig, signal: Signal) -> Result<Self, InitError> {
        let certificate = match &cfg.certificate {
            None => None,
            Some((var, path)) => {
                let pem = std::fs::read(path).map_err(|e| InitError::Certificate {
                    var: var.clone(),
                    path: path.clone(),
                    reason: format!("cannot read it: {e}"),
                })?;
                if let Err(reason) = check_pem(&pem, CERTIFICATE_LABELS, CERTIFICATE_WANTED) {
                    return Err(InitError::Certificate {
                        var: var.clone(),
                        path: path.clone(),
                        reason,
                    });
                }
                Some(pem)
            }
        };
        let identity = cfg
            .client_identity
            .as_ref()
            .map(read_identity)
            .transpose()?;
        sdk_env::check_compression(cfg, signal)?;
        let stray_headers = sdk_env::header_names(signal)
            .into_iter()
            .filter(|n| {
                !cfg.headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case(n.as_str()))
            })
            .collect();
        Ok(Transport {
            cfg,
            signal,
            certificate,
            identity,
            stray_headers,
        })
    }

    fn build_error(&self, e: impl std::error::Error + Send + Sync + 'static) -> InitError {
        // Likewise a client certificate or key the TLS stack refuses (a key
        // that does not match the certificate, say).
        if let Some(id) = &self.cfg.client_identity {
            let text = error_chain(&e);
            let lower = text.to_ascii_lowercase();
            if ["key", "identity", "client cert", "client auth"]
                .iter()
                .any(|w| lower.contains(w))
            {
                return identity_error(id, format!("not a usable client certificate: {text}"));
            }
        }
        // A certificate that looks like PEM but that the TLS stack refuses
        // is still the certificate variable's fault: say so.
        if let Some((var, path)) = &self.cfg.certificate {
            let text = error_chain(&e);
            if text.to_ascii_lowercase().contains("certificate") {
                return InitError::Certificate {
                    var: var.clone(),
                    path: path.clone(),
                    reason: format!("not a usable CA certificate: {text}"),
                };
            }
        }
        InitError::Exporter {
            signal: self.signal,
            endpoint: self.cfg.endpoint.clone(),
            source: Box::new(e),
        }
    }

    fn header_error(&self, name: &str) -> InitError {
        InitError::InvalidEnv {
            var: format!(
                "OTEL_EXPORTER_OTLP_HEADERS (or OTEL_EXPORTER_OTLP_{}_HEADERS)",
                self.signal.env_infix()
            ),
            value: "<hidden>".into(),
            expected: format!("header {name:?} is not a valid HTTP header name and value"),
        }
    }

    fn header_map(&self) -> Result<http::HeaderMap, InitError> {
        let mut map = http::HeaderMap::new();
        for (k, v) in &self.cfg.headers {
            let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| self.header_error(k))?;
            let value = http::HeaderValue::from_str(v).map_err(|_| self.header_error(k))?;
            map.insert(name, value);
        }
        Ok(map)
    }

    fn metadata(&self) -> Result<OverrideMetadata, InitError> {
        Ok(OverrideMetadata {
            set: tonic::metadata::MetadataMap::from_headers(self.header_map()?),
            remove: self.stray_headers.clone(),
        })
    }

    fn tls(&self) -> Option<opentelemetry_otlp::tonic_types::transport::ClientTlsConfig> {
        use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
        if !self.cfg.endpoint.starts_with("https://") {
            return None;
        }
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(pem) = &self.certificate {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(
                opentelemetry_otlp::tonic_types::transport::Identity::from_pem(cert, key),
            );
        }
        Some(tls)
    }

    fn http_client(&self) -> Result<reqwest::blocking::Client, InitError> {
        for (k, v) in &self.cfg.headers {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                || http::HeaderValue::from_str(v).is_err()
            {
                return Err(self.header_error(k));
            }
        }
        let timeout = self.cfg.timeout;
        let cert = match &self.certificate {
            None => None,
            Some(pem) => Some(reqwest::Certificate::from_pem(pem).map_err(|e| {
                let (var, path) = self.cfg.certificate.clone().unwrap_or_default();
                InitError::Certificate {
                    var,
                    path,
                    reason: e.to_string(),
                }
            })?),
        };
        let identity = match (&self.identity, &self.cfg.client_identity) {
            (Some((cert, key)), Some(id)) => Some(http_identity(cert, key, id)?),
            _ => None,
        };
        // The blocking client owns a runtime of its own; building (or
        // dropping) it inside an async context panics, so do it on a thread.
        let built = std::thread::Builder::new()
            .name("otelwire-init".into())
            .spawn(move || {
                let mut b = reqwest::blocking::Client::builder().timeout(timeout);
                if let Some(cert) = cert {
                    b = b.add_root_certificate(cert);
                }
                if let Some(identity) = identity {
                    b = b.identity(identity);
                }
                b.build()
            })
            .map_err(InitError::Runtime)?
            .join()
            .map_err(|_| InitError::Runtime(std::io::Error::other("HTTP client setup panicked")))?;
        built.map_err(|e| self.build_error(e))
    }

    fn http_protocol(&self) -> opentelemetry_otlp::Protocol {
        match self.cfg.protocol {
            Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
            _ => opentelemetry_otlp::Protocol::HttpBinary,
        }
    }

    fn compression(&self) -> Option<opentelemetry_otlp::Compression> {
        match self.cfg.compression {
            Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
            Compression::None => None,
        }
    }
}

/// `e` and its sources, one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

const CERTIFICATE_LABELS: &[&str] = &["CERTIFICATE"];
const CERTIFICATE_WANTED: &str =
    "not a PEM file with a certificate (no -----BEGIN CERTIFICATE----- line)";
const KEY_LABELS: &[&str] = &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];
const KEY_WANTED: &str = "not a PEM file with an unencrypted private key (no -----BEGIN \
     PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY line)";

/// An init error about a client certificate or key file: it names the
/// certificate's variable and file, and the key's (never the key itself).
fn identity_error(id: &ClientIdentity, reason: String) -> InitError {
    let (var, path) = id.certificate.clone();
    let (key_var, key_path) = &id.key;
    InitError::Certificate {
        var,
        path,
        reason: format!("with the key of {key_var}={}: {reason}", key_path.display()),
    }
}

/// Reads a client certificate and its key, checking that each is PEM of
/// its kind. The errors name the variable and the file, and say nothing of
/// what the files hold.
fn read_identity(id: &ClientIdentity) -> Result<(Vec<u8>, Vec<u8>), InitError> {
    let read = |(var, path): &(String, std::path::PathBuf), labels, wanted| {
        let pem = std::fs::read(path).map_err(|e| InitError::Certificate {
            var: var.clone(),
            path: path.clone(),
            reason: format!("cannot read it: {e}"),
        })?;
        check_pem(&pem, labels, wanted).map_err(|reason| InitError::Certificate {
            var: var.clone(),
            path: path.clone(),
            reason,
        })?;
        Ok::<_, InitError>(pem)
    };
    let cert = read(&id.certificate, CERTIFICATE_LABELS, CERTIFICATE_WANTED)?;
    let key = read(&id.key, KEY_LABELS, KEY_WANTED)?;
    // Parse the pair now, so that a bad one is an init error whatever the
    // transport (tonic would only find out when it connects).
    http_identity(&cert, &key, id)?;
    Ok((cert, key))
}

/// The HTTP client's identity: the certificate chain, then the key.
fn http_identity(
    cert: &[u8],
    key: &[u8],
    id: &ClientIdentity,
) -> Result<reqwest::Identity, InitError> {
    let mut pem = Vec::with_capacity(cert.len() + key.len() + 1);
    pem.extend_from_slice(cert);
    pem.push(b'\n');
    pem.extend_from_slice(key);
    // reqwest's messages repeat nothing of the input.
    reqwest::Identity::from_pem(&pem).map_err(|e| identity_error(id, error_chain(&e)))
}

/// Checks that a PEM file has at least one block with one of `labels`,
/// every block's body being base64, so that a garbage file is an error
/// naming its variable rather than a transport error later. The errors
/// name labels only, never content.
fn check_pem(pem: &[u8], labels: &[&str], wanted: &str) -> Result<(), String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file (not text)".to_owned())?;
    let mut certificates = 0;
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin + 11..];
        let Some(label_end) = after.find("-----") else {
            return Err("not a PEM file (an unterminated -----BEGIN line)".into());
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else {
            return Err(format!("not a PEM file (no {end_marker} line)"));
        };
        let body: Vec<u8> = body_start[..end]
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let base64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
        if body.is_empty() || !body.len().is_multiple_of(4) || !body.iter().all(base64) {
            return Err(format!("the {label} block is not base64"));
        }
        if labels.contains(&label) {
            certificates += 1;
        }
        rest = &body_start[end + end_marker.len()..];
    }
    if certificates == 0 {
        return Err(wanted.to_owned());
    }
    Ok(())
}

/// The OTLP exporters also read `OTEL_EXPORTER_OTLP_*HEADERS` from the
/// process environment and let them override headers set in code. otelwire
/// has already resolved headers with code first; these wrappers put the
/// resolved values back on every request, so the documented precedence holds.
#[derive(Debug)]
struct HeaderClient {
    inner: reqwest::blocking::Client,
    headers: http::HeaderMap,
    /// Headers the exporter added from the process environment that the
    /// resolved configuration does not have.
    remove: Vec<http::HeaderName>,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HeaderClient {
    async fn send_bytes(
        &self,
        mut request: http::Request<opentelemetry_http::Bytes>,
    ) -> Result<http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        for name in &self.remove {
            request.headers_mut().remove(name);
        }
        for (k, v) in &self.headers {
            request.headers_mut().insert(k.clone(), v.clone());
        }
        self.inner.send_bytes(request).await
    }
}

/// The gRPC counterpart of [`HeaderClient`].
#[derive(Debug, Clone)]
struct OverrideMetadata {
    set: tonic::metadata::MetadataMap,
    remove: Vec<http::HeaderName>,
}

impl tonic::service::Interceptor for OverrideMetadata {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        for name in &self.remove {
            req.metadata_mut().remove(name.as_str());
        }
        for kv in self.set.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv {
                req.metadata_mut().insert(k.clone(), v.clone());
            }
        }
        Ok(req)
    }
}

/// Builds a tonic or HTTP exporter of one signal with the same settings.
macro_rules! otlp_exporter {
    ($builder:expr, $t:expr, $rt:expr) => {{
        let t = $t;
        match t.cfg.protocol {
            Protocol::Grpc => {
                let mut b = $builder
                    .with_tonic()
                    .with_endpoint(t.cfg.endpoint.clone())
                    .with_timeout(t.cfg.timeout)
                    .with_interceptor(t.metadata()?)
                    .with_retry_policy(opentelemetry_otlp::RetryPolicy::recommended());
                if let Some(c) = t.compression() {
                    b = b.with_compression(c);
                }
                if let Some(tls) = t.tls() {
                    b = b.with_tls_config(tls);
                }
                let _enter = $rt.map(|h: &tokio::runtime::Handle| h.enter());
                b.build().map_err(|e| t.build_error(e))?
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let mut b = $builder
                    .with_http()
                    .with_endpoint(t.cfg.endpoint.clone())
                    .with_protocol(t.http_protocol())
                    .with_timeout(t.cfg.timeout)
                    .with_http_client(HeaderClient {
                        inner: t.http_client()?,
                        headers: t.header_map()?,
                        remove: t.stray_headers.clone(),
                    })
                    .with_retry_policy(opentelemetry_otlp::RetryPolicy::recommended());
                if let Some(c) = t.compression() {
                    b = b.with_compression(c);
                }
                b.build().map_err(|e| t.build_error(e))?
            }
        }
    }};
}

fn span_exporter(
    cfg: &OtlpConfig,
    rt: Option<&tokio::runtime::Handle>,
) -> Result<opentelemetry_otlp::SpanExporter, InitError> {
    let t = Transport::new(cfg, Signal::Traces)?;
    Ok(otlp_exporter!(
        opentelemetry_otlp::SpanExporter::builder(),
        &t,
        rt
    ))
}

fn log_exporter(
    cfg: &OtlpConfig,
    rt: Option<&tokio::runtime::Handle>,
) -> Result<opentelemetry_otlp::LogExporter, InitError> {
    let t = Transport::new(cfg, Signal::Logs)?;
    Ok(otlp_exporter!(
        opentelemetry_otlp::LogExporter::builder(),
        &t,
        rt
    ))
}

fn metric_exporter(
    cfg: &OtlpConfig,
    temporality: Temporality,
    rt: Option<&tokio::runtime::Handle>,
) -> Result<opentelemetry_otlp::MetricExporter, InitError> {
    let t = Transport::new(cfg, Signal::Metrics)?;
    Ok(otlp_exporter!(
        opentelemetry_otlp::MetricExporter::builder().with_temporality(temporality),
        &t,
        rt
    ))
}

// ---------------------------------------------------------------------------
// Sinks: one type per signal over the exporters otelwire offers.

#[derive(Debug)]
enum SpanSink {
    Otlp(Box<opentelemetry_otlp::SpanExporter>),
    Console(opentelemetry_stdout::SpanExporter),
    Custom(Box<dyn DynSpanExporter>),
}

impl SpanExporter for SpanSink {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            SpanSink::Otlp(e) => e.export(batch).await,
            SpanSink::Console(e) => e.export(batch).await,
            SpanSink::Custom(e) => e.export_boxed(batch).await,
        }
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            SpanSink::Otlp(e) => e.shutdown_with_timeout(timeout),
            SpanSink::Console(e) => e.shutdown_with_timeout(timeout),
            SpanSink::Custom(e) => e.shutdown_dyn(timeout),
        }
    }
    fn force_flush(&self) -> OTelSdkResult {
        match self {
            SpanSink::Otlp(e) => e.force_flush(),
            SpanSink::Console(e) => e.force_flush(),
            SpanSink::Custom(e) => e.force_flush_dyn(),
        }
    }
    fn set_resource(&mut self, resource: &Resource) {
        match self {
            SpanSink::Otlp(e) => e.set_resource(resource),
            SpanSink::Console(e) => e.set_resource(resource),
            SpanSink::Custom(e) => e.set_resource_dyn(resource),
        }
    }
}

#[derive(Debug)]
enum LogSink {
    Otlp(Box<opentelemetry_otlp::LogExporter>),
    Console(opentelemetry_stdout::LogExporter),
    Custom(Box<dyn DynLogExporter>),
}

impl LogExporter for LogSink {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        match self {
            LogSink::Otlp(e) => e.export(batch).await,
            LogSink::Console(e) => e.export(batch).await,
            LogSink::Custom(e) => e.export_boxed(batch).await,
        }
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            LogSink::Otlp(e) => e.shutdown_with_timeout(timeout),
            LogSink::Console(e) => e.shutdown_with_timeout(timeout),
            LogSink::Custom(e) => e.shutdown_dyn(timeout),
        }
    }
    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        match self {
            LogSink::Otlp(e) => e.event_enabled(level, target, name),
            LogSink::Console(e) => e.event_enabled(level, target, name),
            LogSink::Custom(_) => true,
        }
    }
    fn set_resource(&mut self, resource: &Resource) {
        match self {
            LogSink::Otlp(e) => e.set_resource(resource),
            LogSink::Console(e) => e.set_resource(resource),
            LogSink::Custom(e) => e.set_resource_dyn(resource),
        }
    }
}

#[derive(Debug)]
enum MetricSink {
    Otlp(Box<opentelemetry_otlp::MetricExporter>),
    Console(opentelemetry_stdout::MetricExporter),
    Custom(Box<dyn DynMetricExporter>),
}

impl PushMetricExporter for MetricSink {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        match self {
            MetricSink::Otlp(e) => e.export(metrics).await,
            MetricSink::Console(e) => e.export(metrics).await,
            MetricSink::Custom(e) => e.export_boxed(metrics).await,
        }
    }
    fn force_flush(&self) -> OTelSdkResult {
        match self {
            MetricSink::Otlp(e) => e.force_flush(),
            MetricSink::Console(e) => e.force_flush(),
            MetricSink::Custom(e) => e.force_flush_dyn(),
        }
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            MetricSink::Otlp(e) => e.shutdown_with_timeout(timeout),
            MetricSink::Console(e) => e.shutdown_with_timeout(timeout),
            MetricSink::Custom(e) => e.shutdown_dyn(timeout),
        }
    }
    fn temporality(&self) -> Temporality {
        match self {
            MetricSink::Otlp(e) => e.temporality(),
            MetricSink::Custom(e) => e.temporality_dyn(),
            MetricSink::Console(_) => Temporality::Cumulative,
        }
    }
}

// ---------------------------------------------------------------------------
// Object-safe forms of the exporter traits, for exporters given in code.

type BoxFuture<'a> = std::pin::Pin<Box<dyn Future<Output = OTelSdkResult> + Send + 'a>>;

pub(crate) trait DynSpanExporter: Send + Sync + std::fmt::Debug {
    fn export_boxed(&self, batch: Vec<SpanData>) -> BoxFuture<'_>;
    fn shutdown_dyn(&self, timeout: Duration) -> OTelSdkResult;
    fn force_flush_dyn(&self) -> OTelSdkResult;
    fn set_resource_dyn(&mut self, resource: &Resource);
}

impl<E: SpanExporter + 'static> DynSpanExporter for E {
    fn export_boxed(&self, batch: Vec<SpanData>) -> BoxFuture<'_> {
        Box::pin(self.export(batch))
    }
    fn shutdown_dyn(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }
    fn force_flush_dyn(&self) -> OTelSdkResult {
        self.force_flush()
    }
    fn set_resource_dyn(&mut self, resource: &Resource) {
        self.set_resource(resource)
    }
}

pub(crate) trait DynLogExporter: Send + Sync + std::fmt::Debug {
    fn export_boxed<'a>(&'a self, batch: LogBatch<'a>) -> BoxFuture<'a>;
    fn shutdown_dyn(&self, timeout: Duration) -> OTelSdkResult;
    fn set_resource_dyn(&mut self, resource: &Resource);
}

impl<E: LogExporter + 'static> DynLogExporter for E {
    fn export_boxed<'a>(&'a self, batch: LogBatch<'a>) -> BoxFuture<'a> {
        Box::pin(self.export(batch))
    }
    fn shutdown_dyn(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }
    fn set_resource_dyn(&mut self, resource: &Resource) {
        self.set_resource(resource)
    }
}

pub(crate) trait DynMetricExporter: Send + Sync + std::fmt::Debug {
    fn export_boxed<'a>(&'a self, metrics: &'a ResourceMetrics) -> BoxFuture<'a>;
    fn shutdown_dyn(&self, timeout: Duration) -> OTelSdkResult;
    fn force_flush_dyn(&self) -> OTelSdkResult;
    fn temporality_dyn(&self) -> Temporality;
}

impl<E: PushMetricExporter + std::fmt::Debug> DynMetricExporter for E {
    fn export_boxed<'a>(&'a self, metrics: &'a ResourceMetrics) -> BoxFuture<'a> {
        Box::pin(self.export(metrics))
    }
    fn shutdown_dyn(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }
    fn force_flush_dyn(&self) -> OTelSdkResult {
        self.force_flush()
    }
    fn temporality_dyn(&self) -> Temporality {
        self.temporality()
    }
}

// ---------------------------------------------------------------------------
// Accounting

/// Counts what an exporter delivered and what it failed to deliver.
#[derive(Debug)]
pub(crate) struct Monitored<E> {
    inner: E,
    pipeline: Arc<Pipeline>,
    signal: Signal,
}

impl<E> Monitored<E> {
    pub(crate) fn new(inner: E, pipeline: &Arc<Pipeline>, signal: Signal) -> Self {
        Monitored {
            inner,
            pipeline: pipeline.clone(),
            signal,
        }
    }

    fn watch<F>(
        &self,
        items: u64,
        export: F,
    ) -> impl Future<Output = OTelSdkResult> + Send + use<F, E>
    where
        F: Future<Output = OTelSdkResult> + Send,
    {
        let mut guard = Outcome {
            pipeline: self.pipeline.clone(),
            signal: self.signal,
            items,
            done: false,
        };
        async move {
            let result = export.await;
            guard.done = true;
            match &result {
                Ok(()) => guard.pipeline.record_success(guard.signal, items),
                Err(e) => guard
                    .pipeline
                    .record_failure(guard.signal, items, &e.to_string()),
            }
            result
        }
    }
}

/// Records a cancelled export (its future dropped before the end) as failed.
struct Outcome {
    pipeline: Arc<Pipeline>,
    signal: Signal,
    items: u64,
    done: bool,
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.done {
            self.pipeline.record_failure(
                self.signal,
                self.items,
                "export cancelled before it completed",
            );
        }
    }
}

impl<E: SpanExporter> SpanExporter for Monitored<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let n = batch.len() as u64;
        self.watch(n, self.inner.export(batch))
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

impl<E: LogExporter> LogExporter for Monitored<E> {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        let n = batch.iter().count() as u64;
        self.watch(n, self.inner.export(batch))
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Monitored<E> {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let n = count_points(metrics);
        // Metric points are not queued: each collection is emitted and exported at once.
        self.pipeline
            .stats(Signal::Metrics)
            .queued
            .fetch_add(n, std::sync::atomic::Ordering::AcqRel);
        self.watch(n, self.inner.export(metrics))
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

fn count_points(metrics: &ResourceMetrics) -> u64 {
    fn points<T>(d: &MetricData<T>) -> usize {
        match d {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| match m.data() {
            AggregatedMetrics::F64(d) => points(d),
            AggregatedMetrics::U64(d) => points(d),
            AggregatedMetrics::I64(d) => points(d),
        })
        .sum::<usize>() as u64
}

/// Counts, bounds and redacts spans on the emitting thread.
#[derive(Debug)]
struct SpanGate {
    inner: BatchSpanProcessor,
    pipeline: Arc<Pipeline>,
    redactor: Redactor,
    max_in_flight: u64,
    /// The attribute value length limit.
    value_limit: usize,
    /// The baggage members copied onto every span (`cx` is its parent's
    /// context, which carries the request's baggage).
    baggage: BaggageAttributes,
}

impl SpanProcessor for SpanGate {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        use opentelemetry::trace::Span as _;
        self.baggage.for_each_in(cx, |name, value| {
            span.set_attribute(opentelemetry::KeyValue::new(name.clone(), value.clone()));
        });
        self.inner.on_start(span, cx)
    }

    fn on_end(&self, mut span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if !self
            .pipeline
            .stats(Signal::Traces)
            .admit(self.max_in_flight)
        {
            self.pipeline.record_queue_drop(Signal::Traces);
            return;
        }
        // The SDK cannot set W3C Level 2's `random` on a trace it starts;
        // otelwire's ids are random and known again (`random_ids`), so the
        // exported span says so, as its `traceparent` does.
        let sc = &span.span_context;
        let flags = sc.trace_flags().to_u8();
        if flags & RANDOM_FLAG == 0 && random_ids::generated_here(sc.trace_id()) {
            span.span_context = SpanContext::new(
                sc.trace_id(),
                sc.span_id(),
                TraceFlags::new(flags | RANDOM_FLAG),
                sc.is_remote(),
                sc.trace_state().clone(),
            );
        }
        // One pass per attribute list: secret keys redacted, long values cut.
        let limit = self.value_limit;
        let cut = |kv: &mut KeyValue| limits::truncate_attribute(kv, limit);
        self.redactor.redact_keys_and(&mut span.attributes, cut);
        for event in span.events.events.iter_mut() {
            self.redactor.redact_keys_and(&mut event.attributes, cut);
        }
        self.inner.on_end(span)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

/// Counts and bounds log records on the emitting thread.
#[derive(Debug)]
struct LogGate {
    inner: BatchLogProcessor,
    pipeline: Arc<Pipeline>,
    max_in_flight: u64,
    /// The attribute value length limit (log bodies included).
    value_limit: usize,
    /// The most attributes a record keeps.
    count_limit: usize,
    /// The baggage members copied onto every record (from the context of
    /// the span it is emitted in).
    baggage: BaggageAttributes,
    /// Makes the fresh records that replace records with values too long
    /// (the SDK's records cannot replace an attribute in place).
    template: SdkLogger,
}

impl LogProcessor for LogGate {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        crate::layers::take_span_fields(record);
        self.baggage.for_each_current(|name, value| {
            use opentelemetry::logs::LogRecord as _;
            record.add_attribute(name.clone(), value.clone());
        });
        if !self.pipeline.stats(Signal::Logs).admit(self.max_in_flight) {
            self.pipeline.record_queue_drop(Signal::Logs);
            return;
        }
        // `tracing` names every unnamed event `event file:line`; the bridge
        // copies that into `event.name`, which identifies an event *type*
        // (`auth.login`). Only names given with `name: "…"` are kept.
        if record
            .event_name()
            .is_some_and(|n| n.starts_with("event ") && n.contains(':'))
        {
            opentelemetry::logs::LogRecord::set_event_name(record, "");
        }
        // The tracing bridge sets only the observed time; a record without
        // its event time shows at 1970 in some backends.
        if record.timestamp().is_none() {
            let at = record
                .observed_timestamp()
                .unwrap_or_else(std::time::SystemTime::now);
            opentelemetry::logs::LogRecord::set_timestamp(record, at);
        }
        if limits::log_record_over_limits(record, self.value_limit, self.count_limit) {
            let mut short = limits::truncated_log_record(
                &self.template,
                record,
                self.value_limit,
                self.count_limit,
            );
            return self.inner.emit(&mut short, scope);
        }
        self.inner.emit(record, scope)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}
