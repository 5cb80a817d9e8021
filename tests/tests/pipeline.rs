//! otelwire end to end: what a service emits is what a collector receives,
//! over every transport, with nothing lost or leaked, and with the pipeline
//! telling the truth about what it dropped.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otelwire::{HealthStatus, LogFormat, Protocol, Signal};
use otelwire_test::{Collector, Mode, SpanKind, StatusCode};
use tracing::{error, info, info_span};

/// Configuration from a fixed map instead of the process environment, so
/// tests run in parallel without touching each other.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// Local output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Waits until `pred` holds for the captured text.
    fn wait_until(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while !pred(&self.text()) {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; output:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> otelwire::tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A builder that ignores the process environment, writes JSON lines into
/// `out`, and exports to `endpoint` quickly.
fn builder(endpoint: &str, protocol: Protocol, out: &Captured) -> otelwire::Builder {
    otelwire::builder()
        .env_source(env(&[]))
        .service_name("e2e")
        .endpoint(endpoint)
        .protocol(protocol)
        .log_format(LogFormat::Json)
        .writer(out.clone())
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .scheduled_delay(Signal::Logs, Duration::from_millis(100))
        .metric_export_interval(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .process_metrics(false)
}

fn each_signal_arrives(protocol: Protocol) {
    let collector = Collector::start().unwrap();
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        _ => collector.http_endpoint(),
    };
    let out = Captured::default();
    let telemetry = builder(&endpoint, protocol, &out)
        .service_version("9.9.9")
        .resource_attribute("team", "checkout")
        .build()
        .unwrap();
    let counter = telemetry.meter("e2e").u64_counter("e2e.requests").build();
    let histogram = telemetry
        .meter("e2e")
        .f64_histogram("e2e.latency")
        .with_unit("s")
        .build();

    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let outer = info_span!(
            "outer",
            order.id = 7_i64,
            customer = "acme",
            request.id = "req-42"
        );
        let _o = outer.enter();
        let inner = info_span!("inner", otel.kind = "client", otel.name = "GET /stock");
        info_span!("fine", otel.status_code = "ok").in_scope(|| {});
        let _i = inner.enter();
        info!(user.id = 5_i64, retry = true, "hello world");
        info!(name: "order.placed", order_id = 7_i64, "named event");
        error!(reason = "out of stock", "stock check failed");
        counter.add(
            2,
            &[otelwire::opentelemetry::KeyValue::new("route", "/orders")],
        );
        histogram.record(0.25, &[]);
    });

    let wait = Duration::from_secs(10);
    let outer = collector
        .wait_for_spans_blocking(1, |s| s.name == "outer", wait)
        .unwrap()
        .remove(0);
    let inner = collector
        .wait_for_spans_blocking(1, |s| s.name == "GET /stock", wait)
        .unwrap()
        .remove(0);
    assert_eq!(outer.attributes.get_i64("order.id"), Some(7));
    assert_eq!(outer.attributes.get_str("customer"), Some("acme"));
    assert_eq!(outer.parent_span_id, None);
    assert_eq!(
        inner.parent_span_id.as_deref(),
        Some(outer.span_id.as_str())
    );
    assert_eq!(inner.trace_id, outer.trace_id);
    assert_eq!(inner.kind, SpanKind::Client);
    assert_eq!(
        inner.status.code,
        StatusCode::Error,
        "an ERROR event fails its span"
    );
    assert!(inner.end_time_unix_nano >= inner.start_time_unix_nano);
    let fine = collector
        .wait_for_spans_blocking(1, |s| s.name == "fine", wait)
        .unwrap()
        .remove(0);
    assert_eq!(fine.status.code, StatusCode::Ok);

    let resource = &outer.resource;
    assert_eq!(resource.get_str("service.name"), Some("e2e"));
    assert_eq!(resource.get_str("service.version"), Some("9.9.9"));
    assert_eq!(resource.get_str("team"), Some("checkout"));
    assert_eq!(resource.get_str("telemetry.sdk.language"), Some("rust"));

    let log = collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("hello world"), wait)
        .unwrap()
        .remove(0);
    assert_eq!(log.severity_number, 9);
    assert_eq!(log.severity_text, "INFO");
    assert_eq!(log.attributes.get_i64("user.id"), Some(5));
    assert_eq!(log.attributes.get_bool("retry"), Some(true));
    // The request id of the enclosing span is on every record inside it.
    assert_eq!(log.attributes.get_str("request.id"), Some("req-42"));
    assert_eq!(
        log.attributes.get_str("customer"),
        None,
        "only allow-listed span fields"
    );
    assert_eq!(log.trace_id.as_deref(), Some(inner.trace_id.as_str()));
    assert_eq!(log.span_id.as_deref(), Some(inner.span_id.as_str()));
    assert!(log.time_unix_nano > 0);
    assert_eq!(
        log.event_name, "",
        "no `event file:line` noise as event.name"
    );
    let named = collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("named event"), wait)
        .unwrap()
        .remove(0);
    assert_eq!(named.event_name, "order.placed");
    let err = collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("stock check failed"), wait)
        .unwrap()
        .remove(0);
    assert_eq!(err.severity_number, 17);
    assert_eq!(err.attributes.get_str("reason"), Some("out of stock"));

    let points = collector
        .wait_for_metric_blocking("e2e.requests", |p| p.as_f64() == Some(2.0), wait)
        .unwrap();
    assert_eq!(points[0].attributes.get_str("route"), Some("/orders"));
    assert_eq!(points[0].resource.get_str("service.name"), Some("e2e"));
    collector
        .wait_for_metric_blocking(
            "e2e.latency",
            |p| {
                matches!(
                    p.value,
                    otelwire_test::PointValue::Histogram { count: 1, .. }
                )
            },
            wait,
        )
        .unwrap();

    // The JSON console line carries the ids of the exported span.
    let line = out
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "hello world")
        .expect("local line");
    assert_eq!(line["trace_id"].as_str(), Some(inner.trace_id.as_str()));
    assert_eq!(line["span_id"].as_str(), Some(inner.span_id.as_str()));

    let report = telemetry.shutdown_blocking();
    assert!(report.completed, "{report}");
    assert_eq!(report.dropped(), 0, "{report}");
    // Transport events never became log records (the scope is the target).
    for l in collector.logs() {
        let target = l.scope.name.as_str();
        assert!(
            !["hyper", "h2", "tonic", "tower", "reqwest", "opentelemetry"]
                .iter()
                .any(|t| target.starts_with(t)),
            "transport event exported: {l:?}"
        );
    }
}

