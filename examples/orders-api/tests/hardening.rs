//! The hardening trial (issue 19) against the real `orders-api` binary:
//! the same environment, the same requests, and what a user sees (the
//! console lines in each format, the HTTP status, the exit code and how
//! long the exit took).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Service, WAIT, http, post_json, wait_until};

/// Logs in as the demo user; the bearer token.
fn demo_token(addr: &str) -> String {
    let (status, text) = post_json(
        addr,
        "/login",
        "",
        r#"{"email":"demo@example.com","password":"demo-password"}"#,
    );
    assert_eq!(status, 200, "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// The part of a text line after its timestamp.
fn after_timestamp(line: &str) -> &str {
    &line[line.find(' ').expect("a timestamp")..]
}

/// Item 3: with `OTELWIRE_AUDIT_CLIENT_ADDRESS=drop` or `truncate`, the
/// login event's console line, in every format, carries only the masked
/// address: not the request span's full `client.address` (`127.0.0.1`).
#[test]
fn audit_masking_holds_on_the_console_in_every_format() {
    let trials = [("drop", None), ("truncate", Some("127.0.0.0"))];
    for format in ["json", "compact", "pretty"] {
        for (policy, shown) in trials {
            let service = Service::start(&[
                ("OTELWIRE_AUDIT_CLIENT_ADDRESS", policy),
                ("OTELWIRE_LOG_FORMAT", format),
            ]);
            let (status, _) = post_json(
                service.addr(),
                "/login",
                "",
                r#"{"email":"demo@example.com","password":"wrong-password"}"#,
            );
            assert_eq!(status, 401);
            let line = service.wait_line("the auth.login line", |l| {
                l.contains("auth.login") && l.contains("login failure")
            });
            let trial = format!("{format}, {policy}: {line}");
            assert!(!line.contains("127.0.0.1"), "full client address: {trial}");
            match format {
                "json" => {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    assert_eq!(v["client.address"].as_str(), shown, "{trial}");
                    assert_eq!(v["user.email"], "d***@example.com", "{trial}");
                    assert_eq!(
                        v["span"],
                        serde_json::json!({"name": "POST /login"}),
                        "the span's name, not its fields: {trial}"
                    );
                }
                _ => {
                    let address = match shown {
                        Some(a) => format!(" client.address={a}"),
                        None => String::new(),
                    };
                    let span = if format == "pretty" {
                        "\n"
                    } else {
                        " span=POST /login\n"
                    };
                    assert_eq!(
                        after_timestamp(&line),
                        format!(
                            "  WARN otelwire::security: login failure event.name=auth.login \
                             event.category=security user.email=d***@example.com{address} \
                             auth.outcome=failure auth.reason=wrong_password{span}"
                        ),
                        "{trial}"
                    );
                    if format == "pretty" {
                        // The second line of a pretty event names the span.
                        let lines = service.lines();
                        let i = lines.iter().position(|l| *l == line).unwrap();
                        let next = wait_until("the span line", WAIT, || {
                            service.lines().get(i + 1).cloned()
                        });
                        assert_eq!(next, "    in POST /login\n", "{trial}");
                    }
                }
            }
        }
    }
}

/// A stand-in inventory on a free loopback port: answers every request
/// with one item and records each request line as it arrived.
fn fake_inventory() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
                line.clear();
            }
            record.lock().unwrap().push(head);
            let body = r#"{"sku":"widget","name":"Widget","stock":5}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen)
}

/// The pricing service, in this process on a thread of its own, untraced;
/// its URL, and a sender whose drop stops it.
fn pricing_server() -> (String, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let telemetry = otelwire::builder()
            .sdk_disabled(true)
            .log_format(otelwire::LogFormat::None)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let serve = pricing::serve(listener, &telemetry, pricing::Config::default(), async {
                let _ = stopped.await;
            });
            let _ = serve.await;
        });
    });
    (url, stop)
}

