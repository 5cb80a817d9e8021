//! The pipeline that code runs under, for integrations that record
//! OpenTelemetry metrics or spans themselves (otelwire-axum, -reqwest,
//! -sqlx, -tonic): the meter and tracer of the current `tracing`
//! dispatcher when it is otelwire's, else the global providers.
//!
//! With [`init`](crate::init) the two are the same pipeline. With
//! [`Builder::build`](crate::Builder::build) nothing is global, so an
//! integration made while the pipeline's dispatcher is the default
//! (`tracing::dispatcher::set_default(telemetry.dispatch())`, as tests do)
//! records into that pipeline, with no handle threaded through the
//! service's code. Made outside any otelwire pipeline (no `init()`, no
//! otelwire dispatcher in scope), it records into the global providers,
//! which are no-ops unless someone set them, and says so once: a WARN
//! event (target `otelwire`), or a line on standard error when no
//! subscriber would show the event. (Given its own meter or tracer later,
//! `.meter(…)`, `.tracer(…)`, the integration uses that one; the warning
//! has been given by then.)
//!
//! ```
//! use std::time::Duration;
//! use otelwire::opentelemetry::metrics::MeterProvider as _;
//!
//! let collector = otelwire_test::Collector::start()?;
//! let telemetry = otelwire_test::builder_for(&collector).build()?;
//! tracing::dispatcher::with_default(telemetry.dispatch(), || {
//!     // What otelwire-axum's `OtelLayer::new()` does for its instruments.
//!     let meter = otelwire::current::meter("my-integration");
//!     meter.u64_counter("jobs.done").build().add(1, &[]);
//! });
//! telemetry.force_flush();
//! collector.wait_for_metric_blocking("jobs.done", |_| true, Duration::from_secs(5))?;
//! telemetry.shutdown_blocking();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::InstrumentationScope;
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::layers::FilterLayer;

/// The providers of one pipeline, held by its filter gate so that the
/// dispatcher can be asked for them.
#[derive(Debug, Default)]
pub(crate) struct Providers {
    pub(crate) meter: Option<SdkMeterProvider>,
    pub(crate) tracer: Option<SdkTracerProvider>,
}

/// Whether [`init`](crate::init) installed a pipeline as the global one.
static GLOBAL: AtomicBool = AtomicBool::new(false);
/// Whether the "no pipeline" warning was given.
static WARNED: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_global() {
    GLOBAL.store(true, Ordering::Release);
}

/// Where an integration's meter and tracer come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The current `tracing` dispatcher is an otelwire pipeline's.
    Dispatcher,
    /// No otelwire dispatcher is current, but [`init`](crate::init) set the
    /// global providers.
    Global,
    /// Neither: the global providers, no-ops unless set by other code.
    None,
}

/// Where [`meter`] and [`tracer`] would take their providers from, here
/// and now.
pub fn source() -> Source {
    if with_current(|_| ()).is_some() {
        Source::Dispatcher
    } else if GLOBAL.load(Ordering::Acquire) {
        Source::Global
    } else {
        Source::None
    }
}

fn with_current<T>(f: impl Fn(&Providers) -> T) -> Option<T> {
    tracing::dispatcher::get_default(|d| {
        d.downcast_ref::<FilterLayer>()
            .map(|gate| f(gate.providers()))
    })
}

fn warn_once(scope: &str) {
    if WARNED.swap(true, Ordering::AcqRel) {
        return;
    }
    let message = format!(
        "{scope} found no otelwire pipeline: no otelwire::init() and no otelwire \
         dispatcher in scope, so its metrics and spans go to the global OpenTelemetry \
         providers (no-ops unless set elsewhere); make it after init(), or inside \
         tracing::dispatcher::set_default(telemetry.dispatch())"
    );
    if tracing::enabled!(target: "otelwire", tracing::Level::WARN) {
        tracing::warn!(target: "otelwire", integration = scope, "{message}");
    } else {
        // No subscriber would show it: the one line otelwire writes itself.
        eprintln!("otelwire: {message}");
    }
}

/// A meter from the current pipeline (see the [module docs](self)): its
/// meter provider's, a no-op meter when that pipeline exports no metrics,
/// or the global provider's when no otelwire pipeline is in scope.
pub fn meter(scope: &'static str) -> Meter {
    match with_current(|p| p.meter.clone()) {
        Some(Some(provider)) => provider.meter(scope),
        Some(None) => opentelemetry::metrics::noop::NoopMeterProvider::new().meter(scope),
        None => {
            if !GLOBAL.load(Ordering::Acquire) {
                warn_once(scope);
            }
            global::meter(scope)
        }
    }
}

/// A tracer from the current pipeline (see the [module docs](self)), for
/// spans made with the OpenTelemetry API rather than `tracing`: its tracer
/// provider's, a no-op tracer when that pipeline exports no traces, or the
/// global provider's when no otelwire pipeline is in scope.
pub fn tracer(scope: InstrumentationScope) -> BoxedTracer {
    match with_current(|p| p.tracer.clone()) {
        Some(Some(provider)) => BoxedTracer::new(Box::new(provider.tracer_with_scope(scope))),
        Some(None) => BoxedTracer::new(Box::new(opentelemetry::trace::noop::NoopTracer::new())),
        None => {
            if !GLOBAL.load(Ordering::Acquire) {
                let name: Cow<'static, str> = scope.name().to_owned().into();
                warn_once(&name);
            }
            global::tracer_provider().tracer_with_scope(scope)
        }
    }
}
