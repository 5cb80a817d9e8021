//! The per-signal builder settings (issue 16, section 3): a signal's
//! header, compression, timeout and CA certificate win over the settings
//! for every signal and over every variable, as seen on the wire.

use std::time::Duration;

use otelwire::{Compression, LogFormat, Protocol, ShutdownReport, Signal};
use otelwire_test::{Collector, Mode};

fn env(
    pairs: &'static [(&'static str, &'static str)],
) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// A traces-only pipeline to `endpoint` from `configure`; one span; shut down.
fn one_span(
    endpoint: String,
    vars: &'static [(&'static str, &'static str)],
    configure: impl FnOnce(otelwire::Builder) -> otelwire::Builder,
) -> ShutdownReport {
    let builder = otelwire::builder()
        .env_source(env(vars))
        .endpoint(endpoint)
        .protocol(Protocol::HttpProtobuf)
        .log_format(LogFormat::None)
        .logs(false)
        .metrics(false);
    let telemetry = configure(builder).build().unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("checkout").in_scope(|| {});
    });
    telemetry.shutdown_blocking()
}

fn header<'a>(request: &'a [(String, String)], name: &str) -> Option<&'a str> {
    request
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_signals_header_and_compression_win_on_the_wire() {
    let collector = Collector::start().unwrap();
    let report = one_span(
        collector.http_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=from-env"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
        ],
        |b| {
            b.header("x-tenant", "every-signal")
                .signal_header(Signal::Traces, "x-tenant", "traces")
                .signal_header(Signal::Logs, "x-tenant", "logs")
                .compression(Compression::None)
                .signal_compression(Signal::Traces, Compression::Gzip)
        },
    );
    assert_eq!(report.dropped(), 0, "{report}");
    let requests = collector.request_headers();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(header(&requests[0], "x-tenant"), Some("traces"));
    assert_eq!(header(&requests[0], "content-encoding"), Some("gzip"));

    // Another signal's header does not apply; the one for every signal does.
    let collector = Collector::start().unwrap();
    one_span(collector.http_endpoint(), &[], |b| {
        b.header("x-tenant", "every-signal")
            .signal_header(Signal::Logs, "x-tenant", "logs")
    });
    let requests = collector.request_headers();
    assert_eq!(header(&requests[0], "x-tenant"), Some("every-signal"));
    assert_eq!(header(&requests[0], "content-encoding"), None);
}

#[test]
fn a_signals_timeout_wins_over_the_variables_and_the_setting_for_every_signal() {
    let collector = Collector::start().unwrap();
    collector.set_mode(Mode::Delay(Duration::from_millis(1500)));
    // Every other setting would wait long enough; the signal's does not.
    let report = one_span(
        collector.http_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "10000"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10000"),
        ],
        |b| {
            b.timeout(Duration::from_secs(10))
                .signal_timeout(Signal::Traces, Duration::from_millis(200))
        },
    );
    assert_eq!(report.dropped(), 1, "the export was abandoned: {report}");

    let collector = Collector::start().unwrap();
    collector.set_mode(Mode::Delay(Duration::from_millis(300)));
    let report = one_span(collector.http_endpoint(), &[], |b| {
        b.timeout(Duration::from_millis(100))
            .signal_timeout(Signal::Traces, Duration::from_secs(10))
    });
    assert_eq!(report.dropped(), 0, "{report}");
    assert_eq!(collector.spans_named("checkout").len(), 1);
}

#[test]
fn a_ca_certificate_in_code_wins_over_the_variables() {
    let collector = Collector::builder().tls().start().unwrap();
    let ca = std::env::temp_dir().join(format!("otelwire-signal-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, collector.ca_pem().unwrap()).unwrap();
    let report = one_span(
        collector.http_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                "/no/such/traces-ca.pem",
            ),
        ],
        |b| {
            b.certificate("/no/such/code-ca.pem")
                .signal_certificate(Signal::Traces, &ca)
        },
    );
    assert_eq!(report.dropped(), 0, "{report}");
    assert_eq!(collector.spans_named("checkout").len(), 1);

    // A CA file that cannot be read is an init error naming the setting.
    let err = otelwire::builder()
        .env_source(|_| None)
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .certificate("/no/such/ca.pem")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("certificate") && err.contains("/no/such/ca.pem"),
        "{err}"
    );
}
