//! Configuration values, where they come from, and how a bad one is reported.
//!
//! Precedence, for every knob: a value set in code on the
//! [`Builder`](crate::Builder), then the signal-specific environment variable
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), then the generic one
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`), then the default.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::SpanLimits;

use crate::error::InitError;

mod export;

/// One of the three OpenTelemetry signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
    /// Metric data points.
    Metrics,
}

impl Signal {
    /// All three, in the order they are reported.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    /// `traces`, `logs` or `metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// The upper-case infix of the per-signal variables (`TRACES`).
    pub(crate) fn env_infix(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Logs => "LOGS",
            Signal::Metrics => "METRICS",
        }
    }

    /// The path appended to a generic OTLP/HTTP endpoint.
    pub(crate) fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `grpc`: OTLP over gRPC (tonic), port 4317 by convention.
    Grpc,
    /// `http/protobuf`: OTLP over HTTP with protobuf bodies, port 4318.
    HttpProtobuf,
    /// `http/json`: OTLP over HTTP with JSON bodies, port 4318.
    HttpJson,
}

impl Protocol {
    /// The spelling used by `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }

    fn parse(var: &str, value: &str) -> Result<Self, InitError> {
        match value.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            _ => Err(InitError::env(
                var,
                value,
                "expected one of grpc, http/protobuf, http/json",
            )),
        }
    }

    /// Where a collector listens for this protocol on the local machine.
    pub(crate) fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            _ => "http://localhost:4318",
        }
    }
}

/// Where a signal goes (`OTEL_{TRACES,LOGS,METRICS}_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterKind {
    /// `otlp`: to a collector (the default).
    Otlp,
    /// `console`: pretty-printed to standard output, for debugging.
    Console,
    /// `none`: the signal is not exported.
    None,
    /// `prometheus` (metrics only): served for Prometheus to scrape
    /// ([`crate::prometheus`]) and not pushed; `otlp,prometheus` in
    /// `OTEL_METRICS_EXPORTER` (or [`Builder::prometheus`](crate::Builder::prometheus))
    /// does both.
    Prometheus,
    /// An exporter given in code ([`Builder::span_exporter`](crate::Builder::span_exporter)
    /// and friends); not selectable from the environment.
    Custom,
}

impl ExporterKind {
    /// `OTEL_{SIGNAL}_EXPORTER`: the exporter that pushes the signal, and
    /// (metrics only) whether the scrape endpoint is served. The
    /// specification allows a comma-separated list; otelwire takes one push
    /// exporter (`otlp` or `console`) per signal, plus `prometheus` for
    /// metrics; `none` stands alone. Anything else is an error rather than
    /// a guess.
    fn parse_list(var: &str, value: &str, signal: Signal) -> Result<(Self, bool), InitError> {
        let expected = match signal {
            Signal::Metrics => {
                "expected one of otlp, console, prometheus, none, or otlp or console listed \
                 with prometheus (otlp,prometheus)"
            }
            _ => "expected one of otlp, console, none",
        };
        let mut push: Option<ExporterKind> = None;
        let (mut scrape, mut none, mut items) = (false, false, 0);
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            items += 1;
            let kind = match item {
                "otlp" => ExporterKind::Otlp,
                "console" | "logging" => ExporterKind::Console,
                "none" => {
                    none = true;
                    continue;
                }
                "prometheus" if signal == Signal::Metrics => {
                    scrape = true;
                    continue;
                }
                "prometheus" => {
                    return Err(InitError::env(
                        var,
                        value,
                        format!("prometheus serves metrics only; {expected}"),
                    ));
                }
                _ => {
                    return Err(InitError::env(
                        var,
                        value,
                        format!("unknown exporter {item:?}; {expected}"),
                    ));
                }
            };
            match push {
                Some(p) if p != kind => {
                    return Err(InitError::env(
                        var,
                        value,
                        format!(
                            "otelwire sends {signal} to one of otlp, console, not both; {expected}"
                        ),
                    ));
                }
                _ => push = Some(kind),
            }
        }
        if none && items > 1 {
            return Err(InitError::env(
                var,
                value,
                format!(
                    "none turns the export off and is not combined with another exporter; {expected}"
                ),
            ));
        }
        Ok((push.unwrap_or(ExporterKind::None), scrape))
    }

    /// `otlp`, `console`, `prometheus` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExporterKind::Otlp => "otlp",
            ExporterKind::Console => "console",
            ExporterKind::None => "none",
            ExporterKind::Prometheus => "prometheus",
            ExporterKind::Custom => "custom",
        }
    }
}

/// The local output format (`OTELWIRE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-friendly, coloured when writing to a terminal; for development.
    Pretty,
    /// One plain line per event: time, level, target, message, fields.
    Compact,
    /// One JSON object per line; for production and log shippers.
    Json,
    /// No local output at all.
    None,
}

impl LogFormat {
    fn parse(var: &str, value: &str) -> Result<Self, InitError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "pretty" => Ok(LogFormat::Pretty),
            "compact" | "text" => Ok(LogFormat::Compact),
            "json" => Ok(LogFormat::Json),
            "none" | "off" => Ok(LogFormat::None),
            _ => Err(InitError::env(
                var,
                value,
                "expected one of pretty, compact, json, none",
            )),
        }
    }

    /// The spelling accepted by `OTELWIRE_LOG_FORMAT`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Compact => "compact",
            LogFormat::Json => "json",
            LogFormat::None => "none",
        }
    }
}

/// Payload compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression (the default).
    None,
    /// gzip.
    Gzip,
}

impl Compression {
    fn parse(var: &str, value: &str) -> Result<Self, InitError> {
        match value.trim() {
            "gzip" => Ok(Compression::Gzip),
            "none" | "" => Ok(Compression::None),
            _ => Err(InitError::env(var, value, "expected gzip or none")),
        }
    }
}

