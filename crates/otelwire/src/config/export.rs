//! Per-signal export: which exporter each signal uses and, for OTLP, its
//! protocol, endpoint, timeout, compression, headers and certificates.
//!
//! Precedence, for every knob: the builder (a per-signal setting before
//! the one for every signal), then the signal's variable
//! (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`), then the generic one
//! (`OTEL_EXPORTER_OTLP_TIMEOUT`), then the default.

use std::path::PathBuf;
use std::time::Duration;

use super::{
    ClientIdentity, CodeSettings, Compression, EnvSource, ExporterKind, OtlpConfig, Protocol,
    Signal, parse_key_values,
};
use crate::error::InitError;

/// What every signal exports with, resolved.
pub(super) struct Export {
    pub(super) exporter: [ExporterKind; 3],
    pub(super) otlp: [OtlpConfig; 3],
    /// Whether metrics are served for Prometheus scrapes.
    pub(super) scrape: bool,
}

/// The exporter and OTLP settings of every signal, one signal after the other.
pub(super) fn resolve(code: &CodeSettings, env: &EnvSource) -> Result<Export, InitError> {
    let generic = Generic::resolve(code, env)?;
    check_insecure(env)?;
    let mut exporter = [ExporterKind::Otlp; 3];
    let mut scrape = false;
    let mut otlp = Vec::with_capacity(3);
    for signal in Signal::ALL {
        let (kind, serve) = exporter_kind(code, env, signal)?;
        exporter[signal.index()] = kind;
        if signal == Signal::Metrics {
            scrape = code.prometheus.unwrap_or(serve);
        }
        otlp.push(otlp_config(code, env, &generic, signal, kind)?);
    }
    Ok(Export {
        exporter,
        otlp: otlp.try_into().expect("three signals"),
        scrape,
    })
}

/// The OTLP settings for every signal: the builder's, else the generic variable's.
struct Generic {
    protocol: Option<Protocol>,
    timeout: Option<Duration>,
    compression: Option<Compression>,
    headers: Vec<(String, String)>,
    certificate: Option<String>,
}

impl Generic {
    /// Reads and validates the generic settings.
    fn resolve(code: &CodeSettings, env: &EnvSource) -> Result<Self, InitError> {
        let protocol = match code.protocol {
            Some(p) => Some(p),
            None => env
                .get("OTEL_EXPORTER_OTLP_PROTOCOL")
                .map(|v| Protocol::parse("OTEL_EXPORTER_OTLP_PROTOCOL", &v))
                .transpose()?,
        };
        let timeout = match code.timeout {
            Some(t) => Some(t),
            None => env.millis("OTEL_EXPORTER_OTLP_TIMEOUT")?,
        };
        let compression = match code.compression {
            Some(c) => Some(c),
            None => env
                .get("OTEL_EXPORTER_OTLP_COMPRESSION")
                .map(|v| Compression::parse("OTEL_EXPORTER_OTLP_COMPRESSION", &v))
                .transpose()?,
        };
        let headers = match env.get("OTEL_EXPORTER_OTLP_HEADERS") {
            Some(v) => parse_key_values("OTEL_EXPORTER_OTLP_HEADERS", &v, true)?,
            None => Vec::new(),
        };
        Ok(Generic {
            protocol,
            timeout,
            compression,
            headers,
            certificate: env.get("OTEL_EXPORTER_OTLP_CERTIFICATE"),
        })
    }
}

/// Validates the `*_INSECURE` variables, so that a typo is still an error.
fn check_insecure(env: &EnvSource) -> Result<(), InitError> {
    // Only for an endpoint without a scheme, which otelwire refuses: the
    // scheme decides.
    for var in ["OTEL_EXPORTER_OTLP_INSECURE"]
        .into_iter()
        .map(str::to_owned)
        .chain(
            Signal::ALL
                .iter()
                .map(|s| format!("OTEL_EXPORTER_OTLP_{}_INSECURE", s.env_infix())),
        )
    {
        env.bool(&var)?;
    }
    Ok(())
}

