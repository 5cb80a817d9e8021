//! The orders service. Users log in with `POST /login` (`{"email": "...",
//! "password": "..."}` → `{"token": "..."}`, or 401); `POST /orders` with
//! `Authorization: Bearer <token>` and `{"sku": "...", "quantity": N}`
//! checks the stock by calling the inventory service (through
//! `otelwire-reqwest`, so the trace continues there), quotes the price from
//! the pricing service over gRPC (`pricing.v1.Pricing/Quote`, through
//! `otelwire-tonic`: the trace continues there too), stores the order with
//! its price in the database and answers 201 with it (401 without a valid
//! token, 403 for a user who may not order, 502 when inventory or pricing
//! fails); `GET /orders/{id}` returns an order.
//!
//! Orders and users live in a database through `otelwire-sqlx` (so every
//! query is a span under the request's span): SQLite in memory by default,
//! or what `DATABASE_URL` names (`sqlite:orders.db?mode=rwc`,
//! `postgres://user@host/db`). Logins, rejected tokens and refused orders
//! are audit/security events (`otelwire::audit`). Demo users (demo only):
//! `demo@example.com` / `demo-password` may order, `viewer@example.com` /
//! `viewer-password` may not.
//!
//! The `sku` of an order must match [`inventory::valid_sku`] (400
//! otherwise), and goes into the inventory URL as one percent-encoded path
//! segment: an order can never make the service call another path of
//! inventory or add a query or a header to the call. Every other path is
//! answered 404 by a fallback that is traced like the routes.
//!
//! The binary (`cargo run -p orders-api`) reads `HOST`, `PORT`,
//! `INVENTORY_URL`, `PRICING_URL` ([`Upstreams`]) and `DATABASE_URL`; the
//! demo runs the same [`app`] in-process. URLs are printed without their
//! user name and password.

pub mod auth;
pub mod db;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use otelwire::audit::{Auditor, User};
use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::Counter;
use otelwire_tonic::OtelClient;
use pricing::proto::QuoteRequest;
use pricing::proto::pricing_client::PricingClient;
use tonic::transport::Channel;
use tracing::{info, warn};

pub use auth::Credentials;
pub use db::{DEMO_USERS, Db, DbError};
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
    /// The price of all of them, in cents, as pricing quoted it.
    pub total_cents: i64,
    /// ISO 4217 code of the price's currency (`EUR`).
    pub currency: String,
}

/// The body of `POST /orders`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewOrder {
    /// What to order.
    pub sku: String,
    /// How many (at least 1).
    pub quantity: u32,
}

/// The body `POST /login` answers with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Token {
    /// The bearer token for `Authorization: Bearer <token>`.
    pub token: String,
}

/// Where orders-api finds the services it calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    /// The inventory service's base URL (`INVENTORY_URL`).
    pub inventory: String,
    /// The pricing service's URL (`PRICING_URL`).
    pub pricing: String,
}

impl Upstreams {
    /// Where inventory listens by default (`cargo run -p inventory`).
    pub const DEFAULT_INVENTORY: &str = "http://127.0.0.1:8081";
    /// Where pricing listens by default (`cargo run -p pricing`).
    pub const DEFAULT_PRICING: &str = "http://127.0.0.1:50051";

    /// Both URLs.
    pub fn new(inventory: impl Into<String>, pricing: impl Into<String>) -> Self {
        Upstreams {
            inventory: inventory.into(),
            pricing: pricing.into(),
        }
    }

    /// `INVENTORY_URL` and `PRICING_URL`, each defaulting when unset or
    /// blank.
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Upstreams::new(
            var("INVENTORY_URL", Self::DEFAULT_INVENTORY),
            var("PRICING_URL", Self::DEFAULT_PRICING),
        )
    }
}

/// How long a quote may take: pricing is told so (`grpc-timeout`) and the
/// call is cut after it (`DEADLINE_EXCEEDED`).
pub const QUOTE_TIMEOUT: Duration = Duration::from_secs(2);

struct AppState {
    /// The inventory's base URL (`None`: unusable, every order answers 502).
    inventory_url: Option<reqwest::Url>,
    client: reqwest_middleware::ClientWithMiddleware,
    /// The pricing client (`None`: unusable URL, every order answers 502).
    pricing: Option<PricingClient<OtelClient<Channel>>>,
    db: Db,
    audit: Auditor,
    placed: Counter<u64>,
}

