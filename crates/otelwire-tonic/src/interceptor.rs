//! Context injection as a tonic interceptor, for where a layer cannot go
//! (a generated client over a service you do not build): the current
//! span's context goes into the request metadata. No client span, no
//! metric: prefer [`OtelClientLayer`](crate::OtelClientLayer).

use otelwire::opentelemetry::propagation::Injector;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

struct Metadata<'a>(&'a mut MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Injects the current span's context (global propagator, or W3C when none
/// is installed). Use it as `PricingClient::with_interceptor(channel, otelwire_tonic::inject_context)`.
///
/// ```
/// let _span = tracing::info_span!("caller").entered();
/// let request = otelwire_tonic::inject_context(tonic::Request::new(())).unwrap();
/// # let _ = request;
/// ```
pub fn inject_context(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    let cx = tracing::Span::current().context();
    let mut injector = Metadata(request.metadata_mut());
    otelwire::http::with_propagator(|p| p.inject_context(&cx, &mut injector));
    Ok(request)
}
