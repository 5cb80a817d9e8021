//! Run with `cargo run -p orders-api` (listens on `HOST`, default 0.0.0.0, port `PORT`, default 8080, 0 picks a free port; finds inventory at `INVENTORY_URL`, default http://127.0.0.1:8081, and pricing at `PRICING_URL`, default http://127.0.0.1:50051; stores orders in `DATABASE_URL`, default an in-memory SQLite database; `OTELWIRE_ADMIN_TOKEN` mounts `/admin/log-level`).

use std::process::ExitCode;

use otelwire_files::FilesExt;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = match otelwire::builder()
        .default_service_name("orders-api") // OTEL_SERVICE_NAME wins
        .service_version(env!("CARGO_PKG_VERSION"))
        // JSON-lines files (app, metrics, alerts, audit) when OTELWIRE_LOG_DIR is set.
        .files(otelwire_files::Files::defaults())
        .init()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("orders-api: cannot set up telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let upstreams = orders_api::Upstreams::from_env();
    let database_url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let router = match orders_api::app(&telemetry, &upstreams, database_url.as_deref()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orders-api: {e}");
            telemetry.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let host = std::env::var("HOST").unwrap_or_else(|_| "0.0.0.0".into());
    let listener = match tokio::net::TcpListener::bind(format!("{host}:{port}")).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("orders-api: cannot listen on {host}:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| format!("{host}:{port}"), |a| a.to_string());
    tracing::info!(
        addr = %addr,
        inventory = %inventory::without_userinfo(&upstreams.inventory),
        pricing = %inventory::without_userinfo(&upstreams.pricing),
        "orders-api listening"
    );
    // `GET`/`PUT /admin/log-level` (the log filter, live) only when a token is set.
    let router = match otelwire_axum::AdminToken::from_env("OTELWIRE_ADMIN_TOKEN") {
        Some(token) => router.merge(otelwire_axum::admin_router(
            telemetry.filter_handle(),
            token,
        )),
        None => router,
    };
    let result = orders_api::serve(listener, router, orders_api::shutdown_signal()).await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orders-api: {e}");
            ExitCode::FAILURE
        }
    }
}
