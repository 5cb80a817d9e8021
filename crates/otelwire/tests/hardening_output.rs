//! The hardening trial (issue 19), output group: what a person or a log
//! shipper reads on the console, through the real pipeline and layers,
//! with the trial's exact inputs, in each format.

use otelwire::LogFormat;
use otelwire::audit::{Auditor, LoginFailure, LoginOutcome, MaskingPolicy, User};
use otelwire_test::Console;

/// Runs `f` under a pipeline that writes `format` lines to a buffer (no
/// export), with `env` as its environment; the lines written.
fn lines(format: LogFormat, env: &[(&str, &str)], f: impl FnOnce()) -> String {
    let console = Console::default();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let telemetry = otelwire::builder()
        .env_source(move |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .sdk_disabled(true)
        .log_format(format)
        .writer(console.clone())
        .build()
        .unwrap();
    let before = console.text().len();
    tracing::dispatcher::with_default(telemetry.dispatch(), f);
    console.text()[before..].to_owned()
}

/// The part of a text line after its timestamp.
fn after_timestamp(line: &str) -> &str {
    &line[line.find(' ').expect("a timestamp")..]
}

const FORMATS: [LogFormat; 3] = [LogFormat::Json, LogFormat::Compact, LogFormat::Pretty];

/// Item 3: the login event inside a request span whose `client.address` is
/// the full address: with `OTELWIRE_AUDIT_CLIENT_ADDRESS=drop` or
/// `truncate`, the event's line shows only what the policy kept.
#[test]
fn audit_lines_carry_only_the_masked_client_address() {
    for format in FORMATS {
        for (policy, shown) in [("drop", None), ("truncate", Some("203.0.113.0"))] {
            let out = lines(format, &[], || {
                let masking = MaskingPolicy::from_lookup(|k| {
                    (k == "OTELWIRE_AUDIT_CLIENT_ADDRESS").then(|| policy.to_owned())
                })
                .unwrap();
                let audit = Auditor::new(&otelwire::opentelemetry::global::meter("t"), masking);
                let span = tracing::info_span!(
                    "HTTP request",
                    url.path = "/login",
                    client.address = "203.0.113.77",
                    request.id = "r-1"
                );
                span.in_scope(|| {
                    audit.login(
                        User::email("jane@example.com"),
                        LoginOutcome::Failure(LoginFailure::WrongPassword),
                        Some("203.0.113.77".parse().unwrap()),
                    );
                    tracing::info!("application line");
                });
            });
            let trial = format!("{format:?}, {policy}: {out}");
            let login = out.lines().next().unwrap();
            assert!(!login.contains("203.0.113.77"), "{trial}");
            match format {
                LogFormat::Json => {
                    let v: serde_json::Value = serde_json::from_str(login).unwrap();
                    assert_eq!(v["client.address"].as_str(), shown, "{trial}");
                    assert_eq!(v["span"], serde_json::json!({"name": "HTTP request"}));
                }
                _ => {
                    let address = shown.map_or(String::new(), |a| format!(" client.address={a}"));
                    let span = match format {
                        LogFormat::Pretty => "",
                        _ => " span=HTTP request",
                    };
                    assert_eq!(
                        after_timestamp(login),
                        format!(
                            "  WARN otelwire::security: login failure event.name=auth.login \
                             event.category=security user.email=j***@example.com{address} \
                             auth.outcome=failure auth.reason=wrong_password{span}"
                        ),
                        "{trial}"
                    );
                }
            }
            // Application lines keep the span's fields.
            assert!(
                out.lines()
                    .any(|l| l.contains("application line") || l.contains("203.0.113.77")),
                "{trial}"
            );
            assert!(out.contains("203.0.113.77"), "app lines keep them: {trial}");
        }
    }
}

/// The trial's Unicode controls: NEL, CSI, LINE SEPARATOR, RIGHT-TO-LEFT
/// OVERRIDE (and, with them, the other bidi controls and an ESC).
const CONTROLS: &str = "a\u{85}b\u{9b}31mc\u{2028}d\u{202e}e\u{2066}f\u{200f}g\u{1b}h";

/// Whether `s` holds a character a terminal or a reader could obey.
fn has_raw_control(s: &str) -> bool {
    s.chars().any(|c| {
        let c = c as u32;
        (c < 0x20 && c != 0x0a)
            || (0x7f..=0x9f).contains(&c)
            || matches!(c, 0x061c | 0x200e | 0x200f | 0x2028 | 0x2029)
            || (0x202a..=0x202e).contains(&c)
            || (0x2066..=0x2069).contains(&c)
    })
}

/// Item 11: U+0085, U+009B, U+2028 and U+202E in a message, a field and a
/// span field are escaped in compact and pretty (and JSON) lines, as the
/// C0 controls are (a field value with a control in it is quoted, as
/// before).
#[test]
fn unicode_controls_are_escaped_in_every_format() {
    let escaped = r"a\u{85}b\u{9b}31mc\u{2028}d\u{202e}e\u{2066}f\u{200f}g\x1bh";
    for format in FORMATS {
        let out = lines(format, &[], || {
            tracing::info_span!("login", user.agent = CONTROLS).in_scope(|| {
                tracing::info!(user = CONTROLS, "{CONTROLS}");
            });
        });
        assert!(!has_raw_control(&out), "{format:?}: {out:?}");
        match format {
            LogFormat::Json => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(v["message"], CONTROLS);
                assert_eq!(v["user"], CONTROLS);
                assert_eq!(v["span"]["user.agent"], CONTROLS);
                assert!(out.contains(r"a\u0085b\u009b31mc\u2028d\u202ee\u2066f\u200fg\u001bh"));
            }
            LogFormat::Compact => assert_eq!(
                after_timestamp(&out),
                format!(
                    "  INFO hardening_output: {escaped} user=\"{escaped}\" \
                     span=login{{user.agent=\"{escaped}\"}}\n"
                )
            ),
            _ => assert_eq!(
                after_timestamp(&out),
                format!(
                    "  INFO hardening_output: {escaped} user=\"{escaped}\"\n    \
                     in login{{user.agent=\"{escaped}\"}}\n"
                )
            ),
        }
    }
}

