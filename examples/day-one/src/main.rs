//! `cargo run -p day-one`, then `curl localhost:8080/products/1`.
//! `OTEL_EXPORTER_OTLP_ENDPOINT` says where telemetry goes (default
//! `http://localhost:4318`), `OTELWIRE_LOG_DIR` adds local files, `PORT`
//! changes the port (default 8080).

use otelwire_files::{Files, FilesExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = otelwire::builder().files(Files::defaults()).init()?;
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await?;
    let app = day_one::App {
        db: day_one::database().await?,
        http: otelwire_reqwest::client(otelwire_reqwest::reqwest::Client::new()),
        prices: format!("http://127.0.0.1:{}", listener.local_addr()?.port()),
    };
    tracing::info!(port = listener.local_addr()?.port(), "listening");
    axum::serve(listener, day_one::router(app))
        .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or(()) })
        .await?;
    telemetry.shutdown().await; // flushes every span, log record and file line
    Ok(())
}
