//! The collector configurations of `otel-collector/` (`config.yaml`,
//! `agent.yaml`, `gateway.yaml`), read as files for what the collector
//! itself does not refuse: every component defined is used, memory_limiter
//! comes first, every exporter retries and queues on `file_storage`, they
//! listen on the standard ports, the redaction pattern covers every secret
//! name otelwire redacts, the gateway computes span metrics before tail
//! sampling, and the agents route traces by trace id to the gateways'
//! Service.
//!
//! Runs no program: `stack_collector.rs` runs the real collector on the
//! same files (`otelcol validate`, which refuses unknown component types
//! and undefined references, and the signals themselves).

use std::collections::{BTreeMap, BTreeSet};

use otelwire_tests::stack_files::{
    CollectorConfig, Pipeline, at, env_default, host_port, kind, scalar, signal, str_at, strings,
    yaml,
};
use serde_yaml_ng::Value;

/// What each connector turns into what: (type, from signal, to signal);
/// `forward` keeps the signal.
const CONNECTORS: &[(&str, &str, &str)] = &[
    ("span_metrics", "traces", "metrics"),
    ("service_graph", "traces", "metrics"),
];

/// The checks every collector configuration passes; returns it.
fn check_collector(file: &str) -> CollectorConfig {
    let c = CollectorConfig::read(file);
    let f = file;
    let receivers = c.defined("receivers");
    let processors = c.defined("processors");
    let exporters = c.defined("exporters");
    let connectors = c.defined("connectors");
    let extensions = c.defined("extensions");
    let pipelines = c.pipelines();
    assert!(!pipelines.is_empty(), "{f}: no pipelines");
    let (mut used_r, mut used_p, mut used_e) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut connector_in: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut connector_out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &pipelines {
        let sig = signal(&p.name);
        assert!(
            ["traces", "metrics", "logs"].contains(&sig),
            "{f}: pipeline {}: unknown signal",
            p.name
        );
        assert!(
            !p.receivers.is_empty() && !p.exporters.is_empty(),
            "{f}: pipeline {} is not connected",
            p.name
        );
        for r in &p.receivers {
            if connectors.contains(r) {
                connector_out
                    .entry(r.clone())
                    .or_default()
                    .insert(sig.to_owned());
            } else {
                assert!(
                    receivers.contains(r),
                    "{f}: pipeline {} names receiver {r}, which is not defined",
                    p.name
                );
            }
            used_r.insert(r.clone());
        }
        for x in &p.processors {
            assert!(
                processors.contains(x),
                "{f}: pipeline {} names processor {x}, which is not defined",
                p.name
            );
            used_p.insert(x.clone());
        }
        for e in &p.exporters {
            if connectors.contains(e) {
                connector_in
                    .entry(e.clone())
                    .or_default()
                    .insert(sig.to_owned());
            } else {
                assert!(
                    exporters.contains(e),
                    "{f}: pipeline {} names exporter {e}, which is not defined",
                    p.name
                );
            }
            used_e.insert(e.clone());
        }
        // memory_limiter refuses data before the collector runs out of
        // memory: it must see the data first.
        assert_eq!(
            p.processors.first().map(|x| kind(x)),
            Some("memory_limiter"),
            "{f}: pipeline {}: memory_limiter must be the first processor",
            p.name
        );
    }
    // The collector ignores what no pipeline uses: a component defined and
    // forgotten is a setting that silently does nothing.
    for id in &receivers {
        assert!(
            used_r.contains(id),
            "{f}: receiver {id} is defined but no pipeline uses it"
        );
    }
    for id in &processors {
        assert!(
            used_p.contains(id),
            "{f}: processor {id} is defined but no pipeline uses it"
        );
    }
    for id in &exporters {
        assert!(
            used_e.contains(id),
            "{f}: exporter {id} is defined but no pipeline uses it"
        );
    }
    for id in &connectors {
        let (ins, outs) = (
            connector_in.get(id).cloned().unwrap_or_default(),
            connector_out.get(id).cloned().unwrap_or_default(),
        );
        assert!(
            !ins.is_empty() && !outs.is_empty(),
            "{f}: connector {id} must be an exporter of one pipeline and a receiver of another"
        );
        match CONNECTORS.iter().find(|(k, ..)| *k == kind(id)) {
            Some((_, from, to)) => assert!(
                ins.iter().all(|s| s == from) && outs.iter().all(|s| s == to),
                "{f}: connector {id} turns {from} into {to}, not {ins:?} into {outs:?}"
            ),
            None => {
                assert_eq!(kind(id), "forward", "{f}: connector {id}: unknown type");
                assert_eq!(ins, outs, "{f}: connector {id} forwards within one signal");
            }
        }
    }
    let enabled: BTreeSet<String> = strings(at(&c.doc, &["service", "extensions"]))
        .into_iter()
        .collect();
    assert_eq!(
        enabled, extensions,
        "{f}: every extension defined must be enabled, and only those"
    );

    // Every exporter retries, and queues on disk so a backend restart
    // loses nothing.
    for id in &exporters {
        let e = c.component("exporters", id);
        assert_eq!(
            at(e, &["retry_on_failure", "enabled"]).and_then(Value::as_bool),
            Some(true),
            "{f}: exporter {id} must retry (retry_on_failure.enabled: true)"
        );
        assert_eq!(
            at(e, &["sending_queue", "enabled"]).and_then(Value::as_bool),
            Some(true),
            "{f}: exporter {id} must queue"
        );
        let storage = at(e, &["sending_queue", "storage"])
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{f}: exporter {id}: the sending queue must be persistent (sending_queue.storage)"));
        assert!(
            kind(storage) == "file_storage" && extensions.contains(storage),
            "{f}: exporter {id} queues on {storage}, which is not a defined file_storage extension"
        );
        if kind(id) == "otlp_grpc" && !env_default(str_at(e, &["endpoint"], f)).starts_with("https")
        {
            assert_eq!(
                at(e, &["tls", "insecure"]).and_then(Value::as_bool),
                Some(true),
                "{f}: {id}"
            );
        }
    }
    assert!(
        c.file_storage_directory().starts_with('/'),
        "{f}: file_storage.directory must be absolute"
    );
    assert_eq!(
        c.value(&["extensions", "file_storage", "compaction", "directory"]),
        c.file_storage_directory(),
        "{f}: file_storage compacts in its own directory"
    );

    // By default (compose, Kubernetes) the standard ports on every
    // interface; the local run and the tests set the variables.
    assert_eq!(
        c.otlp_ports(),
        BTreeSet::from([4317, 4318]),
        "{f}: OTLP on 4317 (gRPC) and 4318 (HTTP)"
    );
    for p in ["grpc", "http"] {
        let ep = c.otlp_endpoint(p);
        assert!(
            ep.starts_with("0.0.0.0:"),
            "{f}: the OTLP {p} receiver must listen on all interfaces: {ep}"
        );
    }
    assert_eq!(c.health_port(), 13133, "{f}: health_check on 13133");
    assert_eq!(
        c.telemetry_address(),
        ("0.0.0.0".to_owned(), 8888),
        "{f}: the collector's own metrics on 8888, reachable from Prometheus"
    );
    let limiter = c.component("processors", "memory_limiter");
    for k in ["limit_percentage", "spike_limit_percentage"] {
        assert!(at(limiter, &[k]).is_some(), "{f}: memory_limiter.{k}");
    }
    c
}