/// Item 15: the skus of the trial are refused with 400 and never reach
/// inventory; a good sku reaches it as `/items/{sku}` and nothing else.
#[test]
fn a_bad_sku_is_refused_and_never_reaches_inventory() {
    let (inventory, seen) = fake_inventory();
    let inventory_url = format!("http://{inventory}");
    let (pricing_url, _pricing) = pricing_server();
    let service = Service::start(&[
        ("INVENTORY_URL", &inventory_url),
        ("PRICING_URL", &pricing_url),
    ]);
    let token = demo_token(service.addr());
    let auth = format!("Authorization: Bearer {token}\r\n");
    let order = |sku: &str| {
        let body = serde_json::json!({ "sku": sku, "quantity": 1 }).to_string();
        post_json(service.addr(), "/orders", &auth, &body)
    };
    for sku in [
        "../health/telemetry",
        "widget?token=s3cr3t",
        "a\r\nX",
        "widget/../../health/telemetry",
        "%2e%2e",
        "",
        &"x".repeat(65),
    ] {
        let (status, text) = order(sku);
        assert_eq!(status, 400, "{sku:?}: {text}");
        assert!(text.contains("sku must be"), "{sku:?}: {text}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "no bad sku reached inventory: {:?}",
        seen.lock().unwrap()
    );
    let (status, text) = order("widget");
    assert_eq!(status, 201, "{text}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("GET /items/widget HTTP/1.1\r\n"),
        "{seen:?}"
    );
}

/// Item 15: the URL is built from segments, so even a sku that slipped
/// past the pattern stays one percent-encoded segment.
#[test]
fn the_item_url_encodes_the_sku_as_one_segment() {
    let base = reqwest::Url::parse("http://inventory:8081/base/?q=1#f").unwrap();
    let url = orders_api::item_url(&base, "../health/telemetry?token=x\r\nX").unwrap();
    assert_eq!(
        url.as_str(),
        "http://inventory:8081/base/items/..%2Fhealth%2Ftelemetry%3Ftoken%3Dx%0D%0AX"
    );
    let base = reqwest::Url::parse("http://inventory:8081").unwrap();
    assert_eq!(
        orders_api::item_url(&base, "widget").unwrap().as_str(),
        "http://inventory:8081/items/widget"
    );
}

/// Item 16: a request for an unknown path is traced like any other: a
/// 404 with an `x-request-id`, and a completion line with its span.
#[test]
fn an_unknown_path_is_traced() {
    let service = Service::start(&[]);
    let (status, text) = http(
        service.addr(),
        "GET /no/such/path HTTP/1.1\r\nHost: x\r\nx-request-id: trial-404\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 404, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nx-request-id: trial-404\r\n"),
        "{text}"
    );
    let line = service.wait_line("the completion line", |l| {
        l.contains("request completed") && l.contains("trial-404")
    });
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["http.response.status_code"], 404, "{line}");
    // The exported name: the method alone, as no route matched.
    assert_eq!(v["span"]["name"], "GET", "{line}");
    assert_eq!(v["span"]["url.path"], "/no/such/path", "{line}");
    assert_eq!(v["span"]["request.id"], "trial-404", "{line}");
    assert!(v["span"].get("http.route").is_none(), "{line}");
}

/// Item 14: a client that never finishes its request head, and one that
/// never finishes its body, do not hold the service after SIGTERM: it
/// exits (code 0) within the drain deadline (5 s) and says so.
#[test]
fn unfinished_requests_do_not_hold_shutdown() {
    let mut service = Service::start(&[]);
    let addr = service.addr().to_owned();
    let mut head = TcpStream::connect(&addr).unwrap();
    head.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .unwrap();
    let mut body = TcpStream::connect(&addr).unwrap();
    body.write_all(
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"email\":",
    )
    .unwrap();
    // A complete request on a third connection is answered meanwhile.
    let (status, _) = http(
        &addr,
        "GET /health/telemetry HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    let sent = Instant::now();
    service.terminate();
    let exit = service.wait_exit(Duration::from_secs(15));
    let took = sent.elapsed();
    assert!(exit.success(), "{exit:?}: {}", service.stderr());
    assert!(
        took < Duration::from_millis(6500),
        "exited {took:?} after SIGTERM (drain deadline 5 s)"
    );
    // Both connections were closed, not left hanging.
    for mut s in [head, body] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut rest = Vec::new();
        assert!(s.read_to_end(&mut rest).is_ok(), "the connection is closed");
    }
    let lines = service.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("connections still open after the drain deadline")),
        "{lines:?}"
    );
}

