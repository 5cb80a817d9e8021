//! Failures: an unusable directory at init; a full disk at run time, for a
//! lossy sink.

mod common;

use std::time::Duration;

use otelwire::{HealthStatus, InitError, LogFormat};
use otelwire_files::{Files, FilesExt, Mode, Sink};
use otelwire_test::Console;

#[test]
fn a_directory_that_cannot_be_created_is_an_init_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // Below a regular file, no directory can be created (even as root).
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let logs = blocker.join("logs");
    let err = otelwire::builder()
        .env_source(|_| None)
        .sdk_disabled(true)
        .log_format(LogFormat::None)
        .files(Files::defaults().dir(&logs))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, InitError::Io { path, .. } if *path == logs),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("log directory {}: ", logs.display())),
        "{text}"
    );
}

#[test]
fn a_file_that_cannot_be_opened_is_an_init_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // app.jsonl is a directory: it cannot be opened for writing.
    std::fs::create_dir(dir.path().join("app.jsonl")).unwrap();
    let err = Files::defaults()
        .dir(dir.path())
        .build_with_env(|_| None)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "log file {}: ",
            dir.path().join("app.jsonl").display()
        )),
        "{text}"
    );
}

#[test]
fn a_full_disk_is_counted_and_warned_once_and_the_service_keeps_running_lossy() {
    let full = std::path::Path::new("/dev/full");
    assert!(full.exists(), "this test needs /dev/full (Linux)");
    let dir = tempfile::tempdir().unwrap();
    // Every write to app.jsonl fails with "No space left on device".
    std::os::unix::fs::symlink(full, dir.path().join("app.jsonl")).unwrap();
    let console = Console::default();
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .sdk_disabled(true)
        .log_format(LogFormat::Json)
        .writer(console.clone())
        .files(
            Files::empty()
                .dir(dir.path())
                // Lossy: a lossless sink keeps its lines and retries instead
                // (see durability.rs).
                .sink(Sink::new("app.jsonl").mode(Mode::Lossy)),
        )
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        for i in 0..1000 {
            tracing::info!(i, "still serving");
        }
    });
    // The writer's warning goes out before its flush acknowledgement.
    telemetry.force_flush();
    let health = telemetry.health();
    let report = telemetry.shutdown_blocking();
    assert!(report.completed);

    let file = &health.components[0];
    assert_eq!(file.name, "file app.jsonl");
    assert_eq!(file.status, HealthStatus::Degraded);
    assert_eq!(file.written, 0);
    assert!(file.dropped >= 1000, "{file:?}"); // plus the start-up line
    assert!(file.failures >= 1, "{file:?}");
    let error = file.last_error.as_deref().unwrap();
    assert!(error.contains("No space left on device"), "{error}");

    let console = console.text();
    let warnings: Vec<_> = common::json_lines(&console)
        .into_iter()
        .filter(|l| l["target"] == "otelwire::files")
        .collect();
    assert_eq!(warnings.len(), 1, "one warning a minute:\n{console}");
    assert_eq!(warnings[0]["level"], "WARN");
    let msg = warnings[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("app.jsonl") && msg.contains("the service keeps running"),
        "{msg}"
    );
    assert_eq!(
        console
            .lines()
            .filter(|l| l.contains("still serving"))
            .count(),
        1000,
        "the console kept every line"
    );
}

#[test]
fn lossy_mode_counts_every_line_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Files::empty()
        .dir(dir.path())
        .sink(Sink::new("app.jsonl").mode(Mode::Lossy).buffer(1))
        .build_with_env(|_| None)
        .unwrap();
    let handle = layer.handle();
    use tracing_subscriber::layer::SubscriberExt;
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..20_000 {
            tracing::info!(i, "burst");
        }
    });
    assert!(handle.flush(Duration::from_secs(10)));
    let h = &handle.health()[0];
    let lines = common::read(&dir.path().join("app.jsonl")).lines().count() as u64;
    assert_eq!(h.written, lines);
    assert_eq!(h.written + h.dropped, 20_000, "{h:?}");
}
