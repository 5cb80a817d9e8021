//! Code wins over the process environment for every exporter setting,
//! although opentelemetry-otlp reads `OTEL_EXPORTER_OTLP_*` from the process
//! environment itself (issue 16, section 3): what the collector received
//! (the `content-encoding` / `grpc-encoding` it saw, the headers, whether
//! data arrived at all) is checked, for gRPC and HTTP.
//!
//! The exporter reads the real process environment, which a test cannot
//! change safely: each case runs this test binary again as a child process
//! with the variables set (the `child` test, which does nothing unless
//! `OTELWIRE_SDKENV_CHILD` is set).

use std::process::Command;
use std::time::Duration;

use otelwire::{Compression, LogFormat, Protocol, Signal};
use otelwire_test::{Collector, Mode};

const CHILD: &str = "OTELWIRE_SDKENV_CHILD";
const CHILD_ENDPOINT: &str = "OTELWIRE_SDKENV_ENDPOINT";
const CHILD_PROTOCOL: &str = "OTELWIRE_SDKENV_PROTOCOL";

/// The child: builds a pipeline as the scenario says, exports one span and
/// one log record, and prints the init error or the shutdown report.
#[test]
fn child() {
    let Ok(scenario) = std::env::var(CHILD) else {
        return;
    };
    let endpoint = std::env::var(CHILD_ENDPOINT).unwrap();
    let protocol = match std::env::var(CHILD_PROTOCOL).unwrap().as_str() {
        "grpc" => Protocol::Grpc,
        _ => Protocol::HttpProtobuf,
    };
    let mut b = otelwire::builder()
        .endpoint(endpoint)
        .protocol(protocol)
        .log_format(LogFormat::None)
        .metrics(false)
        .process_metrics(false)
        .timeout(Duration::from_secs(5));
    b = match scenario.as_str() {
        "code_none" => b.compression(Compression::None),
        "code_gzip" => b.compression(Compression::Gzip),
        "code_wins" => b.header("x-tenant", "code"),
        "source_wins" => b.env_source(|_| None),
        other => panic!("unknown scenario {other}"),
    };
    let telemetry = match b.build() {
        Ok(t) => t,
        Err(e) => {
            println!("INIT ERROR: {e}");
            return;
        }
    };
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("probe").in_scope(|| tracing::info!("probe log"));
    });
    let report = telemetry.shutdown_blocking();
    println!("REPORT: {report}");
    assert_eq!(report.signal(Signal::Traces).exported, 1, "{report}");
    assert!(report.signal(Signal::Logs).exported >= 1, "{report}");
    assert_eq!(report.dropped(), 0, "{report}");
}

/// Runs the child for `scenario` against `collector` with `env` set;
/// returns its standard output.
fn run(scenario: &str, collector: &Collector, protocol: Protocol, env: &[(&str, &str)]) -> String {
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        _ => collector.http_endpoint(),
    };
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, scenario)
        .env(CHILD_ENDPOINT, endpoint)
        .env(CHILD_PROTOCOL, protocol.as_str());
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k.starts_with("OTELWIRE_") && !k.starts_with("OTELWIRE_SDKENV")
        {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{scenario} {protocol:?}: the child failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// The value of `name` in every request the collector accepted.
fn header_values(collector: &Collector, name: &str) -> Vec<Option<String>> {
    collector
        .request_headers()
        .iter()
        .map(|h| h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .collect()
}

fn encoding_header(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "grpc-encoding",
        _ => "content-encoding",
    }
}

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

/// `Compression::None` in code against `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`:
/// the exporter cannot be told "none" and would gzip, so init refuses,
/// naming the variable; nothing is sent compressed.
#[test]
fn code_compression_none_against_env_gzip_is_refused_by_name() {
    for (var, protocol) in [
        ("OTEL_EXPORTER_OTLP_COMPRESSION", Protocol::Grpc),
        (
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            Protocol::HttpProtobuf,
        ),
    ] {
        let collector = Collector::start().unwrap();
        let out = run("code_none", &collector, protocol, &[(var, "gzip")]);
        assert!(out.contains(&format!("INIT ERROR: {var}=gzip")), "{out}");
        assert!(out.contains("unset it or set it to none"), "{out}");
        assert_eq!(collector.requests().spans, 0);
    }
    // A per-signal none stops the exporter's search, as it stops otelwire's.
    let collector = Collector::start().unwrap();
    let out = run(
        "code_none",
        &collector,
        Protocol::HttpProtobuf,
        &[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "none"),
        ],
    );
    assert!(out.contains("REPORT"), "{out}");
    assert!(
        header_values(&collector, "content-encoding")
            .iter()
            .all(Option::is_none),
        "{:?}",
        collector.request_headers()
    );
}

/// `Compression::Gzip` in code against `none` in both variables: gzip on the wire.
#[test]
fn code_compression_gzip_beats_env_none_on_the_wire() {
    for protocol in PROTOCOLS {
        let collector = Collector::start().unwrap();
        run(
            "code_gzip",
            &collector,
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
                ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
            ],
        );
        let seen = header_values(&collector, encoding_header(protocol));
        assert_eq!(seen.len(), 2, "{protocol:?}: {seen:?}");
        assert!(
            seen.iter().all(|v| v.as_deref() == Some("gzip")),
            "{protocol:?}: {seen:?}"
        );
        assert_eq!(collector.requests().spans, 1);
    }
}

/// Endpoint, protocol, timeout and headers set in code beat the same
/// variables in the process environment, which the exporter also reads: a
/// 1 ms timeout or the wrong endpoint from the environment would lose the
/// data; the collector answers after 300 ms.
#[test]
fn code_endpoint_timeout_and_headers_beat_the_process_environment() {
    for protocol in PROTOCOLS {
        let collector = Collector::builder()
            .mode(Mode::Delay(Duration::from_millis(300)))
            .start()
            .unwrap();
        let other = match protocol {
            Protocol::Grpc => "http/protobuf",
            _ => "grpc",
        };
        run(
            "code_wins",
            &collector,
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", other),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "1"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=env"),
            ],
        );
        assert_eq!(collector.requests().spans, 1, "{protocol:?}");
        let tenants = header_values(&collector, "x-tenant");
        assert!(
            !tenants.is_empty() && tenants.iter().all(|v| v.as_deref() == Some("code")),
            "{protocol:?}: {tenants:?}"
        );
    }
}

/// With a configuration source of its own (`env_source`), the process
/// environment's headers and compression are not sent either.
#[test]
fn a_configuration_source_replaces_the_process_environment_on_the_wire() {
    for protocol in PROTOCOLS {
        let collector = Collector::start().unwrap();
        run(
            "source_wins",
            &collector,
            protocol,
            &[
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-stray=1,authorization=Basic%20eA==",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "1"),
            ],
        );
        assert_eq!(collector.requests().spans, 1, "{protocol:?}");
        for name in ["x-stray", "authorization"] {
            let seen = header_values(&collector, name);
            assert!(
                seen.iter().all(Option::is_none),
                "{protocol:?} {name}: {seen:?}"
            );
        }
    }
}
