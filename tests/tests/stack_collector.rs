//! The collector configurations, run by the real collector
//! (`otel-collector/builder.yaml`, built by `stack/local/install`): they
//! validate, the collector holds exactly the components they use, it masks
//! secrets from a sender that is not otelwire, and a backend restart, with a
//! collector restart while it is down, loses nothing and duplicates nothing.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use otelwire_test::Collector as Backend;
use otelwire_tests::programs::{self, CollectorSpec, root};
use serde_yaml_ng::Value;

const CONFIGS: [&str; 3] = ["config.yaml", "agent.yaml", "gateway.yaml"];

#[test]
fn every_configuration_passes_otelcol_validate() {
    let Some(bins) = programs::binaries() else {
        return;
    };
    for config in CONFIGS {
        let out = Command::new(&bins.otelcol)
            .arg("validate")
            .arg(format!(
                "--config=file:{}",
                root().join("otel-collector").join(config).display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "otelcol validate {config}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `kind/name` keys of one section of a configuration, as `type` names.
fn types_of(config: &Value, section: &str) -> BTreeSet<String> {
    config
        .get(section)
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(Value::as_str)
                .map(|k| k.split('/').next().unwrap_or(k).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_built_collector_has_exactly_the_components_the_configurations_use() {
    let Some(bins) = programs::binaries() else {
        return;
    };
    let out = Command::new(&bins.otelcol)
        .arg("components")
        .output()
        .unwrap();
    assert!(out.status.success(), "otelcol components");
    let built: Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    for (section, kind) in [
        ("receivers", "receivers"),
        ("processors", "processors"),
        ("exporters", "exporters"),
        ("connectors", "connectors"),
        ("extensions", "extensions"),
    ] {
        let have: BTreeSet<String> = built
            .get(kind)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut used = BTreeSet::new();
        for config in CONFIGS {
            let text = std::fs::read_to_string(root().join("otel-collector").join(config)).unwrap();
            let v: Value = serde_yaml_ng::from_str(&text).unwrap();
            used.extend(types_of(&v, section));
        }
        assert_eq!(
            have, used,
            "{section}: otel-collector/builder.yaml builds these, the configurations use those"
        );
    }
}

/// A single collector (`config.yaml`) whose Loki and Tempo are two
/// otelwire-test collectors, and whose Prometheus is nobody (metrics are not
/// this file's subject: they queue).
fn single_collector(dir: &std::path::Path, loki: &Backend, tempo: &Backend) -> CollectorSpec {
    CollectorSpec::new("config.yaml", dir)
        .env("LOKI_OTLP_ENDPOINT", loki.http_endpoint())
        .env(
            "TEMPO_OTLP_GRPC_ENDPOINT",
            tempo.grpc_endpoint().trim_start_matches("http://"),
        )
        .env(
            "PROMETHEUS_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}/api/v1/otlp", programs::free_port()),
        )
}

/// One OTLP/HTTP JSON export, as any SDK that is not otelwire sends it.
fn post_json(endpoint: &str, signal: &str, body: &serde_json::Value) {
    let r = programs::http()
        .post(format!("{endpoint}/v1/{signal}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the collector accepts {signal}");
}

fn resource(service: &str) -> serde_json::Value {
    serde_json::json!({"attributes": [
        {"key": "service.name", "value": {"stringValue": service}}
    ]})
}

fn attrs(pairs: &[(&str, &str)]) -> serde_json::Value {
    pairs
        .iter()
        .map(|(k, v)| serde_json::json!({"key": k, "value": {"stringValue": v}}))
        .collect()
}

fn span_json(
    trace_id: &str,
    span_id: &str,
    name: &str,
    attributes: serde_json::Value,
) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    serde_json::json!({
        "traceId": trace_id, "spanId": span_id, "name": name, "kind": 2,
        "startTimeUnixNano": (now - 1_000_000).to_string(),
        "endTimeUnixNano": now.to_string(),
        "attributes": attributes,
    })
}

fn log_json(body: &str, attributes: serde_json::Value) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    serde_json::json!({
        "timeUnixNano": now.to_string(), "severityNumber": 9, "severityText": "INFO",
        "body": {"stringValue": body}, "attributes": attributes,
    })
}

#[test]
fn the_collector_masks_secrets_from_a_sender_that_is_not_otelwire() {
    let Some(bins) = programs::binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (loki, tempo) = (Backend::start().unwrap(), Backend::start().unwrap());
    let collector = single_collector(dir.path(), &loki, &tempo).start(&bins.otelcol);

    let secrets = [
        ("password", "hunter2-span"),
        ("api_key", "sk-live-0123456789"),
        ("authorization", "Bearer abc.def.ghi"),
        ("user.id", "kept-in-clear"),
    ];
    let trace_id = "5b8efff798038103d269b633813fc60c";
    post_json(
        &collector.http_endpoint(),
        "traces",
        &serde_json::json!({"resourceSpans": [{
            "resource": resource("foreign-sender"),
            "scopeSpans": [{"spans": [span_json(trace_id, "eee19b7ec3c1b174", "GET /secret", attrs(&secrets))]}]
        }]}),
    );
    post_json(
        &collector.http_endpoint(),
        "logs",
        &serde_json::json!({"resourceLogs": [{
            "resource": resource("foreign-sender"),
            "scopeLogs": [{"logRecords": [log_json("login", attrs(&secrets))]}]
        }]}),
    );

    let spans = tempo
        .wait_for_spans_blocking(1, |s| s.name == "GET /secret", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", collector.process.output()));
    let logs = loki
        .wait_for_logs_blocking(
            1,
            |l| l.body_str() == Some("login"),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", collector.process.output()));
    for (what, attributes) in [
        ("span", &spans[0].attributes),
        ("log record", &logs[0].attributes),
    ] {
        for (key, secret) in &secrets[..3] {
            let got = attributes.get_str(key);
            assert!(
                got.is_some() && got != Some(secret),
                "the {what}'s {key} reached the backend as {got:?}, not masked"
            );
            assert_eq!(got, Some("****"), "the redaction processor's mask on {key}");
        }
        assert_eq!(
            attributes.get_str("user.id"),
            Some("kept-in-clear"),
            "a {what} attribute that is no secret stays"
        );
    }
}

/// Sends `n` log records and `n` spans with `run` in their attributes, one
/// export each (so the collector's queue holds many requests).
fn send_batch(endpoint: &str, run: &str, from: usize, n: usize) {
    for i in from..from + n {
        let seq = i.to_string();
        let a = attrs(&[("run.id", run), ("seq", &seq)]);
        post_json(
            endpoint,
            "logs",
            &serde_json::json!({"resourceLogs": [{"resource": resource("restart-test"),
                "scopeLogs": [{"logRecords": [log_json(&format!("record {i}"), a.clone())]}]}]}),
        );
        post_json(
            endpoint,
            "traces",
            &serde_json::json!({"resourceSpans": [{"resource": resource("restart-test"),
                "scopeSpans": [{"spans": [span_json(
                    &format!("{:032x}", 0xabc0_0000_u64 + i as u64),
                    &format!("{:016x}", 0x1000_u64 + i as u64),
                    &format!("op {i}"), a)]}]}]}),
        );
    }
}

#[test]
fn a_backend_restart_with_a_collector_restart_in_between_loses_nothing() {
    let Some(bins) = programs::binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (loki, tempo) = (Backend::start().unwrap(), Backend::start().unwrap());
    let spec = single_collector(dir.path(), &loki, &tempo);
    let mut collector = spec.start(&bins.otelcol);
    let run = format!("run-{}", std::process::id());
    let endpoint = collector.http_endpoint();

    // Up: the first records arrive.
    send_batch(&endpoint, &run, 0, 20);
    loki.wait_for_logs_blocking(20, |_| true, Duration::from_secs(30))
        .unwrap();
    tempo
        .wait_for_spans_blocking(20, |_| true, Duration::from_secs(30))
        .unwrap();
    // ...and the collector has had the backends' answers: a backend stopped
    // between receiving a request and answering it would have the collector
    // send that request again after the restart (at least once, by design),
    // and the count below would see it twice.
    programs::wait_until(
        "the collector saw the first 20 of each signal accepted",
        Duration::from_secs(30),
        || {
            let logs = collector.own_metric("otelcol_exporter_sent_log_records_total", &["loki"]);
            let spans = collector.own_metric("otelcol_exporter_sent_spans_total", &["tempo"]);
            if logs >= 20.0 && spans >= 20.0 {
                Ok(())
            } else {
                Err(format!("{logs} logs, {spans} spans"))
            }
        },
    );

    // Loki and Tempo go down while the services keep sending.
    loki.stop();
    tempo.stop();
    send_batch(&endpoint, &run, 20, 40);
    // Every request is in the persistent queue before the collector stops.
    programs::wait_until(
        "the collector accepted all 60 records of each signal",
        Duration::from_secs(30),
        || {
            let logs = collector.own_metric("otelcol_receiver_accepted_log_records_total", &[]);
            let spans = collector.own_metric("otelcol_receiver_accepted_spans_total", &[]);
            if logs >= 60.0 && spans >= 60.0 {
                Ok(())
            } else {
                Err(format!("{logs} logs, {spans} spans"))
            }
        },
    );

    // The collector restarts while they are down; then they come back.
    collector.process.stop();
    collector = spec.start(&bins.otelcol);
    send_batch(&collector.http_endpoint(), &run, 60, 20);
    loki.restart().unwrap();
    tempo.restart().unwrap();

    let mine = |a: &otelwire_test::Attributes| a.get_str("run.id") == Some(run.as_str());
    loki.wait_for_logs_blocking(80, |l| mine(&l.attributes), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", collector.process.output()));
    tempo
        .wait_for_spans_blocking(80, |s| mine(&s.attributes), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", collector.process.output()));
    // Exactly once: every sequence number, none twice, once the queues
    // are empty (nothing more can come).
    programs::wait_until("the sending queues empty", Duration::from_secs(30), || {
        let queued = collector.own_metric("otelcol_exporter_queue_size", &["loki"])
            + collector.own_metric("otelcol_exporter_queue_size", &["tempo"]);
        if queued == 0.0 {
            Ok(())
        } else {
            Err(format!("{queued} requests queued"))
        }
    });
    let seqs = |v: Vec<String>| {
        let set: BTreeSet<String> = v.iter().cloned().collect();
        (v.len(), set.len())
    };
    let logs: Vec<String> = loki
        .logs()
        .iter()
        .filter(|l| mine(&l.attributes))
        .filter_map(|l| l.attributes.get_str("seq").map(str::to_owned))
        .collect();
    let spans: Vec<String> = tempo
        .spans()
        .iter()
        .filter(|s| mine(&s.attributes))
        .filter_map(|s| s.attributes.get_str("seq").map(str::to_owned))
        .collect();
    assert_eq!(seqs(logs), (80, 80), "log records: received, distinct");
    assert_eq!(seqs(spans), (80, 80), "spans: received, distinct");
}
