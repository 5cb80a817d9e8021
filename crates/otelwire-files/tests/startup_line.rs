//! The startup line says where the local files go, or that there are
//! none; `Files::default_dir` is a default that `OTELWIRE_LOG_DIR` beats.

use otelwire_files::{Files, FilesExt};
use otelwire_test::Console;

/// The `outputs` field of the startup line of a pipeline with `files`,
/// reading `OTELWIRE_LOG_DIR` from `log_dir`.
fn outputs(files: Files, log_dir: Option<String>) -> String {
    let console = Console::default();
    let telemetry = otelwire::builder()
        .env_source(move |k| (k == "OTELWIRE_LOG_DIR").then(|| log_dir.clone()).flatten())
        .sdk_disabled(true)
        .log_format(otelwire::LogFormat::Json)
        .writer(console.clone())
        .files(files)
        .build()
        .unwrap();
    telemetry.shutdown_blocking();
    let text = console.text();
    let line = text
        .lines()
        .find(|l| l.contains("telemetry initialised"))
        .unwrap_or_else(|| panic!("no startup line: {text}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["outputs"].as_str().unwrap().to_owned()
}

#[test]
fn without_a_directory_the_startup_line_says_there_are_no_files() {
    assert_eq!(
        outputs(Files::defaults(), None),
        "no files (OTELWIRE_LOG_DIR is not set)"
    );
}

#[test]
fn with_a_directory_it_names_it_and_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let shown = outputs(Files::defaults(), Some(dir.path().display().to_string()));
    assert_eq!(
        shown,
        format!(
            "files in {}: app.jsonl, metrics.jsonl, alerts.jsonl, audit.jsonl",
            dir.path().display()
        )
    );
    assert!(dir.path().join("audit.jsonl").exists());
}

#[test]
fn the_variable_beats_a_default_directory_and_the_default_beats_nothing() {
    let default = tempfile::tempdir().unwrap();
    let operator = tempfile::tempdir().unwrap();
    let files = || Files::defaults().default_dir(default.path());
    let shown = outputs(files(), Some(operator.path().display().to_string()));
    assert!(
        shown.starts_with(&format!("files in {}:", operator.path().display())),
        "{shown}"
    );
    assert!(operator.path().join("app.jsonl").exists());
    assert!(!default.path().join("app.jsonl").exists());

    let shown = outputs(files(), None);
    assert!(
        shown.starts_with(&format!("files in {}:", default.path().display())),
        "{shown}"
    );
    assert!(default.path().join("app.jsonl").exists());
}
