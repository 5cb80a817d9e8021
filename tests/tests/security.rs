//! orders-api's logins and bearer tokens as a user and an auditor see
//! them: the HTTP answers, the security events that arrive at the
//! collector (masked, with their trace ids), the counters, and no password
//! or token anywhere: not on the console, not in a log record, not in a
//! span attribute. On SQLite, and on the PostgreSQL server named by
//! `OTELWIRE_TEST_POSTGRES_URL` (skipped with a notice when unset, unless
//! `OTELWIRE_REQUIRE_TOOLS` is set, where it fails).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use otelwire::audit::{Auditor, MaskingPolicy, User};
use otelwire::{LogFormat, Protocol, Signal, Telemetry};
use otelwire_test::{Collector, Console, LogRecord, PointValue};

mod common;
use common::{demo_token, run, run_pricing};

const WAIT: Duration = Duration::from_secs(10);
const WRONG_PASSWORD: &str = "wrong-password-5150";
/// Well formed (64 hex digits) but never issued.
const FORGED_TOKEN: &str = "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff";

fn pipeline(name: &str, collector: &Collector, console: &Console) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name(name)
        .endpoint(collector.grpc_endpoint())
        .protocol(Protocol::Grpc)
        .log_format(LogFormat::Json)
        .writer(console.clone())
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .scheduled_delay(Signal::Logs, Duration::from_millis(100))
        .metric_export_interval(Duration::from_millis(300))
        .process_metrics(false)
        .build()
        .unwrap()
}

