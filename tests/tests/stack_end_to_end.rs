//! The single-collector stack, run for real: `stack/local/run` starts the
//! collector (`otel-collector/config.yaml`) and Prometheus 3
//! (`stack/prometheus/`); inventory and health-checker export to it over
//! OTLP/HTTP, orders-api and pricing (which orders-api calls over gRPC)
//! over OTLP/gRPC, while traffic runs. Loki and Tempo
//! cannot be built here (docs/stack.md), so two otelwire-test collectors take
//! their place at the endpoints the collector exports logs and traces to.
//! Then, through Prometheus's own HTTP API: the RED series, the span-metrics
//! and service-graph series, the collector's own and otelwire's pipeline
//! series; every metric and label that a rule, a dashboard or a data
//! source's link uses (parsed by Prometheus itself); and an alert that the
//! traffic makes true.

use std::collections::BTreeSet;
use std::time::Duration;

use otelwire::{LogFormat, Protocol, Signal, Telemetry};
use otelwire_test::{Collector as Backend, SpanKind};
use otelwire_tests::programs::{self, LocalStack, PromApi, root};
use serde_json::Value as Json;
use serde_yaml_ng::Value;

mod common;
use common::{run, run_pricing};

fn pipeline(name: &str, endpoint: &str, protocol: Protocol) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name(name)
        .environment("local")
        .endpoint(endpoint)
        .protocol(protocol)
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(200))
        .scheduled_delay(Signal::Logs, Duration::from_millis(200))
        .metric_export_interval(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Runs the health-checker until told to stop.
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

/// A query of a rule, a dashboard panel or variable, or a data source link.
struct Query {
    origin: String,
    expr: String,
    /// Labels shown by the legend (`{{label}}`).
    legend: Vec<String>,
}

fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

fn files(dir: &str, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    out
}

fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split_once("}}"))
        .map(|(l, _)| l.trim().to_owned())
        .collect()
}

/// Every PromQL query the stack's files hold.
fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for file in files("stack/prometheus/rules", ".rules.yml") {
        for group in yaml(&file)["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                out.push(Query {
                    origin: format!("{file}: {}", rule["alert"].as_str().unwrap_or("record")),
                    expr: rule["expr"].as_str().unwrap().to_owned(),
                    legend: Vec::new(),
                });
            }
        }
    }
    let ds = yaml("stack/grafana/provisioning/datasources/datasources.yaml");
    for d in ds["datasources"].as_sequence().unwrap() {
        let t2m = &d["jsonData"]["tracesToMetrics"];
        // Grafana puts the span's tags in place of `$__tags`, as matchers.
        let tags: Vec<String> = t2m["tags"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|t| t["value"].as_str())
            .map(|l| format!("{l}=\"x\""))
            .collect();
        for q in t2m["queries"].as_sequence().into_iter().flatten() {
            out.push(Query {
                origin: format!(
                    "datasources: tracesToMetrics {}",
                    q["name"].as_str().unwrap()
                ),
                // `$$` is provisioning's escape for `$`.
                expr: q["query"]
                    .as_str()
                    .unwrap()
                    .replace("$$", "$")
                    .replace("$__tags", &tags.join(", ")),
                legend: Vec::new(),
            });
        }
    }
    for file in files("stack/grafana/dashboards", ".json") {
        let d: Json =
            serde_json::from_str(&std::fs::read_to_string(root().join(&file)).unwrap()).unwrap();
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["datasource"]["type"] != "prometheus" {
                continue;
            }
            // label_values(metric, label): the series must carry the label.
            let q = v["definition"].as_str().unwrap_or("");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{file}: variable {}: {q}", v["name"]));
            let (metric, label) = inner.rsplit_once(',').unwrap();
            out.push(Query {
                origin: format!("{file}: variable {}", v["name"]),
                expr: format!("count by ({}) ({})", label.trim(), metric.trim()),
                legend: Vec::new(),
            });
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
    out
}

