//! `GET /health/logs` (otelwire-axum's health router) with the default
//! files: every sink's counts, 200 while they are healthy, 503 while the
//! audit file's disk fails, the error with the file's name and no directory.

use std::time::{Duration, Instant};

use otelwire::LogFormat;
use otelwire_files::{Files, FilesExt, FlakyDisk};
use tower::ServiceExt;

async fn get(router: &axum::Router, path: &str) -> (u16, serde_json::Value) {
    let response = router
        .clone()
        .oneshot(
            http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Asks until `ok` accepts the answer, or fails after 20 s.
async fn wait_for(
    router: &axum::Router,
    what: &str,
    ok: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(router, "/health/logs").await;
        if ok(status, &body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: last {status} {body}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn audit(body: &serde_json::Value) -> &serde_json::Value {
    body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "file audit.jsonl")
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn health_logs_shows_each_file_and_answers_503_while_the_audit_disk_fails() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FlakyDisk::only("audit.jsonl");
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .sdk_disabled(true)
        .log_format(LogFormat::None)
        .service_name("health-logs")
        .files(Files::defaults().dir(dir.path()).faults(disk.clone()))
        .build()
        .unwrap();
    let router = otelwire_axum::health_router(telemetry.health_source());
    let login = |n: u64| {
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            for seq in 0..n {
                tracing::event!(target: "otelwire::security", tracing::Level::INFO,
                    event.name = "auth.login", seq, "login success");
            }
        })
    };

    login(3);
    telemetry.force_flush();
    let (status, body) = get(&router, "/health/logs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "health-logs");
    let names: Vec<&str> = body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "file app.jsonl",
            "file metrics.jsonl",
            "file alerts.jsonl",
            "file audit.jsonl"
        ]
    );
    let a = audit(&body);
    assert_eq!(
        (&a["written"], &a["dropped"], &a["failures"], &a["blocked"]),
        (&3.into(), &0.into(), &0.into(), &0.into()),
        "{a}"
    );
    assert!(a.get("last_error").is_none(), "{a}");

    disk.fail();
    login(2);
    let body = wait_for(&router, "503 while the disk fails", |status, body| {
        status == 503 && audit(body)["failures"].as_u64() > Some(0)
    })
    .await;
    assert_eq!(body["status"], "degraded");
    let a = audit(&body);
    let error = a["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("cannot write log file audit.jsonl: no space left on device"),
        "{error}"
    );
    let dir_text = dir.path().display().to_string();
    assert!(
        !body.to_string().contains(&dir_text),
        "no directory: {body}"
    );
    assert_eq!(a["dropped"], 0, "lossless: kept, not dropped");
    let app = body["outputs"][0].clone();
    assert_eq!(app["status"], "ok", "app.jsonl is fine: {app}");

    disk.heal();
    let body = wait_for(&router, "200 once the disk is back", |status, body| {
        status == 200 && audit(body)["written"] == 5
    })
    .await;
    assert_eq!(audit(&body)["dropped"], 0);
    // /health/telemetry is still there, beside it.
    let (status, body) = get(&router, "/health/telemetry").await;
    assert_eq!(status, 200);
    assert_eq!(body["components"].as_array().unwrap().len(), 4);
}
