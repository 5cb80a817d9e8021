//! The demo runs to completion, as the README's first command does, and its
//! printed trace crosses both services.

use std::process::{Command, Stdio};

#[test]
fn the_demo_runs_and_prints_a_trace_across_both_services() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("DEMO_DURATION_SECS", "3")
        .stdin(Stdio::null())
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    // Traffic of every kind was driven.
    for expected in ["-> 201", "-> 404", "-> 502", "-> 409"] {
        assert!(stdout.contains(expected), "no {expected} in:\n{stdout}");
    }
    // Per-service summary.
    assert!(stdout.contains("  inventory: "), "{stdout}");
    assert!(stdout.contains("  orders-api: "), "{stdout}");
    assert!(stdout.contains("http.server.request.duration{"), "{stdout}");

    // The trace tree: orders-api's server span, its client span below, and
    // inventory's server span below that.
    let tree: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("One trace, "))
        .skip(1)
        .collect();
    let pos = |service: &str, name: &str| {
        tree.iter().position(|l| {
            let t = l.trim_start();
            t.starts_with(service) && t.contains(name)
        })
    };
    let indent = |i: usize| tree[i].len() - tree[i].trim_start().len();
    let server = pos("orders-api", "POST /orders").expect("orders-api server span");
    let client = pos("orders-api", "GET /items/{sku}").expect("orders-api client span");
    let remote = pos("inventory", "GET /items/{sku}").expect("inventory server span");
    assert!(server < client && client < remote, "{}", tree.join("\n"));
    assert!(indent(server) < indent(client), "{}", tree.join("\n"));
    assert!(indent(client) < indent(remote), "{}", tree.join("\n"));
}
