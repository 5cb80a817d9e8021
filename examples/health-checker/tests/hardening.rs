//! The hardening trial (issue 19), item 1 (the examples' part): a check URL
//! with a user name and a password is printed without them when the
//! configuration is refused.

use std::process::{Command, Stdio};

#[test]
fn check_urls_are_printed_without_credentials() {
    for (kind, url, says) in [
        (
            "http",
            "http://hc-user:hc-s3cret@[::1",
            "url = \"http://[::1\"",
        ),
        (
            "http",
            "ftp://hc-user:hc-s3cret@127.0.0.1/x",
            "url = \"ftp://127.0.0.1/x\": expected an http or https URL",
        ),
        (
            "database",
            "postgres://hc-user:hc-s3cret@127.0.0.1/app",
            "url = \"postgres://127.0.0.1/app\": only sqlite: URLs are supported",
        ),
    ] {
        let path = std::env::temp_dir().join(format!(
            "health-checker-hardening-{}-{kind}.toml",
            std::process::id()
        ));
        std::fs::write(
            &path,
            format!("[[checks]]\nname = \"c\"\nkind = \"{kind}\"\nurl = \"{url}\"\n"),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_health-checker"))
            .env_clear()
            .env("OTEL_SDK_DISABLED", "true")
            .env("OTELWIRE_LOG_FORMAT", "json")
            .env("HEALTH_CHECKER_CONFIG", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let all = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {all}");
        assert!(all.contains(says), "{url}: {all}");
        assert!(!all.contains("hc-s3cret"), "{url}: {all}");
        assert!(!all.contains("hc-user"), "{url}: {all}");
    }
}
