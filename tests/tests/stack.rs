//! The observability stack: `docker-compose.yml`, `otel-collector/` and
//! `stack/` (Loki, Tempo, Prometheus and its alert rules, Grafana).
//!
//! The collector, Loki, Tempo and Grafana cannot run on these machines, so
//! their configuration is checked for everything that can be known without
//! them:
//! - promtool (Debian's `prometheus`) checks `prometheus.yml` and every rule
//!   file, and runs the rules' unit tests;
//! - docker-compose checks the compose file;
//! - the collector configurations are consistent: every component a
//!   pipeline names is defined and every defined one is used, memory_limiter
//!   comes first, every exporter retries and queues on disk, the ports,
//!   hosts and volumes match docker-compose.yml and the Kubernetes
//!   manifests, which are generated from the very files tested here;
//! - every data source uid the dashboards and the data sources' links use
//!   exists;
//! - every metric name (and label) the alert rules and the dashboards use is
//!   one Prometheus 3 really makes: the example services run in-process
//!   against `otelwire-test`, and what they emitted is translated the way
//!   Prometheus's OTLP receiver translates it (the translation is
//!   implemented here, and tested on upstream's examples).
//!
//! A test that needs promtool or docker-compose prints a notice and passes
//! without it, unless `OTELWIRE_REQUIRE_TOOLS` is set (CI), where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use otelwire::{LogFormat, Protocol, Signal, Telemetry};
use otelwire_test::{Collector, MetricKind, MetricPoint};
use serde_yaml_ng::Value;

mod common;
use common::run;

// ---------------------------------------------------------------- files

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_owned()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: not YAML: {e}"))
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: not JSON: {e}"))
}

/// The value at `path` (mapping keys, or indexes of sequences).
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| match v {
        Value::Mapping(m) => m.get(*k),
        Value::Sequence(s) => s.get(k.parse::<usize>().ok()?),
        _ => None,
    })
}

fn str_at<'a>(v: &'a Value, path: &[&str], file: &str) -> &'a str {
    at(v, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{file}: no string at {}", path.join(".")))
}

fn keys(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other).unwrap().trim().to_owned(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other).unwrap().trim().to_owned(),
    }
}

/// The files of a directory of the repository whose names end with `suffix`.
fn files(dir: &str, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    out
}

/// `${env:NAME:-default}` → `default` (what the collector uses when NAME is
/// unset); any other text as it is.
fn env_default(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${env:...}") + start;
        let inner = &rest[start + 6..end];
        out.push_str(inner.split_once(":-").map(|(_, d)| d).unwrap_or(""));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `host:port` of `scheme://host:port/path`, `dns:///host:port` or `host:port`.
fn host_port(endpoint: &str) -> (String, u16) {
    let s = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint)
        .trim_start_matches('/');
    let hp = s.split('/').next().unwrap();
    let (h, p) = hp
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {endpoint}"));
    (
        h.to_owned(),
        p.parse().unwrap_or_else(|_| panic!("port of {endpoint}")),
    )
}

fn port_of(endpoint: &str) -> u16 {
    host_port(endpoint).1
}

// ---------------------------------------------------------------- tools

/// An external tool, from PATH. Missing: a notice and `None`, or a failure
/// under `OTELWIRE_REQUIRE_TOOLS`.
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("OTELWIRE_REQUIRE_TOOLS").is_some() {
            panic!("{name} not found: install Debian's `{package}` package");
        }
        eprintln!("SKIPPED: {name} not found (apt-get install {package})");
    }
    found
}

fn run_tool(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

// ---------------------------------------------------------------- docker-compose

const COMPOSE: &str = "docker-compose.yml";

/// The images the issue pins, by compose service.
const PINNED: &[(&str, &str)] = &[
    (
        "otel-collector",
        "otel/opentelemetry-collector-contrib:0.159.0",
    ),
    ("loki", "grafana/loki:3.7.6"),
    ("tempo", "grafana/tempo:3.0.3"),
    ("prometheus", "prom/prometheus:v3.14.0"),
    ("grafana", "grafana/grafana:13.2.0"),
];

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    at(compose, &["services", name]).unwrap_or_else(|| panic!("{COMPOSE}: no service {name}"))
}

fn env_var(svc: &Value, var: &str) -> Option<String> {
    match at(svc, &["environment"])? {
        Value::Mapping(m) => m.get(var).map(scalar),
        Value::Sequence(s) => s.iter().filter_map(Value::as_str).find_map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| *k == var)
                .map(|(_, v)| v.to_owned())
        }),
        _ => None,
    }
}

/// `(source, target)` of each volume of a service.
fn mounts(svc: &Value) -> Vec<(String, String)> {
    strings(at(svc, &["volumes"]))
        .iter()
        .map(|v| {
            let mut parts = v.split(':');
            (
                parts.next().unwrap().to_owned(),
                parts.next().expect("source:target").to_owned(),
            )
        })
        .collect()
}

/// The container ports a service publishes, each checked to be bound to
/// 127.0.0.1 only.
fn published(svc: &Value, name: &str) -> BTreeSet<u16> {
    strings(at(svc, &["ports"]))
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            assert!(
                parts.len() == 3 && parts[0] == "127.0.0.1",
                "{COMPOSE}: service {name} publishes {p}: bind host ports to 127.0.0.1 (127.0.0.1:HOST:CONTAINER)"
            );
            parts[2].split('/').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn compose_file_is_valid_for_docker_compose_and_needs_the_grafana_password() {
    let Some(dc) = tool("docker-compose", "docker-compose") else {
        return;
    };
    let check = |password: Option<&str>| {
        let mut cmd = Command::new(&dc);
        cmd.current_dir(root())
            .args(["-f", COMPOSE, "config", "-q"])
            .env_remove("GF_ADMIN_PASSWORD");
        if let Some(p) = password {
            cmd.env("GF_ADMIN_PASSWORD", p);
        }
        run_tool(&mut cmd)
    };
    let (ok, out) = check(Some("a-password-for-the-test"));
    assert!(ok, "docker-compose config -q failed:\n{out}");
    // No admin/admin: without the variable compose refuses, naming it.
    let (ok, out) = check(None);
    assert!(!ok, "compose accepted a missing GF_ADMIN_PASSWORD:\n{out}");
    assert!(out.contains("GF_ADMIN_PASSWORD"), "{out}");
}

#[test]
fn compose_images_are_pinned_ports_local_and_volumes_named() {
    let compose = yaml(COMPOSE);
    let names = keys(at(&compose, &["services"]));
    for (svc, image) in PINNED {
        assert_eq!(
            str_at(&compose, &["services", svc, "image"], COMPOSE),
            *image,
            "{COMPOSE}: service {svc}"
        );
    }
    let declared: BTreeSet<String> = keys(at(&compose, &["volumes"])).into_iter().collect();
    let dockerfile = read("Dockerfile");
    let stages: BTreeSet<String> = dockerfile
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("FROM ")
                .and_then(|r| r.split_once(" AS "))
                .map(|(_, s)| s.trim().to_owned())
        })
        .collect();
    for name in &names {
        let svc = service(&compose, name);
        match at(svc, &["image"]).and_then(Value::as_str) {
            Some(image) => assert_pinned(image, &format!("{COMPOSE}: service {name}")),
            None => {
                // Built: from the Dockerfile, one stage per service.
                let target = str_at(svc, &["build", "target"], COMPOSE);
                assert_eq!(str_at(svc, &["build", "context"], COMPOSE), ".");
                assert!(
                    stages.contains(target),
                    "{COMPOSE}: service {name} builds target {target}, which the Dockerfile lacks ({stages:?})"
                );
            }
        }
        published(svc, name);
        for (source, _) in mounts(svc) {
            if source.starts_with("./") {
                assert!(
                    root().join(&source).exists(),
                    "{COMPOSE}: service {name} mounts {source}, which does not exist"
                );
            } else {
                assert!(
                    declared.contains(&source),
                    "{COMPOSE}: service {name} uses volume {source}, not declared under volumes:"
                );
            }
        }
    }
    for line in dockerfile.lines().filter(|l| l.starts_with("FROM ")) {
        let image = line.split_whitespace().nth(1).unwrap();
        if !stages.contains(image) {
            assert_pinned(image, "Dockerfile");
        }
    }
    let ignore = read(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        ".dockerignore must keep target/ out of the build context"
    );
}

fn assert_pinned(image: &str, who: &str) {
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
    assert!(
        !tag.is_empty() && !tag.contains('/') && tag != "latest",
        "{who}: image {image} is not pinned to a version"
    );
}

