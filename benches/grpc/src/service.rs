//! The bench service `bench.v1.Hello/Say`, hand-written over tonic's prost
//! codec, and its client over each variant's channel.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

/// What the caller sends.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// The answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Say;

impl UnaryService<HelloRequest> for Say {
    type Response = HelloReply;
    type Future = BoxFuture<Result<tonic::Response<HelloReply>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let name = request.into_inner().name;
        Box::pin(async move {
            Ok(tonic::Response::new(HelloReply {
                message: format!("hello {name}"),
            }))
        })
    }
}

/// The server side of `bench.v1.Hello`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hello;

impl NamedService for Hello {
    const NAME: &'static str = "bench.v1.Hello";
}

impl tower::Service<http::Request<tonic::body::Body>> for Hello {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let say = req.uri().path() == "/bench.v1.Hello/Say";
        Box::pin(async move {
            Ok(if say {
                Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default())
                    .unary(Say, req)
                    .await
            } else {
                tonic::Status::unimplemented("no such method").into_http()
            })
        })
    }
}

type OtelwireChannel = otelwire_tonic::OtelClient<Channel>;
type PeerChannel = tonic_tracing_opentelemetry::middleware::client::OtelGrpcService<Channel>;

/// A client of `bench.v1.Hello` over one variant's channel (an enum, not a
/// boxed service, so that no variant pays for a box the others do not).
#[derive(Debug, Clone)]
pub enum Client {
    /// Over a bare channel.
    Bare(tonic::client::Grpc<Channel>),
    /// Over otelwire-tonic's client layer.
    Otelwire(tonic::client::Grpc<OtelwireChannel>),
    /// Over tonic-tracing-opentelemetry's client layer.
    Peer(tonic::client::Grpc<PeerChannel>),
}

async fn say<T>(grpc: &mut tonic::client::Grpc<T>) -> Result<HelloReply, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.into().to_string()))?;
    let request = tonic::Request::new(HelloRequest {
        name: "world".into(),
    });
    let reply = grpc
        .unary(
            request,
            PathAndQuery::from_static("/bench.v1.Hello/Say"),
            ProstCodec::<HelloRequest, HelloReply>::default(),
        )
        .await?;
    Ok(reply.into_inner())
}

impl Client {
    pub(crate) fn bare(channel: Channel) -> Client {
        Client::Bare(tonic::client::Grpc::new(channel))
    }

    pub(crate) fn otelwire(channel: OtelwireChannel) -> Client {
        Client::Otelwire(tonic::client::Grpc::new(channel))
    }

    pub(crate) fn peer(channel: PeerChannel) -> Client {
        Client::Peer(tonic::client::Grpc::new(channel))
    }

    /// One `Say` call; panics if it fails (a bench measures successes).
    pub async fn say(&mut self) -> HelloReply {
        match self {
            Client::Bare(g) => say(g).await,
            Client::Otelwire(g) => say(g).await,
            Client::Peer(g) => say(g).await,
        }
        .expect("the call succeeds")
    }
}
