//! Retention by count and by age, and time-based rotation, on a clock the
//! test moves (no waiting).

mod common;

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use otelwire_files::{Files, FilesHandle, ManualClock, Mode, Period, Sink};
use tracing_subscriber::layer::SubscriberExt;

/// 2026-01-01T10:00:00Z.
const T0: u64 = 1_767_261_600;

fn start(dir: &Path, clock: &ManualClock, sink: Sink) -> (tracing::Dispatch, FilesHandle) {
    let layer = Files::empty()
        .dir(dir)
        .clock(clock.clone())
        .sink(sink.mode(Mode::Lossless))
        .build_with_env(|_| None)
        .unwrap();
    let handle = layer.handle();
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        handle,
    )
}

/// Emits `msg` and waits until it is written (the writer reads the clock).
fn emit(dispatch: &tracing::Dispatch, handle: &FilesHandle, msg: &str) {
    tracing::dispatcher::with_default(dispatch, || tracing::info!(n = msg, "line"));
    assert!(handle.flush(Duration::from_secs(10)));
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn contents(dir: &Path) -> Vec<(String, Vec<String>)> {
    common::sink_files(dir, "app")
        .into_iter()
        .map(|(name, text)| {
            let ns = common::json_lines(&text)
                .iter()
                .map(|l| l["n"].as_str().unwrap().to_owned())
                .collect();
            (name, ns)
        })
        .collect()
}

#[test]
fn retention_keeps_the_newest_files_up_to_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(T0));
    // Each line is ~90 bytes: a 100-byte limit gives one line per file.
    let sink = Sink::new("app.jsonl")
        .max_size(100)
        .max_files(3)
        .compress(false);
    let (dispatch, handle) = start(dir.path(), &clock, sink);
    for i in 0..10 {
        emit(&dispatch, &handle, &format!("{i}"));
        clock.advance(Duration::from_secs(1));
    }
    let files = contents(dir.path());
    assert_eq!(
        files,
        [
            // Named when they were rotated: when the next line came.
            (
                "app.20260101T100007Z.jsonl".to_owned(),
                vec!["6".to_owned()]
            ),
            (
                "app.20260101T100008Z.jsonl".to_owned(),
                vec!["7".to_owned()]
            ),
            (
                "app.20260101T100009Z.jsonl".to_owned(),
                vec!["8".to_owned()]
            ),
            ("app.jsonl".to_owned(), vec!["9".to_owned()]),
        ]
    );
}

#[test]
fn retention_deletes_files_older_than_the_age_by_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(T0));
    let sink = Sink::new("app.jsonl")
        .max_size(100)
        .max_age(Duration::from_secs(7 * 86_400));
    let (dispatch, handle) = start(dir.path(), &clock, sink);
    emit(&dispatch, &handle, "day 0 a");
    emit(&dispatch, &handle, "day 0 b"); // rotates "day 0 a" out, at T0
    clock.advance(Duration::from_secs(5 * 86_400));
    emit(&dispatch, &handle, "day 5"); // rotates "day 0 b" out, at T0 + 5 d
    assert_eq!(
        file_names(dir.path()),
        [
            "app.20260101T100000Z.jsonl.gz",
            "app.20260106T100000Z.jsonl.gz",
            "app.jsonl"
        ]
    );
    // Day 8: the first rotated file is 8 days old, the second 3.
    clock.advance(Duration::from_secs(3 * 86_400));
    emit(&dispatch, &handle, "day 8");
    assert_eq!(
        contents(dir.path()),
        [
            (
                "app.20260106T100000Z.jsonl.gz".to_owned(),
                vec!["day 0 b".to_owned()]
            ),
            (
                "app.20260109T100000Z.jsonl.gz".to_owned(),
                vec!["day 5".to_owned()]
            ),
            ("app.jsonl".to_owned(), vec!["day 8".to_owned()]),
        ]
    );
}

#[test]
fn hourly_rotation_switches_files_at_the_boundary() {
    let dir = tempfile::tempdir().unwrap();
    // 10:59:58
    let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(T0 + 3598));
    let sink = Sink::new("app.jsonl")
        .rotate(Period::Hourly)
        .compress(false);
    let (dispatch, handle) = start(dir.path(), &clock, sink);
    emit(&dispatch, &handle, "10:59:58");
    clock.advance(Duration::from_millis(1999)); // 10:59:59.999
    emit(&dispatch, &handle, "10:59:59.999");
    assert_eq!(
        file_names(dir.path()),
        ["app.jsonl"],
        "no rotation within the hour"
    );
    clock.advance(Duration::from_millis(1)); // 11:00:00.000
    emit(&dispatch, &handle, "11:00:00");
    clock.advance(Duration::from_secs(3599)); // 11:59:59
    emit(&dispatch, &handle, "11:59:59");
    clock.advance(Duration::from_secs(2 * 3600)); // 13:59:59, an idle hour skipped
    emit(&dispatch, &handle, "13:59:59");
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        contents(dir.path()),
        [
            (
                "app.20260101T110000Z.jsonl".to_owned(),
                s(&["10:59:58", "10:59:59.999"])
            ),
            (
                "app.20260101T135959Z.jsonl".to_owned(),
                s(&["11:00:00", "11:59:59"])
            ),
            ("app.jsonl".to_owned(), s(&["13:59:59"])),
        ]
    );
}

#[test]
fn daily_rotation_switches_at_midnight_utc() {
    let dir = tempfile::tempdir().unwrap();
    let midnight = T0 - 10 * 3600 + 86_400; // 2026-01-02T00:00:00Z
    let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(midnight - 1));
    let sink = Sink::new("app.jsonl").rotate(Period::Daily).compress(false);
    let (dispatch, handle) = start(dir.path(), &clock, sink);
    emit(&dispatch, &handle, "23:59:59");
    clock.advance(Duration::from_secs(1));
    emit(&dispatch, &handle, "00:00:00");
    let s = |v: &str| vec![v.to_owned()];
    assert_eq!(
        contents(dir.path()),
        [
            ("app.20260102T000000Z.jsonl".to_owned(), s("23:59:59")),
            ("app.jsonl".to_owned(), s("00:00:00")),
        ]
    );
}
