//! The stack's configuration files as the `tests/tests/stack_*.rs` tests
//! read them: files of the repository, YAML and JSON documents and the
//! values in them, the collector's `${env:NAME:-default}` references,
//! endpoints, and the collector configurations of `otel-collector/`.

use std::collections::BTreeSet;
use std::process::Command;

use serde_yaml_ng::Value;

/// The workspace root, where every path of this module starts.
pub use crate::programs::root;

/// The compose file, relative to the root.
pub const COMPOSE: &str = "docker-compose.yml";

/// The text of the file `rel` (relative to the root); panics naming it.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The file `rel` parsed as one YAML document; panics naming it.
pub fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: not YAML: {e}"))
}

/// Every document of a multi-document YAML text whose documents are
/// separated by `---` lines, as `kustomize build` prints them; `what`
/// names the text in a panic.
pub fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.iter()
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).unwrap_or_else(|e| panic!("{what}: not YAML: {e}")))
        .collect()
}

/// The file `rel` parsed as JSON; panics naming it.
pub fn json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: not JSON: {e}"))
}

/// The value at `path`: mapping keys, or indexes of sequences (`"0"`).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| match v {
        Value::Mapping(m) => m.get(*k),
        Value::Sequence(s) => s.get(k.parse::<usize>().ok()?),
        _ => None,
    })
}

/// The string at `path`; panics naming `file` and the path if there is
/// none.
pub fn str_at<'a>(v: &'a Value, path: &[&str], file: &str) -> &'a str {
    at(v, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{file}: no string at {}", path.join(".")))
}

/// The string keys of a mapping, in order; none for anything else.
pub fn keys(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The items of a sequence as text (see [`scalar`]); none for anything
/// else.
pub fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(s)) => s.iter().map(scalar).collect(),
        _ => Vec::new(),
    }
}

/// A value as text: a string as it is, anything else as YAML writes it
/// (`4317`, `true`).
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .expect("a YAML value serializes")
            .trim()
            .to_owned(),
    }
}

/// Every string value of a YAML document, at any depth.
pub fn yaml_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Mapping(m) => m.values().for_each(|x| yaml_strings(x, out)),
        Value::Sequence(s) => s.iter().for_each(|x| yaml_strings(x, out)),
        _ => {}
    }
}

/// The files of the directory `dir` of the repository whose names end
/// with `suffix`, as paths relative to the root, sorted.
pub fn files(dir: &str, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(suffix))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    out
}

