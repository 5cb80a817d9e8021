//! The hardening trial (issue 19), output group: what a person or a log
//! shipper reads on the console, through the real pipeline and layers,
//! with the trial's exact inputs, in each format.

use std::sync::{Arc, Mutex};

use otelwire::LogFormat;
use otelwire::audit::{Auditor, LoginFailure, LoginOutcome, MaskingPolicy, User};

#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Console {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("lines are UTF-8")
    }
}

/// Runs `f` under a pipeline that writes `format` lines to a buffer (no
/// export), with `env` as its environment; the lines written.
fn lines(format: LogFormat, env: &[(&str, &str)], f: impl FnOnce()) -> String {
    let console = Console::default();
    let writer = console.clone();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let telemetry = otelwire::builder()
        .env_source(move |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .sdk_disabled(true)
        .log_format(format)
        .writer(move || writer.clone())
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
