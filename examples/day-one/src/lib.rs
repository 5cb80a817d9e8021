//! The service a team writes on day one, as the README's "Day one" section
//! shows it: a product page that reads SQLite through otelwire-sqlx, asks
//! a price service over HTTP through otelwire-reqwest, logs, and hands
//! work that outlives the request to a task of its own. `tests/day_one.rs`
//! asserts the trace and the log record it produces.
//!
//! The price service is a route of this service (`/prices/{id}`), called
//! over HTTP as another service would be, so that the example runs alone.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use otelwire_reqwest::UrlTemplate;
use otelwire_reqwest::reqwest_middleware::ClientWithMiddleware;
use otelwire_sqlx::InstrumentedPool;
use sqlx::Sqlite;
use tracing::Instrument;

/// What the handlers share.
#[derive(Clone)]
pub struct App {
    /// The product database.
    pub db: InstrumentedPool<Sqlite>,
    /// The HTTP client for the price service.
    pub http: ClientWithMiddleware,
    /// The price service's base URL, such as `http://127.0.0.1:8080`.
    pub prices: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("prices", &self.prices)
            .finish_non_exhaustive()
    }
}

/// The routes, each request in a server span (`GET /products/{id}`).
pub fn router(app: App) -> Router {
    Router::new()
        .route("/products/{id}", get(product))
        .route("/prices/{id}", get(price))
        .with_state(app)
        .layer(otelwire_axum::OtelLayer::new())
}

async fn product(
    State(app): State<App>,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    let name = load_name(&app.db, id).await?;
    let price_cents = fetch_price(&app, id).await?;
    tracing::info!(product.id = id, price_cents, "product viewed");

    // Work that outlives the request: a trace of its own, linked to this one.
    let job = tracing::info_span!(parent: None, "count view", product.id = id);
    job.follows_from(tracing::Span::current());
    tokio::spawn(async { tracing::info!("view counted") }.instrument(job));

    Ok(Json(
        serde_json::json!({ "id": id, "name": name, "price_cents": price_cents }),
    ))
}

#[tracing::instrument(skip(db))]
async fn load_name(db: &InstrumentedPool<Sqlite>, id: i64) -> Result<String, StatusCode> {
    sqlx::query_scalar("SELECT name FROM products WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the product");
            StatusCode::INTERNAL_SERVER_ERROR
        })?
        .ok_or(StatusCode::NOT_FOUND)
}

#[tracing::instrument(skip(app))]
async fn fetch_price(app: &App, id: i64) -> Result<i64, StatusCode> {
    let response = app
        .http
        .get(format!("{}/prices/{id}", app.prices))
        .with_extension(UrlTemplate::new("/prices/{id}"))
        .send()
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot reach the price service");
            StatusCode::BAD_GATEWAY
        })?;
    let body = response.text().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    body.trim().parse().map_err(|_| StatusCode::BAD_GATEWAY)
}

/// The stand-in price service: 1999 cents for every product.
async fn price(Path(_id): Path<i64>) -> String {
    "1999".to_owned()
}

/// An in-memory SQLite database with a few products, behind otelwire-sqlx.
pub async fn database() -> Result<InstrumentedPool<Sqlite>, Box<dyn std::error::Error>> {
    // One connection: each in-memory SQLite connection is a database of its own.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    let db = InstrumentedPool::new(pool)?;
    sqlx::query("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&db)
        .await?;
    sqlx::query("INSERT INTO products (id, name) VALUES (1, 'widget'), (2, 'gadget')")
        .execute(&db)
        .await?;
    Ok(db)
}