#[test]
fn each_signal_arrives_over_grpc() {
    each_signal_arrives(Protocol::Grpc);
}

#[test]
fn each_signal_arrives_over_http_protobuf() {
    each_signal_arrives(Protocol::HttpProtobuf);
}

#[test]
fn each_signal_arrives_over_http_json() {
    each_signal_arrives(Protocol::HttpJson);
}

#[test]
fn gzip_and_headers_reach_the_collector() {
    let collector = Collector::start().unwrap();
    let out = Captured::default();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let endpoint = match protocol {
            Protocol::Grpc => collector.grpc_endpoint(),
            _ => collector.http_endpoint(),
        };
        let telemetry = otelwire::builder()
            .env_source(env(&[
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                // The per-signal variable replaces the generic one for traces.
                (
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "x-tenant=red,x-signal=traces",
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-tenant=green,authorization=Bearer%20s3cr3t-value",
                ),
            ]))
            // Code wins over the environment for the same header.
            .header("x-tenant", "blue")
            .endpoint(endpoint)
            .protocol(protocol)
            .log_format(LogFormat::Json)
            .writer(out.clone())
            .metrics(false)
            .build()
            .unwrap();
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            info_span!("zipped", protocol = ?protocol).in_scope(|| info!("compressed"));
        });
        let report = telemetry.shutdown_blocking();
        assert_eq!(report.dropped(), 0, "{protocol:?}: {report}");
    }
    assert_eq!(collector.spans_named("zipped").len(), 2);
    let headers = collector.request_headers();
    assert!(!headers.is_empty());
    let (mut traces, mut others) = (0, 0);
    for h in &headers {
        let get = |name: &str| h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        // Code wins over both variables.
        assert_eq!(get("x-tenant"), Some("blue"), "{h:?}");
        if get("x-signal") == Some("traces") {
            traces += 1;
            assert_eq!(get("authorization"), None, "{h:?}");
        } else {
            others += 1;
            assert_eq!(get("authorization"), Some("Bearer s3cr3t-value"), "{h:?}");
        }
    }
    assert!(traces >= 2 && others >= 2, "{headers:?}");
    let text = out.text();
    assert!(text.contains("header(s), values hidden"), "{text}");
    assert!(
        !text.contains("s3cr3t-value"),
        "a header value was printed:\n{text}"
    );
}

