//! The audit trail survives a failing disk: a lossless sink keeps its lines
//! across write errors and retries them, blocks (and counts) once its
//! buffer is full, and syncs every batch to disk.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use otelwire::{HealthStatus, InitError, LogFormat, Telemetry};
use otelwire_files::{Files, FilesExt, FlakyDisk, Sink, SyncPolicy};

const WAIT: Duration = Duration::from_secs(20);

/// Waits until `cond` holds, or fails naming `what`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn telemetry(files: Files) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .sdk_disabled(true)
        .log_format(LogFormat::None)
        .files(files)
        .build()
        .unwrap()
}

fn audit(telemetry: &Telemetry, seqs: std::ops::Range<u64>) {
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        for seq in seqs {
            tracing::event!(target: "otelwire::audit", tracing::Level::INFO,
                event.name = "role.granted", seq, "role granted");
        }
    });
}

/// The `seq` of every line of `audit.jsonl`, each line parsed as JSON (a
/// torn line fails the parse).
fn seqs_in_file(dir: &std::path::Path) -> Vec<u64> {
    let text = common::read(&dir.join("audit.jsonl"));
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
    common::json_lines(&text)
        .iter()
        .map(|l| l["seq"].as_u64().unwrap_or_else(|| panic!("no seq: {l}")))
        .collect()
}

fn audit_health(telemetry: &Telemetry) -> otelwire::ComponentHealth {
    telemetry
        .health()
        .components
        .into_iter()
        .find(|c| c.name == "file audit.jsonl")
        .unwrap()
}

#[test]
fn a_disk_that_fails_for_a_while_and_recovers_loses_no_audit_line_nor_writes_one_twice() {
    let dir = tempfile::tempdir().unwrap();
    // Only audit.jsonl fails; app.jsonl, which takes these events too, works.
    let disk = FlakyDisk::only("audit.jsonl");
    let telemetry = telemetry(Files::defaults().dir(dir.path()).faults(disk.clone()));

    audit(&telemetry, 0..50);
    telemetry.force_flush();
    assert_eq!(seqs_in_file(dir.path()), (0..50).collect::<Vec<_>>());

    // Five writes fail in a row.
    disk.fail_writes(5);
    audit(&telemetry, 50..100);
    wait_until("five failed writes", || disk.failed() >= 5);
    let health = audit_health(&telemetry);
    assert!(health.failures >= 5, "{health:?}");
    assert!(
        health
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("cannot write log file audit.jsonl: ")),
        "{health:?}"
    );

    // The disk is gone for 300 ms.
    let failed = disk.failed();
    disk.fail_until(Instant::now() + Duration::from_millis(300));
    audit(&telemetry, 100..150);
    wait_until("a write failing for a while", || disk.failed() > failed);

    // The disk fills up in the middle of a line and refuses even to cut
    // the torn line off; it comes back only when told.
    telemetry.force_flush();
    let failed = disk.failed();
    disk.fill_after(37);
    audit(&telemetry, 150..200);
    wait_until("a short write, then failures", || {
        disk.failed() >= failed + 2
    });
    let torn = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(!torn.ends_with('\n'), "the short write left a torn line");
    assert_eq!(audit_health(&telemetry).status, HealthStatus::Degraded);
    disk.heal();

    telemetry.force_flush();
    let health = audit_health(&telemetry);
    assert_eq!(seqs_in_file(dir.path()), (0..200).collect::<Vec<_>>());
    assert_eq!((health.written, health.dropped), (200, 0), "{health:?}");
    assert_eq!(health.status, HealthStatus::Ok, "{health:?}");
    let report = telemetry.shutdown_blocking();
    assert!(report.completed);
    assert_eq!(seqs_in_file(dir.path()), (0..200).collect::<Vec<_>>());
    let app = common::read(&dir.path().join("app.jsonl"));
    assert_eq!(app.matches("role granted").count(), 200);
}

#[test]
fn a_full_buffer_on_a_failing_disk_blocks_the_caller_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FlakyDisk::new();
    let telemetry = telemetry(
        Files::empty()
            .dir(dir.path())
            .sink(Sink::audit().buffer(8))
            .faults(disk.clone()),
    );
    disk.fail();
    let emitted = Arc::new(AtomicU64::new(0));
    let emitter = {
        let dispatch = telemetry.dispatch().clone();
        let emitted = emitted.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                for seq in 0..100u64 {
                    tracing::event!(target: "otelwire::audit", tracing::Level::INFO,
                        seq, "data accessed");
                    emitted.store(seq + 1, Ordering::SeqCst);
                }
            })
        })
    };
    wait_until("the emitting thread to wait for room", || {
        audit_health(&telemetry).blocked >= 1
    });
    // Memory stays bounded: the buffer, and one batch held for the retry.
    assert!(emitted.load(Ordering::SeqCst) < 100);
    assert!(!emitter.is_finished());
    assert_eq!(audit_health(&telemetry).status, HealthStatus::Degraded);
    assert_eq!(seqs_in_file(dir.path()), Vec::<u64>::new());

    disk.heal();
    emitter.join().unwrap();
    telemetry.force_flush();
    let health = audit_health(&telemetry);
    assert_eq!(seqs_in_file(dir.path()), (0..100).collect::<Vec<_>>());
    assert_eq!((health.written, health.dropped), (100, 0), "{health:?}");
    assert!(health.blocked >= 1 && health.failures >= 1, "{health:?}");
    assert_eq!(health.status, HealthStatus::Ok);
}

#[test]
fn audit_is_synced_per_batch_by_default_and_not_with_sync_none() {
    for (env, code, per_batch) in [
        (None, None, true),
        (Some("none"), None, false),
        (Some("none"), Some(SyncPolicy::Batch), true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let disk = FlakyDisk::new();
        let mut sink = Sink::audit();
        if let Some(policy) = code {
            sink = sink.sync(policy);
        }
        let telemetry = otelwire::builder()
            .env_source(move |k| {
                (k == "OTELWIRE_LOG_AUDIT_SYNC")
                    .then_some(env)?
                    .map(Into::into)
            })
            .sdk_disabled(true)
            .log_format(LogFormat::None)
            .files(
                Files::empty()
                    .dir(dir.path())
                    .sink(sink)
                    .faults(disk.clone()),
            )
            .build()
            .unwrap();
        audit(&telemetry, 0..10);
        wait_until("the lines in the file", || {
            seqs_in_file(dir.path()).len() == 10
        });
        if per_batch {
            wait_until("a sync after the batch", || disk.syncs() >= 1);
        } else {
            assert_eq!(disk.syncs(), 0, "{env:?}: no sync before a flush");
        }
        // A flush (and so shutdown) syncs whatever the policy.
        telemetry.force_flush();
        assert!(disk.syncs() >= 1, "{env:?}");
    }
}

#[test]
fn a_bad_sync_value_is_an_init_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let err = otelwire::builder()
        .env_source(|k| (k == "OTELWIRE_LOG_AUDIT_SYNC").then(|| "always".to_owned()))
        .sdk_disabled(true)
        .log_format(LogFormat::None)
        .files(Files::defaults().dir(dir.path()))
        .build()
        .unwrap_err();
    assert!(matches!(err, InitError::InvalidEnv { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "OTELWIRE_LOG_AUDIT_SYNC=always: expected batch or none"
    );
}
