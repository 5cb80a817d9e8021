//! Hardening, init (issue 19, item 6): no panic on gRPC configuration errors.
//!
//! The trial set `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` with a bad header
//! (`Bad Name=x`, a `%0a` in a value), a bad endpoint (`http://[::1`), or a
//! missing or garbage certificate, and every example exited 101 with
//! "Cannot drop a runtime in a context where blocking is not allowed"
//! inside `#[tokio::main]`, the real error lost. Each value is tried here
//! from a current-thread and from a multi-thread tokio runtime: init returns
//! the `InitError`, naming the variable, and nothing panics.

mod common;

use std::path::PathBuf;

use common::env;
use otelwire::{InitError, LogFormat};

/// A file that is not a certificate, in a directory of this test's own.
fn garbage_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otelwire-hardening-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// One bad configuration: what it is, its variables, what the error names.
type Case = (&'static str, Vec<(&'static str, String)>, Vec<&'static str>);

/// The trial's bad values.
fn cases() -> Vec<Case> {
    let garbage = garbage_file("garbage.pem", "this is not a certificate\n");
    let garbage_pem = garbage_file(
        "garbage-begin.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all !!\n-----END CERTIFICATE-----\n",
    );
    let https = (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "https://127.0.0.1:4317".to_owned(),
    );
    vec![
        (
            "a header name with a space",
            vec![("OTEL_EXPORTER_OTLP_HEADERS", "Bad Name=x".to_owned())],
            vec!["OTEL_EXPORTER_OTLP_HEADERS", "Bad Name"],
        ),
        (
            "a header value with %0a",
            vec![("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=%0a".to_owned())],
            vec!["OTEL_EXPORTER_OTLP_HEADERS", "x-api-key"],
        ),
        (
            "an endpoint with an unclosed bracket",
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1".to_owned())],
            vec!["OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1"],
        ),
        (
            "a missing certificate",
            vec![
                https.clone(),
                (
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    "/nonexistent/otelwire/ca.pem".to_owned(),
                ),
            ],
            vec![
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "/nonexistent/otelwire/ca.pem",
            ],
        ),
        (
            "a garbage certificate",
            vec![
                https.clone(),
                (
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    garbage.display().to_string(),
                ),
            ],
            vec!["OTEL_EXPORTER_OTLP_CERTIFICATE", "garbage.pem"],
        ),
        (
            "a garbage certificate with PEM markers",
            vec![
                https,
                (
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    garbage_pem.display().to_string(),
                ),
            ],
            vec!["OTEL_EXPORTER_OTLP_CERTIFICATE", "garbage-begin.pem"],
        ),
    ]
}

