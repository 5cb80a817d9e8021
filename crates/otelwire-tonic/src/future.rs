//! The response future of a traced RPC: the inner future polled inside the
//! RPC's span; on its answer, the status from the headers (Trailers-Only)
//! and the body handed to [`ResponseBody`]; on a transport error or a
//! panic, the RPC ends there.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::{CatchUnwind, Either, Ready};
use http::{HeaderName, HeaderValue, Response};

use crate::BoxError;
use crate::body::ResponseBody;
use crate::call::{Call, Outcome};
use crate::status::{self, Side};

/// What the future does with the response besides reading its status.
#[derive(Debug, Default)]
pub(crate) struct OnResponse {
    /// Echoed as `x-request-id` (server).
    pub(crate) request_id: Option<HeaderValue>,
    /// Allow-listed response metadata to record.
    pub(crate) capture: Vec<HeaderName>,
}

type Inner<F> = Either<
    CatchUnwind<AssertUnwindSafe<F>>,
    Ready<Result<<F as Future>::Output, Box<dyn Any + Send>>>,
>;

pin_project_lite::pin_project! {
    /// The response future of [`OtelServer`](crate::OtelServer) and
    /// [`OtelClient`](crate::OtelClient).
    pub struct ResponseFuture<F: Future> {
        #[pin]
        inner: Inner<F>,
        call: Option<Call>,
        on_response: OnResponse,
    }

    impl<F: Future> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the answer: the caller went away.
            if let Some(call) = this.project().call.take() {
                call.end();
            }
        }
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

impl<F: Future> ResponseFuture<F> {
    /// Calls `call_inner` inside the RPC's span (catching a panic), and
    /// watches its future; with no `call`, passes it through.
    pub(crate) fn new(
        call: Option<Call>,
        on_response: OnResponse,
        call_inner: impl FnOnce() -> F,
    ) -> Self {
        let called = match &call {
            Some(c) => {
                let _enter = c.span.enter();
                std::panic::catch_unwind(AssertUnwindSafe(call_inner))
            }
            None => Ok(call_inner()),
        };
        ResponseFuture {
            inner: match called {
                Ok(fut) => Either::Left(AssertUnwindSafe(fut).catch_unwind()),
                Err(panic) => Either::Right(futures_util::future::ready(Err(panic))),
            },
            call,
            on_response,
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".to_owned())
}

/// `error.type` of a transport error, from its chain of sources.
pub(crate) fn error_kind(error: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<tonic::TimeoutExpired>() {
            return "timeout";
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return match io.kind() {
                ConnectionRefused | NotConnected | AddrNotAvailable => "connect",
                TimedOut => "timeout",
                _ => "io",
            };
        }
        next = e.source();
    }
    "transport"
}

/// A Trailers-Only `INTERNAL` answer, for a handler that panicked.
fn internal<B>() -> Response<ResponseBody<B>> {
    let mut r = Response::new(ResponseBody::empty());
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from_static("13"));
    h.insert(
        "grpc-message",
        HeaderValue::from_static("handler%20panicked"),
    );
    r
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.call.as_ref() {
            Some(c) => c.span.in_scope(|| this.inner.poll(cx)),
            None => this.inner.poll(cx),
        };
        let outcome = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        let call = this.call.take();
        match outcome {
            Ok(Ok(mut response)) => {
                if let Some(id) = this.on_response.request_id.take() {
                    response
                        .headers_mut()
                        .insert(crate::request_id::X_REQUEST_ID, id);
                }
                let call = call.map(|mut call| {
                    crate::metadata::record(
                        &call.span,
                        otelwire::opentelemetry_semantic_conventions::attribute::RPC_RESPONSE_METADATA,
                        &this.on_response.capture,
                        response.headers(),
                    );
                    let code = status::from_headers(response.headers())
                        .or_else(|| status::from_http_status(response.status()));
                    if let Some(code) = code {
                        let message =
                            status::message_for(response.headers(), call.shared.side, code);
                        call.status = Some((code, message));
                    }
                    call
                });
                Poll::Ready(Ok(response.map(|b| ResponseBody::new(b, call))))
            }
            Ok(Err(e)) => {
                let e: BoxError = e.into();
                if let Some(call) = call {
                    call.finish(Outcome::Transport(error_kind(&*e)));
                }
                Poll::Ready(Err(e))
            }
            Err(panic) => {
                let Some(call) = call else {
                    std::panic::resume_unwind(panic)
                };
                let side = call.shared.side;
                call.finish(Outcome::Panic(panic_message(&*panic)));
                if side == Side::Client {
                    std::panic::resume_unwind(panic)
                }
                let mut r = internal();
                if let Some(id) = this.on_response.request_id.take() {
                    r.headers_mut().insert(crate::request_id::X_REQUEST_ID, id);
                }
                Poll::Ready(Ok(r))
            }
        }
    }
}
