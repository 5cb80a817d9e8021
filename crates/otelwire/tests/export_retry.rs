//! What the README and the export warning promise, on the wire: a batch the
//! collector cannot take for a while (no answer, HTTP 503, gRPC
//! `UNAVAILABLE`) is sent again and arrives; a batch it refuses for good
//! (400) is sent once and dropped, and the warning says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otelwire::{LogFormat, Protocol};
use otelwire_test::{Collector, Console, Mode};

/// An OTLP/HTTP endpoint that answers each request with the next status
/// of `statuses` (the last one repeats; 0 closes the connection without an
/// answer), and records each request line.
fn endpoint(statuses: &'static [u16]) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            record.lock().unwrap().push(line.trim_end().to_owned());
            let status = statuses[i.min(statuses.len() - 1)];
            if status == 0 {
                continue; // dropped unanswered
            }
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-type: application/x-protobuf\r\n\
                 content-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, seen)
}

/// Sends one span to `url` and shuts down: the report and the console.
fn one_span(url: &str) -> (otelwire::ShutdownReport, String) {
    let console = Console::default();
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url.to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_LOGS_EXPORTER", "none".to_owned()),
        ("OTEL_METRICS_EXPORTER", "none".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ];
    let telemetry = otelwire::builder()
        .env_source(move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .process_metrics(false)
        .log_format(LogFormat::Compact)
        .ansi(false)
        .writer(console.clone())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("checkout").in_scope(|| {});
    });
    // The batch is sent (and retried) before shutdown: wait for its outcome.
    let deadline = Instant::now() + Duration::from_secs(20);
    while telemetry
        .health()
        .signals
        .iter()
        .all(|s| s.exported + s.dropped == 0)
    {
        assert!(Instant::now() < deadline, "no export outcome in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = telemetry.shutdown_blocking();
    let text = console.text();
    (report, text)
}

#[test]
fn a_batch_refused_for_a_while_is_sent_again_and_arrives() {
    let (url, seen) = endpoint(&[0, 503, 200]);
    let (report, console) = one_span(&url);
    assert_eq!(report.dropped(), 0, "{report}\n{console}");
    assert_eq!(
        *seen.lock().unwrap(),
        ["POST /v1/traces HTTP/1.1"; 3],
        "no answer, a refusal, then the same batch accepted"
    );
    assert!(!console.contains("cannot export"), "{console}");

    // 429, 502 and 504 are retried too, up to 3 times after the first try.
    let (url, seen) = endpoint(&[429, 502, 504, 200]);
    let (report, console) = one_span(&url);
    assert_eq!(report.dropped(), 0, "{report}\n{console}");
    assert_eq!(*seen.lock().unwrap(), ["POST /v1/traces HTTP/1.1"; 4]);
}

#[test]
fn a_batch_refused_for_good_is_sent_once_dropped_and_the_warning_says_so() {
    let (url, seen) = endpoint(&[400]);
    let (report, console) = one_span(&url);
    assert_eq!(report.dropped(), 1, "{report}\n{console}");
    assert_eq!(*seen.lock().unwrap(), ["POST /v1/traces HTTP/1.1"]);
    let warning = console
        .lines()
        .find(|l| l.contains("cannot export telemetry"))
        .unwrap_or_else(|| panic!("no warning: {console}"));
    assert!(
        warning.contains(&format!("cannot export telemetry to {url}: ")),
        "{warning}"
    );
    assert!(
        warning.contains("the batch is dropped"),
        "the warning says what happened to the batch: {warning}"
    );
}

#[test]
fn a_batch_refused_with_grpc_unavailable_is_sent_again_and_arrives() {
    let collector = Collector::start().unwrap();
    collector.set_mode(Mode::Refuse);
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .endpoint(collector.grpc_endpoint())
        .protocol(Protocol::Grpc)
        .logs(false)
        .metrics(false)
        .process_metrics(false)
        .log_format(LogFormat::None)
        .scheduled_delay(otelwire::Signal::Traces, Duration::from_millis(50))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("checkout").in_scope(|| {});
    });
    collector
        .wait_for_requests_blocking(|r| r.refused >= 1, Duration::from_secs(20))
        .unwrap();
    collector.set_mode(Mode::Accept);
    let spans = collector
        .wait_for_spans_blocking(1, |s| s.name == "checkout", Duration::from_secs(20))
        .unwrap();
    assert_eq!(spans.len(), 1);
    let report = telemetry.shutdown_blocking();
    assert_eq!(report.dropped(), 0, "{report}");
    assert_eq!(collector.requests().grpc_requests, 1);
}