/// Which traces are recorded (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with the ratio in `[0, 1]`.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default): follow the caller's decision,
    /// record every new root trace.
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio` with the ratio of new root traces to keep.
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    fn parse(value: &str, arg: Option<&str>) -> Result<Self, InitError> {
        let ratio = || -> Result<f64, InitError> {
            let Some(arg) = arg else { return Ok(1.0) };
            match arg.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(InitError::env(
                    "OTEL_TRACES_SAMPLER_ARG",
                    arg,
                    "expected a number in [0, 1]",
                )),
            }
        };
        match value.trim() {
            "always_on" => Ok(Sampler::AlwaysOn),
            "always_off" => Ok(Sampler::AlwaysOff),
            "traceidratio" => Ok(Sampler::TraceIdRatio(ratio()?)),
            "parentbased_always_on" => Ok(Sampler::ParentBasedAlwaysOn),
            "parentbased_always_off" => Ok(Sampler::ParentBasedAlwaysOff),
            "parentbased_traceidratio" => Ok(Sampler::ParentBasedTraceIdRatio(ratio()?)),
            _ => Err(InitError::env(
                "OTEL_TRACES_SAMPLER",
                value,
                "expected one of always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off, parentbased_traceidratio",
            )),
        }
    }

    /// The spelling used by `OTEL_TRACES_SAMPLER`, with the ratio when there is one.
    pub fn describe(&self) -> String {
        match self {
            Sampler::AlwaysOn => "always_on".into(),
            Sampler::AlwaysOff => "always_off".into(),
            Sampler::TraceIdRatio(r) => format!("traceidratio({r})"),
            Sampler::ParentBasedAlwaysOn => "parentbased_always_on".into(),
            Sampler::ParentBasedAlwaysOff => "parentbased_always_off".into(),
            Sampler::ParentBasedTraceIdRatio(r) => format!("parentbased_traceidratio({r})"),
        }
    }
}

/// A context propagation format (`OTEL_PROPAGATORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagator {
    /// W3C `traceparent` / `tracestate` (`tracecontext`).
    TraceContext,
    /// W3C `baggage` (`baggage`).
    Baggage,
    /// Zipkin's B3, the single `b3` header (`b3`).
    B3,
    /// Zipkin's B3, the `X-B3-*` headers (`b3multi`).
    B3Multi,
    /// Jaeger's `uber-trace-id` and `uberctx-*` baggage (`jaeger`).
    Jaeger,
}

impl Propagator {
    /// The name `OTEL_PROPAGATORS` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagator::TraceContext => "tracecontext",
            Propagator::Baggage => "baggage",
            Propagator::B3 => "b3",
            Propagator::B3Multi => "b3multi",
            Propagator::Jaeger => "jaeger",
        }
    }
}

/// What `OTEL_PROPAGATORS` may name.
const SUPPORTED_PROPAGATORS: &str = "tracecontext, baggage, b3, b3multi, jaeger, none";

fn parse_propagators(value: &str) -> Result<Vec<Propagator>, InitError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "tracecontext" => out.push(Propagator::TraceContext),
            "baggage" => out.push(Propagator::Baggage),
            "b3" => out.push(Propagator::B3),
            "b3multi" => out.push(Propagator::B3Multi),
            "jaeger" => out.push(Propagator::Jaeger),
            "none" => return Ok(Vec::new()),
            "xray" | "ottrace" => {
                let what = if item == "xray" {
                    "AWS X-Ray's"
                } else {
                    "OpenTracing's (deprecated)"
                };
                return Err(InitError::env(
                    "OTEL_PROPAGATORS",
                    value,
                    format!(
                        "{item} ({what} format) is an OpenTelemetry propagator that otelwire \
                         does not support; supported: {SUPPORTED_PROPAGATORS}"
                    ),
                ));
            }
            _ => {
                return Err(InitError::env(
                    "OTEL_PROPAGATORS",
                    value,
                    format!("unknown propagator {item:?}; supported: {SUPPORTED_PROPAGATORS}"),
                ));
            }
        }
    }
    out.dedup();
    Ok(out)
}

/// Where configuration values are read from: the process environment by
/// default, or a function given to [`Builder::env_source`](crate::Builder::env_source).
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

#[derive(Clone)]
pub(crate) struct EnvSource {
    lookup: Arc<Lookup>,
    /// Whether `lookup` reads the process environment (whose values may be
    /// bytes that are not UTF-8, see [`EnvSource::check_unicode`]).
    process: bool,
}

/// The variables otelwire and its add-on outputs read.
fn is_ours(var: &str) -> bool {
    var.starts_with("OTEL_")
        || var.starts_with("OTELWIRE_")
        || var == "RUST_LOG"
        || var == "NO_COLOR"
}

/// Variables whose value may be a secret, never shown in an error.
pub(crate) fn is_secret_var(var: &str) -> bool {
    ["HEADERS", "KEY", "PASSWORD", "TOKEN", "SECRET"]
        .iter()
        .any(|s| var.contains(s))
}

/// Bytes that are not UTF-8 shown as `\xNN`, the rest as text.
fn show_non_utf8(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

impl EnvSource {
    pub(crate) fn process() -> Self {
        EnvSource {
            lookup: Arc::new(|k| std::env::var(k).ok()),
            process: true,
        }
    }

    pub(crate) fn from_fn(f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        EnvSource {
            lookup: Arc::new(f),
            process: false,
        }
    }

    /// A variable's value; empty counts as unset, as the specification says.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        (self.lookup)(key).filter(|v| !v.trim().is_empty())
    }

    /// A variable of ours that is set to bytes that are not UTF-8 is an
    /// error naming it: read as unset, it would silently drop (for example)
    /// the authorization header it was meant to hold.
    pub(crate) fn check_unicode(&self) -> Result<(), InitError> {
        if !self.process {
            return Ok(());
        }
        let mut bad: Vec<(String, std::ffi::OsString)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .filter(|(k, v)| is_ours(k) && v.to_str().is_none())
            .collect();
        bad.sort();
        let Some((var, value)) = bad.into_iter().next() else {
            return Ok(());
        };
        let shown = if is_secret_var(&var) {
            "<hidden>".to_owned()
        } else {
            show_non_utf8(value.as_encoded_bytes())
        };
        Err(InitError::env(
            &var,
            &shown,
            "the value is not valid UTF-8; set it to UTF-8 text or unset it",
        ))
    }

    fn parse_u64(&self, var: &str, expected: &str) -> Result<Option<u64>, InitError> {
        match self.get(var) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| InitError::env(var, &v, expected)),
        }
    }

    pub(crate) fn millis(&self, var: &str) -> Result<Option<Duration>, InitError> {
        Ok(self
            .parse_u64(var, "expected a whole number of milliseconds")?
            .map(Duration::from_millis))
    }

    /// A size: a whole number from 1 to `max` (a bigger one would reserve
    /// memory the process may not have, and abort it).
    pub(crate) fn count(&self, var: &str, max: usize) -> Result<Option<usize>, InitError> {
        let expected = format!("expected a positive whole number, at most {max}");
        match self.get(var) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n >= 1 && n <= max as u64 => Ok(Some(n as usize)),
                _ => Err(InitError::env(var, &v, expected)),
            },
        }
    }

    /// A count limit: a whole number from 0 (keep none) to `u32::MAX`.
    pub(crate) fn limit(&self, var: &str) -> Result<Option<u32>, InitError> {
        match self.get(var) {
            None => Ok(None),
            Some(v) => v.trim().parse::<u32>().map(Some).map_err(|_| {
                InitError::env(
                    var,
                    &v,
                    format!("expected a whole number from 0 to {}", u32::MAX),
                )
            }),
        }
    }

    pub(crate) fn bool(&self, var: &str) -> Result<Option<bool>, InitError> {
        match self.get(var) {
            None => Ok(None),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Some(true)),
                "false" | "0" | "no" | "off" => Ok(Some(false)),
                _ => Err(InitError::env(var, &v, "expected true or false")),
            },
        }
    }
}

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnvSource")
    }
}