#[test]
fn collector_configurations_are_consistent() {
    for file in [
        "otel-collector/config.yaml",
        "otel-collector/agent.yaml",
        "otel-collector/gateway.yaml",
    ] {
        check_collector(file);
    }
}

#[test]
fn single_collector_processes_and_fans_out_every_signal() {
    let c = check_collector("otel-collector/config.yaml");
    let f = &c.file;
    let pipelines = c.pipelines();
    let by_signal = |sig: &str| -> Vec<&Pipeline> {
        pipelines
            .iter()
            .filter(|p| signal(&p.name) == sig && p.receivers.iter().any(|r| r == "otlp"))
            .collect()
    };
    for (sig, exporter) in [
        ("logs", "otlp_http/loki"),
        ("traces", "otlp_grpc/tempo"),
        ("metrics", "otlp_http/prometheus"),
    ] {
        let ps = by_signal(sig);
        assert_eq!(
            ps.len(),
            1,
            "{f}: one {sig} pipeline from the OTLP receiver"
        );
        let p = ps[0];
        assert_eq!(
            p.processors,
            ["memory_limiter", "resource_detection", "redaction"],
            "{f}: pipeline {}",
            p.name
        );
        assert!(
            p.exporters.iter().any(|e| e == exporter),
            "{f}: {sig} go to {exporter}"
        );
    }
    let traces = by_signal("traces")[0];
    for connector in ["span_metrics", "service_graph"] {
        assert!(
            traces.exporters.iter().any(|e| e == connector),
            "{f}: every span feeds {connector}"
        );
    }
    assert_eq!(
        strings(at(
            &c.doc,
            &["processors", "resource_detection", "detectors"]
        )),
        ["env", "system"]
    );
    let spans = c.component("connectors", "span_metrics");
    assert_eq!(
        at(spans, &["exemplars", "enabled"]).and_then(Value::as_bool),
        Some(true)
    );
    let dims: Vec<String> = at(spans, &["dimensions"])
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{f}: span_metrics.dimensions"))
        .iter()
        .map(|d| str_at(d, &["name"], f).to_owned())
        .collect();
    // Bounded: templates, methods and codes, never raw paths or ids.
    for d in &dims {
        assert!(
            [
                "http.request.method",
                "http.route",
                "http.response.status_code"
            ]
            .contains(&d.as_str()),
            "{f}: span_metrics dimension {d} is not known to be low-cardinality"
        );
    }
    assert!(at(spans, &["aggregation_cardinality_limit"]).is_some());
}