/// What `otelwire::init()` does, minus installing the global subscriber
/// (the same assembly; `build` keeps parallel tests apart).
fn init_with(vars: &[(&'static str, String)]) -> Result<otelwire::Telemetry, InitError> {
    let mut pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"));
    otelwire::builder()
        .env_source(env(&pairs))
        .log_format(LogFormat::None)
        .build()
}

fn check_every_case(flavour: &str) {
    for (what, vars, named) in cases() {
        let err = match init_with(&vars) {
            Ok(_) => panic!("{flavour}: {what}: init succeeded"),
            Err(e) => e.to_string(),
        };
        for n in named {
            assert!(
                err.contains(n),
                "{flavour}: {what}: the error does not name {n:?}: {err}"
            );
        }
        assert!(
            !err.contains("Cannot drop a runtime"),
            "{flavour}: {what}: {err}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn grpc_config_errors_are_init_errors_on_a_current_thread_runtime() {
    check_every_case("current_thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_config_errors_are_init_errors_on_a_multi_thread_runtime() {
    check_every_case("multi_thread");
}

#[test]
fn grpc_config_errors_are_init_errors_without_a_runtime() {
    check_every_case("no runtime");
}

/// A pipeline that did start, with its private gRPC runtime, may be dropped
/// inside an async context too (an early return after init).
#[tokio::test(flavor = "current_thread")]
async fn a_grpc_pipeline_dropped_inside_a_runtime_does_not_panic() {
    let telemetry = init_with(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:9".to_owned(),
        ),
        ("OTELWIRE_SHUTDOWN_TIMEOUT", "500".to_owned()),
    ])
    .expect("a valid gRPC configuration starts");
    drop(telemetry);
}

/// Item 7: `RUST_LOG='info,'` (or `'info, '`, `'warn,,'`) silenced every
/// application line without an error: validation used `EnvFilter`, the
/// fast path `Targets`, which parsed the empty directive differently. The
/// same directives go through a plain `EnvFilter` subscriber here and
/// through otelwire, and the same events must come out of both.
#[test]
fn rust_log_directives_mean_the_same_on_every_path() {
    use otelwire::tracing_subscriber::{self, layer::SubscriberExt as _};

    fn emit() {
        tracing::trace!(target: "app", "app-trace");
        tracing::debug!(target: "app", "app-debug");
        tracing::info!(target: "app", "app-info");
        tracing::warn!(target: "app", "app-warn");
        tracing::error!(target: "app", "app-error");
        tracing::debug!(target: "app::db", "db-debug");
        tracing::info!(target: "app::db", "db-info");
        tracing::info!(target: "other", "other-info");
        tracing::warn!(target: "other", "other-warn");
    }
    const MESSAGES: &[&str] = &[
        "app-trace",
        "app-debug",
        "app-info",
        "app-warn",
        "app-error",
        "db-debug",
        "db-info",
        "other-info",
        "other-warn",
    ];
    let seen = |text: &str| -> Vec<&'static str> {
        MESSAGES
            .iter()
            .copied()
            .filter(|m| text.contains(&format!("\"{m}\"")) || text.contains(&format!(" {m}")))
            .collect()
    };

    for directives in [
        "info,",
        "info, ",
        "warn,,",
        ",info",
        " info , app::db=debug ,",
        "warn,app=debug,",
        "off,app=info,,",
        "INFO,other=Error",
        "app",
        "debug,app::db=warn",
    ] {
        // The parser that validates it: a plain EnvFilter subscriber (which
        // refuses a space around a directive; otelwire trims them).
        let trimmed: Vec<&str> = directives.split(',').map(str::trim).collect();
        let trimmed = trimmed.join(",");
        let reference = common::Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::EnvFilter::builder()
                    .parse(&trimmed)
                    .unwrap_or_else(|e| panic!("{directives:?}: {e}")),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(reference.clone()),
            );
        tracing::subscriber::with_default(subscriber, emit);

        // otelwire, from RUST_LOG.
        let out = common::Captured::default();
        let telemetry = otelwire::builder()
            .env_source(env(&[
                ("RUST_LOG", directives),
                ("OTEL_SDK_DISABLED", "true"),
            ]))
            .log_format(LogFormat::Compact)
            .ansi(false)
            .writer(out.clone())
            .build()
            .unwrap_or_else(|e| panic!("{directives:?}: {e}"));
        tracing::dispatcher::with_default(telemetry.dispatch(), emit);
        drop(telemetry);

        let expected = seen(&reference.text());
        assert_eq!(
            seen(&out.text()),
            expected,
            "RUST_LOG={directives:?}: otelwire and EnvFilter disagree\n{}",
            out.text()
        );
        if directives.trim_start().starts_with("info") {
            assert!(expected.contains(&"app-info"), "{directives:?}");
        }
    }
}

/// Item 8: `OTEL_BSP_MAX_QUEUE_SIZE=99999999999999` aborted the process
/// (allocation failure). Every size variable is bounded, and the error
/// names the variable, the value and the maximum.
#[test]
fn size_variables_are_bounded_with_an_error_naming_the_maximum() {
    for (var, max) in [
        ("OTEL_BSP_MAX_QUEUE_SIZE", otelwire::MAX_QUEUE_SIZE_LIMIT),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", otelwire::MAX_QUEUE_SIZE_LIMIT),
        (
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            otelwire::MAX_QUEUE_SIZE_LIMIT,
        ),
        (
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
            otelwire::MAX_QUEUE_SIZE_LIMIT,
        ),
        (
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            otelwire::MAX_VALUE_LENGTH_LIMIT,
        ),
        (
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            otelwire::MAX_VALUE_LENGTH_LIMIT,
        ),
        (
            "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            otelwire::MAX_VALUE_LENGTH_LIMIT,
        ),
    ] {
        let too_big = (max + 1).to_string();
        for value in [
            "99999999999999",
            "99999999999999999999999",
            "0",
            too_big.as_str(),
        ] {
            let err = otelwire::builder()
                .env_source(env(&[(var, value)]))
                .log_format(LogFormat::None)
                .build()
                .expect_err(&format!("{var}={value}"))
                .to_string();
            assert_eq!(
                err,
                format!("{var}={value}: expected a positive whole number, at most {max}")
            );
        }
        // The maximum itself is accepted.
        otelwire::builder()
            .env_source(env(&[
                (var, &max.to_string()),
                ("OTEL_SDK_DISABLED", "true"),
            ]))
            .log_format(LogFormat::None)
            .build()
            .unwrap_or_else(|e| panic!("{var}={max}: {e}"));
    }

    let err = otelwire::builder()
        .env_source(env(&[]))
        .max_queue_size(otelwire::Signal::Traces, 99_999_999_999_999)
        .log_format(LogFormat::None)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_queue_size") && err.contains("at most 262144"),
        "{err}"
    );
}

