//! The orders service: `POST /orders` with `{"sku": "...", "quantity": N}`
//! checks the stock by calling the inventory service (through
//! `otelwire-reqwest`, so the trace continues there) and answers 201 with
//! the order; `GET /orders/{id}` returns it.
//!
//! The binary (`cargo run -p orders-api`) reads `PORT` and `INVENTORY_URL`;
//! the demo runs the same [`router`] in-process.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::Counter;
use tokio::sync::RwLock;
use tracing::{info, warn};

pub use inventory::shutdown_signal;

/// An order as the API returns it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Order {
    /// Assigned by the service.
    pub id: u64,
    /// What was ordered.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// `accepted`.
    pub status: String,
}

/// The body of `POST /orders`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewOrder {
    /// What to order.
    pub sku: String,
    /// How many (at least 1).
    pub quantity: u32,
}

struct AppState {
    inventory_url: String,
    client: reqwest_middleware::ClientWithMiddleware,
    orders: RwLock<HashMap<u64, Order>>,
    next_id: AtomicU64,
    placed: Counter<u64>,
}

/// The service's routes, traced by `otelwire-axum`, plus `/health/telemetry`.
/// `inventory_url` is the inventory service's base URL.
pub fn router(telemetry: &otelwire::Telemetry, inventory_url: &str) -> axum::Router {
    let meter = telemetry.meter("orders-api");
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("a reqwest client with default settings"),
    )
    .with(otelwire_reqwest::OtelMiddleware::new().meter(telemetry.meter("otelwire-reqwest")))
    .build();
    let state = Arc::new(AppState {
        inventory_url: inventory_url.trim_end_matches('/').to_owned(),
        client,
        orders: RwLock::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        placed: meter
            .u64_counter("orders.placed")
            .with_description("Orders by outcome.")
            .with_unit("{order}")
            .build(),
    });
    axum::Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
        .with_state(state)
        .layer(otelwire_axum::OtelLayer::new().meter(telemetry.meter("otelwire-axum")))
        .merge(otelwire_axum::health_router(telemetry.health_source()))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn create_order(State(state): State<Arc<AppState>>, Json(new): Json<NewOrder>) -> Response {
    let outcome = |o: &'static str| [KeyValue::new("outcome", o)];
    if new.quantity == 0 {
        state.placed.add(1, &outcome("invalid"));
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity must be at least 1",
        );
    }
    let url = format!("{}/items/{}", state.inventory_url, new.sku);
    let response = state
        .client
        .get(&url)
        .with_extension(otelwire_reqwest::UrlTemplate::new("/items/{sku}"))
        .send()
        .await;
    let item: inventory::Item = match response {
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            state.placed.add(1, &outcome("unknown_item"));
            warn!(sku = %new.sku, "order for an unknown item");
            return error(StatusCode::NOT_FOUND, format!("unknown item {}", new.sku));
        }
        Ok(r) if r.status().is_success() => match r.json().await {
            Ok(item) => item,
            Err(e) => {
                state.placed.add(1, &outcome("inventory_error"));
                tracing::error!(error = %e, "inventory answered with an unreadable body");
                return error(
                    StatusCode::BAD_GATEWAY,
                    "inventory answered with an unreadable body",
                );
            }
        },
        Ok(r) => {
            state.placed.add(1, &outcome("inventory_error"));
            tracing::error!(status = r.status().as_u16(), sku = %new.sku, "inventory failed");
            return error(StatusCode::BAD_GATEWAY, "inventory is unavailable");
        }
        Err(e) => {
            state.placed.add(1, &outcome("inventory_error"));
            tracing::error!(error = %e, "cannot reach inventory");
            return error(StatusCode::BAD_GATEWAY, "inventory is unreachable");
        }
    };
    if item.stock < new.quantity {
        state.placed.add(1, &outcome("out_of_stock"));
        warn!(sku = %new.sku, wanted = new.quantity, stock = item.stock, "not enough stock");
        return error(
            StatusCode::CONFLICT,
            format!("only {} in stock", item.stock),
        );
    }
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let order = Order {
        id,
        sku: new.sku,
        quantity: new.quantity,
        status: "accepted".into(),
    };
    state.orders.write().await.insert(id, order.clone());
    state.placed.add(1, &outcome("accepted"));
    info!(order.id = id, sku = %order.sku, quantity = order.quantity, "order placed");
    (StatusCode::CREATED, Json(order)).into_response()
}

async fn get_order(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> Response {
    match state.orders.read().await.get(&id) {
        Some(order) => Json(order.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no order {id}")),
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub use inventory::serve;
