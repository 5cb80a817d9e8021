//! `rpc.server.call.duration` and `rpc.client.call.duration`: one series
//! per method and status, never per request.

mod support;

use otelwire_test::PointValue;
use support::Ask;
use tonic::Code;

fn keys(p: &otelwire_test::MetricPoint) -> Vec<String> {
    let mut k: Vec<_> = p.attributes.iter().map(|(k, _)| k.to_owned()).collect();
    k.sort();
    k
}

#[tokio::test(flavor = "current_thread")]
async fn one_series_per_method_and_status() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = support::traced_client_with_uri(&t, addr).await;
    for i in 0..5 {
        let mut r = tonic::Request::new(Ask::default());
        // Distinct request ids: nothing per request reaches a series.
        r.metadata_mut()
            .insert("x-request-id", format!("req-{i}").parse().unwrap());
        client.unary(r).await.unwrap();
    }
    for _ in 0..2 {
        client.unary(Ask::code(Code::NotFound)).await.unwrap_err();
    }
    client.unary(Ask::code(Code::Internal)).await.unwrap_err();
    for _ in 0..3 {
        let ask = Ask {
            messages: 1,
            ..Ask::default()
        };
        let mut s = client.watch(ask).await.unwrap().into_inner();
        while s.message().await.unwrap().is_some() {}
    }
    support::spans(&collector, 22, |s| {
        s.attributes.contains_key("rpc.response.status_code")
    })
    .await;
    drop(_default);
    t.shutdown().await;

    let series = |name: &str| {
        let mut s: Vec<_> = collector
            .metric_points(name)
            .into_iter()
            .map(|p| {
                let a = &p.attributes;
                let PointValue::Histogram {
                    count,
                    ref explicit_bounds,
                    ..
                } = p.value
                else {
                    panic!("a histogram: {p:?}");
                };
                assert_eq!(explicit_bounds.as_slice(), otelwire_tonic::DURATION_BUCKETS);
                assert_eq!(p.unit, "s");
                assert_eq!(a.get_str("rpc.system.name"), Some("grpc"));
                (
                    a.get_str("rpc.method").unwrap().to_owned(),
                    a.get_str("rpc.response.status_code").unwrap().to_owned(),
                    a.get_str("error.type").map(str::to_owned),
                    count,
                    keys(&p),
                )
            })
            .collect();
        s.sort();
        s
    };
    let server = series("rpc.server.call.duration");
    let plain = vec![
        "rpc.method".to_owned(),
        "rpc.response.status_code".to_owned(),
        "rpc.system.name".to_owned(),
    ];
    let with_error = {
        let mut k = plain.clone();
        k.insert(0, "error.type".to_owned());
        k
    };
    assert_eq!(
        server,
        [
            (
                "test.v1.Echo/Unary".into(),
                "INTERNAL".into(),
                Some("INTERNAL".into()),
                1,
                with_error.clone()
            ),
            (
                "test.v1.Echo/Unary".into(),
                "NOT_FOUND".into(),
                None,
                2,
                plain.clone()
            ),
            (
                "test.v1.Echo/Unary".into(),
                "OK".into(),
                None,
                5,
                plain.clone()
            ),
            (
                "test.v1.Echo/Watch".into(),
                "OK".into(),
                None,
                3,
                plain.clone()
            ),
        ]
    );
    // The client's series name the server, and NOT_FOUND fails a client.
    let client = series("rpc.client.call.duration");
    let statuses: Vec<_> = client
        .iter()
        .map(|(m, c, e, n, _)| (m.as_str(), c.as_str(), e.as_deref(), *n))
        .collect();
    assert_eq!(
        statuses,
        [
            ("test.v1.Echo/Unary", "INTERNAL", Some("INTERNAL"), 1),
            ("test.v1.Echo/Unary", "NOT_FOUND", Some("NOT_FOUND"), 2),
            ("test.v1.Echo/Unary", "OK", None, 5),
            ("test.v1.Echo/Watch", "OK", None, 3),
        ]
    );
    for p in collector.metric_points("rpc.client.call.duration") {
        assert_eq!(p.attributes.get_str("server.address"), Some("127.0.0.1"));
        assert_eq!(
            p.attributes.get_i64("server.port"),
            Some(i64::from(addr.port()))
        );
    }
}