/// One signal's exporter, and whether it asks for Prometheus scrapes.
fn exporter_kind(
    code: &CodeSettings,
    env: &EnvSource,
    signal: Signal,
) -> Result<(ExporterKind, bool), InitError> {
    Ok(match code.exporter[signal.index()] {
        Some(ExporterKind::Prometheus) if signal == Signal::Metrics => (ExporterKind::None, true),
        Some(ExporterKind::Prometheus) => {
            return Err(InitError::InvalidSetting {
                setting: "exporter",
                value: format!("{signal}: prometheus"),
                expected: "prometheus serves metrics only".into(),
            });
        }
        Some(k) => (k, false),
        None => {
            let var = format!("OTEL_{}_EXPORTER", signal.env_infix());
            env.get(&var)
                .map(|v| ExporterKind::parse_list(&var, &v, signal))
                .transpose()?
                .unwrap_or((ExporterKind::Otlp, false))
        }
    })
}

/// One signal's OTLP settings; `kind` is the exporter it will run.
fn otlp_config(
    code: &CodeSettings,
    env: &EnvSource,
    generic: &Generic,
    signal: Signal,
    kind: ExporterKind,
) -> Result<OtlpConfig, InitError> {
    let protocol = protocol(code, env, generic, signal)?;
    let endpoint = endpoint(code, env, signal, protocol)?;
    let timeout = timeout(code, env, generic, signal)?;
    let compression = compression(code, env, generic, signal)?;
    let headers = headers(code, env, generic, signal)?;
    let (endpoint, headers) = credentials_as_header(&endpoint, headers);
    let certificate = ca_certificate(code, env, generic, signal);
    let client_identity = client_identity(code, env, signal)?;
    if kind == ExporterKind::Otlp {
        check_client_identity_needs_tls(signal, &endpoint, client_identity.as_ref())?;
        check_ca_certificate_needs_tls(signal, &endpoint, certificate.as_ref())?;
    }
    Ok(OtlpConfig {
        protocol,
        endpoint,
        headers,
        timeout,
        compression,
        certificate,
        client_identity,
    })
}

/// One signal's protocol; its variable counts only when the builder sets none.
fn protocol(
    code: &CodeSettings,
    env: &EnvSource,
    generic: &Generic,
    signal: Signal,
) -> Result<Protocol, InitError> {
    let var = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", signal.env_infix());
    Ok(match code.signal_protocol[signal.index()] {
        Some(p) => p,
        None => match env.get(&var) {
            Some(v) if code.protocol.is_none() => Protocol::parse(&var, &v)?,
            _ => generic.protocol.unwrap_or(Protocol::HttpProtobuf),
        },
    })
}

/// One signal's endpoint, validated.
fn endpoint(
    code: &CodeSettings,
    env: &EnvSource,
    signal: Signal,
    protocol: Protocol,
) -> Result<String, InitError> {
    // A per-signal endpoint is used as given; a generic OTLP/HTTP endpoint
    // gets the signal's path appended (specification).
    let var = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.env_infix());
    if let Some(e) = &code.signal_endpoint[signal.index()] {
        return validate_setting_endpoint("signal_endpoint", e);
    }
    if let (None, Some(e)) = (&code.endpoint, env.get(&var)) {
        return validate_endpoint(&var, &e);
    }
    let base = match &code.endpoint {
        Some(e) => validate_setting_endpoint("endpoint", e)?,
        None => match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(e) => validate_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", &e)?,
            None => validate_setting_endpoint("endpoint", protocol.default_endpoint())?,
        },
    };
    Ok(match protocol {
        Protocol::Grpc => base,
        _ => crate::endpoint::with_signal_path(&base, signal.http_path()),
    })
}

/// One signal's export timeout (its variable is validated even when the
/// builder sets one).
fn timeout(
    code: &CodeSettings,
    env: &EnvSource,
    generic: &Generic,
    signal: Signal,
) -> Result<Duration, InitError> {
    let i = signal.index();
    let var = format!("OTEL_EXPORTER_OTLP_{}_TIMEOUT", signal.env_infix());
    Ok(
        match (code.signal_timeout[i].or(code.timeout), env.millis(&var)?) {
            (Some(t), _) => t,
            (None, Some(t)) => t,
            (None, None) => generic.timeout.unwrap_or(Duration::from_secs(10)),
        },
    )
}

