//! The hardening trial (issue 19) against the real `inventory` binary: the
//! requests of the trial, and what a user sees (HTTP status, exit code and
//! how long the exit took).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Service, WAIT, wait_until};

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nx-request-id: trial\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response: {response:?}"));
    (status, response)
}

/// Item 15: inventory refuses the trial's skus itself (400), whoever sends
/// them; a good sku is still served.
#[test]
fn bad_skus_are_refused() {
    let service = Service::start(&[]);
    for path in [
        "/items/..%2Fhealth%2Ftelemetry",
        "/items/widget%3Ftoken=s3cr3t",
        "/items/a%0D%0AX",
        "/items/%2e%2e",
    ] {
        let (status, text) = get(&service.addr, path);
        assert_eq!(status, 400, "{path}: {text}");
    }
    assert_eq!(get(&service.addr, "/items/widget").0, 200);
    assert_eq!(get(&service.addr, "/items/nothing").0, 404);
}

/// Item 16: an unknown path is answered 404 with an `x-request-id`, and
/// traced: its completion line is on the console.
#[test]
fn an_unknown_path_is_traced() {
    let service = Service::start(&[]);
    let (status, text) = get(&service.addr, "/no/such/path");
    assert_eq!(status, 404, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nx-request-id: trial\r\n"),
        "{text}"
    );
    let line = wait_until("the completion line", WAIT, || {
        service
            .lines()
            .into_iter()
            .find(|l| l.contains("request completed"))
    });
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["http.response.status_code"], 404, "{line}");
    assert_eq!(v["span"]["url.path"], "/no/such/path", "{line}");
}

/// Item 14: a client that never finishes its request head, and one that
/// never finishes its body, do not hold inventory after SIGTERM: it exits
/// (code 0) within the drain deadline (5 s).
#[test]
fn unfinished_requests_do_not_hold_shutdown() {
    let mut service = Service::start(&[]);
    let mut head = TcpStream::connect(&service.addr).unwrap();
    head.write_all(b"GET /items/widget HTTP/1.1\r\nHost: x\r\nAcc")
        .unwrap();
    let mut body = TcpStream::connect(&service.addr).unwrap();
    body.write_all(b"GET /items/widget HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    assert_eq!(get(&service.addr, "/items/widget").0, 200);
    let sent = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let exit = wait_until("the exit", Duration::from_secs(15), || {
        service.child.try_wait().unwrap()
    });
    let took = sent.elapsed();
    assert!(exit.success(), "{exit:?}");
    assert!(
        took < Duration::from_millis(6500),
        "exited {took:?} after SIGTERM (drain deadline 5 s)"
    );
    for mut s in [head, body] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut rest = Vec::new();
        assert!(s.read_to_end(&mut rest).is_ok(), "the connection is closed");
    }
}

/// Item 14: a body that stops arriving is answered 408 once the request
/// timeout (here 300 ms instead of the default 15 s) passes, by the same
/// server loop and middleware the services use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_body_times_out_with_408() {
    use inventory::server::{Limits, request_timeout, serve};
    let routes = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: String| async move { body }),
    );
    let limits = Limits {
        request: Duration::from_millis(300),
        ..Limits::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        request_timeout(routes, limits.request),
        async {
            let _ = stopped.await;
        },
        limits,
    ));
    let response = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        (
            started.elapsed(),
            String::from_utf8_lossy(&buf[..n]).into_owned(),
        )
    })
    .await
    .unwrap();
    let (took, text) = response;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