#[test]
fn compose_wires_the_services_to_the_collector_and_the_collector_to_the_backends() {
    let compose = yaml(COMPOSE);
    let config = collector_config("otel-collector/config.yaml");
    let collector = service(&compose, "otel-collector");

    // The ports the collector listens on are the ones published.
    assert_eq!(
        published(collector, "otel-collector"),
        config.ports(),
        "{COMPOSE}: otel-collector must publish exactly the ports of otel-collector/config.yaml"
    );
    // Its configuration file is the one tested here, where --config says.
    let command = strings(at(collector, &["command"]));
    let config_path = command
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .expect("otel-collector command has --config=");
    assert!(
        mounts(collector).contains(&("./otel-collector/config.yaml".into(), config_path.into())),
        "{COMPOSE}: otel-collector must mount ./otel-collector/config.yaml at {config_path}"
    );
    // The persistent queue's directory is a named volume that an init
    // container hands to the collector's user before it starts.
    let queue_dir = config.file_storage_directory();
    let (queue_volume, _) = mounts(collector)
        .into_iter()
        .find(|(_, t)| *t == queue_dir)
        .unwrap_or_else(|| panic!("{COMPOSE}: otel-collector mounts nothing at {queue_dir}"));
    let init = service(&compose, "volume-init");
    assert!(mounts(init).contains(&(queue_volume.clone(), queue_dir.clone())));
    let chown = strings(at(init, &["command"]));
    assert!(
        chown.first().map(String::as_str) == Some("chown")
            && chown.iter().any(|a| a == "10001:10001")
            && chown.contains(&queue_dir),
        "{COMPOSE}: volume-init must chown {queue_dir} to 10001:10001: {chown:?}"
    );
    assert_eq!(
        at(collector, &["depends_on", "volume-init", "condition"]).and_then(Value::as_str),
        Some("service_completed_successfully")
    );
    // memory_limiter works in percentages of a limit: there must be one.
    assert!(
        at(collector, &["mem_limit"]).is_some(),
        "otel-collector needs mem_limit"
    );
    assert!(
        env_var(collector, "GOMEMLIMIT").is_some(),
        "otel-collector needs GOMEMLIMIT"
    );

    // The exporters reach the backends where the backends listen.
    let exporter_target = |id: &str| {
        host_port(&env_default(str_at(
            &config.doc,
            &["exporters", id, "endpoint"],
            &config.file,
        )))
    };
    let loki_port = at(
        &yaml("stack/loki/config.yaml"),
        &["server", "http_listen_port"],
    )
    .and_then(Value::as_u64)
    .unwrap();
    assert_eq!(
        exporter_target("otlp_http/loki"),
        ("loki".into(), loki_port as u16)
    );
    assert!(
        str_at(
            &config.doc,
            &["exporters", "otlp_http/loki", "endpoint"],
            &config.file
        )
        .ends_with("/otlp"),
        "logs go to Loki's native OTLP endpoint, /otlp"
    );
    let tempo = yaml("stack/tempo/config.yaml");
    let tempo_grpc = str_at(
        &tempo,
        &[
            "distributor",
            "receivers",
            "otlp",
            "protocols",
            "grpc",
            "endpoint",
        ],
        "stack/tempo/config.yaml",
    );
    assert_eq!(
        exporter_target("otlp_grpc/tempo"),
        ("tempo".into(), port_of(tempo_grpc))
    );
    assert_eq!(
        exporter_target("otlp_http/prometheus"),
        ("prometheus".into(), 9090)
    );
    assert!(
        str_at(
            &config.doc,
            &["exporters", "otlp_http/prometheus", "endpoint"],
            &config.file
        )
        .ends_with("/api/v1/otlp"),
        "metrics go to Prometheus's OTLP receiver, /api/v1/otlp"
    );
    let prom_cmd = strings(at(service(&compose, "prometheus"), &["command"]));
    for flag in [
        "--web.enable-otlp-receiver",
        "--enable-feature=exemplar-storage",
    ] {
        assert!(
            prom_cmd.iter().any(|a| a == flag),
            "prometheus needs {flag}"
        );
    }
    for (host, _) in [
        exporter_target("otlp_http/loki"),
        exporter_target("otlp_grpc/tempo"),
        exporter_target("otlp_http/prometheus"),
    ] {
        service(&compose, &host);
    }

    // Prometheus scrapes the collector's own metrics where they are.
    let prom = yaml("stack/prometheus/prometheus.yml");
    let jobs = at(&prom, &["scrape_configs"])
        .and_then(Value::as_sequence)
        .unwrap();
    let job = jobs
        .iter()
        .find(|j| at(j, &["job_name"]).and_then(Value::as_str) == Some("otel-collector"))
        .expect("a scrape job otel-collector (the collector alerts select it)");
    assert_eq!(
        strings(at(job, &["static_configs", "0", "targets"])),
        vec![format!("otel-collector:{}", config.telemetry_port())]
    );

    // The example services send OTLP to the collector, on a port it opens.
    for name in ["inventory", "orders-api", "health-checker"] {
        let svc = service(&compose, name);
        let endpoint = env_var(svc, "OTEL_EXPORTER_OTLP_ENDPOINT")
            .unwrap_or_else(|| panic!("{name}: no OTEL_EXPORTER_OTLP_ENDPOINT"));
        let (host, port) = host_port(&endpoint);
        assert_eq!(host, "otel-collector", "{name}");
        assert!(config.otlp_ports().contains(&port), "{name}: {endpoint}");
        let listen: u16 = env_var(svc, "PORT").unwrap().parse().unwrap();
        assert!(
            published(svc, name).contains(&listen),
            "{name} publishes its PORT"
        );
    }
    let inventory_port = env_var(service(&compose, "inventory"), "PORT").unwrap();
    assert_eq!(
        env_var(service(&compose, "orders-api"), "INVENTORY_URL"),
        Some(format!("http://inventory:{inventory_port}"))
    );
    // The health-checker reads its checks from the file mounted for it, and
    // they name compose hosts.
    let checker = service(&compose, "health-checker");
    let config_file = env_var(checker, "HEALTH_CHECKER_CONFIG").unwrap();
    let (source, _) = mounts(checker)
        .into_iter()
        .find(|(_, t)| *t == config_file)
        .expect("the health-checker's configuration is mounted");
    let checks =
        health_checker::Config::from_file(root().join(&source)).unwrap_or_else(|e| panic!("{e}"));
    let services: BTreeSet<String> = keys(at(&compose, &["services"])).into_iter().collect();
    for check in &checks.checks {
        let target = match &check.kind {
            health_checker::CheckKind::Http { url, .. } => Some(host_port(url)),
            health_checker::CheckKind::Tcp { address } => Some(host_port(address)),
            _ => None,
        };
        if let Some((host, _)) = target {
            assert!(
                services.contains(&host),
                "{source}: check {} targets {host}, not a compose service",
                check.name
            );
        }
    }

    // Grafana: no default password, provisioning and dashboards where the
    // provisioning says.
    let grafana = service(&compose, "grafana");
    let password = env_var(grafana, "GF_SECURITY_ADMIN_PASSWORD").unwrap();
    assert!(
        password.starts_with("${GF_ADMIN_PASSWORD:?") && !password.contains(":-"),
        "the Grafana admin password must come from GF_ADMIN_PASSWORD, with no default: {password}"
    );
    let provider_path = str_at(
        &yaml("stack/grafana/provisioning/dashboards/dashboards.yaml"),
        &["providers", "0", "options", "path"],
        "dashboards.yaml",
    )
    .to_owned();
    let grafana_mounts = mounts(grafana);
    assert!(grafana_mounts.contains(&("./stack/grafana/dashboards".into(), provider_path.clone())));
    assert!(grafana_mounts.contains(&(
        "./stack/grafana/provisioning".into(),
        "/etc/grafana/provisioning".into()
    )));
    let home = env_var(grafana, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH").unwrap();
    let home = home
        .strip_prefix(&format!("{provider_path}/"))
        .expect("home dashboard in the provider path");
    assert!(root().join("stack/grafana/dashboards").join(home).is_file());

    // Prometheus loads every rule file, and no unit test file.
    let rule_glob = strings(at(&prom, &["rule_files"]));
    assert_eq!(
        rule_glob,
        vec!["/etc/prometheus/rules/*.rules.yml".to_owned()]
    );
    assert!(mounts(service(&compose, "prometheus")).contains(&(
        "./stack/prometheus/rules".into(),
        "/etc/prometheus/rules".into()
    )));
}

// ---------------------------------------------------------------- collector

/// A collector configuration file.
struct CollectorConfig {
    file: String,
    doc: Value,
}

struct Pipeline {
    name: String,
    receivers: Vec<String>,
    processors: Vec<String>,
    exporters: Vec<String>,
}

/// The type of a component id (`otlp_http/loki` → `otlp_http`).
fn kind(id: &str) -> &str {
    id.split('/').next().unwrap()
}

/// The signal of a pipeline id (`metrics/from_traces` → `metrics`).
fn signal(pipeline: &str) -> &str {
    pipeline.split('/').next().unwrap()
}

fn collector_config(file: &str) -> CollectorConfig {
    CollectorConfig {
        file: file.to_owned(),
        doc: yaml(file),
    }
}

impl CollectorConfig {
    fn defined(&self, section: &str) -> BTreeSet<String> {
        keys(at(&self.doc, &[section])).into_iter().collect()
    }

    fn pipelines(&self) -> Vec<Pipeline> {
        keys(at(&self.doc, &["service", "pipelines"]))
            .into_iter()
            .map(|name| {
                let p = at(&self.doc, &["service", "pipelines", &name]).unwrap();
                Pipeline {
                    receivers: strings(at(p, &["receivers"])),
                    processors: strings(at(p, &["processors"])),
                    exporters: strings(at(p, &["exporters"])),
                    name,
                }
            })
            .collect()
    }

    fn component(&self, section: &str, id: &str) -> &Value {
        at(&self.doc, &[section, id]).unwrap_or_else(|| panic!("{}: no {section}.{id}", self.file))
    }

    fn otlp_ports(&self) -> BTreeSet<u16> {
        ["grpc", "http"]
            .iter()
            .map(|p| {
                port_of(str_at(
                    &self.doc,
                    &["receivers", "otlp", "protocols", p, "endpoint"],
                    &self.file,
                ))
            })
            .collect()
    }

    fn health_port(&self) -> u16 {
        port_of(str_at(
            &self.doc,
            &["extensions", "health_check", "endpoint"],
            &self.file,
        ))
    }

    fn telemetry_port(&self) -> u16 {
        let reader = at(
            &self.doc,
            &[
                "service",
                "telemetry",
                "metrics",
                "readers",
                "0",
                "pull",
                "exporter",
                "prometheus",
            ],
        )
        .unwrap_or_else(|| {
            panic!(
                "{}: no Prometheus reader for the collector's metrics",
                self.file
            )
        });
        assert_eq!(
            at(reader, &["host"]).and_then(Value::as_str),
            Some("0.0.0.0"),
            "{}: the collector's metrics must be reachable from Prometheus",
            self.file
        );
        at(reader, &["port"]).and_then(Value::as_u64).unwrap() as u16
    }

    /// Every port the collector listens on.
    fn ports(&self) -> BTreeSet<u16> {
        let mut p = self.otlp_ports();
        p.insert(self.health_port());
        p.insert(self.telemetry_port());
        p
    }

    fn file_storage_directory(&self) -> String {
        str_at(
            &self.doc,
            &["extensions", "file_storage", "directory"],
            &self.file,
        )
        .to_owned()
    }
}

/// Component types that collector-contrib renamed (the snake_case
/// initiative, 0.145 to 0.153) or removed: (section, old, current).
const RENAMED: &[(&str, &str, &str)] = &[
    ("exporters", "otlp", "otlp_grpc"),
    ("exporters", "otlphttp", "otlp_http"),
    ("exporters", "loadbalancing", "load_balancing"),
    ("exporters", "loki", "otlp_http to Loki's /otlp endpoint"),
    ("exporters", "logging", "debug"),
    ("connectors", "spanmetrics", "span_metrics"),
    ("connectors", "servicegraph", "service_graph"),
    ("processors", "resourcedetection", "resource_detection"),
];

/// What each connector turns into what: (type, from signal, to signal);
/// `forward` keeps the signal.
const CONNECTORS: &[(&str, &str, &str)] = &[
    ("span_metrics", "traces", "metrics"),
    ("service_graph", "traces", "metrics"),
];

/// The checks every collector configuration passes; returns it.
fn check_collector(file: &str) -> CollectorConfig {
    let c = collector_config(file);
    let f = file;
    let receivers = c.defined("receivers");
    let processors = c.defined("processors");
    let exporters = c.defined("exporters");
    let connectors = c.defined("connectors");
    let extensions = c.defined("extensions");
    for section in [
        "receivers",
        "processors",
        "exporters",
        "connectors",
        "extensions",
    ] {
        for id in c.defined(section) {
            for (s, old, new) in RENAMED {
                assert!(
                    !(section == *s && kind(&id) == *old),
                    "{f}: {section}.{id}: `{old}` is the old name; use `{new}`"
                );
            }
        }
    }
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
        c.otlp_ports(),
        BTreeSet::from([4317, 4318]),
        "{f}: OTLP on 4317 (gRPC) and 4318 (HTTP)"
    );
    for p in ["grpc", "http"] {
        let ep = str_at(
            &c.doc,
            &["receivers", "otlp", "protocols", p, "endpoint"],
            f,
        );
        assert!(
            ep.starts_with("0.0.0.0:"),
            "{f}: the OTLP {p} receiver must listen on all interfaces: {ep}"
        );
    }
    assert_eq!(c.health_port(), 13133, "{f}: health_check on 13133");
    assert_eq!(
        c.telemetry_port(),
        8888,
        "{f}: the collector's own metrics on 8888"
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
        .unwrap()
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
        let c = collector_config(file);
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
    let re = regex::Regex::new(&p).unwrap();
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
        .unwrap();
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
    assert_eq!(
        at(lb, &["resolver", "dns", "port"]).and_then(Value::as_u64),
        Some(4317),
        "{f}: the gateways' OTLP gRPC port"
    );
    assert!(gateway.otlp_ports().contains(&4317));
    let (gw_host, gw_port) = host_port(&env_default(str_at(
        c.component("exporters", "otlp_grpc/gateway"),
        &["endpoint"],
        f,
    )));
    assert_eq!((gw_host.as_str(), gw_port), (host.as_str(), 4317));
    // That host is the headless Service of the gateways.
    let svc = k8s("otel-collector/k8s/gateway-service.yaml");
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

// ---------------------------------------------------------------- kubernetes

fn k8s(rel: &str) -> Value {
    yaml(rel)
}

/// The collector container of a workload manifest.
fn collector_container(workload: &Value, file: &str) -> Value {
    at(workload, &["spec", "template", "spec", "containers"])
        .and_then(Value::as_sequence)
        .and_then(|cs| {
            cs.iter()
                .find(|c| at(c, &["name"]).and_then(Value::as_str) == Some("otelcol"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("{file}: no container otelcol"))
}

#[test]
fn kubernetes_tiers_are_generated_from_the_tested_configurations() {
    let kust_file = "otel-collector/kustomization.yaml";
    let kust = yaml(kust_file);
    let ns = str_at(&kust, &["namespace"], kust_file);
    let resources = strings(at(&kust, &["resources"]));
    for r in &resources {
        assert!(
            root().join("otel-collector").join(r).is_file(),
            "{kust_file}: {r} does not exist"
        );
    }
    let listed: BTreeSet<String> = resources
        .iter()
        .map(|r| format!("otel-collector/{r}"))
        .collect();
    for f in files("otel-collector/k8s", ".yaml") {
        assert!(listed.contains(&f), "{kust_file} does not deploy {f}");
    }
    // The ConfigMaps are made from the files the tests above check, so
    // what is deployed is what was tested.
    let generated: BTreeMap<String, Vec<String>> = at(&kust, &["configMapGenerator"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .map(|g| {
            (
                str_at(g, &["name"], kust_file).to_owned(),
                strings(at(g, &["files"])),
            )
        })
        .collect();
    let compose = yaml(COMPOSE);
    let collector_image = str_at(&compose, &["services", "otel-collector", "image"], COMPOSE);
    for (workload_file, kind_name, configmap, config_file) in [
        (
            "otel-collector/k8s/agent-daemonset.yaml",
            "DaemonSet",
            "otel-agent-config",
            "agent.yaml",
        ),
        (
            "otel-collector/k8s/gateway-deployment.yaml",
            "Deployment",
            "otel-gateway-config",
            "gateway.yaml",
        ),
    ] {
        assert_eq!(
            generated.get(configmap),
            Some(&vec![format!("config.yaml={config_file}")]),
            "{kust_file}: {configmap} must be generated from {config_file}"
        );
        let config = check_collector(&format!("otel-collector/{config_file}"));
        let w = k8s(workload_file);
        assert_eq!(str_at(&w, &["kind"], workload_file), kind_name);
        let spec = at(&w, &["spec", "template", "spec"]).unwrap();
        let c = collector_container(&w, workload_file);
        assert_eq!(
            str_at(&c, &["image"], workload_file),
            collector_image,
            "{workload_file}: the image compose runs"
        );
        let args = strings(at(&c, &["args"]));
        let config_path = args
            .iter()
            .find_map(|a| a.strip_prefix("--config="))
            .unwrap_or_else(|| panic!("{workload_file}: --config"));
        let volume_of = |mount_path: &str| -> String {
            at(&c, &["volumeMounts"])
                .and_then(Value::as_sequence)
                .unwrap()
                .iter()
                .find(|m| at(m, &["mountPath"]).and_then(Value::as_str) == Some(mount_path))
                .map(|m| str_at(m, &["name"], workload_file).to_owned())
                .unwrap_or_else(|| panic!("{workload_file}: nothing mounted at {mount_path}"))
        };
        let volume = |name: &str| -> Value {
            at(spec, &["volumes"])
                .and_then(Value::as_sequence)
                .unwrap()
                .iter()
                .find(|v| at(v, &["name"]).and_then(Value::as_str) == Some(name))
                .cloned()
                .unwrap_or_else(|| panic!("{workload_file}: no volume {name}"))
        };
        let (dir, file) = config_path.rsplit_once('/').unwrap();
        assert_eq!(
            file, "config.yaml",
            "{workload_file}: the key of the generated ConfigMap"
        );
        assert_eq!(
            at(&volume(&volume_of(dir)), &["configMap", "name"]).and_then(Value::as_str),
            Some(configmap),
            "{workload_file}: {dir} must hold ConfigMap {configmap}"
        );
        // The persistent queue has a writable volume.
        let queue = volume(&volume_of(&config.file_storage_directory()));
        assert!(
            at(&queue, &["hostPath"]).is_some() || at(&queue, &["emptyDir"]).is_some(),
            "{workload_file}: the queue needs a volume"
        );
        // The ports the configuration opens are the container's.
        let ports: BTreeSet<u16> = at(&c, &["ports"])
            .and_then(Value::as_sequence)
            .unwrap()
            .iter()
            .map(|p| at(p, &["containerPort"]).and_then(Value::as_u64).unwrap() as u16)
            .collect();
        assert_eq!(ports, config.ports(), "{workload_file}: container ports");
        let env: BTreeMap<String, String> = at(&c, &["env"])
            .and_then(Value::as_sequence)
            .unwrap()
            .iter()
            .map(|e| {
                (
                    str_at(e, &["name"], workload_file).to_owned(),
                    str_at(e, &["value"], workload_file).to_owned(),
                )
            })
            .collect();
        assert!(
            env.contains_key("GOMEMLIMIT"),
            "{workload_file}: GOMEMLIMIT"
        );
        assert!(
            at(&c, &["resources", "limits", "memory"]).is_some(),
            "{workload_file}: memory_limiter needs a memory limit"
        );
        // Every ${env:NAME:-default} of the configuration is set, to its
        // default.
        let mut values = Vec::new();
        yaml_strings(&config.doc, &mut values);
        for v in values {
            let mut rest = v.as_str();
            while let Some(i) = rest.find("${env:") {
                let inner = &rest[i + 6..i + rest[i..].find('}').unwrap()];
                let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
                assert_eq!(
                    env.get(name).map(String::as_str),
                    Some(default),
                    "{workload_file}: env {name}"
                );
                rest = &rest[i + 6..];
            }
        }
        assert_eq!(
            at(spec, &["securityContext", "runAsUser"]).and_then(Value::as_u64),
            Some(10001),
            "{workload_file}: the collector image's user"
        );
        for c in at(spec, &["initContainers"])
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .chain(
                at(spec, &["containers"])
                    .and_then(Value::as_sequence)
                    .unwrap(),
            )
        {
            assert_pinned(str_at(c, &["image"], workload_file), workload_file);
        }
    }
    // The agents find the gateways through a headless Service selecting them.
    let svc = k8s("otel-collector/k8s/gateway-service.yaml");
    assert_eq!(
        at(&svc, &["spec", "clusterIP"]).and_then(Value::as_str),
        Some("None"),
        "headless"
    );
    let gw = k8s("otel-collector/k8s/gateway-deployment.yaml");
    let selector = at(&svc, &["spec", "selector"]).unwrap();
    for (k, v) in selector.as_mapping().unwrap() {
        assert_eq!(
            at(
                &gw,
                &[
                    "spec",
                    "template",
                    "metadata",
                    "labels",
                    k.as_str().unwrap()
                ]
            ),
            Some(v),
            "the Service selects the gateway pods"
        );
    }
    let agent = collector_container(
        &k8s("otel-collector/k8s/agent-daemonset.yaml"),
        "agent-daemonset.yaml",
    );
    let gateway_host = at(&agent, &["env"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .find(|e| at(e, &["name"]).and_then(Value::as_str) == Some("OTEL_GATEWAY_HOST"))
        .map(|e| str_at(e, &["value"], "agent-daemonset.yaml").to_owned())
        .unwrap();
    assert_eq!(
        gateway_host,
        format!(
            "{}.{ns}.svc.cluster.local",
            str_at(&svc, &["metadata", "name"], "gateway-service.yaml")
        )
    );
}

// ---------------------------------------------------------------- Loki, Tempo

/// Loki's stream labels for OTLP logs: the index_label resource attributes,
/// with `.` made `_`.
fn loki_index_labels() -> BTreeSet<String> {
    let loki = yaml("stack/loki/config.yaml");
    let otlp = at(
        &loki,
        &["limits_config", "otlp_config", "resource_attributes"],
    )
    .unwrap();
    assert_eq!(
        at(otlp, &["ignore_defaults"]).and_then(Value::as_bool),
        Some(true),
        "Loki: only the chosen resource attributes become labels"
    );
    at(otlp, &["attributes_config"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .filter(|a| at(a, &["action"]).and_then(Value::as_str) == Some("index_label"))
        .flat_map(|a| strings(at(a, &["attributes"])))
        .map(|a| a.replace('.', "_"))
        .collect()
}

#[test]
fn loki_indexes_only_service_and_environment_and_keeps_trace_ids_as_metadata() {
    assert_eq!(
        loki_index_labels(),
        BTreeSet::from([
            "service_name".to_owned(),
            "deployment_environment_name".to_owned()
        ])
    );
    let loki = yaml("stack/loki/config.yaml");
    assert_eq!(
        at(&loki, &["limits_config", "allow_structured_metadata"]).and_then(Value::as_bool),
        Some(true)
    );
    assert!(at(&loki, &["limits_config", "retention_period"]).is_some());
    assert_eq!(
        at(&loki, &["compactor", "retention_enabled"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        str_at(&loki, &["schema_config", "configs", "0", "schema"], "loki"),
        "v13"
    );
    let tempo = yaml("stack/tempo/config.yaml");
    for legacy in [
        "ingester",
        "compactor",
        "ingester_client",
        "metrics_generator_client",
    ] {
        assert!(
            at(&tempo, &[legacy]).is_none(),
            "Tempo 3 has no {legacy} block"
        );
    }
}

// ---------------------------------------------------------------- Prometheus

/// promtool's major version.
fn promtool_major(promtool: &Path) -> u32 {
    let (_, out) = run_tool(Command::new(promtool).arg("--version"));
    out.split("version ")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read promtool's version: {out}"))
}

/// The keys of prometheus.yml only Prometheus 3 knows.
const PROMETHEUS_3_ONLY: &[&str] = &["otlp"];

#[test]
fn prometheus_configuration_passes_promtool() {
    let file = "stack/prometheus/prometheus.yml";
    let prom = yaml(file);
    // What promtool 2 cannot check, checked here: the OTLP receiver settings
    // the dashboards and rules depend on.
    assert_eq!(
        str_at(&prom, &["otlp", "translation_strategy"], file),
        "UnderscoreEscapingWithSuffixes",
        "the translation this test implements"
    );
    let promoted = strings(at(&prom, &["otlp", "promote_resource_attributes"]));
    for a in [
        "service.name",
        "service.namespace",
        "service.instance.id",
        "deployment.environment.name",
    ] {
        assert!(promoted.iter().any(|p| p == a), "{file}: promote {a}");
    }
    assert_eq!(
        at(&prom, &["otlp", "keep_identifying_resource_attributes"]).and_then(Value::as_bool),
        Some(true)
    );
    assert!(at(&prom, &["storage", "tsdb", "out_of_order_time_window"]).is_some());

    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    // promtool reads the rule files from where the file says; in the
    // container that is /etc/prometheus/rules. Point it at the repository's.
    let mut copy = prom.clone();
    let rules: Vec<Value> = files("stack/prometheus/rules", ".rules.yml")
        .iter()
        .map(|r| Value::String(root().join(r).to_string_lossy().into_owned()))
        .collect();
    assert!(!rules.is_empty());
    copy.as_mapping_mut()
        .unwrap()
        .insert("rule_files".into(), Value::Sequence(rules.clone()));
    let major = promtool_major(&promtool);
    if major < 3 {
        // Debian's promtool is Prometheus 2 (2.42 on bookworm), which
        // rejects the Prometheus 3 keys as unknown fields: it checks the
        // rest of the file, and the OTLP block is checked above.
        for k in PROMETHEUS_3_ONLY {
            copy.as_mapping_mut().unwrap().remove(*k);
        }
        eprintln!(
            "NOTE: promtool {major}.x checks prometheus.yml without the Prometheus 3 keys {PROMETHEUS_3_ONLY:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, serde_yaml_ng::to_string(&copy).unwrap()).unwrap();
    let (ok, out) = run_tool(
        Command::new(&promtool)
            .arg("check")
            .arg("config")
            .arg(&path),
    );
    assert!(ok, "promtool check config:\n{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rule files found", rules.len())),
        "promtool checked the config and every rule file:\n{out}"
    );
}

/// The alerts of a rule file: name and the rule.
fn alerts(file: &str) -> Vec<(String, Value)> {
    let doc = yaml(file);
    at(&doc, &["groups"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .flat_map(|g| {
            at(g, &["rules"])
                .and_then(Value::as_sequence)
                .unwrap()
                .clone()
        })
        .filter_map(|r| {
            let name = at(&r, &["alert"])?.as_str()?.to_owned();
            Some((name, r))
        })
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests_cover_every_alert() {
    let rule_files = files("stack/prometheus/rules", ".rules.yml");
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
        let file_name = rules.rsplit('/').next().unwrap();
        assert_eq!(
            strings(at(&t, &["rule_files"])),
            [file_name],
            "{test} tests {rules}"
        );
        // Each alert fires on a bad case and stays silent on a good one.
        let cases: Vec<&Value> = at(&t, &["tests"])
            .and_then(Value::as_sequence)
            .unwrap()
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
    for t in files("stack/prometheus/rules", ".test.yml") {
        assert!(
            rule_files.contains(&t.replace(".test.yml", ".rules.yml")),
            "{t} tests no rule file"
        );
    }

    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let dir = root().join("stack/prometheus/rules");
    for rules in &rule_files {
        let name = rules.rsplit('/').next().unwrap();
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

// ---------------------------------------------------------------- Grafana

const DATASOURCES: &str = "stack/grafana/provisioning/datasources/datasources.yaml";

/// uid → type of the provisioned data sources.
fn datasource_types() -> BTreeMap<String, String> {
    let ds = yaml(DATASOURCES);
    at(&ds, &["datasources"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .map(|d| {
            (
                str_at(d, &["uid"], DATASOURCES).to_owned(),
                str_at(d, &["type"], DATASOURCES).to_owned(),
            )
        })
        .collect()
}

fn datasource(uid: &str) -> Value {
    at(&yaml(DATASOURCES), &["datasources"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .find(|d| at(d, &["uid"]).and_then(Value::as_str) == Some(uid))
        .cloned()
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

/// Every string value of a YAML document.
fn yaml_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Mapping(m) => m.values().for_each(|x| yaml_strings(x, out)),
        Value::Sequence(s) => s.iter().for_each(|x| yaml_strings(x, out)),
        _ => {}
    }
}

/// Every `{"type": .., "uid": ..}` data source reference in a dashboard,
/// with where it is.
fn json_datasources(v: &serde_json::Value, path: &str, out: &mut Vec<(String, String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(ds) = m.get("datasource").and_then(|d| d.as_object()) {
                out.push((
                    path.to_owned(),
                    ds.get("type")
                        .and_then(|t| t.as_str())
                        .unwrap_or("")
                        .to_owned(),
                    ds.get("uid")
                        .and_then(|t| t.as_str())
                        .unwrap_or("")
                        .to_owned(),
                ));
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

fn dashboards() -> Vec<(String, serde_json::Value)> {
    files("stack/grafana/dashboards", ".json")
        .into_iter()
        .map(|f| {
            let d = json(&f);
            (f, d)
        })
        .collect()
}

#[test]
fn grafana_data_sources_exist_and_link_logs_traces_and_metrics() {
    let types = datasource_types();
    assert_eq!(
        types,
        BTreeMap::from([
            ("prometheus".to_owned(), "prometheus".to_owned()),
            ("loki".to_owned(), "loki".to_owned()),
            ("tempo".to_owned(), "tempo".to_owned()),
        ])
    );
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
    // The URLs are the compose services' ports.
    let compose = yaml(COMPOSE);
    let tempo_port = at(
        &yaml("stack/tempo/config.yaml"),
        &["server", "http_listen_port"],
    )
    .and_then(Value::as_u64)
    .unwrap();
    let loki_port = at(
        &yaml("stack/loki/config.yaml"),
        &["server", "http_listen_port"],
    )
    .and_then(Value::as_u64)
    .unwrap();
    for (uid, port) in [
        ("prometheus", 9090),
        ("loki", loki_port as u16),
        ("tempo", tempo_port as u16),
    ] {
        let url = str_at(&datasource(uid), &["url"], DATASOURCES).to_owned();
        assert_eq!(
            host_port(&url),
            (uid.to_owned(), port),
            "{DATASOURCES}: {uid}"
        );
        service(&compose, uid);
    }

    // Tempo: a span's logs (by trace id, in the service's Loki stream), its
    // metrics, the service map, the node graph and the Loki search.
    let tempo = datasource("tempo");
    let j = at(&tempo, &["jsonData"]).unwrap();
    assert_eq!(
        at(j, &["tracesToLogsV2", "datasourceUid"]).and_then(Value::as_str),
        Some("loki")
    );
    assert_eq!(
        at(j, &["tracesToLogsV2", "filterByTraceID"]).and_then(Value::as_bool),
        Some(true)
    );
    let tags = at(j, &["tracesToLogsV2", "tags"])
        .and_then(Value::as_sequence)
        .unwrap();
    let service_tag = tags
        .iter()
        .find(|t| at(t, &["key"]).and_then(Value::as_str) == Some("service.name"))
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
    let field = at(&loki, &["jsonData", "derivedFields", "0"]).unwrap();
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
    let ex = at(&prom, &["jsonData", "exemplarTraceIdDestinations", "0"]).unwrap();
    assert_eq!(at(ex, &["name"]).and_then(Value::as_str), Some("trace_id"));
    assert_eq!(
        at(ex, &["datasourceUid"]).and_then(Value::as_str),
        Some("tempo")
    );

    // Dashboards: every data source they use exists, with its type.
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

// ---------------------------------------------------------------- PromQL

/// What a PromQL expression reads: its selectors (metric name and the
/// label names of their matchers) and the label names of its by, without,
/// on, ignoring, group_left and group_right clauses. Enough PromQL for the
/// rules and dashboards here; Grafana variables (`$service`,
/// `$__rate_interval`, `$__tags`) are skipped.
#[derive(Debug, Default, PartialEq)]
struct PromqlUse {
    selectors: Vec<(String, Vec<String>)>,
    grouping: BTreeSet<String>,
}

const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Keywords, and the aggregation operators (which may be followed by
/// `by (...)` rather than by their parenthesis).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The index after a string literal starting at `i`.
fn skip_string(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() && b[j] != q {
        if b[j] == b'\\' && q != b'`' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// The index after a Grafana variable starting at `i` (`$x`, `${x}`).
fn skip_variable(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    if j < b.len() && b[j] == b'{' {
        while j < b.len() && b[j] != b'}' {
            j += 1;
        }
        return j + 1;
    }
    while j < b.len() && is_ident(b[j]) {
        j += 1;
    }
    j
}

/// The label names inside `{...}` starting at `i`, and the index after it.
fn matchers(expr: &str, i: usize) -> (Vec<String>, usize) {
    let b = expr.as_bytes();
    let mut labels = Vec::new();
    let mut j = i + 1;
    let mut expect_label = true;
    while j < b.len() && b[j] != b'}' {
        match b[j] {
            b'"' | b'\'' | b'`' => j = skip_string(b, j),
            b'$' => j = skip_variable(b, j),
            b',' => {
                expect_label = true;
                j += 1;
            }
            c if is_ident_start(c) && expect_label => {
                let s = j;
                while j < b.len() && is_ident(b[j]) {
                    j += 1;
                }
                labels.push(expr[s..j].to_owned());
                expect_label = false;
            }
            _ => j += 1,
        }
    }
    (labels, j + 1)
}

/// The names in `( a, b )` starting at `i`, and the index after it.
fn paren_list(expr: &str, i: usize) -> (Vec<String>, usize) {
    let end = i + expr[i..].find(')').expect("closed label list");
    let names = expr[i + 1..end]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (names, end + 1)
}

fn promql_uses(expr: &str) -> PromqlUse {
    let b = expr.as_bytes();
    let mut out = PromqlUse::default();
    let mut last_metric: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' || c == b'\'' || c == b'`' {
            i = skip_string(b, i);
            last_metric = None;
        } else if c == b'[' {
            // A range or a subquery: durations and variables only.
            i += expr[i..].find(']').expect("closed range") + 1;
            last_metric = None;
        } else if c == b'{' {
            let (labels, end) = matchers(expr, i);
            match last_metric {
                Some(k) => out.selectors[k].1.extend(labels),
                None => out.selectors.push((String::new(), labels)),
            }
            i = end;
            last_metric = None;
        } else if c == b'$' {
            i = skip_variable(b, i);
            last_metric = None;
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            // A number or a duration.
            while i < b.len() && (is_ident(b[i]) || b[i] == b'.') {
                i += 1;
            }
            last_metric = None;
        } else if is_ident_start(c) {
            let s = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let word = &expr[s..i];
            let next = skip_ws(b, i);
            let call = next < b.len() && b[next] == b'(';
            if GROUPING.contains(&word) && call {
                let (labels, end) = paren_list(expr, next);
                out.grouping.extend(labels);
                i = end;
                last_metric = None;
            } else if call || KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                last_metric = None;
            } else {
                out.selectors.push((word.to_owned(), Vec::new()));
                last_metric = Some(out.selectors.len() - 1);
            }
        } else {
            i += 1;
            last_metric = None;
        }
    }
    out
}

#[test]
fn promql_reader_finds_metrics_labels_and_grouping() {
    let u = promql_uses(
        r#"histogram_quantile(0.95, sum by (service_name, le) (rate(http_server_request_duration_seconds_bucket{service_name=~"$service", http_route!="/x{y}"}[$__rate_interval])))
           / on (job) group_left sum(up{job="a"}) without (instance) or vector(1) > bool 0.5e3 and x_total offset 5m"#,
    );
    assert_eq!(
        u.selectors,
        vec![
            (
                "http_server_request_duration_seconds_bucket".to_owned(),
                vec!["service_name".to_owned(), "http_route".to_owned()]
            ),
            ("up".to_owned(), vec!["job".to_owned()]),
            ("x_total".to_owned(), vec![]),
        ]
    );
    assert_eq!(
        u.grouping,
        ["instance", "job", "le", "service_name"]
            .map(str::to_owned)
            .into()
    );
    let u = promql_uses("sum(rate(a{$__tags}[5m])) by (b)");
    assert_eq!(u.selectors, vec![("a".to_owned(), vec![])]);
    assert_eq!(u.grouping, ["b".to_owned()].into());
}

// ---------------------------------------------------------------- Prometheus's OTLP translation

/// The kinds of OTLP metric that name differently in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OtlpKind {
    Gauge,
    /// A monotonic sum.
    Counter,
    /// A non-monotonic sum: a gauge in Prometheus.
    UpDownCounter,
    /// Explicit buckets: a classic histogram (_bucket, _sum, _count).
    Histogram,
    /// A native histogram: one series, no suffixes.
    ExponentialHistogram,
}

impl OtlpKind {
    fn of(kind: MetricKind) -> OtlpKind {
        match kind {
            MetricKind::Gauge => OtlpKind::Gauge,
            MetricKind::Sum {
                monotonic: true, ..
            } => OtlpKind::Counter,
            MetricKind::Sum {
                monotonic: false, ..
            } => OtlpKind::UpDownCounter,
            MetricKind::Histogram { .. } => OtlpKind::Histogram,
            MetricKind::ExponentialHistogram => OtlpKind::ExponentialHistogram,
            MetricKind::Summary => panic!("summaries are not used here"),
        }
    }
}

/// OTLP unit → Prometheus unit suffix (`unitMap` of prometheus/otlptranslator).
const UNITS: &[(&str, &str)] = &[
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    ("1", ""),
    ("%", "percent"),
];

/// The unit after `/` → `per_` suffix (`perUnitMap`).
const PER_UNITS: &[(&str, &str)] = &[
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

/// `cleanUpUnit`: invalid characters to `_`, runs of `_` to one, no
/// leading `_`.
fn clean_unit(u: &str) -> String {
    let mapped: String = u
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut out = String::new();
    for c in mapped.chars() {
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_start_matches('_').to_owned()
}

/// The name Prometheus 3 gives an OTLP metric with `translation_strategy:
/// UnderscoreEscapingWithSuffixes` (prometheus/otlptranslator,
/// `normalizeName`): the name is split on every character other than
/// `[a-zA-Z0-9:]` and joined with `_`; the unit becomes a suffix unless
/// the name already has it (`s` → `seconds`, `By` → `bytes`, `By/s` →
/// `bytes_per_second`; a `{annotation}` adds nothing and `1` adds nothing,
/// except `ratio` on gauges); a counter ends in `_total`; a leading digit
/// gets `_`. Histogram series then add `_bucket`, `_sum` and `_count`.
fn prometheus_name(name: &str, unit: &str, kind: OtlpKind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let (main_otel, per_otel) = match unit.split_once('/') {
        Some((m, p)) => (m.trim(), Some(p.trim())),
        None => (unit.trim(), None),
    };
    let braces = |u: &str| u.contains('{') || u.contains('}');
    let mut main = if main_otel.is_empty() || braces(main_otel) {
        String::new()
    } else {
        UNITS
            .iter()
            .find(|(k, _)| *k == main_otel)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| main_otel.to_owned())
    };
    let mut per = match per_otel {
        Some(p) if !p.is_empty() && !braces(p) => {
            let p = PER_UNITS
                .iter()
                .find(|(k, _)| *k == p)
                .map(|(_, v)| *v)
                .unwrap_or(p);
            format!("per_{p}")
        }
        _ => String::new(),
    };
    main = clean_unit(&main);
    per = clean_unit(&per);
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        per = per.trim_end_matches('_').to_owned();
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() {
        main = main.trim_end_matches('_').to_owned();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if kind == OtlpKind::Counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == OtlpKind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let name = tokens.join("_");
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{name}")
    } else {
        name
    }
}

/// The label Prometheus makes of an attribute key: characters other than
/// `[a-zA-Z0-9_]` become `_`; a leading digit gets `key_`.
fn prometheus_label(key: &str) -> String {
    let l: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if l.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{l}")
    } else {
        l
    }
}

/// The series names of a metric.
fn series_names(name: &str, unit: &str, kind: OtlpKind) -> Vec<String> {
    let base = prometheus_name(name, unit, kind);
    match kind {
        OtlpKind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{base}{s}"))
            .collect(),
        _ => vec![base],
    }
}

#[test]
fn prometheus_translation_matches_upstream_examples() {
    use OtlpKind::*;
    // Examples from prometheus/otlptranslator and the OpenTelemetry
    // compatibility specification (OTLP metric points to Prometheus).
    for (name, unit, kind, expected) in [
        (
            "http.server.request.duration",
            "s",
            Histogram,
            "http_server_request_duration_seconds",
        ),
        (
            "http.server.duration",
            "s",
            Histogram,
            "http_server_duration_seconds",
        ),
        (
            "http.server.active_requests",
            "{request}",
            UpDownCounter,
            "http_server_active_requests",
        ),
        ("requests.count", "1", Counter, "requests_count_total"),
        ("memory.usage", "By", Gauge, "memory_usage_bytes"),
        (
            "system.network.io",
            "By/s",
            Gauge,
            "system_network_io_bytes_per_second",
        ),
        ("cpu.utilization", "1", Gauge, "cpu_utilization_ratio"),
        (
            "system.cpu.time",
            "s",
            Counter,
            "system_cpu_time_seconds_total",
        ),
        (
            "request.latency.seconds",
            "s",
            Gauge,
            "request_latency_seconds",
        ),
        ("foo.total", "", Counter, "foo_total"),
        (
            "traces_service_graph_request_total",
            "",
            Counter,
            "traces_service_graph_request_total",
        ),
        ("2xx.responses", "", Counter, "_2xx_responses_total"),
        ("packets", "{packet}/s", Counter, "packets_per_second_total"),
        ("temperature", "Cel", Gauge, "temperature_celsius"),
        (
            "throughput",
            "MiBy/min",
            Gauge,
            "throughput_mebibytes_per_min",
        ),
        ("latency", "s", ExponentialHistogram, "latency_seconds"),
    ] {
        assert_eq!(
            prometheus_name(name, unit, kind),
            expected,
            "{name} ({unit}, {kind:?})"
        );
    }
    assert_eq!(
        series_names("http.client.request.duration", "s", Histogram),
        [
            "http_client_request_duration_seconds_bucket",
            "http_client_request_duration_seconds_sum",
            "http_client_request_duration_seconds_count"
        ]
    );
    assert_eq!(
        prometheus_label("http.response.status_code"),
        "http_response_status_code"
    );
    assert_eq!(prometheus_label("check-name"), "check_name");
    assert_eq!(prometheus_label("0day"), "key_0day");
}

// ---------------------------------------------------------------- what the services emit

/// The series Prometheus would hold, with the label names each has.
#[derive(Debug, Default)]
struct Catalog {
    series: BTreeMap<String, BTreeSet<String>>,
    /// Where each came from (every source that emits it).
    origin: BTreeMap<String, BTreeSet<&'static str>>,
}

impl Catalog {
    fn add(
        &mut self,
        name: &str,
        unit: &str,
        kind: OtlpKind,
        labels: impl IntoIterator<Item = String>,
        origin: &'static str,
    ) {
        let labels: BTreeSet<String> = labels.into_iter().collect();
        for s in series_names(name, unit, kind) {
            let mut l = labels.clone();
            if s.ends_with("_bucket") {
                l.insert("le".into());
            }
            self.series.entry(s.clone()).or_default().extend(l);
            self.origin.entry(s).or_default().insert(origin);
        }
    }

    /// A data point received over OTLP, as Prometheus's OTLP receiver
    /// stores it: the point's attributes, the promoted resource attributes,
    /// job (service.namespace/service.name) and instance
    /// (service.instance.id).
    fn add_point(&mut self, p: &MetricPoint, promoted: &[String], origin: &'static str) {
        let mut labels: Vec<String> = p
            .attributes
            .iter()
            .map(|(k, _)| prometheus_label(k))
            .collect();
        for key in promoted {
            if p.resource.contains_key(key) {
                labels.push(prometheus_label(key));
            }
        }
        if p.resource.contains_key("service.name") {
            labels.push("job".into());
        }
        if p.resource.contains_key("service.instance.id") {
            labels.push("instance".into());
        }
        self.add(&p.name, &p.unit, OtlpKind::of(p.kind), labels, origin);
    }

    fn labels(&self, series: &str) -> Option<&BTreeSet<String>> {
        self.series.get(series)
    }
}

/// Series the collector itself makes, which no service can emit: `up`
/// (Prometheus, for the scrape of the collector, job="otel-collector") and
/// the collector's own telemetry scraped from :8888. Their names are what
/// the collector's Prometheus reader writes, from the receiverhelper and
/// exporterhelper metrics of the collector's internal-telemetry
/// documentation: counters get `_total`, `{spans}`-like units nothing.
fn collector_series(catalog: &mut Catalog) {
    const ORIGIN: &str = "the collector's own metrics (scraped from :8888)";
    let scrape = ["job", "instance"];
    catalog.add(
        "up",
        "",
        OtlpKind::Gauge,
        scrape.map(str::to_owned),
        "Prometheus, per scrape target",
    );
    for item in ["spans", "log_records", "metric_points"] {
        for what in ["accepted", "refused"] {
            catalog.series.insert(
                format!("otelcol_receiver_{what}_{item}_total"),
                ["job", "instance", "receiver", "transport"]
                    .map(str::to_owned)
                    .into(),
            );
            catalog.origin.insert(
                format!("otelcol_receiver_{what}_{item}_total"),
                [ORIGIN].into(),
            );
        }
        for what in ["sent", "send_failed", "enqueue_failed"] {
            catalog.series.insert(
                format!("otelcol_exporter_{what}_{item}_total"),
                ["job", "instance", "exporter"].map(str::to_owned).into(),
            );
            catalog.origin.insert(
                format!("otelcol_exporter_{what}_{item}_total"),
                [ORIGIN].into(),
            );
        }
    }
    for gauge in [
        "otelcol_exporter_queue_size",
        "otelcol_exporter_queue_capacity",
    ] {
        catalog.series.insert(
            gauge.into(),
            ["job", "instance", "exporter", "data_type"]
                .map(str::to_owned)
                .into(),
        );
        catalog.origin.insert(gauge.into(), [ORIGIN].into());
    }
}

/// What the collector's connectors make of the spans, over OTLP like any
/// metric: span_metrics (`<namespace>.calls`, a counter, and
/// `<namespace>.duration`, a histogram in `histogram.unit`; namespace
/// `traces.span.metrics` by default) with service.name, span.name,
/// span.kind, status.code, collector.instance.id and the configured
/// dimensions, on the spans' resource (so service.name is promoted as for
/// any service); and service_graph (`traces_service_graph_request_total`,
/// `_failed_total`, and the `_server` and `_client` latency histograms in
/// seconds) with client, server and connection_type. Read from the
/// settings of otel-collector/config.yaml, so that the names follow them.
fn connector_series(catalog: &mut Catalog) {
    let c = collector_config("otel-collector/config.yaml");
    let spans = c.component("connectors", "span_metrics");
    let namespace = at(spans, &["namespace"])
        .and_then(Value::as_str)
        .unwrap_or("traces.span.metrics");
    let unit = at(spans, &["histogram", "unit"])
        .and_then(Value::as_str)
        .unwrap_or("ms");
    let histogram = if at(spans, &["histogram", "exponential"]).is_some() {
        OtlpKind::ExponentialHistogram
    } else {
        OtlpKind::Histogram
    };
    let mut labels: Vec<String> = [
        "service.name",
        "span.name",
        "span.kind",
        "status.code",
        "collector.instance.id",
    ]
    .iter()
    .map(|l| prometheus_label(l))
    .collect();
    for d in at(spans, &["dimensions"])
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        labels.push(prometheus_label(str_at(d, &["name"], &c.file)));
    }
    labels.extend(["job", "instance"].map(str::to_owned));
    const SPANS: &str = "the collector's span_metrics connector";
    catalog.add(
        &format!("{namespace}.calls"),
        "",
        OtlpKind::Counter,
        labels.clone(),
        SPANS,
    );
    catalog.add(
        &format!("{namespace}.duration"),
        unit,
        histogram,
        labels,
        SPANS,
    );

    let graph = c.component("connectors", "service_graph");
    let latency = if at(graph, &["latency_histogram_buckets"]).is_some() {
        OtlpKind::Histogram
    } else {
        OtlpKind::ExponentialHistogram
    };
    let mut labels: Vec<String> = ["client", "server", "connection_type"]
        .map(str::to_owned)
        .to_vec();
    for d in strings(at(graph, &["dimensions"])) {
        labels.push(format!("client_{}", prometheus_label(&d)));
        labels.push(format!("server_{}", prometheus_label(&d)));
    }
    const GRAPH: &str = "the collector's service_graph connector";
    for name in [
        "traces_service_graph_request_total",
        "traces_service_graph_request_failed_total",
    ] {
        catalog.add(name, "", OtlpKind::Counter, labels.clone(), GRAPH);
    }
    for name in [
        "traces_service_graph_request_server",
        "traces_service_graph_request_client",
    ] {
        catalog.add(name, "s", latency, labels.clone(), GRAPH);
    }
}

fn pipeline(name: &str, collector: &Collector) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name(name)
        .environment("compose")
        .endpoint(collector.grpc_endpoint())
        .protocol(Protocol::Grpc)
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .scheduled_delay(Signal::Logs, Duration::from_millis(100))
        .metric_export_interval(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// Runs the health-checker worker with `config` until told to stop.
fn run_health_checker(
    telemetry: Telemetry,
    config: health_checker::Config,
) -> impl FnOnce() -> otelwire::ShutdownReport {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let guard = tracing::dispatcher::set_default(telemetry.dispatch());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let handle = health_checker::spawn(&telemetry, config);
            let _ = stop_rx.await;
            handle.stop().await;
        });
        drop(rt);
        drop(guard);
        telemetry.shutdown_blocking()
    });
    move || {
        let _ = stop_tx.send(());
        thread.join().unwrap()
    }
}

/// Runs inventory, orders-api and the health-checker in-process against an
/// `otelwire-test` collector, drives requests that succeed, a 404 and a 5xx
/// (so that error series exist), and returns every metric point received.
async fn emitted_metrics() -> Vec<MetricPoint> {
    let collector = Collector::start().unwrap();
    let failing = inventory::Config {
        failing_skus: vec!["gizmo".into()],
        ..Default::default()
    };
    let (inv, stop_inventory) = run(pipeline("inventory", &collector), async move |t| {
        inventory::router(t, failing)
    });
    let inventory_url = format!("http://{inv}");
    let url = inventory_url.clone();
    let (ord, stop_orders) = run(pipeline("orders-api", &collector), async move |t| {
        orders_api::app(t, &url, None).await.unwrap()
    });

    let client = reqwest::Client::new();
    let token = common::demo_token(&client, &format!("http://{ord}")).await;
    let mut statuses = Vec::new();
    for sku in ["widget", "unicorn", "gizmo"] {
        let r = client
            .post(format!("http://{ord}/orders"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"sku": sku, "quantity": 1}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    for id in [1, 999] {
        let r = client
            .get(format!("http://{ord}/orders/{id}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses,
        [201, 404, 502, 200, 404],
        "the requests the test meant to make"
    );

    // The health-checker: the two services, healthy, and a port nobody
    // listens on, unhealthy, so that both statuses exist.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let fast = |c: health_checker::CheckConfig| {
        c.interval(Duration::from_millis(150))
            .timeout(Duration::from_millis(140))
    };
    let mut config = health_checker::Config::default_for(&format!("http://{ord}"), &inventory_url);
    config.checks = config.checks.into_iter().map(fast).collect();
    config.checks.push(fast(health_checker::CheckConfig::tcp(
        "nothing-there",
        closed.to_string(),
    )));
    config.validate().unwrap();
    let stop_checker = run_health_checker(pipeline("health-checker", &collector), config);
    for (metric, what) in [
        (health_checker::SCORE, "a health score"),
        (health_checker::CHECK_STATUS, "a check status"),
    ] {
        collector
            .wait_for_metric(metric, |_| true, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    collector
        .wait_for_metric(
            health_checker::CHECKS,
            |p| p.attributes.get_str("check.status") == Some("unhealthy"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    for report in [stop_checker(), stop_orders(), stop_inventory()] {
        assert_eq!(report.dropped(), 0, "{report}");
    }
    collector.metrics()
}

/// A rule's or a dashboard's query.
struct Query {
    origin: String,
    expr: String,
    /// Legend template labels (`{{label}}`).
    legend: Vec<String>,
}

fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split_once("}}"))
        .map(|(l, _)| l.trim().to_owned())
        .collect()
}

/// Every PromQL query of the rules, the dashboards and the data sources'
/// links, and every `label_values(metric, label)` of the dashboards'
/// variables.
fn queries() -> (Vec<Query>, Vec<(String, String, String)>) {
    let mut out = Vec::new();
    let mut label_values = Vec::new();
    for file in files("stack/prometheus/rules", ".rules.yml") {
        for (name, rule) in alerts(&file) {
            out.push(Query {
                origin: format!("{file}: {name}"),
                expr: str_at(&rule, &["expr"], &file).to_owned(),
                legend: Vec::new(),
            });
        }
    }
    let tempo = datasource("tempo");
    for q in at(&tempo, &["jsonData", "tracesToMetrics", "queries"])
        .and_then(Value::as_sequence)
        .unwrap()
    {
        out.push(Query {
            origin: format!(
                "{DATASOURCES}: tracesToMetrics {}",
                str_at(q, &["name"], DATASOURCES)
            ),
            // `$$` is provisioning's escape for `$`.
            expr: str_at(q, &["query"], DATASOURCES).replace("$$", "$"),
            legend: Vec::new(),
        });
    }
    for (file, d) in dashboards() {
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["datasource"]["type"] != "prometheus" {
                continue;
            }
            let q = v["definition"].as_str().unwrap_or("");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| {
                    panic!(
                        "{file}: variable {}: only label_values(metric, label)",
                        v["name"]
                    )
                });
            let (metric, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
            label_values.push((
                format!("{file}: variable {}", v["name"]),
                metric.trim().to_owned(),
                label.trim().to_owned(),
            ));
        }
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if t["datasource"]["type"] != "prometheus" {
                    continue;
                }
                out.push(Query {
                    origin: format!("{file}: panel {:?}", p["title"].as_str().unwrap_or("")),
                    expr: t["expr"].as_str().unwrap().to_owned(),
                    legend: legend_labels(t["legendFormat"].as_str().unwrap_or("")),
                });
            }
        }
    }
    (out, label_values)
}

#[tokio::test]
async fn rules_and_dashboards_use_the_metric_names_prometheus_makes_of_what_the_services_emit() {
    let promoted = strings(at(
        &yaml("stack/prometheus/prometheus.yml"),
        &["otlp", "promote_resource_attributes"],
    ));
    let points = emitted_metrics().await;
    let mut catalog = Catalog::default();
    for p in &points {
        // Prometheus's OTLP receiver takes cumulative temporality only.
        match p.kind {
            MetricKind::Sum { cumulative, .. } | MetricKind::Histogram { cumulative } => {
                assert!(
                    cumulative,
                    "{} is delta: Prometheus would reject it",
                    p.name
                )
            }
            _ => {}
        }
        let service = p.resource.get_str("service.name").unwrap_or("");
        let origin = match service {
            "inventory" => "inventory",
            "orders-api" => "orders-api",
            "health-checker" => "health-checker",
            other => panic!("a metric from {other}"),
        };
        catalog.add_point(p, &promoted, origin);
    }
    // The names the examples emit that this stack relies on, and the
    // labels of the RED series (a 5xx and a 404 were driven).
    for s in [
        "http_server_request_duration_seconds_bucket",
        "http_server_active_requests",
        "http_client_request_duration_seconds_bucket",
        "otelwire_telemetry_exported_total",
        "otelwire_telemetry_dropped_total",
        "otelwire_telemetry_export_failures_total",
        "health_score",
        "health_check_status",
        "health_checks_total",
        "health_check_duration_seconds_bucket",
    ] {
        assert!(
            catalog.labels(s).is_some(),
            "the examples emit no {s}: {:?}",
            catalog.series.keys()
        );
    }
    let red = catalog
        .labels("http_server_request_duration_seconds_count")
        .unwrap();
    for l in [
        "service_name",
        "http_route",
        "http_request_method",
        "http_response_status_code",
        "job",
        "instance",
    ] {
        assert!(
            red.contains(l),
            "http_server_request_duration_seconds_count has no {l}: {red:?}"
        );
    }
    collector_series(&mut catalog);
    connector_series(&mut catalog);

    let (queries, label_values) = queries();
    assert!(queries.len() > 40, "{} queries", queries.len());
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for q in &queries {
        let u = promql_uses(&q.expr);
        if u.selectors.is_empty() {
            problems.push(format!("{}: reads no metric: {}", q.origin, q.expr));
        }
        let mut available: BTreeSet<String> = BTreeSet::new();
        for (metric, matchers) in &u.selectors {
            let Some(labels) = catalog.labels(metric) else {
                problems.push(format!(
                    "{}: {metric:?} is not a series Prometheus gets here",
                    q.origin
                ));
                continue;
            };
            used.insert(metric.clone());
            for m in matchers {
                if !labels.contains(m) {
                    problems.push(format!(
                        "{}: {metric} has no label {m} (it has {labels:?})",
                        q.origin
                    ));
                }
            }
            available.extend(labels.iter().cloned());
        }
        let mut grouped = u.grouping.clone();
        grouped.extend(q.legend.iter().cloned());
        for l in &grouped {
            if !available.is_empty() && !available.contains(l) {
                problems.push(format!(
                    "{}: groups or shows by {l}, which none of its series has",
                    q.origin
                ));
            }
        }
    }
    for (origin, metric, label) in &label_values {
        let u = promql_uses(metric);
        for (m, _) in &u.selectors {
            match catalog.labels(m) {
                Some(labels) if labels.contains(label) => {
                    used.insert(m.clone());
                }
                Some(labels) => {
                    problems.push(format!("{origin}: {m} has no label {label} ({labels:?})"))
                }
                None => problems.push(format!(
                    "{origin}: {m:?} is not a series Prometheus gets here"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Each kind of source is used somewhere: the services' own metrics, the
    // collector's, and the connectors'.
    let origins: BTreeSet<&str> = used
        .iter()
        .flat_map(|s| catalog.origin[s].iter().copied())
        .collect();
    for o in [
        "inventory",
        "health-checker",
        "the collector's own metrics (scraped from :8888)",
        "the collector's span_metrics connector",
        "the collector's service_graph connector",
    ] {
        assert!(origins.contains(o), "nothing from {o} is used: {origins:?}");
    }
}

#[test]
fn dashboards_query_loki_by_its_stream_labels() {
    let index = loki_index_labels();
    let mut n = 0;
    for (file, d) in dashboards() {
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if t["datasource"]["type"] != "loki" {
                    continue;
                }
                let expr = t["expr"].as_str().unwrap();
                let b = expr.as_bytes();
                let mut i = 0;
                let mut selectors = 0;
                while let Some(j) = expr[i..].find('{') {
                    let (labels, end) = matchers(expr, i + j);
                    for l in labels {
                        assert!(
                            index.contains(&l),
                            "{file}: {expr}: {l} is not a Loki stream label ({index:?})"
                        );
                    }
                    selectors += 1;
                    i = end.min(b.len());
                }
                assert!(selectors > 0, "{file}: {expr}: no stream selector");
                n += 1;
            }
        }
    }
    assert!(n >= 4, "{n} Loki queries");
}