/// Could not start: the database, or the audit masking policy.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened.
    #[error(transparent)]
    Db(#[from] DbError),
    /// An `OTELWIRE_AUDIT_*` variable is wrong.
    #[error(transparent)]
    Audit(#[from] otelwire::InitError),
}

/// Opens the database (`database_url`, else an in-memory SQLite database),
/// migrates and seeds it, and returns the service's routes.
pub async fn app(
    telemetry: &otelwire::Telemetry,
    upstreams: &Upstreams,
    database_url: Option<&str>,
) -> Result<axum::Router, StartError> {
    let db = Db::open(telemetry, database_url).await?;
    let audit =
        Auditor::from_env(&telemetry.meter("orders-api"))?.redactor(telemetry.redactor().clone());
    Ok(router(telemetry, upstreams, db, audit))
}

/// The service's routes on an open database, traced by `otelwire-axum`,
/// plus `/health/telemetry`; it calls the services `upstreams` names.
pub fn router(
    telemetry: &otelwire::Telemetry,
    upstreams: &Upstreams,
    db: Db,
    audit: Auditor,
) -> axum::Router {
    let inventory_url = upstreams.inventory.as_str();
    let meter = telemetry.meter("orders-api");
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("a reqwest client with default settings"),
    )
    .with(otelwire_reqwest::OtelMiddleware::new().meter(telemetry.meter("otelwire-reqwest")))
    .build();
    let base = reqwest::Url::parse(inventory_url.trim()).ok();
    if base.is_none() {
        tracing::error!(
            inventory = %inventory::without_userinfo(inventory_url),
            "the inventory URL is unusable: every order will fail"
        );
    }
    let pricing = match pricing::client(telemetry, upstreams.pricing.trim()) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(
                pricing = %inventory::without_userinfo(&upstreams.pricing),
                error = %e,
                "the pricing URL is unusable: every order will fail"
            );
            None
        }
    };
    let state = Arc::new(AppState {
        inventory_url: base,
        client,
        pricing,
        db,
        audit,
        placed: meter
            .u64_counter("orders.placed")
            .with_description("Orders by outcome.")
            .with_unit("{order}")
            .build(),
    });
    let routes = axum::Router::new()
        .route("/login", post(login))
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
        .fallback(inventory::not_found)
        .with_state(state);
    inventory::server::request_timeout(routes, inventory::server::Limits::default().request)
        .layer(otelwire_axum::OtelLayer::new().meter(telemetry.meter("otelwire-axum")))
        .merge(otelwire_axum::health_router(telemetry.health_source()))
}

/// The inventory URL of `sku`'s item: `{base}/items/{sku}`, the sku one
/// path segment in which every byte but an ASCII letter, a digit, `-`,
/// `.`, `_` and `~` is percent-encoded (control characters included,
/// which URL parsers would silently drop); the base's query and fragment
/// are dropped. `None` for a base that cannot have a path (`mailto:…`).
pub fn item_url(base: &reqwest::Url, sku: &str) -> Option<reqwest::Url> {
    use std::fmt::Write as _;
    if base.cannot_be_a_base() {
        return None;
    }
    let mut path = base.path().trim_end_matches('/').to_owned();
    path.push_str("/items/");
    for b in sku.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(b));
        } else {
            let _ = write!(path, "%{b:02X}");
        }
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.set_path(&path);
    Some(url)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The client's address, when the server was started with connect info
/// (as [`serve`] does).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

fn auth_failure(e: auth::AuthError) -> Response {
    match e {
        auth::AuthError::BadCredentials => error(
            StatusCode::UNAUTHORIZED,
            "invalid e-mail address or password",
        ),
        auth::AuthError::Token(_) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({ "error": "a valid bearer token is required" })),
        )
            .into_response(),
        auth::AuthError::Db(e) => {
            tracing::error!(error = %e, "database failed during authentication");
            error(StatusCode::SERVICE_UNAVAILABLE, "try again later")
        }
        auth::AuthError::Internal => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

async fn login(
    State(state): State<Arc<AppState>>,
    ClientAddr(client): ClientAddr,
    Json(credentials): Json<Credentials>,
) -> Response {
    match auth::login(&state.db, &state.audit, credentials, client).await {
        Ok(token) => Json(Token { token }).into_response(),
        Err(e) => auth_failure(e),
    }
}

