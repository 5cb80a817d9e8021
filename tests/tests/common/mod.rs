//! What the end-to-end tests share: running a service in-process.

use std::net::SocketAddr;

use otelwire::Telemetry;

/// Runs a service on its own thread under its own pipeline; returns its
/// address and a function that stops it and flushes its telemetry.
pub(crate) fn run(
    telemetry: Telemetry,
    router: impl FnOnce(&Telemetry) -> axum::Router + Send + 'static,
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
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let router = router(&telemetry);
            inventory::serve(listener, router, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
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
