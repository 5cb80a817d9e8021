//! The inventory service: `GET /items/{sku}` returns the stock of an item
//! (404 for unknown items, 400 for a sku that does not match
//! [`valid_sku`]). It can be told to add latency or to fail a share of
//! requests, so that traces have something to show. Every other path is
//! answered 404 by a fallback that is traced like the routes.
//!
//! The server ([`serve`], [`server`]) bounds how long a client may take to
//! send a request and how long shutdown waits for open connections.
//!
//! The binary (`cargo run -p inventory`) reads its settings from the
//! environment; the demo runs the same [`router`] in-process.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::Counter;
use tracing::{Instrument, info, info_span, warn};

pub mod server;

pub use server::without_userinfo;

/// The longest sku [`valid_sku`] accepts.
pub const MAX_SKU_LEN: usize = 64;

/// Whether `sku` is a stock-keeping unit: 1 to [`MAX_SKU_LEN`] ASCII
/// letters, digits, `-`, `_` or `.`, starting with a letter or a digit
/// (so never `..`, a `/`, a `?`, a `%` or a control character).
pub fn valid_sku(sku: &str) -> bool {
    let bytes = sku.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_SKU_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The answer to a request for a path no route serves: 404, traced (the
/// span is named by the method alone, never the raw path).
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": "no such resource"})),
    )
        .into_response()
}

/// How the service misbehaves, on purpose.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Added to every lookup (`INVENTORY_LATENCY_MS`).
    pub latency: Duration,
    /// Share of lookups that fail with 503, in `[0, 1]` (`INVENTORY_FAILURE_RATE`).
    pub failure_rate: f64,
    /// SKUs whose lookup takes 600 ms more (`INVENTORY_SLOW_SKUS`, comma-separated).
    pub slow_skus: Vec<String>,
    /// SKUs whose lookup always fails (`INVENTORY_FAILING_SKUS`, comma-separated).
    pub failing_skus: Vec<String>,
}

impl Config {
    /// Reads the `INVENTORY_*` variables; a bad value is an error naming it.
    pub fn from_env() -> Result<Config, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let list = |k: &str| {
            var(k)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let latency = match var("INVENTORY_LATENCY_MS") {
            None => Duration::ZERO,
            Some(v) => Duration::from_millis(v.trim().parse().map_err(|_| {
                format!("INVENTORY_LATENCY_MS={v}: expected a whole number of milliseconds")
            })?),
        };
        let failure_rate = match var("INVENTORY_FAILURE_RATE") {
            None => 0.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    return Err(format!(
                        "INVENTORY_FAILURE_RATE={v}: expected a number in [0, 1]"
                    ));
                }
            },
        };
        Ok(Config {
            latency,
            failure_rate,
            slow_skus: list("INVENTORY_SLOW_SKUS"),
            failing_skus: list("INVENTORY_FAILING_SKUS"),
        })
    }
}

/// One item in stock.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Item {
    /// Stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Units available.
    pub stock: u32,
}

struct AppState {
    items: HashMap<String, Item>,
    config: Config,
    requests: AtomicU64,
    lookups: Counter<u64>,
}

/// The catalogue every instance starts with.
pub fn catalogue() -> Vec<Item> {
    [
        ("widget", "Widget", 120),
        ("gadget", "Gadget", 8),
        ("gizmo", "Gizmo", 42),
        ("anvil", "Anvil", 3),
        ("lever", "Lever", 60),
    ]
    .into_iter()
    .map(|(sku, name, stock)| Item {
        sku: sku.into(),
        name: name.into(),
        stock,
    })
    .collect()
}

/// The service's routes, traced by `otelwire-axum`, plus `/health/telemetry`.
pub fn router(telemetry: &otelwire::Telemetry, config: Config) -> axum::Router {
    let meter = telemetry.meter("inventory");
    let state = Arc::new(AppState {
        items: catalogue()
            .into_iter()
            .map(|i| (i.sku.clone(), i))
            .collect(),
        config,
        requests: AtomicU64::new(0),
        lookups: meter
            .u64_counter("inventory.lookups")
            .with_description("Item lookups by outcome.")
            .with_unit("{lookup}")
            .build(),
    });
    let routes = axum::Router::new()
        .route("/items/{sku}", get(get_item))
        .fallback(not_found)
        .with_state(state);
    server::request_timeout(routes, server::Limits::default().request)
        .layer(otelwire_axum::OtelLayer::new().meter(telemetry.meter("otelwire-axum")))
        .merge(otelwire_axum::health_router(telemetry.health_source()))
}

async fn get_item(State(state): State<Arc<AppState>>, Path(sku): Path<String>) -> Response {
    if !valid_sku(&sku) {
        state.lookups.add(1, &[KeyValue::new("outcome", "invalid")]);
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "invalid sku"})),
        )
            .into_response();
    }
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let outcome = |o: &'static str| [KeyValue::new("outcome", o)];
    let mut delay = state.config.latency;
    if state.config.slow_skus.contains(&sku) {
        delay += Duration::from_millis(600);
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay)
            .instrument(info_span!("warehouse_query", sku = %sku))
            .await;
    }
    // A deterministic share: every k-th request fails for rate 1/k.
    let failing_by_rate = state.config.failure_rate > 0.0
        && ((n as f64 + 1.0) * state.config.failure_rate).floor()
            > (n as f64 * state.config.failure_rate).floor();
    if state.config.failing_skus.contains(&sku) || failing_by_rate {
        state.lookups.add(1, &outcome("error"));
        tracing::error!(sku = %sku, "stock database unavailable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": "stock database unavailable"})),
        )
            .into_response();
    }
    match state.items.get(&sku) {
        Some(item) => {
            state.lookups.add(1, &outcome("found"));
            info!(sku = %sku, stock = item.stock, "item looked up");
            Json(item.clone()).into_response()
        }
        None => {
            state.lookups.add(1, &outcome("unknown"));
            warn!(sku = %sku, "unknown item");
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"error": format!("unknown item {sku}")})),
            )
                .into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, with the
/// default [`server::Limits`]: a request head must arrive within 5 s, and
/// connections still open 5 s after `shutdown` are closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, router, shutdown, server::Limits::default()).await
}

/// Completes on Ctrl-C or SIGTERM (what container runtimes send).
pub async fn shutdown_signal() {
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
