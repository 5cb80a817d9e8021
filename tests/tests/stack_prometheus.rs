//! Prometheus (`stack/prometheus/`): `prometheus.yml` takes OTLP the way the
//! rules and dashboards expect (the translation strategy, the promoted
//! resource attributes); promtool 3 checks the real `prometheus.yml` with
//! nothing stripped (it resolves `rules/` and `targets/` beside it),
//! checks every rule file and runs every rule file's unit tests; and those
//! unit tests make every alert fire once and stay silent once.
//!
//! Runs promtool 3.14, built by `stack/local/install`. Whether the metric
//! names the rules use exist, and whether the alerts fire on real traffic,
//! is `stack_end_to_end.rs`, against a real Prometheus.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use otelwire_tests::programs;
use otelwire_tests::stack_files::{at, files, root, run_tool, str_at, strings, yaml};
use serde_yaml_ng::Value;

const PROMETHEUS: &str = "stack/prometheus/prometheus.yml";
const RULES: &str = "stack/prometheus/rules";

/// promtool 3 from `stack/local/install`; `None` (a notice printed) when
/// the programs are not available outside CI. (Built from the module, it
/// reports no version: `promtool --version` cannot tell 3 from 2 here.)
fn promtool() -> Option<PathBuf> {
    programs::binaries().map(|b| b.promtool.clone())
}

/// The alerts of a rule file: name and the rule.
fn alerts(file: &str) -> Vec<(String, Value)> {
    let doc = yaml(file);
    at(&doc, &["groups"])
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{file}: no groups"))
        .iter()
        .flat_map(|g| {
            at(g, &["rules"])
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|r| {
            let name = at(&r, &["alert"])?.as_str()?.to_owned();
            Some((name, r))
        })
        .collect()
}

#[test]
fn prometheus_takes_otlp_with_the_names_and_labels_the_rules_and_dashboards_use() {
    let prom = yaml(PROMETHEUS);
    assert_eq!(
        str_at(&prom, &["otlp", "translation_strategy"], PROMETHEUS),
        "UnderscoreEscapingWithSuffixes",
        "{PROMETHEUS}: the names the rules and dashboards use (http_server_request_duration_seconds_bucket, ..._total)"
    );
    let promoted = strings(at(&prom, &["otlp", "promote_resource_attributes"]));
    for a in [
        "service.name",
        "service.namespace",
        "service.instance.id",
        "deployment.environment.name",
    ] {
        assert!(promoted.iter().any(|p| p == a), "{PROMETHEUS}: promote {a}");
    }
    assert_eq!(
        at(&prom, &["otlp", "keep_identifying_resource_attributes"]).and_then(Value::as_bool),
        Some(true)
    );
    assert!(
        at(&prom, &["storage", "tsdb", "out_of_order_time_window"]).is_some(),
        "{PROMETHEUS}: retried OTLP batches arrive out of order"
    );
}

#[test]
fn prometheus_configuration_passes_promtool_check_config() {
    let Some(promtool) = promtool() else {
        return;
    };
    let rules = files(RULES, ".rules.yml");
    assert!(!rules.is_empty(), "{RULES}: no rule files");
    let (ok, out) = run_tool(
        Command::new(&promtool)
            .arg("check")
            .arg("config")
            .arg(root().join(PROMETHEUS)),
    );
    assert!(ok, "promtool check config {PROMETHEUS}:\n{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rule files found", rules.len())),
        "promtool found every rule file beside {PROMETHEUS}:\n{out}"
    );
    // A file_sd target file that is missing is only a warning: none may be.
    assert!(
        !out.contains("WARNING"),
        "promtool check config {PROMETHEUS} warns (every targets/ file must be there):\n{out}"
    );
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = root().join(RULES);
    for rules in files(RULES, ".rules.yml") {
        let name = rules.rsplit('/').next().unwrap_or(&rules);
        let (ok, out) = run_tool(
            Command::new(&promtool)
                .current_dir(&dir)
                .args(["check", "rules", name]),
        );
        assert!(
            ok && out.contains("SUCCESS"),
            "promtool check rules {name}:\n{out}"
        );
        let test = name.replace(".rules.yml", ".test.yml");
        let (ok, out) = run_tool(
            Command::new(&promtool)
                .current_dir(&dir)
                .args(["test", "rules", &test]),
        );
        assert!(
            ok && out.contains("SUCCESS"),
            "promtool test rules {test}:\n{out}"
        );
    }
}

#[test]
fn unit_tests_make_every_alert_fire_and_stay_silent() {
    let rule_files = files(RULES, ".rules.yml");
    let expected: BTreeSet<&str> = [
        "HighServerErrorRatio",
        "HighLatencyP95",
        "TelemetryDropped",
        "CollectorExportFailures",
        "CollectorRefusedData",
        "CollectorQueueAlmostFull",
        "CollectorDown",
        "HealthScoreLow",
    ]
    .into();
    let mut defined = BTreeSet::new();
    for rules in &rule_files {
        let test = rules.replace(".rules.yml", ".test.yml");
        let t = yaml(&test);
        let file_name = rules.rsplit('/').next().unwrap_or(rules);
        assert_eq!(
            strings(at(&t, &["rule_files"])),
            [file_name],
            "{test} tests {rules}"
        );
        // Each alert fires on a bad case and stays silent on a good one.
        let cases: Vec<&Value> = at(&t, &["tests"])
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{test}: no tests"))
            .iter()
            .flat_map(|c| {
                at(c, &["alert_rule_test"])
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
            })
            .collect();
        for (name, rule) in alerts(rules) {
            assert!(defined.insert(name.clone()), "alert {name} defined twice");
            assert!(
                at(&rule, &["labels", "severity"]).is_some(),
                "{rules}: {name} needs a severity"
            );
            assert!(
                at(&rule, &["annotations", "summary"]).is_some(),
                "{rules}: {name} needs a summary"
            );
            let outcomes: Vec<bool> = cases
                .iter()
                .filter(|c| at(c, &["alertname"]).and_then(Value::as_str) == Some(name.as_str()))
                .map(|c| {
                    at(c, &["exp_alerts"])
                        .and_then(Value::as_sequence)
                        .is_some_and(|a| !a.is_empty())
                })
                .collect();
            assert!(
                outcomes.contains(&true),
                "{test}: no case where {name} fires"
            );
            assert!(
                outcomes.contains(&false),
                "{test}: no case where {name} stays silent"
            );
        }
    }
    assert_eq!(
        defined.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        expected
    );
    for t in files(RULES, ".test.yml") {
        assert!(
            rule_files.contains(&t.replace(".test.yml", ".rules.yml")),
            "{t} tests no rule file"
        );
    }
}
