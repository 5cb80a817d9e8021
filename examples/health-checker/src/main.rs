//! Run with `cargo run -p health-checker` (listens on `PORT`, default 8082; checks from the TOML file `HEALTH_CHECKER_CONFIG`, else orders-api at `ORDERS_API_URL` and inventory at `INVENTORY_URL`; `OTELWIRE_ADMIN_TOKEN` mounts `/admin/log-level`).

use std::process::ExitCode;

use otelwire_files::FilesExt;

#[tokio::main]
async fn main() -> ExitCode {
    // The configuration first: a bad file stops the program before anything runs.
    let config = match health_checker::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("health-checker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = match otelwire::builder()
        .default_service_name("health-checker") // OTEL_SERVICE_NAME wins
        .service_version(env!("CARGO_PKG_VERSION"))
        // JSON-lines files (app, metrics, alerts, audit) when OTELWIRE_LOG_DIR is set.
        .files(otelwire_files::Files::defaults())
        .init()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("health-checker: cannot set up telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = std::env::var("PORT").unwrap_or_else(|_| "8082".into());
    let listener = match tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("health-checker: cannot listen on port {port}: {e}");
            telemetry.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let names: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
    tracing::info!(port = %port, checks = %names.join(","), "health-checker listening");
    let handle = health_checker::spawn(&telemetry, config);
    let app = health_checker::router(&telemetry, &handle);
    // `GET`/`PUT /admin/log-level` (the log filter, live) only when a token is set.
    let app = match otelwire_axum::AdminToken::from_env("OTELWIRE_ADMIN_TOKEN") {
        Some(token) => app.merge(otelwire_axum::admin_router(
            telemetry.filter_handle(),
            token,
        )),
        None => app,
    };
    // The client address: in the server spans, and in the admin audit events.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    handle.stop().await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("health-checker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
