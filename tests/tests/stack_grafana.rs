//! Grafana (`stack/grafana/`): the provisioned data sources (Prometheus,
//! Loki, Tempo) with their fixed uids and the compose services' URLs, the
//! links between them (traces to logs and metrics, logs to traces,
//! exemplars to traces) pointing at data sources that exist, and the
//! dashboards, each with its own uid, using only provisioned data sources.
//!
//! Runs no program: Grafana is not built here (docs/stack.md says why).

use std::collections::{BTreeMap, BTreeSet};

use otelwire_tests::stack_files::{
    COMPOSE, at, dashboards, host_port, loki_index_labels, scalar, str_at, strings, yaml,
};
use serde_yaml_ng::Value;

const DATASOURCES: &str = "stack/grafana/provisioning/datasources/datasources.yaml";

/// uid → type of the provisioned data sources.
fn datasource_types() -> BTreeMap<String, String> {
    let ds = yaml(DATASOURCES);
    at(&ds, &["datasources"])
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{DATASOURCES}: no datasources"))
        .iter()
        .map(|d| {
            (
                str_at(d, &["uid"], DATASOURCES).to_owned(),
                str_at(d, &["type"], DATASOURCES).to_owned(),
            )
        })
        .collect()
}

/// The provisioned data source with the uid `uid`.
fn datasource(uid: &str) -> Value {
    at(&yaml(DATASOURCES), &["datasources"])
        .and_then(Value::as_sequence)
        .and_then(|ds| {
            ds.iter()
                .find(|d| at(d, &["uid"]).and_then(Value::as_str) == Some(uid))
                .cloned()
        })
        .unwrap_or_else(|| panic!("{DATASOURCES}: no data source {uid}"))
}

/// Every value of a key named `key`, anywhere in a YAML document.
fn yaml_values_of(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, x) in m {
                if k.as_str() == Some(key) {
                    out.push(scalar(x));
                }
                yaml_values_of(x, key, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| yaml_values_of(x, key, out)),
        _ => {}
    }
}

