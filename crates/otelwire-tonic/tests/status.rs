//! Every gRPC status code through a real tonic server and client, both
//! traced: what arrives at a collector for each side, whether the code came
//! in the headers (a unary error: Trailers-Only) or in the trailers (after
//! streamed messages).

mod support;

use otelwire_test::{SpanKind, StatusCode as OtelStatus};
use otelwire_tonic::{OtelClientLayer, code_name, is_server_error};
use support::{Ask, Client};
use tonic::Code;
use tower::Layer;

const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

#[tokio::test(flavor = "current_thread")]
async fn each_status_code_in_headers_and_in_trailers() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = support::traced_client_with_uri(&t, addr).await;

    for code in CODES {
        // In the headers: a unary error is a Trailers-Only response.
        let answer = client.unary(Ask::code(code)).await;
        assert_eq!(answer.err().map_or(Code::Ok, |s| s.code()), code);
        // In the trailers: after two messages.
        let ask = Ask {
            messages: 2,
            ..Ask::code(code)
        };
        let mut stream = client.watch(ask).await.unwrap().into_inner();
        let mut received = 0;
        let end = loop {
            match stream.message().await {
                Ok(Some(_)) => received += 1,
                Ok(None) => break Code::Ok,
                Err(s) => break s.code(),
            }
        };
        assert_eq!((received, end), (2, code));
    }
    // Both sides of all 34 calls have ended.
    support::spans(&collector, 4 * CODES.len(), |s| {
        s.attributes.contains_key("rpc.response.status_code")
    })
    .await;
    drop(_default);
    t.shutdown().await;

    for (method, streamed) in [("test.v1.Echo/Unary", false), ("test.v1.Echo/Watch", true)] {
        let spans = collector.spans_named(method);
        for code in CODES {
            let name = code_name(code);
            let of = |kind| {
                let found: Vec<_> = spans
                    .iter()
                    .filter(|s| {
                        s.kind == kind
                            && s.attributes.get_str("rpc.response.status_code") == Some(name)
                    })
                    .collect();
                assert_eq!(found.len(), 1, "{method} {name} {kind:?}: {spans:#?}");
                found[0].clone()
            };
            // A unary answer is one message, or none with an error status.
            let messages = match (streamed, code) {
                (true, _) => 2,
                (false, Code::Ok) => 1,
                (false, _) => 0,
            };
            let server = of(SpanKind::Server);
            let client = of(SpanKind::Client);
            // One trace: the client span is the server span's parent.
            assert_eq!(server.trace_id, client.trace_id);
            assert_eq!(
                server.parent_span_id.as_deref(),
                Some(client.span_id.as_str())
            );
            for s in [&server, &client] {
                let a = &s.attributes;
                assert_eq!(a.get_str("rpc.system.name"), Some("grpc"));
                assert_eq!(a.get_str("rpc.method"), Some(method));
                assert_eq!(a.get_i64("otelwire.rpc.response_messages"), Some(messages));
                assert_eq!(a.get_i64("otelwire.rpc.request_messages"), Some(1));
            }
            // Server: only the server-error codes fail its span.
            let server_failed = is_server_error(code);
            assert_eq!(
                server.status.code == OtelStatus::Error,
                server_failed,
                "{method} {name} server"
            );
            assert_eq!(
                server.attributes.get_str("error.type"),
                server_failed.then_some(name),
            );
            // Client: every code but OK.
            let client_failed = code != Code::Ok;
            assert_eq!(
                client.status.code == OtelStatus::Error,
                client_failed,
                "{method} {name} client"
            );
            assert_eq!(
                client.attributes.get_str("error.type"),
                client_failed.then_some(name)
            );
            if client_failed {
                assert_eq!(
                    client.attributes.get_str("otelwire.rpc.status_message"),
                    Some(format!("asked for {}: card 4111-1111", code as i32).as_str())
                );
            }
            assert_eq!(
                client.attributes.get_str("server.address"),
                Some("127.0.0.1")
            );
            assert_eq!(
                client.attributes.get_i64("server.port"),
                Some(i64::from(addr.port()))
            );
            assert_eq!(
                server.attributes.get_str("network.peer.address"),
                Some("127.0.0.1")
            );
            assert!(server.attributes.get_i64("network.peer.port").is_some());
            assert_eq!(
                server.attributes.get_str("server.address"),
                Some("127.0.0.1")
            );
            assert!(server.attributes.get_str("request.id").is_some());
        }
    }

    // One completion event per RPC and side, its severity by the code.
    let completed = collector.logs_with_body("RPC completed");
    assert_eq!(completed.len(), 4 * CODES.len());
    let severity = |code: &str| {
        let mut s: Vec<_> = completed
            .iter()
            .filter(|l| l.attributes.get_str("rpc.response.status_code") == Some(code))
            .map(|l| l.severity_text.clone())
            .collect();
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(severity("OK"), ["INFO"]);
    assert_eq!(severity("NOT_FOUND"), ["WARN"]);
    assert_eq!(severity("INVALID_ARGUMENT"), ["WARN"]);
    assert_eq!(severity("PERMISSION_DENIED"), ["WARN"]);
    assert_eq!(severity("DEADLINE_EXCEEDED"), ["ERROR"]);
    assert_eq!(severity("INTERNAL"), ["ERROR"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_panic_is_internal_and_the_server_keeps_serving() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = Client::new(support::channel(addr).await);
    let panicked = client
        .unary(Ask {
            action: "panic".into(),
            ..Ask::default()
        })
        .await
        .unwrap_err();
    assert_eq!(panicked.code(), Code::Internal);
    // A stream that panics after its first message ends INTERNAL too.
    let ask = Ask {
        messages: 1,
        action: "panic".into(),
        ..Ask::default()
    };
    // (tonic encodes what the stream yields in batches: the message before
    // the panic may be lost with it.)
    let mut stream = client.watch(ask).await.unwrap().into_inner();
    let end = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => break Code::Ok,
            Err(s) => break s.code(),
        }
    };
    assert_eq!(end, Code::Internal);
    client.unary(Ask::default()).await.unwrap();
    let spans = support::spans(&collector, 3, |s| s.kind == SpanKind::Server).await;
    drop(_default);
    t.shutdown().await;
    for method in ["test.v1.Echo/Unary", "test.v1.Echo/Watch"] {
        let failed = spans
            .iter()
            .find(|s| s.name == method && s.status.code == OtelStatus::Error)
            .expect("the panicked RPC's span");
        assert_eq!(
            failed.attributes.get_str("rpc.response.status_code"),
            Some("INTERNAL")
        );
        assert_eq!(failed.attributes.get_str("error.type"), Some("panic"));
        assert!(
            failed.events.iter().any(|e| e
                .attributes
                .get_str("exception.message")
                .is_some_and(|m| m.contains("fell over"))),
            "{:?}",
            failed.events
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn unknown_paths_health_checks_and_transport_errors() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = Client::new(support::channel(addr).await);
    for path in ["/test.v1.Echo/Nope", "/no-such/path/at/all"] {
        let s = client.call(path, Ask::default()).await.unwrap_err();
        assert_eq!(s.code(), Code::Unimplemented);
    }
    client
        .call("/grpc.health.v1.Health/Check", Ask::default())
        .await
        .unwrap();

    // Nothing listens: the client span says UNAVAILABLE and why.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let lazy = tonic::transport::Endpoint::from_shared(format!("http://{gone}"))
        .unwrap()
        .connect_lazy();
    let mut nobody = Client::new(
        OtelClientLayer::new()
            .meter(t.meter("otelwire-tonic"))
            .layer(lazy),
    );
    let s = nobody.unary(Ask::default()).await.unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);

    support::spans(&collector, 3, |s| {
        s.attributes.contains_key("rpc.response.status_code")
    })
    .await;
    drop(_default);
    t.shutdown().await;

    let unknown = collector.spans_named("test.v1.Echo/Nope");
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].status.code, OtelStatus::Error);
    let other = collector.spans_named("grpc");
    assert_eq!(other.len(), 1, "{:#?}", collector.spans());
    assert_eq!(other[0].attributes.get_str("rpc.method"), Some("_OTHER"));
    assert_eq!(
        other[0].attributes.get_str("rpc.method_original"),
        Some("/no-such/path/at/all")
    );
    assert!(
        collector.spans().iter().all(|s| !s.name.contains("Health")),
        "health checks are not traced"
    );
    let failed = collector.spans_named("test.v1.Echo/Unary");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].kind, SpanKind::Client);
    assert_eq!(
        failed[0].attributes.get_str("rpc.response.status_code"),
        Some("UNAVAILABLE")
    );
    assert_eq!(failed[0].attributes.get_str("error.type"), Some("connect"));
    // A method the server does not have is one `_OTHER` series.
    let series: Vec<_> = collector
        .metric_points("rpc.server.call.duration")
        .into_iter()
        .map(|p| p.attributes.get_str("rpc.method").map(str::to_owned))
        .collect();
    assert_eq!(series, [Some("_OTHER".to_owned())]);
}
