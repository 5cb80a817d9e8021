//! The quickstart binary, run as a user runs it: without a collector, with a
//! bad setting, against otelwire's test collector, and against `rotel`, a
//! third-party OTLP collector, over gRPC and over HTTP.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use otelwire_test::Collector;
use otelwire_tests::rotel::{self, Rotel};

const QUICKSTART: &str = env!("CARGO_BIN_EXE_quickstart");

/// Runs the quickstart with `env` (and a clean OTEL_* environment) and
/// returns (success, stdout, stderr).
fn run_quickstart(env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(QUICKSTART);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("OTELWIRE_LOG_FORMAT", "json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("the quickstart binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[test]
fn runs_without_a_collector_with_one_warning() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let (ok, stdout, stderr) = run_quickstart(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    assert!(ok, "quickstart failed: {stderr}\n{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let lines = json_lines(&stdout);
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" && l["target"] == "otelwire::export")
        .collect();
    assert_eq!(warnings.len(), 1, "expected one export warning:\n{stdout}");
    let msg = warnings[0]["message"].as_str().unwrap();
    assert!(msg.contains(&endpoint), "{msg}");
    assert!(
        lines.iter().any(|l| l["message"] == "order received"),
        "{stdout}"
    );
    // The shutdown summary says what was lost.
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("telemetry shut down: traces exported=0"))),
        "{stdout}"
    );
}

#[test]
fn an_init_error_is_printed_and_exits_non_zero() {
    let (ok, stdout, stderr) = run_quickstart(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "abc"),
    ]);
    assert!(!ok, "should fail: {stdout}");
    assert!(
        stderr.contains("OTEL_TRACES_SAMPLER_ARG=abc: expected a number in [0, 1]"),
        "{stderr}"
    );
}

#[test]
fn environment_sets_the_resource_and_signals_arrive_over_http_and_grpc() {
    let collector = Collector::start().expect("collector starts");
    for (protocol, endpoint) in [
        ("http/protobuf", collector.http_endpoint()),
        ("grpc", collector.grpc_endpoint()),
    ] {
        collector.clear();
        let service = format!("quickstart-{}", protocol.replace('/', "-"));
        let (ok, stdout, stderr) = run_quickstart(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_SERVICE_NAME", &service),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "team=payments,deployment.environment.name=ci",
            ),
        ]);
        assert!(ok, "{stderr}\n{stdout}");
        // Shutdown flushed everything before the process exited.
        let spans = collector.spans_named("place_order");
        assert_eq!(spans.len(), 3, "{protocol}: {:?}", collector.requests());
        let r = &spans[0].resource;
        assert_eq!(r.get_str("service.name"), Some(service.as_str()));
        assert_eq!(r.get_str("service.version"), Some("0.1.0"));
        assert_eq!(r.get_str("team"), Some("payments"));
        assert_eq!(r.get_str("deployment.environment.name"), Some("ci"));
        assert_eq!(r.get_str("telemetry.sdk.language"), Some("rust"));
        assert!(r.get_str("host.name").is_some_and(|h| !h.is_empty()));
        assert!(r.get_i64("process.pid").is_some());
        assert_eq!(r.get_str("service.instance.id").map(str::len), Some(36));

        // The local JSON line and the exported log carry the exported span's ids.
        let line = json_lines(&stdout)
            .into_iter()
            .find(|l| l["message"] == "stock checked")
            .expect("a local line");
        let trace_id = line["trace_id"].as_str().unwrap().to_owned();
        let check = collector
            .spans_named("check_stock")
            .into_iter()
            .find(|s| s.trace_id == trace_id)
            .expect("the local line's trace id is an exported trace");
        assert_eq!(line["span_id"].as_str(), Some(check.span_id.as_str()));
        let logs = collector.logs_for_trace(&trace_id);
        let log = logs
            .iter()
            .find(|l| l.body_str() == Some("stock checked"))
            .expect("the log record of that line");
        assert_eq!(log.span_id.as_deref(), Some(check.span_id.as_str()));
        assert!(log.time_unix_nano > 0, "log records carry their event time");

        let orders = collector.metric_points("quickstart.orders");
        assert_eq!(
            orders.last().and_then(|p| p.as_f64()),
            Some(3.0),
            "{protocol}"
        );
        assert!(
            !collector
                .metric_points("quickstart.order.duration")
                .is_empty()
        );
        assert!(!collector.metric_points("process.memory.usage").is_empty());

        // The secret-named field never left the process in clear.
        assert!(!stdout.contains("tok_live_123"));
        for l in collector.logs() {
            for (_, v) in l.attributes.iter() {
                assert_ne!(v.as_str(), Some("tok_live_123"));
            }
        }
    }
}

