//! The admin routes of the real `orders-api` binary (issue 18, section 1):
//! mounted only when `OTELWIRE_ADMIN_TOKEN` is set, and then behind it; a
//! bad directive changes nothing; each change is a `config.changed` audit
//! event in the service's `audit.jsonl`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "orders-admin-token-5c1e";

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
            std::env::temp_dir().join(format!("orders-api-admin-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `orders-api` on a free loopback port; killed when dropped.
struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start(token: Option<&str>, log_dir: Option<&Path>) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orders-api"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("OTEL_SDK_DISABLED", "true")
            .env("INVENTORY_URL", "http://127.0.0.1:9")
            .env("OTELWIRE_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(t) = token {
            cmd.env("OTELWIRE_ADMIN_TOKEN", t);
        }
        if let Some(d) = log_dir {
            cmd.env("OTELWIRE_LOG_DIR", d);
        }
        let mut child = cmd.spawn().expect("orders-api starts");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut service = Service {
            child,
            addr: String::new(),
        };
        service.addr = wait_until("orders-api listening", || {
            let lines = lines.lock().unwrap();
            let line = lines.iter().find(|l| l.contains("orders-api listening"))?;
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            v["addr"].as_str().map(str::to_owned)
        });
        service
    }

    /// One request; the status and the body.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: orders-api\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        (
            head.split(' ').nth(1).unwrap().parse().unwrap(),
            body.to_owned(),
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `config.changed` events in `dir`'s `audit.jsonl`: `(old, new)`.
fn changes(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event.name"] == "config.changed")
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
            (s("config.old_value"), s("config.new_value"))
        })
        .collect()
}

#[test]
fn the_admin_routes_need_the_variable_and_the_token() {
    let plain = Service::start(None, None);
    assert_eq!(
        plain.call("GET", "/admin/log-level", Some(TOKEN), "").0,
        404
    );
    drop(plain);

    let dir = TempDir::new();
    let admin = Service::start(Some(TOKEN), Some(&dir.0));
    assert_eq!(admin.call("GET", "/admin/log-level", None, "").0, 401);
    assert_eq!(
        admin
            .call(
                "GET",
                "/admin/log-level",
                Some("orders-admin-token-5c1f"),
                ""
            )
            .0,
        401
    );
    assert_eq!(admin.call("PUT", "/admin/log-level", None, "debug").0, 401);
    assert_eq!(
        admin.call("GET", "/admin/log-level", Some(TOKEN), ""),
        (200, "info\n".to_owned())
    );
    // A directive that does not parse changes nothing.
    assert_eq!(
        admin
            .call(
                "PUT",
                "/admin/log-level",
                Some(TOKEN),
                "info,orders_api=loud"
            )
            .0,
        400
    );
    assert_eq!(
        admin.call("GET", "/admin/log-level", Some(TOKEN), "").1,
        "info\n"
    );
    assert_eq!(
        admin.call(
            "PUT",
            "/admin/log-level?ttl=600",
            Some(TOKEN),
            "info,orders_api=debug"
        ),
        (200, "info,orders_api=debug\n".to_owned())
    );
    assert_eq!(
        admin.call("GET", "/admin/log-level", Some(TOKEN), "").1,
        "info,orders_api=debug\n"
    );
    // The one change that happened is in the audit trail, old and new.
    let audited = wait_until("the config.changed audit line", || {
        let c = changes(&dir.0);
        (!c.is_empty()).then_some(c)
    });
    assert_eq!(
        audited,
        [("info".to_owned(), "info,orders_api=debug".to_owned())]
    );
    let trail = std::fs::read_to_string(dir.0.join("audit.jsonl")).unwrap();
    assert!(!trail.contains(TOKEN), "the token is in the audit trail");
}
