//! Under `Builder::build` (nothing global, as in tests), a client made
//! inside the pipeline's dispatcher records `http.client.request.duration`
//! into that pipeline, with no `.meter(…)` passed.

use std::time::Duration;

#[tokio::test(flavor = "current_thread")]
async fn a_client_made_under_the_dispatcher_records_its_metrics() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = otelwire_test::builder_for(&collector).build().unwrap();
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let app = axum::Router::new().route("/items", axum::routing::get(|| async { "[]" }));
        let _ = axum::serve(listener, app).await;
    });
    let client = otelwire_reqwest::client(reqwest::Client::new());
    let response = client
        .get(format!("http://{addr}/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    t.force_flush();
    let points = collector
        .wait_for_metric(
            "http.client.request.duration",
            |_| true,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        points[0].attributes.get_i64("http.response.status_code"),
        Some(200)
    );
    server.abort();
    drop(_default);
    t.shutdown().await;
}
