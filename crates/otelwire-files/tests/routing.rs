//! The default files through `otelwire::builder()`: what lands in which
//! file, the same line as the console's, redaction, health.

mod common;

use otelwire::{LogFormat, Telemetry};
use otelwire_files::{Files, FilesExt};
use otelwire_test::Console;
use otelwire_test::noop::NoopSpans;
use tracing::Level;

fn telemetry(dir: &std::path::Path, console: &Console) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("routing")
        .span_exporter(NoopSpans) // spans exist, so lines carry trace ids
        .logs(false)
        .metrics(false)
        .filter("trace")
        .log_format(LogFormat::Json)
        .writer(console.clone())
        .files(Files::defaults().dir(dir))
        .build()
        .unwrap()
}

fn messages(dir: &std::path::Path, stem: &str) -> Vec<String> {
    common::sink_files(dir, stem)
        .iter()
        .flat_map(|(_, text)| common::json_lines(text))
        .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn each_default_file_gets_its_events_in_the_console_format() {
    let dir = tempfile::tempdir().unwrap();
    let console = Console::default();
    let telemetry = telemetry(dir.path(), &console);
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::trace!("trace detail");
        tracing::debug!("debug detail");
        tracing::info!(order.id = 7, "order placed");
        tracing::warn!(order.id = 8, "stock low");
        tracing::error!(order.id = 9, "payment failed");
        tracing::info!(metric.name = "orders", metric.value = 3, "orders counted");
        tracing::info!(metric = true, checks = 4, "checks run");
        tracing::event!(target: "otelwire::audit", Level::INFO, event.name = "login", user.id = 7, "login attempt");
        tracing::event!(target: "otelwire::security", Level::WARN, event.category = "security", "permission denied");
        tracing::event!(target: "orders", Level::INFO, event.category = "audit", "config changed");
        tracing::event!(target: "orders", Level::INFO, event.category = "billing", "not an audit event");
        tracing::info_span!("checkout", order.id = 10).in_scope(|| tracing::info!("in a span"));
    });
    let health = telemetry.health();
    telemetry.shutdown_blocking();
    let d = dir.path();

    let app = messages(d, "app");
    for m in [
        "order placed",
        "stock low",
        "payment failed",
        "orders counted",
        "checks run",
        "login attempt",
        "permission denied",
        "config changed",
        "not an audit event",
        "in a span",
    ] {
        assert_eq!(
            app.iter().filter(|a| *a == m).count(),
            1,
            "{m} in app: {app:?}"
        );
    }
    assert!(
        !app.iter().any(|m| m.contains("detail")),
        "below INFO: {app:?}"
    );
    assert!(
        app.iter().any(|m| m.starts_with("telemetry initialised")),
        "{app:?}"
    );
    assert!(
        app.iter().any(|m| m.starts_with("telemetry shut down")),
        "{app:?}"
    );

    assert_eq!(
        messages(d, "alerts"),
        ["stock low", "payment failed", "permission denied"]
    );
    assert_eq!(messages(d, "metrics"), ["orders counted", "checks run"]);
    assert_eq!(
        messages(d, "audit"),
        ["login attempt", "permission denied", "config changed"]
    );

    // The same formatter as the console: the same line, byte for byte after
    // the timestamp (each output reads the clock itself).
    let console = console.text();
    let app_text = common::read(&d.join("app.jsonl"));
    let in_span = |text: &str| {
        text.lines()
            .find(|l| l.contains("\"in a span\""))
            .unwrap()
            .to_owned()
    };
    let after_time = |l: String| l[l.find(",\"level\"").unwrap()..].to_owned();
    assert_eq!(
        after_time(in_span(&app_text)),
        after_time(in_span(&console))
    );
    let line: serde_json::Value = serde_json::from_str(&in_span(&app_text)).unwrap();
    assert_eq!(line["span"]["name"], "checkout");
    assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
    assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");

    // Each sink is in the health report.
    let names: Vec<&str> = health.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "file app.jsonl",
            "file metrics.jsonl",
            "file alerts.jsonl",
            "file audit.jsonl"
        ]
    );
    assert!(
        health
            .components
            .iter()
            .all(|c| c.dropped == 0 && c.failures == 0)
    );
}

