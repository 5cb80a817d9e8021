//! The admin routes of the real `orders-api` binary (issue 18, section 1):
//! mounted only when `OTELWIRE_ADMIN_TOKEN` is set, and then behind it; a
//! bad directive changes nothing; each change is a `config.changed` audit
//! event in the service's `audit.jsonl`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use common::{Service, TempDir, WAIT, wait_until};

const TOKEN: &str = "orders-admin-token-5c1e";

impl Service {
    /// One request; the status and the body.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr()).unwrap();
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
    let plain = Service::start(&[]);
    assert_eq!(
        plain.call("GET", "/admin/log-level", Some(TOKEN), "").0,
        404
    );
    drop(plain);

    let dir = TempDir::new("orders-api-admin");
    let admin = Service::start(&[
        ("OTELWIRE_ADMIN_TOKEN", TOKEN),
        ("OTELWIRE_LOG_DIR", dir.0.to_str().unwrap()),
    ]);
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
    let audited = wait_until("the config.changed audit line", WAIT, || {
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
