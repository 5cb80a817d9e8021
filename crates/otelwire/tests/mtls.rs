//! Mutual TLS (issue 16, section 3): the client certificate and key named
//! by `OTEL_EXPORTER_OTLP_[SIGNAL_]CLIENT_CERTIFICATE` /
//! `OTEL_EXPORTER_OTLP_[SIGNAL_]CLIENT_KEY`, or set with
//! `Builder::client_certificate`, are presented to a collector that demands
//! one, over gRPC and HTTP; without them nothing arrives; a bad file is an
//! init error naming the variable and the path, never the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use otelwire::{LogFormat, Protocol, ShutdownReport, Signal};
use otelwire_test::Collector;
use tracing::{info, info_span};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// A directory of this test's own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "otelwire-mtls-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn export(
    collector: &Collector,
    protocol: Protocol,
    vars: &[(&str, &str)],
    code_identity: Option<(&Path, &Path)>,
    name: &str,
) -> ShutdownReport {
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        _ => collector.http_endpoint(),
    };
    assert!(endpoint.starts_with("https://"));
    let mut builder = otelwire::builder()
        .env_source(env(vars))
        .endpoint(endpoint)
        .protocol(protocol)
        .log_format(LogFormat::None)
        .logs(false)
        .metrics(false)
        .timeout(Duration::from_secs(2));
    if let Some((cert, key)) = code_identity {
        builder = builder.client_certificate(cert, key);
    }
    let telemetry = builder.build().unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        info_span!("mtls", case = name).in_scope(|| info!("over mutual tls"));
    });
    telemetry.shutdown_blocking()
}

fn spans_of(collector: &Collector, case: &str) -> usize {
    collector
        .spans_named("mtls")
        .iter()
        .filter(|s| s.attributes.get_str("case") == Some(case))
        .count()
}

#[test]
fn a_client_certificate_is_presented_over_grpc_and_http() {
    let collector = Collector::builder()
        .require_client_certificate()
        .start()
        .unwrap();
    let dir = TempDir::new("ok");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, collector.ca_pem().unwrap()).unwrap();
    let (cert, key) = collector
        .client_certificate("otelwire-mtls-client")
        .unwrap()
        .write_to(dir.path())
        .unwrap();
    let (ca, cert, key) = (s(&ca), s(&cert), s(&key));

    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        // The generic variables.
        let case = format!("{protocol:?}-env");
        let report = export(
            &collector,
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
            ],
            None,
            &case,
        );
        assert_eq!(
            report.signal(Signal::Traces).exported,
            1,
            "{case}: {report}"
        );
        assert_eq!(report.dropped(), 0, "{case}: {report}");
        assert_eq!(spans_of(&collector, &case), 1, "{case}");

        // The per-signal variables.
        let case = format!("{protocol:?}-signal-env");
        let report = export(
            &collector,
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &ca),
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", &cert),
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", &key),
            ],
            None,
            &case,
        );
        assert_eq!(
            report.signal(Signal::Traces).exported,
            1,
            "{case}: {report}"
        );
        assert_eq!(spans_of(&collector, &case), 1, "{case}");

        // In code; a bogus variable is not even read.
        let case = format!("{protocol:?}-code");
        let report = export(
            &collector,
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    "/nonexistent/c.pem",
                ),
            ],
            Some((Path::new(&cert), Path::new(&key))),
            &case,
        );
        assert_eq!(
            report.signal(Signal::Traces).exported,
            1,
            "{case}: {report}"
        );
        assert_eq!(spans_of(&collector, &case), 1, "{case}");

        // Without a client certificate, the collector refuses the handshake.
        let case = format!("{protocol:?}-none");
        let before = collector.client_certificate_subjects().len();
        let report = export(
            &collector,
            protocol,
            &[("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca)],
            None,
            &case,
        );
        assert_eq!(
            report.signal(Signal::Traces).exported,
            0,
            "{case}: {report}"
        );
        assert_eq!(report.signal(Signal::Traces).dropped, 1, "{case}: {report}");
        assert_eq!(spans_of(&collector, &case), 0, "{case}");
        assert_eq!(collector.client_certificate_subjects().len(), before);
    }
    // On the wire: the collector saw the certificate.
    let subjects = collector.client_certificate_subjects();
    assert!(!subjects.is_empty());
    assert!(
        subjects.iter().all(|s| s == "otelwire-mtls-client"),
        "{subjects:?}"
    );
}