#[test]
fn shutdown_delivers_every_span_and_log_emitted_just_before() {
    const N: usize = 10_000;
    let collector = Collector::start().unwrap();
    let out = Captured::default();
    let telemetry = builder(&collector.http_endpoint(), Protocol::HttpProtobuf, &out)
        .log_format(LogFormat::None)
        .max_queue_size(Signal::Traces, 16_384)
        .max_queue_size(Signal::Logs, 16_384)
        .scheduled_delay(Signal::Traces, Duration::from_secs(30))
        .scheduled_delay(Signal::Logs, Duration::from_secs(30))
        .shutdown_timeout(Duration::from_secs(30))
        .metrics(false)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        for i in 0..N {
            let span = info_span!("unit", i = i as i64);
            let _g = span.enter();
            info!(i = i as i64, "work done");
        }
    });
    let report = telemetry.shutdown_blocking();
    let traces = report.signal(Signal::Traces);
    let logs = report.signal(Signal::Logs);
    assert!(report.completed, "{report}");
    assert_eq!(
        (traces.emitted, traces.exported, traces.dropped),
        (N as u64, N as u64, 0)
    );
    // One more log record: the startup line.
    assert_eq!(
        (logs.emitted, logs.exported, logs.dropped),
        (N as u64 + 1, N as u64 + 1, 0)
    );
    assert_eq!(collector.spans_named("unit").len(), N);
    assert_eq!(collector.logs_with_body("work done").len(), N);
    let mut seen: Vec<i64> = collector
        .spans_named("unit")
        .iter()
        .map(|s| s.attributes.get_i64("i").unwrap())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), N, "every span exactly once");
}

