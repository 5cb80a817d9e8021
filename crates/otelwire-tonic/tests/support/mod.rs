//! The test service `test.v1.Echo` (and stand-ins for `grpc.health.v1.Health`
//! and both reflection services), hand-written over tonic's prost codec, its
//! client, and a telemetry that exports to an in-process collector.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_test::Collector;
use tonic::server::{
    ClientStreamingService, Grpc, NamedService, ServerStreamingService, StreamingService,
    UnaryService,
};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tower::Layer;

/// What the caller asks the service to do.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ask {
    /// The status code to end with (0: OK).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Messages to stream before the status.
    #[prost(uint32, tag = "2")]
    pub messages: u32,
    /// `panic` (a unary handler, or a stream after its messages), or `hang`
    /// (a stream that never ends after its messages).
    #[prost(string, tag = "3")]
    pub action: String,
    /// Work between two streamed messages, in milliseconds.
    #[prost(uint32, tag = "4")]
    pub pause_ms: u32,
    /// The status message to end with, instead of the default one.
    #[prost(string, tag = "5")]
    pub message: String,
    /// Bytes that only make the message bigger.
    #[prost(bytes = "vec", tag = "6")]
    pub pad: Vec<u8>,
}

/// One answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    /// Its place in the stream.
    #[prost(uint32, tag = "1")]
    pub seq: u32,
}

impl Ask {
    pub fn code(code: Code) -> Self {
        Ask {
            code: code as i32,
            ..Ask::default()
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type ReplyStream = Pin<Box<dyn futures_util::Stream<Item = Result<Reply, Status>> + Send>>;

fn status(ask: &Ask) -> Status {
    let code = ask.code;
    let message = if ask.message.is_empty() {
        format!("asked for {code}: card 4111-1111")
    } else {
        ask.message.clone()
    };
    Status::new(Code::from_i32(code), message)
}

/// The baggage of the current span's context, as `key=value,…`.
fn baggage_seen() -> String {
    use otelwire::opentelemetry::baggage::BaggageExt;
    use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    let mut pairs: Vec<String> = cx
        .baggage()
        .iter()
        .map(|(k, (v, _))| format!("{k}={v}"))
        .collect();
    pairs.sort();
    pairs.join(",")
}

struct Unary;

impl UnaryService<Ask> for Unary {
    type Response = Reply;
    type Future = BoxFuture<Result<tonic::Response<Reply>, Status>>;

    fn call(&mut self, request: tonic::Request<Ask>) -> Self::Future {
        let ask = request.into_inner();
        Box::pin(async move {
            tracing::info!("answering");
            if ask.action == "panic" && std::hint::black_box(true) {
                panic!("the handler fell over");
            }
            match ask.code {
                0 => {
                    let mut response = tonic::Response::new(Reply { seq: 0 });
                    // What the handler's context carries, for the caller to see.
                    let baggage = baggage_seen();
                    if let Ok(v) = baggage.parse() {
                        response.metadata_mut().insert("x-baggage-seen", v);
                    }
                    Ok(response)
                }
                _ => Err(status(&ask)),
            }
        })
    }
}

struct Watch;

impl ServerStreamingService<Ask> for Watch {
    type Response = Reply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<Result<tonic::Response<ReplyStream>, Status>>;

    fn call(&mut self, request: tonic::Request<Ask>) -> Self::Future {
        let ask = request.into_inner();
        Box::pin(async move {
            let stream = futures_util::stream::unfold(0u32, move |seq| {
                let ask = ask.clone();
                async move {
                    if seq < ask.messages {
                        if seq > 0 && ask.pause_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(ask.pause_ms.into())).await;
                        }
                        return Some((Ok(Reply { seq }), seq + 1));
                    }
                    if ask.action == "hang" {
                        std::future::pending::<()>().await;
                    }
                    if ask.action == "panic" && std::hint::black_box(true) {
                        panic!("the stream fell over");
                    }
                    if seq == ask.messages && ask.code != 0 {
                        return Some((Err(status(&ask)), seq + 1));
                    }
                    None
                }
            });
            Ok(tonic::Response::new(Box::pin(stream) as ReplyStream))
        })
    }
}

/// Client streaming: reads every request, answers how many there were (or
/// the status the last one asks for).
struct Collect;

impl ClientStreamingService<Ask> for Collect {
    type Response = Reply;
    type Future = BoxFuture<Result<tonic::Response<Reply>, Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Ask>>) -> Self::Future {
        let mut asks = request.into_inner();
        Box::pin(async move {
            let mut seen = 0;
            let mut last = Ask::default();
            while let Some(ask) = asks.message().await? {
                seen += 1;
                last = ask;
            }
            match last.code {
                0 => Ok(tonic::Response::new(Reply { seq: seen })),
                _ => Err(status(&last)),
            }
        })
    }
}

