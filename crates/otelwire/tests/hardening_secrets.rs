//! Hardening, secrets (issue 19, item 1): credentials in a collector URL.
//!
//! The trial set `OTEL_EXPORTER_OTLP_ENDPOINT=http://user:pass@127.0.0.1:4318`
//! and found `user:pass` in the startup line (console, exported log record),
//! in the export-failure warning, in the `InitError` of a bad URL and in the
//! health endpoint's `endpoint`, while the credentials were not sent. Now
//! they are sent as Basic authorization and shown nowhere.

mod common;

use std::time::Duration;

use common::{Captured, env};
use otelwire::{LogFormat, Signal};
use otelwire_test::Collector;
use tracing::{info, info_span};

/// `base64("user:pass")`.
const BASIC: &str = "Basic dXNlcjpwYXNz";

fn assert_no_credentials(what: &str, text: &str) {
    for needle in ["user:pass", "pass@", "user@", "dXNlcjpwYXNz"] {
        assert!(!text.contains(needle), "{what} shows {needle:?}:\n{text}");
    }
}

fn authorization_of_every_request(collector: &Collector) -> Vec<String> {
    collector
        .request_headers()
        .iter()
        .map(|h| {
            h.iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn credentials_in_the_collector_url_are_sent_as_basic_and_never_printed_or_served() {
    for format in [LogFormat::Compact, LogFormat::Json, LogFormat::Pretty] {
        let collector = Collector::start().unwrap();
        let port = collector.http_addr().port();
        let url = format!("http://user:pass@127.0.0.1:{port}");
        let out = Captured::default();
        let telemetry = otelwire::builder()
            .env_source(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
                ("OTEL_SERVICE_NAME", "secrets"),
            ]))
            .log_format(format)
            .ansi(false)
            .writer(out.clone())
            .build()
            .expect("a URL with user info is accepted");

        // What GET /health/telemetry serves (otelwire-axum serialises this).
        let health = serde_json::to_value(telemetry.health()).unwrap();
        assert_no_credentials("the health JSON", &health.to_string());
        assert_eq!(
            health["signals"][0]["endpoint"],
            format!("http://127.0.0.1:{port}/v1/traces")
        );
        assert_eq!(
            telemetry.health().signal(Signal::Logs).endpoint.as_deref(),
            Some(format!("http://127.0.0.1:{port}/v1/logs").as_str())
        );

        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            info_span!("request").in_scope(|| info!("hello"));
        });
        let report = telemetry.shutdown_blocking();
        assert!(report.completed, "{report}");

        let console = out.text();
        assert!(
            console.contains(&format!("127.0.0.1:{port}")),
            "{format:?}: the startup line names the collector:\n{console}"
        );
        assert!(console.contains("hello"), "{console}");
        assert_no_credentials(&format!("the {format:?} console"), &console);

        let logs = collector.logs_with_body("telemetry initialised");
        assert_eq!(logs.len(), 1, "the startup line is exported once");
        assert_no_credentials(
            "what the collector received",
            &format!("{:?} {:?}", collector.logs(), collector.spans()),
        );
        let auth = authorization_of_every_request(&collector);
        assert!(!auth.is_empty());
        assert!(
            auth.iter().all(|a| a == BASIC),
            "every export carries the URL's credentials as Basic: {auth:?}"
        );
    }
}

#[test]
fn credentials_in_a_grpc_url_are_sent_as_basic_too() {
    let collector = Collector::start().unwrap();
    let url = format!(
        "http://user:pass@127.0.0.1:{}",
        collector.grpc_addr().port()
    );
    let out = Captured::default();
    let telemetry = otelwire::builder()
        .env_source(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]))
        .log_format(LogFormat::Json)
        .writer(out.clone())
        .build()
        .unwrap();
    assert_no_credentials(
        "the health JSON",
        &serde_json::to_string(&telemetry.health()).unwrap(),
    );
    tracing::dispatcher::with_default(telemetry.dispatch(), || info!("over grpc"));
    telemetry.shutdown_blocking();
    assert_eq!(collector.logs_with_body("over grpc").len(), 1);
    let auth = authorization_of_every_request(&collector);
    assert!(
        !auth.is_empty() && auth.iter().all(|a| a == BASIC),
        "{auth:?}"
    );
    assert_no_credentials("the console", &out.text());
}

#[test]
fn a_configured_authorization_header_wins_over_the_url() {
    let collector = Collector::start().unwrap();
    let url = format!(
        "http://user:pass@127.0.0.1:{}",
        collector.http_addr().port()
    );
    let telemetry = otelwire::builder()
        .env_source(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20t0ken"),
        ]))
        .log_format(LogFormat::None)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || info!("x"));
    telemetry.shutdown_blocking();
    let auth = authorization_of_every_request(&collector);
    assert!(
        !auth.is_empty() && auth.iter().all(|a| a == "Bearer t0ken"),
        "{auth:?}"
    );
}