/// Every `{"type": .., "uid": ..}` data source reference in a dashboard:
/// where it is, its type and its uid.
fn json_datasources(v: &serde_json::Value, path: &str, out: &mut Vec<(String, String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(ds) = m.get("datasource").and_then(|d| d.as_object()) {
                let field = |k: &str| ds.get(k).and_then(|t| t.as_str()).unwrap_or("").to_owned();
                out.push((path.to_owned(), field("type"), field("uid")));
            }
            for (k, x) in m {
                json_datasources(x, &format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                json_datasources(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `server.http_listen_port` of a Loki or Tempo configuration.
fn http_listen_port(file: &str) -> u16 {
    at(&yaml(file), &["server", "http_listen_port"])
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("{file}: server.http_listen_port"))
}

#[test]
fn grafana_data_sources_are_the_compose_backends_with_fixed_uids() {
    let types = datasource_types();
    assert_eq!(
        types,
        BTreeMap::from([
            ("prometheus".to_owned(), "prometheus".to_owned()),
            ("loki".to_owned(), "loki".to_owned()),
            ("tempo".to_owned(), "tempo".to_owned()),
        ])
    );
    // The URLs are the compose services' ports.
    let compose = yaml(COMPOSE);
    for (uid, port) in [
        ("prometheus", 9090),
        ("loki", http_listen_port("stack/loki/config.yaml")),
        ("tempo", http_listen_port("stack/tempo/config.yaml")),
    ] {
        let url = str_at(&datasource(uid), &["url"], DATASOURCES).to_owned();
        assert_eq!(
            host_port(&url),
            (uid.to_owned(), port),
            "{DATASOURCES}: {uid}"
        );
        assert!(
            at(&compose, &["services", uid]).is_some(),
            "{DATASOURCES}: {uid} is no service of {COMPOSE}"
        );
    }
}

#[test]
fn grafana_data_sources_link_logs_traces_and_metrics() {
    let types = datasource_types();
    // Every link between data sources points at one that exists.
    let mut refs = Vec::new();
    yaml_values_of(&yaml(DATASOURCES), "datasourceUid", &mut refs);
    assert!(refs.len() >= 6, "{refs:?}");
    for uid in &refs {
        assert!(
            types.contains_key(uid),
            "{DATASOURCES}: a link to data source {uid}, which does not exist"
        );
    }

    // Tempo: a span's logs (by trace id, in the service's Loki stream), its
    // metrics, the service map, the node graph and the Loki search.
    let tempo = datasource("tempo");
    let j = at(&tempo, &["jsonData"]).expect("tempo: jsonData");
    assert_eq!(
        at(j, &["tracesToLogsV2", "datasourceUid"]).and_then(Value::as_str),
        Some("loki")
    );
    assert_eq!(
        at(j, &["tracesToLogsV2", "filterByTraceID"]).and_then(Value::as_bool),
        Some(true)
    );
    let service_tag = at(j, &["tracesToLogsV2", "tags"])
        .and_then(Value::as_sequence)
        .and_then(|tags| {
            tags.iter()
                .find(|t| at(t, &["key"]).and_then(Value::as_str) == Some("service.name"))
        })
        .expect("tracesToLogsV2 maps service.name");
    let loki_label = str_at(service_tag, &["value"], DATASOURCES);
    assert!(
        loki_index_labels().contains(loki_label),
        "tracesToLogsV2 maps service.name to {loki_label}, which is not a Loki stream label"
    );
    assert_eq!(
        at(j, &["tracesToMetrics", "datasourceUid"]).and_then(Value::as_str),
        Some("prometheus")
    );
    assert!(!strings(at(j, &["tracesToMetrics", "queries"])).is_empty());
    assert_eq!(
        at(j, &["serviceMap", "datasourceUid"]).and_then(Value::as_str),
        Some("prometheus")
    );
    assert_eq!(
        at(j, &["nodeGraph", "enabled"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        at(j, &["lokiSearch", "datasourceUid"]).and_then(Value::as_str),
        Some("loki")
    );

    // Loki: the trace_id structured metadata links to Tempo.
    let loki = datasource("loki");
    let field = at(&loki, &["jsonData", "derivedFields", "0"]).expect("loki: a derived field");
    assert_eq!(
        at(field, &["matcherType"]).and_then(Value::as_str),
        Some("label")
    );
    assert_eq!(
        at(field, &["matcherRegex"]).and_then(Value::as_str),
        Some("trace_id")
    );
    assert_eq!(
        at(field, &["datasourceUid"]).and_then(Value::as_str),
        Some("tempo")
    );

    // Prometheus: exemplars' trace_id opens the trace.
    let prom = datasource("prometheus");
    let ex = at(&prom, &["jsonData", "exemplarTraceIdDestinations", "0"])
        .expect("prometheus: an exemplar destination");
    assert_eq!(at(ex, &["name"]).and_then(Value::as_str), Some("trace_id"));
    assert_eq!(
        at(ex, &["datasourceUid"]).and_then(Value::as_str),
        Some("tempo")
    );
}

#[test]
fn grafana_dashboards_have_their_own_uids_and_use_provisioned_data_sources() {
    let types = datasource_types();
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no uid"))
            .to_owned();
        assert!(uids.insert(uid.clone()), "{file}: uid {uid} used twice");
        assert!(d["title"].is_string(), "{file}: title");
        let mut used = Vec::new();
        json_datasources(&d, "", &mut used);
        assert!(!used.is_empty(), "{file} uses no data source");
        for (path, ty, uid) in used {
            assert_eq!(
                types.get(&uid),
                Some(&ty),
                "{file}{path}: data source {uid} ({ty}) is not provisioned with that type"
            );
        }
    }
    for needed in [
        "otelwire-service-red",
        "otelwire-logs",
        "otelwire-pipeline",
        "otelwire-health",
    ] {
        assert!(uids.contains(needed), "no dashboard {needed}");
    }
}
