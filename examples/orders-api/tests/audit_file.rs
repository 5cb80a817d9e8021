//! `OTELWIRE_LOG_DIR` on the real `orders-api` binary: its logins land in
//! `audit.jsonl`, on disk as they happen and still there after SIGTERM.

mod common;

use std::path::Path;

use common::{Service, TempDir, WAIT, post_json, wait_until};

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
    let dir = TempDir::new("orders-api-audit");
    let mut service = Service::start(&[("OTELWIRE_LOG_DIR", dir.0.to_str().unwrap())]);
    let addr = service.addr();

    let good = r#"{"email":"demo@example.com","password":"demo-password"}"#;
    let bad = r#"{"email":"demo@example.com","password":"not-the-password"}"#;
    assert_eq!(post_json(addr, "/login", "", good).0, 200);
    assert_ne!(post_json(addr, "/login", "", bad).0, 200);

    // In the file while the service runs (the audit file syncs each batch).
    let seen = wait_until("both logins in audit.jsonl", WAIT, || {
        let l = logins(&dir.0);
        (l.len() == 2).then_some(l)
    });
    assert!(seen[0].0.contains("login success"), "{seen:?}");
    assert!(seen[1].0.contains("login failure"), "{seen:?}");
    assert!(seen.iter().all(|(_, t)| t == "otelwire::security"));

    service.terminate();
    let status = service.wait_exit(WAIT);
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
