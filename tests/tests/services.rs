//! The example services together: one trace crosses both, and the
//! database queries of a request are spans inside it.

use std::time::Duration;

use otelwire::{LogFormat, Protocol, Signal, Telemetry};
use otelwire_test::{Collector, SpanKind};

mod common;
use common::run;

fn pipeline(name: &str, collector: &Collector) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name(name)
        .endpoint(collector.grpc_endpoint())
        .protocol(Protocol::Grpc)
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .scheduled_delay(Signal::Logs, Duration::from_millis(100))
        .metric_export_interval(Duration::from_millis(500))
        .process_metrics(false)
        .build()
        .unwrap()
}

#[tokio::test]
async fn one_trace_crosses_both_services() {
    let collector = Collector::start().unwrap();
    let (inv_addr, stop_inventory) = run(pipeline("inventory", &collector), async |t| {
        inventory::router(t, inventory::Config::default())
    });
    let url = format!("http://{inv_addr}");
    let (ord_addr, stop_orders) = run(pipeline("orders-api", &collector), async move |t| {
        orders_api::app(t, &url, None).await.unwrap()
    });

    let client = reqwest::Client::new();
    let token = common::demo_token(&client, &format!("http://{ord_addr}")).await;
    let created = client
        .post(format!("http://{ord_addr}/orders"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"sku": "widget", "quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let request_id = created
        .headers()
        .get("x-request-id")
        .expect("the request id is echoed")
        .to_str()
        .unwrap()
        .to_owned();
    let order: orders_api::Order = created.json().await.unwrap();
    assert_eq!((order.sku.as_str(), order.quantity), ("widget", 2));
    let fetched = client
        .get(format!("http://{ord_addr}/orders/{}", order.id))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status().as_u16(), 200);
    let unknown = client
        .post(format!("http://{ord_addr}/orders"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"sku": "unicorn", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    let (orders_report, inventory_report) = (stop_orders(), stop_inventory());
    assert_eq!(orders_report.dropped(), 0, "{orders_report}");
    assert_eq!(inventory_report.dropped(), 0, "{inventory_report}");

    let service =
        |s: &otelwire_test::Span| s.resource.get_str("service.name").unwrap_or("").to_owned();
    let spans = collector.spans();
    let server = spans
        .iter()
        .find(|s| {
            service(s) == "orders-api"
                && s.name == "POST /orders"
                && s.attributes.get_str("request.id") == Some(request_id.as_str())
        })
        .expect("orders-api server span");
    assert_eq!(server.kind, SpanKind::Server);
    let client_span = spans
        .iter()
        .find(|s| {
            s.trace_id == server.trace_id
                && s.kind == SpanKind::Client
                && s.attributes.contains_key("http.request.method")
        })
        .expect("orders-api HTTP client span in the same trace");
    assert_eq!(service(client_span), "orders-api");
    assert_eq!(client_span.name, "GET /items/{sku}");
    let remote = spans
        .iter()
        .find(|s| service(s) == "inventory" && s.trace_id == server.trace_id)
        .expect("inventory's server span has orders-api's trace id");
    assert_eq!(remote.kind, SpanKind::Server);
    assert_eq!(remote.name, "GET /items/{sku}");
    assert_eq!(
        remote.parent_span_id.as_deref(),
        Some(client_span.span_id.as_str())
    );
    assert_eq!(
        client_span.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );

    // The request's queries are client spans under its server span: the
    // token look-up and the order's insert, in SQLite.
    let queries: Vec<&otelwire_test::Span> = spans
        .iter()
        .filter(|s| {
            s.trace_id == server.trace_id
                && s.attributes.get_str("db.system.name") == Some("sqlite")
        })
        .collect();
    let names: Vec<&str> = queries.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"SELECT"),
        "the token look-up (a join): {names:?}"
    );
    assert!(names.contains(&"INSERT orders"), "{names:?}");
    for q in &queries {
        assert_eq!(q.kind, SpanKind::Client);
        assert_eq!(q.parent_span_id.as_deref(), Some(server.span_id.as_str()));
    }
    let insert = queries.iter().find(|s| s.name == "INSERT orders").unwrap();
    assert_eq!(
        insert.attributes.get_str("db.query.text"),
        Some(
            "INSERT INTO orders (user_id, sku, quantity, status) VALUES ($1, $2, $3, $4) RETURNING id"
        )
    );

    // Every log record of that request carries its trace and its request id.
    let placed = collector.logs_with_body("order placed");
    let placed = placed
        .iter()
        .find(|l| l.trace_id.as_deref() == Some(server.trace_id.as_str()))
        .expect("the order's log record");
    assert_eq!(
        placed.attributes.get_str("request.id"),
        Some(request_id.as_str())
    );
    assert_eq!(placed.resource.get_str("service.name"), Some("orders-api"));
}
