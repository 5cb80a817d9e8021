//! Under `Builder::build` (nothing global, as in tests), an `OtelLayer`
//! made inside the pipeline's dispatcher records the HTTP metrics into that
//! pipeline, with no `.meter(…)` passed.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use tower::ServiceExt;

#[tokio::test(flavor = "current_thread")]
async fn a_layer_made_under_the_dispatcher_records_its_metrics() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = otelwire_test::builder_for(&collector).build().unwrap();
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(otelwire_axum::OtelLayer::new());
    let response = app
        .oneshot(Request::get("/orders/7").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    t.force_flush();
    let points = collector
        .wait_for_metric(
            "http.server.request.duration",
            |p| p.attributes.get_str("http.route") == Some("/orders/{id}"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        points[0].attributes.get_i64("http.response.status_code"),
        Some(200)
    );
    collector
        .wait_for_spans(1, |s| s.name == "GET /orders/{id}", Duration::from_secs(10))
        .await
        .unwrap();
    drop(_default);
    t.shutdown().await;
}