/// Parses `key=value,key2=value2` as `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS` spell it: keys and values percent-decoded
/// as the specification says (W3C Baggage encoding). A `%` not followed by
/// two hex digits, or an escape that decodes to bytes that are not UTF-8,
/// is an error (the specification discards such a value; otelwire refuses
/// it rather than guess). With `secret`, the error never repeats the value.
pub(crate) fn parse_key_values(
    var: &str,
    value: &str,
    secret: bool,
) -> Result<Vec<(String, String)>, InitError> {
    let shown = |value: &str| -> String {
        if secret {
            "<hidden>".to_owned()
        } else {
            abbreviated(value)
        }
    };
    let mut out = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(InitError::env(
                var,
                &shown(value),
                "expected comma-separated key=value pairs",
            ));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(InitError::env(
                var,
                &shown(value),
                "a key=value pair has an empty key",
            ));
        }
        let decode = |s: &str| {
            percent_decode(s).map_err(|why| {
                let key = if secret {
                    "a header"
                } else {
                    "a key=value pair"
                };
                let key = match secret {
                    true => format!("{key} ({k:?})"),
                    false => format!("{key} ({})", abbreviated(pair)),
                };
                InitError::env(
                    var,
                    &shown(value),
                    format!("{key}: {why}; write a literal % as %25"),
                )
            })
        };
        out.push((decode(k)?, decode(v.trim())?));
    }
    Ok(out)
}

/// At most 120 characters of `value`, for an error message.
fn abbreviated(value: &str) -> String {
    match value.char_indices().nth(120) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &value[..cut], value.len()),
        None => value.to_owned(),
    }
}

/// Strict percent-decoding: `%` must start an escape of two hex digits,
/// and the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
            match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => {
                    let end = s[i..].char_indices().nth(3).map_or(s.len(), |(n, _)| i + n);
                    return Err(format!(
                        "{:?} is not a percent-escape (% and two hex digits)",
                        &s[i..end]
                    ));
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| "its percent-escapes decode to bytes that are not UTF-8".to_owned())
}

/// Everything the OTLP exporter of one signal needs, resolved.
#[derive(Debug, Clone)]
pub(crate) struct OtlpConfig {
    pub(crate) protocol: Protocol,
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) compression: Compression,
    /// The CA file, and the variable (or builder setting) that named it.
    pub(crate) certificate: Option<(String, std::path::PathBuf)>,
    /// The client certificate and key files (mutual TLS), each with the
    /// variable (or builder setting) that named it.
    pub(crate) client_identity: Option<ClientIdentity>,
}

/// A client certificate chain and its private key, both PEM files, each
/// with where it was named: read at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientIdentity {
    pub(crate) certificate: (String, std::path::PathBuf),
    pub(crate) key: (String, std::path::PathBuf),
}

/// Batch processor settings for one signal (`OTEL_BSP_*` or `OTEL_BLRP_*`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSettings {
    pub(crate) max_queue_size: usize,
    pub(crate) max_export_batch_size: usize,
    pub(crate) scheduled_delay: Duration,
}

/// The values set in code on the builder; `None` means "from the environment".
#[derive(Debug, Default, Clone)]
pub(crate) struct CodeSettings {
    pub(crate) service_name: Option<String>,
    /// `service.name` when neither code nor the environment gives one.
    pub(crate) default_service_name: Option<String>,
    /// `deployment.environment.name` likewise.
    pub(crate) default_environment: Option<String>,
    pub(crate) service_version: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) signal_endpoint: [Option<String>; 3],
    pub(crate) signal_protocol: [Option<Protocol>; 3],
    pub(crate) exporter: [Option<ExporterKind>; 3],
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) compression: Option<Compression>,
    /// Per signal, winning over the settings for every signal above.
    pub(crate) signal_headers: [Vec<(String, String)>; 3],
    pub(crate) signal_timeout: [Option<Duration>; 3],
    pub(crate) signal_compression: [Option<Compression>; 3],
    /// The CA certificate (PEM file) to trust, for every signal and per signal.
    pub(crate) certificate: Option<std::path::PathBuf>,
    pub(crate) signal_certificate: [Option<std::path::PathBuf>; 3],
    /// Client certificate and key files for every signal.
    pub(crate) client_certificate: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Client certificate and key files of one signal (winning over
    /// `client_certificate`).
    pub(crate) signal_client_certificate: [Option<(std::path::PathBuf, std::path::PathBuf)>; 3],
    pub(crate) sampler: Option<Sampler>,
    pub(crate) propagators: Option<Vec<Propagator>>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) filter: Option<String>,
    pub(crate) traces_filter: Option<String>,
    pub(crate) panic_hook: Option<bool>,
    pub(crate) sdk_disabled: Option<bool>,
    pub(crate) shutdown_timeout: Option<Duration>,
    pub(crate) max_queue_size: [Option<usize>; 2],
    pub(crate) scheduled_delay: [Option<Duration>; 2],
    pub(crate) max_export_batch_size: [Option<usize>; 2],
    pub(crate) metric_export_interval: Option<Duration>,
    pub(crate) redact_fields: Vec<String>,
    pub(crate) process_metrics: Option<bool>,
    pub(crate) failing_after: Option<Duration>,
    /// Attribute value length limits: traces, logs.
    pub(crate) value_length_limit: [Option<usize>; 2],
    /// The metrics exporter's temporality preference.
    pub(crate) temporality: Option<Temporality>,
    /// Span attribute, event and link count limits, all set together.
    pub(crate) span_limits: Option<SpanLimits>,
    /// The most attributes a log record keeps.
    pub(crate) log_attribute_count_limit: Option<u32>,
    /// Whether to serve the Prometheus scrape endpoint (beside the exporter).
    pub(crate) prometheus: Option<bool>,
    pub(crate) prometheus_host: Option<String>,
    pub(crate) prometheus_port: Option<u16>,
    pub(crate) prometheus_listener: Option<bool>,
}

/// The configuration after code, environment and defaults have been merged.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) service_name: String,
    pub(crate) service_version: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) resource_attributes: BTreeMap<String, String>,
    pub(crate) sdk_disabled: bool,
    pub(crate) exporter: [ExporterKind; 3],
    pub(crate) otlp: [OtlpConfig; 3],
    pub(crate) sampler: Sampler,
    pub(crate) propagators: Vec<Propagator>,
    pub(crate) log_format: LogFormat,
    pub(crate) filter: String,
    /// The traces filter when given (`None`: derived from `filter`).
    pub(crate) traces_filter: Option<String>,
    /// Whether to install the panic hook (`None`: [`init`](crate::init)
    /// does, [`build`](crate::Builder::build) does not).
    pub(crate) panic_hook: Option<bool>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) batch: [BatchSettings; 2],
    pub(crate) metric_export_interval: Duration,
    pub(crate) redact_fields: Vec<String>,
    pub(crate) process_metrics: bool,
    pub(crate) failing_after: Duration,
    /// The longest string attribute value (in characters) a span or log
    /// record keeps: traces, logs (log bodies included).
    pub(crate) value_length_limit: [usize; 2],
    /// The OTLP metrics exporter's temporality preference
    /// (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
    pub(crate) temporality: Temporality,
    /// Count limits of spans (`OTEL_SPAN_*_COUNT_LIMIT` and friends), set
    /// on the SDK explicitly so that its own reading of the process
    /// environment never applies.
    pub(crate) span_limits: SpanLimits,
    /// The most attributes a log record keeps
    /// (`OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT`, `OTEL_ATTRIBUTE_COUNT_LIMIT`).
    pub(crate) log_attribute_count_limit: usize,
    /// The Prometheus scrape endpoint, when metrics are served for scraping.
    pub(crate) prometheus: Option<crate::prometheus::Settings>,
}