#[test]
fn an_absent_collector_is_one_warning_then_recovery() {
    let collector = Collector::start().unwrap();
    let endpoint = collector.http_endpoint();
    collector.stop();
    let out = Captured::default();
    let telemetry = builder(&endpoint, Protocol::HttpProtobuf, &out)
        .timeout(Duration::from_millis(500))
        .build()
        .expect("init succeeds without a collector");
    let emit = |msg: &'static str| {
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            info_span!("request").in_scope(|| info!("{msg}"));
        })
    };
    emit("while down");
    out.wait_until("the export warning", Duration::from_secs(10), |t| {
        t.contains("cannot export telemetry")
    });
    // Keep failing for a while: traces, logs and metrics all fail, several times.
    let deadline = Instant::now() + Duration::from_secs(20);
    while telemetry
        .health()
        .signals
        .iter()
        .map(|s| s.failures)
        .sum::<u64>()
        < 4
    {
        assert!(Instant::now() < deadline, "{:?}", telemetry.health());
        emit("still down");
        std::thread::sleep(Duration::from_millis(100));
    }
    let warnings = out
        .json_lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .count();
    assert_eq!(warnings, 1, "one warning, not a flood:\n{}", out.text());
    let health = telemetry.health();
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    let traces = health.signal(Signal::Traces);
    assert!(traces.last_error.as_deref().is_some_and(|e| !e.is_empty()));
    assert!(traces.dropped > 0);

    collector.restart().unwrap();
    emit("back up");
    collector
        .wait_for_logs_blocking(
            1,
            |l| l.body_str() == Some("back up"),
            Duration::from_secs(10),
        )
        .unwrap();
    out.wait_until("the recovery line", Duration::from_secs(10), |t| {
        t.contains("recovered")
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while telemetry.health().signal(Signal::Traces).status != HealthStatus::Ok
        || telemetry.health().signal(Signal::Logs).status != HealthStatus::Ok
    {
        assert!(Instant::now() < deadline, "{:?}", telemetry.health());
        emit("again");
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = telemetry.shutdown_blocking();
    for s in &report.signals {
        assert_eq!(s.exported + s.dropped, s.emitted, "{report}");
    }
}

#[test]
fn a_full_queue_drops_and_counts_exactly() {
    let collector = Collector::start().unwrap();
    collector.set_mode(Mode::Delay(Duration::from_millis(100)));
    let out = Captured::default();
    let telemetry = builder(&collector.http_endpoint(), Protocol::HttpProtobuf, &out)
        .log_format(LogFormat::None)
        .max_queue_size(Signal::Traces, 50)
        .max_queue_size(Signal::Logs, 50)
        .max_export_batch_size(Signal::Traces, 10)
        .max_export_batch_size(Signal::Logs, 10)
        .timeout(Duration::from_secs(5))
        .shutdown_timeout(Duration::from_secs(20))
        .metrics(false)
        .build()
        .unwrap();
    let started = Instant::now();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        for i in 0..2_000_i64 {
            info_span!("burst", i).in_scope(|| info!(i, "burst event"));
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "emitting must not wait for the slow collector: {:?}",
        started.elapsed()
    );
    let report = telemetry.shutdown_blocking();
    assert!(report.completed, "{report}");
    for signal in [Signal::Traces, Signal::Logs] {
        let s = report.signal(signal);
        assert!(
            s.dropped > 0,
            "{signal}: the queue should overflow: {report}"
        );
        assert!(s.exported > 0, "{signal}: {report}");
        assert_eq!(s.exported + s.dropped, s.emitted, "{signal}: {report}");
    }
    assert_eq!(
        collector.spans_named("burst").len() as u64,
        report.signal(Signal::Traces).exported
    );
    // The startup line is a log record too.
    assert_eq!(
        collector.logs().len() as u64,
        report.signal(Signal::Logs).exported
    );
}

#[test]
fn bad_values_name_the_variable_and_the_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "OTEL_TRACES_SAMPLER",
            "sometimes",
            "expected one of always_on",
        ),
        (
            "OTEL_TRACES_SAMPLER_ARG",
            "abc",
            "expected a number in [0, 1]",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "grpc2",
            "expected one of grpc",
        ),
        (
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
            "udp",
            "expected one of grpc",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317", "http://"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x", "http://"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-1", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "br", "gzip"),
        ("OTEL_SDK_DISABLED", "maybe", "true or false"),
        ("OTEL_TRACES_EXPORTER", "jaeger", "otlp, console, none"),
        ("OTEL_LOGS_EXPORTER", "loki", "otlp, console, none"),
        // prometheus is a metrics exporter only (issue 18, section 3); a
        // list takes one push exporter, and none stands alone.
        ("OTEL_TRACES_EXPORTER", "prometheus", "serves metrics only"),
        (
            "OTEL_LOGS_EXPORTER",
            "otlp,prometheus",
            "serves metrics only",
        ),
        ("OTEL_METRICS_EXPORTER", "otlp,console", "not both"),
        ("OTEL_METRICS_EXPORTER", "none,prometheus", "not combined"),
        (
            "OTEL_METRICS_EXPORTER",
            "statsd,prometheus",
            "unknown exporter",
        ),
        (
            "OTEL_PROPAGATORS",
            "zipkin",
            "unknown propagator \"zipkin\"",
        ),
        (
            "OTEL_PROPAGATORS",
            "tracecontext,xray",
            "xray (AWS X-Ray's format) is an OpenTelemetry propagator that otelwire does not support",
        ),
        (
            "OTEL_PROPAGATORS",
            "ottrace",
            "ottrace (OpenTracing's (deprecated) format) is an OpenTelemetry propagator that otelwire does not support",
        ),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "big", "whole number"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", "positive"),
        ("OTEL_BSP_SCHEDULE_DELAY", "1s", "milliseconds"),
        (
            "OTEL_BSP_EXPORT_TIMEOUT",
            "x",
            "otelwire does not support it",
        ),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "-5", "whole number"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "many", "whole number"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "soon", "milliseconds"),
        (
            "OTEL_BLRP_EXPORT_TIMEOUT",
            "1000",
            "otelwire does not support it",
        ),
        (
            "OTEL_METRIC_EXPORT_TIMEOUT",
            "1000",
            "otelwire does not support it",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "both",
            "cumulative, delta, lowmemory",
        ),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "-1", "whole number"),
        ("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "x", "whole number"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "abc", "milliseconds"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "0", "positive"),
        (
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "huge",
            "whole number",
        ),
        (
            "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "-1",
            "whole number",
        ),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "key=value"),
        ("OTELWIRE_LOG_FORMAT", "xml", "pretty, compact, json"),
        ("OTELWIRE_SHUTDOWN_TIMEOUT", "later", "milliseconds"),
        ("OTELWIRE_PROCESS_METRICS", "perhaps", "true or false"),
        ("OTELWIRE_HEALTH_FAILING_AFTER", "1m", "milliseconds"),
        ("RUST_LOG", "info,[=bad", ""),
    ];
    for (var, value, expected) in cases {
        let mut pairs = vec![(*var, *value)];
        if *var == "OTEL_TRACES_SAMPLER_ARG" {
            pairs.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
        }
        let err = otelwire::builder()
            .env_source(env(&pairs))
            .writer(std::io::sink)
            .build()
            .expect_err(&format!("{var}={value} must be refused"));
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{var}={value}")), "{var}: {msg}");
        assert!(msg.contains(expected), "{var}: {msg}");
    }

    // A header value may be a secret: the error names the variable, not the value.
    let err = otelwire::builder()
        .env_source(env(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key")]))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("OTEL_EXPORTER_OTLP_HEADERS="), "{err}");
    assert!(!err.contains("api-key"), "{err}");

    let err = otelwire::builder()
        .env_source(env(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector.example:4318",
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ]))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/ca.pem") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn sdk_disabled_exports_nothing_and_keeps_local_output() {
    let collector = Collector::start().unwrap();
    let out = Captured::default();
    let telemetry = otelwire::builder()
        .env_source(env(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
        ]))
        .log_format(LogFormat::Json)
        .writer(out.clone())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        info_span!("quiet").in_scope(|| info!(n = 1_i64, "still printed"));
    });
    telemetry
        .meter("x")
        .u64_counter("x.count")
        .build()
        .add(1, &[]);
    let report = telemetry.shutdown_blocking();
    assert!(report.signals.iter().all(|s| s.emitted == 0), "{report}");
    let stats = collector.requests();
    assert_eq!(
        (stats.grpc_requests, stats.http_requests),
        (0, 0),
        "{stats:?}"
    );
    assert!(
        out.json_lines()
            .iter()
            .any(|l| l["message"] == "still printed")
    );
}