#[test]
fn the_export_failure_warning_and_last_error_show_no_credentials() {
    let collector = Collector::start().unwrap();
    let port = collector.http_addr().port();
    collector.stop(); // nothing listens there now
    let url = format!("http://user:pass@127.0.0.1:{port}");
    let out = Captured::default();
    let telemetry = otelwire::builder()
        .env_source(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
            ("OTELWIRE_SHUTDOWN_TIMEOUT", "1000"),
        ]))
        .log_format(LogFormat::Compact)
        .ansi(false)
        .writer(out.clone())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        info_span!("request").in_scope(|| info!("while down"));
    });
    out.wait_until("the export warning", Duration::from_secs(20), |t| {
        t.contains("cannot export telemetry")
    });
    let console = out.text();
    assert!(
        console.contains(&format!(
            "cannot export telemetry to http://127.0.0.1:{port}"
        )),
        "{console}"
    );
    assert_no_credentials("the console", &console);
    let health = serde_json::to_string(&telemetry.health()).unwrap();
    assert!(health.contains("last_error"), "{health}");
    assert_no_credentials("the health JSON", &health);
    telemetry.shutdown_blocking();
    assert_no_credentials("the console after shutdown", &out.text());
}

#[test]
fn init_errors_for_a_bad_url_show_no_credentials() {
    for bad in [
        "http://user:pass@[::1",
        "http://user:pass@127.0.0.1:99999",
        "http://user:pass@127.0.0.1 :4318",
        "user:pass@127.0.0.1:4318",
    ] {
        for var in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ] {
            let err = otelwire::builder()
                .env_source(env(&[(var, bad)]))
                .log_format(LogFormat::None)
                .build()
                .expect_err(bad)
                .to_string();
            assert_no_credentials(&format!("the error for {var}={bad:?}"), &err);
        }
        let err = otelwire::builder()
            .env_source(env(&[]))
            .endpoint(bad)
            .log_format(LogFormat::None)
            .build()
            .expect_err(bad)
            .to_string();
        assert_no_credentials(&format!("the error for endpoint({bad:?})"), &err);
    }
}

/// Item 2: `OTEL_RESOURCE_ATTRIBUTES=db.password=…` was exported in clear
/// with every span, log record and metric point.
#[test]
fn a_resource_attribute_named_like_a_secret_is_redacted() {
    let collector = Collector::start().unwrap();
    let out = Captured::default();
    let telemetry = otelwire::builder()
        .env_source(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "db.password=hunter2-s3cret,team=payments",
            ),
        ]))
        .resource_attribute("api_key", "code-s3cret")
        .log_format(LogFormat::Json)
        .writer(out.clone())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        info_span!("request").in_scope(|| info!("hello"));
    });
    telemetry
        .meter("hardening")
        .u64_counter("hardening.count")
        .build()
        .add(1, &[]);
    telemetry.shutdown_blocking();

    let spans = collector.spans_named("request");
    let logs = collector.logs_with_body("hello");
    let points = collector.metric_points("hardening.count");
    assert_eq!((spans.len(), logs.len()), (1, 1));
    assert!(!points.is_empty());
    for resource in [&spans[0].resource, &logs[0].resource, &points[0].resource] {
        assert_eq!(resource.get_str("db.password"), Some("[REDACTED]"));
        assert_eq!(resource.get_str("api_key"), Some("[REDACTED]"));
        assert_eq!(resource.get_str("team"), Some("payments"));
    }
    let everything = format!(
        "{:?} {:?} {:?} {}",
        collector.spans(),
        collector.logs(),
        collector.metrics(),
        out.text()
    );
    assert!(!everything.contains("s3cret"), "{everything}");
}

