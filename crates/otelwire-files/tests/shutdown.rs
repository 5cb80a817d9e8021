//! Shutdown writes the files first, on a deadline of their own: a collector
//! that never answers cannot keep audit lines out of `audit.jsonl`.

mod common;

use std::time::{Duration, Instant};

use otelwire::{LogFormat, Protocol, Signal, Telemetry};
use otelwire_files::{Files, FilesExt, FlakyDisk};
use otelwire_test::{Collector, Mode};

const LINES: u64 = 5_000;
const DEADLINE: Duration = Duration::from_secs(2);

/// A service exporting to `collector` (which hangs), with the default files
/// in `dir`, whose audit file's disk fails for a moment as shutdown starts;
/// `sync` is `OTELWIRE_LOG_AUDIT_SYNC`.
fn service(
    collector: &Collector,
    protocol: Protocol,
    dir: &std::path::Path,
    sync: Option<&'static str>,
) -> (Telemetry, FlakyDisk) {
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        _ => collector.http_endpoint(),
    };
    let disk = FlakyDisk::only("audit.jsonl");
    let telemetry = otelwire::builder()
        .env_source(move |k| (k == "OTELWIRE_LOG_AUDIT_SYNC").then_some(sync?.to_owned()))
        .service_name("shutdown")
        .endpoint(endpoint)
        .protocol(protocol)
        .log_format(LogFormat::None)
        .timeout(Duration::from_secs(1))
        .scheduled_delay(Signal::Logs, Duration::from_millis(50))
        .process_metrics(false)
        .shutdown_timeout(DEADLINE)
        .files(Files::defaults().dir(dir).faults(disk.clone()))
        .build()
        .unwrap();
    (telemetry, disk)
}

fn emit(telemetry: &Telemetry, disk: &FlakyDisk) {
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        for seq in 0..LINES {
            if seq == LINES - 100 {
                // The last lines are still waiting for the disk at shutdown.
                disk.fail_until(Instant::now() + Duration::from_millis(300));
            }
            tracing::info_span!("request", seq).in_scope(|| {
                tracing::event!(target: "otelwire::audit", tracing::Level::INFO,
                    event.name = "data.accessed", seq, "data accessed");
            });
        }
    });
}

/// Every audit line, in order, once.
fn assert_every_audit_line(dir: &std::path::Path) {
    let text = common::read(&dir.join("audit.jsonl"));
    let seqs: Vec<u64> = common::json_lines(&text)
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len() as u64, LINES, "lines in audit.jsonl");
    assert!(seqs.iter().copied().eq(0..LINES), "in order, none twice");
}

fn assert_bounded(elapsed: Duration, collector: &Collector) {
    // The files' deadline, then the exporters': never more than both.
    assert!(
        elapsed < DEADLINE * 2 + Duration::from_millis(500),
        "shutdown took {elapsed:?}"
    );
    assert!(collector.spans().is_empty() && collector.logs().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn a_hung_collector_keeps_no_audit_line_out_of_the_file_over_grpc() {
    let collector = Collector::start().unwrap();
    collector.set_mode(Mode::Hang);
    let dir = tempfile::tempdir().unwrap();
    let (telemetry, disk) = service(&collector, Protocol::Grpc, dir.path(), None);
    emit(&telemetry, &disk);
    let started = Instant::now();
    let report = telemetry.shutdown().await;
    let elapsed = started.elapsed();
    assert_every_audit_line(dir.path());
    assert_bounded(elapsed, &collector);
    eprintln!("shutdown took {elapsed:?}: {report}");
    let logs = report.signal(Signal::Logs);
    assert_eq!((logs.exported, logs.dropped), (0, logs.emitted), "{report}");
    assert!(disk.failed() > 0, "the disk did fail during shutdown");
}

#[test]
fn a_hung_collector_keeps_no_audit_line_out_of_the_file_over_http() {
    let collector = Collector::start().unwrap();
    collector.set_mode(Mode::Hang);
    let dir = tempfile::tempdir().unwrap();
    // No sync per batch: only shutdown's own flush syncs the file.
    let (telemetry, disk) = service(&collector, Protocol::HttpProtobuf, dir.path(), Some("none"));
    emit(&telemetry, &disk);
    let started = Instant::now();
    let report = telemetry.shutdown_blocking();
    let elapsed = started.elapsed();
    assert_every_audit_line(dir.path());
    assert_bounded(elapsed, &collector);
    eprintln!("shutdown took {elapsed:?}: {report}");
    let logs = report.signal(Signal::Logs);
    assert_eq!((logs.exported, logs.dropped), (0, logs.emitted), "{report}");
    assert!(disk.failed() > 0, "the disk did fail during shutdown");
    // The exporters ran into their deadline, yet the file was synced before
    // shutdown returned: the files went first.
    assert!(!report.completed, "{report}");
    assert!(disk.syncs() >= 1, "audit.jsonl synced at shutdown");
}

#[test]
fn dropping_the_guard_with_a_hung_collector_keeps_every_audit_line() {
    let collector = Collector::start().unwrap();
    collector.set_mode(Mode::Hang);
    let dir = tempfile::tempdir().unwrap();
    let (telemetry, disk) = service(&collector, Protocol::HttpProtobuf, dir.path(), None);
    emit(&telemetry, &disk);
    let started = Instant::now();
    drop(telemetry);
    let elapsed = started.elapsed();
    assert_every_audit_line(dir.path());
    assert_bounded(elapsed, &collector);
}
