//! The example services together: one trace crosses the three, over HTTP
//! (orders-api to inventory) and gRPC (orders-api to pricing), and the
//! database queries of a request are spans inside it.

use std::time::Duration;

use otelwire::{LogFormat, Protocol, Signal, Telemetry};
use otelwire_test::{Collector, SpanKind};

mod common;
use common::{run, run_pricing};
use otelwire_tests::rotel::{self, Rotel, RotelSpan};

fn pipeline(name: &str, collector: &Collector) -> Telemetry {
    pipeline_to(name, &collector.grpc_endpoint(), Protocol::Grpc)
}

fn pipeline_to(name: &str, endpoint: &str, protocol: Protocol) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name(name)
        .endpoint(endpoint)
        .protocol(protocol)
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .scheduled_delay(Signal::Logs, Duration::from_millis(100))
        .metric_export_interval(Duration::from_millis(500))
        .process_metrics(false)
        .build()
        .unwrap()
}

#[tokio::test]
async fn one_trace_crosses_http_and_grpc() {
    let collector = Collector::start().unwrap();
    let (inv_addr, stop_inventory) = run(pipeline("inventory", &collector), async |t| {
        inventory::router(t, inventory::Config::default())
    });
    let failing = pricing::Config {
        failing_skus: vec!["lever".into()],
        ..Default::default()
    };
    let (pri_addr, stop_pricing) = run_pricing(pipeline("pricing", &collector), failing);
    let upstreams =
        orders_api::Upstreams::new(format!("http://{inv_addr}"), format!("http://{pri_addr}"));
    let (ord_addr, stop_orders) = run(pipeline("orders-api", &collector), async move |t| {
        orders_api::app(t, &upstreams, None).await.unwrap()
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
    // The price pricing quoted (250 cents each), stored and read back.
    assert_eq!((order.total_cents, order.currency.as_str()), (500, "EUR"));
    let fetched = client
        .get(format!("http://{ord_addr}/orders/{}", order.id))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status().as_u16(), 200);
    let stored: orders_api::Order = fetched.json().await.unwrap();
    assert_eq!(stored, order);
    let unknown = client
        .post(format!("http://{ord_addr}/orders"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"sku": "unicorn", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    // A quote that fails: 502, and an error event of orders-api's own.
    let unpriced = client
        .post(format!("http://{ord_addr}/orders"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"sku": "lever", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(unpriced.status().as_u16(), 502);
    let body: serde_json::Value = unpriced.json().await.unwrap();
    assert_eq!(body["error"], "pricing is unavailable");

    let (orders_report, pricing_report, inventory_report) =
        (stop_orders(), stop_pricing(), stop_inventory());
    for report in [&orders_report, &pricing_report, &inventory_report] {
        assert_eq!(report.dropped(), 0, "{report}");
    }

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

    // The gRPC hop: orders-api's client span of the quote under its server
    // span, pricing's server span under that, one trace.
    let rpc = |svc: &str, kind: SpanKind| {
        spans
            .iter()
            .find(|s| {
                s.trace_id == server.trace_id
                    && service(s) == svc
                    && s.kind == kind
                    && s.name == "pricing.v1.Pricing/Quote"
            })
            .unwrap_or_else(|| panic!("{svc}'s {kind:?} span of the quote in the order's trace"))
    };
    let (quote_call, quote_served) = (
        rpc("orders-api", SpanKind::Client),
        rpc("pricing", SpanKind::Server),
    );
    assert_eq!(
        quote_call.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );
    assert_eq!(
        quote_served.parent_span_id.as_deref(),
        Some(quote_call.span_id.as_str())
    );
    for s in [quote_call, quote_served] {
        assert_eq!(s.attributes.get_str("rpc.system.name"), Some("grpc"));
        assert_eq!(
            s.attributes.get_str("rpc.method"),
            Some("pricing.v1.Pricing/Quote")
        );
        assert_eq!(s.attributes.get_str("rpc.response.status_code"), Some("OK"));
    }
    assert_eq!(
        quote_call.attributes.get_str("server.address"),
        Some("127.0.0.1")
    );
    assert_eq!(
        quote_call.attributes.get_i64("server.port"),
        Some(i64::from(pri_addr.port()))
    );
    // The failed quote: an error on both sides, and orders-api's own event.
    let failed = spans
        .iter()
        .find(|s| {
            service(s) == "orders-api"
                && s.kind == SpanKind::Client
                && s.name == "pricing.v1.Pricing/Quote"
                && s.attributes.get_str("rpc.response.status_code") == Some("UNAVAILABLE")
        })
        .expect("the failed quote's client span");
    assert_eq!(failed.status.code, otelwire_test::StatusCode::Error);
    let event = collector.logs_with_body("pricing failed");
    let event = event
        .iter()
        .find(|l| l.trace_id.as_deref() == Some(failed.trace_id.as_str()))
        .expect("orders-api's error event for the failed quote, in its trace");
    assert_eq!(event.severity_text, "ERROR");
    assert_eq!(
        event.attributes.get_str("rpc.response.status_code"),
        Some("UNAVAILABLE")
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
            "INSERT INTO orders (user_id, sku, quantity, status, total_cents, currency) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
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

/// The same trace, seen by rotel, a receiver that is not ours: orders-api
/// and pricing export over gRPC, inventory over HTTP.
#[tokio::test]
async fn one_trace_crosses_http_and_grpc_at_rotel() {
    let Some(agent) = rotel::agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rotel = Rotel::start(&agent, dir.path());
    let (grpc, http) = (rotel.grpc_endpoint(), rotel.http_endpoint());
    let (inv_addr, stop_inventory) = run(
        pipeline_to("inventory", &http, Protocol::HttpProtobuf),
        async |t| inventory::router(t, inventory::Config::default()),
    );
    let (pri_addr, stop_pricing) = run_pricing(
        pipeline_to("pricing", &grpc, Protocol::Grpc),
        pricing::Config::default(),
    );
    let upstreams =
        orders_api::Upstreams::new(format!("http://{inv_addr}"), format!("http://{pri_addr}"));
    let (ord_addr, stop_orders) = run(
        pipeline_to("orders-api", &grpc, Protocol::Grpc),
        async move |t| orders_api::app(t, &upstreams, None).await.unwrap(),
    );
    let client = reqwest::Client::new();
    let token = common::demo_token(&client, &format!("http://{ord_addr}")).await;
    let created = client
        .post(format!("http://{ord_addr}/orders"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"sku": "gadget", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    for report in [stop_orders(), stop_pricing(), stop_inventory()] {
        assert_eq!(report.dropped(), 0, "{report}");
        assert!(report.completed, "{report}");
    }

    let find = |spans: &[RotelSpan], service: &str, name: &str, kind: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.name == name && s.kind == kind)
            .cloned()
    };
    // The services have stopped: blocking this runtime holds nothing up.
    let spans = {
        rotel.wait_for_spans(
            "the order's spans of the three services",
            Duration::from_secs(30),
            |spans| {
                find(spans, "orders-api", "POST /orders", "SPAN_KIND_SERVER").is_some()
                    && find(
                        spans,
                        "pricing",
                        "pricing.v1.Pricing/Quote",
                        "SPAN_KIND_SERVER",
                    )
                    .is_some()
                    && find(spans, "inventory", "GET /items/{sku}", "SPAN_KIND_SERVER").is_some()
            },
        )
    };
    let server = find(&spans, "orders-api", "POST /orders", "SPAN_KIND_SERVER").unwrap();
    let call = find(
        &spans,
        "orders-api",
        "pricing.v1.Pricing/Quote",
        "SPAN_KIND_CLIENT",
    )
    .expect("orders-api's client span of the quote");
    let served = find(
        &spans,
        "pricing",
        "pricing.v1.Pricing/Quote",
        "SPAN_KIND_SERVER",
    )
    .unwrap();
    let stock = find(&spans, "inventory", "GET /items/{sku}", "SPAN_KIND_SERVER").unwrap();
    for s in [&call, &served, &stock] {
        assert_eq!(s.trace_id, server.trace_id, "{s:?}");
    }
    assert_eq!(call.parent_id, server.span_id);
    assert_eq!(served.parent_id, call.span_id);
    assert!(server.parent_id.is_empty(), "{server:?}");
}