/// The attribute value length limit when none is configured. The
/// specification leaves it unlimited; otelwire bounds it so that one huge
/// value can neither hold megabytes in the queue nor make the collector
/// refuse the whole batch (its gRPC receiver takes 4 MiB per request by
/// default).
pub const DEFAULT_VALUE_LENGTH_LIMIT: usize = 32 * 1024;

/// Spans (and, separately, log records) waiting for export before new ones
/// are dropped, when neither the builder nor `OTEL_BSP_MAX_QUEUE_SIZE` /
/// `OTEL_BLRP_MAX_QUEUE_SIZE` says otherwise.
///
/// The specification's default is 2048, which holds 41 ms of telemetry at
/// 50,000 spans/s: one slow answer from the collector, or the export thread
/// losing its core for a moment, drops data. 8192 hold 164 ms; measured
/// in the stress runs (`BENCHMARKS.md`), they cost about 2 MiB more
/// resident memory at start and, with the collector down and both queues
/// full, about 9 MiB more than 2048 would.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 8192;

/// The largest queue size (`OTEL_BSP_MAX_QUEUE_SIZE`,
/// `OTEL_BLRP_MAX_QUEUE_SIZE`, [`Builder::max_queue_size`](crate::Builder::max_queue_size))
/// and export batch size otelwire accepts; a bigger one is an init error.
/// The SDK's queue reserves its slots up front (about 340 bytes each, as
/// measured for [`DEFAULT_MAX_QUEUE_SIZE`]), so `99999999999999` would
/// abort the process on allocation; 262,144 reserve about 90 MB.
pub const MAX_QUEUE_SIZE_LIMIT: usize = 1 << 18;

/// The most resource attributes otelwire accepts, from
/// `OTEL_RESOURCE_ATTRIBUTES` and [`Builder::resource_attribute`](crate::Builder::resource_attribute)
/// together (the specification's default attribute count limit); more is
/// an init error, since every export request carries them all.
pub const MAX_RESOURCE_ATTRIBUTES: usize = 128;

/// The most bytes of resource attribute keys and values otelwire accepts,
/// all together; more is an init error.
pub const MAX_RESOURCE_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// The largest attribute value length limit otelwire accepts
/// (`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` and the per-signal variants,
/// [`Builder::attribute_value_length_limit`](crate::Builder::attribute_value_length_limit)):
/// 1 MiB characters, a quarter of what a collector's gRPC receiver takes
/// per request by default.
pub const MAX_VALUE_LENGTH_LIMIT: usize = 1 << 20;

/// The attribute count limit of log records (and the default of spans,
/// span events and links) when none is configured: the specification's 128.
pub(crate) const DEFAULT_ATTRIBUTE_COUNT_LIMIT: u32 = 128;

const TEMPORALITY_VAR: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";

/// Variables of the OpenTelemetry SDK environment specification (and of
/// the OTLP exporter's) for traces, logs, metrics and OTLP that otelwire
/// reads and honours. With [`REFUSED`], every one the specification
/// defines; the crate docs' table lists the same (a test checks).
#[cfg(test)]
pub(crate) const SUPPORTED: &[&str] = &[
    "OTEL_SDK_DISABLED",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SERVICE_NAME",
    "OTEL_PROPAGATORS",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BLRP_SCHEDULE_DELAY",
    "OTEL_BLRP_MAX_QUEUE_SIZE",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_EXPORTER_PROMETHEUS_HOST",
    "OTEL_EXPORTER_PROMETHEUS_PORT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
    "OTEL_EXPORTER_OTLP_LOGS_INSECURE",
    "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
];

/// Variables of the OpenTelemetry SDK environment specification that
/// otelwire does not support, and why: set, each is an init error saying
/// so, rather than a setting that silently does nothing.
pub(crate) const REFUSED: &[(&str, &str)] = &[
    ("OTEL_BSP_EXPORT_TIMEOUT", EXPORT_TIMEOUT_WHY),
    ("OTEL_BLRP_EXPORT_TIMEOUT", EXPORT_TIMEOUT_WHY),
    ("OTEL_METRIC_EXPORT_TIMEOUT", EXPORT_TIMEOUT_WHY),
    (
        "OTEL_METRICS_EXEMPLAR_FILTER",
        "otelwire records no exemplars (opentelemetry_sdk 0.33 has none); unset it",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        "otelwire exports explicit bucket histograms only; unset it",
    ),
    (
        "OTEL_LOG_LEVEL",
        "otelwire does not support it: the OpenTelemetry SDK's own diagnostics are tracing \
         events, chosen with RUST_LOG (RUST_LOG=info,opentelemetry_sdk=debug): unset it",
    ),
];

const EXPORT_TIMEOUT_WHY: &str = "otelwire does not support it: the batch processors and the \
     periodic reader of opentelemetry_sdk 0.33 have no export deadline; each export request is \
     bounded by OTEL_EXPORTER_OTLP_TIMEOUT (or the per-signal OTEL_EXPORTER_OTLP_{SIGNAL}_TIMEOUT, \
     Builder::timeout): unset it and set that instead";

/// An init error for the first refused variable that is set.
fn check_refused(env: &EnvSource) -> Result<(), InitError> {
    for (var, why) in REFUSED {
        if let Some(v) = env.get(var) {
            let shown = if is_secret_var(var) {
                "<hidden>"
            } else {
                v.as_str()
            };
            return Err(InitError::env(var, shown, *why));
        }
    }
    Ok(())
}

/// The default `RUST_LOG` when none is set.
pub(crate) const DEFAULT_FILTER: &str = "info";