/// `${env:NAME:-default}` → `default` (what the collector uses when NAME
/// is unset, and what docker-compose and the Kubernetes manifests run
/// with); `${env:NAME}` → empty; any other text as it is.
pub fn env_default(s: &str) -> String {
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

/// Every `${env:NAME:-default}` reference of a YAML document, as `(NAME,
/// Some(default))`, or `(NAME, None)` for `${env:NAME}`, in order, once
/// each.
pub fn env_refs(doc: &Value) -> Vec<(String, Option<String>)> {
    let mut values = Vec::new();
    yaml_strings(doc, &mut values);
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for v in values {
        let mut rest = v.as_str();
        while let Some(i) = rest.find("${env:") {
            let end = i + rest[i..].find('}').expect("closed ${env:...}");
            let inner = &rest[i + 6..end];
            let r = match inner.split_once(":-") {
                Some((name, default)) => (name.to_owned(), Some(default.to_owned())),
                None => (inner.to_owned(), None),
            };
            if !out.contains(&r) {
                out.push(r);
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// `(host, port)` of `scheme://host:port/path`, `dns:///host:port` or
/// `host:port`; panics if there is no port.
pub fn host_port(endpoint: &str) -> (String, u16) {
    let s = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint)
        .trim_start_matches('/');
    let hp = s.split('/').next().unwrap_or(s);
    let (h, p) = hp
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {endpoint}"));
    (
        h.to_owned(),
        p.parse().unwrap_or_else(|_| panic!("port of {endpoint}")),
    )
}

/// The port of an endpoint (see [`host_port`]).
pub fn port_of(endpoint: &str) -> u16 {
    host_port(endpoint).1
}

/// Asserts that an image reference is pinned to a version tag (not
/// `latest`, not untagged); `who` names where it is used.
pub fn assert_pinned(image: &str, who: &str) {
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
    assert!(
        !tag.is_empty() && !tag.contains('/') && tag != "latest",
        "{who}: image {image} is not pinned to a version"
    );
}

/// Runs `cmd` to its end: whether it succeeded, and its stdout followed
/// by its stderr. Panics if it cannot be started.
pub fn run_tool(cmd: &mut Command) -> (bool, String) {
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

/// Loki's stream labels for OTLP logs: the resource attributes that
/// `stack/loki/config.yaml` indexes (`index_label`), with `.` made `_`.
/// Asserts that Loki's default labels are off, so these are all of them.
pub fn loki_index_labels() -> BTreeSet<String> {
    let loki = yaml("stack/loki/config.yaml");
    let otlp = at(
        &loki,
        &["limits_config", "otlp_config", "resource_attributes"],
    )
    .expect("stack/loki/config.yaml: limits_config.otlp_config.resource_attributes");
    assert_eq!(
        at(otlp, &["ignore_defaults"]).and_then(Value::as_bool),
        Some(true),
        "Loki: only the chosen resource attributes become labels"
    );
    at(otlp, &["attributes_config"])
        .and_then(Value::as_sequence)
        .expect("stack/loki/config.yaml: resource_attributes.attributes_config")
        .iter()
        .filter(|a| at(a, &["action"]).and_then(Value::as_str) == Some("index_label"))
        .flat_map(|a| strings(at(a, &["attributes"])))
        .map(|a| a.replace('.', "_"))
        .collect()
}

/// The Grafana dashboards of `stack/grafana/dashboards`: file and JSON.
pub fn dashboards() -> Vec<(String, serde_json::Value)> {
    files("stack/grafana/dashboards", ".json")
        .into_iter()
        .map(|f| {
            let d = json(&f);
            (f, d)
        })
        .collect()
}

/// The type of a component id (`otlp_http/loki` → `otlp_http`).
pub fn kind(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

/// The signal of a pipeline id (`metrics/from_traces` → `metrics`).
pub fn signal(pipeline: &str) -> &str {
    kind(pipeline)
}

/// One pipeline of a collector configuration's `service.pipelines`.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Its id (`traces`, `metrics/from_traces`).
    pub name: String,
    /// Its receivers (connectors included), in order.
    pub receivers: Vec<String>,
    /// Its processors, in order.
    pub processors: Vec<String>,
    /// Its exporters (connectors included), in order.
    pub exporters: Vec<String>,
}

/// A collector configuration file of `otel-collector/`, with what the
/// tests read of it. Values written `${env:NAME:-default}` are read as
/// their defaults: the values docker-compose and Kubernetes run with.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// The file, relative to the root (`otel-collector/config.yaml`).
    pub file: String,
    /// Its YAML.
    pub doc: Value,
}

impl CollectorConfig {
    /// Reads `file` (relative to the root).
    pub fn read(file: &str) -> CollectorConfig {
        CollectorConfig {
            file: file.to_owned(),
            doc: yaml(file),
        }
    }

    /// The ids defined in a section (`receivers`, `exporters`, ...).
    pub fn defined(&self, section: &str) -> BTreeSet<String> {
        keys(at(&self.doc, &[section])).into_iter().collect()
    }

    /// The pipelines of `service.pipelines`.
    pub fn pipelines(&self) -> Vec<Pipeline> {
        keys(at(&self.doc, &["service", "pipelines"]))
            .into_iter()
            .map(|name| {
                let p = at(&self.doc, &["service", "pipelines", &name])
                    .expect("a pipeline listed is there");
                Pipeline {
                    receivers: strings(at(p, &["receivers"])),
                    processors: strings(at(p, &["processors"])),
                    exporters: strings(at(p, &["exporters"])),
                    name,
                }
            })
            .collect()
    }

    /// The component `section.id`; panics naming the file if it is absent.
    pub fn component(&self, section: &str, id: &str) -> &Value {
        at(&self.doc, &[section, id]).unwrap_or_else(|| panic!("{}: no {section}.{id}", self.file))
    }

    /// The string at `path`, `${env:..:-default}` read as its default.
    pub fn value(&self, path: &[&str]) -> String {
        env_default(str_at(&self.doc, path, &self.file))
    }

    /// The listen endpoint of the OTLP receiver's `grpc` or `http`
    /// protocol (its default).
    pub fn otlp_endpoint(&self, protocol: &str) -> String {
        self.value(&["receivers", "otlp", "protocols", protocol, "endpoint"])
    }

    /// The OTLP receiver's ports, gRPC and HTTP.
    pub fn otlp_ports(&self) -> BTreeSet<u16> {
        ["grpc", "http"]
            .iter()
            .map(|p| port_of(&self.otlp_endpoint(p)))
            .collect()
    }

    /// The port of the health_check extension.
    pub fn health_port(&self) -> u16 {
        port_of(&self.value(&["extensions", "health_check", "endpoint"]))
    }

    /// The `(host, port)` the collector serves its own metrics on (its
    /// Prometheus reader), defaults read.
    pub fn telemetry_address(&self) -> (String, u16) {
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
        let field = |k: &str| {
            env_default(&scalar(at(reader, &[k]).unwrap_or_else(|| {
                panic!("{}: the collector's metrics reader has no {k}", self.file)
            })))
        };
        let port = field("port");
        (
            field("host"),
            port.parse()
                .unwrap_or_else(|_| panic!("{}: metrics port {port}", self.file)),
        )
    }

    /// The port the collector serves its own metrics on.
    pub fn telemetry_port(&self) -> u16 {
        self.telemetry_address().1
    }

    /// Every port the collector listens on: OTLP, health_check and its own
    /// metrics.
    pub fn ports(&self) -> BTreeSet<u16> {
        let mut p = self.otlp_ports();
        p.insert(self.health_port());
        p.insert(self.telemetry_port());
        p
    }

    /// The directory of the file_storage extension (its default).
    pub fn file_storage_directory(&self) -> String {
        self.value(&["extensions", "file_storage", "directory"])
    }
}
