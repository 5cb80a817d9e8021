//! Run with `cargo run -p pricing` (gRPC on `HOST`, default 127.0.0.1, port `PORT`, default 50051; 0 picks a free port).

use std::process::ExitCode;

use otelwire_files::FilesExt;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = match otelwire::builder()
        .default_service_name("pricing") // OTEL_SERVICE_NAME wins
        .service_version(env!("CARGO_PKG_VERSION"))
        // JSON-lines files (app, metrics, alerts, audit) when OTELWIRE_LOG_DIR is set.
        .files(otelwire_files::Files::defaults())
        .init()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("pricing: cannot set up telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match pricing::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pricing: {e}");
            return ExitCode::FAILURE;
        }
    };
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "50051".into());
    let listener = match tokio::net::TcpListener::bind(format!("{host}:{port}")).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pricing: cannot listen on {host}:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| format!("{host}:{port}"), |a| a.to_string());
    tracing::info!(addr = %addr, "pricing listening");
    let result = pricing::serve(listener, &telemetry, config, pricing::shutdown_signal()).await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pricing: {e}");
            ExitCode::FAILURE
        }
    }
}