impl Resolved {
    /// Merges code, environment and defaults, one concern after the other:
    /// the order of the parts is the order in which their errors are found.
    pub(crate) fn resolve(code: &CodeSettings, env: &EnvSource) -> Result<Self, InitError> {
        env.check_unicode()?;
        check_refused(env)?;
        let resource_attributes = resource_attributes(code, env)?;
        let service = service(code, env, &resource_attributes);
        let sdk_disabled = sdk_disabled(code, env)?;
        let export = export::resolve(code, env)?;
        let sampler = sampler(code, env)?;
        let propagators = propagators(code, env)?;
        let local = local_output(code, env)?;
        let shutdown_timeout = shutdown_timeout(code, env)?;
        let batch = batching(code, env)?;
        let metric_export_interval = metric_export_interval(code, env)?;
        let redact_fields = redact_fields(code, env);
        let process_metrics = process_metrics(code, env)?;
        let failing_after = failing_after(code, env)?;
        let value_length_limit = value_length_limits(code, env)?;
        let temporality = temporality(code, env)?;
        let (span_limits, log_attribute_count_limit) = count_limits(code, env)?;
        let prometheus = export
            .scrape
            .then(|| prometheus_settings(code, env))
            .transpose()?;

        Ok(Resolved {
            service_name: service.name,
            service_version: service.version,
            environment: service.environment,
            resource_attributes,
            sdk_disabled,
            exporter: export.exporter,
            otlp: export.otlp,
            sampler,
            propagators,
            log_format: local.log_format,
            filter: local.filter,
            traces_filter: local.traces_filter,
            panic_hook: local.panic_hook,
            shutdown_timeout,
            batch,
            metric_export_interval,
            redact_fields,
            process_metrics,
            failing_after,
            value_length_limit,
            temporality,
            span_limits,
            log_attribute_count_limit,
            prometheus,
        })
    }

    /// The scrape endpoint that will actually be served.
    pub(crate) fn effective_prometheus(&self) -> Option<&crate::prometheus::Settings> {
        self.prometheus.as_ref().filter(|_| !self.sdk_disabled)
    }

    /// The exporter that will actually run for a signal.
    pub(crate) fn effective_exporter(&self, signal: Signal) -> ExporterKind {
        if self.sdk_disabled {
            ExporterKind::None
        } else {
            self.exporter[signal.index()]
        }
    }
}

/// The resource attributes: `OTEL_RESOURCE_ATTRIBUTES`, then the builder's, bounded.
fn resource_attributes(
    code: &CodeSettings,
    env: &EnvSource,
) -> Result<BTreeMap<String, String>, InitError> {
    let mut attributes = BTreeMap::new();
    if let Some(v) = env.get("OTEL_RESOURCE_ATTRIBUTES") {
        for (k, val) in parse_key_values("OTEL_RESOURCE_ATTRIBUTES", &v, false)? {
            attributes.insert(k, val);
        }
    }
    for (k, v) in &code.resource_attributes {
        attributes.insert(k.clone(), v.clone());
    }
    // Every export carries the whole resource: bound it.
    let bytes: usize = attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
    if attributes.len() > MAX_RESOURCE_ATTRIBUTES || bytes > MAX_RESOURCE_ATTRIBUTES_BYTES {
        let shown = format!("<{} attributes, {bytes} bytes>", attributes.len());
        let expected = format!(
            "at most {MAX_RESOURCE_ATTRIBUTES} attributes and \
             {MAX_RESOURCE_ATTRIBUTES_BYTES} bytes of keys and values (every export \
             carries them all)"
        );
        return Err(if code.resource_attributes.is_empty() {
            InitError::env("OTEL_RESOURCE_ATTRIBUTES", &shown, expected)
        } else {
            InitError::InvalidSetting {
                setting: "resource_attribute (with OTEL_RESOURCE_ATTRIBUTES)",
                value: shown,
                expected,
            }
        });
    }
    Ok(attributes)
}

/// Who is reporting: `service.name`, `service.version` and the deployment environment.
struct Service {
    name: String,
    version: Option<String>,
    environment: Option<String>,
}

/// The service's identity: code, then variables, then resource attributes, then defaults.
fn service(code: &CodeSettings, env: &EnvSource, attributes: &BTreeMap<String, String>) -> Service {
    let name = code
        .service_name
        .clone()
        .or_else(|| env.get("OTEL_SERVICE_NAME"))
        .or_else(|| attributes.get("service.name").cloned())
        .or_else(|| code.default_service_name.clone())
        .unwrap_or_else(executable_name);
    let version = code
        .service_version
        .clone()
        .or_else(|| attributes.get("service.version").cloned());
    let environment = code
        .environment
        .clone()
        .or_else(|| env.get("OTELWIRE_ENVIRONMENT"))
        .or_else(|| attributes.get("deployment.environment.name").cloned())
        .or_else(|| attributes.get("deployment.environment").cloned())
        .or_else(|| code.default_environment.clone());
    Service {
        name,
        version,
        environment,
    }
}

/// Whether the SDK is off (`OTEL_SDK_DISABLED`): nothing exported, local output kept.
fn sdk_disabled(code: &CodeSettings, env: &EnvSource) -> Result<bool, InitError> {
    Ok(match code.sdk_disabled {
        Some(b) => b,
        None => env.bool("OTEL_SDK_DISABLED")?.unwrap_or(false),
    })
}

/// The trace sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
fn sampler(code: &CodeSettings, env: &EnvSource) -> Result<Sampler, InitError> {
    Ok(match code.sampler {
        Some(s) => s,
        None => match env.get("OTEL_TRACES_SAMPLER") {
            Some(v) => Sampler::parse(&v, env.get("OTEL_TRACES_SAMPLER_ARG").as_deref())?,
            None => {
                // A stray ARG without a sampler is still validated: a typo
                // there should not pass silently.
                if let Some(arg) = env.get("OTEL_TRACES_SAMPLER_ARG") {
                    Sampler::parse("parentbased_traceidratio", Some(&arg))?;
                }
                Sampler::ParentBasedAlwaysOn
            }
        },
    })
}

/// The context propagators (`OTEL_PROPAGATORS`).
fn propagators(code: &CodeSettings, env: &EnvSource) -> Result<Vec<Propagator>, InitError> {
    Ok(match &code.propagators {
        Some(p) => p.clone(),
        None => match env.get("OTEL_PROPAGATORS") {
            Some(v) => parse_propagators(&v)?,
            None => vec![Propagator::TraceContext, Propagator::Baggage],
        },
    })
}

/// What is printed locally, and what is filtered out before anything is.
struct LocalOutput {
    log_format: LogFormat,
    filter: String,
    traces_filter: Option<String>,
    panic_hook: Option<bool>,
}

/// Local output: the log format, the filters (validated) and the panic hook.
fn local_output(code: &CodeSettings, env: &EnvSource) -> Result<LocalOutput, InitError> {
    let log_format = match code.log_format {
        Some(f) => f,
        None => match env.get("OTELWIRE_LOG_FORMAT") {
            Some(v) => LogFormat::parse("OTELWIRE_LOG_FORMAT", &v)?,
            None => default_log_format(),
        },
    };
    let filter = filter(code, env)?;
    let traces_filter = traces_filter(code, env)?;
    let panic_hook = match code.panic_hook {
        Some(b) => Some(b),
        None => env.bool("OTELWIRE_PANIC_HOOK")?,
    };
    Ok(LocalOutput {
        log_format,
        filter,
        traces_filter,
        panic_hook,
    })
}