/// Item 12: one 1.5 MB login e-mail address: the login line is bounded by
/// the attribute value length limit (32768 characters by default, or
/// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`), as the log record is.
#[test]
fn a_huge_login_e_mail_gives_a_bounded_line() {
    let email = format!("j@{}.com", "x".repeat(1_500_000));
    for (env, limit) in [(None, 32768), (Some("100"), 100)] {
        for format in FORMATS {
            let env: Vec<(&str, &str)> = env
                .map(|v| vec![("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", v)])
                .unwrap_or_default();
            let out = lines(format, &env, || {
                let audit = Auditor::new(
                    &otelwire::opentelemetry::global::meter("t"),
                    MaskingPolicy::default(),
                );
                audit.login(
                    User::email(&email),
                    LoginOutcome::Failure(LoginFailure::UnknownUser),
                    None,
                );
            });
            let trial = format!("{format:?}, limit {limit}");
            assert_eq!(out.matches('\n').count(), 1, "{trial}");
            assert!(out.len() < limit + 300, "{trial}: {} bytes", out.len());
            let shown = format!("j***@{}", "x".repeat(limit - 5));
            match format {
                LogFormat::Json => {
                    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                    assert_eq!(v["user.email"], shown.as_str(), "{trial}");
                }
                _ => assert!(out.contains(&format!(" user.email={shown} ")), "{trial}"),
            }
        }
    }
}

