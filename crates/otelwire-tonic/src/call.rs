//! One RPC in flight, and what happens when it ends: the outcome on the
//! span, the completion log event and the duration metric, exactly once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use otelwire::opentelemetry_semantic_conventions::attribute as semconv;
use tonic::Code;
use tracing::field::Value;

use crate::bound::{Duration, Series};
use crate::framing::Counts;
use crate::status::{Side, code_name, is_server_error};

/// `otelwire.rpc.request_messages`: request messages of the RPC.
pub const REQUEST_MESSAGES: &str = "otelwire.rpc.request_messages";
/// `otelwire.rpc.response_messages`: response messages of the RPC.
pub const RESPONSE_MESSAGES: &str = "otelwire.rpc.response_messages";
/// `otelwire.rpc.status_message`: the `grpc-message` of a failed RPC,
/// percent-decoded, at most 256 characters, and recorded as a `tracing`
/// field so that otelwire's redaction and length limit apply.
pub const STATUS_MESSAGE: &str = "otelwire.rpc.status_message";

/// The completion log's message.
const COMPLETED: &str = "RPC completed";

/// How an RPC ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A `grpc-status`, with its `grpc-message`.
    Status(Code, Option<String>),
    /// Dropped before its status: the caller went away.
    Cancelled,
    /// The transport failed; the kind is `error.type`.
    Transport(&'static str),
    /// The handler panicked.
    Panic(String),
}

/// A span entered by its id rather than through a handle of its own,
/// exited on drop. The span must stay open until then: the handle of a
/// call ended while entered ([`Call::finish_in`]) is kept here
/// ([`Entered::keep`]) and dropped after the exit.
pub(crate) struct Entered {
    entered: Option<(tracing::Id, tracing::Dispatch)>,
    ended: Option<tracing::Span>,
}

impl Entered {
    pub(crate) fn new(span: &tracing::Span) -> Self {
        Entered {
            entered: span.with_subscriber(|(id, dispatch)| {
                dispatch.enter(id);
                (id.clone(), dispatch.clone())
            }),
            ended: None,
        }
    }

    /// Drops `span` only after the exit.
    pub(crate) fn keep(&mut self, span: tracing::Span) {
        self.ended = Some(span);
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some((id, dispatch)) = &self.entered {
            dispatch.exit(id);
        }
        // `ended` drops after this, closing the span once exited.
    }
}

/// What is shared by every RPC of one layer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) side: Side,
    pub(crate) duration: Duration,
    pub(crate) completion_log: bool,
}

/// An RPC in flight.
pub(crate) struct Call {
    pub(crate) shared: Arc<Shared>,
    pub(crate) span: tracing::Span,
    pub(crate) started: Instant,
    /// The duration's series, as far as the start knows it (method, server).
    pub(crate) series: Series,
    pub(crate) counts: Arc<Counts>,
    /// The status, once headers or trailers have told it.
    pub(crate) status: Option<(Code, Option<String>)>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("side", &self.shared.side)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// Ends the call with the status seen so far, or `CANCELLED`.
    pub(crate) fn end(mut self) {
        let outcome = match self.status.take() {
            Some((code, message)) => Outcome::Status(code, message),
            None => Outcome::Cancelled,
        };
        self.finish(outcome);
    }

    /// Records the outcome; the span ends when its last handle goes.
    pub(crate) fn finish(self, outcome: Outcome) {
        drop(self.finish_in(outcome, false));
    }

    /// [`finish`](Self::finish), from inside the call's span when `entered`
    /// (then the log event needs no second enter); returns the span's
    /// handle, to be dropped once the span is exited.
    #[must_use]
    pub(crate) fn finish_in(self, outcome: Outcome, entered: bool) -> tracing::Span {
        let Call {
            shared,
            span,
            started,
            series,
            counts,
            status: _,
        } = self;
        let elapsed = started.elapsed();
        let side = shared.side;
        let (code, message, error_type, panic) = match outcome {
            Outcome::Status(code, message) => {
                let error = side.is_error(code).then(|| code_name(code));
                (code, message, error, None)
            }
            Outcome::Cancelled => (
                Code::Cancelled,
                None,
                side.is_error(Code::Cancelled).then_some("CANCELLED"),
                None,
            ),
            Outcome::Transport(kind) => (Code::Unavailable, None, Some(kind), None),
            Outcome::Panic(msg) => (Code::Internal, None, Some("panic"), Some(msg)),
        };
        let name = code_name(code);
        record_outcome(
            &span,
            name,
            counts.requests.load(Ordering::Relaxed) as i64,
            counts.responses.load(Ordering::Relaxed) as i64,
            error_type.map(|e| (e, message.as_deref())),
        );

        let _enter = (!entered).then(|| span.enter());
        if let Some(msg) = &panic {
            tracing::error!(
                exception.message = %msg,
                { semconv::RPC_RESPONSE_STATUS_CODE } = name,
                "RPC handler panicked"
            );
        }
        if shared.completion_log {
            let ms = elapsed.as_secs_f64() * 1000.0;
            if code == Code::Ok {
                tracing::info!(
                    { semconv::RPC_RESPONSE_STATUS_CODE } = name,
                    duration_ms = ms,
                    message = COMPLETED,
                );
            } else if is_server_error(code) || panic.is_some() {
                tracing::error!(
                    { semconv::RPC_RESPONSE_STATUS_CODE } = name,
                    duration_ms = ms,
                    message = COMPLETED,
                );
            } else {
                tracing::warn!(
                    { semconv::RPC_RESPONSE_STATUS_CODE } = name,
                    duration_ms = ms,
                    message = COMPLETED,
                );
            }
        }
        drop(_enter);

        // A server does not know the methods it routes: an UNIMPLEMENTED
        // answer means the path is no method of it, and a scanner's random
        // paths must not each make a series.
        let other = side == Side::Server && code == Code::Unimplemented;
        shared
            .duration
            .record(series, elapsed.as_secs_f64(), other, code, error_type);
        span
    }
}

/// The outcome's span fields, in one record (one pass through the
/// subscriber's layers rather than one per field): the status name, the
/// message counts and, on failure, the error and its `grpc-message`.
fn record_outcome(
    span: &tracing::Span,
    name: &'static str,
    requests: i64,
    responses: i64,
    error: Option<(&'static str, Option<&str>)>,
) {
    let Some(meta) = span.metadata() else { return };
    let fields = meta.fields();
    let (
        Some(status),
        Some(req),
        Some(resp),
        Some(otel_status),
        Some(error_type),
        Some(status_message),
    ) = (
        fields.field(semconv::RPC_RESPONSE_STATUS_CODE),
        fields.field(REQUEST_MESSAGES),
        fields.field(RESPONSE_MESSAGES),
        fields.field("otel.status_code"),
        fields.field(semconv::ERROR_TYPE),
        fields.field(STATUS_MESSAGE),
    )
    else {
        return;
    };
    let (failed, kind, message) = match error {
        Some((kind, message)) => (Some("error"), Some(kind), message),
        None => (None, None, None),
    };
    span.record_all(&fields.value_set(&[
        (&status, Some(&name as &dyn Value)),
        (&req, Some(&requests as &dyn Value)),
        (&resp, Some(&responses as &dyn Value)),
        (&otel_status, failed.as_ref().map(|v| v as &dyn Value)),
        (&error_type, kind.as_ref().map(|v| v as &dyn Value)),
        (&status_message, message.as_ref().map(|v| v as &dyn Value)),
    ]));
}
