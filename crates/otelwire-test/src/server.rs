//! The gRPC and HTTP receivers, on a runtime of the collector's own.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;

use crate::model::{self, Transport};
use crate::{Mode, Shared};

const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Whether a request may be stored, after the mode had its say.
pub(crate) enum Admission {
    Accept,
    Refuse,
    /// The server stopped while the request hung: drop it unanswered.
    Gone,
}

pub(crate) async fn admit(shared: &Shared) -> Admission {
    let generation = shared.generation();
    let mut wake = shared.wake.subscribe();
    loop {
        if shared.generation() != generation {
            return Admission::Gone;
        }
        match shared.mode() {
            Mode::Accept => return Admission::Accept,
            Mode::Refuse => {
                shared.with_data(|d| d.stats.refused += 1);
                return Admission::Refuse;
            }
            Mode::Delay(d) => {
                tokio::time::sleep(d).await;
                return Admission::Accept;
            }
            Mode::Hang => {
                if wake.changed().await.is_err() {
                    return Admission::Gone;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// gRPC

#[derive(Clone)]
struct Grpc(Arc<Shared>);

impl Grpc {
    async fn gate(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), tonic::Status> {
        match admit(&self.0).await {
            Admission::Accept => {
                let headers = header_pairs(&metadata.clone().into_headers());
                self.0.with_data(|d| {
                    d.stats.grpc_requests += 1;
                    d.headers.push(headers);
                });
                Ok(())
            }
            Admission::Refuse => Err(tonic::Status::unavailable(
                "otelwire-test collector: refusing (Mode::Refuse)",
            )),
            Admission::Gone => Err(tonic::Status::unavailable(
                "otelwire-test collector: stopped",
            )),
        }
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.gate(request.metadata()).await?;
        self.0
            .add_spans(model::spans(request.get_ref(), Transport::Grpc));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.gate(request.metadata()).await?;
        self.0
            .add_logs(model::logs(request.get_ref(), Transport::Grpc));
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.gate(request.metadata()).await?;
        self.0
            .add_metrics(model::metric_points(request.get_ref(), Transport::Grpc));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

pub(crate) fn grpc_router(shared: Arc<Shared>) -> axum::Router {
    let svc = Grpc(shared);
    let traces = TraceServiceServer::new(svc.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE);
    let logs = LogsServiceServer::new(svc.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE);
    let metrics = MetricsServiceServer::new(svc)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE);
    tonic::service::Routes::new(traces)
        .add_service(logs)
        .add_service(metrics)
        .prepare()
        .into_axum_router()
}

// ---------------------------------------------------------------------------
// HTTP

#[derive(Clone, Copy)]
enum Encoding {
    Protobuf,
    Json,
}

type Rejection = (StatusCode, String);

fn bad_request(msg: String) -> Rejection {
    (StatusCode::BAD_REQUEST, msg)
}

/// Decodes the body per `Content-Encoding` and `Content-Type`.
fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(T, Encoding), Rejection> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let mut inflated = Vec::new();
    let body = if gzip {
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut inflated)
            .map_err(|e| bad_request(format!("invalid gzip body: {e}")))?;
        &inflated[..]
    } else {
        body
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/x-protobuf") {
        T::decode(body)
            .map(|m| (m, Encoding::Protobuf))
            .map_err(|e| bad_request(format!("invalid protobuf body: {e}")))
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(body)
            .map(|m| (m, Encoding::Json))
            .map_err(|e| bad_request(format!("invalid OTLP/JSON body: {e}")))
    } else {
        Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type {content_type:?}: use application/x-protobuf or application/json"
            ),
        ))
    }
}

fn reply<R: Message + Default>(encoding: Encoding) -> Response {
    match encoding {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            R::default().encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => ([(header::CONTENT_TYPE, "application/json")], "{}").into_response(),
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn http_gate(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    match admit(shared).await {
        Admission::Accept => {
            let headers = header_pairs(headers);
            shared.with_data(|d| {
                d.stats.http_requests += 1;
                d.headers.push(headers);
            });
            None
        }
        Admission::Refuse => Some(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "otelwire-test collector: refusing (Mode::Refuse)",
            )
                .into_response(),
        ),
        Admission::Gone => Some(StatusCode::SERVICE_UNAVAILABLE.into_response()),
    }
}

fn transport(e: Encoding) -> Transport {
    match e {
        Encoding::Protobuf => Transport::HttpProtobuf,
        Encoding::Json => Transport::HttpJson,
    }
}

async fn http_traces(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, enc) = match decode::<ExportTraceServiceRequest>(&headers, &body) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    if let Some(r) = http_gate(&shared, &headers).await {
        return r;
    }
    shared.add_spans(model::spans(&req, transport(enc)));
    reply::<ExportTraceServiceResponse>(enc)
}

async fn http_logs(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, enc) = match decode::<ExportLogsServiceRequest>(&headers, &body) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    if let Some(r) = http_gate(&shared, &headers).await {
        return r;
    }
    shared.add_logs(model::logs(&req, transport(enc)));
    reply::<ExportLogsServiceResponse>(enc)
}

async fn http_metrics(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, enc) = match decode::<ExportMetricsServiceRequest>(&headers, &body) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    if let Some(r) = http_gate(&shared, &headers).await {
        return r;
    }
    shared.add_metrics(model::metric_points(&req, transport(enc)));
    reply::<ExportMetricsServiceResponse>(enc)
}

pub(crate) fn http_router(shared: Arc<Shared>) -> axum::Router {
    use axum::routing::post;
    axum::Router::new()
        .route("/v1/traces", post(http_traces))
        .route("/v1/logs", post(http_logs))
        .route("/v1/metrics", post(http_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MESSAGE))
        .with_state(shared)
}

// ---------------------------------------------------------------------------
// Listening

/// Binds `addr`, retrying while the port is still held (a restart right
/// after a stop may race the old socket's close).
pub(crate) fn bind(addr: SocketAddr, patience: Duration) -> std::io::Result<std::net::TcpListener> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return Ok(l);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Accepts connections until aborted; aborting it drops the listener and
/// every connection task with it, so clients see the outage at once.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let tls = tls.clone();
                let shared = shared.clone();
                connections.spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            if let Some(cert) =
                                stream.get_ref().1.peer_certificates().and_then(|c| c.first())
                            {
                                let subject = crate::tls::subject_common_name(cert);
                                shared.with_data(|d| d.client_subjects.push(subject));
                            }
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
