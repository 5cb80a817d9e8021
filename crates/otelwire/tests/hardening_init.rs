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
