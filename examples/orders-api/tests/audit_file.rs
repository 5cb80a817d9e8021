//! `OTELWIRE_LOG_DIR` on the real `orders-api` binary: its logins land in
//! `audit.jsonl`, on disk as they happen and still there after SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// Waits until `f` returns `Some`, or panics with `what` after [`WAIT`].
fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("orders-api-audit-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the child if the test fails half-way.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn post_login(addr: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response: {response:?}"))
}

/// The JSON lines of `file` in `dir` (none when it does not exist yet).
fn lines(dir: &Path, file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn logins(dir: &Path) -> Vec<(String, String)> {
    lines(dir, "audit.jsonl")
        .iter()
        .filter(|l| l["event.name"] == "auth.login")
        .map(|l| {
            (
                l["message"].as_str().unwrap_or_default().to_owned(),
                l["target"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn logins_land_in_audit_jsonl_and_stay_there_after_sigterm() {
    let dir = TempDir::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orders-api"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("OTEL_SDK_DISABLED", "true")
        .env("INVENTORY_URL", "http://127.0.0.1:9")
        .env("OTELWIRE_LOG_FORMAT", "json")
        .env("OTELWIRE_LOG_DIR", &dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("orders-api starts");
    let stdout = child.stdout.take().unwrap();
    let mut service = Service(child);
    let console = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let console = console.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                console.lock().unwrap().push(line);
            }
        });
    }
    let addr = wait_until("the listening line", || {
        let console = console.lock().unwrap();
        let line = console
            .iter()
            .find(|l| l.contains("orders-api listening"))?;
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        v["addr"].as_str().map(str::to_owned)
    });

    let good = r#"{"email":"demo@example.com","password":"demo-password"}"#;
    let bad = r#"{"email":"demo@example.com","password":"not-the-password"}"#;
    assert_eq!(post_login(&addr, good), 200);
    assert_ne!(post_login(&addr, bad), 200);

    // In the file while the service runs (the audit file syncs each batch).
    let seen = wait_until("both logins in audit.jsonl", || {
        let l = logins(&dir.0);
        (l.len() == 2).then_some(l)
    });
    assert!(seen[0].0.contains("login success"), "{seen:?}");
    assert!(seen[1].0.contains("login failure"), "{seen:?}");
    assert!(seen.iter().all(|(_, t)| t == "otelwire::security"));

    let ok = Command::new("kill")
        .args(["-TERM", &service.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "SIGTERM delivered");
    let status = wait_until("the exit", || service.0.try_wait().unwrap());
    assert!(status.success(), "{status:?}");

    // After shutdown: the same two logins, once each, and only audit
    // events in the file (no request or diagnostic lines).
    assert_eq!(logins(&dir.0), seen);
    let audit = lines(&dir.0, "audit.jsonl");
    assert!(
        audit.iter().all(|l| {
            let t = l["target"].as_str().unwrap_or_default();
            t == "otelwire::security" || t == "otelwire::audit"
        }),
        "{audit:?}"
    );
    assert!(
        audit.iter().any(|l| l["event.name"] == "auth.token.issued"),
        "{audit:?}"
    );
    let raw = std::fs::read_to_string(dir.0.join("audit.jsonl")).unwrap();
    assert!(
        !raw.contains("demo-password") && !raw.contains("not-the-password"),
        "no password in the audit file"
    );
    // The other default files are there too.
    assert!(
        lines(&dir.0, "app.jsonl")
            .iter()
            .any(|l| l["message"] == "orders-api listening")
    );
}
