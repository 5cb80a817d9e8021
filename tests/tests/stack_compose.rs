//! `docker-compose.yml`: docker-compose itself (`docker-compose config -q`)
//! accepts it and refuses it without a Grafana password; its images are
//! pinned, its ports bound to 127.0.0.1 and its volumes declared; and it
//! wires the example services to the collector, the collector to Loki,
//! Tempo and Prometheus, and Prometheus and Grafana to the files of
//! `stack/`, on the hosts, ports and paths those files name.
//!
//! Runs docker-compose from PATH: without it the first test prints a
//! notice and passes, unless `OTELWIRE_REQUIRE_TOOLS` is set (CI).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use otelwire_tests::programs::tools_required;
use otelwire_tests::stack_files::{
    COMPOSE, CollectorConfig, assert_pinned, at, env_refs, files, host_port, keys, port_of, read,
    root, run_tool, scalar, str_at, strings, yaml,
};
use serde_yaml_ng::Value;

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

/// docker-compose from PATH. Missing: a notice and `None`, or a failure
/// under `OTELWIRE_REQUIRE_TOOLS`.
fn docker_compose() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("docker-compose"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !tools_required(),
            "docker-compose not found: install Debian's `docker-compose` package"
        );
        eprintln!("SKIPPED: docker-compose not found (apt-get install docker-compose)");
    }
    found
}

/// The compose service `name`.
fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    at(compose, &["services", name]).unwrap_or_else(|| panic!("{COMPOSE}: no service {name}"))
}

/// The value of an environment variable of a service, in either of
/// compose's forms (mapping or `NAME=value` list).
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
                parts.next().unwrap_or_default().to_owned(),
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
            parts[2]
                .split('/')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("{COMPOSE}: service {name}: port {p}"))
        })
        .collect()
}

/// The repository directory compose mounts at the container path `target`
/// (a mounted directory that contains it), and the rest of the path below
/// it: `./stack/prometheus/rules/x.yml` for `/etc/prometheus/rules/x.yml`.
fn mounted_source(svc: &Value, name: &str, target: &str) -> String {
    mounts(svc)
        .into_iter()
        .filter(|(source, _)| source.starts_with("./"))
        .find_map(|(source, t)| {
            let rest = Path::new(target).strip_prefix(&t).ok()?;
            Some(if rest.as_os_str().is_empty() {
                source
            } else {
                format!("{source}/{}", rest.display())
            })
        })
        .unwrap_or_else(|| {
            panic!("{COMPOSE}: service {name} mounts nothing of the repository at {target}")
        })
}

