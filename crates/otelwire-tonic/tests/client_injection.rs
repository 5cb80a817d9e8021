//! The client layer injects the whole W3C context (issue 17, section 3,
//! "Metadata"): a call made inside a span whose context carries a
//! tracestate and baggage arrives with `traceparent`, `tracestate` and
//! `baggage` as W3C Trace Context and W3C Baggage spell them. The metadata
//! is read raw at a real tonic server, before any otelwire layer.

mod support;

use std::sync::{Arc, Mutex};

use http::HeaderMap;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use otelwire_test::SpanKind;
use support::Ask;
use tonic::metadata::MetadataValue;
use tracing::Instrument;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// Serves Echo on a free loopback port behind a layer that keeps every
/// request's metadata as it arrived.
async fn serve_recording() -> (std::net::SocketAddr, Seen) {
    let seen = Seen::default();
    let keep = seen.clone();
    let record = tower::util::MapRequestLayer::new(move |req: http::Request<tonic::body::Body>| {
        keep.lock().unwrap().push(req.headers().clone());
        req
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(record)
            .add_service(support::Echo)
            .serve_with_incoming(incoming),
    );
    (addr, seen)
}

/// The metadata of the request sent with `x-request-id: id`.
fn request(seen: &Seen, id: &str) -> HeaderMap {
    seen.lock()
        .unwrap()
        .iter()
        .find(|h| h.get("x-request-id").is_some_and(|v| v == id))
        .cloned()
        .unwrap_or_else(|| panic!("no request {id}"))
}

/// The one value of `name` (W3C: a sender sends one `traceparent`, and
/// combines list members into one `tracestate` and one `baggage`).
fn single<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    let all: Vec<_> = headers.get_all(name).iter().collect();
    assert_eq!(all.len(), 1, "{name}: {all:?}");
    all[0].to_str().unwrap()
}

/// W3C Baggage percent-decoding of a key or value.
fn decode(s: &str) -> String {
    let (mut out, b) = (Vec::new(), s.as_bytes());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The members of a `baggage` value, `(key, value, properties)`, sorted.
fn baggage(header: &str) -> Vec<(String, String, String)> {
    let mut members: Vec<_> = header
        .split(',')
        .map(|m| {
            let (kv, props) = m.split_once(';').unwrap_or((m, ""));
            let (k, v) = kv.split_once('=').unwrap();
            (decode(k.trim()), decode(v.trim()), props.trim().to_owned())
        })
        .collect();
    members.sort();
    members
}

/// A span whose parent is the remote context that `metadata` describes.
fn caller(metadata: &[(&str, &str)]) -> tracing::Span {
    let mut headers = HeaderMap::new();
    for (k, v) in metadata {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (cx, invalid) =
        otelwire::http::with_propagator(|p| otelwire_tonic::extract_context(p, &headers));
    assert!(!invalid);
    let span = tracing::info_span!("caller");
    let _ = span.set_parent(cx);
    span
}

fn with_id(id: &'static str) -> tonic::Request<Ask> {
    let mut r = tonic::Request::new(Ask::default());
    r.metadata_mut()
        .insert("x-request-id", MetadataValue::from_static(id));
    r
}

#[tokio::test(flavor = "current_thread")]
async fn the_client_injects_traceparent_tracestate_and_baggage() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let (addr, seen) = serve_recording().await;
    let mut client = support::traced_client(&t, addr).await;

    // A sampled remote parent with a tracestate and baggage: one member
    // with a property, one whose value needs percent-encoding.
    let sampled = caller(&[
        ("traceparent", &format!("00-{TRACE_ID}-{PARENT_ID}-01")),
        ("tracestate", TRACESTATE),
        (
            "baggage",
            "tenant=blue;ttl=60, user=J%C3%B6rg%20S ,plan=gold",
        ),
    ]);
    client
        .unary(with_id("sampled"))
        .instrument(sampled.clone())
        .await
        .unwrap();
    drop(sampled);
    // A remote parent that was not sampled: the flag travels on.
    let unsampled = caller(&[
        ("traceparent", &format!("00-{TRACE_ID}-{PARENT_ID}-00")),
        ("tracestate", TRACESTATE),
    ]);
    client
        .unary(with_id("unsampled"))
        .instrument(unsampled.clone())
        .await
        .unwrap();
    drop(unsampled);
    support::spans(&collector, 1, |s| s.kind == SpanKind::Client).await;
    drop(_default);
    t.shutdown().await;
    // Only the sampled call's spans are exported.
    let clients: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|s| s.kind == SpanKind::Client)
        .collect();

    // What the server saw for the sampled call.
    let headers = request(&seen, "sampled");
    let traceparent = single(&headers, "traceparent");
    let parts: Vec<_> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00", "{traceparent}");
    assert_eq!(parts[1], TRACE_ID, "{traceparent}");
    assert!(
        parts[2].len() == 16
            && parts[2]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && parts[2] != "0000000000000000",
        "{traceparent}"
    );
    assert_eq!(parts[3], "01", "{traceparent}");
    // The parent id sent is the client span's own, exported under this trace.
    assert_eq!(clients.len(), 1, "{clients:#?}");
    let client_span = &clients[0];
    assert_eq!(client_span.trace_id, TRACE_ID);
    assert_eq!(parts[2], client_span.span_id);
    let callers = collector.spans_named("caller");
    assert_eq!(callers.len(), 1, "{callers:#?}");
    let caller_span = &callers[0];
    assert_eq!(caller_span.parent_span_id.as_deref(), Some(PARENT_ID));
    assert_eq!(
        client_span.parent_span_id.as_deref(),
        Some(caller_span.span_id.as_str())
    );
    // The tracestate list goes on as it came, in its order.
    assert_eq!(single(&headers, "tracestate"), TRACESTATE);
    assert_eq!(client_span.trace_state, TRACESTATE);
    // Every baggage member, its property kept, its value encoded.
    let sent = single(&headers, "baggage");
    assert!(
        sent.bytes().all(|b| b.is_ascii_graphic()),
        "only visible ASCII on the wire: {sent:?}"
    );
    assert_eq!(
        baggage(sent),
        [
            ("plan".into(), "gold".into(), String::new()),
            ("tenant".into(), "blue".into(), "ttl=60".into()),
            ("user".into(), "Jörg S".into(), String::new()),
        ],
        "{sent}"
    );

    // The unsampled call: same trace, the flag off, no baggage header for
    // an empty baggage.
    let headers = request(&seen, "unsampled");
    let traceparent = single(&headers, "traceparent");
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-")) && traceparent.ends_with("-00"),
        "{traceparent}"
    );
    assert!(!traceparent.contains(PARENT_ID), "{traceparent}");
    assert_eq!(single(&headers, "tracestate"), TRACESTATE);
    assert!(headers.get("baggage").is_none(), "{headers:?}");
}
