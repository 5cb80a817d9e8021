//! The Prometheus scrape endpoint (issue 18, section 3), in-process and
//! over real HTTP: `OTEL_METRICS_EXPORTER=prometheus` serves the metrics
//! with Prometheus's own names and labels, `otlp,prometheus` also pushes,
//! a port in use is an init error naming the variable, and shutdown frees
//! the port.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::env;
use otelwire::opentelemetry::KeyValue;
use otelwire::{InitError, Telemetry};

/// `GET path` over a fresh connection: the status, the headers (lower-case
/// names) and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The one line of `text` for `name` whose labels include every one of
/// `labels` (`key="value"`).
fn sample<'a>(text: &'a str, name: &str, labels: &[&str]) -> &'a str {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one sample {name} with {labels:?}, got {found:?} in:\n{text}"
    );
    found[0]
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn served(pairs: &[(&str, &str)]) -> Telemetry {
    let mut all = vec![
        ("OTEL_SERVICE_NAME", "shop"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=team,deployment.environment.name=test",
        ),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
    ];
    all.extend_from_slice(pairs);
    otelwire::builder()
        .env_source(env(&all))
        .writer(std::io::sink)
        .build()
        .unwrap()
}

fn record(telemetry: &Telemetry, orders: u64) {
    let meter = telemetry.meter("shop");
    meter
        .u64_counter("orders.placed")
        .with_unit("{order}")
        .with_description("Orders placed")
        .build()
        .add(orders, &[KeyValue::new("order.kind", "web")]);
    let duration = meter
        .f64_histogram("checkout.duration")
        .with_unit("s")
        .with_boundaries(vec![0.5, 1.0])
        .build();
    duration.record(0.3, &[KeyValue::new("http.route", "/checkout")]);
    duration.record(2.0, &[KeyValue::new("http.route", "/checkout")]);
}

#[test]
fn prometheus_alone_serves_counters_and_histograms_with_prometheus_names() {
    let telemetry = served(&[("OTEL_METRICS_EXPORTER", "prometheus")]);
    record(&telemetry, 3);
    let addr = telemetry
        .prometheus()
        .and_then(|e| e.local_addr())
        .expect("otelwire listens on a port of its own");
    assert_ne!(addr.port(), 0, "port 0 picks a free port");

    let (status, headers, text) = get(addr, "/metrics");
    assert_eq!(status, 200, "{text}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == otelwire::prometheus::CONTENT_TYPE),
        "{headers:?}"
    );
    let resource = [
        r#"service_name="shop""#,
        r#"service_namespace="team""#,
        r#"deployment_environment_name="test""#,
        "service_instance_id=",
    ];

    // A counter: `_total`; a {annotation} unit adds nothing; dots become
    // underscores in names and label names; promoted resource attributes.
    assert!(
        text.contains("# TYPE orders_placed_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# HELP orders_placed_total Orders placed\n"),
        "{text}"
    );
    let mut labels = vec![r#"order_kind="web""#];
    labels.extend(resource);
    assert_eq!(value(sample(&text, "orders_placed_total", &labels)), 3.0);

    // A histogram: the unit's suffix, cumulative buckets with `le`, `+Inf`.
    assert!(
        text.contains("# TYPE checkout_duration_seconds histogram\n"),
        "{text}"
    );
    let route = r#"http_route="/checkout""#;
    let bucket = |le: &str| {
        value(sample(
            &text,
            "checkout_duration_seconds_bucket",
            &[route, &format!("le=\"{le}\"")],
        ))
    };
    assert_eq!(bucket("0.5"), 1.0);
    assert_eq!(bucket("1"), 1.0, "buckets are cumulative");
    assert_eq!(bucket("+Inf"), 2.0);
    let mut labels = vec![route];
    labels.extend(resource);
    assert_eq!(
        value(sample(&text, "checkout_duration_seconds_count", &labels)),
        2.0
    );
    assert_eq!(
        value(sample(&text, "checkout_duration_seconds_sum", &[route])),
        2.3
    );
    // The resource, whole, on target_info.
    sample(&text, "target_info", &resource);

    // Only /metrics.
    assert_eq!(get(addr, "/other").0, 404);

    // A later scrape sees later values (cumulative).
    record(&telemetry, 2);
    let (_, _, text) = get(addr, "/metrics");
    assert_eq!(
        value(sample(
            &text,
            "orders_placed_total",
            &[r#"order_kind="web""#]
        )),
        5.0
    );

    // Shutdown stops the endpoint and frees the port.
    let exposition = telemetry.prometheus().unwrap();
    let report = telemetry.shutdown_blocking();
    assert!(report.completed, "{report}");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "nothing listens on {addr} after shutdown"
    );
    TcpListener::bind(addr).expect("the port is free after shutdown");
    assert_eq!(
        exposition.render(),
        None,
        "nothing to collect after shutdown"
    );
}

#[test]
fn otlp_and_prometheus_push_to_the_collector_and_serve_at_once() {
    let collector = otelwire_test::Collector::start().unwrap();
    let endpoint = collector.http_endpoint();
    let telemetry = served(&[
        ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ]);
    record(&telemetry, 4);
    let pushed = collector
        .wait_for_metric_blocking(
            "orders.placed",
            |p| p.as_f64() == Some(4.0),
            Duration::from_secs(15),
        )
        .expect("the counter is pushed over OTLP");
    assert_eq!(pushed[0].attributes.get_str("order.kind"), Some("web"));
    let addr = telemetry.prometheus().unwrap().local_addr().unwrap();
    let (status, _, text) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        value(sample(
            &text,
            "orders_placed_total",
            &[r#"order_kind="web""#]
        )),
        4.0
    );
    let report = telemetry.shutdown_blocking();
    assert!(report.completed, "{report}");
    TcpListener::bind(addr).expect("the port is free after shutdown");
}

#[test]
fn a_port_in_use_is_an_init_error_naming_the_variable_and_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let err = otelwire::builder()
        .env_source(env(&[
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", &port),
        ]))
        .writer(std::io::sink)
        .build()
        .expect_err("the port is in use");
    assert!(matches!(err, InitError::Listen { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")),
        "names the address: {msg}"
    );
    assert!(
        msg.contains(&format!("OTEL_EXPORTER_PROMETHEUS_PORT={port}")),
        "names the variable: {msg}"
    );
    assert!(msg.contains("OTEL_EXPORTER_PROMETHEUS_HOST"), "{msg}");
    drop(taken);
}

#[test]
fn exporter_lists_are_accepted_and_the_listener_can_be_left_to_the_service() {
    for value in ["prometheus", "otlp,prometheus", " console , prometheus "] {
        let telemetry = served(&[
            ("OTEL_METRICS_EXPORTER", value),
            ("OTELWIRE_PROMETHEUS_LISTENER", "false"),
        ]);
        let exposition = telemetry
            .prometheus()
            .unwrap_or_else(|| panic!("{value}: served"));
        assert_eq!(exposition.local_addr(), None, "{value}: no port opened");
        record(&telemetry, 1);
        let text = exposition.render().unwrap();
        assert!(text.contains("orders_placed_total{"), "{value}: {text}");
        telemetry.shutdown_blocking();
    }
    for value in ["otlp", "none"] {
        let telemetry = served(&[("OTEL_METRICS_EXPORTER", value)]);
        assert!(telemetry.prometheus().is_none(), "{value}: not served");
        telemetry.shutdown_blocking();
    }
}