#[test]
fn compose_file_is_valid_for_docker_compose_and_needs_the_grafana_password() {
    let Some(dc) = docker_compose() else {
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
        let image = line.split_whitespace().nth(1).unwrap_or_default();
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

#[test]
fn compose_runs_the_collector_with_its_configuration_ports_and_queue_volume() {
    let compose = yaml(COMPOSE);
    let config = CollectorConfig::read("otel-collector/config.yaml");
    let collector = service(&compose, "otel-collector");

    // The configuration's ${env:NAME:-default} values are what compose
    // runs with: it sets none of them to anything else.
    for (name, default) in env_refs(&config.doc) {
        if let Some(set) = env_var(collector, &name) {
            assert_eq!(
                Some(&set),
                default.as_ref(),
                "{COMPOSE}: otel-collector sets {name}, which {} reads with another default",
                config.file
            );
        }
    }
    // The ports the collector listens on are the ones published.
    assert_eq!(
        published(collector, "otel-collector"),
        config.ports(),
        "{COMPOSE}: otel-collector must publish exactly the ports of otel-collector/config.yaml"
    );
    // Its configuration file is the one tested, where --config says.
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
}

#[test]
fn compose_wires_the_collector_to_the_backends_where_they_listen() {
    let compose = yaml(COMPOSE);
    let config = CollectorConfig::read("otel-collector/config.yaml");
    let endpoint = |id: &str| config.value(&["exporters", id, "endpoint"]);

    let loki_port = at(
        &yaml("stack/loki/config.yaml"),
        &["server", "http_listen_port"],
    )
    .and_then(Value::as_u64)
    .and_then(|p| u16::try_from(p).ok())
    .expect("stack/loki/config.yaml: server.http_listen_port");
    assert_eq!(
        host_port(&endpoint("otlp_http/loki")),
        ("loki".into(), loki_port)
    );
    assert!(
        endpoint("otlp_http/loki").ends_with("/otlp"),
        "logs go to Loki's native OTLP endpoint, /otlp"
    );
    let tempo_grpc = str_at(
        &yaml("stack/tempo/config.yaml"),
        &[
            "distributor",
            "receivers",
            "otlp",
            "protocols",
            "grpc",
            "endpoint",
        ],
        "stack/tempo/config.yaml",
    )
    .to_owned();
    assert_eq!(
        host_port(&endpoint("otlp_grpc/tempo")),
        ("tempo".into(), port_of(&tempo_grpc))
    );
    assert_eq!(
        host_port(&endpoint("otlp_http/prometheus")),
        ("prometheus".into(), 9090)
    );
    assert!(
        endpoint("otlp_http/prometheus").ends_with("/api/v1/otlp"),
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
    for id in ["otlp_http/loki", "otlp_grpc/tempo", "otlp_http/prometheus"] {
        service(&compose, &host_port(&endpoint(id)).0);
    }
}

#[test]
fn compose_gives_prometheus_its_rules_and_targets_and_the_targets_are_the_services() {
    let compose = yaml(COMPOSE);
    let prometheus = service(&compose, "prometheus");
    let file = "stack/prometheus/prometheus.yml";
    let prom = yaml(file);

    // prometheus.yml is mounted where --config.file says; its relative
    // paths (rule files, file_sd target files) resolve against that
    // directory, onto directories of stack/prometheus mounted beside it.
    let config_path = strings(at(prometheus, &["command"]))
        .iter()
        .find_map(|a| a.strip_prefix("--config.file=").map(str::to_owned))
        .expect("prometheus command has --config.file=");
    assert_eq!(
        mounted_source(prometheus, "prometheus", &config_path),
        format!("./{file}"),
        "{COMPOSE}: prometheus must run with {file}"
    );
    let config_dir = Path::new(&config_path)
        .parent()
        .expect("--config.file is in a directory")
        .to_owned();
    let in_container = |rel: &str| -> String {
        assert!(
            !rel.starts_with('/'),
            "{file}: {rel} is absolute: the local run could not use it"
        );
        let target = config_dir.join(rel);
        let dir = target.parent().expect("a file in a directory");
        let source = mounted_source(prometheus, "prometheus", &dir.display().to_string());
        assert_eq!(
            source,
            format!(
                "./stack/prometheus/{}",
                Path::new(rel).parent().unwrap_or(Path::new("")).display()
            ),
            "{COMPOSE}: {rel} of {file} must reach the repository's stack/prometheus/{rel}"
        );
        format!(
            "{source}/{}",
            target.file_name().unwrap_or_default().to_string_lossy()
        )
    };
    // Every rule file, and no unit test file.
    let rule_globs = strings(at(&prom, &["rule_files"]));
    assert_eq!(rule_globs, ["rules/*.rules.yml"], "{file}: rule_files");
    assert_eq!(
        in_container(&rule_globs[0]),
        "./stack/prometheus/rules/*.rules.yml"
    );
    assert!(!files("stack/prometheus/rules", ".rules.yml").is_empty());

    // The scrape jobs read their targets from files of targets/, which hold
    // the compose addresses: the collector's own metrics, and Prometheus.
    let config = CollectorConfig::read("otel-collector/config.yaml");
    let jobs = at(&prom, &["scrape_configs"])
        .and_then(Value::as_sequence)
        .expect("prometheus.yml: scrape_configs");
    let targets_of = |job_name: &str| -> Vec<String> {
        let job = jobs
            .iter()
            .find(|j| at(j, &["job_name"]).and_then(Value::as_str) == Some(job_name))
            .unwrap_or_else(|| panic!("{file}: no scrape job {job_name}"));
        assert!(
            at(job, &["static_configs"]).is_none(),
            "{file}: job {job_name}: targets come from targets/, for compose and the local run alike"
        );
        let sd = strings(at(job, &["file_sd_configs", "0", "files"]));
        assert_eq!(sd.len(), 1, "{file}: job {job_name}: one target file");
        let source = in_container(&sd[0]);
        let targets_file = source.trim_start_matches("./");
        let groups = yaml(targets_file);
        groups
            .as_sequence()
            .unwrap_or_else(|| panic!("{targets_file}: a list of target groups"))
            .iter()
            .flat_map(|g| strings(at(g, &["targets"])))
            .collect()
    };
    // The collector alerts select job="otel-collector".
    let (host, _) = config.telemetry_address();
    assert_eq!(
        host, "0.0.0.0",
        "{}: the collector's metrics must be reachable from Prometheus",
        config.file
    );
    assert_eq!(
        targets_of("otel-collector"),
        [format!("otel-collector:{}", config.telemetry_port())]
    );
    assert!(
        published(service(&compose, "otel-collector"), "otel-collector")
            .contains(&config.telemetry_port())
    );
    assert!(
        !prom_cmd_has_listen_address(prometheus),
        "prometheus listens on its default port, 9090"
    );
    assert_eq!(targets_of("prometheus"), ["localhost:9090"]);
    assert!(published(prometheus, "prometheus").contains(&9090));
}

/// Whether compose moves Prometheus off its default listen address.
fn prom_cmd_has_listen_address(prometheus: &Value) -> bool {
    strings(at(prometheus, &["command"]))
        .iter()
        .any(|a| a.starts_with("--web.listen-address"))
}

#[test]
fn compose_sends_the_example_services_telemetry_to_the_collector() {
    let compose = yaml(COMPOSE);
    let config = CollectorConfig::read("otel-collector/config.yaml");
    for name in ["inventory", "pricing", "orders-api", "health-checker"] {
        let svc = service(&compose, name);
        let endpoint = env_var(svc, "OTEL_EXPORTER_OTLP_ENDPOINT")
            .unwrap_or_else(|| panic!("{name}: no OTEL_EXPORTER_OTLP_ENDPOINT"));
        let (host, port) = host_port(&endpoint);
        assert_eq!(host, "otel-collector", "{name}");
        assert!(config.otlp_ports().contains(&port), "{name}: {endpoint}");
        let listen: u16 = env_var(svc, "PORT")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{name}: PORT"));
        assert!(
            published(svc, name).contains(&listen),
            "{name} publishes its PORT"
        );
    }
    for (upstream, variable) in [("inventory", "INVENTORY_URL"), ("pricing", "PRICING_URL")] {
        let port = env_var(service(&compose, upstream), "PORT");
        assert_eq!(
            env_var(service(&compose, "orders-api"), variable),
            port.map(|p| format!("http://{upstream}:{p}")),
            "orders-api's {variable}"
        );
    }
    // pricing listens on every interface of its container, not only on its
    // default, 127.0.0.1, which no other container can reach.
    assert_eq!(
        env_var(service(&compose, "pricing"), "HOST").as_deref(),
        Some("0.0.0.0")
    );
    // The health-checker reads its checks from the file mounted for it, and
    // they name compose hosts.
    let checker = service(&compose, "health-checker");
    let config_file = env_var(checker, "HEALTH_CHECKER_CONFIG").expect("HEALTH_CHECKER_CONFIG");
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
}

#[test]
fn compose_gives_grafana_its_provisioning_and_dashboards_and_no_default_password() {
    let compose = yaml(COMPOSE);
    let grafana = service(&compose, "grafana");
    let password =
        env_var(grafana, "GF_SECURITY_ADMIN_PASSWORD").expect("GF_SECURITY_ADMIN_PASSWORD");
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
    let home = env_var(grafana, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        .expect("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH");
    let home = home
        .strip_prefix(&format!("{provider_path}/"))
        .expect("home dashboard in the provider path");
    assert!(root().join("stack/grafana/dashboards").join(home).is_file());
}
