//! Generated metadata, malformed values included: context extraction never
//! panics and refuses exactly the malformed `traceparent`s; the layers
//! never panic on generated request metadata or on generated `grpc-status`
//! and `grpc-message` answers, and the request id they echo is valid.

use http::{HeaderMap, HeaderValue, Request, Response};
use otelwire::opentelemetry::propagation::TextMapCompositePropagator;
use otelwire::opentelemetry::trace::TraceContextExt;
use otelwire::opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use proptest::prelude::*;
use tower::{Layer, ServiceExt};

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
        (valid.clone(), any::<usize>()).prop_map(|(v, n)| v[..n % v.len()].to_owned()),
        (valid, "-[ -~]{0,20}").prop_map(|(v, tail)| format!("{v}{tail}")),
        "[ -~]{0,80}",
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,160}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

fn metadata(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.insert(*name, v);
        }
    }
    h
}

/// The W3C grammar, written independently of the crate's check.
fn well_formed(tp: &str) -> bool {
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 100_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn extraction_never_panics_and_malformed_means_a_new_trace(
        tp in traceparent(),
        ts in value(),
        bg in value(),
    ) {
        let h = metadata(&[("traceparent", tp.as_bytes()), ("tracestate", &ts), ("baggage", &bg)]);
        let (cx, invalid) = otelwire_tonic::extract_context(&propagator(), &h);
        let sc = cx.span().span_context().clone();
        if h.contains_key("traceparent") {
            prop_assert_eq!(sc.is_valid(), well_formed(&tp), "{}", tp);
            prop_assert_eq!(invalid, !well_formed(&tp));
        } else {
            prop_assert!(!sc.is_valid() && !invalid);
        }
    }
}

#[test]
fn generated_metadata_and_answers_through_the_server_layer() {
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .exporter(otelwire::Signal::Traces, otelwire::ExporterKind::None)
        .logs(false)
        .metrics(false)
        .log_format(otelwire::LogFormat::None)
        .build()
        .unwrap();
    // The "handler" answers Trailers-Only with the generated status.
    let layer = otelwire_tonic::OtelServerLayer::new();
    let service = layer.layer(tower::service_fn(
        |req: Request<tonic::body::Body>| async move {
            let mut r = Response::new(tonic::body::Body::empty());
            for name in ["grpc-status", "grpc-message"] {
                if let Some(v) = req.headers().get(format!("x-answer-{name}")) {
                    r.headers_mut().insert(name, v.clone());
                }
            }
            Ok::<_, std::convert::Infallible>(r)
        },
    ));
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
    let path = prop_oneof![Just("/test.v1.Echo/Unary".to_owned()), "/[ -~]{0,40}",];
    runner
        .run(
            &(path, traceparent(), value(), value(), value(), value()),
            |(path, tp, bg, rid, status, message)| {
                let uri = match http::Uri::try_from(path.as_str()) {
                    Ok(u) => u,
                    Err(_) => return Ok(()),
                };
                let mut req = Request::post(uri).body(tonic::body::Body::empty()).unwrap();
                *req.headers_mut() = metadata(&[
                    ("traceparent", tp.as_bytes()),
                    ("baggage", &bg),
                    ("x-request-id", &rid),
                    ("x-answer-grpc-status", &status),
                    ("x-answer-grpc-message", &message),
                ]);
                let resp = rt.block_on(service.clone().oneshot(req)).unwrap();
                let id = resp.headers().get("x-request-id").expect("always echoed");
                prop_assert!(otelwire_tonic::valid_request_id(id.as_bytes()));
                if otelwire_tonic::valid_request_id(&rid) {
                    prop_assert_eq!(id.as_bytes(), &rid[..]);
                }
                drop(resp);
                Ok(())
            },
        )
        .unwrap();
}
