//! One RPC in flight, and what happens when it ends: the outcome on the
//! span, the completion log event and the duration metric, exactly once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::Histogram;
use otelwire::opentelemetry_semantic_conventions::attribute as semconv;
use tonic::Code;

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

/// What is shared by every RPC of one layer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) side: Side,
    pub(crate) duration: Histogram<f64>,
    pub(crate) completion_log: bool,
}

/// An RPC in flight.
pub(crate) struct Call {
    pub(crate) shared: Arc<Shared>,
    pub(crate) span: tracing::Span,
    pub(crate) started: Instant,
    /// The metric attributes known at the start (system, method, server).
    pub(crate) attributes: Vec<KeyValue>,
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
        let Call {
            shared,
            span,
            started,
            mut attributes,
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
        span.record(semconv::RPC_RESPONSE_STATUS_CODE, name);
        span.record(
            REQUEST_MESSAGES,
            counts.requests.load(Ordering::Relaxed) as i64,
        );
        span.record(
            RESPONSE_MESSAGES,
            counts.responses.load(Ordering::Relaxed) as i64,
        );
        if let Some(e) = error_type {
            span.record("otel.status_code", "error");
            span.record(semconv::ERROR_TYPE, e);
            if let Some(m) = &message {
                span.record(STATUS_MESSAGE, m.as_str());
            }
        }

        let _enter = span.enter();
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
        if side == Side::Server && code == Code::Unimplemented {
            for kv in &mut attributes {
                if kv.key.as_str() == semconv::RPC_METHOD {
                    *kv = KeyValue::new(semconv::RPC_METHOD, "_OTHER");
                }
            }
        }
        attributes.push(KeyValue::new(semconv::RPC_RESPONSE_STATUS_CODE, name));
        if let Some(e) = error_type {
            attributes.push(KeyValue::new(semconv::ERROR_TYPE, e));
        }
        shared.duration.record(elapsed.as_secs_f64(), &attributes);
    }
}