/// Grafana's variables, replaced so that Prometheus can parse the query.
fn without_variables(expr: &str) -> String {
    let intervals = regex::Regex::new(r"\$\{?__(rate_)?interval\}?|\$\{?__range\}?").unwrap();
    let vars = regex::Regex::new(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?").unwrap();
    let e = intervals.replace_all(expr, "5m");
    vars.replace_all(&e, ".+").into_owned()
}

/// A vector selector: the metric and the labels of its matchers.
type Selector = (String, Vec<String>);

/// The selectors and grouping labels of a query, from Prometheus's own
/// parser (`/api/v1/parse_query`).
fn parse(prom: &PromApi, expr: &str) -> Result<(Vec<Selector>, Vec<String>), String> {
    let r = programs::http()
        .get(format!("{}/api/v1/parse_query", prom.base))
        .query(&[("query", expr)])
        .send()
        .map_err(|e| e.to_string())?;
    let body: Json = r.json().map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(body.to_string());
    }
    let mut selectors = Vec::new();
    let mut grouping = Vec::new();
    fn walk(n: &Json, sel: &mut Vec<Selector>, grp: &mut Vec<String>) {
        match n {
            Json::Object(m) => {
                if m.get("type").and_then(Json::as_str) == Some("vectorSelector") {
                    let labels = m["matchers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x["name"].as_str())
                        .filter(|l| *l != "__name__")
                        .map(str::to_owned)
                        .collect();
                    sel.push((m["name"].as_str().unwrap_or("").to_owned(), labels));
                }
                if m.get("type").and_then(Json::as_str) == Some("aggregation")
                    && m.get("without").and_then(Json::as_bool) != Some(true)
                {
                    grp.extend(
                        m["grouping"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|g| g.as_str().map(str::to_owned)),
                    );
                }
                for v in m.values() {
                    walk(v, sel, grp);
                }
            }
            Json::Array(a) => a.iter().for_each(|v| walk(v, sel, grp)),
            _ => {}
        }
    }
    walk(&body["data"], &mut selectors, &mut grouping);
    Ok((selectors, grouping))
}

/// The label names of every series of `metric` in Prometheus.
fn labels_of(prom: &PromApi, metric: &str) -> BTreeSet<String> {
    let r = programs::http()
        .get(format!("{}/api/v1/series", prom.base))
        .query(&[("match[]", metric)])
        .send()
        .unwrap();
    let body: Json = r.json().unwrap();
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_object)
        .flat_map(|m| m.keys().cloned())
        .filter(|k| k != "__name__")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_services_through_the_real_collector_reach_every_backend() {
    let Some(_) = programs::binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (loki, tempo) = (Backend::start().unwrap(), Backend::start().unwrap());
    let env = [
        ("OTLP_GRPC_PORT", "0".to_owned()),
        ("OTLP_HTTP_PORT", "0".to_owned()),
        ("PROMETHEUS_PORT", "0".to_owned()),
        ("OTELCOL_HEALTH_PORT", "0".to_owned()),
        ("OTELCOL_METRICS_PORT", "0".to_owned()),
        ("LOKI_OTLP_ENDPOINT", loki.http_endpoint()),
        (
            "TEMPO_OTLP_GRPC_ENDPOINT",
            tempo
                .grpc_endpoint()
                .trim_start_matches("http://")
                .to_owned(),
        ),
    ];
    let stack = tokio::task::block_in_place(|| LocalStack::start(dir.path(), &env));
    let prom = PromApi {
        base: stack.url("prometheus").to_owned(),
    };
    let (otlp_http, otlp_grpc) = (stack.url("otlp_http"), stack.url("otlp_grpc"));

    let failing = inventory::Config {
        failing_skus: vec!["gizmo".into()],
        ..Default::default()
    };
    let (inv, stop_inventory) = run(
        pipeline("inventory", otlp_http, Protocol::HttpProtobuf),
        async move |t| inventory::router(t, failing),
    );
    let (prices, stop_pricing) = run_pricing(
        pipeline("pricing", otlp_grpc, Protocol::Grpc),
        pricing::Config {
            failing_skus: vec!["lever".into()],
            ..Default::default()
        },
    );
    let inventory_url = format!("http://{inv}");
    let upstreams = orders_api::Upstreams::new(&inventory_url, format!("http://{prices}"));
    let (ord, stop_orders) = run(
        pipeline("orders-api", otlp_grpc, Protocol::Grpc),
        async move |t| orders_api::app(t, &upstreams, None).await.unwrap(),
    );
    let fast = |c: health_checker::CheckConfig| {
        c.interval(Duration::from_millis(500))
            .timeout(Duration::from_millis(400))
    };
    let mut config = health_checker::Config::default_for(&format!("http://{ord}"), &inventory_url);
    config.checks = config.checks.into_iter().map(fast).collect();
    config.validate().unwrap();
    let stop_checker = run_health_checker(
        pipeline("health-checker", otlp_http, Protocol::HttpProtobuf),
        config,
    );

    // Traffic for 20 s: orders that succeed, unknown items (404), a failing
    // item (502 from orders-api, 503 from inventory), mostly the failing
    // one, so that the error-ratio alert must fire, and a failing quote (502
    // from orders-api, UNAVAILABLE from pricing).
    let client = reqwest::Client::new();
    let base = format!("http://{ord}");
    let token = common::demo_token(&client, &base).await;
    let mut statuses = BTreeSet::new();
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < until {
        for sku in ["widget", "unicorn", "gizmo", "gizmo", "gizmo", "lever"] {
            let r = client
                .post(format!("{base}/orders"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"sku": sku, "quantity": 1}))
                .send()
                .await
                .unwrap();
            statuses.insert(r.status().as_u16());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        statuses,
        BTreeSet::from([201, 404, 502]),
        "the traffic meant"
    );

    // Tempo's place: one order's trace, with both services' server spans
    // and its database span.
    let order = tempo
        .wait_for_spans_blocking(
            1,
            |s| {
                s.name == "POST /orders"
                    && s.resource.get_str("service.name") == Some("orders-api")
                    && s.attributes.get_i64("http.response.status_code") == Some(201)
            },
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.process.output()))
        .remove(0);
    let trace_id = order.trace_id.clone();
    let trace = tempo
        .wait_for_spans_blocking(
            1,
            |s| {
                s.trace_id == trace_id
                    && s.kind == SpanKind::Server
                    && s.resource.get_str("service.name") == Some("inventory")
            },
            Duration::from_secs(30),
        )
        .map(|_| tempo.spans())
        .unwrap()
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect::<Vec<_>>();
    assert!(
        trace
            .iter()
            .any(|s| s.resource.get_str("service.name") == Some("orders-api")
                && s.attributes.contains_key("db.system.name")),
        "the order's trace has its database span: {:?}",
        trace.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(
        trace.iter().any(|s| s.kind == SpanKind::Server
            && s.resource.get_str("service.name") == Some("pricing")
            && s.name == "pricing.v1.Pricing/Quote"),
        "the order's trace has pricing's server span: {:?}",
        trace.iter().map(|s| &s.name).collect::<Vec<_>>()
    );

    // Loki's place: that request's log lines, from orders-api.
    loki.wait_for_logs_blocking(
        1,
        |l| {
            l.trace_id.as_deref() == Some(trace_id.as_str())
                && l.resource.get_str("service.name") == Some("orders-api")
        },
        Duration::from_secs(30),
    )
    .unwrap();

    // Prometheus: the series each part of the stack makes.
    let slow = Duration::from_secs(90);
    for expr in [
        r#"http_server_request_duration_seconds_bucket{http_route="/orders", service_name="orders-api"}"#,
        r#"traces_span_metrics_calls_total{service_name="orders-api"}"#,
        r#"traces_service_graph_request_total{client="orders-api", server="inventory"}"#,
        r#"traces_service_graph_request_total{client="orders-api", server="pricing"}"#,
        r#"rpc_server_call_duration_seconds_count{service_name="pricing", rpc_method="pricing.v1.Pricing/Quote", rpc_response_status_code="UNAVAILABLE"}"#,
        r#"rpc_client_call_duration_seconds_bucket{service_name="orders-api", rpc_method="pricing.v1.Pricing/Quote"}"#,
        r#"otelcol_exporter_sent_spans_total{job="otel-collector"}"#,
        r#"otelwire_telemetry_exported_total{service_name="inventory"}"#,
        r#"health_score{service_name="health-checker"}"#,
    ] {
        tokio::task::block_in_place(|| prom.wait_for(expr, slow));
    }

    // The alert the traffic makes true: orders-api's 5xx share on /orders.
    let rules = yaml("stack/prometheus/rules/services.rules.yml");
    let ratio = rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["alert"] == "HighServerErrorRatio")
        .expect("the HighServerErrorRatio alert")["expr"]
        .as_str()
        .unwrap()
        .to_owned();
    let fired = tokio::task::block_in_place(|| prom.wait_for(&ratio, slow));
    assert!(
        fired.iter().any(|s| s["metric"]["http_route"] == "/orders"
            && s["metric"]["service_name"] == "orders-api"),
        "HighServerErrorRatio for orders-api /orders: {fired:?}"
    );

    // Every metric and label the rules, dashboards and links use exists.
    let mut problems = Vec::new();
    let queries = queries();
    assert!(queries.len() > 40, "{} queries", queries.len());
    tokio::task::block_in_place(|| {
        for q in &queries {
            let (selectors, grouping) = match parse(&prom, &without_variables(&q.expr)) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("{}: Prometheus cannot parse it: {e}", q.origin));
                    continue;
                }
            };
            let mut available = BTreeSet::new();
            for (metric, matchers) in &selectors {
                let labels = labels_of(&prom, metric);
                if labels.is_empty() {
                    problems.push(format!("{}: no series {metric} in Prometheus", q.origin));
                    continue;
                }
                for m in matchers.iter().filter(|m| !labels.contains(*m)) {
                    problems.push(format!("{}: {metric} has no label {m}", q.origin));
                }
                available.extend(labels);
            }
            for l in grouping.iter().chain(&q.legend) {
                if !available.is_empty() && !available.contains(l) {
                    problems.push(format!(
                        "{}: by {l}, which none of its series has",
                        q.origin
                    ));
                }
            }
        }
    });

    for report in [
        stop_checker(),
        stop_orders(),
        stop_pricing(),
        stop_inventory(),
    ] {
        assert_eq!(report.dropped(), 0, "{report}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // SIGTERM to stack/local/run stops every program it started.
    let ports: Vec<String> = ["otlp_grpc", "otlp_http", "prometheus", "collector_metrics"]
        .iter()
        .map(|n| {
            let url = stack.url(n);
            let rest = url.split("://").nth(1).unwrap_or(url);
            rest.split('/').next().unwrap().to_owned()
        })
        .collect();
    let mut stack = stack;
    stack.process.stop();
    for addr in &ports {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{addr} still answers after stack/local/run was stopped"
        );
    }
}
