//! What the end-to-end tests share: running a service in-process, and
//! logging in to orders-api.

use std::net::SocketAddr;

use otelwire::Telemetry;

/// Runs a service on its own thread under its own pipeline; returns its
/// address and a function that stops it and flushes its telemetry.
/// `router` builds the routes inside the service's runtime (orders-api
/// opens its database there). Handlers see the client's address.
pub(crate) fn run(
    telemetry: Telemetry,
    router: impl AsyncFnOnce(&Telemetry) -> axum::Router + Send + 'static,
) -> (SocketAddr, impl FnOnce() -> otelwire::ShutdownReport) {
    on_thread(telemetry, async move |listener, telemetry, stop| {
        let router = router(telemetry).await;
        orders_api::serve(listener, router, stop).await.unwrap();
    })
}

/// Runs the pricing gRPC service with `config` as [`run`] runs an HTTP one.
#[allow(dead_code)]
pub(crate) fn run_pricing(
    telemetry: Telemetry,
    config: pricing::Config,
) -> (SocketAddr, impl FnOnce() -> otelwire::ShutdownReport) {
    on_thread(telemetry, async move |listener, telemetry, stop| {
        pricing::serve(listener, telemetry, config, stop)
            .await
            .unwrap();
    })
}

/// `serve` on a listener of 127.0.0.1, on a thread of its own with
/// `telemetry` as its default subscriber, until the returned function is
/// called; that function returns the pipeline's shutdown report.
fn on_thread(
    telemetry: Telemetry,
    serve: impl AsyncFnOnce(
        tokio::net::TcpListener,
        &Telemetry,
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) + Send
    + 'static,
) -> (SocketAddr, impl FnOnce() -> otelwire::ShutdownReport) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let guard = tracing::dispatcher::set_default(telemetry.dispatch());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = Box::pin(async move {
                let _ = stop_rx.await;
            });
            let serving = serve(listener, &telemetry, stop);
            addr_tx.send(addr).unwrap();
            serving.await;
        });
        drop(rt);
        drop(guard);
        telemetry.shutdown_blocking()
    });
    let addr = addr_rx.recv().unwrap();
    (addr, move || {
        let _ = stop_tx.send(());
        thread.join().unwrap()
    })
}

/// Logs in to orders-api at `base` as the demo user who may order; returns
/// the bearer token.
pub(crate) async fn demo_token(client: &reqwest::Client, base: &str) -> String {
    let (email, password, _) = orders_api::DEMO_USERS[0];
    let r = client
        .post(format!("{base}/login"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the demo user logs in");
    r.json::<orders_api::Token>().await.unwrap().token
}