/// One signal's compression.
fn compression(
    code: &CodeSettings,
    env: &EnvSource,
    generic: &Generic,
    signal: Signal,
) -> Result<Compression, InitError> {
    let i = signal.index();
    let var = format!("OTEL_EXPORTER_OTLP_{}_COMPRESSION", signal.env_infix());
    Ok(
        match (
            code.signal_compression[i].or(code.compression),
            env.get(&var),
        ) {
            (Some(c), _) => c,
            (None, Some(v)) => Compression::parse(&var, &v)?,
            (None, None) => generic.compression.unwrap_or(Compression::None),
        },
    )
}

/// One signal's headers: its variable's or else the generic one's, with the
/// builder's (every signal's, then the signal's own) replacing any of the
/// same name.
fn headers(
    code: &CodeSettings,
    env: &EnvSource,
    generic: &Generic,
    signal: Signal,
) -> Result<Vec<(String, String)>, InitError> {
    let var = format!("OTEL_EXPORTER_OTLP_{}_HEADERS", signal.env_infix());
    let mut headers = match env.get(&var) {
        Some(v) => parse_key_values(&var, &v, true)?,
        None => generic.headers.clone(),
    };
    for (k, v) in code
        .headers
        .iter()
        .chain(&code.signal_headers[signal.index()])
    {
        headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    Ok(headers)
}

/// The endpoint without its user info, and the headers with that user info
/// as Basic authorization unless an authorization header is configured.
fn credentials_as_header(
    endpoint: &str,
    mut headers: Vec<(String, String)>,
) -> (String, Vec<(String, String)>) {
    // As curl does; the user info is never kept in the URL that is used,
    // printed or served.
    let (endpoint, basic) = crate::endpoint::split_credentials(endpoint);
    if let Some(basic) = basic
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        headers.push(("authorization".to_owned(), basic));
    }
    (endpoint, headers)
}

/// One signal's CA certificate file, with the setting or variable that named it.
fn ca_certificate(
    code: &CodeSettings,
    env: &EnvSource,
    generic: &Generic,
    signal: Signal,
) -> Option<(String, PathBuf)> {
    let var = format!("OTEL_EXPORTER_OTLP_{}_CERTIFICATE", signal.env_infix());
    match (
        &code.signal_certificate[signal.index()],
        &code.certificate,
        env.get(&var),
    ) {
        (Some(path), _, _) => Some(("signal_certificate".to_owned(), path.clone())),
        (None, Some(path), _) => Some(("certificate".to_owned(), path.clone())),
        (None, None, Some(path)) => Some((var, path.into())),
        (None, None, None) => generic
            .certificate
            .clone()
            .map(|path| ("OTEL_EXPORTER_OTLP_CERTIFICATE".to_owned(), path.into())),
    }
}

/// One signal's client certificate and key (mutual TLS): the builder's, else
/// the environment's.
fn client_identity(
    code: &CodeSettings,
    env: &EnvSource,
    signal: Signal,
) -> Result<Option<ClientIdentity>, InitError> {
    match code.signal_client_certificate[signal.index()]
        .as_ref()
        .or(code.client_certificate.as_ref())
    {
        Some((cert, key)) => Ok(Some(ClientIdentity {
            certificate: ("client_certificate".to_owned(), cert.clone()),
            key: ("client_certificate (key)".to_owned(), key.clone()),
        })),
        None => client_identity_from_env(env, signal.env_infix()),
    }
}

