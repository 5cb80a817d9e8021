//! Loki (`stack/loki/config.yaml`) and the Loki queries of the Grafana
//! dashboards: Loki indexes only `service_name` and
//! `deployment_environment_name`, keeps trace ids as structured metadata,
//! retains and compacts, and every dashboard query selects its streams by
//! those index labels.
//!
//! Runs no program: Loki is not built here (docs/stack.md says why).

use std::collections::BTreeSet;

use otelwire_tests::stack_files::{at, dashboards, loki_index_labels, str_at, yaml};
use serde_yaml_ng::Value;

const LOKI: &str = "stack/loki/config.yaml";

#[test]
fn loki_indexes_only_service_and_environment_and_keeps_trace_ids_as_metadata() {
    assert_eq!(
        loki_index_labels(),
        BTreeSet::from([
            "service_name".to_owned(),
            "deployment_environment_name".to_owned()
        ])
    );
    let loki = yaml(LOKI);
    assert_eq!(
        at(&loki, &["limits_config", "allow_structured_metadata"]).and_then(Value::as_bool),
        Some(true),
        "{LOKI}: trace_id and the other attributes are structured metadata"
    );
    assert!(at(&loki, &["limits_config", "retention_period"]).is_some());
    assert_eq!(
        at(&loki, &["compactor", "retention_enabled"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        str_at(&loki, &["schema_config", "configs", "0", "schema"], LOKI),
        "v13"
    );
}

/// The label names of each stream selector (`{...}`) of a LogQL query, in
/// order; string literals and Grafana variables (`$x`, `${x}`) inside a
/// selector are skipped.
fn stream_selectors(expr: &str) -> Vec<Vec<String>> {
    let ident_start = |c: u8| c.is_ascii_alphabetic() || c == b'_';
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(j) = expr[i..].find('{') {
        let mut labels = Vec::new();
        let mut k = i + j + 1;
        let mut expect_label = true;
        while k < b.len() && b[k] != b'}' {
            match b[k] {
                q @ (b'"' | b'\'' | b'`') => {
                    k += 1;
                    while k < b.len() && b[k] != q {
                        if b[k] == b'\\' && q != b'`' {
                            k += 1;
                        }
                        k += 1;
                    }
                    k += 1;
                }
                b'$' => {
                    k += 1;
                    if k < b.len() && b[k] == b'{' {
                        while k < b.len() && b[k] != b'}' {
                            k += 1;
                        }
                        k += 1;
                    } else {
                        while k < b.len() && ident(b[k]) {
                            k += 1;
                        }
                    }
                }
                b',' => {
                    expect_label = true;
                    k += 1;
                }
                c if expect_label && ident_start(c) => {
                    let s = k;
                    while k < b.len() && ident(b[k]) {
                        k += 1;
                    }
                    labels.push(expr[s..k].to_owned());
                    expect_label = false;
                }
                _ => k += 1,
            }
        }
        out.push(labels);
        i = (k + 1).min(b.len());
    }
    out
}

#[test]
fn stream_selectors_are_read_with_their_labels_only() {
    assert_eq!(
        stream_selectors(
            r#"sum by (level) (count_over_time({service_name=~"$service", deployment_environment_name="a,b"} | trace_id != "" [$__auto]))"#
        ),
        [["service_name", "deployment_environment_name"]]
    );
    assert_eq!(
        stream_selectors(r#"{service_name="${service}"} |= "x""#),
        [["service_name"]]
    );
}

#[test]
fn dashboards_query_loki_by_its_stream_labels() {
    let index = loki_index_labels();
    let mut n = 0;
    for (file, d) in dashboards() {
        for p in d["panels"].as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if t["datasource"]["type"] != "loki" {
                    continue;
                }
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: a Loki target without expr"));
                let selectors = stream_selectors(expr);
                assert!(!selectors.is_empty(), "{file}: {expr}: no stream selector");
                for l in selectors.into_iter().flatten() {
                    assert!(
                        index.contains(&l),
                        "{file}: {expr}: {l} is not a Loki stream label ({index:?})"
                    );
                }
                n += 1;
            }
        }
    }
    assert!(n >= 4, "{n} Loki queries");
}