#[test]
fn a_redacted_field_stays_redacted_in_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = telemetry(dir.path(), &Console::default());
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::warn!(user = "bob", password = "hunter2", "login failed");
        tracing::event!(target: "otelwire::audit", Level::INFO, api_key = "k-123456", "key used");
        tracing::info!(
            metric.name = "logins",
            auth.token = "tok_live_999",
            "login counted"
        );
    });
    telemetry.shutdown_blocking();
    for stem in ["app", "alerts", "audit", "metrics"] {
        for (name, text) in common::sink_files(dir.path(), stem) {
            for secret in ["hunter2", "k-123456", "tok_live_999"] {
                assert!(!text.contains(secret), "{secret} in {name}: {text}");
            }
        }
    }
    let alerts = common::json_lines(&common::read(&dir.path().join("alerts.jsonl")));
    assert_eq!(alerts[0]["password"], "[REDACTED]");
    assert_eq!(alerts[0]["user"], "bob");
    let audit = common::json_lines(&common::read(&dir.path().join("audit.jsonl")));
    assert_eq!(audit[0]["api_key"], "[REDACTED]");
}

#[test]
fn without_a_directory_there_are_no_files() {
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .sdk_disabled(true)
        .log_format(LogFormat::None)
        .files(Files::defaults())
        .build()
        .unwrap();
    assert!(telemetry.health().components.is_empty());
}

#[test]
fn otelwire_log_dir_switches_the_files_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-env");
    let p = path.to_str().unwrap().to_owned();
    let telemetry = otelwire::builder()
        .env_source(move |k| match k {
            "OTELWIRE_LOG_DIR" => Some(p.clone()),
            "OTELWIRE_LOG_METRICS_ENABLED" => Some("false".into()),
            _ => None,
        })
        .sdk_disabled(true)
        .log_format(LogFormat::None)
        .files(Files::defaults())
        .build()
        .unwrap();
    assert_eq!(telemetry.health().components.len(), 3);
    telemetry.shutdown_blocking();
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["alerts.jsonl", "app.jsonl", "audit.jsonl"]);
}

/// The builder's baggage attributes reach the files' lines too, with the
/// span fields, as they reach the console's.
#[test]
fn baggage_attributes_are_written_with_the_span_fields() {
    use otelwire::opentelemetry::baggage::BaggageExt;
    use otelwire::opentelemetry::{Context, KeyValue};
    use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;

    let dir = tempfile::tempdir().unwrap();
    let console = Console::default();
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .service_name("routing")
        .span_exporter(NoopSpans)
        .logs(false)
        .metrics(false)
        .log_format(LogFormat::Json)
        .writer(console.clone())
        .baggage_attributes(["tenant.id"])
        .files(Files::defaults().dir(dir.path()))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let span = tracing::info_span!("checkout", order.id = 7);
        let _ = span.set_parent(Context::new().with_baggage([
            KeyValue::new("tenant.id", "acme"),
            KeyValue::new("session", "s3cr3t"),
        ]));
        span.in_scope(|| tracing::info!("order placed"));
    });
    telemetry.shutdown_blocking();
    let app: Vec<serde_json::Value> = common::sink_files(dir.path(), "app")
        .iter()
        .flat_map(|(_, text)| common::json_lines(text))
        .filter(|l| l["message"] == "order placed")
        .collect();
    assert_eq!(app.len(), 1, "{app:?}");
    assert_eq!(app[0]["span"]["tenant.id"], "acme", "{app:?}");
    assert_eq!(app[0]["span"]["order.id"], 7, "{app:?}");
    assert!(app[0]["span"].get("session").is_none(), "{app:?}");
    let console = console.text();
    assert!(
        console.contains(r#""order.id":7,"tenant.id":"acme""#),
        "{console}"
    );
    assert!(!console.contains("s3cr3t"), "{console}");
}
