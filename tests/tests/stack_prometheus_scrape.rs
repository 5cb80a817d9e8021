//! The Prometheus scrape endpoint against the real thing (issue 18,
//! section 3): inventory runs with `OTEL_METRICS_EXPORTER=otlp,prometheus`,
//! pushing OTLP to a Prometheus 3 that takes it with the `otlp:` settings
//! of `stack/prometheus/prometheus.yml`, while a second Prometheus 3
//! scrapes the service's `/metrics` with the scrape job documented in
//! `crates/otelwire/src/prometheus.rs` (its relabelling rules included).
//! Both must hold the request counter the test's traffic produced, under
//! the same name and the same labels, and the same set of metric names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use otelwire::{LogFormat, Telemetry};
use otelwire_tests::programs::{self, Process, PromApi, root, wait_for_200, wait_until};
use serde_yaml_ng::Value;

#[allow(dead_code)]
mod common;

/// The requests the test sends.
const REQUESTS: usize = 7;

/// The request counter, as both paths name it.
const COUNTER: &str = "http_server_request_duration_seconds_count";

/// The scrape job of the module documentation of `otelwire::prometheus`:
/// the one ```yaml block of `crates/otelwire/src/prometheus.rs`.
fn documented_scrape_config() -> Value {
    let source = std::fs::read_to_string(root().join("crates/otelwire/src/prometheus.rs")).unwrap();
    let block: String = source
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```yaml")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        block.contains("scrape_configs"),
        "prometheus.rs documents a scrape job in a ```yaml block"
    );
    serde_yaml_ng::from_str(&block).unwrap()
}

/// Starts Prometheus 3 with `config` on a free port and waits until ready.
fn prometheus(
    bin: &Path,
    dir: &Path,
    name: &str,
    config: &Value,
    otlp: bool,
) -> (Process, PromApi) {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, serde_yaml_ng::to_string(config).unwrap()).unwrap();
    let port = programs::free_port();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    if otlp {
        cmd.arg("--web.enable-otlp-receiver");
    }
    let process = Process::start(name, cmd, &dir.join("prometheus.log"));
    let base = format!("http://127.0.0.1:{port}");
    wait_for_200(
        &format!("{name} ready"),
        &format!("{base}/-/ready"),
        Duration::from_secs(60),
    );
    (process, PromApi { base })
}

/// A series: its labels (without `__name__`) and its value.
type Series = (BTreeMap<String, String>, f64);

/// Every series of `expr`.
fn series(prom: &PromApi, expr: &str) -> Result<Vec<Series>, String> {
    let result = prom.query(expr)?;
    Ok(result
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let value = s["value"][1]
                .as_str()
                .unwrap_or("NaN")
                .parse()
                .unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect())
}

/// The metric names of the service in `prom`.
fn names(prom: &PromApi) -> Result<BTreeSet<String>, String> {
    Ok(prom
        .query(r#"group by (__name__) ({service_name="inventory"})"#)?
        .iter()
        .filter_map(|s| s["metric"]["__name__"].as_str().map(str::to_owned))
        .collect())
}

/// The `le` values of the request histogram's buckets, as numbers.
fn bounds(prom: &PromApi) -> Result<BTreeSet<String>, String> {
    Ok(series(
        prom,
        r#"http_server_request_duration_seconds_bucket{service_name="inventory"}"#,
    )?
    .iter()
    .filter_map(|(l, _)| l.get("le")?.parse::<f64>().ok())
    .map(|le| le.to_string())
    .collect())
}

#[test]
fn a_real_prometheus_scrapes_the_request_counter_as_otlp_delivers_it() {
    let Some(bins) = programs::binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stack: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("stack/prometheus/prometheus.yml")).unwrap(),
    )
    .unwrap();

    // Prometheus taking OTLP as the stack's does: its `otlp:` section.
    let mut pushed_config = serde_yaml_ng::Mapping::new();
    pushed_config.insert("otlp".into(), stack["otlp"].clone());
    let (mut pushed_process, pushed) = prometheus(
        &bins.prometheus,
        dir.path(),
        "prometheus-otlp",
        &Value::Mapping(pushed_config),
        true,
    );

    // Prometheus scraping the service with the documented job, every second.
    let scrape_port = programs::free_port();
    let mut scrape_config = documented_scrape_config();
    let job = &mut scrape_config["scrape_configs"][0];
    job["scrape_interval"] = "1s".into();
    job["static_configs"][0]["targets"][0] = format!("127.0.0.1:{scrape_port}").into();
    let (mut scraped_process, scraped) = prometheus(
        &bins.prometheus,
        dir.path(),
        "prometheus-scrape",
        &scrape_config,
        false,
    );

    let otlp = format!("{}/api/v1/otlp", pushed.base);
    let port = scrape_port.to_string();
    let vars: Vec<(&str, &str)> = vec![
        ("OTEL_SERVICE_NAME", "inventory"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=shop,deployment.environment.name=local",
        ),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", &port),
    ];
    let vars: BTreeMap<String, String> = vars
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let telemetry: Telemetry = otelwire::builder()
        .env_source(move |k| vars.get(k).cloned())
        .log_format(LogFormat::None)
        .build()
        .unwrap();
    let (addr, stop) = common::run(telemetry, async |t| {
        inventory::router(t, inventory::Config::default())
    });

    for _ in 0..REQUESTS {
        let (status, body) = programs::get(&format!("http://{addr}/items/widget")).unwrap();
        assert_eq!(status, 200, "{body}");
    }

    let selector = format!(r#"{COUNTER}{{service_name="inventory",http_route="/items/{{sku}}"}}"#);
    let want = REQUESTS as f64;
    let counted = |prom: &PromApi| {
        let found = series(prom, &selector)?;
        match found.as_slice() {
            [(_, v)] if *v == want => Ok(found),
            _ => Err(format!("{found:?}")),
        }
    };
    let via_otlp = wait_until(
        &format!("{COUNTER} = {REQUESTS} over OTLP"),
        Duration::from_secs(60),
        || {
            pushed_process.assert_running();
            counted(&pushed)
        },
    );
    let via_scrape = wait_until(
        &format!("{COUNTER} = {REQUESTS} scraped"),
        Duration::from_secs(60),
        || {
            scraped_process.assert_running();
            counted(&scraped)
        },
    );
    // The same series: name, every label (job and instance by the
    // documented relabelling), and value.
    assert_eq!(via_scrape, via_otlp);
    let labels = &via_scrape[0].0;
    assert_eq!(labels["job"], "shop/inventory", "{labels:?}");
    assert_eq!(labels["deployment_environment_name"], "local", "{labels:?}");
    assert_eq!(labels["http_response_status_code"], "200", "{labels:?}");

    // The same metric names (the metrics made before the first push and
    // the first scrape, so that both have seen every one).
    wait_until("the same metric names", Duration::from_secs(30), || {
        let (a, b) = (names(&pushed)?, names(&scraped)?);
        if a == b && a.contains("target_info") && a.contains(COUNTER) {
            Ok(())
        } else {
            Err(format!("OTLP {a:?}, scraped {b:?}"))
        }
    });
    // The same buckets: Prometheus 3 writes a scraped `le` as OpenMetrics
    // does (`1.0`), an OTLP one as Go's shortest decimal (`1`); as numbers
    // they agree.
    assert_eq!(bounds(&scraped).unwrap(), bounds(&pushed).unwrap());

    let report = stop();
    assert!(report.completed, "{report}");
    scraped_process.stop();
    pushed_process.stop();
}
