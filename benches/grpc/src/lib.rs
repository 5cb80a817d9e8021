//! The three stacks the gRPC bench compares, each a tonic server and a
//! client of it on loopback, in one current-thread tokio runtime (so that
//! one thread does all of an RPC's work and `tracing`'s thread-local
//! default subscriber covers both sides):
//!
//! - [`Variant::Bare`]: no instrumentation;
//! - [`Variant::Otelwire`]: otelwire-tonic's `OtelServerLayer` and
//!   `OtelClientLayer` under an otelwire pipeline with no-op exporters
//!   (a span per side, a completion log record per side, the call-duration
//!   histograms);
//! - [`Variant::Peer`]: tonic-tracing-opentelemetry 0.42's server and
//!   client `OtelGrpcLayer`s under tracing-opentelemetry with a no-op span
//!   exporter (a span per side, nothing else), its spans at INFO
//!   (`tracing_level_info`).
//!
//! Both instrumented variants use the same batch settings (queue 65,536,
//! 100 ms delay), the W3C propagator and an INFO filter (otelwire's
//! default `RUST_LOG`; for the peer a `LevelFilter`), so that neither pays
//! for h2's and tonic's TRACE events.

mod exporter;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use otelwire::opentelemetry::trace::TracerProvider as _;
use otelwire::opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider,
};
use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_test::noop::{NoopLogs, NoopMetrics, NoopSpans};
use tower::Layer;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

use crate::exporter::CountingSpans;

pub use service::{Client, HelloReply, HelloRequest};

/// The batch queue of every instrumented variant: large enough that a
/// tight loop measures the normal path, not drops.
const QUEUE: usize = 1 << 16;
/// The batch schedule of every instrumented variant.
const DELAY: Duration = Duration::from_millis(100);

/// One of the stacks compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// tonic alone.
    Bare,
    /// otelwire-tonic's server and client layers, no-op exporters.
    Otelwire,
    /// tonic-tracing-opentelemetry's server and client layers, no-op exporter.
    Peer,
    /// Bench only, for the breakdown: [`Variant::Otelwire`] without the
    /// completion log records.
    OtelwireNoLog,
    /// Bench only: [`Variant::Otelwire`] without a meter (no histograms).
    OtelwireNoMetrics,
}

impl Variant {
    /// Every variant, in the order the bench runs them.
    pub const ALL: [Variant; 3] = [Variant::Bare, Variant::Otelwire, Variant::Peer];
    /// The bench-only variants (`count` runs them; `callgrind` does not).
    pub const PARTS: [Variant; 2] = [Variant::OtelwireNoLog, Variant::OtelwireNoMetrics];

    /// The variant's name in the bench's output.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Bare => "bare",
            Variant::Otelwire => "otelwire_tonic",
            Variant::Peer => "tonic_tracing_otel",
            Variant::OtelwireNoLog => "otelwire_tonic_nolog",
            Variant::OtelwireNoMetrics => "otelwire_tonic_nometrics",
        }
    }

    /// The variant named `name`.
    pub fn from_name(name: &str) -> Option<Variant> {
        Variant::ALL
            .into_iter()
            .chain(Variant::PARTS)
            .find(|v| v.name() == name)
    }
}

/// A running stack: its runtime, the server on it, a connected client and
/// the subscriber to make the default while calling.
#[derive(Debug)]
pub struct Stack {
    /// The runtime the server and the client run on.
    pub rt: tokio::runtime::Runtime,
    /// A client of the server, connected.
    pub client: Client,
    /// The subscriber of the variant (none for [`Variant::Bare`]).
    pub dispatch: Dispatch,
    telemetry: Option<Telemetry>,
    provider: Option<(SdkTracerProvider, Arc<AtomicU64>)>,
}

fn otelwire_telemetry() -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("grpc-bench")
        .log_format(LogFormat::None)
        .process_metrics(false)
        .max_queue_size(Signal::Traces, QUEUE)
        .max_queue_size(Signal::Logs, QUEUE)
        .scheduled_delay(Signal::Traces, DELAY)
        .scheduled_delay(Signal::Logs, DELAY)
        .span_exporter(NoopSpans)
        .log_exporter(NoopLogs)
        .metric_exporter(NoopMetrics)
        .build()
        .expect("otelwire builds")
}

