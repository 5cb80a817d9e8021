//! The response body of a traced RPC: it counts the response messages,
//! reads the status from the trailers, and ends the RPC when the stream
//! ends, fails or is dropped (then `CANCELLED`), not when headers arrive.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};

use crate::call::{Call, Entered, Outcome};
use crate::framing::Framing;
use crate::status;

pin_project_lite::pin_project! {
    /// The response body of [`OtelServer`](crate::OtelServer) and
    /// [`OtelClient`](crate::OtelClient): the inner body, polled inside
    /// the RPC's span, unchanged.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Option<B>,
        call: Option<Call>,
        framing: Framing,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.end();
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B> {
    /// `inner` watched for `call` (none: passed through untouched).
    pub(crate) fn new(inner: B, call: Option<Call>) -> Self {
        ResponseBody {
            inner: Some(inner),
            call,
            framing: Framing::default(),
        }
    }

    /// An empty body (a Trailers-Only answer the layer made itself).
    pub(crate) fn empty() -> Self {
        ResponseBody {
            inner: None,
            call: None,
            framing: Framing::default(),
        }
    }
}

/// The trailers of an RPC whose handler panicked mid-stream.
fn internal_trailers() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("13"));
    t.insert(
        "grpc-message",
        HeaderValue::from_static("handler%20panicked"),
    );
    t
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let Some(call) = this.call.as_ref() else {
            return inner.poll_frame(cx);
        };
        // A streaming handler runs while its body is polled: its work and
        // its logs belong to the RPC's span. Entered by id, so that the
        // call can end while the span is entered; its handle goes after
        // the exit.
        let mut entered = Entered::new(&call.span);
        let polled = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll_frame(cx))) {
            Ok(polled) => polled,
            Err(panic) => {
                this.inner.set(None);
                if let Some(call) = this.call.take() {
                    entered.keep(
                        call.finish_in(Outcome::Panic(crate::future::panic_message(&*panic)), true),
                    );
                }
                return Poll::Ready(Some(Ok(Frame::trailers(internal_trailers()))));
            }
        };
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = this.framing.feed(data);
                    if let Some(call) = this.call.as_ref() {
                        call.counts.responses.fetch_add(n, Ordering::Relaxed);
                    }
                } else if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    let outcome = match status::from_headers(trailers) {
                        Some(code) => Outcome::Status(
                            code,
                            status::message_for(trailers, call.shared.side, code),
                        ),
                        None => match call.status.clone() {
                            Some((code, message)) => Outcome::Status(code, message),
                            None => Outcome::Status(tonic::Code::Unknown, None),
                        },
                    };
                    entered.keep(call.finish_in(outcome, true));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(call) = this.call.take() {
                    entered.keep(
                        call.finish_in(Outcome::Transport(crate::future::error_kind(&e)), true),
                    );
                }
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                if let Some(mut call) = this.call.take() {
                    // Ended without trailers: the status came in the
                    // headers, or there was none.
                    let (code, message) =
                        call.status.take().unwrap_or((tonic::Code::Unknown, None));
                    entered.keep(call.finish_in(Outcome::Status(code, message), true));
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