/// The filter (`RUST_LOG`), parsed now so that a typo is an init error naming it.
fn filter(code: &CodeSettings, env: &EnvSource) -> Result<String, InitError> {
    let filter = code
        .filter
        .clone()
        .or_else(|| env.get("RUST_LOG"))
        .unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    // The same list the filter layer is built from (`normalize_directives`).
    if let Err(e) =
        tracing_subscriber::EnvFilter::builder().parse(crate::layers::normalize_directives(&filter))
    {
        return Err(match &code.filter {
            Some(_) => InitError::InvalidSetting {
                setting: "filter",
                value: filter.clone(),
                expected: e.to_string(),
            },
            None => InitError::env("RUST_LOG", &filter, e.to_string()),
        });
    }
    Ok(filter)
}

/// The traces filter (`OTELWIRE_TRACES_FILTER`) when given, validated.
fn traces_filter(code: &CodeSettings, env: &EnvSource) -> Result<Option<String>, InitError> {
    let traces_filter = code
        .traces_filter
        .clone()
        .or_else(|| env.get("OTELWIRE_TRACES_FILTER"));
    if let Some(t) = &traces_filter
        && let Err(e) = crate::layers::validate(t)
    {
        let expected = format!("directive {:?}: {}", e.directive, e.reason);
        return Err(match &code.traces_filter {
            Some(_) => InitError::InvalidSetting {
                setting: "traces_filter",
                value: t.clone(),
                expected,
            },
            None => InitError::env("OTELWIRE_TRACES_FILTER", t, expected),
        });
    }
    Ok(traces_filter)
}

/// How long shutdown waits for the last exports (`OTELWIRE_SHUTDOWN_TIMEOUT`).
fn shutdown_timeout(code: &CodeSettings, env: &EnvSource) -> Result<Duration, InitError> {
    Ok(match code.shutdown_timeout {
        Some(t) => t,
        None => env
            .millis("OTELWIRE_SHUTDOWN_TIMEOUT")?
            .unwrap_or(Duration::from_secs(5)),
    })
}

/// The batch processors of spans (`OTEL_BSP_*`) and of log records (`OTEL_BLRP_*`).
fn batching(code: &CodeSettings, env: &EnvSource) -> Result<[BatchSettings; 2], InitError> {
    Ok([
        batch_settings(code, env, 0, "OTEL_BSP", Duration::from_secs(5))?,
        batch_settings(code, env, 1, "OTEL_BLRP", Duration::from_secs(1))?,
    ])
}

/// One batch processor's settings; `i` indexes the builder's, `prefix` names the variables.
fn batch_settings(
    code: &CodeSettings,
    env: &EnvSource,
    i: usize,
    prefix: &str,
    default_delay: Duration,
) -> Result<BatchSettings, InitError> {
    let max_queue_size = match code.max_queue_size[i] {
        Some(n) => bounded_setting("max_queue_size", n, MAX_QUEUE_SIZE_LIMIT)?,
        None => env
            .count(&format!("{prefix}_MAX_QUEUE_SIZE"), MAX_QUEUE_SIZE_LIMIT)?
            .unwrap_or(DEFAULT_MAX_QUEUE_SIZE),
    };
    let max_export_batch_size = match code.max_export_batch_size[i] {
        Some(n) => bounded_setting("max_export_batch_size", n, MAX_QUEUE_SIZE_LIMIT)?,
        None => env
            .count(
                &format!("{prefix}_MAX_EXPORT_BATCH_SIZE"),
                MAX_QUEUE_SIZE_LIMIT,
            )?
            .unwrap_or(512),
    };
    let scheduled_delay = match code.scheduled_delay[i] {
        Some(d) => d,
        None => env
            .millis(&format!("{prefix}_SCHEDULE_DELAY"))?
            .unwrap_or(default_delay),
    };
    Ok(BatchSettings {
        max_queue_size,
        max_export_batch_size: max_export_batch_size.min(max_queue_size),
        scheduled_delay,
    })
}

/// How often metrics are exported (`OTEL_METRIC_EXPORT_INTERVAL`), never zero.
fn metric_export_interval(code: &CodeSettings, env: &EnvSource) -> Result<Duration, InitError> {
    let interval = match code.metric_export_interval {
        Some(d) => d,
        None => env
            .millis("OTEL_METRIC_EXPORT_INTERVAL")?
            .unwrap_or(Duration::from_secs(60)),
    };
    if interval.is_zero() {
        return Err(InitError::env(
            "OTEL_METRIC_EXPORT_INTERVAL",
            "0",
            "expected a positive number of milliseconds",
        ));
    }
    Ok(interval)
}