fn peer_provider(exported: Arc<AtomicU64>) -> SdkTracerProvider {
    let processor = BatchSpanProcessor::builder(CountingSpans(exported))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_scheduled_delay(DELAY)
                .build(),
        )
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build()
}

impl Stack {
    /// Starts `variant`'s server on a free loopback port and connects a
    /// client to it.
    pub fn start(variant: Variant) -> Stack {
        // Both instrumented sides propagate with the global propagator.
        otelwire::opentelemetry::global::set_text_map_propagator(
            otelwire::opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let (mut telemetry, mut provider) = (None, None);
        let dispatch = match variant {
            Variant::Bare => Dispatch::none(),
            Variant::Otelwire | Variant::OtelwireNoLog | Variant::OtelwireNoMetrics => {
                let t = otelwire_telemetry();
                let d = t.dispatch().clone();
                telemetry = Some(t);
                d
            }
            Variant::Peer => {
                let exported = Arc::new(AtomicU64::new(0));
                let p = peer_provider(Arc::clone(&exported));
                let subscriber = tracing_subscriber::registry()
                    .with(tracing_subscriber::filter::LevelFilter::INFO)
                    .with(
                        otelwire::tracing_opentelemetry::layer()
                            .with_tracer(p.tracer("grpc-bench")),
                    );
                provider = Some((p, exported));
                Dispatch::new(subscriber)
            }
        };
        let client = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let incoming = tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true));
            let mut server = tonic::transport::Server::builder();
            match variant {
                Variant::Bare => {
                    tokio::spawn(
                        server
                            .add_service(service::Hello)
                            .serve_with_incoming(incoming),
                    );
                }
                Variant::Otelwire | Variant::OtelwireNoLog | Variant::OtelwireNoMetrics => {
                    let mut layer = otelwire_tonic::OtelServerLayer::new()
                        .completion_log(variant != Variant::OtelwireNoLog);
                    if variant != Variant::OtelwireNoMetrics {
                        layer = layer
                            .meter(telemetry.as_ref().expect("otelwire").meter("otelwire-tonic"));
                    }
                    tokio::spawn(
                        server
                            .layer(layer)
                            .add_service(service::Hello)
                            .serve_with_incoming(incoming),
                    );
                }
                Variant::Peer => {
                    tokio::spawn(
                        server
                            .layer(tonic_tracing_opentelemetry::middleware::server::OtelGrpcLayer::default())
                            .add_service(service::Hello)
                            .serve_with_incoming(incoming),
                    );
                }
            }
            let channel = channel(addr).await;
            match variant {
                Variant::Bare => Client::bare(channel),
                Variant::Otelwire | Variant::OtelwireNoLog | Variant::OtelwireNoMetrics => {
                    let uri: http::Uri = format!("http://{addr}").parse().expect("a URI");
                    // Without `meter`, the global meter: a no-op one here.
                    let mut layer = otelwire_tonic::OtelClientLayer::new()
                        .completion_log(variant != Variant::OtelwireNoLog);
                    if variant != Variant::OtelwireNoMetrics {
                        layer = layer
                            .meter(telemetry.as_ref().expect("otelwire").meter("otelwire-tonic"));
                    }
                    Client::otelwire(layer.server_uri(&uri).layer(channel))
                }
                Variant::Peer => Client::peer(
                    tonic_tracing_opentelemetry::middleware::client::OtelGrpcLayer.layer(channel),
                ),
            }
        });
        Stack {
            rt,
            client,
            dispatch,
            telemetry,
            provider,
        }
    }

    /// `n` calls, one after the other, under the variant's subscriber.
    pub fn calls(&self, n: u64) {
        let _default = tracing::dispatcher::set_default(&self.dispatch);
        let mut client = self.client.clone();
        self.rt.block_on(async {
            for _ in 0..n {
                std::hint::black_box(client.say().await);
            }
        });
    }

    /// Flushes and shuts down the variant's pipeline; says what it exported.
    pub fn shutdown(self) -> String {
        if let Some(t) = self.telemetry {
            return t.shutdown_blocking().to_string();
        }
        if let Some((p, exported)) = self.provider {
            let _ = p.shutdown();
            return format!("traces exported={}", exported.load(Ordering::Relaxed));
        }
        "no telemetry".into()
    }
}

async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("the server answers")
}
