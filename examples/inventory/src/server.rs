//! The HTTP server loop of the example services, with the limits that keep
//! one client from holding a request or the shutdown forever.
//!
//! `axum::serve` has no read timeouts and waits for every open connection
//! at shutdown: a client that sends half a request header (or a body that
//! never ends) then keeps the service from exiting after SIGTERM. This loop
//! serves the same router with hyper directly and bounds each phase:
//!
//! | Limit | Default | What happens |
//! |---|---|---|
//! | [`Limits::header_read`] | 5 s | a request head not complete by then: the connection is closed |
//! | [`Limits::request`] | 15 s | a request (body reading included) not answered by then: 408 |
//! | [`Limits::drain`] | 5 s | after the shutdown signal, connections still open by then are closed |
//!
//! Every request gets the client's address as axum's
//! [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo), as
//! `into_make_service_with_connect_info` would give it.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt as _;

/// How long a client may take, and how long shutdown waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the connection's first byte (or the previous response) to the
    /// end of the request head.
    pub header_read: Duration,
    /// From the request head to the response: the body is read within it.
    pub request: Duration,
    /// From the shutdown signal to the closing of connections still open.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(5),
            request: Duration::from_secs(15),
            drain: Duration::from_secs(5),
        }
    }
}

/// The middleware behind [`Limits::request`]: 408 when the handler (which
/// reads the body) takes longer. Applied by [`request_timeout`].
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(serde_json::json!({ "error": "the request took too long to arrive" })),
        )
            .into_response(),
    }
}

/// Answers 408 to a request not handled (body read included) within
/// `limit`. Add it to the routes before the tracing layer, so that the
/// request's span records the 408.
pub fn request_timeout(router: axum::Router, limit: Duration) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(limit, time_limit))
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// open connections finish for at most [`Limits::drain`] and closes the
/// rest. Read timeouts as in [`Limits`] (the request timeout is
/// [`request_timeout`]'s, which the services' routers apply).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, not spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Reap the finished connections' tasks as we go.
        while connections.try_join_next().is_some() {}
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                async move { router.oneshot(request.map(Body::new)).await }
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!(
                open,
                drain_ms = limits.drain.as_millis() as u64,
                "connections still open after the drain deadline: closing them"
            );
        }
    }
    // Dropping the set aborts whatever is still running.
    connections.abort_all();
    drop(connections);
    Ok(())
}

/// `url` as it may be printed: without the user name and password of its
/// authority (`http://user:pass@host/` → `http://host/`). Anything that is
/// not `scheme://authority…` is returned as is.
pub fn without_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return url.into();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]).into(),
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_removed() {
        assert_eq!(
            without_userinfo("http://user:pass@127.0.0.1:8081/x?y=z@w"),
            "http://127.0.0.1:8081/x?y=z@w"
        );
        assert_eq!(without_userinfo("http://a@b@host"), "http://host");
        assert_eq!(without_userinfo("http://host/p@q"), "http://host/p@q");
        assert_eq!(without_userinfo("not a url"), "not a url");
    }
}
