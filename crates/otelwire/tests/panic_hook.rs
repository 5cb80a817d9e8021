//! The panic hook `init` installs (issue 18, section 4): a panic in a thread
//! inside a span is one ERROR log record at the collector, with the span's
//! trace id, flushed before the previous hook runs. Turned off (on the
//! builder or with `OTELWIRE_PANIC_HOOK=false`), the previous hook stays in
//! place and a panic makes no record; a value that is not a boolean is an
//! init error.
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
/// Set: the child calls `Builder::panic_hook(false)`.
const CHILD_BUILDER_OFF: &str = "OTELWIRE_PANIC_CHILD_BUILDER_OFF";
/// The exit code of the hook that was in place before `init`: it ends the
/// process at once, so whatever the collector has then was sent before it ran.
const PREVIOUS_HOOK_EXIT: i32 = 42;

#[test]
fn child() {
    let Ok(endpoint) = std::env::var(CHILD_ENDPOINT) else {
        return;
    };
    let exit_code = PREVIOUS_HOOK_EXIT;
    let previous: Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> = Box::new(move |_| {
        eprintln!("previous hook ran");
        std::process::exit(exit_code);
    });
    // Where the hook lives (it captures a value: the address is its own).
    let previous_at = &*previous as *const _ as *const () as usize;
    std::panic::set_hook(previous);
    let mut builder = otelwire::builder()
        .env_source(move |k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            // The opt-out as a user sets it: in the real environment.
            "OTELWIRE_PANIC_HOOK" => std::env::var(k).ok(),
            _ => None,
        })
        .service_name("panic-hook")
        .metrics(false)
        .process_metrics(false)
        .log_format(LogFormat::None)
        // Long enough that only the hook's flush can deliver the record in time.
        .scheduled_delay(Signal::Logs, Duration::from_secs(60));
    if std::env::var_os(CHILD_BUILDER_OFF).is_some() {
        builder = builder.panic_hook(false);
    }
    let _telemetry = builder.init().unwrap();
    let current = std::panic::take_hook();
    let untouched = &*current as *const _ as *const () as usize == previous_at;
    std::panic::set_hook(current);
    println!("previous hook in place: {untouched}");
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

/// Runs the child with `env` added; returns the collector, its stdout and
/// its stderr, once the previous hook has ended it.
fn spawn_child(backtrace: &str, env: &[(&str, &str)]) -> (Collector, String, String) {
    let collector = Collector::start().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENDPOINT, collector.http_endpoint())
        .env("RUST_BACKTRACE", backtrace)
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("RUST_LOG")
        .env_remove("OTELWIRE_PANIC_HOOK")
        .env_remove(CHILD_BUILDER_OFF);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(PREVIOUS_HOOK_EXIT),
        "the previous hook must run last\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stderr.matches("previous hook ran").count(), 1, "{stderr}");
    (collector, stdout, stderr)
}

/// Runs the child; returns its trace id and the panic record.
fn run_child(backtrace: &str) -> (String, LogRecord, String) {
    let (collector, stdout, stderr) = spawn_child(backtrace, &[]);
    // otelwire's hook is in front of the previous one.
    assert!(stdout.contains("previous hook in place: false"), "{stdout}");
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

/// The two ways to opt out leave the hook in place before `init` alone: it
/// is still the process's hook, it runs once, and the panic makes no record
/// (nor does anything flush the INFO record queued before it).
#[test]
fn turned_off_the_previous_hook_stays_and_a_panic_makes_no_record() {
    for env in [
        [(CHILD_BUILDER_OFF, "1")],
        [("OTELWIRE_PANIC_HOOK", "false")],
    ] {
        let (collector, stdout, stderr) = spawn_child("0", &env);
        assert!(
            stdout.contains("previous hook in place: true"),
            "{env:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        // The process is gone: anything it sent is there already.
        let sent = collector.wait_for_logs_blocking(1, |_| true, Duration::from_millis(200));
        assert!(sent.is_err(), "{env:?}: {sent:#?}");
        assert!(collector.logs().is_empty(), "{env:?}");
    }
}

/// A value of `OTELWIRE_PANIC_HOOK` that is no boolean is an error of
/// `init` that names the variable and the value.
#[test]
fn an_invalid_opt_out_is_an_init_error_naming_it() {
    for value in ["maybe", "2", "disabled"] {
        let err = otelwire::builder()
            .env_source(move |k| (k == "OTELWIRE_PANIC_HOOK").then(|| value.to_owned()))
            .service_name("panic-hook")
            .log_format(LogFormat::None)
            .init()
            .err()
            .unwrap_or_else(|| panic!("OTELWIRE_PANIC_HOOK={value} was accepted"));
        let shown = err.to_string();
        assert!(
            shown.contains(&format!("OTELWIRE_PANIC_HOOK={value}")),
            "{shown}"
        );
    }
}