/// Field names whose values are redacted: the builder's and `OTELWIRE_REDACT_FIELDS`'.
fn redact_fields(code: &CodeSettings, env: &EnvSource) -> Vec<String> {
    let mut fields = code.redact_fields.clone();
    if let Some(v) = env.get("OTELWIRE_REDACT_FIELDS") {
        fields.extend(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    fields
}

/// Whether process metrics are recorded (`OTELWIRE_PROCESS_METRICS`).
fn process_metrics(code: &CodeSettings, env: &EnvSource) -> Result<bool, InitError> {
    Ok(match code.process_metrics {
        Some(b) => b,
        None => env.bool("OTELWIRE_PROCESS_METRICS")?.unwrap_or(true),
    })
}

/// How long export may fail before health turns failing (`OTELWIRE_HEALTH_FAILING_AFTER`).
fn failing_after(code: &CodeSettings, env: &EnvSource) -> Result<Duration, InitError> {
    Ok(match code.failing_after {
        Some(d) => d,
        None => env
            .millis("OTELWIRE_HEALTH_FAILING_AFTER")?
            .unwrap_or(Duration::from_secs(60)),
    })
}

/// The attribute value length limits of spans and of log records.
fn value_length_limits(code: &CodeSettings, env: &EnvSource) -> Result<[usize; 2], InitError> {
    let general = env.count("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", MAX_VALUE_LENGTH_LIMIT)?;
    let mut limits = [DEFAULT_VALUE_LENGTH_LIMIT; 2];
    for (i, var) in [
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    ]
    .into_iter()
    .enumerate()
    {
        limits[i] = match code.value_length_limit[i] {
            Some(0) => {
                return Err(InitError::InvalidSetting {
                    setting: "attribute_value_length_limit",
                    value: "0".into(),
                    expected: "a positive number of characters".into(),
                });
            }
            Some(n) => bounded_setting("attribute_value_length_limit", n, MAX_VALUE_LENGTH_LIMIT)?,
            None => env
                .count(var, MAX_VALUE_LENGTH_LIMIT)?
                .or(general)
                .unwrap_or(DEFAULT_VALUE_LENGTH_LIMIT),
        };
    }
    Ok(limits)
}

/// The OTLP metrics exporter's temporality preference.
fn temporality(code: &CodeSettings, env: &EnvSource) -> Result<Temporality, InitError> {
    Ok(match code.temporality {
        Some(t) => t,
        None => match env.get(TEMPORALITY_VAR) {
            None => Temporality::Cumulative,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "cumulative" => Temporality::Cumulative,
                "delta" => Temporality::Delta,
                "lowmemory" => Temporality::LowMemory,
                _ => {
                    return Err(InitError::env(
                        TEMPORALITY_VAR,
                        &v,
                        "expected one of cumulative, delta, lowmemory",
                    ));
                }
            },
        },
    })
}

/// The count limits of spans and the attribute count limit of log records.
fn count_limits(code: &CodeSettings, env: &EnvSource) -> Result<(SpanLimits, usize), InitError> {
    let attribute_count = env.limit("OTEL_ATTRIBUTE_COUNT_LIMIT")?;
    let span_limits = match code.span_limits {
        Some(l) => l,
        None => {
            let d = SpanLimits::default();
            let attributes = |var: &str, default: u32| -> Result<u32, InitError> {
                Ok(env.limit(var)?.or(attribute_count).unwrap_or(default))
            };
            SpanLimits {
                max_attributes_per_span: attributes(
                    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
                    d.max_attributes_per_span,
                )?,
                max_events_per_span: env
                    .limit("OTEL_SPAN_EVENT_COUNT_LIMIT")?
                    .unwrap_or(d.max_events_per_span),
                max_links_per_span: env
                    .limit("OTEL_SPAN_LINK_COUNT_LIMIT")?
                    .unwrap_or(d.max_links_per_span),
                max_attributes_per_event: attributes(
                    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
                    d.max_attributes_per_event,
                )?,
                max_attributes_per_link: attributes(
                    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
                    d.max_attributes_per_link,
                )?,
            }
        }
    };
    let log_attribute_count_limit = match code.log_attribute_count_limit {
        Some(n) => n,
        None => env
            .limit("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT")?
            .or(attribute_count)
            .unwrap_or(DEFAULT_ATTRIBUTE_COUNT_LIMIT),
    } as usize;
    Ok((span_limits, log_attribute_count_limit))
}

/// Where the scrape endpoint listens: the builder, else
/// `OTEL_EXPORTER_PROMETHEUS_HOST` / `_PORT`, else `localhost:9464`; and
/// whether otelwire listens at all (`OTELWIRE_PROMETHEUS_LISTENER`).
fn prometheus_settings(
    code: &CodeSettings,
    env: &EnvSource,
) -> Result<crate::prometheus::Settings, InitError> {
    const HOST: &str = "OTEL_EXPORTER_PROMETHEUS_HOST";
    const PORT: &str = "OTEL_EXPORTER_PROMETHEUS_PORT";
    let (host, host_origin) = match (&code.prometheus_host, env.get(HOST)) {
        (Some(h), _) => (
            h.trim().to_owned(),
            "builder setting prometheus_host".to_owned(),
        ),
        (None, Some(h)) => (h.trim().to_owned(), format!("{HOST}={}", h.trim())),
        (None, None) => (
            crate::prometheus::DEFAULT_HOST.to_owned(),
            format!("{HOST} unset"),
        ),
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(match code.prometheus_host {
            Some(_) => InitError::InvalidSetting {
                setting: "prometheus_host",
                value: host,
                expected: "a host name or IP address".into(),
            },
            None => InitError::env(HOST, &host, "expected a host name or IP address"),
        });
    }
    let (port, port_origin) = match (code.prometheus_port, env.get(PORT)) {
        (Some(p), _) => (p, format!("builder setting prometheus_port={p}")),
        (None, Some(v)) => match v.trim().parse::<u16>() {
            Ok(p) => (p, format!("{PORT}={p}")),
            Err(_) => {
                return Err(InitError::env(
                    PORT,
                    &v,
                    "expected a port number from 0 to 65535 (0: any free port)",
                ));
            }
        },
        (None, None) => (crate::prometheus::DEFAULT_PORT, format!("{PORT} unset")),
    };
    let listen = match code.prometheus_listener {
        Some(b) => b,
        None => env.bool("OTELWIRE_PROMETHEUS_LISTENER")?.unwrap_or(true),
    };
    Ok(crate::prometheus::Settings {
        host,
        port,
        listen,
        origin: format!("{host_origin}, {port_origin}"),
    })
}

/// A size set in code, at most `max`.
fn bounded_setting(setting: &'static str, n: usize, max: usize) -> Result<usize, InitError> {
    if n <= max {
        Ok(n)
    } else {
        Err(InitError::InvalidSetting {
            setting,
            value: n.to_string(),
            expected: format!("at most {max}"),
        })
    }
}

/// The executable's file name: a better default than `unknown_service`.
fn executable_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown_service:rust".to_owned())
}

