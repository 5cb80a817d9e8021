//! Changing the log filter while running (issue 18, section 1), and the
//! traces filter's configuration (section 2): what every output shows
//! before and after, and what a bad value is told.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Captured, env};
use otelwire::tracing_subscriber::Layer;
use otelwire::tracing_subscriber::layer::Context;
use otelwire::{BaseSubscriber, InitError, LogFormat, Output, Signal, Telemetry};
use otelwire_test::Collector;

const WAIT: Duration = Duration::from_secs(10);

/// The messages an output added with `with_output` saw (as otelwire-files
/// would write them).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|m| m.contains(needle))
    }
}

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl Layer<BaseSubscriber> for Seen {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, BaseSubscriber>) {
        let mut m = String::new();
        event.record(&mut Message(&mut m));
        self.0.lock().unwrap().push(m);
    }
}

fn pipeline(collector: &Collector, filter: &str, out: &Captured, seen: &Seen) -> Telemetry {
    let seen = seen.clone();
    otelwire::builder()
        .env_source(env(&[]))
        .service_name("live-filter")
        .endpoint(collector.http_endpoint())
        .filter(filter)
        .metrics(false)
        .process_metrics(false)
        .log_format(LogFormat::Json)
        .writer(out.clone())
        .scheduled_delay(Signal::Logs, Duration::from_millis(50))
        .with_output(move |_| Ok(Output::layer(seen)))
        .build()
        .unwrap()
}

fn debug_event(n: u32) {
    tracing::debug!(target: "live_filter::orders", n, "debug line {n}");
}

#[test]
fn set_filter_changes_every_output_at_once() {
    let collector = Collector::start().unwrap();
    let out = Captured::default();
    let seen = Seen::default();
    let t = pipeline(&collector, "info", &out, &seen);
    assert_eq!(t.filter(), "info");
    tracing::dispatcher::with_default(t.dispatch(), || {
        debug_event(1);
        tracing::info!(target: "live_filter::orders", "marker before");
    });
    let previous = t.set_filter("info,live_filter=debug").unwrap();
    assert_eq!(previous, "info");
    assert_eq!(t.filter(), "info,live_filter=debug");
    tracing::dispatcher::with_default(t.dispatch(), || {
        // The same callsite as before the change: its cached interest was
        // rebuilt.
        debug_event(2);
    });

    // The OTLP log records.
    collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("debug line 2"), WAIT)
        .unwrap();
    collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("marker before"), WAIT)
        .unwrap();
    assert!(collector.logs_with_body("debug line 1").is_empty());
    // The local JSON lines.
    let text = out.text();
    assert!(text.contains("debug line 2"), "{text}");
    assert!(!text.contains("debug line 1"), "{text}");
    // The change itself is told.
    assert!(
        text.contains(r#"log filter changed from \"info\" to \"info,live_filter=debug\""#),
        "{text}"
    );
    // An output added with `with_output`.
    assert!(seen.contains("debug line 2"));
    assert!(!seen.contains("debug line 1"));

    // And back.
    t.set_filter("warn").unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        debug_event(3);
        tracing::info!(target: "live_filter::orders", "info after warn");
        tracing::warn!(target: "live_filter::orders", "warn after warn");
    });
    collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("warn after warn"), WAIT)
        .unwrap();
    assert!(collector.logs_with_body("debug line 3").is_empty());
    assert!(collector.logs_with_body("info after warn").is_empty());
    assert!(!seen.contains("info after warn"));
    t.shutdown_blocking();
}

#[test]
fn a_bad_directive_is_refused_and_changes_nothing() {
    let collector = Collector::start().unwrap();
    let out = Captured::default();
    let seen = Seen::default();
    let t = pipeline(&collector, "warn, live_filter=info,", &out, &seen);
    assert_eq!(t.filter(), "warn,live_filter=info");

    let err = t.set_filter("debug,live_filter=loud").unwrap_err();
    assert_eq!(err.directive(), "live_filter=loud");
    assert!(err.to_string().contains("live_filter=loud"), "{err}");
    assert!(t.set_filter("  ").is_err());
    assert!(t.set_filter("[unclosed=debug").is_err());
    assert_eq!(t.filter(), "warn,live_filter=info");

    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::debug!(target: "live_filter", "still quiet");
        tracing::info!(target: "live_filter", "still info");
    });
    collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("still info"), WAIT)
        .unwrap();
    assert!(collector.logs_with_body("still quiet").is_empty());
    t.shutdown_blocking();
}

