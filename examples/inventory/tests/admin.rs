//! The admin routes of the real `inventory` binary (issue 18, section 1):
//! mounted only when `OTELWIRE_ADMIN_TOKEN` is set, and then behind it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::Service;

const TOKEN: &str = "inventory-admin-token-93ab";

impl Service {
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

#[test]
fn the_admin_routes_need_the_variable_and_the_token() {
    let plain = Service::start(&[]);
    assert_eq!(
        plain.call("GET", "/admin/log-level", Some(TOKEN), "").0,
        404
    );

    let admin = Service::start(&[("OTELWIRE_ADMIN_TOKEN", TOKEN)]);
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