/// Pretty on a terminal, JSON lines everywhere else (containers, pipes).
fn default_log_format() -> LogFormat {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> EnvSource {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvSource::from_fn(move |k| map.get(k).cloned())
    }

    fn resolve(pairs: &[(&str, &str)]) -> Result<Resolved, InitError> {
        Resolved::resolve(&CodeSettings::default(), &env(pairs))
    }

    #[test]
    fn http_endpoint_gets_signal_path_and_signal_endpoint_does_not() {
        let r = resolve(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://logs:9999/custom",
            ),
        ])
        .unwrap();
        assert_eq!(r.otlp[0].endpoint, "http://collector:4318/v1/traces");
        assert_eq!(r.otlp[1].endpoint, "http://logs:9999/custom");
        assert_eq!(r.otlp[2].endpoint, "http://collector:4318/v1/metrics");
    }

    #[test]
    fn code_beats_signal_env_beats_generic_env() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2000"),
        ]);
        let r = Resolved::resolve(&CodeSettings::default(), &e).unwrap();
        assert_eq!(r.otlp[0].protocol, Protocol::HttpJson);
        assert_eq!(r.otlp[1].protocol, Protocol::Grpc);
        assert_eq!(r.otlp[1].endpoint, "http://localhost:4317");
        assert_eq!(r.otlp[1].timeout, Duration::from_secs(1));
        assert_eq!(r.otlp[2].timeout, Duration::from_secs(2));

        let code = CodeSettings {
            protocol: Some(Protocol::HttpProtobuf),
            timeout: Some(Duration::from_millis(300)),
            ..Default::default()
        };
        let r = Resolved::resolve(&code, &e).unwrap();
        assert!(r.otlp.iter().all(|o| o.protocol == Protocol::HttpProtobuf));
        assert!(
            r.otlp
                .iter()
                .all(|o| o.timeout == Duration::from_millis(300))
        );
    }

    #[test]
    fn headers_are_percent_decoded_and_errors_hide_them() {
        let r = resolve(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret, x=y")]).unwrap();
        assert_eq!(
            r.otlp[0].headers,
            vec![
                ("api-key".into(), "s=cret".into()),
                ("x".into(), "y".into())
            ]
        );
        let err = resolve(&[("OTEL_EXPORTER_OTLP_HEADERS", "supersecretvalue")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{err}");
        assert!(!err.contains("supersecretvalue"), "{err}");
    }

    #[test]
    fn health_turns_failing_after_a_minute_unless_told_otherwise() {
        // What otelwire-axum's `/health/telemetry` docs promise: 503 after a
        // minute of failed export by default.
        assert_eq!(resolve(&[]).unwrap().failing_after, Duration::from_secs(60));
        let r = resolve(&[("OTELWIRE_HEALTH_FAILING_AFTER", "5000")]).unwrap();
        assert_eq!(r.failing_after, Duration::from_secs(5));
    }

    #[test]
    fn service_name_falls_back_to_executable_not_unknown_service() {
        let r = resolve(&[]).unwrap();
        assert!(!r.service_name.is_empty());
        assert!(
            !r.service_name.starts_with("unknown_service"),
            "{}",
            r.service_name
        );
        let r = resolve(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")]).unwrap();
        assert_eq!(r.service_name, "from-attrs");
        let r = resolve(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "from-env"),
        ])
        .unwrap();
        assert_eq!(r.service_name, "from-env");
    }

    /// The crate docs' table of the specification's variables lists
    /// exactly the names otelwire supports and refuses, each with its status.
    #[test]
    fn the_variable_table_matches_the_parser() {
        let docs = include_str!("lib.rs");
        let start = docs
            .find("# Every OpenTelemetry SDK variable")
            .expect("the table's section");
        let section = &docs[start..];
        let section = &section[..section[2..]
            .find("\n//! # ")
            .map_or(section.len(), |e| e + 2)];
        let mut table: Vec<(String, String)> = Vec::new();
        for line in section.lines() {
            let Some(row) = line.strip_prefix("//! | `") else {
                continue;
            };
            let (names, rest) = row.split_once(" | ").expect("a status column");
            let status = rest.split(" | ").next().unwrap().trim().to_owned();
            for name in names.split(", ") {
                table.push((name.trim_matches('`').to_owned(), status.clone()));
            }
        }
        let mut expected: Vec<(String, String)> = SUPPORTED
            .iter()
            .map(|v| (v.to_string(), "supported".to_owned()))
            .chain(
                REFUSED
                    .iter()
                    .map(|(v, _)| (v.to_string(), "refused".to_owned())),
            )
            .collect();
        expected.sort();
        table.sort();
        let missing: Vec<_> = expected.iter().filter(|e| !table.contains(e)).collect();
        let extra: Vec<_> = table.iter().filter(|t| !expected.contains(t)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "not in the table (or another status): {missing:?}; in the table only: {extra:?}"
        );
    }

    #[test]
    fn refused_variables_are_errors_that_say_so() {
        for (var, _) in REFUSED {
            let err = resolve(&[(var, "1")]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{var}=")), "{err}");
            assert!(err.contains("unset it"), "{err}");
        }
        let err = resolve(&[("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("true or false"), "{err}");
    }

    /// A CA certificate only checks the server of a TLS connection: for a
    /// plain `http://` endpoint it would be ignored in silence, so init
    /// refuses it, naming the setting, the signal and the endpoint.
    #[test]
    fn a_ca_certificate_for_a_plain_http_endpoint_is_an_init_error() {
        let err = resolve(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://user:s3cret@collector:4318/?api_key=k3y",
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE=/etc/otel/ca.pem: "),
            "{err}"
        );
        assert!(err.contains("for traces is only used over TLS"), "{err}");
        assert!(err.contains("http://collector:4318/v1/traces"), "{err}");
        assert!(err.contains("use https:// or unset"), "{err}");
        assert!(!err.contains("s3cret") && !err.contains("k3y"), "{err}");

        // The generic variable applies to every signal: the one whose
        // endpoint is plain http is named.
        let err = resolve(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://agent:4318/v1/logs",
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE=/etc/otel/ca.pem: "),
            "{err}"
        );
        assert!(err.contains("for logs"), "{err}");
        assert!(err.contains("http://agent:4318/v1/logs"), "{err}");

        // A signal's own variable, with the default endpoint (plain http).
        let err = resolve(&[("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "ca.pem")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE=ca.pem: "),
            "{err}"
        );
        assert!(err.contains("for metrics"), "{err}");
        assert!(err.contains("http://localhost:4318/v1/metrics"), "{err}");
        assert!(
            err.contains("unset OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE"),
            "{err}"
        );

        // The same for a signal that is not exported is no error.
        assert!(
            resolve(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "http://agent:4318/v1/logs"
                ),
                ("OTEL_LOGS_EXPORTER", "none"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
            ])
            .is_ok()
        );
    }

    #[test]
    fn a_ca_certificate_set_in_code_for_a_plain_http_endpoint_is_an_init_error() {
        let code = CodeSettings {
            endpoint: Some("http://collector:4318".into()),
            certificate: Some("/etc/otel/ca.pem".into()),
            ..Default::default()
        };
        let err = Resolved::resolve(&code, &env(&[])).unwrap_err().to_string();
        assert!(err.starts_with("certificate=/etc/otel/ca.pem: "), "{err}");
        assert!(err.contains("http://collector:4318/v1/traces"), "{err}");
        assert!(
            err.contains("use https:// or unset the builder setting `certificate`"),
            "{err}"
        );

        let mut signal_certificate: [Option<std::path::PathBuf>; 3] = Default::default();
        signal_certificate[Signal::Logs.index()] = Some("/etc/otel/logs-ca.pem".into());
        let code = CodeSettings {
            endpoint: Some("https://collector:4318".into()),
            signal_endpoint: [None, Some("http://agent:4318/v1/logs".into()), None],
            signal_certificate,
            ..Default::default()
        };
        let err = Resolved::resolve(&code, &env(&[])).unwrap_err().to_string();
        assert!(
            err.starts_with("signal_certificate=/etc/otel/logs-ca.pem: "),
            "{err}"
        );
        assert!(err.contains("for logs"), "{err}");
        assert!(err.contains("http://agent:4318/v1/logs"), "{err}");
    }

    #[test]
    fn a_ca_certificate_for_an_https_endpoint_is_used() {
        for protocol in ["grpc", "http/protobuf"] {
            let r = resolve(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                    "/etc/otel/traces-ca.pem",
                ),
            ])
            .unwrap();
            let certificate = |s: Signal| r.otlp[s.index()].certificate.clone();
            assert_eq!(
                certificate(Signal::Traces),
                Some((
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE".to_owned(),
                    "/etc/otel/traces-ca.pem".into()
                ))
            );
            for signal in [Signal::Logs, Signal::Metrics] {
                assert_eq!(
                    certificate(signal),
                    Some((
                        "OTEL_EXPORTER_OTLP_CERTIFICATE".to_owned(),
                        "/etc/otel/ca.pem".into()
                    ))
                );
            }
        }
    }

    #[test]
    fn percent_decode_is_strict() {
        assert_eq!(percent_decode("a%20b").unwrap(), "a b");
        assert_eq!(percent_decode("caf%C3%A9").unwrap(), "café");
        assert_eq!(percent_decode("plain").unwrap(), "plain");
        assert!(percent_decode("100%").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%ff").is_err());
    }
}