/// Runs `test` of this binary in a child process with `vars` as its whole
/// environment (values as raw bytes); returns (exit code, stdout, stderr).
fn run_child(test: &str, vars: &[(&str, &[u8])]) -> (Option<i32>, String, String) {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env_clear()
        .env("OTELWIRE_HARDENING_CHILD", "1");
    for (k, v) in vars {
        cmd.env(k, std::ffi::OsStr::from_bytes(v));
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// In the child only: `otelwire::init()` from the process environment, as
/// a service's `main` would; the error on stderr and exit 3.
#[test]
fn child_init_from_the_process_environment() {
    if std::env::var_os("OTELWIRE_HARDENING_CHILD").is_none() {
        return;
    }
    match otelwire::init() {
        Ok(t) => {
            println!("init ok");
            drop(t);
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(3);
        }
    }
}

/// Item 4: `OTEL_EXPORTER_OTLP_HEADERS='authorization=…\xff'` exported with
/// no header and no word: a variable set to bytes that are not UTF-8 was
/// read as unset.
#[test]
fn a_variable_that_is_not_utf8_is_an_error_naming_it() {
    let (code, _, stderr) = run_child(
        "child_init_from_the_process_environment",
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                b"authorization=Bearer s3cret\xff",
            ),
            ("OTELWIRE_LOG_FORMAT", b"none"),
        ],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_HEADERS=<hidden>: the value is not valid UTF-8"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");

    // A variable that holds no secret shows its value, the bad byte escaped.
    let (code, _, stderr) = run_child(
        "child_init_from_the_process_environment",
        &[
            ("RUST_LOG", b"info,app=debug\xff"),
            ("OTELWIRE_LOG_FORMAT", b"none"),
        ],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(r"RUST_LOG=info,app=debug\xff: the value is not valid UTF-8"),
        "{stderr}"
    );

    // The same variables in UTF-8 start fine.
    let (code, stdout, stderr) = run_child(
        "child_init_from_the_process_environment",
        &[
            ("OTEL_EXPORTER_OTLP_HEADERS", b"authorization=Bearer s3cret"),
            ("OTEL_SDK_DISABLED", b"true"),
            ("OTELWIRE_LOG_FORMAT", b"none"),
        ],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("init ok"), "{stdout}");
}

/// Item 5: a bad `RUST_LOG` or endpoint value with ESC or a newline was
/// written raw to stderr by a service printing its init error.
#[test]
fn init_errors_escape_control_characters_of_the_input() {
    for (var, value, shown) in [
        (
            "RUST_LOG",
            &b"info,app=\x1b[2J\x1b[31mnope\nFAKE LINE"[..],
            r"\x1b[2J\x1b[31mnope\nFAKE LINE",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &b"http://collector\x1b[2J\n:4318"[..],
            r"http://collector\x1b[2J\n:4318",
        ),
    ] {
        let (code, _, stderr) = run_child(
            "child_init_from_the_process_environment",
            &[(var, value), ("OTELWIRE_LOG_FORMAT", b"none")],
        );
        assert_eq!(code, Some(3), "{var}: {stderr}");
        assert!(
            !stderr.contains('\x1b'),
            "{var}: ESC reached stderr: {stderr:?}"
        );
        assert_eq!(
            stderr.matches('\n').count(),
            1,
            "{var}: one line only: {stderr:?}"
        );
        assert!(stderr.contains(var), "{var}: {stderr:?}");
        assert!(stderr.contains(shown), "{var}: {stderr:?}");
    }

    // The same through the builder, in code.
    let err = otelwire::builder()
        .env_source(env(&[]))
        .filter("info,\u{1b}]0;title\u{7}=x\u{2028}y")
        .log_format(LogFormat::None)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        !err.chars().any(|c| c.is_control() || c == '\u{2028}'),
        "{err:?}"
    );
    assert!(err.contains(r"\x1b]0;title\x07"), "{err:?}");
}

/// A collector URL may carry an API key in its query (issue 16, section 4):
/// the transport's error text quotes the full URL, and the URL is printed
/// and served; the key's value is shown nowhere, the key's name is.
#[test]
fn a_query_value_of_the_collector_url_is_in_no_line_or_health_report() {
    const KEY: &str = "k3y-Qu3ry-77zx";
    let collector = Collector::start().unwrap();
    let port = collector.http_addr().port();
    collector.stop(); // nothing listens there now
    let url = format!("http://127.0.0.1:{port}/v1/traces?api_key={KEY}");
    let out = Captured::default();
    let telemetry = otelwire::builder()
        .env_source(env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTELWIRE_SHUTDOWN_TIMEOUT", "1000"),
        ]))
        .log_format(LogFormat::Json)
        .writer(out.clone())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        info_span!("request").in_scope(|| info!("while down"));
    });
    out.wait_until("the export warning", Duration::from_secs(20), |t| {
        t.contains("cannot export telemetry")
    });
    let health = serde_json::to_string(&telemetry.health()).unwrap();
    assert!(health.contains("last_error"), "{health}");
    assert!(health.contains("api_key=[REDACTED]"), "{health}");
    assert!(!health.contains(KEY), "{health}");
    telemetry.shutdown_blocking();
    let console = out.text();
    assert!(console.contains("api_key=[REDACTED]"), "{console}");
    for line in console.lines() {
        assert!(!line.contains(KEY), "{line}");
    }
}
