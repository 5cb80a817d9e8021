//! What the health-checker tests share: a pipeline to an in-process
//! collector, and throwaway servers on free ports of 127.0.0.1.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use otelwire::{LogFormat, Protocol, Signal, Telemetry};
use otelwire_test::Collector;

/// A pipeline that exports quickly to `collector`, ignoring the environment.
pub fn pipeline(collector: &Collector) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("health-checker")
        .endpoint(collector.grpc_endpoint())
        .protocol(Protocol::Grpc)
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .scheduled_delay(Signal::Logs, Duration::from_millis(100))
        .metric_export_interval(Duration::from_millis(200))
        .process_metrics(false)
        .build()
        .expect("a telemetry pipeline")
}

/// A server that runs until dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub async fn serve(router: axum::Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Server { addr, task }
}

/// An address where nothing listens: a free port, bound and released.
pub fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    addr.to_string()
}

pub const WAIT: Duration = Duration::from_secs(10);