async fn create_order(
    State(state): State<Arc<AppState>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Json(new): Json<NewOrder>,
) -> Response {
    let outcome = |o: &'static str| [KeyValue::new("outcome", o)];
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let user = match auth::authenticate(&state.db, &state.audit, authorization, client).await {
        Ok(user) => user,
        Err(e) => {
            state.placed.add(1, &outcome("unauthenticated"));
            return auth_failure(e);
        }
    };
    if !user.can_order {
        state.placed.add(1, &outcome("forbidden"));
        let id = user.id.to_string();
        state.audit.permission_denied(
            User::id(&id).with_email(&user.email),
            "orders.create",
            "/orders",
        );
        return error(StatusCode::FORBIDDEN, "this user may not place orders");
    }
    if !(1..=pricing::MAX_QUANTITY).contains(&new.quantity) {
        state.placed.add(1, &outcome("invalid"));
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("quantity must be 1 to {}", pricing::MAX_QUANTITY),
        );
    }
    if !inventory::valid_sku(&new.sku) {
        state.placed.add(1, &outcome("invalid"));
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "sku must be 1 to {} letters, digits, '-', '_' or '.', starting with a letter or a digit",
                inventory::MAX_SKU_LEN
            ),
        );
    }
    let Some(url) = state
        .inventory_url
        .as_ref()
        .and_then(|base| item_url(base, &new.sku))
    else {
        state.placed.add(1, &outcome("inventory_error"));
        return error(StatusCode::BAD_GATEWAY, "inventory is unreachable");
    };
    let response = state
        .client
        .get(url)
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
    let Some(mut prices) = state.pricing.clone() else {
        state.placed.add(1, &outcome("pricing_error"));
        return error(StatusCode::BAD_GATEWAY, "pricing is unreachable");
    };
    let mut quote = tonic::Request::new(QuoteRequest {
        sku: new.sku.clone(),
        quantity: new.quantity,
    });
    quote.set_timeout(QUOTE_TIMEOUT);
    let price = match prices.quote(quote).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => {
            state.placed.add(1, &outcome("pricing_error"));
            // The status's code only: its message is the other service's text.
            tracing::error!(
                sku = %new.sku,
                rpc.response.status_code = otelwire_tonic::code_name(status.code()),
                "pricing failed"
            );
            return error(StatusCode::BAD_GATEWAY, "pricing is unavailable");
        }
    };
    let inserted: Result<i64, sqlx::Error> = on_db!(&state.db, p => {
        sqlx::query_scalar(
            "INSERT INTO orders (user_id, sku, quantity, status, total_cents, currency) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(user.id)
        .bind(new.sku.as_str())
        .bind(i64::from(new.quantity))
        .bind("accepted")
        .bind(price.total_cents)
        .bind(price.currency.as_str())
        .fetch_one(p)
        .await
    });
    let id = match inserted {
        Ok(id) => id as u64,
        Err(e) => {
            state.placed.add(1, &outcome("database_error"));
            tracing::error!(error = %e, "cannot store the order");
            return error(StatusCode::SERVICE_UNAVAILABLE, "cannot store the order");
        }
    };
    let order = Order {
        id,
        sku: new.sku,
        quantity: new.quantity,
        status: "accepted".into(),
        total_cents: price.total_cents,
        currency: price.currency,
    };
    state.placed.add(1, &outcome("accepted"));
    info!(
        order.id = id,
        sku = %order.sku,
        quantity = order.quantity,
        total_cents = order.total_cents,
        "order placed"
    );
    (StatusCode::CREATED, Json(order)).into_response()
}

async fn get_order(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> Response {
    type Row = (i64, String, i64, String, i64, String);
    let row: Result<Option<Row>, sqlx::Error> = on_db!(&state.db, p => {
        sqlx::query_as(
            "SELECT id, sku, quantity, status, total_cents, currency FROM orders WHERE id = $1",
        )
            .bind(i64::try_from(id).unwrap_or(i64::MAX))
            .fetch_optional(p)
            .await
    });
    match row {
        Ok(Some((id, sku, quantity, status, total_cents, currency))) => Json(Order {
            id: id as u64,
            sku,
            quantity: u32::try_from(quantity).unwrap_or(u32::MAX),
            status,
            total_cents,
            currency,
        })
        .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no order {id}")),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the order");
            error(StatusCode::SERVICE_UNAVAILABLE, "cannot read the order")
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, telling the
/// handlers each client's address (for the security events), with the
/// default [`inventory::server::Limits`]: a request head must arrive
/// within 5 s, a request be handled within 15 s, and connections still
/// open 5 s after `shutdown` are closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    inventory::server::serve(
        listener,
        router,
        shutdown,
        inventory::server::Limits::default(),
    )
    .await
}
