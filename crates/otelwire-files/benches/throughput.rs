//! Lines per second into one file: otelwire-files (lossless with a sync to
//! disk per batch, as `audit.jsonl` does by default; lossless without
//! syncing; lossy) against tracing-appender's `non_blocking` writer over a
//! rolling appender with `tracing_subscriber::fmt().json()`, same run, same
//! events.
//!
//! ```text
//! cargo bench -p otelwire-files --bench throughput
//! ```
//!
//! Each variant runs on a plain `tracing_subscriber::registry()`, in a fresh
//! directory, with daily rotation; one thread emits the events inside a
//! span, and the clock stops when every line that was not dropped is in the
//! file. Variants are interleaved over several rounds; the median is shown.

#![allow(missing_docs)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use otelwire_files::{Files, Mode, Period, Sink, SyncPolicy};
use tracing_appender::non_blocking::NonBlockingBuilder;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;

const LINES: u64 = 200_000;
const ROUNDS: usize = 5;

fn emit(dispatch: &tracing::Dispatch) {
    tracing::dispatcher::with_default(dispatch, || {
        let span = tracing::info_span!("checkout", customer = "acme");
        let _guard = span.enter();
        for i in 0..LINES {
            tracing::info!(order.id = i, items = 3, amount = 12.5, "order placed");
        }
    });
}

/// Waits until `path` holds `lines` lines; returns when it does.
fn wait_for_lines(path: &Path, lines: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0u64;
    let mut offset = 0usize;
    let mut buf = Vec::new();
    while seen < lines {
        assert!(
            Instant::now() < deadline,
            "{}: {seen} of {lines} lines",
            path.display()
        );
        if let Ok(mut f) = std::fs::File::open(path) {
            buf.clear();
            f.read_to_end(&mut buf).unwrap();
            seen += buf[offset.min(buf.len())..]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            offset = buf.len();
        }
        if seen < lines {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Lines written per second, and lines dropped.
fn otelwire_files(dir: &Path, mode: Mode, sync: SyncPolicy) -> (f64, u64) {
    let layer = Files::empty()
        .dir(dir)
        .sink(
            Sink::new("app.jsonl")
                .rotate(Period::Daily)
                .mode(mode)
                .sync(sync),
        )
        .build_with_env(|_| None)
        .unwrap();
    let handle = layer.handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let started = Instant::now();
    emit(&dispatch);
    assert!(handle.flush(Duration::from_secs(120)));
    let elapsed = started.elapsed();
    let h = &handle.health()[0];
    wait_for_lines(&dir.join("app.jsonl"), h.written);
    (h.written as f64 / elapsed.as_secs_f64(), h.dropped)
}

fn tracing_appender(dir: &Path, lossy: bool) -> (f64, u64) {
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("app")
        .filename_suffix("jsonl")
        .build(dir)
        .unwrap();
    let (writer, guard) = NonBlockingBuilder::default().lossy(lossy).finish(appender);
    let errors = writer.error_counter();
    let layer = tracing_subscriber::fmt::layer().json().with_writer(writer);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let started = Instant::now();
    emit(&dispatch);
    drop(guard);
    let dropped = errors.dropped_lines() as u64;
    let file = only_file(dir);
    wait_for_lines(&file, LINES - dropped);
    let elapsed = started.elapsed();
    ((LINES - dropped) as f64 / elapsed.as_secs_f64(), dropped)
}

fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, small.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };
    let names = [
        "otelwire-files, lossless, sync per batch (audit's default)",
        "otelwire-files, lossless, no sync",
        "otelwire-files, lossy, no sync",
        "tracing-appender non_blocking, lossless",
        "tracing-appender non_blocking, lossy (its default)",
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut drops = vec![0u64; names.len()];
    for _ in 0..rounds {
        for (i, rate) in rates.iter_mut().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let (r, d) = match i {
                0 => otelwire_files(dir.path(), Mode::Lossless, SyncPolicy::Batch),
                1 => otelwire_files(dir.path(), Mode::Lossless, SyncPolicy::None),
                2 => otelwire_files(dir.path(), Mode::Lossy, SyncPolicy::None),
                3 => tracing_appender(dir.path(), false),
                _ => tracing_appender(dir.path(), true),
            };
            rate.push(r);
            drops[i] += d;
        }
    }
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    println!("{LINES} lines per run, {rounds} round(s), median lines/s");
    println!(
        "| Variant | Lines/s | Dropped (all rounds) | vs tracing-appender lossless | vs tracing-appender lossy |"
    );
    println!("|---|---|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {} | {:.2}× | {:.2}× |",
            medians[i],
            drops[i],
            medians[i] / medians[3],
            medians[i] / medians[4]
        );
    }
}
