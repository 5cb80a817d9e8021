//! The `pricing.v1.Pricing` service: quotes and a stream of price updates.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::Counter;
use tonic::{Request, Response, Status};
use tracing::{Instrument, error, info, info_span, warn};

use crate::catalogue::{CURRENCY, catalogue, drifted, valid_sku};
use crate::config::Config;
use crate::proto::{PriceUpdate, QuoteReply, QuoteRequest, WatchRequest};

/// The most items one quote prices.
pub const MAX_QUANTITY: u32 = 10_000;
/// The most items one watch follows.
pub const MAX_WATCHED: usize = 16;
/// The most updates per item one watch asks for.
pub const MAX_UPDATES: u32 = 100;
/// The longest pause between two rounds of a watch, in milliseconds.
pub const MAX_INTERVAL_MS: u32 = 10_000;

/// A quote for a sku named here takes this much longer (`PRICING_SLOW_SKUS`).
const SLOW: Duration = Duration::from_millis(600);

/// The service: implements the generated [`Pricing`](crate::proto::pricing_server::Pricing)
/// trait; serve it with [`crate::serve`].
#[derive(Debug, Clone)]
pub struct PricingService {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    prices: HashMap<&'static str, i64>,
    config: Config,
    quotes_seen: AtomicU64,
    quotes: Counter<u64>,
}

impl PricingService {
    /// The service with the [`catalogue`] and the misbehaviour of `config`;
    /// counts quotes by outcome in `pricing.quotes` on `telemetry`'s meter.
    pub fn new(telemetry: &otelwire::Telemetry, config: Config) -> Self {
        let quotes = telemetry
            .meter("pricing")
            .u64_counter("pricing.quotes")
            .with_description("Quotes by outcome.")
            .with_unit("{quote}")
            .build();
        PricingService {
            state: Arc::new(State {
                prices: catalogue().into_iter().collect(),
                config,
                quotes_seen: AtomicU64::new(0),
                quotes,
            }),
        }
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<PriceUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl crate::proto::pricing_server::Pricing for PricingService {
    async fn quote(&self, request: Request<QuoteRequest>) -> Result<Response<QuoteReply>, Status> {
        let s = &self.state;
        let QuoteRequest { sku, quantity } = request.into_inner();
        let outcome = |o: &'static str| s.quotes.add(1, &[KeyValue::new("outcome", o)]);
        if !valid_sku(&sku) {
            outcome("invalid");
            return Err(Status::invalid_argument("invalid sku"));
        }
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            outcome("invalid");
            return Err(Status::invalid_argument(format!(
                "quantity must be 1 to {MAX_QUANTITY}"
            )));
        }
        let n = s.quotes_seen.fetch_add(1, Ordering::Relaxed);
        let mut delay = s.config.latency;
        if s.config.slow_skus.contains(&sku) {
            delay += SLOW;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay)
                .instrument(info_span!("price_lookup", sku = %sku))
                .await;
        }
        if s.config.failing_skus.contains(&sku) || s.config.fails_by_rate(n) {
            outcome("error");
            error!(sku = %sku, "price source unavailable");
            return Err(Status::unavailable("price source unavailable"));
        }
        let Some(&unit) = s.prices.get(sku.as_str()) else {
            outcome("unknown");
            warn!(sku = %sku, "unknown item");
            return Err(Status::not_found(format!("unknown item {sku}")));
        };
        let total = unit * i64::from(quantity);
        outcome("priced");
        info!(sku = %sku, quantity, total_cents = total, "item priced");
        Ok(Response::new(QuoteReply {
            sku,
            quantity,
            unit_price_cents: unit,
            total_cents: total,
            currency: CURRENCY.to_owned(),
        }))
    }

    type WatchPricesStream = UpdateStream;

    async fn watch_prices(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<UpdateStream>, Status> {
        let s = &self.state;
        let WatchRequest {
            skus,
            updates,
            interval_ms,
        } = request.into_inner();
        if skus.is_empty() || skus.len() > MAX_WATCHED {
            return Err(Status::invalid_argument(format!(
                "watch 1 to {MAX_WATCHED} skus"
            )));
        }
        let updates = match updates {
            0 => 5,
            u if u <= MAX_UPDATES => u,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "updates must be at most {MAX_UPDATES}"
                )));
            }
        };
        let interval = match interval_ms {
            0 => Duration::from_millis(200),
            i if i <= MAX_INTERVAL_MS => Duration::from_millis(i.into()),
            _ => {
                return Err(Status::invalid_argument(format!(
                    "interval_ms must be at most {MAX_INTERVAL_MS}"
                )));
            }
        };
        let mut items = Vec::with_capacity(skus.len());
        for sku in skus {
            if !valid_sku(&sku) {
                return Err(Status::invalid_argument("invalid sku"));
            }
            if s.config.failing_skus.contains(&sku) {
                error!(sku = %sku, "price source unavailable");
                return Err(Status::unavailable("price source unavailable"));
            }
            let Some(&base) = s.prices.get(sku.as_str()) else {
                warn!(sku = %sku, "unknown item");
                return Err(Status::not_found(format!("unknown item {sku}")));
            };
            items.push((sku, base));
        }
        if !s.config.latency.is_zero() {
            tokio::time::sleep(s.config.latency)
                .instrument(info_span!("price_lookup", skus = items.len()))
                .await;
        }
        info!(skus = items.len(), updates, "watching prices");
        let items = Arc::new(items);
        let stream = futures_util::stream::iter(0..updates)
            .then(move |round| async move {
                if round > 0 {
                    tokio::time::sleep(interval).await;
                }
                round
            })
            .flat_map(move |round| {
                let items = Arc::clone(&items);
                futures_util::stream::iter((0..items.len()).map(move |i| {
                    let (sku, base) = &items[i];
                    Ok(PriceUpdate {
                        sku: sku.clone(),
                        unit_price_cents: drifted(*base, round, i),
                        round,
                    })
                }))
            });
        Ok(Response::new(Box::pin(stream)))
    }
}