/// The one security event named `name` with these attribute values.
async fn event(collector: &Collector, name: &str, attrs: &[(&str, &str)]) -> LogRecord {
    let matches = |l: &LogRecord| {
        l.event_name == name
            && attrs
                .iter()
                .all(|(k, v)| l.attributes.get_str(k) == Some(*v))
    };
    let found = collector
        .wait_for_logs(1, matches, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{name} with {attrs:?}: {e}"));
    assert_eq!(found.len(), 1, "one {name} with {attrs:?}: {found:?}");
    let record = found.into_iter().next().unwrap();
    assert_eq!(record.scope.name, "otelwire::security");
    assert_eq!(
        record.attributes.get_str("event.category"),
        Some("security")
    );
    assert_eq!(record.attributes.get_str("event.name"), Some(name));
    assert!(
        record.trace_id.is_some(),
        "inside the request's trace: {record:?}"
    );
    for (k, _) in record.attributes.iter() {
        assert!(!k.starts_with("exception."), "no diagnostics: {record:?}");
        assert!(!k.contains("backtrace"), "no diagnostics: {record:?}");
    }
    record
}

/// Every security scenario against orders-api on `database_url`.
async fn logins_and_tokens(database_url: Option<String>) {
    let collector = Collector::start().unwrap();
    let console = Console::default();
    let (inv, stop_inventory) = run(
        pipeline("inventory", &collector, &Console::default()),
        async |t| inventory::router(t, inventory::Config::default()),
    );
    let (prices, stop_pricing) = run_pricing(
        pipeline("pricing", &collector, &Console::default()),
        pricing::Config::default(),
    );
    let upstreams = orders_api::Upstreams::new(format!("http://{inv}"), format!("http://{prices}"));
    let (ord, stop_orders) = run(
        pipeline("orders-api", &collector, &console),
        async move |t| {
            orders_api::app(t, &upstreams, database_url.as_deref())
                .await
                .unwrap()
        },
    );
    let base = format!("http://{ord}");
    let client = reqwest::Client::new();
    let login = async |email: &str, password: &str| {
        client
            .post(format!("{base}/login"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap()
    };
    let order = async |token: Option<&str>| {
        let mut r = client
            .post(format!("{base}/orders"))
            .json(&serde_json::json!({ "sku": "widget", "quantity": 1 }));
        if let Some(t) = token {
            r = r.header("authorization", t);
        }
        r.send().await.unwrap()
    };

    // Success: a token, and an order with it.
    let token = demo_token(&client, &base).await;
    assert_eq!(
        order(Some(&format!("Bearer {token}")))
            .await
            .status()
            .as_u16(),
        201
    );
    // Wrong password, unknown user: the same 401.
    let wrong = login("demo@example.com", WRONG_PASSWORD).await;
    assert_eq!(wrong.status().as_u16(), 401);
    let wrong_body = wrong.text().await.unwrap();
    let unknown = login("nobody@example.com", WRONG_PASSWORD).await;
    assert_eq!(unknown.status().as_u16(), 401);
    assert_eq!(
        unknown.text().await.unwrap(),
        wrong_body,
        "no hint which one was wrong"
    );
    // No token, a forged one, a malformed one.
    let missing = order(None).await;
    assert_eq!(missing.status().as_u16(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        order(Some(&format!("Bearer {FORGED_TOKEN}")))
            .await
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        order(Some("Bearer not-a-token")).await.status().as_u16(),
        401
    );
    // A user who may not order.
    let (viewer, viewer_password, can_order) = orders_api::DEMO_USERS[1];
    assert!(!can_order);
    let r = login(viewer, viewer_password).await;
    assert_eq!(r.status().as_u16(), 200);
    let viewer_token = r.json::<orders_api::Token>().await.unwrap().token;
    assert_eq!(
        order(Some(&format!("Bearer {viewer_token}")))
            .await
            .status()
            .as_u16(),
        403
    );

    // The events, each once, masked.
    // The demo user and the viewer logged in.
    let ok = event(
        &collector,
        "auth.login",
        &[
            ("user.email", "d***@example.com"),
            ("auth.outcome", "success"),
        ],
    )
    .await;
    assert_eq!(ok.severity_text, "INFO");
    assert!(ok.attributes.get_str("user.id").is_some());
    event(
        &collector,
        "auth.login",
        &[
            ("user.email", "v***@example.com"),
            ("auth.outcome", "success"),
        ],
    )
    .await;
    let wrong = event(
        &collector,
        "auth.login",
        &[("auth.reason", "wrong_password")],
    )
    .await;
    assert_eq!(wrong.severity_text, "WARN");
    assert_eq!(
        wrong.attributes.get_str("user.email"),
        Some("d***@example.com")
    );
    assert_eq!(wrong.attributes.get_str("auth.outcome"), Some("failure"));
    assert_eq!(
        wrong.attributes.get_str("client.address"),
        Some("127.0.0.0")
    );
    let unknown = event(&collector, "auth.login", &[("auth.reason", "unknown_user")]).await;
    assert_eq!(
        unknown.attributes.get_str("user.email"),
        Some("n***@example.com")
    );
    assert_eq!(unknown.attributes.get("user.id"), None);
    event(
        &collector,
        "auth.token.issued",
        &[
            ("user.email", "d***@example.com"),
            ("auth.scheme", "bearer"),
        ],
    )
    .await;
    for reason in ["missing", "unknown", "malformed"] {
        let r = event(
            &collector,
            "auth.token.rejected",
            &[("auth.reason", reason)],
        )
        .await;
        assert_eq!(r.severity_text, "WARN");
    }
    let denied = event(
        &collector,
        "auth.permission.denied",
        &[("user.email", "v***@example.com")],
    )
    .await;
    assert_eq!(denied.severity_text, "WARN");
    assert_eq!(
        denied.attributes.get_str("auth.action"),
        Some("orders.create")
    );
    assert_eq!(denied.attributes.get_str("auth.resource"), Some("/orders"));
    // The event is in the trace of the request that caused it.
    let trace = denied.trace_id.clone().unwrap();
    let server = collector
        .wait_for_spans(1, |s| s.trace_id == trace && s.name == "POST /orders", WAIT)
        .await
        .expect("the refused request's server span")
        .remove(0);
    assert_eq!(
        server.attributes.get_i64("http.response.status_code"),
        Some(403)
    );

    // The counters.
    for outcome in ["success", "failure"] {
        collector
            .wait_for_metric(
                "auth.login.attempts",
                |p| {
                    p.attributes.get_str("outcome") == Some(outcome)
                        && p.value == PointValue::Int(2)
                },
                WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("auth.login.attempts{{outcome={outcome}}}: {e}"));
    }
    collector
        .wait_for_metric(
            "auth.permission.denied",
            |p| p.value == PointValue::Int(1),
            WAIT,
        )
        .await
        .unwrap();

    let reports = [stop_orders(), stop_pricing(), stop_inventory()];
    for report in &reports {
        assert_eq!(report.dropped(), 0, "{report}");
    }

    // No password, token or clear address anywhere.
    let everything = format!(
        "{}\n{}\n{}\n{}",
        console.text(),
        serde_json::to_string(&collector.logs()).unwrap(),
        serde_json::to_string(&collector.spans()).unwrap(),
        serde_json::to_string(&collector.metrics()).unwrap(),
    );
    assert!(
        console.text().contains("\"auth.login\""),
        "the console has the events"
    );
    for secret in [
        "demo-password",
        viewer_password,
        WRONG_PASSWORD,
        token.as_str(),
        viewer_token.as_str(),
        FORGED_TOKEN,
        "not-a-token",
        "demo@example.com",
        "nobody@example.com",
        viewer,
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_tokens_on_sqlite() {
    logins_and_tokens(None).await;
}

/// A database of its own on the test server, so that runs never collide.
async fn fresh_postgres_database() -> Option<String> {
    let required = otelwire_tests::programs::tools_required();
    let url = match std::env::var("OTELWIRE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ if required => panic!(
            "OTELWIRE_TEST_POSTGRES_URL is not set: .ci/run starts a PostgreSQL server and sets it"
        ),
        _ => {
            eprintln!("SKIPPED: OTELWIRE_TEST_POSTGRES_URL is not set (.ci/run starts a server)");
            return None;
        }
    };
    let admin = match sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
    {
        Ok(p) => p,
        Err(e) if required => {
            panic!("PostgreSQL at OTELWIRE_TEST_POSTGRES_URL is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL at OTELWIRE_TEST_POSTGRES_URL is unreachable: {e}");
            return None;
        }
    };
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "orders_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let mut url = url::Url::parse(&url).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_tokens_on_postgres() {
    let Some(url) = fresh_postgres_database().await else {
        return;
    };
    logins_and_tokens(Some(url)).await;
}

/// The event types orders-api does not emit, through a pipeline: each with
/// its category, and a secret configuration value never shown.
#[tokio::test(flavor = "current_thread")]
async fn every_event_type_has_its_category_and_fixed_fields() {
    let collector = Collector::start().unwrap();
    let console = Console::default();
    let t = pipeline("auditor", &collector, &console);
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let audit = Auditor::new(&t.meter("audit"), MaskingPolicy::default());
    let admin = User::id("u-1").with_email("admin@example.com");
    let span = tracing::info_span!("admin request");
    span.in_scope(|| {
        audit.logout(admin, Some("192.0.2.44".parse().unwrap()));
        audit.password_changed(admin, None);
        audit.config_changed(admin, "orders.max_quantity", Some("10"), Some("20"));
        audit.config_changed(
            admin,
            "payment.api_key",
            Some("sk-live-old"),
            Some("sk-live-new"),
        );
        audit.data_accessed(admin, "customers", "export");
    });
    drop(span);
    let want = [
        ("auth.logout", "security", "INFO"),
        ("auth.password.changed", "security", "INFO"),
        ("config.changed", "audit", "INFO"),
        ("data.accessed", "audit", "INFO"),
    ];
    for (name, category, level) in want {
        let records = collector
            .wait_for_logs(1, |l| l.event_name == name, WAIT)
            .await
            .unwrap();
        for r in &records {
            assert_eq!(
                r.attributes.get_str("event.category"),
                Some(category),
                "{r:?}"
            );
            assert_eq!(r.scope.name, format!("otelwire::{category}"));
            assert_eq!(r.severity_text, level);
            assert_eq!(r.attributes.get_str("user.email"), Some("a***@example.com"));
            assert!(r.trace_id.is_some());
        }
    }
    let config = collector
        .wait_for_logs(2, |l| l.event_name == "config.changed", WAIT)
        .await
        .unwrap();
    let secret = config
        .iter()
        .find(|l| l.attributes.get_str("config.key") == Some("payment.api_key"))
        .unwrap();
    assert_eq!(
        secret.attributes.get_str("config.new_value"),
        Some("[REDACTED]")
    );
    let plain = config
        .iter()
        .find(|l| l.attributes.get_str("config.key") == Some("orders.max_quantity"))
        .unwrap();
    assert_eq!(plain.attributes.get_str("config.old_value"), Some("10"));
    assert_eq!(plain.attributes.get_str("config.new_value"), Some("20"));
    let logout = collector
        .logs()
        .into_iter()
        .find(|l| l.event_name == "auth.logout")
        .unwrap();
    assert_eq!(
        logout.attributes.get_str("client.address"),
        Some("192.0.2.0")
    );
    t.shutdown().await;
    let console = console.text();
    for leaked in [
        "sk-live-old",
        "sk-live-new",
        "admin@example.com",
        "192.0.2.44",
    ] {
        assert!(!console.contains(leaked), "{leaked} on the console");
        assert!(
            !serde_json::to_string(&collector.logs())
                .unwrap()
                .contains(leaked),
            "{leaked} in a log record"
        );
    }
}