/// Item 14: a request head that does not arrive within 5 s closes the
/// connection (without a shutdown).
#[test]
fn an_unfinished_request_head_times_out() {
    let service = Service::start(&[]);
    let mut s = TcpStream::connect(service.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let started = Instant::now();
    s.write_all(b"GET /orders/1 HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let read = s.read_to_end(&mut rest);
    let took = started.elapsed();
    assert!(read.is_ok(), "closed by the server: {read:?}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_millis(6500),
        "closed after {took:?} (header read timeout 5 s)"
    );
    assert!(
        rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// Item 1 (the examples' part): `INVENTORY_URL` with a user name and a
/// password is printed without them, in the listening line and in the
/// line of a failed call to inventory, in every format.
#[test]
fn inventory_credentials_are_never_printed() {
    for format in ["json", "compact", "pretty"] {
        // Port 9 (discard): nothing listens there, every call fails.
        let service = Service::start(&[
            ("INVENTORY_URL", "http://inv-user:inv-s3cret@127.0.0.1:9"),
            ("OTELWIRE_LOG_FORMAT", format),
        ]);
        let listening = service.wait_line("the listening line", |l| l.contains("listening"));
        assert!(
            listening.contains("http://127.0.0.1:9"),
            "{format}: {listening}"
        );
        let token = demo_token(service.addr());
        let (status, _) = post_json(
            service.addr(),
            "/orders",
            &format!("Authorization: Bearer {token}\r\n"),
            r#"{"sku":"widget","quantity":1}"#,
        );
        assert_eq!(status, 502);
        service.wait_line("the failed call's line", |l| {
            l.contains("cannot reach inventory")
        });
        let all = service.lines().concat() + &service.stderr();
        assert!(!all.contains("inv-s3cret"), "{format}: {all}");
        assert!(!all.contains("inv-user"), "{format}: {all}");
    }
}

/// Item 18: an unreachable `DATABASE_URL` (nothing listens on the port):
/// the service exits 1 at once, with an error naming the database without
/// its password, and no "slow query" line.
#[test]
fn an_unreachable_database_fails_fast_and_names_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:s3cret-pw@127.0.0.1:{port}/orders");
    let started = Instant::now();
    let mut service = Service::spawn(&[("DATABASE_URL", &url)], false);
    let exit = service.wait_exit(Duration::from_secs(15));
    let took = started.elapsed();
    let stderr = service.stderr();
    assert_eq!(exit.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(3), "took {took:?}: {stderr}");
    assert!(
        stderr.contains(&format!(
            "orders-api: database postgres://app@127.0.0.1:{port}/orders: cannot connect: "
        )),
        "{stderr}"
    );
    let all = service.lines().concat() + &stderr;
    assert!(!all.contains("s3cret-pw"), "{all}");
    assert!(!all.contains("slow query"), "{all}");
}

/// Item 18: a database that accepts the connection and never answers:
/// the service gives up after 5 s (not 30) with the database named, and
/// no "slow query" line.
#[test]
fn a_silent_database_fails_within_the_connect_timeout() {
    // Listening but never accepting: the handshake completes, no answer.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("postgres://app:s3cret-pw@127.0.0.1:{port}/orders?sslmode=disable");
    let started = Instant::now();
    let mut service = Service::spawn(&[("DATABASE_URL", &url)], false);
    let exit = service.wait_exit(Duration::from_secs(20));
    let took = started.elapsed();
    let stderr = service.stderr();
    assert_eq!(exit.code(), Some(1), "{stderr}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(7),
        "took {took:?}: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "orders-api: database postgres://app@127.0.0.1:{port}/orders: cannot connect: no answer within 5 s"
        )),
        "{stderr}"
    );
    let all = service.lines().concat() + &stderr;
    assert!(!all.contains("s3cret-pw"), "{all}");
    assert!(!all.contains("slow query"), "{all}");
    drop(silent);
}

/// Item 12: one 1.5 MB login e-mail address and one 1.5 MB sku, as the
/// trial sent them: every console line stays within the attribute value
/// length limit (32768 characters) plus the line's own text, in every
/// format.
#[test]
fn huge_inputs_give_bounded_lines() {
    let huge = "x".repeat(1_500_000);
    for format in ["json", "compact", "pretty"] {
        let service = Service::start(&[("OTELWIRE_LOG_FORMAT", format)]);
        let email = format!("j@{huge}.com");
        let body = serde_json::json!({ "email": email, "password": "p" }).to_string();
        let (status, _) = post_json(service.addr(), "/login", "", &body);
        assert_eq!(status, 401);
        let token = demo_token(service.addr());
        let body = serde_json::json!({ "sku": huge, "quantity": 1 }).to_string();
        let (status, _) = post_json(
            service.addr(),
            "/orders",
            &format!("Authorization: Bearer {token}\r\n"),
            &body,
        );
        assert_eq!(status, 400);
        service.wait_line("the sku's completion line", |l| {
            l.contains("request completed") && l.contains("400")
        });
        let login = service.wait_line("the login line", |l| l.contains("login failure"));
        assert!(login.len() < 32768 + 400, "{format}: {} bytes", login.len());
        assert!(
            login.contains(&format!("j***@{}", "x".repeat(32768 - 5))),
            "{format}"
        );
        for line in service.lines() {
            assert!(line.len() < 32768 + 400, "{format}: {} bytes", line.len());
        }
    }
}
