//! The program as a user runs it: a bad configuration file stops it with a
//! message naming the file; a good one serves `/health` on `PORT` until
//! SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_health-checker"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL") || k == "RUST_LOG" || k == "PORT" {
            cmd.env_remove(k);
        }
    }
    cmd.env("OTEL_SDK_DISABLED", "true")
        .env("OTELWIRE_LOG_FORMAT", "none")
        .stdin(Stdio::null());
    cmd
}

fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("health-checker-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_bad_configuration_file_is_an_error_naming_it() {
    let path = config_file(
        "bad",
        "[[checks]]\nname = \"db\"\nkind = \"database\"\nurl = \"postgres://db/app\"\n",
    );
    let out = command()
        .env("HEALTH_CHECKER_CONFIG", &path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("check \"db\"") && stderr.contains("only sqlite: URLs"),
        "{stderr}"
    );

    let out = command()
        .env("HEALTH_CHECKER_CONFIG", "no/such/file.toml")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot read the health-checker configuration no/such/file.toml"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn it_serves_health_on_port_and_stops_on_sigterm() {
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let path = config_file(
        "good",
        &format!(
            "[[checks]]\nname = \"port\"\nkind = \"tcp\"\ncritical = true\naddress = \"{}\"\n",
            target.local_addr().unwrap()
        ),
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = command()
        .env("HEALTH_CHECKER_CONFIG", &path)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = rt.block_on(async {
        let url = format!("http://127.0.0.1:{port}/health");
        let deadline = Instant::now() + common::WAIT;
        loop {
            if let Ok(r) = reqwest::get(&url).await {
                let body: serde_json::Value = r.json().await.unwrap();
                if body["status"] == "healthy" {
                    return Some(body);
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let _ = std::fs::remove_file(&path);
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let body = body.unwrap_or_else(|| {
        panic!(
            "/health never said healthy: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(body["score"], 100.0);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
