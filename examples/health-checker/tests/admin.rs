//! The admin routes of the real `health-checker` binary (issue 18,
//! section 1): mounted only when `OTELWIRE_ADMIN_TOKEN` is set, and then
//! behind it.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "health-checker-admin-token-51d0";

struct Program(Child, u16);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(token: Option<&str>) -> Program {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_health-checker"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL") || k == "RUST_LOG" || k == "PORT" {
            cmd.env_remove(k);
        }
    }
    cmd.env("OTEL_SDK_DISABLED", "true")
        .env("OTELWIRE_LOG_FORMAT", "none")
        .env("PORT", port.to_string())
        // Nothing to check: unreachable services only make noise here.
        .env("ORDERS_API_URL", "http://127.0.0.1:9")
        .env("INVENTORY_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(t) = token {
        cmd.env("OTELWIRE_ADMIN_TOKEN", t);
    }
    Program(cmd.spawn().unwrap(), port)
}

/// Status and body, once the program answers.
async fn call(
    port: u16,
    method: reqwest::Method,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + common::WAIT;
    loop {
        let mut req = client
            .request(
                method.clone(),
                format!("http://127.0.0.1:{port}/admin/log-level"),
            )
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) => return (r.status().as_u16(), r.text().await.unwrap()),
            Err(e) => {
                assert!(Instant::now() < deadline, "never answered: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn the_admin_routes_need_the_variable_and_the_token() {
    let plain = start(None);
    assert_eq!(
        call(plain.1, reqwest::Method::GET, Some(TOKEN), "").await.0,
        404
    );

    let admin = start(Some(TOKEN));
    assert_eq!(call(admin.1, reqwest::Method::GET, None, "").await.0, 401);
    assert_eq!(
        call(admin.1, reqwest::Method::PUT, Some(TOKEN), "warn").await,
        (200, "warn\n".to_owned())
    );
    assert_eq!(
        call(admin.1, reqwest::Method::GET, Some(TOKEN), "").await,
        (200, "warn\n".to_owned())
    );
}