#[test]
fn collector_masks_the_attributes_otelwire_redacts() {
    let pattern = |file: &str| -> String {
        let c = CollectorConfig::read(file);
        let r = c.component("processors", "redaction");
        assert_eq!(
            at(r, &["allow_all_keys"]).and_then(Value::as_bool),
            Some(true),
            "{file}: only mask, never drop keys"
        );
        let p = strings(at(r, &["blocked_key_patterns"]));
        assert_eq!(p.len(), 1, "{file}: one blocked_key_patterns entry");
        p[0].clone()
    };
    let p = pattern("otel-collector/config.yaml");
    assert_eq!(
        p,
        pattern("otel-collector/agent.yaml"),
        "the compose collector and the agents mask the same keys"
    );
    // Go's RE2 and Rust's regex agree on this syntax.
    let re = regex::Regex::new(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let redactor = otelwire::Redactor::default();
    for name in otelwire::DEFAULT_SECRET_NAMES {
        // otelwire treats -, . and _ alike and ignores case.
        for variant in [
            name.to_string(),
            name.replace('_', "-"),
            name.replace('_', "."),
            name.to_uppercase(),
            format!("http.request.header.{name}"),
            format!("db_{name}_hash"),
        ] {
            assert!(redactor.is_secret(&variant), "otelwire: {variant}");
            assert!(
                re.is_match(&variant),
                "the collector does not mask {variant}, which otelwire redacts"
            );
        }
    }
    // And it leaves alone what the services send every day.
    for name in [
        "service.name",
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "url.path",
        "request.id",
        "trace_id",
        "order.id",
        "sku",
        "check.name",
        "execution.id",
    ] {
        assert!(!re.is_match(name), "the collector would mask {name}");
    }
}

#[test]
fn gateway_computes_span_metrics_before_tail_sampling() {
    let c = check_collector("otel-collector/gateway.yaml");
    let f = &c.file;
    let pipelines = c.pipelines();
    let sampled: Vec<&Pipeline> = pipelines
        .iter()
        .filter(|p| p.processors.iter().any(|x| kind(x) == "tail_sampling"))
        .collect();
    assert_eq!(sampled.len(), 1, "{f}: one pipeline samples");
    let sampled = sampled[0];
    assert!(
        sampled.exporters.iter().any(|e| e == "otlp_grpc/tempo"),
        "{f}: the sample goes to Tempo"
    );
    assert!(
        sampled.receivers.iter().all(|r| kind(r) == "forward"),
        "{f}: the sampling pipeline is fed from the unsampled one"
    );
    let feeder = pipelines
        .iter()
        .find(|p| p.exporters.iter().any(|e| sampled.receivers.contains(e)))
        .expect("a pipeline feeds the sampling one");
    assert_eq!(feeder.receivers, ["otlp"], "{f}");
    for connector in ["span_metrics", "service_graph"] {
        assert!(
            feeder.exporters.iter().any(|e| e == connector),
            "{f}: {connector} must see every span, before sampling"
        );
        assert!(
            !sampled.exporters.iter().any(|e| e == connector),
            "{f}: {connector} after sampling"
        );
    }
    let policies = at(c.component("processors", "tail_sampling"), &["policies"])
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{f}: tail_sampling.policies"));
    let policy = |t: &str| {
        policies
            .iter()
            .find(|p| at(p, &["type"]).and_then(Value::as_str) == Some(t))
            .unwrap_or_else(|| panic!("{f}: no {t} policy"))
    };
    assert_eq!(
        strings(at(policy("status_code"), &["status_code", "status_codes"])),
        ["ERROR"]
    );
    assert_eq!(
        at(policy("latency"), &["latency", "threshold_ms"]).and_then(Value::as_u64),
        Some(500)
    );
    assert_eq!(
        at(
            policy("probabilistic"),
            &["probabilistic", "sampling_percentage"]
        )
        .and_then(Value::as_f64),
        Some(10.0)
    );
    assert_eq!(
        policies.len(),
        3,
        "{f}: errors, slow, 10 % of the rest, nothing else"
    );
}

#[test]
fn agents_route_traces_by_trace_id_to_the_gateways() {
    let c = check_collector("otel-collector/agent.yaml");
    let f = &c.file;
    let lb = c.component("exporters", "load_balancing");
    assert_eq!(
        at(lb, &["routing_key"]).and_then(Value::as_str),
        Some("traceID")
    );
    for p in c.pipelines() {
        let sig = signal(&p.name);
        let expected = if sig == "traces" {
            "load_balancing"
        } else {
            "otlp_grpc/gateway"
        };
        assert_eq!(p.exporters, [expected], "{f}: pipeline {}", p.name);
    }
    let gateway = check_collector("otel-collector/gateway.yaml");
    let host = env_default(str_at(lb, &["resolver", "dns", "hostname"], f));
    // A string in the file: the resolver refuses a YAML integer.
    let port = at(lb, &["resolver", "dns", "port"])
        .map(scalar)
        .unwrap_or_else(|| panic!("{f}: load_balancing.resolver.dns.port"));
    assert_eq!(port, "4317", "{f}: the gateways' OTLP gRPC port");
    assert!(gateway.otlp_ports().contains(&4317));
    let (gw_host, gw_port) = host_port(&env_default(str_at(
        c.component("exporters", "otlp_grpc/gateway"),
        &["endpoint"],
        f,
    )));
    assert_eq!((gw_host.as_str(), gw_port), (host.as_str(), 4317));
    // That host is the headless Service of the gateways.
    let svc = yaml("otel-collector/k8s/gateway-service.yaml");
    let ns = str_at(
        &yaml("otel-collector/kustomization.yaml"),
        &["namespace"],
        "kustomization.yaml",
    )
    .to_owned();
    assert_eq!(
        host,
        format!(
            "{}.{ns}.svc.cluster.local",
            str_at(&svc, &["metadata", "name"], "gateway-service.yaml")
        )
    );
}
