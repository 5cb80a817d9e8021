//! Run with `cargo run -p inventory` (listens on `HOST`, default 0.0.0.0, port `PORT`, default 8081; 0 picks a free port; `OTELWIRE_ADMIN_TOKEN` mounts `/admin/log-level`).

use std::process::ExitCode;

use otelwire_files::FilesExt;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = match otelwire::builder()
        .default_service_name("inventory") // OTEL_SERVICE_NAME wins
        .service_version(env!("CARGO_PKG_VERSION"))
        // JSON-lines files (app, metrics, alerts, audit) when OTELWIRE_LOG_DIR is set.
        .files(otelwire_files::Files::defaults())
        .init()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("inventory: cannot set up telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match inventory::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("inventory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let host = std::env::var("HOST").unwrap_or_else(|_| "0.0.0.0".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8081".into());
    let listener = match tokio::net::TcpListener::bind(format!("{host}:{port}")).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("inventory: cannot listen on {host}:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| format!("{host}:{port}"), |a| a.to_string());
    tracing::info!(addr = %addr, "inventory listening");
    let router = inventory::router(&telemetry, config);
    // `GET`/`PUT /admin/log-level` (the log filter, live) only when a token is set.
    let router = match otelwire_axum::AdminToken::from_env("OTELWIRE_ADMIN_TOKEN") {
        Some(token) => router.merge(otelwire_axum::admin_router(
            telemetry.filter_handle(),
            token,
        )),
        None => router,
    };
    let result = inventory::serve(listener, router, inventory::shutdown_signal()).await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inventory: {e}");
            ExitCode::FAILURE
        }
    }
}