#[test]
fn secret_fields_appear_in_no_output() {
    let collector = Collector::start().unwrap();
    let out = Captured::default();
    let telemetry = builder(&collector.grpc_endpoint(), Protocol::Grpc, &out)
        .redact_field("ssn")
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let span = info_span!(
            "login",
            user = "ann",
            password = "hunter2",
            ssn = "078-05-1120"
        );
        let _g = span.enter();
        info!(
            api_key = "sk-live-abc123",
            authorization = "Bearer eyJhbGciOi",
            "calling upstream"
        );
        error!(db.password = "pg-pass-xyz", "cannot connect");
    });
    let report = telemetry.shutdown_blocking();
    assert_eq!(report.dropped(), 0, "{report}");

    let secrets = [
        "hunter2",
        "078-05-1120",
        "sk-live-abc123",
        "eyJhbGciOi",
        "pg-pass-xyz",
    ];
    let local = out.text();
    let spans = format!("{:?}", collector.spans());
    let logs = format!("{:?}", collector.logs());
    assert!(spans.contains("login") && logs.contains("calling upstream"));
    for secret in secrets {
        assert!(
            !local.contains(secret),
            "{secret} in local output:\n{local}"
        );
        assert!(!spans.contains(secret), "{secret} in a span:\n{spans}");
        assert!(!logs.contains(secret), "{secret} in a log record:\n{logs}");
    }
    let span = &collector.spans_named("login")[0];
    assert_eq!(span.attributes.get_str("password"), Some("[REDACTED]"));
    assert_eq!(span.attributes.get_str("ssn"), Some("[REDACTED]"));
    assert_eq!(span.attributes.get_str("user"), Some("ann"));
    let log = &collector.logs_with_body("calling upstream")[0];
    assert_eq!(log.attributes.get_str("api_key"), Some("[REDACTED]"));
}