/// Item 9: `http://h:4318/?k=v` sent to `/?k=v/v1/traces`; `http://[::1`
/// gave an error that did not name the variable; port `99999` and
/// surrounding spaces got "expected an http:// or https:// URL", which
/// does not say what is wrong.
#[test]
fn endpoints_are_built_as_urls_and_their_errors_say_what_is_wrong() {
    use otelwire_test::Collector;

    // A query string stays a query string.
    let collector = Collector::start().unwrap();
    let base = format!("http://127.0.0.1:{}/?k=v", collector.http_addr().port());
    let telemetry = otelwire::builder()
        .env_source(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &base)]))
        .log_format(LogFormat::None)
        .build()
        .unwrap();
    let health = telemetry.health();
    assert_eq!(
        health.signal(otelwire::Signal::Traces).endpoint.as_deref(),
        Some(
            format!(
                // Shown with its value hidden: a query can carry a key.
                "http://127.0.0.1:{}/v1/traces?k=[REDACTED]",
                collector.http_addr().port()
            )
            .as_str()
        )
    );
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("with-query").in_scope(|| tracing::info!("sent"));
    });
    let report = telemetry.shutdown_blocking();
    assert_eq!(collector.spans_named("with-query").len(), 1, "{report}");
    assert_eq!(collector.logs_with_body("sent").len(), 1, "{report}");

    // Surrounding spaces are ignored, as for every other variable.
    let padded = format!(" http://127.0.0.1:{} ", collector.http_addr().port());
    let telemetry = otelwire::builder()
        .env_source(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &padded),
            ("OTEL_SDK_DISABLED", "true"),
        ]))
        .log_format(LogFormat::None)
        .build()
        .unwrap();
    drop(telemetry);

    for (value, says) in [
        ("http://[::1", "the IPv6 address has no closing ]"),
        (
            "http://127.0.0.1:99999",
            "the port 99999 is out of range (1 to 65535)",
        ),
        ("http://127.0.0.1:43l8", "the port \"43l8\" is not a number"),
        (
            "127.0.0.1:4318",
            "expected an http:// or https:// URL, for example http://localhost:4318",
        ),
        (
            "grpc://127.0.0.1:4317",
            "the scheme \"grpc\" is not http or https",
        ),
        ("http://127.0.0.1 :4318", "the URL contains a space"),
    ] {
        for var in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        ] {
            let err = otelwire::builder()
                .env_source(env(&[(var, value)]))
                .log_format(LogFormat::None)
                .build()
                .expect_err(value)
                .to_string();
            assert!(
                err.starts_with(&format!("{var}={value}: {says}")),
                "{var}={value}: {err}"
            );
        }
    }
}

/// Item 10: `OTEL_RESOURCE_ATTRIBUTES=a=%ZZ` was kept literally and `%ff`
/// became U+FFFD, without an error; 10,000 pairs were accepted and made
/// every export 1.28 MB. The specification discards a value that does not
/// decode; otelwire refuses it, and bounds the count and the total size.
#[test]
fn resource_attributes_are_decoded_strictly_and_bounded() {
    let init = |value: &str| {
        otelwire::builder()
            .env_source(env(&[
                ("OTEL_RESOURCE_ATTRIBUTES", value),
                ("OTEL_SDK_DISABLED", "true"),
            ]))
            .log_format(LogFormat::None)
            .build()
    };
    let err = init("a=%ZZ").unwrap_err().to_string();
    assert_eq!(
        err,
        "OTEL_RESOURCE_ATTRIBUTES=a=%ZZ: a key=value pair (a=%ZZ): \"%ZZ\" is not a \
         percent-escape (% and two hex digits); write a literal % as %25"
    );
    let err = init("a=%ff").unwrap_err().to_string();
    assert_eq!(
        err,
        "OTEL_RESOURCE_ATTRIBUTES=a=%ff: a key=value pair (a=%ff): its percent-escapes \
         decode to bytes that are not UTF-8; write a literal % as %25"
    );
    // What the specification allows still decodes.
    init("a=100%25,b=caf%C3%A9,c=%2C%3D").unwrap();

    // The same rule for headers, whose values are never shown.
    let err = otelwire::builder()
        .env_source(env(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret%ZZ")]))
        .log_format(LogFormat::None)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("OTEL_EXPORTER_OTLP_HEADERS=<hidden>: a header (\"api-key\")"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    // 10,000 pairs: refused, with a short message.
    let many: Vec<String> = (0..10_000).map(|i| format!("key{i}=value{i}")).collect();
    let err = init(&many.join(",")).unwrap_err().to_string();
    assert!(
        err.starts_with("OTEL_RESOURCE_ATTRIBUTES=<10000 attributes, "),
        "{err}"
    );
    assert!(
        err.contains("at most 128 attributes and 16384 bytes"),
        "{err}"
    );
    assert!(err.len() < 300, "{err}");

    // The bounds themselves are accepted; one more is not.
    let at_max: Vec<String> = (0..otelwire::MAX_RESOURCE_ATTRIBUTES)
        .map(|i| format!("k{i}=v"))
        .collect();
    init(&at_max.join(",")).unwrap();
    let big = format!(
        "big={}",
        "x".repeat(otelwire::MAX_RESOURCE_ATTRIBUTES_BYTES)
    );
    assert!(init(&big).is_err());

    // Set in code, counted together with the environment.
    let mut b = otelwire::builder()
        .env_source(env(&[
            ("OTEL_RESOURCE_ATTRIBUTES", &at_max.join(",")),
            ("OTEL_SDK_DISABLED", "true"),
        ]))
        .log_format(LogFormat::None);
    b = b.resource_attribute("one.more", "x");
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("resource_attribute"), "{err}");
}
