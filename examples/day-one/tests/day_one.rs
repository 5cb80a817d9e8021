//! The day-one service end to end, as a user would test theirs: the real
//! service on a free port under `init()` (one test in this file, so one
//! process-wide pipeline), its telemetry at `otelwire-test`'s collector.

use std::time::Duration;

use otelwire_files::{Files, FilesExt};
use otelwire_test::{Collector, SpanKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_page_is_one_trace_with_its_query_call_and_log_record() {
    let collector = Collector::start().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let telemetry = otelwire_test::builder_for(&collector)
        .service_name("day-one")
        .files(Files::defaults().dir(logs.path()))
        .init()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = day_one::App {
        db: day_one::database().await.unwrap(),
        http: otelwire_reqwest::client(otelwire_reqwest::reqwest::Client::new()),
        prices: base.clone(),
    };
    let server = tokio::spawn(async move {
        axum::serve(listener, day_one::router(app)).await.unwrap();
    });

    let body = otelwire_reqwest::reqwest::get(format!("{base}/products/1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, r#"{"id":1,"name":"widget","price_cents":1999}"#);

    let wait = Duration::from_secs(10);
    let one = |name: &'static str, kind: SpanKind| {
        let spans = collector
            .wait_for_spans_blocking(1, |s| s.name == name && s.kind == kind, wait)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(spans.len(), 1, "{name}: {spans:#?}");
        spans.into_iter().next().unwrap()
    };
    telemetry.force_flush();
    let page = one("GET /products/{id}", SpanKind::Server);
    let load = one("load_name", SpanKind::Internal);
    let query = one("SELECT products", SpanKind::Client);
    let fetch = one("fetch_price", SpanKind::Internal);
    let call = one("GET /prices/{id}", SpanKind::Client);
    let priced = one("GET /prices/{id}", SpanKind::Server);
    let job = one("count view", SpanKind::Internal);

    // One trace: the page, its query, its call and the price service's span.
    assert_eq!(page.parent_span_id, None);
    assert_eq!(page.resource.get_str("service.name"), Some("day-one"));
    assert_eq!(
        page.attributes.get_str("http.route"),
        Some("/products/{id}")
    );
    assert_eq!(
        page.attributes.get_i64("http.response.status_code"),
        Some(200)
    );
    for (child, parent) in [
        (&load, &page),
        (&query, &load),
        (&fetch, &page),
        (&call, &fetch),
        (&priced, &call),
    ] {
        assert_eq!(child.trace_id, page.trace_id, "{}", child.name);
        assert_eq!(
            child.parent_span_id.as_deref(),
            Some(parent.span_id.as_str()),
            "{}",
            child.name
        );
    }
    assert_eq!(
        query.attributes.get_str("db.query.text"),
        Some("SELECT name FROM products WHERE id = ?")
    );
    assert_eq!(load.attributes.get_i64("id"), Some(1));
    // The spawned work: a trace of its own, linked to the page.
    assert_ne!(job.trace_id, page.trace_id);
    assert_eq!(job.links.len(), 1);
    assert_eq!(job.links[0].span_id, page.span_id);

    // The log record carries the page's trace and span, and its fields.
    let viewed = collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("product viewed"), wait)
        .unwrap();
    assert_eq!(viewed[0].trace_id.as_deref(), Some(page.trace_id.as_str()));
    assert_eq!(viewed[0].span_id.as_deref(), Some(page.span_id.as_str()));
    assert_eq!(viewed[0].attributes.get_i64("price_cents"), Some(1999));

    // The request-duration histogram, by route.
    collector
        .wait_for_metric_blocking(
            "http.server.request.duration",
            |p| p.attributes.get_str("http.route") == Some("/products/{id}"),
            wait,
        )
        .unwrap();

    server.abort();
    let report = telemetry.shutdown().await;
    assert_eq!(report.dropped(), 0, "{report}");
    // The same line in the local file, with the trace id to find it by.
    let app_lines = std::fs::read_to_string(logs.path().join("app.jsonl")).unwrap();
    let line = app_lines
        .lines()
        .find(|l| l.contains("product viewed"))
        .unwrap_or_else(|| panic!("{app_lines}"));
    assert!(
        line.contains(&format!(r#""trace_id":"{}""#, page.trace_id)),
        "{line}"
    );
}
