//! No line lost, duplicated or torn across size rotations and compression.

mod common;

use std::time::{Duration, Instant};

use otelwire_files::{Files, Mode, Sink};
use tracing_subscriber::layer::SubscriberExt;

const THREADS: u64 = 4;
const PER_THREAD: u64 = 250_000;
const MAX_SIZE: u64 = 64 * 1024;

#[test]
fn a_million_lines_from_four_threads_are_each_in_exactly_one_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Files::empty()
        .dir(dir.path())
        .sink(
            Sink::new("app.jsonl")
                .max_size(MAX_SIZE)
                .compress(true)
                .mode(Mode::Lossless)
                .buffer(4096),
        )
        .build_with_env(|_| None)
        .unwrap();
    let handle = layer.handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));

    let started = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let dispatch = dispatch.clone();
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for seq in 0..PER_THREAD {
                        tracing::info!(thread, seq, "line");
                    }
                })
            });
        }
    });
    assert!(handle.flush(Duration::from_secs(120)), "flush timed out");
    let emitted = started.elapsed();

    let health = &handle.health()[0];
    assert_eq!(health.written, THREADS * PER_THREAD, "{health:?}");
    assert_eq!((health.dropped, health.failures), (0, 0), "{health:?}");

    let files = common::sink_files(dir.path(), "app");
    let rotated = files.len() - 1;
    assert!(rotated > 100, "only {rotated} rotations");
    let mut seen = vec![0u8; (THREADS * PER_THREAD) as usize];
    for (name, text) in &files {
        if name != "app.jsonl" {
            assert!(name.ends_with(".jsonl.gz"), "not compressed: {name}");
        }
        assert!(
            text.len() as u64 <= MAX_SIZE,
            "{name} has {} bytes",
            text.len()
        );
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends mid-line"
        );
        for line in text.lines() {
            // Whole and alone on its line: one JSON object with both fields.
            assert!(
                line.starts_with("{\"timestamp\":\"") && line.ends_with('}'),
                "torn line in {name}: {line}"
            );
            assert_eq!(line.matches("\"timestamp\"").count(), 1, "{line}");
            let field = |key: &str| -> u64 {
                let at = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
                let digits: String = line[at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().unwrap()
            };
            let (thread, seq) = (field("\"thread\":"), field("\"seq\":"));
            seen[(thread * PER_THREAD + seq) as usize] += 1;
        }
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let doubled = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!((missing, doubled), (0, 0), "lines missing, lines doubled");
    eprintln!(
        "{} lines in {rotated} rotated files and the current one, emitted and flushed in {emitted:?}",
        THREADS * PER_THREAD
    );
}