#[test]
fn span_name_directives_can_be_set_live() {
    let collector = Collector::start().unwrap();
    let out = Captured::default();
    let seen = Seen::default();
    let t = pipeline(&collector, "info", &out, &seen);
    t.set_filter("info,[checkout]=debug").unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        let span = tracing::info_span!("checkout");
        span.in_scope(|| tracing::debug!(target: "live_filter", "inside checkout"));
        tracing::debug!(target: "live_filter", "outside checkout");
    });
    t.set_filter("info").unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        let span = tracing::info_span!("checkout");
        span.in_scope(|| tracing::debug!(target: "live_filter", "inside after revert"));
        tracing::info!(target: "live_filter", "marker");
    });
    collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("marker"), WAIT)
        .unwrap();
    assert_eq!(collector.logs_with_body("inside checkout").len(), 1);
    assert!(collector.logs_with_body("outside checkout").is_empty());
    assert!(collector.logs_with_body("inside after revert").is_empty());
    t.shutdown_blocking();
}

#[test]
fn the_traces_filter_follows_rust_log_never_below_info() {
    let t = |vars: &[(&str, &str)]| {
        otelwire::builder()
            .env_source(env(vars))
            .sdk_disabled(true)
            .log_format(LogFormat::None)
            .build()
            .unwrap()
    };
    let warn = t(&[("RUST_LOG", "warn")]);
    assert_eq!(warn.traces_filter(), "info");
    // A target turned off stays off (it is how a service drops its query
    // spans); one made quieter than info is raised.
    let debug = t(&[("RUST_LOG", "debug,sqlx=off,h2=warn")]);
    assert_eq!(debug.traces_filter(), "debug,sqlx=off,h2=info");
    let given = t(&[
        ("RUST_LOG", "warn"),
        ("OTELWIRE_TRACES_FILTER", "warn,orders_api=debug"),
    ]);
    assert_eq!(given.traces_filter(), "warn,orders_api=debug");

    // A derived traces filter follows a change; a given one stays.
    warn.set_filter("debug").unwrap();
    assert_eq!(warn.traces_filter(), "debug");
    given.set_filter("debug").unwrap();
    assert_eq!(given.traces_filter(), "warn,orders_api=debug");

    let code = otelwire::builder()
        .env_source(env(&[("OTELWIRE_TRACES_FILTER", "warn")]))
        .traces_filter("trace")
        .sdk_disabled(true)
        .log_format(LogFormat::None)
        .build()
        .unwrap();
    assert_eq!(code.traces_filter(), "trace");
}

#[test]
fn a_bad_traces_filter_is_an_init_error_naming_the_variable() {
    let err = otelwire::builder()
        .env_source(env(&[("OTELWIRE_TRACES_FILTER", "info,orders_api=loud")]))
        .sdk_disabled(true)
        .log_format(LogFormat::None)
        .build()
        .unwrap_err();
    match &err {
        InitError::InvalidEnv { var, value, .. } => {
            assert_eq!(var, "OTELWIRE_TRACES_FILTER");
            assert_eq!(value, "info,orders_api=loud");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("OTELWIRE_TRACES_FILTER"), "{text}");
    assert!(text.contains("orders_api=loud"), "{text}");

    let err = otelwire::builder()
        .env_source(env(&[]))
        .traces_filter("[nope")
        .sdk_disabled(true)
        .log_format(LogFormat::None)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            InitError::InvalidSetting {
                setting: "traces_filter",
                ..
            }
        ),
        "{err:?}"
    );
}