/// Bidirectional streaming: each request is answered with as many replies
/// as its `messages` asks for, as it arrives.
struct Chat;

impl StreamingService<Ask> for Chat {
    type Response = Reply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<Result<tonic::Response<ReplyStream>, Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Ask>>) -> Self::Future {
        let asks = request.into_inner();
        Box::pin(async move {
            let stream = futures_util::stream::unfold(
                (asks, 0u32, 0u32),
                |(mut asks, mut owed, mut seq)| async move {
                    while owed == 0 {
                        match asks.message().await {
                            Ok(Some(ask)) => owed = ask.messages,
                            Ok(None) => return None,
                            Err(e) => return Some((Err(e), (asks, 0, seq))),
                        }
                    }
                    seq += 1;
                    Some((Ok(Reply { seq: seq - 1 }), (asks, owed - 1, seq)))
                },
            );
            Ok(tonic::Response::new(Box::pin(stream) as ReplyStream))
        })
    }
}

async fn route(
    path: &str,
    req: http::Request<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    match path {
        "Unary" | "Check" => {
            Grpc::new(ProstCodec::<Reply, Ask>::default())
                .unary(Unary, req)
                .await
        }
        "Watch" => {
            Grpc::new(ProstCodec::<Reply, Ask>::default())
                .server_streaming(Watch, req)
                .await
        }
        "Collect" => {
            Grpc::new(ProstCodec::<Reply, Ask>::default())
                .client_streaming(Collect, req)
                .await
        }
        // Reflection is a bidirectional stream too.
        "Chat" | "ServerReflectionInfo" => {
            Grpc::new(ProstCodec::<Reply, Ask>::default())
                .streaming(Chat, req)
                .await
        }
        _ => Status::unimplemented("no such method").into_http(),
    }
}

macro_rules! service {
    ($ty:ident, $name:literal) => {
        #[derive(Clone, Default)]
        pub struct $ty;

        impl NamedService for $ty {
            const NAME: &'static str = $name;
        }

        impl tower::Service<http::Request<tonic::body::Body>> for $ty {
            type Response = http::Response<tonic::body::Body>;
            type Error = Infallible;
            type Future = BoxFuture<Result<Self::Response, Infallible>>;

            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
                let method = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
                Box::pin(async move { Ok(route(&method, req).await) })
            }
        }
    };
}

service!(Echo, "test.v1.Echo");
service!(Health, "grpc.health.v1.Health");
service!(Reflection, "grpc.reflection.v1.ServerReflection");
service!(ReflectionAlpha, "grpc.reflection.v1alpha.ServerReflection");

/// Serves Echo, Health and the reflection services behind `layer` on a free
/// loopback port.
pub async fn serve(layer: otelwire_tonic::OtelServerLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(Echo)
            .add_service(Health)
            .add_service(Reflection)
            .add_service(ReflectionAlpha)
            .serve_with_incoming(incoming),
    );
    addr
}

/// Serves as [`serve`] does, behind an `OtelServerLayer` that records its
/// metrics with `t`.
pub async fn serve_traced(t: &Telemetry) -> SocketAddr {
    serve(otelwire_tonic::OtelServerLayer::new().meter(t.meter("otelwire-tonic"))).await
}

/// A channel to `addr`.
pub async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// The client of Echo (and of any path, to call what is not there).
pub struct Client<T>(tonic::client::Grpc<T>);

