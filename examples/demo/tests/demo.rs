//! The demo runs to completion, as the README's first command does, its
//! printed trace crosses the three services, over HTTP and gRPC, and the
//! health-checker it runs shows up with its `/health`, metrics and a run as
//! a tree.

use std::process::{Command, Stdio};

#[test]
fn the_demo_runs_and_prints_a_trace_across_http_and_grpc_and_a_health_check_run() {
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
    for expected in ["-> 201", "-> 404", "-> 502", "-> 409", "-> 401", "-> 403"] {
        assert!(stdout.contains(expected), "no {expected} in:\n{stdout}");
    }
    let order_line = |sku: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("POST /orders {sku} ")))
            .unwrap_or_else(|| panic!("no order for {sku} in:\n{stdout}"))
    };
    // The failing quote is a 502 of its own; the slow one takes the
    // pricing service's extra 600 ms on top of the slow stock lookup.
    assert!(order_line("lever").contains("-> 502"), "{stdout}");
    let slow = order_line("anvil");
    let ms: u64 = slow
        .split(" in ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no time in {slow}"));
    assert!(slow.contains("-> 201") && ms >= 600, "{slow}");
    // It logged in first, and the security events arrived, masked.
    assert!(
        stdout.contains("POST /login  demo@example.com     -> 200"),
        "{stdout}"
    );
    let security = stdout
        .lines()
        .find(|l| l.starts_with("Security events: "))
        .unwrap_or_else(|| panic!("no security events in:\n{stdout}"));
    for event in [
        "auth.login{success} x2",
        "auth.token.rejected{missing}",
        "auth.permission.denied",
        "v***@example.com",
    ] {
        assert!(security.contains(event), "{security}");
    }
    assert!(!stdout.contains("demo-password"), "{stdout}");
    // Per-service summary.
    assert!(stdout.contains("  inventory: "), "{stdout}");
    assert!(stdout.contains("  orders-api: "), "{stdout}");
    assert!(stdout.contains("  pricing: "), "{stdout}");
    assert!(stdout.contains("http.server.request.duration{"), "{stdout}");
    for series in [
        "rpc.server.call.duration{rpc.method=pricing.v1.Pricing/Quote,rpc.response.status_code=OK,",
        "rpc.client.call.duration{error.type=UNAVAILABLE,rpc.method=pricing.v1.Pricing/Quote,rpc.response.status_code=UNAVAILABLE,",
    ] {
        assert!(stdout.contains(series), "no {series} in:\n{stdout}");
    }

    // The trace tree: orders-api's server span, its client spans below (HTTP
    // to inventory, gRPC to pricing), and each service's server span below
    // its call.
    let section = |title: &str| -> Vec<&str> {
        stdout
            .lines()
            .skip_while(|l| !l.starts_with(title))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect()
    };
    let tree = section("One trace, ");
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
    let rpc = |service: &str| {
        tree.iter()
            .position(|l| {
                let t = l.trim_start();
                t.starts_with(service) && t.contains("pricing.v1.Pricing/Quote")
            })
            .unwrap_or_else(|| panic!("no {service} Quote span in:\n{}", tree.join("\n")))
    };
    let (call, served) = (rpc("orders-api"), rpc("pricing"));
    assert!(tree[call].contains(" client "), "{}", tree[call]);
    assert!(tree[served].contains(" server "), "{}", tree[served]);
    assert!(server < call && call < served, "{}", tree.join("\n"));
    assert!(indent(server) < indent(call), "{}", tree.join("\n"));
    assert!(indent(call) < indent(served), "{}", tree.join("\n"));

    // The health-checker ran against both services: one check fails on
    // purpose (nothing listens on the cache's port), none of the critical ones.
    assert!(
        stdout.contains(r#"health-checker GET /health -> 200 {"status":"degraded","score":87.5,"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""failing":["cache"],"critical_failing":[]"#),
        "{stdout}"
    );
    assert!(stdout.contains("  health-checker: "), "{stdout}");
    for series in [
        "health.score{}",
        "health.check.status{check.name=orders-api}",
        "health.check.status{check.name=inventory}",
        "health.checks{check.name=cache,check.status=unhealthy}",
        "health.check.duration{check.name=inventory,check.status=healthy}",
    ] {
        assert!(stdout.contains(series), "no {series} in:\n{stdout}");
    }
    // Its run as a tree: the run span, a span per check below it, and the
    // traced lookup's server span in inventory below the check's client span.
    let run = section("One health-checker run, execution.id exec_");
    let find = |needle: &str| {
        run.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in:\n{}", run.join("\n")))
    };
    let indent = |i: usize| run[i].len() - run[i].trim_start().len();
    let root = find("health_check.run");
    for check in [
        "orders-api",
        "inventory",
        "inventory-lookup",
        "sqlite",
        "disk",
    ] {
        let line = find(&format!("health_check {check} "));
        assert!(run[line].contains(" healthy"), "{}", run[line]);
        assert!(indent(root) < indent(line), "{}", run.join("\n"));
    }
    let cache = find("health_check cache ");
    assert!(run[cache].contains(" unhealthy"), "{}", run[cache]);
    let lookup = find("health_check inventory-lookup ");
    let call = find("GET /items/widget");
    let served = find("inventory      GET /items/{sku}");
    assert!(indent(lookup) < indent(call), "{}", run.join("\n"));
    assert!(indent(call) < indent(served), "{}", run.join("\n"));
}
