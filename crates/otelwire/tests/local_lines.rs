//! What a person reads on the console (issue 20, section 4): the span's
//! exported name, and floats rounded the way people read them.

use otelwire::LogFormat;
use otelwire_test::Console;

/// Runs `f` under a pipeline that writes `format` lines to a buffer (no
/// export); the lines written, each without its timestamp.
fn lines(format: LogFormat, f: impl FnOnce()) -> Vec<String> {
    let console = Console::default();
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .sdk_disabled(true)
        .log_format(format)
        .ansi(false)
        .writer(console.clone())
        .build()
        .unwrap();
    let before = console.text().len();
    tracing::dispatcher::with_default(telemetry.dispatch(), f);
    let text = console.text()[before..].to_owned();
    text.lines()
        .map(|line| match format {
            LogFormat::Json => {
                let end = line.find("\"level\"").expect("a level");
                line[end + 1..].to_owned()
            }
            _ => line[line.find(' ').expect("a timestamp")..]
                .trim_start()
                .to_owned(),
        })
        .collect()
}

/// A span named for `tracing` and renamed for OpenTelemetry, as
/// otelwire-axum's and otelwire-tonic's are.
fn request(f: impl FnOnce()) {
    tracing::info_span!(
        "HTTP request",
        otel.name = "GET /items/{sku}",
        http.route = "/items/{sku}"
    )
    .in_scope(f);
}

#[test]
fn lines_name_the_span_as_it_is_exported() {
    let json = lines(LogFormat::Json, || request(|| tracing::info!("found")));
    assert_eq!(
        json,
        [
            r#"level":"INFO","target":"local_lines","message":"found","span":{"name":"GET /items/{sku}","http.route":"/items/{sku}"}}"#
        ]
    );
    let compact = lines(LogFormat::Compact, || request(|| tracing::info!("found")));
    assert_eq!(
        compact,
        ["INFO local_lines: found span=GET /items/{sku}{http.route=/items/{sku}}"]
    );
}

#[test]
fn a_name_recorded_later_renames_the_span_in_lines() {
    let json = lines(LogFormat::Json, || {
        let span = tracing::info_span!("gRPC call", otel.name = tracing::field::Empty);
        span.in_scope(|| tracing::info!("before"));
        span.record("otel.name", "orders.Orders/Get");
        span.in_scope(|| tracing::info!("after"));
    });
    assert_eq!(
        json,
        [
            r#"level":"INFO","target":"local_lines","message":"before","span":{"name":"gRPC call"}}"#,
            r#"level":"INFO","target":"local_lines","message":"after","span":{"name":"orders.Orders/Get"}}"#,
        ]
    );
}

#[test]
fn a_child_span_without_otel_name_keeps_its_own_name() {
    let json = lines(LogFormat::Json, || {
        request(|| tracing::info_span!("load_item").in_scope(|| tracing::info!("loaded")))
    });
    assert_eq!(
        json,
        [
            r#"level":"INFO","target":"local_lines","message":"loaded","span":{"name":"load_item","http.route":"/items/{sku}"}}"#
        ]
    );
}

#[test]
fn floats_are_rounded_the_way_people_read_them() {
    let event = || {
        tracing::info!(
            duration_ms = 0.8952100000000001,
            ratio = 0.000123456,
            "request completed"
        )
    };
    assert_eq!(
        lines(LogFormat::Json, event),
        [
            r#"level":"INFO","target":"local_lines","message":"request completed","duration_ms":0.895,"ratio":0.000123}"#
        ]
    );
    assert_eq!(
        lines(LogFormat::Compact, event),
        ["INFO local_lines: request completed duration_ms=0.895 ratio=0.000123"]
    );
}