#[test]
fn the_tracing_span_context_can_be_set_from_a_remote_parent() {
    use otelwire::opentelemetry::propagation::TextMapPropagator;
    use otelwire::opentelemetry_sdk::propagation::TraceContextPropagator;
    use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;

    let collector = Collector::start().unwrap();
    let out = Captured::default();
    let telemetry = builder(&collector.http_endpoint(), Protocol::HttpProtobuf, &out)
        .build()
        .unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = HashMap::new();
    headers.insert(
        "traceparent".to_string(),
        format!("00-{trace_id}-00f067aa0ba902b7-01"),
    );
    let parent = TraceContextPropagator::new().extract(&headers);
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let span = info_span!("handle");
        let _ = span.set_parent(parent);
        span.in_scope(|| info!("inside the remote trace"));
    });
    telemetry.shutdown_blocking();
    let span = &collector.spans_named("handle")[0];
    assert_eq!(span.trace_id, trace_id);
    assert_eq!(span.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    let log = &collector.logs_with_body("inside the remote trace")[0];
    assert_eq!(log.trace_id.as_deref(), Some(trace_id));
}

#[test]
fn the_sampler_comes_from_the_environment() {
    let collector = Collector::start().unwrap();
    let out = Captured::default();
    let telemetry = otelwire::builder()
        .env_source(env(&[
            ("OTEL_TRACES_SAMPLER", "always_off"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
        ]))
        .log_format(LogFormat::Json)
        .writer(out.clone())
        .metrics(false)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        info_span!("unsampled").in_scope(|| info!("not traced"));
    });
    let report = telemetry.shutdown_blocking();
    assert_eq!(report.signal(Signal::Traces).emitted, 0, "{report}");
    assert!(collector.spans().is_empty());
    // The log record is still exported; it just has no sampled trace.
    assert_eq!(collector.logs_with_body("not traced").len(), 1);
    let startup = out.json_lines().remove(0);
    assert_eq!(startup["sampler"], "always_off");
}

#[test]
fn https_endpoints_trust_the_configured_certificate() {
    let collector = Collector::builder().tls().start().unwrap();
    let ca = std::env::temp_dir().join(format!("otelwire-e2e-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, collector.ca_pem().unwrap()).unwrap();
    let ca_path = ca.to_string_lossy().into_owned();
    let export = |protocol: Protocol, trust: bool| {
        let endpoint = match protocol {
            Protocol::Grpc => collector.grpc_endpoint(),
            _ => collector.http_endpoint(),
        };
        assert!(endpoint.starts_with("https://"));
        let vars: Vec<(&str, &str)> = if trust {
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_path.as_str())]
        } else {
            Vec::new()
        };
        let telemetry = otelwire::builder()
            .env_source(env(&vars))
            .endpoint(endpoint)
            .protocol(protocol)
            .log_format(LogFormat::None)
            .metrics(false)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            info_span!("secure", trusted = trust).in_scope(|| info!("over tls"));
        });
        telemetry.shutdown_blocking()
    };
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let report = export(protocol, true);
        assert_eq!(
            report.signal(Signal::Traces).exported,
            1,
            "{protocol:?}: {report}"
        );
        assert_eq!(report.dropped(), 0, "{protocol:?}: {report}");
        // Without the CA, the collector's certificate is not trusted.
        let report = export(protocol, false);
        assert_eq!(
            report.signal(Signal::Traces).exported,
            0,
            "{protocol:?}: {report}"
        );
        assert_eq!(
            report.signal(Signal::Traces).dropped,
            1,
            "{protocol:?}: {report}"
        );
    }
    let _ = std::fs::remove_file(&ca);
    let spans = collector.spans_named("secure");
    assert_eq!(spans.len(), 2);
    assert!(
        spans
            .iter()
            .all(|s| s.attributes.get_bool("trusted") == Some(true))
    );
}
