//! `otelwire::current`: where integrations take their meter and tracer
//! from, and the one warning when there is no otelwire pipeline at all.

use std::sync::{Arc, Mutex};

use otelwire::current::{self, Source};
use tracing_subscriber::layer::SubscriberExt;

/// A subscriber of someone else's that keeps each WARN event's message.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut m = Message(String::new());
            event.record(&mut m);
            self.0.lock().unwrap().push(m.0);
        }
    }
}

#[test]
fn without_a_pipeline_the_first_integration_says_so_once() {
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        assert_eq!(current::source(), Source::None);
        let _ = current::meter("otelwire-axum");
        let _ = current::meter("otelwire-reqwest");
    });
    let seen = warnings.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("otelwire-axum found no otelwire pipeline"),
        "{seen:?}"
    );
    assert!(
        seen[0].contains("set_default(telemetry.dispatch())"),
        "{seen:?}"
    );
}

#[test]
fn under_a_built_pipeline_the_dispatcher_is_the_source() {
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .sdk_disabled(true)
        .log_format(otelwire::LogFormat::None)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        assert_eq!(current::source(), Source::Dispatcher);
    });
    assert_ne!(current::source(), Source::Dispatcher);
}