#[test]
fn with_otelwire_log_dir_it_writes_the_four_files() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let (ok, stdout, stderr) = run_quickstart(&[
        ("OTELWIRE_LOG_DIR", logs.to_str().unwrap()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
    ]);
    assert!(ok, "{stderr}\n{stdout}");
    let read = |name: &str| -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(logs.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        json_lines(&text)
    };
    let messages = |lines: &[serde_json::Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let app = read("app.jsonl");
    // Every console line up to the shutdown is in app.jsonl too (the
    // warning after `shutdown()` may or may not be: the files were flushed
    // before it and the process exits right after it).
    let before_shutdown = |m: &String| m != "some telemetry could not be exported";
    let console: Vec<String> = messages(&json_lines(&stdout))
        .into_iter()
        .filter(before_shutdown)
        .collect();
    let files: Vec<String> = messages(&app).into_iter().filter(before_shutdown).collect();
    assert_eq!(files, console);
    let stock = app
        .iter()
        .find(|l| l["message"] == "stock checked")
        .unwrap();
    assert_eq!(stock["span"]["name"], "check_stock");
    assert_eq!(stock["trace_id"].as_str().map(str::len), Some(32));
    let text = std::fs::read_to_string(logs.join("app.jsonl")).unwrap();
    assert!(!text.contains("tok_live_123"), "a secret in app.jsonl");
    assert!(text.contains(r#""payment.token":"[REDACTED]""#));

    let alerts = read("alerts.jsonl");
    assert!(
        alerts
            .iter()
            .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"),
        "{alerts:?}"
    );
    let alert_messages = messages(&alerts);
    assert!(
        alert_messages.contains(&"stock low".to_owned()),
        "{alert_messages:?}"
    );
    assert!(
        alert_messages
            .iter()
            .any(|m| m.starts_with("cannot export telemetry")),
        "{alert_messages:?}"
    );

    assert_eq!(messages(&read("metrics.jsonl")), ["orders placed"]);
    assert_eq!(read("metrics.jsonl")[0]["metric.value"], 3);

    let audit = read("audit.jsonl");
    assert_eq!(messages(&audit), ["order approved"; 3]);
    assert!(audit.iter().all(|l| l["event.category"] == "audit"));
}

// ---------------------------------------------------------------------------
// rotel: a third-party OTLP collector

fn interop(protocol: &str) {
    let Some(agent) = rotel::agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rotel = Rotel::start(&agent, dir.path());
    let endpoint = match protocol {
        "grpc" => rotel.grpc_endpoint(),
        _ => rotel.http_endpoint(),
    };
    let (ok, stdout, stderr) = run_quickstart(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
    ]);
    assert!(ok, "{stderr}\n{stdout}");
    assert!(
        !stdout.contains("cannot export"),
        "export to rotel failed:\n{stdout}"
    );
    let line = json_lines(&stdout)
        .into_iter()
        .find(|l| l["message"] == "stock checked")
        .expect("a local line");
    let trace_id = line["trace_id"].as_str().unwrap().to_owned();

    let out = rotel.wait_for_output(
        "the span, the log record and the metric",
        Duration::from_secs(20),
        |o| {
            o.contains("Name           : place_order")
                && o.contains("Body: Str(stock checked)")
                && o.contains("Name: quickstart.orders")
        },
    );
    assert!(
        out.contains(&format!("Trace ID       : {trace_id}")),
        "rotel shows the trace {trace_id}:\n{out}"
    );
    let records = rotel::log_records(&out, "stock checked");
    assert!(
        records
            .iter()
            .any(|r| r.contains(&format!("Trace ID       : {trace_id}"))),
        "the log record carries its trace id {trace_id}:\n{out}"
    );
    assert!(out.contains("-> service.name: Str(quickstart)"), "{out}");
    assert!(
        !out.contains("tok_live_123"),
        "a secret reached the collector"
    );
}

#[test]
fn interoperates_with_rotel_over_grpc() {
    interop("grpc");
}

#[test]
fn interoperates_with_rotel_over_http() {
    interop("http/protobuf");
}

#[test]
fn console_and_none_exporters_need_no_collector() {
    let (ok, stdout, stderr) = run_quickstart(&[
        ("OTEL_TRACES_EXPORTER", "console"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTELWIRE_LOG_FORMAT", "none"),
    ]);
    assert!(ok, "{stderr}\n{stdout}");
    // Only the console span exporter writes to stdout now.
    assert!(stdout.contains("place_order"), "{stdout}");
    assert!(stdout.contains("check_stock"), "{stdout}");
    assert!(!stdout.contains("cannot export"), "{stdout}");
    assert!(!stdout.contains("order received"), "{stdout}");
}
