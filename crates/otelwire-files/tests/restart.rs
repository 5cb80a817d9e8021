//! A restart finishes what a previous run left: nothing lost, nothing twice.

mod common;

use std::io::Write;
use std::time::Duration;

use otelwire_files::{Files, Sink};
use tracing_subscriber::layer::SubscriberExt;

fn gz(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

#[test]
fn a_restart_appends_and_finishes_interrupted_compressions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Crashed after the .gz got its name, before the plain file was removed.
    std::fs::write(d.join("app.20260101T100000Z.jsonl"), "{\"n\":\"a\"}\n").unwrap();
    std::fs::write(
        d.join("app.20260101T100000Z.jsonl.gz"),
        gz("{\"n\":\"a\"}\n"),
    )
    .unwrap();
    // Crashed before compressing, and in the middle of compressing.
    std::fs::write(d.join("app.20260101T110000Z.jsonl"), "{\"n\":\"b\"}\n").unwrap();
    std::fs::write(
        d.join("app.20260101T110000Z.jsonl.gz.tmp"),
        b"\x1f\x8b partial",
    )
    .unwrap();
    // The current file of the previous run.
    std::fs::write(d.join("app.jsonl"), "{\"n\":\"c\"}\n").unwrap();

    let layer = Files::empty()
        .dir(d)
        .sink(Sink::new("app.jsonl"))
        .build_with_env(|_| None)
        .unwrap();
    let handle = layer.handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || tracing::info!(n = "d", "line"));
    assert!(handle.flush(Duration::from_secs(10)));

    let names: Vec<String> = common::sink_files(d, "app")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "app.20260101T100000Z.jsonl.gz",
            "app.20260101T110000Z.jsonl.gz",
            "app.jsonl"
        ]
    );
    let ns: Vec<String> = common::sink_files(d, "app")
        .iter()
        .flat_map(|(_, text)| common::json_lines(text))
        .map(|l| l["n"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ns, ["a", "b", "c", "d"]);
}
