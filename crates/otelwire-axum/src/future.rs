//! [`ResponseFuture`], the response future of [`Otel`](crate::Otel).

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::Response;

use crate::completion::InFlight;

pin_project_lite::pin_project! {
    /// The response future of [`Otel`](crate::Otel): the inner future,
    /// polled inside the request's span, then the outcome recorded on the
    /// span and metrics.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        pub(crate) inner: Either<
            futures_util::future::CatchUnwind<AssertUnwindSafe<F>>,
            std::future::Ready<Result<F::Output, Box<dyn std::any::Any + Send>>>,
        >,
        pub(crate) span: tracing::Span,
        pub(crate) in_flight: Option<InFlight>,
    }

    impl<F: Future> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the response (the client went away): the
            // request is no longer active.
            if let Some(state) = this.project().in_flight.take() {
                state.add_active(-1);
            }
        }
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, Infallible>>,
    ResB: Default,
{
    type Output = Result<Response<ResB>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // One enter per poll, and the completion inside the same one.
        let _enter = this.span.enter();
        let outcome = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome.map(|r| match r {
                Ok(response) => response,
                Err(never) => match never {},
            }),
        };
        let state = this
            .in_flight
            .take()
            .expect("ResponseFuture polled after completion");
        Poll::Ready(Ok(state.finish(this.span, outcome)))
    }
}
