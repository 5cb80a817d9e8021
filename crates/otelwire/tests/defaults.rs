//! Defaults in code that operators override: `default_service_name` and
//! `default_environment` lose to the environment, `service_name` and
//! `environment` win over it. What a user sees: the startup line.

use otelwire_test::Console;

/// The startup line of a pipeline made by `configure` under `vars`.
fn startup(
    vars: &'static [(&'static str, &'static str)],
    configure: impl FnOnce(otelwire::Builder) -> otelwire::Builder,
) -> serde_json::Value {
    let console = Console::default();
    let builder = otelwire::builder()
        .env_source(move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .sdk_disabled(true)
        .log_format(otelwire::LogFormat::Json)
        .writer(console.clone());
    let telemetry = configure(builder).build().unwrap();
    drop(telemetry);
    let text = console.text();
    let line = text
        .lines()
        .find(|l| l.contains("telemetry initialised"))
        .unwrap_or_else(|| panic!("no startup line: {text}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn defaults_in_code_lose_to_the_environment() {
    let defaults = |b: otelwire::Builder| {
        b.default_service_name("orders-api")
            .default_environment("development")
    };
    let line = startup(&[], defaults);
    assert_eq!(line["service"], "orders-api");
    assert_eq!(line["environment"], "development");

    let line = startup(
        &[
            ("OTEL_SERVICE_NAME", "orders-eu"),
            ("OTELWIRE_ENVIRONMENT", "production"),
        ],
        defaults,
    );
    assert_eq!(line["service"], "orders-eu");
    assert_eq!(line["environment"], "production");

    let line = startup(
        &[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attrs,deployment.environment.name=staging",
        )],
        defaults,
    );
    assert_eq!(line["service"], "from-attrs");
    assert_eq!(line["environment"], "staging");
}

#[test]
fn settings_in_code_win_over_the_environment() {
    let line = startup(
        &[
            ("OTEL_SERVICE_NAME", "orders-eu"),
            ("OTELWIRE_ENVIRONMENT", "production"),
        ],
        |b| b.service_name("orders-api").environment("development"),
    );
    assert_eq!(line["service"], "orders-api");
    assert_eq!(line["environment"], "development");
}

#[test]
fn without_file_outputs_the_startup_line_says_none() {
    let line = startup(&[], |b| b);
    assert_eq!(line["outputs"], "none");
}
