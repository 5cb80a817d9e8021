//! Generated context and request-id headers, malformed ones included:
//! nothing panics, a malformed `traceparent` gives a root span, and the
//! request id after the layer is always valid.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Request};
use otelwire::opentelemetry::propagation::TextMapCompositePropagator;
use otelwire::opentelemetry::trace::TraceContextExt;
use otelwire::opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use proptest::prelude::*;
use tower::ServiceExt;

fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// Valid-looking traceparents, then mutated: a byte replaced, cut, or extended.
fn traceparent() -> impl Strategy<Value = String> {
    let valid = (
        "[0-9a-f]{32}",
        "[0-9a-f]{16}",
        prop_oneof!["00", "01", "ff", "[0-9a-f]{2}"],
    )
        .prop_map(|(t, s, f)| format!("00-{t}-{s}-{f}"));
    prop_oneof![
        valid.clone(),
        (valid.clone(), any::<usize>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut bytes = v.into_bytes();
            let i = i % bytes.len();
            bytes[i] = b' ' + (b % 94);
            String::from_utf8(bytes).unwrap()
        }),
        (valid, any::<usize>()).prop_map(|(v, n)| v[..n % v.len()].to_owned()),
        "[ -~]{0,80}",
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,160}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

fn headers(tp: &str, ts: &[u8], bg: &[u8], rid: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("traceparent", tp.as_bytes()),
        ("tracestate", ts),
        ("baggage", bg),
        ("x-request-id", rid),
    ] {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.insert(name, v);
        }
    }
    h
}

/// The W3C grammar, written independently of the layer's check.
fn well_formed(tp: &str) -> bool {
    // Optional whitespace around the value is allowed.
    let tp = tp.trim_matches([' ', '\t']);
    let lower_hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let parts: Vec<&str> = tp.splitn(5, '-').collect();
    if parts.len() < 4 {
        return false;
    }
    let extra_ok = match parts[0] {
        "00" => parts.len() == 4,
        _ => true,
    };
    extra_ok
        && lower_hex(parts[0], 2)
        && parts[0] != "ff"
        && lower_hex(parts[1], 32)
        && lower_hex(parts[2], 16)
        && lower_hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

static CASES: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 100_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn extraction_never_panics_and_malformed_means_root(
        tp in traceparent(),
        ts in header_value(),
        bg in header_value(),
        rid in header_value(),
    ) {
        CASES.fetch_add(1, Ordering::Relaxed);
        let p = propagator();
        let h = headers(&tp, &ts, &bg, &rid);
        let (cx, invalid) = otelwire_axum::extract_context(&p, &h);
        let sc = cx.span().span_context().clone();
        if h.contains_key("traceparent") {
            if well_formed(&tp) {
                prop_assert!(sc.is_valid(), "{tp} should parse");
                prop_assert!(!invalid);
            } else {
                prop_assert!(!sc.is_valid(), "{tp} should be refused");
                prop_assert!(invalid);
            }
        }
        let kept = otelwire_axum::valid_request_id(&rid);
        prop_assert_eq!(kept, !rid.is_empty() && rid.len() <= 128 && rid.iter().all(|b| (0x21..=0x7e).contains(b)));
    }
}

#[test]
fn generated_headers_through_the_full_layer() {
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .exporter(otelwire::Signal::Traces, otelwire::ExporterKind::None)
        .logs(false)
        .metrics(false)
        .log_format(otelwire::LogFormat::None)
        .build()
        .unwrap();
    let app: Router = Router::new()
        .route("/x", get(|| async { "ok" }))
        .layer(otelwire_axum::OtelLayer::new().completion_log(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    runner
        .run(
            &(
                traceparent(),
                header_value(),
                header_value(),
                header_value(),
            ),
            |(tp, ts, bg, rid)| {
                let mut req = Request::get("/x").body(Body::empty()).unwrap();
                *req.headers_mut() = headers(&tp, &ts, &bg, &rid);
                let resp = rt.block_on(app.clone().oneshot(req)).unwrap();
                prop_assert_eq!(resp.status(), 200);
                let id = resp.headers().get("x-request-id").expect("always echoed");
                prop_assert!(otelwire_axum::valid_request_id(id.as_bytes()));
                if otelwire_axum::valid_request_id(&rid) {
                    prop_assert_eq!(id.as_bytes(), &rid[..]);
                }
                Ok(())
            },
        )
        .unwrap();
}
