//! A failed call's secrets stay out of every output: the console, the
//! files, the exported log records and spans (issue 16, section 4).

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use otelwire::{LogFormat, Signal};
use otelwire_files::{Files, FilesExt};
use otelwire_reqwest::OtelMiddleware;
use otelwire_test::{Collector, Console};

/// A value that cannot occur by chance in ids, timestamps or counters.
const SECRET: &str = "s3cr3t-Tok3n-q9";

#[tokio::test(flavor = "current_thread")]
async fn a_failed_calls_secret_is_in_no_line_record_or_span() {
    let collector = Collector::start().unwrap();
    let dir = std::env::temp_dir().join(format!("otelwire-reqwest-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let console = Console::default();
    let t = otelwire::builder()
        .env_source(|_| None)
        .service_name("client-secrets")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::Json)
        .writer(console.clone())
        .files(Files::defaults().dir(&dir))
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .process_metrics(false)
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(t.dispatch());

    let app = Router::new().route("/", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OtelMiddleware::new().meter(t.meter("otelwire-reqwest")))
        .build();

    let refused = client
        .get(format!("http://127.0.0.1:{closed}/?token={SECRET}"))
        .send()
        .await
        .expect_err("nothing listens on the closed port");
    // The caller's error keeps its URL: only what otelwire logs loses it.
    assert!(refused.url().is_some_and(|u| u.as_str().contains(SECRET)));
    let answered = client
        .get(format!("http://{addr}/?token={SECRET}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 500);

    drop(_default);
    t.shutdown().await;
    server.abort();

    let console = console.text();
    let failed: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("HTTP call failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{console}");
    let line: serde_json::Value = serde_json::from_str(failed[0]).unwrap();
    // The cause is still there for the reader, and the URL in its redacted form.
    let error = line["error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("connect"), "{error}");
    assert_eq!(
        line["url.full"],
        format!("http://127.0.0.1:{closed}/?token=REDACTED")
    );
    for l in console.lines() {
        assert!(!l.contains(SECRET), "console: {l}");
    }

    let mut file_lines = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        file_lines += text
            .lines()
            .filter(|l| l.contains("HTTP call failed"))
            .count();
        for l in text.lines() {
            assert!(!l.contains(SECRET), "{}: {l}", path.display());
        }
    }
    // app.jsonl and alerts.jsonl (a WARN) both take it.
    assert_eq!(file_lines, 2);

    let records = collector.logs_with_body("HTTP call failed");
    assert_eq!(records.len(), 1, "{:?}", collector.logs());
    let logs = format!("{:?}", collector.logs());
    assert!(!logs.contains(SECRET), "{logs}");
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let spans = format!("{spans:?}");
    assert!(!spans.contains(SECRET), "{spans}");
    let _ = std::fs::remove_dir_all(&dir);
}
