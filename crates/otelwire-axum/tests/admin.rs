//! `admin_router` over real HTTP (issue 18, section 1): the token, the
//! filter in force, a change, a bad one, a revert after `?ttl=`, the audit
//! events, and the debug line that a change lets through.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_axum::{AdminToken, OtelLayer, admin_router};
use otelwire_test::{Collector, LogRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "admin-test-token-6f1c";
const WAIT: Duration = Duration::from_secs(10);

fn telemetry(collector: &Collector) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("admin-test")
        .endpoint(collector.http_endpoint())
        .filter("info")
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(50))
        .scheduled_delay(Signal::Logs, Duration::from_millis(50))
        .metrics(false)
        .process_metrics(false)
        .build()
        .unwrap()
}

/// The service: one route that logs at DEBUG, and the admin routes.
async fn serve(t: &Telemetry) -> SocketAddr {
    let app = Router::new()
        .route(
            "/orders",
            get(|| async {
                tracing::debug!(target: "orders_api", "looking the orders up");
                "orders"
            }),
        )
        .layer(OtelLayer::new())
        .merge(admin_router(
            t.filter_handle(),
            AdminToken::new(TOKEN).unwrap(),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 request on a connection of its own.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: admin.test\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn config_changes(logs: &[LogRecord]) -> Vec<(String, String)> {
    logs.iter()
        .filter(|l| l.event_name == "config.changed")
        .map(|l| {
            let get = |k| l.attr(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            (get("config.old_value"), get("config.new_value"))
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn every_request_needs_the_token() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = serve(&t).await;

    for (method, token) in [
        ("GET", None),
        ("GET", Some("wrong-token")),
        ("PUT", None),
        ("PUT", Some("admin-test-token-6f1")),
        ("PUT", Some("admin-test-token-6f1cc")),
    ] {
        let r = call(addr, method, "/admin/log-level", token, "debug").await;
        assert_eq!(r.status, 401, "{method} {token:?}");
        assert!(r.head.contains("www-authenticate: bearer"), "{}", r.head);
    }
    // Unchanged by any of them.
    assert_eq!(t.filter(), "info");
    let rejected = collector
        .wait_for_logs(5, |l| l.event_name == "auth.token.rejected", WAIT)
        .await
        .unwrap();
    // The token given is never recorded.
    for l in &rejected {
        assert!(!format!("{l:?}").contains("wrong-token"));
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn get_put_bad_directive_and_audit() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = serve(&t).await;

    let r = call(addr, "GET", "/admin/log-level", Some(TOKEN), "").await;
    assert_eq!((r.status, r.body.as_str()), (200, "info\n"));

    // Before: the route's DEBUG line is not logged.
    assert_eq!(call(addr, "GET", "/orders?n=1", None, "").await.status, 200);

    let r = call(
        addr,
        "PUT",
        "/admin/log-level",
        Some(TOKEN),
        "info,orders_api=debug",
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "info,orders_api=debug\n")
    );
    let r = call(addr, "GET", "/admin/log-level", Some(TOKEN), "").await;
    assert_eq!(r.body, "info,orders_api=debug\n");
    assert_eq!(t.filter(), "info,orders_api=debug");

    // After: it is, at the collector, inside the request's trace.
    assert_eq!(call(addr, "GET", "/orders?n=2", None, "").await.status, 200);
    let debug = collector
        .wait_for_logs(1, |l| l.body_str() == Some("looking the orders up"), WAIT)
        .await
        .unwrap();
    assert_eq!(debug[0].severity_text, "DEBUG");
    assert!(debug[0].trace_id.is_some());

    // A bad directive: 400 with the reason, nothing changed.
    let r = call(
        addr,
        "PUT",
        "/admin/log-level",
        Some(TOKEN),
        "info,orders_api=loud",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("orders_api=loud"), "{}", r.body);
    let r = call(
        addr,
        "PUT",
        "/admin/log-level?ttl=soon",
        Some(TOKEN),
        "debug",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("ttl"), "{}", r.body);
    assert_eq!(t.filter(), "info,orders_api=debug");

    // One audit event, with who and old -> new, never the token.
    let audit = collector
        .wait_for_logs(1, |l| l.event_name == "config.changed", WAIT)
        .await
        .unwrap();
    assert_eq!(
        config_changes(&audit),
        [("info".to_owned(), "info,orders_api=debug".to_owned())]
    );
    let who = audit[0].attr("user.id").and_then(|v| v.as_str()).unwrap();
    assert!(who.contains("authenticated"), "{who}");
    // The default masking policy keeps the client address's /24.
    assert!(who.contains("127.0.0.0"), "{who}");
    assert_eq!(
        audit[0].attr("config.key").and_then(|v| v.as_str()),
        Some("log.filter")
    );
    for l in collector.logs() {
        assert!(!format!("{l:?}").contains(TOKEN), "{l:?}");
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_ttl_reverts_and_a_later_put_cancels_it() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = serve(&t).await;

    // Reverted after a second.
    let r = call(addr, "PUT", "/admin/log-level?ttl=1", Some(TOKEN), "debug").await;
    assert_eq!(r.status, 200);
    assert_eq!(t.filter(), "debug");
    let audit = collector
        .wait_for_logs(2, |l| l.event_name == "config.changed", WAIT)
        .await
        .unwrap();
    assert_eq!(
        config_changes(&audit),
        [
            ("info".to_owned(), "debug".to_owned()),
            ("debug".to_owned(), "info".to_owned()),
        ]
    );
    assert_eq!(
        audit[1].attr("user.id").and_then(|v| v.as_str()),
        Some("admin ttl revert")
    );
    assert_eq!(t.filter(), "info");

    // A later PUT without a ttl cancels the pending revert: the change
    // stays past the first one's deadline (seen by a revert that comes
    // after it and restores the original filter).
    call(addr, "PUT", "/admin/log-level?ttl=1", Some(TOKEN), "debug").await;
    call(addr, "PUT", "/admin/log-level", Some(TOKEN), "warn").await;
    call(addr, "PUT", "/admin/log-level?ttl=2", Some(TOKEN), "trace").await;
    // 2 + 3 changes, then the ttl=2 revert: back to "warn", the filter from
    // before the temporary change (the cancelled ttl=1 revert never ran).
    let audit = collector
        .wait_for_logs(6, |l| l.event_name == "config.changed", WAIT)
        .await
        .unwrap();
    assert_eq!(
        config_changes(&audit)[2..],
        [
            ("info".to_owned(), "debug".to_owned()),
            ("debug".to_owned(), "warn".to_owned()),
            ("warn".to_owned(), "trace".to_owned()),
            ("trace".to_owned(), "warn".to_owned()),
        ]
    );
    assert_eq!(t.filter(), "warn");
    t.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn temporary_changes_in_a_row_revert_to_where_they_started() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = serve(&t).await;
    call(
        addr,
        "PUT",
        "/admin/log-level?ttl=600",
        Some(TOKEN),
        "debug",
    )
    .await;
    call(addr, "PUT", "/admin/log-level?ttl=1", Some(TOKEN), "trace").await;
    let audit = collector
        .wait_for_logs(3, |l| l.event_name == "config.changed", WAIT)
        .await
        .unwrap();
    assert_eq!(
        config_changes(&audit)[2],
        ("trace".to_owned(), "info".to_owned())
    );
    assert_eq!(t.filter(), "info");
    t.shutdown().await;
}
