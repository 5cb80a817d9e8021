//! The admin routes of the real `inventory` binary (issue 18, section 1):
//! mounted only when `OTELWIRE_ADMIN_TOKEN` is set, and then behind it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "inventory-admin-token-93ab";

struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start(token: Option<&str>) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_inventory"));
        cmd.env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("OTEL_SDK_DISABLED", "true")
            .env("OTELWIRE_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(t) = token {
            cmd.env("OTELWIRE_ADMIN_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("inventory starts");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        let line = loop {
            let found = lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("inventory listening"))
                .cloned();
            if let Some(l) = found {
                break l;
            }
            assert!(Instant::now() < deadline, "inventory never listened");
            std::thread::sleep(Duration::from_millis(20));
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        Service {
            child,
            addr: v["addr"].as_str().unwrap().to_owned(),
        }
    }

    /// One request; the status and the body.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: inventory\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
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

#[test]
fn the_admin_routes_need_the_variable_and_the_token() {
    let plain = Service::start(None);
    assert_eq!(
        plain.call("GET", "/admin/log-level", Some(TOKEN), "").0,
        404
    );

    let admin = Service::start(Some(TOKEN));
    assert_eq!(admin.call("GET", "/admin/log-level", None, "").0, 401);
    assert_eq!(
        admin.call("GET", "/admin/log-level", Some(TOKEN), ""),
        (200, "info\n".to_owned())
    );
    assert_eq!(
        admin.call(
            "PUT",
            "/admin/log-level?ttl=600",
            Some(TOKEN),
            "info,inventory=debug"
        ),
        (200, "info,inventory=debug\n".to_owned())
    );
    assert_eq!(
        admin.call("GET", "/admin/log-level", Some(TOKEN), "").1,
        "info,inventory=debug\n"
    );
}
