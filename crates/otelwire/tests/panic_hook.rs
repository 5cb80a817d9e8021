//! The panic hook `init` installs (issue 18, section 4): a panic in a thread
//! inside a span is one ERROR log record at the collector, with the span's
//! trace id, flushed before the previous hook runs.
//!
//! `init` and the panic hook are once per process, and `RUST_BACKTRACE` is
//! read from the real environment: each case runs this test binary again as
//! a child process (the `child` test, which does nothing unless
//! `OTELWIRE_PANIC_CHILD_ENDPOINT` is set).

use std::process::Command;
use std::time::Duration;

use otelwire::{LogFormat, Signal};
use otelwire_test::{Collector, LogRecord};

const CHILD_ENDPOINT: &str = "OTELWIRE_PANIC_CHILD_ENDPOINT";
/// The exit code of the hook that was in place before `init`: it ends the
/// process at once, so whatever the collector has then was sent before it ran.
const PREVIOUS_HOOK_EXIT: i32 = 42;

#[test]
fn child() {
    let Ok(endpoint) = std::env::var(CHILD_ENDPOINT) else {
        return;
    };
    std::panic::set_hook(Box::new(|_| {
        eprintln!("previous hook ran");
        std::process::exit(PREVIOUS_HOOK_EXIT);
    }));
    let _telemetry = otelwire::builder()
        .env_source(move |k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            _ => None,
        })
        .service_name("panic-hook")
        .metrics(false)
        .process_metrics(false)
        .log_format(LogFormat::None)
        // Long enough that only the hook's flush can deliver the record in time.
        .scheduled_delay(Signal::Logs, Duration::from_secs(60))
        .init()
        .unwrap();
    let span = tracing::info_span!("checkout", order.id = 7);
    let _entered = span.enter();
    let trace_id = {
        use otelwire::opentelemetry::trace::TraceContextExt as _;
        use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt as _;
        span.context().span().span_context().trace_id().to_string()
    };
    println!("trace_id={trace_id}");
    let span = span.clone();
    let _ = std::thread::Builder::new()
        .name("worker-1".into())
        .spawn(move || {
            let _entered = span.enter();
            tracing::info!("about to fail");
            let items: Vec<u32> = Vec::new();
            #[allow(clippy::unnecessary_literal_unwrap)]
            let first: Option<&u32> = items.first();
            first.expect("the order has no items");
        })
        .unwrap()
        .join();
    unreachable!("the previous hook exits the process");
}

/// Runs the child; returns its trace id and the panic record.
fn run_child(backtrace: &str) -> (String, LogRecord, String) {
    let collector = Collector::start().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENDPOINT, collector.http_endpoint())
        .env("RUST_BACKTRACE", backtrace)
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(PREVIOUS_HOOK_EXIT),
        "the previous hook must run last\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("previous hook ran"), "{stderr}");
    let trace_id = stdout
        .lines()
        .find_map(|l| l.split_once("trace_id=").map(|(_, id)| id.trim()))
        .unwrap_or_else(|| panic!("no trace id in\n{stdout}"))
        .to_owned();
    // The process is gone: the record is there already or never.
    let records = collector
        .wait_for_logs_blocking(
            1,
            |l| l.severity_text == "ERROR",
            Duration::from_millis(200),
        )
        .unwrap_or_else(|e| panic!("{e}\nstderr:\n{stderr}"));
    assert_eq!(records.len(), 1, "one record per panic: {records:#?}");
    // The INFO event before it was queued too, and went in the same flush.
    assert_eq!(collector.logs_with_body("about to fail").len(), 1);
    (trace_id, records.into_iter().next().unwrap(), stderr)
}

#[test]
fn a_panic_is_one_error_record_in_its_span_flushed_before_the_previous_hook() {
    let (trace_id, record, _) = run_child("0");
    assert_eq!(record.trace_id.as_deref(), Some(trace_id.as_str()));
    assert!(record.span_id.is_some());
    assert_eq!(record.severity_number, 17);
    assert_eq!(
        record.attr("exception.type").and_then(|v| v.as_str()),
        Some("panic")
    );
    assert_eq!(
        record.attr("exception.message").and_then(|v| v.as_str()),
        Some("the order has no items")
    );
    let file = record.attr("code.file.path").and_then(|v| v.as_str());
    assert!(
        file.is_some_and(|f| f.ends_with("panic_hook.rs")),
        "{file:?}"
    );
    assert!(
        record
            .attr("code.line.number")
            .and_then(|v| v.as_i64())
            .is_some_and(|l| l > 0)
    );
    assert_eq!(
        record.attr("thread.name").and_then(|v| v.as_str()),
        Some("worker-1")
    );
    // A backtrace only when asked for.
    assert!(record.attr("exception.stacktrace").is_none(), "{record:#?}");
    let body = record.body_str().unwrap();
    assert!(
        body.contains("panicked at") && body.contains("the order has no items"),
        "{body}"
    );
}

#[test]
fn rust_backtrace_adds_the_stack_trace() {
    let (trace_id, record, _) = run_child("1");
    assert_eq!(record.trace_id.as_deref(), Some(trace_id.as_str()));
    let stack = record
        .attr("exception.stacktrace")
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no stack trace: {record:#?}"));
    assert!(stack.contains("panic_hook"), "{stack}");
}