impl<T> Client<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<StdError> + Send,
{
    pub fn new(service: T) -> Self {
        Client(tonic::client::Grpc::new(service))
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.0
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.into().to_string()))
    }

    pub async fn call(
        &mut self,
        path: &'static str,
        request: impl tonic::IntoRequest<Ask>,
    ) -> Result<tonic::Response<Reply>, Status> {
        self.ready().await?;
        self.0
            .unary(
                request.into_request(),
                PathAndQuery::from_static(path),
                ProstCodec::<Ask, Reply>::default(),
            )
            .await
    }

    pub async fn unary(
        &mut self,
        request: impl tonic::IntoRequest<Ask>,
    ) -> Result<tonic::Response<Reply>, Status> {
        self.call("/test.v1.Echo/Unary", request).await
    }

    pub async fn watch(
        &mut self,
        request: impl tonic::IntoRequest<Ask>,
    ) -> Result<tonic::Response<tonic::Streaming<Reply>>, Status> {
        self.ready().await?;
        self.0
            .server_streaming(
                request.into_request(),
                PathAndQuery::from_static("/test.v1.Echo/Watch"),
                ProstCodec::<Ask, Reply>::default(),
            )
            .await
    }

    /// Client streaming: `asks` in, one reply out.
    pub async fn collect(&mut self, asks: Vec<Ask>) -> Result<tonic::Response<Reply>, Status> {
        self.ready().await?;
        self.0
            .client_streaming(
                tonic::Request::new(futures_util::stream::iter(asks)),
                PathAndQuery::from_static("/test.v1.Echo/Collect"),
                ProstCodec::<Ask, Reply>::default(),
            )
            .await
    }

    /// Bidirectional streaming at `path`: the requests `asks` yields in,
    /// the replies out.
    pub async fn chat<S>(
        &mut self,
        path: &'static str,
        asks: S,
    ) -> Result<tonic::Response<tonic::Streaming<Reply>>, Status>
    where
        S: futures_util::Stream<Item = Ask> + Send + 'static,
    {
        self.ready().await?;
        self.0
            .streaming(
                tonic::Request::new(asks),
                PathAndQuery::from_static(path),
                ProstCodec::<Ask, Reply>::default(),
            )
            .await
    }
}

/// A client of the server at `addr` through an `OtelClientLayer` that
/// records its metrics with `t`.
pub async fn traced_client(
    t: &Telemetry,
    addr: SocketAddr,
) -> Client<otelwire_tonic::OtelClient<tonic::transport::Channel>> {
    Client::new(
        otelwire_tonic::OtelClientLayer::new()
            .meter(t.meter("otelwire-tonic"))
            .layer(channel(addr).await),
    )
}

/// As [`traced_client`], with the layer also given the server's URI
/// (`http://{addr}`), for `server.address` and `server.port`.
pub async fn traced_client_with_uri(
    t: &Telemetry,
    addr: SocketAddr,
) -> Client<otelwire_tonic::OtelClient<tonic::transport::Channel>> {
    let uri: http::Uri = format!("http://{addr}").parse().unwrap();
    Client::new(
        otelwire_tonic::OtelClientLayer::new()
            .meter(t.meter("otelwire-tonic"))
            .server_uri(&uri)
            .layer(channel(addr).await),
    )
}

/// A builder that exports to `collector` quickly; metrics on `force_flush`
/// or shutdown. Its environment is the process's until the caller sets
/// `env_source`.
pub fn builder(collector: &Collector) -> otelwire::Builder {
    otelwire::builder()
        .service_name("tonic-test")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(50))
        .scheduled_delay(Signal::Logs, Duration::from_millis(50))
        .metric_export_interval(Duration::from_secs(60))
        .process_metrics(false)
}

/// A telemetry that exports to `collector` quickly, with no environment;
/// metrics on `force_flush` or shutdown.
pub fn telemetry(collector: &Collector) -> Telemetry {
    builder(collector).env_source(|_| None).build().unwrap()
}

/// Waits until `count` spans match `pred`.
pub async fn spans(
    collector: &Collector,
    count: usize,
    pred: impl Fn(&otelwire_test::Span) -> bool,
) -> Vec<otelwire_test::Span> {
    collector
        .wait_for_spans(count, pred, Duration::from_secs(15))
        .await
        .unwrap()
}

/// The names of the spans `collector` received whose `server.port` is
/// `port`, sorted.
pub fn span_names_on_port(collector: &Collector, port: u16) -> Vec<String> {
    let mut names: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|s| s.attributes.get_i64("server.port") == Some(i64::from(port)))
        .map(|s| s.name)
        .collect();
    names.sort();
    names
}
