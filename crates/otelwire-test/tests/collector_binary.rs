//! The `otelwire-test-collector` binary as a user runs it: what it prints,
//! when it exits and with which code. Data is sent with otelwire itself,
//! pointed at the endpoint the binary printed.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

/// A running collector process, killed if the test ends early.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str], stdin: Stdio) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otelwire-test-collector"))
            .args(["--grpc-port", "0", "--http-port", "0"])
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start otelwire-test-collector");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line that satisfies `pred`, within the deadline.
    fn line_where(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {what} within {DEADLINE:?}; printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The OTLP/HTTP endpoint from the `http …` line (or its JSON form).
    fn http_endpoint(&mut self) -> String {
        let line = self.line_where("the http endpoint", |l| {
            l.starts_with("http ") || l.contains(r#""protocol":"http""#)
        });
        match line.strip_prefix("http ") {
            Some(url) => url.to_owned(),
            None => {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                v["url"].as_str().unwrap().to_owned()
            }
        }
    }

    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// The exit status, within the deadline.
    fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A span with a log record inside, and a counter, from a service named
/// `cli-test`, exported to `endpoint` and flushed.
fn send(endpoint: &str) {
    let telemetry = otelwire_test::builder_for_endpoint(endpoint)
        .service_name("cli-test")
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("place_order", order.id = 42).in_scope(|| {
            tracing::info!(items = 3, "order placed");
        });
    });
    telemetry
        .meter("cli-test")
        .u64_counter("orders")
        .build()
        .add(1, &[]);
    telemetry.force_flush();
    telemetry.shutdown_blocking();
}

#[test]
fn help_goes_to_stdout_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_otelwire-test-collector"))
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.starts_with("otelwire-test-collector: "), "{help}");
    for option in [
        "--grpc-port",
        "--http-port",
        "--print",
        "--json",
        "--exit-on-stdin-close",
    ] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
    assert!(out.stderr.is_empty());
}

#[test]
fn an_unknown_argument_is_a_usage_error_on_stderr() {
    let out = Command::new(env!("CARGO_BIN_EXE_otelwire-test-collector"))
        .arg("--frobnicate")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown argument \"--frobnicate\""), "{err}");
}

#[test]
fn with_stdin_closed_it_runs_until_sigterm_and_exits_0() {
    let mut collector = Running::start(&["--print", "spans"], Stdio::null());
    let endpoint = collector.http_endpoint();
    // Standard input was closed from the start; it still receives.
    send(&endpoint);
    collector.line_where("the span", |l| l.contains(r#"name="place_order""#));
    assert!(collector.child.try_wait().unwrap().is_none());

    collector.terminate();
    assert_eq!(collector.exit_status().code(), Some(0));
}

#[test]
fn exit_on_stdin_close_exits_0_when_stdin_closes() {
    let mut collector = Running::start(&["--exit-on-stdin-close"], Stdio::piped());
    collector.http_endpoint();
    assert!(collector.child.try_wait().unwrap().is_none());
    drop(collector.child.stdin.take());
    assert_eq!(collector.exit_status().code(), Some(0));
}

#[test]
fn print_shows_one_line_per_span_log_record_and_metric_point() {
    let mut collector = Running::start(&["--print", "spans,logs,metrics"], Stdio::null());
    let endpoint = collector.http_endpoint();
    send(&endpoint);

    let span = collector.line_where("the span", |l| l.starts_with("span "));
    let fields: Vec<&str> = span.split(' ').collect();
    let trace_id = fields[1].strip_prefix("trace_id=").unwrap();
    let span_id = fields[2].strip_prefix("span_id=").unwrap();
    assert_eq!(trace_id.len(), 32, "{span}");
    assert_eq!(span_id.len(), 16, "{span}");
    assert_eq!(
        &fields[3..8],
        [
            "parent=-",
            r#"service="cli-test""#,
            r#"name="place_order""#,
            "kind=internal",
            "status=unset",
        ],
        "{span}"
    );
    assert!(fields[8].starts_with("duration="), "{span}");

    let log = collector.line_where("the log record", |l| l.contains("order placed"));
    assert!(log.starts_with("log time=20"), "{log}");
    assert!(
        log.contains(&format!(
            r#"severity=INFO service="cli-test" trace_id={trace_id} span_id={span_id} body="order placed""#
        )),
        "{log}"
    );
    assert!(log.contains(" items=3"), "{log}");

    let metric = collector.line_where("the counter", |l| l.contains(r#"name="orders""#));
    assert!(metric.starts_with("metric time=20"), "{metric}");
    assert!(
        metric.contains(r#"service="cli-test" name="orders" kind=counter unit="" value=1"#),
        "{metric}"
    );

    collector.terminate();
    assert_eq!(collector.exit_status().code(), Some(0));
}

#[test]
fn json_prints_the_same_as_json_lines() {
    let mut collector = Running::start(&["--json"], Stdio::null());
    let endpoint = collector.http_endpoint();
    send(&endpoint);

    let parse = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap();
    let span = parse(&collector.line_where("the span", |l| l.contains(r#""type":"span""#)));
    assert_eq!(span["name"], "place_order");
    assert_eq!(span["service"], "cli-test");
    assert_eq!(span["kind"], "internal");
    assert_eq!(span["status"], "unset");
    assert_eq!(span["parent_span_id"], serde_json::Value::Null);
    assert_eq!(span["attributes"]["order.id"], 42);
    assert!(span["duration_ns"].as_u64().is_some());

    let log = parse(&collector.line_where("the log record", |l| l.contains("order placed")));
    assert_eq!(log["type"], "log");
    assert_eq!(log["severity"], "INFO");
    assert_eq!(log["body"], "order placed");
    assert_eq!(log["trace_id"], span["trace_id"]);
    assert_eq!(log["span_id"], span["span_id"]);
    assert_eq!(log["attributes"]["items"], 3);

    let metric = parse(&collector.line_where("the counter", |l| l.contains(r#""name":"orders""#)));
    assert_eq!(metric["type"], "metric");
    assert_eq!(metric["kind"], "counter");
    assert_eq!(metric["value"], 1);

    // Every line is JSON, the endpoints included.
    for line in &collector.seen {
        parse(line);
    }
    collector.terminate();
    assert_eq!(collector.exit_status().code(), Some(0));
}
