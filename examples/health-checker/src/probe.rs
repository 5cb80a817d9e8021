//! The probes: one async function per kind of check. Each says what it
//! saw; the runner times it out, records it and reports it.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use reqwest_middleware::ClientWithMiddleware;
use tracing::Instrument;

use crate::{CheckKind, CheckStatus};

/// What a probe saw.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) status: CheckStatus,
    pub(crate) detail: String,
}

impl Outcome {
    fn healthy(detail: String) -> Self {
        Outcome {
            status: CheckStatus::Healthy,
            detail,
        }
    }

    fn unhealthy(detail: String) -> Self {
        Outcome {
            status: CheckStatus::Unhealthy,
            detail,
        }
    }

    fn error(detail: String) -> Self {
        Outcome {
            status: CheckStatus::Error,
            detail,
        }
    }
}

/// The HTTP client of the HTTP checks, or why there is none.
pub(crate) type Client = Result<ClientWithMiddleware, String>;

/// A client span per call (`otelwire-reqwest`), so the checked service's
/// trace continues from the check.
pub(crate) fn client(telemetry: &otelwire::Telemetry) -> Client {
    reqwest::Client::builder()
        // A fresh connection per check: a pooled one could hide a server
        // that no longer accepts connections.
        .pool_max_idle_per_host(0)
        .build()
        .map(|c| {
            reqwest_middleware::ClientBuilder::new(c)
                .with(
                    otelwire_reqwest::OtelMiddleware::new()
                        .meter(telemetry.meter("otelwire-reqwest")),
                )
                .build()
        })
        .map_err(|e| format!("cannot build an HTTP client: {}", chain(&e)))
}

pub(crate) async fn probe(kind: &CheckKind, client: &Client) -> Outcome {
    match kind {
        CheckKind::Http {
            url,
            expect_status,
            max_latency,
        } => http(client, url, expect_status, *max_latency).await,
        CheckKind::Tcp { address } => tcp(address).await,
        CheckKind::Database { url } => database(url).await,
        CheckKind::Disk {
            path,
            min_free_mb,
            min_free_percent,
        } => disk(path, *min_free_mb, *min_free_percent).await,
    }
}

async fn http(
    client: &Client,
    url: &str,
    expect_status: &[u16],
    max_latency: Option<Duration>,
) -> Outcome {
    let client = match client {
        Ok(c) => c,
        Err(e) => return Outcome::error(e.clone()),
    };
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            return Outcome::error(format!(
                "url \"{}\": {e}",
                crate::config::without_userinfo(url)
            ));
        }
    };
    // The configured path is fixed, so it is a fine span name and label.
    let template = otelwire_reqwest::UrlTemplate::new(parsed.path().to_owned());
    let started = Instant::now();
    let response = client.get(parsed).with_extension(template).send().await;
    let took = started.elapsed();
    match response {
        Ok(r) => {
            let status = r.status();
            let expected = if expect_status.is_empty() {
                status.is_success()
            } else {
                expect_status.contains(&status.as_u16())
            };
            let seen = format!("{status} in {}", ms(took));
            if !expected {
                Outcome::unhealthy(format!("unexpected status {seen}"))
            } else if let Some(max) = max_latency.filter(|max| took > *max) {
                Outcome::unhealthy(format!("{seen}, slower than {}", ms(max)))
            } else {
                Outcome::healthy(seen)
            }
        }
        Err(reqwest_middleware::Error::Reqwest(e)) if e.is_builder() => {
            Outcome::error(format!("cannot make the request: {}", chain(&e)))
        }
        Err(e) => Outcome::unhealthy(format!("no answer: {}", chain(&e))),
    }
}

async fn tcp(address: &str) -> Outcome {
    let started = Instant::now();
    match tokio::net::TcpStream::connect(address).await {
        Ok(stream) => {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| address.to_owned());
            Outcome::healthy(format!("connected to {peer} in {}", ms(started.elapsed())))
        }
        Err(e) => Outcome::unhealthy(format!("cannot connect to {address}: {e}")),
    }
}

async fn database(url: &str) -> Outcome {
    use sqlx::Connection;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

    let options = match SqliteConnectOptions::from_str(url) {
        Ok(o) => o,
        Err(e) => {
            return Outcome::error(format!(
                "url \"{}\": {e}",
                crate::config::without_userinfo(url)
            ));
        }
    };
    let started = Instant::now();
    let mut conn = match SqliteConnection::connect_with(&options).await {
        Ok(c) => c,
        Err(e) => return Outcome::unhealthy(format!("cannot connect: {}", chain(&e))),
    };
    let ping = tracing::info_span!(
        "SELECT",
        otel.kind = "client",
        db.system.name = "sqlite",
        db.operation.name = "SELECT",
        db.query.text = "SELECT 1",
    );
    let result = sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&mut conn)
        .instrument(ping)
        .await;
    let took = started.elapsed();
    let _ = conn.close().await;
    match result {
        Ok(1) => Outcome::healthy(format!("SELECT 1 in {}", ms(took))),
        Ok(other) => Outcome::unhealthy(format!("SELECT 1 returned {other}")),
        Err(e) => Outcome::unhealthy(format!("SELECT 1 failed: {}", chain(&e))),
    }
}

async fn disk(path: &Path, min_free_mb: Option<u64>, min_free_percent: Option<f64>) -> Outcome {
    const MIB: f64 = 1024.0 * 1024.0;
    let owned = path.to_owned();
    // statvfs can block (a hung network mount): keep it off the runtime's
    // threads so that the timeout still fires.
    let stats = match tokio::task::spawn_blocking(move || fs4::statvfs(owned)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Outcome::error(format!("cannot stat {}: {e}", path.display())),
        Err(e) => return Outcome::error(format!("cannot stat {}: {e}", path.display())),
    };
    let available = stats.available_space();
    let total = stats.total_space();
    let percent = if total == 0 {
        0.0
    } else {
        available as f64 / total as f64 * 100.0
    };
    let seen = format!(
        "{:.0} MiB of {:.0} MiB available ({percent:.1}%) at {}",
        available as f64 / MIB,
        total as f64 / MIB,
        path.display()
    );
    if let Some(min) = min_free_mb.filter(|min| available / (1024 * 1024) < *min) {
        return Outcome::unhealthy(format!("{seen}, less than {min} MiB"));
    }
    if let Some(min) = min_free_percent.filter(|min| percent < *min) {
        return Outcome::unhealthy(format!("{seen}, less than {min}%"));
    }
    Outcome::healthy(seen)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// An error and its sources, `outer: inner: root`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