#[test]
fn bad_client_certificate_files_are_init_errors_naming_the_variable_and_path() {
    let collector = Collector::builder()
        .require_client_certificate()
        .start()
        .unwrap();
    let dir = TempDir::new("bad");
    let (cert, key) = collector
        .client_certificate("bad-files")
        .unwrap()
        .write_to(dir.path())
        .unwrap();
    let (cert, key) = (s(&cert), s(&key));
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "SUPERSECRETKEYMATERIAL\n").unwrap();
    let garbage = s(&garbage);
    let bad_b64 = dir.path().join("bad.key");
    std::fs::write(
        &bad_b64,
        "-----BEGIN PRIVATE KEY-----\nSUPER$SECRET$KEY$MATERIAL\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let bad_b64 = s(&bad_b64);
    let endpoint = collector.http_endpoint();

    let build = |vars: &[(&str, &str)]| {
        let mut vars = vars.to_vec();
        vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint));
        otelwire::builder()
            .env_source(env(&vars))
            .log_format(LogFormat::None)
            .build()
            .map(|t| {
                t.shutdown_blocking();
            })
            .unwrap_err()
            .to_string()
    };

    let err = build(&[
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "/nonexistent/client.crt",
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
    ]);
    assert!(
        err.starts_with("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=/nonexistent/client.crt")
            && err.contains("cannot read"),
        "{err}"
    );

    for bad in [&garbage, &bad_b64] {
        let err = build(&[
            ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", bad),
        ]);
        assert!(
            err.starts_with(&format!("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY={bad}")),
            "{err}"
        );
        assert!(!err.contains("SECRET"), "{err}");
    }

    // The certificate given as the key: not a private key.
    let err = build(&[
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &cert),
    ]);
    assert!(err.contains("private key"), "{err}");
    // The key given as the certificate: the key's contents are not shown.
    let key_body = std::fs::read_to_string(&key).unwrap();
    let key_line = key_body.lines().nth(1).unwrap();
    let err = build(&[
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &key),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
    ]);
    assert!(
        err.starts_with(&format!("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE={key}")),
        "{err}"
    );
    assert!(!err.contains(key_line), "{err}");

    // One without the other: both are named.
    let err = build(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert)]);
    assert!(
        err.starts_with(&format!("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE={cert}"))
            && err.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        "{err}"
    );
    let err = build(&[("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", &key)]);
    assert!(
        err.starts_with(&format!("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY={key}"))
            && err.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        "{err}"
    );

    // A key that is not the certificate's, over gRPC and HTTP.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, other_key) = collector
        .client_certificate("other")
        .unwrap()
        .write_to(&other)
        .unwrap();
    let other_key = s(&other_key);
    for (protocol, endpoint) in [
        ("grpc", collector.grpc_endpoint()),
        ("http/protobuf", collector.http_endpoint()),
    ] {
        let err = otelwire::builder()
            .env_source(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &other_key),
            ]))
            .log_format(LogFormat::None)
            .build()
            .map(|t| {
                t.shutdown_blocking();
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE={cert}"))
                && err.contains(&format!("OTEL_EXPORTER_OTLP_CLIENT_KEY={other_key}")),
            "{protocol}: {err}"
        );
    }

    // In code, a missing file is named too.
    let err = otelwire::builder()
        .env_source(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]))
        .client_certificate(&cert, "/nonexistent/client.key")
        .log_format(LogFormat::None)
        .build()
        .map(|t| {
            t.shutdown_blocking();
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/client.key") && err.contains("cannot read"),
        "{err}"
    );
}

/// A client certificate is only presented over TLS: with a plain `http://`
/// endpoint it would be ignored in silence, so init refuses it, naming the
/// setting and the endpoint (never its credentials).
#[test]
fn a_client_certificate_for_a_plain_http_endpoint_is_an_init_error() {
    let err = otelwire::builder()
        .env_source(env(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://user:s3cret@127.0.0.1:4318",
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "client.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "client-key.pem"),
        ]))
        .log_format(otelwire::LogFormat::None)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        "{err}"
    );
    assert!(err.contains("only presented over TLS"), "{err}");
    assert!(err.contains("http://127.0.0.1:4318"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");

    // The same certificate for a signal that is not exported is no error.
    let ok = otelwire::builder()
        .env_source(env(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "client.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "client-key.pem"),
        ]))
        .log_format(otelwire::LogFormat::None)
        .build();
    assert!(ok.is_ok(), "{ok:?}");
}