/// The client certificate and key of one signal from the environment: the
/// per-signal variable, else the generic one, for each. One without the
/// other is an error naming both.
fn client_identity_from_env(
    env: &EnvSource,
    infix: &str,
) -> Result<Option<ClientIdentity>, InitError> {
    let pick = |what: &str| {
        let var = format!("OTEL_EXPORTER_OTLP_{infix}_CLIENT_{what}");
        match env.get(&var) {
            Some(v) => Some((var, PathBuf::from(v))),
            None => env
                .get(&format!("OTEL_EXPORTER_OTLP_CLIENT_{what}"))
                .map(|v| (format!("OTEL_EXPORTER_OTLP_CLIENT_{what}"), v.into())),
        }
    };
    match (pick("CERTIFICATE"), pick("KEY")) {
        (None, None) => Ok(None),
        (Some(certificate), Some(key)) => Ok(Some(ClientIdentity { certificate, key })),
        (Some((var, path)), None) => Err(InitError::Certificate {
            reason: format!(
                "a client certificate needs its private key: set \
                 OTEL_EXPORTER_OTLP_CLIENT_KEY (or OTEL_EXPORTER_OTLP_{infix}_CLIENT_KEY) \
                 too, or unset {var}"
            ),
            var,
            path,
        }),
        (None, Some((var, path))) => Err(InitError::Certificate {
            reason: format!(
                "a client key needs its certificate: set \
                 OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE (or \
                 OTEL_EXPORTER_OTLP_{infix}_CLIENT_CERTIFICATE) too, or unset {var}"
            ),
            var,
            path,
        }),
    }
}

/// Refuses a client certificate for a plain `http://` endpoint.
fn check_client_identity_needs_tls(
    signal: Signal,
    endpoint: &str,
    identity: Option<&ClientIdentity>,
) -> Result<(), InitError> {
    // It is only presented over TLS: it would be ignored in silence.
    match identity {
        Some(identity) if is_plain_http(endpoint) => Err(InitError::env(
            &identity.certificate.0,
            &identity.certificate.1.display().to_string(),
            format!(
                "a client certificate for {signal} is only presented over TLS, and its \
                 endpoint is {}: use https:// or unset the client certificate",
                shown(endpoint)
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses a CA certificate for a plain `http://` endpoint.
fn check_ca_certificate_needs_tls(
    signal: Signal,
    endpoint: &str,
    certificate: Option<&(String, PathBuf)>,
) -> Result<(), InitError> {
    // It only checks the server of a TLS connection: it would be ignored in
    // silence. Only the file's name is shown, never what it holds.
    let Some((setting, path)) = certificate.filter(|_| is_plain_http(endpoint)) else {
        return Ok(());
    };
    let unset = match setting.as_str() {
        "OTEL_EXPORTER_OTLP_CERTIFICATE" => format!(
            "unset {setting} (it applies to every signal; \
             OTEL_EXPORTER_OTLP_{{SIGNAL}}_CERTIFICATE names one signal's CA)"
        ),
        "certificate" => "unset the builder setting `certificate` (it applies to every \
             signal; `signal_certificate` names one signal's CA)"
            .to_owned(),
        "signal_certificate" => {
            format!("unset the builder setting `signal_certificate` for {signal}")
        }
        var => format!("unset {var}"),
    };
    Err(InitError::env(
        setting,
        &path.display().to_string(),
        format!(
            "a CA certificate for {signal} is only used over TLS, and its endpoint is {}: \
             use https:// or {unset}",
            shown(endpoint)
        ),
    ))
}

/// Whether `endpoint` is a plain `http://` URL, which no TLS setting reaches.
fn is_plain_http(endpoint: &str) -> bool {
    endpoint
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

/// `endpoint` as an error may show it: no user info, no query values.
fn shown(endpoint: &str) -> String {
    crate::endpoint::without_query_values(&crate::endpoint::without_userinfo(endpoint)).into_owned()
}

/// A collector URL from the environment, trimmed, or an error naming the
/// variable, the value (user info removed) and what is wrong.
fn validate_endpoint(var: &str, value: &str) -> Result<String, InitError> {
    crate::endpoint::check(value)
        .map_err(|why| InitError::env(var, &crate::endpoint::without_userinfo(value), why))
}

/// The same for a URL given to the builder.
fn validate_setting_endpoint(setting: &'static str, value: &str) -> Result<String, InitError> {
    crate::endpoint::check(value).map_err(|why| InitError::InvalidSetting {
        setting,
        value: crate::endpoint::without_userinfo(value).into_owned(),
        expected: why,
    })
}