/// Item 12: one 1.5 MB sku, in the request span's `url.path` and in the
/// event's own field (the URL twice): the line is cut to at most
/// `MAX_LINE_BYTES`, says so, and stays one line (valid JSON in JSON).
#[test]
fn a_huge_sku_gives_a_line_within_the_bound() {
    let sku = "s".repeat(1_500_000);
    let path = format!("/items/{sku}");
    for format in FORMATS {
        let out = lines(format, &[], || {
            tracing::info_span!("HTTP request", url.path = path.as_str()).in_scope(|| {
                tracing::warn!(sku = %sku, "unknown item");
            });
        });
        let trial = format!("{format:?}");
        assert!(
            out.len() <= otelwire::MAX_LINE_BYTES,
            "{trial}: {} bytes",
            out.len()
        );
        let short = "s".repeat(otelwire::SHORT_VALUE_CHARS);
        match format {
            LogFormat::Json => {
                assert_eq!(out.matches('\n').count(), 1, "{trial}");
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(v["sku"], short.as_str(), "{trial}");
                assert_eq!(v["otelwire.line_truncated"], true, "{trial}");
                assert_eq!(v["span"], serde_json::json!({"name": "HTTP request"}));
            }
            LogFormat::Compact => assert_eq!(
                after_timestamp(&out),
                format!(
                    "  WARN hardening_output: unknown item sku={short} \
                     otelwire.line_truncated=true span=HTTP request\n"
                )
            ),
            _ => assert_eq!(
                after_timestamp(&out),
                format!(
                    "  WARN hardening_output: unknown item sku={short} \
                     otelwire.line_truncated=true\n    in HTTP request\n"
                )
            ),
        }
    }
}

/// Item 13: JSON and compact write exactly one line per event, inside a
/// span or not, whatever the message holds; pretty writes one line, and a
/// second, indented `in <span>` line inside a span, as the docs now say.
#[test]
fn json_and_compact_are_one_line_and_pretty_is_two_inside_a_span() {
    let message = "first\nsecond\r\nthird\u{2028}fourth";
    for format in FORMATS {
        let out = lines(format, &[], || {
            tracing::info!("{message}");
            tracing::info_span!("checkout", order.id = 7).in_scope(|| {
                tracing::info!(note = message, "{message}");
            });
        });
        let lines: Vec<&str> = out.split_inclusive('\n').collect();
        let expected = if format == LogFormat::Pretty { 3 } else { 2 };
        assert_eq!(lines.len(), expected, "{format:?}: {out:?}");
        if format == LogFormat::Pretty {
            assert_eq!(lines[2], "    in checkout{order.id=7}\n", "{out:?}");
            assert!(!lines[1].contains("checkout"), "{out:?}");
        }
        if format == LogFormat::Json {
            for l in &lines {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["message"], message);
            }
        }
    }
}

/// Item 3, the exported side: even when the request span's
/// `client.address` is copied onto log records (`log_span_field`), the
/// login event's record keeps the masked value, while an application
/// record of the same span gets the copy.
#[tokio::test(flavor = "current_thread")]
async fn copied_span_fields_do_not_replace_masked_audit_fields() {
    let collector = otelwire_test::Collector::start().unwrap();
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .service_name("hardening-output")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .log_span_field("client.address")
        .scheduled_delay(
            otelwire::Signal::Logs,
            std::time::Duration::from_millis(100),
        )
        .process_metrics(false)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let masking = MaskingPolicy::from_lookup(|k| {
            (k == "OTELWIRE_AUDIT_CLIENT_ADDRESS").then(|| "truncate".to_owned())
        })
        .unwrap();
        let audit = Auditor::new(&telemetry.meter("t"), masking);
        tracing::info_span!("HTTP request", client.address = "203.0.113.77").in_scope(|| {
            audit.login(
                User::email("jane@example.com"),
                LoginOutcome::Failure(LoginFailure::WrongPassword),
                Some("203.0.113.77".parse().unwrap()),
            );
            tracing::info!("application line");
        });
    });
    telemetry.shutdown().await;
    let logs = collector.logs();
    let login = logs
        .iter()
        .find(|l| l.event_name == "auth.login")
        .expect("the login record");
    let values: Vec<&str> = login
        .attributes
        .iter()
        .filter(|(k, _)| *k == "client.address")
        .filter_map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values, ["203.0.113.0"], "{login:?}");
    let app = logs
        .iter()
        .find(|l| l.body.as_ref().and_then(|b| b.as_str()) == Some("application line"))
        .expect("the application record");
    assert_eq!(
        app.attributes.get_str("client.address"),
        Some("203.0.113.77")
    );
}
